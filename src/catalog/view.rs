//! The JSON shape of a catalog (`openova.catalog/v1`): views that borrow from a loaded
//! [`StorageCatalog`] and say what a reader needs (status, sizes, WAL ranges, the window).

use super::StorageCatalog;
use crate::barman::wal::name_of;
use crate::barman::{BaseBackup, ServerCatalog, Window};
use crate::velero::VeleroBackup;
use crate::wal::horizon::TimelineTransaction;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Serialize)]
pub struct StorageView<'a> {
    pub url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub velero: Option<&'a [VeleroBackup]>,
    pub barman: Vec<ServerView<'a>>,
}

#[derive(Serialize)]
pub struct ServerView<'a> {
    pub server: &'a str,
    pub backups: Vec<BackupView<'a>>,
    pub wal: WalView,
    pub window: &'a Window,
    pub problems: &'a [String],
}

#[derive(Serialize)]
pub struct BackupView<'a> {
    pub id: &'a str,
    /// `DONE`, `FAILED`, ... ; `IN_PROGRESS` when there is no backup.info yet; `UNREADABLE`.
    pub status: String,
    pub begin_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub begin_wal: Option<&'a str>,
    pub end_wal: Option<&'a str>,
    pub timeline: Option<u32>,
    pub size: u64,
    pub has_data: bool,
    pub keep: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Serialize)]
pub struct WalView {
    pub segments: u64,
    pub timelines: Vec<TimelineView>,
    pub other_files: usize,
}

#[derive(Serialize)]
pub struct TimelineView {
    pub timeline: u32,
    pub first: Option<String>,
    pub last: Option<String>,
    pub segments: u64,
    pub newest_archived: Option<DateTime<Utc>>,
    pub parent: Option<u32>,
    pub switch_lsn: Option<String>,
    /// The last commit or abort in the timeline's newest segments (absent when not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transaction: Option<TimelineTransaction>,
}

impl<'a> BackupView<'a> {
    #[must_use]
    pub fn of(b: &'a BaseBackup) -> Self {
        let info = b.info.as_ref();
        let status = match (info, &b.unreadable) {
            (Some(i), _) => serde_json::to_value(i.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            (None, Some(_)) => "UNREADABLE".into(),
            (None, None) => "IN_PROGRESS".into(),
        };
        Self {
            id: &b.id,
            status,
            begin_time: info.and_then(|i| i.begin_time),
            end_time: info.and_then(|i| i.end_time),
            begin_wal: info.and_then(|i| i.begin_wal.as_deref()),
            end_wal: info.and_then(|i| i.end_wal.as_deref()),
            timeline: info.and_then(|i| i.timeline),
            size: b.size,
            has_data: b.has_data,
            keep: b.keep.as_deref(),
            error: b
                .unreadable
                .as_deref()
                .or_else(|| info.and_then(|i| i.error.as_deref())),
        }
    }
}

impl<'a> ServerView<'a> {
    #[must_use]
    pub fn of(
        cat: &'a ServerCatalog,
        window: &'a Window,
        last_transactions: &[TimelineTransaction],
    ) -> Self {
        let timelines = cat
            .timelines
            .values()
            .map(|t| TimelineView {
                timeline: t.id,
                first: t.span().map(|(a, _)| name_of(t.id, a, cat.segment_size)),
                last: t.span().map(|(_, b)| name_of(t.id, b, cat.segment_size)),
                segments: t.segment_count(),
                newest_archived: t.newest_archived(),
                parent: t.history.last().map(|h| h.parent),
                switch_lsn: t.history.last().map(|h| h.switch_lsn.clone()),
                last_transaction: last_transactions
                    .iter()
                    .find(|l| l.timeline == t.id)
                    .cloned(),
            })
            .collect();
        Self {
            server: &cat.server,
            backups: cat.backups.iter().map(BackupView::of).collect(),
            wal: WalView {
                segments: cat.segment_count(),
                timelines,
                other_files: cat.other_wal_files.len(),
            },
            window,
            problems: &cat.problems,
        }
    }
}

impl StorageCatalog {
    #[must_use]
    pub fn view(&self) -> StorageView<'_> {
        StorageView {
            url: &self.url,
            velero: self.velero.as_deref(),
            barman: self
                .barman
                .iter()
                .map(|(c, w)| ServerView::of(c, w, self.last_transactions_of(&c.server)))
                .collect(),
        }
    }
}
