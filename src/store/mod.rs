//! Object storage: the one place openova talks to S3 (or a local folder).
//!
//! Owns the [`ObjectStore`] trait and its two implementations, [`S3Store`] (aws-sdk-s3, tuned for
//! Cloudflare R2 and other S3-compatible stores) and [`FsStore`] (`file:///dir`), and [`Traced`],
//! the wrapper that logs what either is asked and how long it took. It knows nothing of
//! Barman or Velero: keys are plain strings relative to the store's prefix.

mod error;
mod fs;
mod listxml;
mod pool;
pub mod retry;
mod s3;
#[cfg(test)]
pub mod testkit;
mod traced;

pub use error::{Error, GaveUp, Result};
pub use fs::FsStore;
pub use s3::{S3Options, S3Store};
pub use traced::Traced;
// The location types live in a leaf module that policies use too; re-exported so that
// `store::StorageUrl` and `store::Connection` keep working.
pub use crate::location::{Connection, Limits, StorageUrl, Timeouts};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// DeleteObjects takes at most this many keys (S3 and R2 alike).
pub const DELETE_BATCH: usize = 1000;

/// Downloaded bytes in the pieces they arrived in, not copied into one buffer: a restore hands
/// them on as they are (a base backup is most of what it moves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body(Vec<Bytes>);

impl Body {
    #[must_use]
    pub fn new(pieces: Vec<Bytes>) -> Self {
        Self(pieces.into_iter().filter(|p| !p.is_empty()).collect())
    }

    /// Bytes in all the pieces.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pieces, in order (none empty).
    #[must_use]
    pub fn into_pieces(self) -> Vec<Bytes> {
        self.0
    }

    /// One buffer (a copy, unless there is a single piece).
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        match self.0.len() {
            0 => Bytes::new(),
            1 => self.0.into_iter().next().unwrap_or_default(),
            _ => {
                let mut all = bytes::BytesMut::with_capacity(self.len());
                for p in &self.0 {
                    all.extend_from_slice(p);
                }
                all.freeze()
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::new(vec![b])
    }
}

/// One object as a listing reports it. `key` is relative to the store's prefix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
}

/// One level of a listing with `/` as delimiter: the objects directly at that level and the
/// "folders" below it (each ending in `/`, relative to the store's prefix).
#[derive(Debug, Default, Clone)]
pub struct DirListing {
    pub objects: Vec<ObjectMeta>,
    pub dirs: Vec<String>,
}

/// One page of a listing (see [`ObjectStore::list_page`]): `next` continues it, `None` at the end.
#[derive(Debug, Default, Clone)]
pub struct ListPage {
    pub listing: DirListing,
    pub next: Option<String>,
}

/// What every storage backend offers. Keys and prefixes are relative to the store's own prefix.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The storage URL, for messages (never includes credentials).
    fn url(&self) -> &StorageUrl;
    /// Every object under `prefix`, following pagination to the end.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// One level under `prefix` (which should end in `/`), with `/` as delimiter.
    async fn list_dir(&self, prefix: &str) -> Result<DirListing>;
    /// One page of a listing under `prefix` (one level, with `/` as delimiter, when `dirs`): at
    /// most about `max` entries, continuing after `token` (the previous page's `next`). For a
    /// caller that knows about how many entries to expect, or wants to act on the first ones
    /// before the rest arrive: Garage reads MaxKeys entries on from the prefix wherever the prefix
    /// ends, and for each folder it rolls up, so a page sized to the folder costs it far less.
    /// Stores that answer a listing in one go return it whole, without `next`.
    async fn list_page(
        &self,
        prefix: &str,
        dirs: bool,
        max: u16,
        token: Option<String>,
    ) -> Result<ListPage> {
        let _ = (max, token);
        Ok(ListPage {
            listing: list_whole(self, prefix, dirs).await?,
            next: None,
        })
    }
    /// The whole object.
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// `len` bytes from `offset` (fewer at the end of the object), in the pieces they arrived in.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body>;
    /// Writes (replaces) the object.
    async fn put(&self, key: &str, body: Bytes) -> Result<()>;
    /// Writes the object only if no object has that key (`If-None-Match: *`). `Ok(false)` when
    /// one exists. Some stores ignore the condition and overwrite (Garage 2.5 did); callers that
    /// rely on it probe first (see `retention::lease`).
    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool>;
    /// Deletes the keys, in batches of at most [`DELETE_BATCH`]. Missing keys are not an error.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;
    /// The object's metadata, or `None` when it does not exist. On S3 a HEAD on a missing bucket
    /// is a bare 404 as well, so this says `None` there too: list first to learn a bucket is missing.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
}

/// The whole listing under `prefix` (one level when `dirs`), in one answer.
pub async fn list_whole<S: ObjectStore + ?Sized>(
    store: &S,
    prefix: &str,
    dirs: bool,
) -> Result<DirListing> {
    if dirs {
        store.list_dir(prefix).await
    } else {
        Ok(DirListing {
            objects: store.list(prefix).await?,
            dirs: Vec::new(),
        })
    }
}

/// Every entry under `prefix` (one level when `dirs`), page by page through
/// [`ObjectStore::list_page`]: the first page of `first` entries, sized to what the caller
/// expects there, later ones as large as stores allow.
pub async fn list_paged<S: ObjectStore + ?Sized>(
    store: &S,
    prefix: &str,
    dirs: bool,
    first: u16,
) -> Result<DirListing> {
    let mut out = DirListing::default();
    let mut token = None;
    let mut max = first;
    loop {
        let page = store.list_page(prefix, dirs, max, token).await?;
        out.objects.extend(page.listing.objects);
        out.dirs.extend(page.listing.dirs);
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(out),
        }
        max = MAX_PAGE;
    }
}

/// Every object under `prefix`, as [`ObjectStore::list`] returns them (in key order, sub-folders
/// included), but found one level at a time with `/` as delimiter, each sub-folder listed in
/// turn, pages of `first` entries first. For small folders with few or no sub-folders: s3s-fs
/// answers a listing without delimiter by walking every file of the bucket whatever the prefix,
/// and one with a delimiter by walking only the folders on the prefix's path and below it (issue
/// 14: each of 100 base-backup folders cost it a walk of a million WAL objects). Other stores
/// answer either in one request when the folder has no sub-folder.
pub async fn list_tree<S: ObjectStore + ?Sized>(
    store: &S,
    prefix: &str,
    first: u16,
) -> Result<Vec<ObjectMeta>> {
    let mut objects = Vec::new();
    let mut folders = vec![prefix.to_string()];
    while let Some(folder) = folders.pop() {
        let level = list_paged(store, &folder, true, first).await?;
        objects.extend(level.objects);
        folders.extend(level.dirs);
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

/// The most entries ListObjectsV2 returns in one page (S3, R2 and Garage alike).
pub const MAX_PAGE: u16 = 1000;

/// The object, or `None` when it is gone: for objects a listing showed a moment ago, which a
/// concurrent deletion (Barman, Velero, another openova) may have removed since.
pub async fn get_if_exists(store: &dyn ObjectStore, key: &str) -> Result<Option<Bytes>> {
    match store.get(key).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The last component of a folder key: `srv/base/20261125T020000/` -> `20261125T020000`.
#[must_use]
pub fn folder_name(dir: &str) -> String {
    dir.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Opens the store a URL names: `s3://bucket/prefix` or `file:///path`, its requests logged
/// (see [`Traced`]).
pub async fn open(url: &StorageUrl, conn: &Connection) -> Result<Arc<dyn ObjectStore>> {
    open_with(url, conn, Timeouts::default()).await
}

/// [`open`] with other default time bounds: `wal-get` uses [`Timeouts::for_wal_get`], so
/// PostgreSQL hears back quickly. A policy's `storage.timeouts` (in `conn`) and then the
/// environment (`OPENOVA_S3_*`, see [`Limits::from_env`]) override them.
pub async fn open_with(
    url: &StorageUrl,
    conn: &Connection,
    timeouts: Timeouts,
) -> Result<Arc<dyn ObjectStore>> {
    Ok(match url {
        StorageUrl::File { .. } => Arc::new(Traced::new(FsStore::new(url.clone()))),
        StorageUrl::S3 { .. } => {
            let mut opts = S3Options::from_connection(conn);
            opts.timeouts = timeouts.with(&conn.limits).with(&Limits::from_env()?);
            Arc::new(Traced::new(S3Store::connect(url.clone(), opts).await?))
        }
    })
}
