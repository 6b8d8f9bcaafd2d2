//! The Barman Cloud catalog of one server, read from the object store alone.
//!
//! Listing is parallel: one listing per backup folder and one per WAL folder
//! (`wals/TTTTTTTTLLLLLLLL/`), at most `concurrency` at once, never one sequential pagination of
//! the whole prefix (which is what makes barman-cloud-backup-delete slow on big archives). Each
//! listing asks for a page the size of what it expects to find: stores such as Garage read as
//! many entries as a page may hold, wherever the prefix ends.

use super::info::{BackupInfo, BackupStatus, DEFAULT_SEGMENT_SIZE};
use super::wal::{self, HistoryEntry, WalFile, WalKind};
use crate::store::{self, ObjectMeta, ObjectStore};
use chrono::{DateTime, Utc};
use futures::future::{self, BoxFuture, FutureExt};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use std::collections::BTreeMap;

/// One folder under `base/`.
#[derive(Debug, Clone, Serialize)]
pub struct BaseBackup {
    pub id: String,
    /// Parsed `backup.info`; `None` while the backup is still being written or when unreadable.
    pub info: Option<BackupInfo>,
    /// Why `backup.info` could not be read (the backup is then listed as unreadable).
    pub unreadable: Option<String>,
    /// `annotations/keep` content (`full` or `standalone`), set by barman-cloud-backup-keep.
    pub keep: Option<String>,
    /// Total bytes of the backup's objects.
    pub size: u64,
    /// Whether a `data.tar*` (or split `data_0001.tar*`) object exists.
    pub has_data: bool,
    /// Keys of every object of the backup, relative to the store.
    #[serde(skip)]
    pub objects: Vec<ObjectMeta>,
}

impl BaseBackup {
    #[must_use]
    pub fn status(&self) -> Option<BackupStatus> {
        self.info.as_ref().map(|i| i.status)
    }

    /// A backup that could serve as a restore base: DONE with its data present.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.status() == Some(BackupStatus::Done) && self.has_data
    }

    /// No `backup.info` yet: barman-cloud uploads it last, so the backup is still running (or died).
    #[must_use]
    pub fn in_progress(&self) -> bool {
        self.info.is_none() && self.unreadable.is_none()
    }
}

/// One archived WAL segment.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub name: String,
    pub key: String,
    pub size: u64,
    pub archived: Option<DateTime<Utc>>,
}

/// The segments of one timeline, by position (see [`wal::seg_no`]), and its history.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub id: u32,
    pub segments: BTreeMap<u64, Segment>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone)]
pub struct ServerCatalog {
    pub server: String,
    pub segment_size: u64,
    pub backups: Vec<BaseBackup>,
    pub timelines: BTreeMap<u32, Timeline>,
    /// `.partial` and `.backup` files, and anything under `wals/` that is not a WAL name.
    pub other_wal_files: Vec<ObjectMeta>,
    /// Objects that could not be understood (an unreadable `.history`, ...), with the reason.
    pub problems: Vec<String>,
}

/// Reads the catalog of `server` (a folder under the store's prefix).
pub async fn load(
    store: &dyn ObjectStore,
    server: &str,
    concurrency: usize,
) -> store::Result<ServerCatalog> {
    let (backups, wals) = tokio::try_join!(
        load_backups(store, server, concurrency),
        list_wals(store, server, concurrency)
    )?;
    let segment_size = backups
        .iter()
        .find_map(|b| b.info.as_ref().map(|i| i.xlog_segment_size))
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    let mut cat = ServerCatalog {
        server: server.to_string(),
        segment_size,
        backups,
        timelines: BTreeMap::new(),
        other_wal_files: Vec::new(),
        problems: Vec::new(),
    };
    for meta in wals {
        cat.add_wal_object(store, meta).await?;
    }
    Ok(cat)
}

async fn load_backups(
    store: &dyn ObjectStore,
    server: &str,
    concurrency: usize,
) -> store::Result<Vec<BaseBackup>> {
    let dirs = store.list_dir(&format!("{server}/base/")).await?.dirs;
    let mut backups: Vec<BaseBackup> = stream::iter(dirs)
        .map(|dir| load_backup(store, dir))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    backups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(backups)
}

async fn load_backup(store: &dyn ObjectStore, dir: String) -> store::Result<BaseBackup> {
    let id = store::folder_name(&dir);
    let objects = store::list_paged(store, &dir, false, BACKUP_FOLDER_PAGE)
        .await?
        .objects;
    let file = |o: &ObjectMeta| o.key[dir.len()..].to_string();
    let has = |name: &str| objects.iter().any(|o| file(o) == name);
    let has_data = objects.iter().any(|o| {
        let f = file(o);
        f.starts_with("data.tar") || f.starts_with("data_")
    });
    let mut b = BaseBackup {
        id,
        info: None,
        unreadable: None,
        keep: None,
        size: objects.iter().map(|o| o.size).sum(),
        has_data,
        objects: Vec::new(),
    };
    if has("backup.info") {
        let key = format!("{dir}backup.info");
        // Gone since the listing (a deletion under way): the backup then reads as unfinished.
        match store::get_if_exists(store, &key)
            .await?
            .map(|b| String::from_utf8(b.to_vec()))
        {
            None => {}
            Some(Ok(text)) => match BackupInfo::parse(&text) {
                Ok(info) => b.info = Some(info),
                Err(e) => b.unreadable = Some(format!("{key}: {e}")),
            },
            Some(Err(_)) => b.unreadable = Some(format!("{key}: not UTF-8 text")),
        }
    }
    if has("annotations/keep") {
        let text = store::get_if_exists(store, &format!("{dir}annotations/keep")).await?;
        b.keep = text.map(|t| String::from_utf8_lossy(&t).trim().to_string());
    }
    b.objects = objects;
    Ok(b)
}

/// A WAL folder holds 256 segments at the default 16 MiB segment size, plus the odd `.backup` or
/// `.partial` file: one page this size lists it whole without the store reading past it.
const WAL_FOLDER_PAGE: u16 = 256 + 64;
/// A base-backup folder: `backup.info`, the data tar(s), tablespace tars, annotations.
const BACKUP_FOLDER_PAGE: u16 = 32;
/// The top of `wals/` comes in pages this small, so that folder listings start on the first page
/// instead of after the whole top listing, and so that Garage, which reads up to MaxKeys entries
/// past each folder it rolls up, reads few (a 100,000-segment archive: 0.5 s for one page of
/// 1,000, 0.1 s in pages of 50).
const TOP_PAGE: u16 = 64;

/// Every object under `wals/`, in key order: the history files at the top, then each folder
/// listed on its own, as soon as a page of the top listing names it.
async fn list_wals(
    store: &dyn ObjectStore,
    server: &str,
    concurrency: usize,
) -> store::Result<Vec<ObjectMeta>> {
    let top = &format!("{server}/wals/");
    // State: the token of the next page (`Some(None)`: the first), `None` once at the end.
    let pages = stream::try_unfold(
        Some(None),
        move |token: Option<Option<String>>| async move {
            let Some(token) = token else {
                return Ok(None);
            };
            let page = store.list_page(top, true, TOP_PAGE, token).await?;
            Ok::<_, store::Error>(Some((page.listing, page.next.map(Some))))
        },
    );
    let jobs = pages
        .map_ok(|listing| {
            let here = future::ready(Ok(listing.objects)).boxed();
            // With `/` as delimiter: a WAL folder has no sub-folders, so the answer is the same,
            // and some stores (s3s-fs) walk far less to produce it than for a recursive listing.
            let folders = listing.dirs.into_iter().map(|dir| {
                async move {
                    store::list_paged(store, &dir, true, WAL_FOLDER_PAGE)
                        .await
                        .map(|l| l.objects)
                }
                .boxed()
            });
            stream::iter(std::iter::once(here).chain(folders).map(Ok))
        })
        .try_flatten();
    let found: Vec<Vec<ObjectMeta>> = jobs
        .map(|job: store::Result<BoxFuture<'_, _>>| async move { job?.await })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut all: Vec<ObjectMeta> = found.into_iter().flatten().collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

impl ServerCatalog {
    async fn add_wal_object(
        &mut self,
        store: &dyn ObjectStore,
        meta: ObjectMeta,
    ) -> store::Result<()> {
        let name = meta.key.rsplit('/').next().unwrap_or_default();
        let Some(file) = WalFile::parse(name) else {
            self.other_wal_files.push(meta);
            return Ok(());
        };
        match file.kind {
            WalKind::Segment => {
                let no = wal::seg_no(file.log, file.seg, self.segment_size);
                // The key's own name when it is already the canonical (upper-case) one: one
                // allocation instead of formatting three numbers, for every segment.
                let name = match name.get(..24) {
                    Some(n) if !n.bytes().any(|b| b.is_ascii_lowercase()) => n.to_string(),
                    _ => file.segment_name(),
                };
                let seg = Segment {
                    name,
                    key: meta.key,
                    size: meta.size,
                    archived: meta.last_modified,
                };
                self.timeline(file.timeline).segments.insert(no, seg);
            }
            WalKind::History => {
                let Some(text) = store::get_if_exists(store, &meta.key).await? else {
                    return Ok(());
                };
                match wal::parse_history(&String::from_utf8_lossy(&text)) {
                    Ok(h) => self.timeline(file.timeline).history = h,
                    Err(line) => self
                        .problems
                        .push(format!("{}: unreadable history line {line:?}", meta.key)),
                }
            }
            WalKind::Partial | WalKind::Backup => self.other_wal_files.push(meta),
        }
        Ok(())
    }

    fn timeline(&mut self, id: u32) -> &mut Timeline {
        self.timelines.entry(id).or_insert_with(|| Timeline {
            id,
            ..Timeline::default()
        })
    }

    /// Position of a segment name on its timeline.
    #[must_use]
    pub fn position(&self, name: &str) -> Option<(u32, u64)> {
        let (t, l, s) = wal::split_segment(name)?;
        Some((t, wal::seg_no(l, s, self.segment_size)))
    }

    /// The newest archived segment over all timelines (highest timeline, then position).
    #[must_use]
    pub fn newest_segment(&self) -> Option<&Segment> {
        self.timelines
            .values()
            .rev()
            .find_map(|t| t.segments.values().next_back())
    }

    /// Total number of archived segments.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.timelines.values().map(|t| t.segments.len()).sum()
    }
}

/// The servers under a Barman prefix: every folder holding `base/` or `wals/`.
pub async fn discover_servers(store: &dyn ObjectStore) -> store::Result<Vec<String>> {
    let top = store.list_dir("").await?;
    let mut servers = Vec::new();
    for dir in top.dirs {
        let sub = store.list_dir(&dir).await?;
        if sub
            .dirs
            .iter()
            .any(|d| d.ends_with("/base/") || d.ends_with("/wals/"))
        {
            servers.push(dir.trim_end_matches('/').to_string());
        }
    }
    Ok(servers)
}
