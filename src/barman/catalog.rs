//! The Barman Cloud catalog of one server, read from the object store alone.
//!
//! Listing is parallel: one listing per backup folder and one per WAL folder
//! (`wals/TTTTTTTTLLLLLLLL/`), at most `concurrency` at once, never one sequential pagination of
//! the whole prefix (which is what makes barman-cloud-backup-delete slow on big archives). Each
//! listing asks for a page the size of what it expects to find: stores such as Garage read as
//! many entries as a page may hold, wherever the prefix ends. Every listing has `/` as delimiter
//! (a backup's `annotations/` listed on its own): s3s-fs answers one without by walking the
//! whole bucket.
//!
//! The backups are read first; then the WAL folders, in key order, each listing folded into the
//! timelines' runs of segments (see [`super::runs`]) as it arrives, so that a million segments are
//! never held as objects.

use super::info::{BackupInfo, BackupStatus, DEFAULT_SEGMENT_SIZE};
use super::runs::{self, KeyBase, Run};
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
    pub archived: Option<DateTime<Utc>>,
}

/// The segments of one timeline, as runs of consecutive positions (see [`wal::seg_no`] and
/// [`runs`]), and its history.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub id: u32,
    pub runs: Vec<Run>,
    pub history: Vec<HistoryEntry>,
}

impl Timeline {
    /// How many segments are archived.
    #[must_use]
    pub fn segment_count(&self) -> u64 {
        self.runs.iter().map(Run::len).sum()
    }

    /// Position of the first and of the last archived segment.
    #[must_use]
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((self.runs.first()?.first, self.runs.last()?.last))
    }

    /// The newest archive time of any segment.
    #[must_use]
    pub fn newest_archived(&self) -> Option<DateTime<Utc>> {
        self.runs.iter().filter_map(|r| r.newest_archived).max()
    }

    /// The archive time of the segment at `p` when a run ends there (`None` otherwise).
    #[must_use]
    pub fn archived_at_end(&self, p: u64) -> Option<DateTime<Utc>> {
        let i = self.runs.partition_point(|r| r.last < p);
        self.runs
            .get(i)
            .filter(|r| r.last == p)
            .and_then(|r| r.last_archived)
    }
}

#[derive(Debug, Clone)]
pub struct ServerCatalog {
    pub server: String,
    pub segment_size: u64,
    pub backups: Vec<BaseBackup>,
    pub timelines: BTreeMap<u32, Timeline>,
    /// How segment keys are spelt (`SERVER/wals/`, the segment size).
    pub keys: KeyBase,
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
    // The backups first (a few folders): their segment size and WAL ranges say how the WAL
    // inventory, built while its listing streams in, is cut into runs.
    let backups = load_backups(store, server, concurrency).await?;
    let segment_size = backups
        .iter()
        .find_map(|b| b.info.as_ref().map(|i| i.xlog_segment_size))
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    let mut cat = ServerCatalog::new(server, segment_size, backups);
    let mut builder = cat.builder();
    let odd = list_wals(store, server, concurrency, &mut builder).await?;
    cat.add_runs(builder);
    for meta in odd {
        cat.add_other(store, meta).await?;
    }
    Ok(cat)
}

/// The server's base backups alone (`SERVER/base/`), without its WAL inventory: what a caller
/// that only looks for one backup needs, however many segments the archive holds.
pub async fn load_backups(
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
    let objects = store::list_tree(store, &dir, BACKUP_FOLDER_PAGE).await?;
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
/// The first page of the top of `wals/` is this small, so that folder listings start at once
/// instead of after the whole top listing. Later pages are as large as stores allow
/// ([`store::MAX_PAGE`]): some stores pay for each page whatever its size, s3s-fs walking every
/// object below `wals/` for each (at a million segments, 61 pages of 64 cost it 4x the listing
/// itself, issue 14). Garage, which read up to MaxKeys entries past each folder it rolled up,
/// preferred small pages throughout (0.1 s against 0.5 s at 100,000 segments); it left the project.
const TOP_PAGE: u16 = 64;

/// Lists `wals/`: the history files at the top, then each folder on its own, as soon as a page of
/// the top listing names it. Segments go into `runs` as each folder's listing arrives, in key
/// order; every other object is returned, in key order.
async fn list_wals(
    store: &dyn ObjectStore,
    server: &str,
    concurrency: usize,
    runs: &mut runs::Builder,
) -> store::Result<Vec<ObjectMeta>> {
    let top = &format!("{server}/wals/");
    // State: the token of the next page (`Some(None)`: the first), `None` once at the end.
    let pages = stream::try_unfold(
        Some(None),
        move |token: Option<Option<String>>| async move {
            let Some(token) = token else {
                return Ok(None);
            };
            let max = if token.is_none() {
                TOP_PAGE
            } else {
                store::MAX_PAGE
            };
            let page = store.list_page(top, true, max, token).await?;
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
    // In order (`buffered`), so that runs grow at their end; `concurrency` listings in flight.
    let mut found = std::pin::pin!(
        jobs.map(|job: store::Result<BoxFuture<'_, _>>| async move { job?.await })
            .buffered(concurrency.max(1))
    );
    let mut odd = Vec::new();
    while let Some(objects) = found.try_next().await? {
        for meta in objects {
            let name = meta.key.rsplit('/').next().unwrap_or_default();
            match WalFile::parse(name) {
                Some(f) if f.kind == WalKind::Segment => {
                    let p = wal::seg_no(f.log, f.seg, runs.base().segment_size);
                    runs.push(
                        f.timeline,
                        p,
                        &meta.key,
                        name,
                        meta.size,
                        meta.last_modified,
                    );
                }
                _ => odd.push(meta),
            }
        }
    }
    odd.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(odd)
}

impl ServerCatalog {
    /// A catalog of these backups with no WAL yet (see [`Self::builder`]).
    #[must_use]
    pub fn new(server: &str, segment_size: u64, backups: Vec<BaseBackup>) -> Self {
        Self {
            server: server.to_string(),
            segment_size,
            backups,
            timelines: BTreeMap::new(),
            keys: KeyBase {
                wals: format!("{server}/wals/").into(),
                segment_size,
            },
            other_wal_files: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A builder of the WAL runs, cut at the WAL ranges of the catalog's backups.
    #[must_use]
    pub fn builder(&self) -> runs::Builder {
        let walls = self.backups.iter().filter_map(|b| {
            let i = b.info.as_ref()?;
            Some((i.begin_wal.as_deref()?, i.end_wal.as_deref()?))
        });
        runs::Builder::new(self.keys.clone(), runs::cuts(walls, self.segment_size))
    }

    /// Takes the runs a builder made.
    pub fn add_runs(&mut self, builder: runs::Builder) {
        for (tl, runs) in builder.finish() {
            self.timeline(tl).runs = runs;
        }
    }

    /// Adds an object of `wals/` that is not a segment.
    async fn add_other(&mut self, store: &dyn ObjectStore, meta: ObjectMeta) -> store::Result<()> {
        let name = meta.key.rsplit('/').next().unwrap_or_default();
        match WalFile::parse(name) {
            Some(file) if file.kind == WalKind::History => {
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
            _ => self.other_wal_files.push(meta),
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
    pub fn newest_segment(&self) -> Option<Segment> {
        self.timelines.values().rev().find_map(|t| {
            let r = t.runs.last()?;
            Some(Segment {
                name: wal::name_of(t.id, r.last, self.segment_size),
                key: self.keys.key(t.id, r.last, &r.shape),
                archived: r.last_archived,
            })
        })
    }

    /// Total number of archived segments.
    #[must_use]
    pub fn segment_count(&self) -> u64 {
        self.timelines.values().map(Timeline::segment_count).sum()
    }
}

/// The servers under a Barman prefix: every folder of `top` (the folders at the top of the store,
/// which the caller has listed already: on s3s-fs each listing of the top walks the whole store)
/// holding `base/` or `wals/`.
pub async fn discover_servers(
    store: &dyn ObjectStore,
    top: &[String],
) -> store::Result<Vec<String>> {
    let mut servers = Vec::new();
    for dir in top {
        let sub = store.list_dir(dir).await?;
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
