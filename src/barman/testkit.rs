//! Hand-built catalogs for unit tests: backups and segments at known minutes after `t0`.

use super::catalog::{BaseBackup, ServerCatalog, Timeline};
use super::info::BackupInfo;
use super::wal::{self, HistoryEntry};
use chrono::{DateTime, TimeDelta, Utc};

pub const SIZE: u64 = 16 * 1024 * 1024;

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The key of segment `no` on timeline `tl`.
pub fn seg_key(tl: u32, no: u64) -> String {
    let name = wal::name_of(tl, no, SIZE);
    format!("srv/wals/{}/{name}", &name[..16])
}

/// Segment `no` is archived `no` minutes after t0.
pub fn archived(no: u64) -> Option<DateTime<Utc>> {
    Some(t0() + TimeDelta::minutes(i64::try_from(no).unwrap()))
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
    let mut cat = ServerCatalog::new("srv", SIZE, backups);
    let mut runs = cat.builder();
    let mut histories = Vec::new();
    for (id, mut nos, history) in timelines {
        nos.sort_unstable();
        for n in nos {
            let key = seg_key(id, n);
            let file = key.rsplit('/').next().unwrap_or_default().to_string();
            runs.push(id, n, &key, &file, SIZE, archived(n));
        }
        histories.push((id, history));
    }
    cat.add_runs(runs);
    for (id, history) in histories {
        cat.timelines
            .entry(id)
            .or_insert_with(|| Timeline {
                id,
                ..Timeline::default()
            })
            .history = history;
    }
    cat
}

pub fn minutes(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(n)
}
