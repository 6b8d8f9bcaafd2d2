//! Running retention for one policy: under the storage's lease (with `apply`), read the catalog, plan,
//! check the plan against the invariants, and delete what it lists. The CLI (`openova retention`) and
//! the CronJob entry point (`openova cron`) both run it and only print its [`Report`].

use super::lease::{self, Lease};
use super::{Plan, What, execute::Summary, invariants};
use crate::catalog::{self, Scope};
use crate::policy::Policy;
use crate::report;
use crate::store::{self, ObjectStore, StorageUrl};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Delete what the plan lists; without it the plan is only returned.
    pub apply: bool,
    /// Apply even where the store ignores conditional writes (the caller's word that nothing else
    /// deletes there).
    pub single_writer: bool,
    /// Objects without a descriptor are orphans only once older than this.
    pub grace: TimeDelta,
    /// Requests at once (listings, delete batches).
    pub concurrency: usize,
}

/// A cluster that knows Velero backups: those it knows are deleted through it (a DeleteBackupRequest,
/// so Velero also removes what it keeps beside the objects), the rest through the store.
#[async_trait::async_trait]
pub trait VeleroCluster: Send + Sync {
    /// The names of the Backups the cluster knows.
    async fn known(&self) -> anyhow::Result<BTreeSet<String>>;
    /// Has Velero delete backup `name`, and returns once it says it has.
    async fn delete(&self, name: &str, progress: &dyn report::Progress) -> anyhow::Result<()>;
}

/// One policy's outcome: its plan, whether it was refused (and why), what was deleted.
#[derive(Serialize, Default)]
pub struct Report {
    pub policy: String,
    pub plan: Option<Plan>,
    pub refused: Option<String>,
    pub applied: Option<Summary>,
    /// Reading the catalog and planning (checks included), in seconds.
    pub plan_seconds: f64,
}

/// Plans retention for one policy and, with `opts.apply`, carries it out under the storage's lease.
/// A refusal (the lease is held, a check failed) is in the report, not an error; an error is a store
/// that could not be read or written.
pub async fn one(
    p: &Policy,
    opts: &Options,
    now: DateTime<Utc>,
    cluster: Option<&dyn VeleroCluster>,
) -> anyhow::Result<Report> {
    let storage = p.storage();
    let url = storage.url.clone();
    let store = store::open(&url, &storage.connection()).await?;
    let mut r = Report {
        policy: p.name().to_string(),
        plan: None,
        refused: None,
        applied: None,
        plan_seconds: 0.0,
    };
    // A Velero location at the bucket root owns the whole bucket: Velero marks it unavailable
    // when anything else appears at the top ("invalid top-level directories"), so no lease can
    // live there.
    let velero_at_root = matches!(p, Policy::VeleroPolicy(_))
        && matches!(&url, StorageUrl::S3 { prefix, .. } if prefix.is_empty());
    if opts.apply && velero_at_root && !opts.single_writer {
        r.refused = Some(format!(
            "{url} is a Velero location at the bucket root, where Velero tolerates no other object, so              openova cannot keep its retention lease there; give the location a prefix, or run with              --single-writer if nothing else deletes in it"
        ));
        return Ok(r);
    }
    // Under the lease from before the catalog is read, so two runs never plan on the same state.
    let lease = if opts.apply && !velero_at_root {
        let (up, name) = url.parent();
        let lease_store = store::open(&up, &storage.connection()).await?;
        let key = format!(
            "openova/lease/{}",
            if name.is_empty() { "root" } else { &name }
        );
        match Lease::acquire(
            lease_store,
            &key,
            &url.to_string(),
            "retention",
            opts.single_writer,
        )
        .await
        {
            Ok(l) => Some(l),
            Err(lease::Error::Store(e)) => return Err(e.into()),
            Err(e) => {
                r.refused = Some(e.to_string());
                return Ok(r);
            }
        }
    } else {
        None
    };
    let outcome = planned_and_applied(p, opts, now, store, r, cluster).await;
    if let Some(l) = lease {
        l.release().await?;
    }
    outcome
}

async fn planned_and_applied(
    p: &Policy,
    opts: &Options,
    now: DateTime<Utc>,
    store: Arc<dyn ObjectStore>,
    mut r: Report,
    cluster: Option<&dyn VeleroCluster>,
) -> anyhow::Result<Report> {
    let url = store.url().clone();
    let scope = match p {
        Policy::VeleroPolicy(_) => Scope {
            velero: true,
            servers: Some(vec![]),
        },
        Policy::PostgresPolicy(pg) => Scope {
            velero: false,
            servers: Some(vec![pg.server_name.clone()]),
        },
    };
    let started = std::time::Instant::now();
    let progress = report::progress(&format!("reading {url}"));
    let concurrency = opts.concurrency;
    let cat = catalog::load(store.as_ref(), &scope, concurrency).await;
    progress.finish();
    let cat = cat?;
    let planned = match p {
        Policy::PostgresPolicy(pg) => match cat.barman.first() {
            Some((server, _)) => super::postgres::plan(server, pg, &cat.url, now, opts.grace)
                .map_err(|e| e.to_string())
                .and_then(|plan| {
                    invariants::check_postgres(server, &plan, pg, now)
                        .map(|()| plan)
                        .map_err(|v| format!("refused: {v}"))
                }),
            None => Err(format!(
                "no Barman server folder '{}' in {}",
                pg.server_name, cat.url
            )),
        },
        Policy::VeleroPolicy(v) => {
            let all = cat.velero.as_deref().unwrap_or_default();
            let plan = super::velero::plan(all, v, &cat.url, now, opts.grace);
            invariants::check_velero(all, &plan, v)
                .map(|()| plan)
                .map_err(|e| format!("refused: {e}"))
        }
    };
    r.plan_seconds = started.elapsed().as_secs_f64();
    match planned {
        Ok(plan) => {
            if opts.apply {
                r.applied = Some(apply(store.as_ref(), &plan, concurrency, cluster).await?);
            }
            r.plan = Some(plan);
        }
        Err(why) => r.refused = Some(why),
    }
    Ok(r)
}

async fn apply(
    store: &dyn ObjectStore,
    plan: &Plan,
    concurrency: usize,
    cluster: Option<&dyn VeleroCluster>,
) -> anyhow::Result<Summary> {
    let started = std::time::Instant::now();
    let progress = report::progress(&format!("{}: deleting", plan.policy));
    let velero_deletes = plan.deletions.iter().any(|d| d.what == What::VeleroBackup);
    // Cloned only for a Velero plan with a cluster: a WAL plan may name a million keys.
    let (via_velero, rest) = match cluster {
        Some(c) if velero_deletes => {
            let (names, rest) = through_velero(store, plan, c, progress.as_ref()).await?;
            (names, std::borrow::Cow::Owned(rest))
        }
        _ => (Vec::new(), std::borrow::Cow::Borrowed(plan)),
    };
    let done = super::execute::execute(store, &rest, concurrency, progress.as_ref()).await;
    progress.finish();
    let done = done?;
    let by_velero = plan
        .deletions
        .iter()
        .filter(|d| via_velero.contains(&d.name));
    let (objects, bytes) = by_velero.fold((0, 0), |(o, b), d| (o + d.keys.len(), b + d.bytes));
    Ok(Summary {
        seconds: started.elapsed().as_secs_f64(),
        backups: done.backups + via_velero.len(),
        objects: done.objects + objects,
        bytes: done.bytes + bytes,
        via_velero,
        ..done
    })
}

/// Deletes the plan's Velero backups the cluster knows through Velero, one by one, and checks in the
/// store that each is gone; returns their names and the plan of what is left for the store.
async fn through_velero(
    store: &dyn ObjectStore,
    plan: &Plan,
    cluster: &dyn VeleroCluster,
    progress: &dyn report::Progress,
) -> anyhow::Result<(Vec<String>, Plan)> {
    let mut rest = plan.clone();
    let known = cluster.known().await?;
    let (mine, others): (Vec<_>, Vec<_>) = plan
        .deletions
        .iter()
        .cloned()
        .partition(|d| d.what == What::VeleroBackup && known.contains(&d.name));
    rest.deletions = others;
    let mut done = Vec::new();
    for d in mine {
        cluster.delete(&d.name, progress).await?;
        let mut left = 0;
        for k in d.keys.iter() {
            if store.head(&k).await?.is_some() {
                left += 1;
            }
        }
        if left > 0 {
            anyhow::bail!(
                "Velero reported backup {} deleted, but {left} of its {} objects are still in {}; the next run deletes them through the store once the cluster no longer knows the backup",
                d.name,
                d.keys.len(),
                store.url()
            );
        }
        done.push(d.name);
    }
    Ok((done, rest))
}
