//! Hand-built catalogs for unit tests: backups and segments at known minutes after `t0`.

use super::catalog::{BaseBackup, Segment, ServerCatalog, Timeline};
use super::info::BackupInfo;
use super::wal::{self, HistoryEntry};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;

pub const SIZE: u64 = 16 * 1024 * 1024;

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Segment `no` on timeline `tl`, archived `no` minutes after t0.
pub fn seg(tl: u32, no: u64) -> (u64, Segment) {
    let name = wal::name_of(tl, no, SIZE);
    let archived = Some(t0() + TimeDelta::minutes(i64::try_from(no).unwrap()));
    (
        no,
        Segment {
            key: format!("srv/wals/{}/{name}", &name[..16]),
            name,
            size: SIZE,
            archived,
        },
    )
}

pub fn backup(id: &str, tl: u32, begin: u64, end: u64) -> BaseBackup {
    let text = format!(
        "status=DONE\ntimeline={tl}\nbegin_wal={}\nend_wal={}\nbegin_time={}\nend_time={}\n",
        wal::name_of(tl, begin, SIZE),
        wal::name_of(tl, end, SIZE),
        (t0() + TimeDelta::minutes(i64::try_from(begin).unwrap())).format("%Y-%m-%d %H:%M:%S%:z"),
        (t0() + TimeDelta::minutes(i64::try_from(end).unwrap())).format("%Y-%m-%d %H:%M:%S%:z"),
    );
    BaseBackup {
        id: id.into(),
        info: Some(BackupInfo::parse(&text).unwrap()),
        unreadable: None,
        keep: None,
        size: 1,
        has_data: true,
        objects: ["backup.info", "data.tar"]
            .iter()
            .map(|f| crate::store::ObjectMeta {
                key: format!("srv/base/{id}/{f}"),
                size: 1,
                last_modified: Some(t0()),
            })
            .collect(),
    }
}

pub fn catalog(
    backups: Vec<BaseBackup>,
    timelines: Vec<(u32, Vec<u64>, Vec<HistoryEntry>)>,
) -> ServerCatalog {
    let timelines = timelines
        .into_iter()
        .map(|(id, nos, history)| {
            (
                id,
                Timeline {
                    id,
                    segments: nos.into_iter().map(|n| seg(id, n)).collect(),
                    history,
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    ServerCatalog {
        server: "srv".into(),
        segment_size: SIZE,
        backups,
        timelines,
        other_wal_files: vec![],
        problems: vec![],
    }
}

pub fn minutes(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(n)
}
