//! [`Traced`]: a wrapper around any [`ObjectStore`] that runs every request in a `tracing` span
//! naming what was asked (`op`, and the `key`, `prefix` or number of `keys`) and ends it with a
//! debug event saying how long it took (`elapsed_ms`) and what came back (`bytes`, `objects`), or
//! the error. So `OPENOVA_LOG=debug` shows what openova asked of the store, for either backend,
//! without a line of logging in their code. Only keys and the storage URL are logged: credentials
//! never reach a store call.

use super::{Body, DirListing, ListPage, ObjectMeta, ObjectStore, Result, StorageUrl};
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Instant;
use tracing::{Instrument, Span, debug_span};

/// Logs the requests of the store it wraps.
pub struct Traced<S> {
    inner: S,
}

impl<S: ObjectStore> Traced<S> {
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// What a request returned, for its event.
enum Size {
    Bytes(u64),
    Objects(usize),
    Created(bool),
    Nothing,
}

/// Runs `request` in `span`, then records its duration and `size` of what it returned.
async fn timed<T>(
    span: Span,
    request: impl Future<Output = Result<T>>,
    size: impl FnOnce(&T) -> Size,
) -> Result<T> {
    let started = Instant::now();
    let out = request.instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _in = span.enter();
    match out.as_ref().map(size) {
        Ok(Size::Bytes(bytes)) => tracing::debug!(elapsed_ms, bytes, "store request done"),
        Ok(Size::Objects(objects)) => tracing::debug!(elapsed_ms, objects, "store request done"),
        Ok(Size::Created(created)) => tracing::debug!(elapsed_ms, created, "store request done"),
        Ok(Size::Nothing) => tracing::debug!(elapsed_ms, "store request done"),
        Err(e) => tracing::debug!(elapsed_ms, error = %e, "store request failed"),
    }
    out
}

fn listed(l: &DirListing) -> Size {
    Size::Objects(l.objects.len() + l.dirs.len())
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Traced<S> {
    fn url(&self) -> &StorageUrl {
        self.inner.url()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let span = debug_span!("store", op = "list", prefix);
        timed(span, self.inner.list(prefix), |v| Size::Objects(v.len())).await
    }

    async fn list_dir(&self, prefix: &str) -> Result<DirListing> {
        let span = debug_span!("store", op = "list_dir", prefix);
        timed(span, self.inner.list_dir(prefix), listed).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        dirs: bool,
        max: u16,
        token: Option<String>,
    ) -> Result<ListPage> {
        let span = debug_span!("store", op = "list_page", prefix, dirs, max);
        let page = self.inner.list_page(prefix, dirs, max, token);
        timed(span, page, |p| listed(&p.listing)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let span = debug_span!("store", op = "get", key);
        timed(span, self.inner.get(key), |b| Size::Bytes(b.len() as u64)).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Body> {
        let span = debug_span!("store", op = "get_range", key, offset, len);
        let got = self.inner.get_range(key, offset, len);
        timed(span, got, |b| Size::Bytes(b.len() as u64)).await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        let span = debug_span!("store", op = "put", key, bytes = body.len());
        timed(span, self.inner.put(key, body), |()| Size::Nothing).await
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let span = debug_span!("store", op = "put_if_absent", key, bytes = body.len());
        let put = self.inner.put_if_absent(key, body);
        timed(span, put, |created| Size::Created(*created)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let span = debug_span!("store", op = "delete_many", keys = keys.len());
        timed(span, self.inner.delete_many(keys), |()| Size::Nothing).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let span = debug_span!("store", op = "head", key);
        let found = |m: &Option<ObjectMeta>| Size::Objects(usize::from(m.is_some()));
        timed(span, self.inner.head(key), found).await
    }
}
