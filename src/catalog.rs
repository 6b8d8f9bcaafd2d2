//! `openova catalog`: everything a storage location holds, from the object store alone — Velero
//! backups, Barman servers with their base backups, WAL inventory and recoverable window.
//! This module owns the JSON shape of the catalog (`openova.catalog/v1`, see README).

use crate::barman::{self, BaseBackup, ServerCatalog, Window};
use crate::store::{self, ObjectStore};
use crate::velero::{self, VeleroBackup};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

pub const SCHEMA: &str = "openova.catalog/v1";

/// Everything found under one storage URL.
#[derive(Debug, Clone)]
pub struct StorageCatalog {
    pub url: String,
    pub velero: Option<Vec<VeleroBackup>>,
    pub barman: Vec<(ServerCatalog, Window)>,
}

/// What to read from a storage location.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Read Velero backups (when `backups/` exists).
    pub velero: bool,
    /// Barman servers to read; `None` discovers every server folder.
    pub servers: Option<Vec<String>>,
}

impl Scope {
    #[must_use]
    pub fn everything() -> Self {
        Self {
            velero: true,
            servers: None,
        }
    }
}

/// Reads a storage location: Velero when `backups/` exists, and the Barman servers of `scope`
/// (by default every folder holding `base/` or `wals/`).
pub async fn load(
    store: &dyn ObjectStore,
    scope: &Scope,
    concurrency: usize,
) -> store::Result<StorageCatalog> {
    let top = store.list_dir("").await?;
    let velero = if scope.velero && top.dirs.iter().any(|d| d == "backups/") {
        Some(velero::load(store, concurrency).await?)
    } else {
        None
    };
    let servers: Vec<String> = match &scope.servers {
        Some(s) => s.clone(),
        None => barman::discover_servers(store).await?,
    };
    let barman = stream::iter(servers)
        .map(|s| async move {
            let cat = barman::load(store, &s, concurrency).await?;
            let window = barman::analyse(&cat);
            Ok::<_, store::Error>((cat, window))
        })
        .buffered(2)
        .try_collect()
        .await?;
    Ok(StorageCatalog {
        url: store.url().to_string(),
        velero,
        barman,
    })
}

// ---- JSON view -------------------------------------------------------------------------------

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
    pub segments: usize,
    pub timelines: Vec<TimelineView>,
    pub other_files: usize,
}

#[derive(Serialize)]
pub struct TimelineView {
    pub timeline: u32,
    pub first: Option<String>,
    pub last: Option<String>,
    pub segments: usize,
    pub newest_archived: Option<DateTime<Utc>>,
    pub parent: Option<u32>,
    pub switch_lsn: Option<String>,
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
    pub fn of(cat: &'a ServerCatalog, window: &'a Window) -> Self {
        let timelines = cat
            .timelines
            .values()
            .map(|t| TimelineView {
                timeline: t.id,
                first: t.segments.values().next().map(|s| s.name.clone()),
                last: t.segments.values().next_back().map(|s| s.name.clone()),
                segments: t.segments.len(),
                newest_archived: t.segments.values().filter_map(|s| s.archived).max(),
                parent: t.history.last().map(|h| h.parent),
                switch_lsn: t.history.last().map(|h| h.switch_lsn.clone()),
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
                .map(|(c, w)| ServerView::of(c, w))
                .collect(),
        }
    }
}
