//! `backups/NAME/velero-backup.json` and its companion objects.

use crate::store::{self, ObjectMeta, ObjectStore};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Phases after which Velero never touches a backup again.
pub const TERMINAL_PHASES: [&str; 4] =
    ["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

/// The label Velero puts on backups created by a Schedule.
pub const SCHEDULE_LABEL: &str = "velero.io/schedule-name";

#[derive(Debug, Clone, Serialize)]
pub struct VeleroBackup {
    pub name: String,
    pub phase: Option<String>,
    pub schedule: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub completion: Option<DateTime<Utc>>,
    pub expiration: Option<DateTime<Utc>>,
    pub ttl: Option<String>,
    pub storage_location: Option<String>,
    pub included_namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    pub errors: u64,
    pub warnings: u64,
    pub items_backed_up: Option<u64>,
    pub total_items: Option<u64>,
    pub failure_reason: Option<String>,
    /// Companion objects that should be there and are not (`NAME.tar.gz`, ...).
    pub missing: Vec<String>,
    /// Why `velero-backup.json` could not be read; the other fields are then empty.
    pub unreadable: Option<String>,
    pub size: u64,
    /// Newest last-modified time of the backup's objects.
    pub last_write: Option<DateTime<Utc>>,
    /// Every object of the backup's folder.
    #[serde(skip)]
    pub objects: Vec<ObjectMeta>,
}

impl VeleroBackup {
    #[must_use]
    pub fn is_completed(&self) -> bool {
        self.phase.as_deref() == Some("Completed") && self.missing.is_empty()
    }

    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(
            self.phase.as_deref(),
            Some("Failed" | "PartiallyFailed" | "FailedValidation")
        )
    }

    /// Non-terminal in the bucket means Velero has not finished it (or died while it ran).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.phase
            .as_deref()
            .is_some_and(|p| TERMINAL_PHASES.contains(&p))
    }
}

// The parts of the Backup object we read. Field names follow velero.io/v1 Backup.
#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize, Default)]
struct Meta {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    ttl: Option<String>,
    storage_location: Option<String>,
    #[serde(default)]
    included_namespaces: Vec<String>,
    #[serde(default)]
    excluded_namespaces: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    phase: Option<String>,
    start_timestamp: Option<DateTime<Utc>>,
    completion_timestamp: Option<DateTime<Utc>>,
    expiration: Option<DateTime<Utc>>,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    warnings: u64,
    failure_reason: Option<String>,
    progress: Option<Progress>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Progress {
    total_items: Option<u64>,
    items_backed_up: Option<u64>,
}

/// Parses `velero-backup.json`; the error says what is wrong with it.
pub fn parse(name: &str, json: &[u8]) -> Result<VeleroBackup, String> {
    let doc: Doc =
        serde_json::from_slice(json).map_err(|e| format!("not a Velero Backup object: {e}"))?;
    if doc.kind.as_deref().is_some_and(|k| k != "Backup") {
        return Err(format!(
            "kind is {:?}, expected Backup",
            doc.kind.unwrap_or_default()
        ));
    }
    if doc.metadata.name.as_deref().is_some_and(|n| n != name) {
        return Err(format!(
            "metadata.name is {:?} but the folder is {name}",
            doc.metadata.name.unwrap_or_default()
        ));
    }
    let p = doc.status_progress();
    let s = doc.status;
    Ok(VeleroBackup {
        name: name.to_string(),
        phase: s.phase,
        schedule: doc.metadata.labels.get(SCHEDULE_LABEL).cloned(),
        start: s.start_timestamp,
        completion: s.completion_timestamp,
        expiration: s.expiration,
        ttl: doc.spec.ttl,
        storage_location: doc.spec.storage_location,
        included_namespaces: doc.spec.included_namespaces,
        excluded_namespaces: doc.spec.excluded_namespaces,
        errors: s.errors,
        warnings: s.warnings,
        items_backed_up: p.items_backed_up,
        total_items: p.total_items,
        failure_reason: s.failure_reason,
        missing: Vec::new(),
        unreadable: None,
        size: 0,
        last_write: None,
        objects: Vec::new(),
    })
}

impl Doc {
    fn status_progress(&self) -> Progress {
        let p = self.status.progress.as_ref();
        Progress {
            total_items: p.and_then(|p| p.total_items),
            items_backed_up: p.and_then(|p| p.items_backed_up),
        }
    }
}

/// Every backup under `backups/`, each folder read in parallel. A malformed
/// `velero-backup.json` marks that backup unreadable; the others are still listed.
pub async fn load(store: &dyn ObjectStore, concurrency: usize) -> store::Result<Vec<VeleroBackup>> {
    let dirs = store.list_dir("backups/").await?.dirs;
    let mut out: Vec<VeleroBackup> = stream::iter(dirs)
        .map(|dir| load_one(store, dir))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    out.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
    Ok(out)
}

async fn load_one(store: &dyn ObjectStore, dir: String) -> store::Result<VeleroBackup> {
    let name = store::folder_name(&dir);
    let objects = store.list(&dir).await?;
    let key = format!("{dir}velero-backup.json");
    // Velero uploads the log first and velero-backup.json after it (none at all when the upload
    // failed): a folder without it is a backup being written or abandoned, not a corrupt one.
    let mut b = if objects.iter().any(|o| o.key == key) {
        match store::get_if_exists(store, &key).await? {
            Some(json) => parse(&name, &json),
            None => Ok(blank(&name)), // deleted since the listing
        }
        .unwrap_or_else(|e| unreadable(&name, format!("{key}: {e}")))
    } else {
        blank(&name)
    };
    b.size = objects.iter().map(|o| o.size).sum();
    b.last_write = objects.iter().filter_map(|o| o.last_modified).max();
    b.missing = missing_companions(&b, &dir, &objects);
    b.objects = objects;
    Ok(b)
}

fn blank(name: &str) -> VeleroBackup {
    parse(name, b"{\"metadata\":{}}").unwrap_or_else(|_| unreachable!("minimal document parses"))
}

fn unreadable(name: &str, why: String) -> VeleroBackup {
    let mut b = blank(name);
    b.unreadable = Some(why);
    b
}

/// Velero writes the tarball and resource list only for backups that ran; logs always.
fn missing_companions(b: &VeleroBackup, dir: &str, objects: &[ObjectMeta]) -> Vec<String> {
    // Velero uploads the log best-effort (a missing log does not change the backup's status),
    // so only the metadata, the tarball and the resource list decide whether a backup is whole.
    let ran = matches!(b.phase.as_deref(), Some("Completed" | "PartiallyFailed"));
    let mut wanted = Vec::new();
    if b.phase.is_none() && b.unreadable.is_none() {
        wanted.push("velero-backup.json".to_string());
    }
    if ran {
        wanted.push(format!("{}.tar.gz", b.name));
        wanted.push(format!("{}-resource-list.json.gz", b.name));
    }
    wanted.retain(|w| {
        !objects
            .iter()
            .any(|o| o.key.strip_prefix(dir) == Some(w.as_str()))
    });
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_velero_backup_object() {
        let json = br#"{"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"daily-1",
            "labels":{"velero.io/schedule-name":"daily"}},"spec":{"ttl":"720h0m0s",
            "storageLocation":"default","includedNamespaces":["*"],"newField":1},
            "status":{"phase":"Completed","startTimestamp":"2026-11-24T03:00:00Z",
            "completionTimestamp":"2026-11-24T03:01:10Z","expiration":"2026-12-24T03:00:00Z",
            "warnings":2,"progress":{"totalItems":10,"itemsBackedUp":10},"formatVersion":"1.1.0"}}"#;
        let b = parse("daily-1", json).unwrap();
        assert_eq!(b.phase.as_deref(), Some("Completed"));
        assert_eq!(b.schedule.as_deref(), Some("daily"));
        assert_eq!(b.warnings, 2);
        assert_eq!(b.items_backed_up, Some(10));
        assert_eq!(
            b.expiration.unwrap().to_rfc3339(),
            "2026-12-24T03:00:00+00:00"
        );
    }

    #[test]
    fn rejects_what_is_not_a_backup() {
        assert!(
            parse("x", b"{not json")
                .unwrap_err()
                .starts_with("not a Velero Backup object")
        );
        assert!(
            parse("x", br#"{"kind":"Restore","metadata":{}}"#)
                .unwrap_err()
                .contains("Restore")
        );
        assert!(
            parse("x", br#"{"kind":"Backup","metadata":{"name":"y"}}"#)
                .unwrap_err()
                .contains("folder is x")
        );
    }
}
