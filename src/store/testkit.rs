//! Test-only: a store that records what is asked of it.

use super::{Body, DirListing, FsStore, ListPage, ObjectMeta, ObjectStore, Result, StorageUrl};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An [`FsStore`] that records every listing and delete call (in order) and the peak number of
/// listings running at once (each listing takes at least 20 ms, so overlap shows). Unlike the
/// folder it wraps, it answers `list_page` in pages of `max` entries, as an S3 store does, and
/// records each page as "dir PREFIX max N" (or "list ...") with "after K" when it continues.
pub struct Recording {
    pub inner: FsStore,
    pub calls: Mutex<Vec<String>>,
    /// Each `delete_many` call's keys, in the order the calls started.
    pub deletes: Mutex<Vec<Vec<String>>>,
    pub running: AtomicUsize,
    pub peak: AtomicUsize,
}

impl Recording {
    pub fn new(inner: FsStore) -> Self {
        Self {
            inner,
            calls: Mutex::default(),
            deletes: Mutex::default(),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    async fn track<T>(&self, what: String, f: impl Future<Output = T>) -> T {
        self.calls.lock().unwrap().push(what);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let out = f.await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

#[async_trait]
impl ObjectStore for Recording {
    fn url(&self) -> &StorageUrl {
        self.inner.url()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.track(format!("list {prefix}"), self.inner.list(prefix))
            .await
    }
    async fn list_dir(&self, prefix: &str) -> Result<DirListing> {
        self.track(format!("dir {prefix}"), self.inner.list_dir(prefix))
            .await
    }
    async fn list_page(
        &self,
        prefix: &str,
        dirs: bool,
        max: u16,
        token: Option<String>,
    ) -> Result<ListPage> {
        let skip: usize = token.as_deref().map_or(0, |t| t.parse().unwrap());
        let what = format!(
            "{} {prefix} max {max}{}",
            if dirs { "dir" } else { "list" },
            token.map(|t| format!(" after {t}")).unwrap_or_default()
        );
        let whole = self
            .track(what, super::list_whole(&self.inner, prefix, dirs))
            .await?;
        // Objects and folders in one key order, as S3 pages them.
        let mut entries: Vec<(String, Option<ObjectMeta>)> = whole
            .objects
            .into_iter()
            .map(|o| (o.key.clone(), Some(o)))
            .chain(whole.dirs.into_iter().map(|d| (d, None)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let total = entries.len();
        let end = (skip + usize::from(max)).min(total);
        let mut page = ListPage::default();
        for (key, meta) in entries.drain(skip.min(end)..end) {
            match meta {
                Some(o) => page.listing.objects.push(o),
                None => page.listing.dirs.push(key),
            }
        }
        page.next = (end < total).then(|| end.to_string());
        Ok(page)
    }
    async fn get(&self, key: &str) -> Result<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body> {
        self.inner.get_range(key, offset, len).await
    }
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.inner.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        self.inner.put_if_absent(key, body).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.deletes.lock().unwrap().push(keys.to_vec());
        self.inner.delete_many(keys).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
}

/// A stand-in for a store that ignores `If-None-Match` (Garage 2.5 did; no test server here
/// does): an [`FsStore`] whose `put_if_absent` overwrites and reports success. Plays that one
/// behaviour; everything else is the folder's.
pub struct IgnoresConditions(pub FsStore);

#[async_trait]
impl ObjectStore for IgnoresConditions {
    fn url(&self) -> &StorageUrl {
        self.0.url()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn list_dir(&self, prefix: &str) -> Result<DirListing> {
        self.0.list_dir(prefix).await
    }
    async fn get(&self, key: &str) -> Result<Bytes> {
        self.0.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body> {
        self.0.get_range(key, offset, len).await
    }
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.0.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        self.0.put(key, body).await.map(|()| true)
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.0.delete_many(keys).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.0.head(key).await
    }
}
