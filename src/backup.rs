//! `openova backup`: a backup now, through the cluster, for each policy — a Velero `Backup` from the
//! policy's Schedule template, a CNPG `Backup` (Barman Cloud plugin) of the policy's Cluster — and,
//! when waited for, followed to its end and then looked for in the object store. A backup the API says
//! completed but the store does not hold whole is a failure: what counts is what can be restored.

use crate::cluster::{cnpg, velero::Velero};
use crate::policy::{PostgresPolicy, VeleroPolicy};
use crate::report::Progress;
use crate::store;
use crate::velero as velero_store;
use kube::Client;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One policy's backup.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub policy: String,
    pub kind: &'static str,
    /// `velero/nightly-20261203020000`, `databases/platform-db-20261203020000`.
    pub object: String,
    /// The phase the API reported at the end (`None` when not waited for).
    pub phase: Option<String>,
    /// The backup's id in the store (Velero: its name; Barman: the backup id).
    pub backup_id: Option<String>,
    /// Whether the store holds it whole (`None` when not waited for).
    pub landed: Option<bool>,
    /// What went wrong: the operator's or Velero's own words, or what the store lacks.
    pub problems: Vec<String>,
    pub seconds: f64,
}

impl Outcome {
    /// Created and not waited for, or waited for and in the store whole.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.landed != Some(false)
    }
}

/// A Velero backup of `p` from its Schedule (named after the policy); with `wait`, followed and
/// confirmed in the policy's storage.
pub async fn velero(
    v: &Velero,
    p: &VeleroPolicy,
    wait: Option<Duration>,
    concurrency: usize,
    progress: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let location = v.location(&p.name).await?;
    if location.access_mode == "ReadOnly" {
        anyhow::bail!(
            "BackupStorageLocation {} is ReadOnly (restore mode): Velero writes no backup there; render and apply without --restore-mode once the restore is over",
            p.name
        );
    }
    let name = v.backup_from_schedule(&p.name).await?;
    let mut out = Outcome {
        policy: p.name.clone(),
        kind: "VeleroPolicy",
        object: format!("{}/{name}", crate::velero::NAMESPACE),
        phase: None,
        backup_id: Some(name.clone()),
        landed: None,
        problems: vec![],
        seconds: 0.0,
    };
    if let Some(bound) = wait {
        let end = v.wait_backup(&name, bound, progress).await?;
        out.phase = Some(end.phase.clone());
        out.problems.extend(end.messages.iter().cloned());
        if end.completed() {
            progress.message(&format!(
                "Backup {name}: Completed; looking for it in the store"
            ));
            let s = &p.storage;
            let store = store::open(&s.url, &s.connection()).await?;
            let all = velero_store::load(store.as_ref(), concurrency).await?;
            let found = all.iter().find(|b| b.name == name);
            let whole = found.is_some_and(|b| b.is_completed() && b.missing.is_empty());
            out.landed = Some(whole);
            match found {
                None => out.problems.push(format!(
                    "Velero says Completed, but {} holds no backups/{name}/",
                    s.url
                )),
                Some(b) if !b.missing.is_empty() => out.problems.push(format!(
                    "Velero says Completed, but {} lacks {}",
                    s.url,
                    b.missing.join(", ")
                )),
                Some(b) if !b.is_completed() => out.problems.push(format!(
                    "Velero says Completed, but the store's velero-backup.json says {}",
                    b.phase.as_deref().unwrap_or("nothing")
                )),
                Some(_) => {}
            }
        } else {
            out.landed = Some(false);
            if out.problems.is_empty() {
                out.problems.push(format!(
                    "Velero ended the backup {} ({} errors, {} warnings; velero backup logs {name})",
                    end.phase, end.errors, end.warnings
                ));
            }
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// A CNPG backup of `p`'s Cluster through the Barman Cloud plugin; with `wait`, followed and confirmed
/// in the policy's storage (its `backup.info` says DONE).
pub async fn postgres(
    client: &Client,
    p: &PostgresPolicy,
    wait: Option<Duration>,
    concurrency: usize,
    progress: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let ns = &p.cluster.namespace;
    let name = cnpg::backup(client, ns, &p.cluster.name).await?;
    let mut out = Outcome {
        policy: p.name.clone(),
        kind: "PostgresPolicy",
        object: format!("{ns}/{name}"),
        phase: None,
        backup_id: None,
        landed: None,
        problems: vec![],
        seconds: 0.0,
    };
    if let Some(bound) = wait {
        let end = cnpg::wait_backup(client, ns, &name, bound, progress).await?;
        out.phase = Some(end.phase.clone());
        if !end.error.is_empty() {
            out.problems.push(end.error.clone());
        }
        if end.completed() {
            out.backup_id = Some(end.backup_id.clone());
            progress.message(&format!(
                "Backup {ns}/{name}: completed as {}; looking for it in the store",
                end.backup_id
            ));
            let s = &p.storage;
            let store = store::open(&s.url, &s.connection()).await?;
            // Only `base/`: the WAL listing (100,000s of segments) says nothing about this backup.
            let backups =
                crate::barman::load_backups(store.as_ref(), &p.server_name, concurrency).await?;
            let found = backups.iter().find(|b| b.id == end.backup_id);
            let done = found.is_some_and(|b| b.is_done() && b.has_data);
            out.landed = Some(done);
            if !done {
                out.problems.push(match found {
                    None => format!(
                        "the operator says completed, but {} holds no {}/base/{}/",
                        s.url, p.server_name, end.backup_id
                    ),
                    Some(_) => format!(
                        "the operator says completed, but {}/base/{} in {} is not DONE with its data",
                        p.server_name, end.backup_id, s.url
                    ),
                });
            }
        } else {
            out.landed = Some(false);
            if out.problems.is_empty() {
                out.problems
                    .push("the operator marked the backup failed without saying why".into());
            }
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
