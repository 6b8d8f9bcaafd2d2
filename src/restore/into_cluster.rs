//! A Velero backup restored into a cluster through Velero (a `Restore`), the way Velero's disaster
//! procedure does it: the location ReadOnly first (so nothing deletes or writes the backups restored
//! from), the backup known to the cluster (Velero syncs it from the location), the Restore followed to
//! its end, and its warnings and errors read from the results file Velero writes into the store.

use crate::cluster::velero::{RestoreEnd, Velero};
use crate::report::Progress;
use crate::store::ObjectStore;
use serde::Serialize;
use std::io::Read;
use std::time::{Duration, Instant};

/// How long to wait for Velero to sync a backup from its location into the cluster (it syncs about
/// once a minute).
const SYNC_BOUND: Duration = Duration::from_secs(150);

/// What the restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub backup: String,
    pub location: String,
    #[serde(flatten)]
    pub end: RestoreEnd,
    /// Velero's warnings and errors, one line each (`error: namespace shop: ...`), from the results
    /// file in the store.
    pub details: Vec<String>,
}

impl Restored {
    #[must_use]
    pub fn completed(&self) -> bool {
        self.end.phase == "Completed"
    }
}

/// What to restore and how.
pub struct Request<'a> {
    pub backup: &'a str,
    /// The backup's BackupStorageLocation (its `spec.storageLocation`).
    pub location: &'a str,
    pub mapping: &'a [(String, String)],
    pub namespaces: &'a [String],
    pub allow_writable: bool,
    pub bound: Duration,
}

pub async fn velero(
    v: &Velero,
    store: &dyn ObjectStore,
    r: &Request<'_>,
    progress: &dyn Progress,
) -> anyhow::Result<Restored> {
    let name = start(v, r, progress).await?;
    finish(v, store, r, &name, progress).await
}

/// Checks the location and that the cluster knows the backup, then creates the Restore; returns its name.
pub async fn start(v: &Velero, r: &Request<'_>, progress: &dyn Progress) -> anyhow::Result<String> {
    let location = v.location(r.location).await?;
    if location.access_mode != "ReadOnly" && !r.allow_writable {
        anyhow::bail!(
            "BackupStorageLocation {} is {}: restore with it ReadOnly, as Velero's disaster procedure does, so that \
             no backup is written into or deleted from the location restored from (openova render --restore-mode, \
             then openova apply); or give --allow-writable-location",
            r.location,
            location.access_mode
        );
    }
    let started = Instant::now();
    while !v.knows_backup(r.backup).await? {
        if started.elapsed() > SYNC_BOUND {
            anyhow::bail!(
                "the cluster does not know backup {} after {}s: Velero syncs the backups of location {} into the \
                 cluster (its phase is {:?}{}); check `kubectl -n velero get backupstoragelocation {}`",
                r.backup,
                SYNC_BOUND.as_secs(),
                r.location,
                location.phase,
                if location.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", location.message)
                },
                r.location
            );
        }
        progress.message(&format!(
            "waiting for Velero to sync backup {} from location {} ({:.0}s)",
            r.backup,
            r.location,
            started.elapsed().as_secs_f64()
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(v.restore(r.backup, r.mapping, r.namespaces).await?)
}

/// Follows Restore `name` to its end and reads Velero's results for it from the store.
pub async fn finish(
    v: &Velero,
    store: &dyn ObjectStore,
    r: &Request<'_>,
    name: &str,
    progress: &dyn Progress,
) -> anyhow::Result<Restored> {
    let end = v.wait_restore(name, r.bound, progress).await?;
    let details = results(store, name).await;
    Ok(Restored {
        backup: r.backup.to_string(),
        location: r.location.to_string(),
        end,
        details,
    })
}

/// Velero's results file of restore `name` as lines; a line saying why when it cannot be read.
async fn results(store: &dyn ObjectStore, name: &str) -> Vec<String> {
    let key = format!("restores/{name}/restore-{name}-results.gz");
    let body = match store.get(&key).await {
        Ok(b) => b,
        Err(e) => return vec![format!("(no results file {key}: {e})")],
    };
    let mut text = String::new();
    if let Err(e) = flate2::read::GzDecoder::new(body.as_ref()).read_to_string(&mut text) {
        return vec![format!("(results file {key} unreadable: {e})")];
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => result_lines(&v),
        Err(e) => vec![format!("(results file {key} is not JSON: {e})")],
    }
}

/// `{"warnings": {"velero": [..], "cluster": [..], "namespaces": {"ns": [..]}}, "errors": {..}}` as
/// `warning: velero: ...`, `error: namespace shop: ...`.
fn result_lines(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, field) in [("error", "errors"), ("warning", "warnings")] {
        let r = &v[field];
        for scope in ["velero", "cluster"] {
            for m in r[scope].as_array().into_iter().flatten() {
                out.push(format!(
                    "{kind}: {scope}: {}",
                    m.as_str().unwrap_or_default()
                ));
            }
        }
        if let Some(ns) = r["namespaces"].as_object() {
            for (n, msgs) in ns {
                for m in msgs.as_array().into_iter().flatten() {
                    out.push(format!(
                        "{kind}: namespace {n}: {}",
                        m.as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_become_one_line_each_errors_first() {
        let v = serde_json::json!({
            "warnings": { "namespaces": { "shop": ["could not restore, ConfigMap already exists"] } },
            "errors": { "velero": ["error restoring x"] },
        });
        assert_eq!(
            super::result_lines(&v),
            vec![
                "error: velero: error restoring x",
                "warning: namespace shop: could not restore, ConfigMap already exists"
            ]
        );
    }
}
