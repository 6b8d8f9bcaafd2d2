//! `openova catalog`: everything a storage location holds, from the object store alone — Velero
//! backups, Barman servers with their base backups, WAL inventory and recoverable window.
//! This module owns loading it ([`load`]) and its JSON shape (`openova.catalog/v1`, see README;
//! in `view`). Reading Barman's and Velero's objects is `barman`'s and `velero`'s; judging what
//! was found against a policy is `status`'s.

mod view;

pub use view::{BackupView, ServerView, StorageView, TimelineView, WalView};

use crate::barman::{self, ServerCatalog, Window};
use crate::store::{self, ObjectStore};
use crate::velero::{self, VeleroBackup};
use crate::wal::horizon::{self, TimelineTransaction};
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::BTreeMap;
use std::time::Instant;

pub const SCHEMA: &str = "openova.catalog/v1";

/// Everything found under one storage URL.
#[derive(Debug, Clone)]
pub struct StorageCatalog {
    pub url: String,
    pub velero: Option<Vec<VeleroBackup>>,
    pub barman: Vec<(ServerCatalog, Window)>,
    /// The last transaction of each timeline, per Barman server, once
    /// [`StorageCatalog::read_last_transactions`] has read them (empty before).
    pub last_transactions: BTreeMap<String, Vec<TimelineTransaction>>,
}

impl StorageCatalog {
    /// Reads the last commit or abort of each timeline of every Barman server from its newest
    /// archived segments (see [`horizon`]): a few GETs per timeline, nothing written. A segment
    /// that cannot be read is reported in its timeline's row.
    pub async fn read_last_transactions(&mut self, store: &dyn ObjectStore) {
        let read: Vec<_> =
            stream::iter(&self.barman)
                .map(|(cat, _)| async move {
                    (cat.server.clone(), horizon::per_timeline(store, cat).await)
                })
                .buffered(2)
                .collect()
                .await;
        self.last_transactions.extend(read);
    }

    /// What [`Self::read_last_transactions`] found for `server` (empty when not read).
    #[must_use]
    pub fn last_transactions_of(&self, server: &str) -> &[TimelineTransaction] {
        self.last_transactions
            .get(server)
            .map_or(&[], Vec::as_slice)
    }
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
/// (by default every folder holding `base/` or `wals/`). In a `catalog.load` span (the store's
/// requests inside it), ended by an event saying how long it took and what was found.
#[tracing::instrument(name = "catalog.load", skip_all, fields(url = %store.url()))]
pub async fn load(
    store: &dyn ObjectStore,
    scope: &Scope,
    concurrency: usize,
) -> store::Result<StorageCatalog> {
    let started = Instant::now();
    let loaded = read(store, scope, concurrency).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &loaded {
        Ok(c) => tracing::info!(
            elapsed_ms,
            velero_backups = c.velero.as_ref().map_or(0, Vec::len),
            barman_servers = c.barman.len(),
            "catalog loaded"
        ),
        Err(e) => tracing::info!(elapsed_ms, error = %e, "catalog not loaded"),
    }
    loaded
}

async fn read(
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
        None => barman::discover_servers(store, &top.dirs).await?,
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
        last_transactions: BTreeMap::new(),
    })
}
