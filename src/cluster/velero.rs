//! Velero through its API, the way the `velero` CLI drives it: Backups made from a Schedule's template,
//! followed to their end; backups deleted through a `DeleteBackupRequest` (so Velero also removes what
//! it keeps beside the objects: snapshots, kopia data, restore logs); locations read for their phase
//! and access mode. Every wait polls once a second (no watch, so openova's Role needs no `watch`)
//! and has a bound.

use super::{Error, Result, number, text};
use crate::report::Progress;
use chrono::Utc;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often a wait asks the API server again.
const POLL: Duration = Duration::from_secs(1);

/// The phases after which a Velero Backup does not change any more.
pub const TERMINAL: &[&str] = &["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

/// Velero in one namespace (`velero` on the platform).
#[derive(Clone)]
pub struct Velero {
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for Velero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Velero in namespace {}", self.namespace)
    }
}

/// A Backup's end as Velero recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEnd {
    pub name: String,
    pub phase: String,
    pub errors: u64,
    pub warnings: u64,
    pub items_backed_up: u64,
    /// `status.failureReason` and `status.validationErrors`, as Velero wrote them.
    pub messages: Vec<String>,
}

impl BackupEnd {
    #[must_use]
    pub fn completed(&self) -> bool {
        self.phase == "Completed"
    }
}

/// A BackupStorageLocation's state.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub name: String,
    /// `Available`, `Unavailable`, or empty before Velero first checked it.
    pub phase: String,
    /// `ReadWrite` or `ReadOnly`.
    pub access_mode: String,
    /// Velero's `status.message` (why it is unavailable).
    pub message: String,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

/// `status.failureReason` and `status.validationErrors` of a Backup or Restore, as Velero wrote them.
fn end_messages(v: &Value) -> Vec<String> {
    let reason = text(v, &["status", "failureReason"]);
    let validation = v
        .get("status")
        .and_then(|s| s.get("validationErrors"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string);
    (!reason.is_empty())
        .then_some(reason)
        .into_iter()
        .chain(validation)
        .collect()
}

impl Velero {
    #[must_use]
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
        }
    }

    /// The client it talks through.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes Restore `name` and waits until it is gone (Velero's finalizer first removes its logs and
    /// results from the store); gone already is fine.
    pub async fn delete_restore(&self, name: &str, bound: Duration) -> Result<()> {
        let api = self.api("Restore", "restores");
        let what = self.what("delete", "Restore", name);
        match api.delete(name, &kube::api::DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(Error::from_kube(what, e)),
        }
        let started = Instant::now();
        while api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(what.clone(), e))?
            .is_some()
        {
            if started.elapsed() > bound {
                return Err(Error::TimedOut {
                    what,
                    bound,
                    state: "still there (Velero's finalizer has not run)".into(),
                    hint: "is the Velero server running? (kubectl -n velero logs deploy/velero)"
                        .into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    fn api(&self, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &resource(kind, plural),
        )
    }

    fn what(&self, verb: &str, kind: &str, name: &str) -> String {
        format!("{verb} {kind} {}/{name}", self.namespace)
    }

    /// The names of every Backup the cluster knows.
    pub async fn backups(&self) -> Result<BTreeSet<String>> {
        let list = self
            .api("Backup", "backups")
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::from_kube(format!("list Backups in {}", self.namespace), e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect())
    }

    /// BackupStorageLocation `name`.
    pub async fn location(&self, name: &str) -> Result<Location> {
        let what = self.what("get", "BackupStorageLocation", name);
        let o = self
            .api("BackupStorageLocation", "backupstoragelocations")
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(what.clone(), e))?
            .ok_or_else(|| Error::Missing {
                what: what.clone(),
                hint: "apply what `openova render` wrote for the policy (openova apply)".into(),
            })?;
        Ok(Location {
            name: name.to_string(),
            phase: text(&o.data, &["status", "phase"]),
            access_mode: {
                let m = text(&o.data, &["spec", "accessMode"]);
                if m.is_empty() { "ReadWrite".into() } else { m }
            },
            message: text(&o.data, &["status", "message"]),
        })
    }

    /// Creates a Backup from Schedule `schedule`'s template, named and labelled as Velero names the
    /// backups of a schedule (`velero backup create --from-schedule`), and returns its name.
    pub async fn backup_from_schedule(&self, schedule: &str) -> Result<String> {
        let what = self.what("get", "Schedule", schedule);
        let s = self
            .api("Schedule", "schedules")
            .get_opt(schedule)
            .await
            .map_err(|e| Error::from_kube(what.clone(), e))?
            .ok_or_else(|| Error::Missing {
                what,
                hint: "apply what `openova render` wrote for the policy (openova apply)".into(),
            })?;
        let template = s
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        // Named as Velero names a schedule's backups (`SCHEDULE-YYYYMMDDHHMMSS`); a name taken in the
        // same second waits for the next one.
        let mut tries = 0;
        loop {
            let name = format!("{schedule}-{}", Utc::now().format("%Y%m%d%H%M%S"));
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "velero.io/v1",
                "kind": "Backup",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": { "velero.io/schedule-name": label_value(schedule) },
                },
                "spec": template,
            }))
            .map_err(|e| Error::Request {
                what: self.what("create", "Backup", &name),
                cause: e.to_string(),
            })?;
            match self
                .api("Backup", "backups")
                .create(&PostParams::default(), &obj)
                .await
            {
                Ok(_) => return Ok(name),
                Err(kube::Error::Api(s)) if s.code == 409 && tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                }
                Err(e) => return Err(Error::from_kube(self.what("create", "Backup", &name), e)),
            }
        }
    }

    /// Follows Backup `name` until Velero has finished with it, telling `progress` its phase and
    /// items; gives up after `bound`.
    pub async fn wait_backup(
        &self,
        name: &str,
        bound: Duration,
        progress: &dyn Progress,
    ) -> Result<BackupEnd> {
        let api = self.api("Backup", "backups");
        let what = self.what("follow", "Backup", name);
        let started = Instant::now();
        loop {
            let o = api
                .get_opt(name)
                .await
                .map_err(|e| Error::from_kube(what.clone(), e))?
                .ok_or_else(|| Error::Missing {
                    what: what.clone(),
                    hint: "it was deleted while openova waited for it".into(),
                })?;
            let phase = text(&o.data, &["status", "phase"]);
            let done = number(&o.data, &["status", "progress", "itemsBackedUp"]);
            let total = number(&o.data, &["status", "progress", "totalItems"]);
            if TERMINAL.contains(&phase.as_str()) {
                let messages = end_messages(&o.data);
                return Ok(BackupEnd {
                    name: name.to_string(),
                    phase,
                    errors: number(&o.data, &["status", "errors"]),
                    warnings: number(&o.data, &["status", "warnings"]),
                    items_backed_up: done,
                    messages,
                });
            }
            let shown = if phase.is_empty() { "New" } else { &phase };
            progress.message(&format!(
                "Backup {name}: {shown}, {done}/{total} items, {:.0}s",
                started.elapsed().as_secs_f64()
            ));
            if started.elapsed() > bound {
                return Err(Error::TimedOut {
                    what,
                    bound,
                    state: format!("phase {shown}"),
                    hint: "is the Velero server running? (kubectl -n velero logs deploy/velero)"
                        .into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deletes Backup `name` the way `velero backup delete` does: a `DeleteBackupRequest` labelled
    /// with the backup's name and uid, then waits until Velero has removed the Backup (it deletes the
    /// backup's objects from the store first). Velero's refusal (a ReadOnly location, a backup in
    /// progress) is the error.
    pub async fn delete_backup(
        &self,
        name: &str,
        bound: Duration,
        progress: &dyn Progress,
    ) -> Result<()> {
        let backups = self.api("Backup", "backups");
        let what = self.what("get", "Backup", name);
        let Some(b) = backups
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(what, e))?
        else {
            return Ok(());
        };
        let uid = b.metadata.uid.unwrap_or_default();
        let requests = self.api("DeleteBackupRequest", "deletebackuprequests");
        let request: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "velero.io/v1",
            "kind": "DeleteBackupRequest",
            "metadata": {
                "generateName": format!("{name}-"),
                "namespace": self.namespace,
                "labels": { "velero.io/backup-name": label_value(name), "velero.io/backup-uid": uid },
            },
            "spec": { "backupName": name },
        }))
        .map_err(|e| Error::Request {
            what: self.what("create", "DeleteBackupRequest", name),
            cause: e.to_string(),
        })?;
        let created = requests
            .create(&PostParams::default(), &request)
            .await
            .map_err(|e| {
                Error::from_kube(self.what("create", "DeleteBackupRequest for", name), e)
            })?;
        let request_name = created.metadata.name.unwrap_or_default();
        let what = self.what("follow", "DeleteBackupRequest", &request_name);
        let started = Instant::now();
        loop {
            let gone = backups
                .get_opt(name)
                .await
                .map_err(|e| Error::from_kube(self.what("get", "Backup", name), e))?
                .is_none();
            if gone {
                return Ok(());
            }
            // Velero deletes a request once it succeeded; one it processed with errors stays.
            let r = requests
                .get_opt(&request_name)
                .await
                .map_err(|e| Error::from_kube(what.clone(), e))?;
            let phase = r
                .as_ref()
                .map(|r| text(&r.data, &["status", "phase"]))
                .unwrap_or_default();
            if phase == "Processed" {
                let errors: Vec<String> = r
                    .as_ref()
                    .and_then(|r| r.data.get("status"))
                    .and_then(|s| s.get("errors"))
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                if !errors.is_empty() {
                    return Err(Error::VeleroRefused {
                        what: format!("delete backup {name}"),
                        errors,
                    });
                }
            }
            let shown = if phase.is_empty() { "New" } else { &phase };
            progress.message(&format!(
                "Velero deleting backup {name}: request {shown}, {:.0}s",
                started.elapsed().as_secs_f64()
            ));
            if started.elapsed() > bound {
                return Err(Error::TimedOut {
                    what,
                    bound,
                    state: format!("request {shown}, Backup {name} still there"),
                    hint: "is the Velero server running? (kubectl -n velero logs deploy/velero)"
                        .into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A Restore's end as Velero recorded it (its detailed warnings and errors are in the object store,
/// `restores/NAME/restore-NAME-results.gz`).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreEnd {
    pub name: String,
    pub phase: String,
    pub errors: u64,
    pub warnings: u64,
    pub items_restored: u64,
    pub total_items: u64,
    /// `status.failureReason` and `status.validationErrors`.
    pub messages: Vec<String>,
}

/// The phases after which a Velero Restore does not change any more.
pub const RESTORE_TERMINAL: &[&str] =
    &["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

impl Velero {
    /// Whether the cluster knows Backup `name` (Velero syncs the backups of its locations into the
    /// cluster, about once a minute).
    pub async fn knows_backup(&self, name: &str) -> Result<bool> {
        Ok(self
            .api("Backup", "backups")
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(self.what("get", "Backup", name), e))?
            .is_some())
    }

    /// Creates a Restore of `backup` (named `BACKUP-YYYYMMDDHHMMSS` as `velero restore create` names
    /// them), mapping namespaces as `mapping` says and, when `namespaces` is not empty, restoring only
    /// those. Returns its name.
    pub async fn restore(
        &self,
        backup: &str,
        mapping: &[(String, String)],
        namespaces: &[String],
    ) -> Result<String> {
        let name = format!("{backup}-{}", Utc::now().format("%Y%m%d%H%M%S"));
        let mut spec = json!({ "backupName": backup });
        if !mapping.is_empty() {
            spec["namespaceMapping"] = mapping
                .iter()
                .map(|(a, b)| (a.clone(), Value::String(b.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if !namespaces.is_empty() {
            spec["includedNamespaces"] = json!(namespaces);
        }
        let what = self.what("create", "Restore", &name);
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "velero.io/v1",
            "kind": "Restore",
            "metadata": { "name": name, "namespace": self.namespace },
            "spec": spec,
        }))
        .map_err(|e| Error::Request {
            what: what.clone(),
            cause: e.to_string(),
        })?;
        self.api("Restore", "restores")
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| Error::from_kube(what, e))?;
        Ok(name)
    }

    /// Follows Restore `name` to its end; gives up after `bound`.
    pub async fn wait_restore(
        &self,
        name: &str,
        bound: Duration,
        progress: &dyn Progress,
    ) -> Result<RestoreEnd> {
        let api = self.api("Restore", "restores");
        let what = self.what("follow", "Restore", name);
        let started = Instant::now();
        loop {
            let o = api
                .get_opt(name)
                .await
                .map_err(|e| Error::from_kube(what.clone(), e))?
                .ok_or_else(|| Error::Missing {
                    what: what.clone(),
                    hint: "it was deleted while openova waited for it".into(),
                })?;
            let phase = text(&o.data, &["status", "phase"]);
            let done = number(&o.data, &["status", "progress", "itemsRestored"]);
            let total = number(&o.data, &["status", "progress", "totalItems"]);
            if RESTORE_TERMINAL.contains(&phase.as_str()) {
                let messages = end_messages(&o.data);
                return Ok(RestoreEnd {
                    name: name.to_string(),
                    phase,
                    errors: number(&o.data, &["status", "errors"]),
                    warnings: number(&o.data, &["status", "warnings"]),
                    items_restored: done,
                    total_items: total,
                    messages,
                });
            }
            let shown = if phase.is_empty() { "New" } else { &phase };
            progress.message(&format!(
                "Restore {name}: {shown}, {done}/{total} items, {:.0}s",
                started.elapsed().as_secs_f64()
            ));
            if started.elapsed() > bound {
                return Err(Error::TimedOut {
                    what,
                    bound,
                    state: format!("phase {shown}"),
                    hint: "is the Velero server running? (kubectl -n velero logs deploy/velero)"
                        .into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Retention's deletions through this Velero: each backup the cluster knows is deleted with a
/// DeleteBackupRequest, waiting up to `bound` for Velero to finish it.
pub struct Deleter {
    pub velero: Velero,
    pub bound: Duration,
}

#[async_trait::async_trait]
impl crate::retention::run::VeleroCluster for Deleter {
    async fn known(&self) -> anyhow::Result<BTreeSet<String>> {
        Ok(self.velero.backups().await?)
    }

    async fn delete(&self, name: &str, progress: &dyn Progress) -> anyhow::Result<()> {
        Ok(self
            .velero
            .delete_backup(name, self.bound, progress)
            .await?)
    }
}

/// A label value as Velero makes one from a name (`label.GetValidName`): names over 63 characters
/// are cut to 57 and given a hash suffix; Velero matches on the same value.
fn label_value(name: &str) -> String {
    use sha2::{Digest, Sha256};
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{}", &name[..57], &hex[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_their_own_label_and_long_ones_are_cut_with_a_hash() {
        assert_eq!(label_value("nightly-20261203"), "nightly-20261203");
        let long = "x".repeat(70);
        let l = label_value(&long);
        assert_eq!(l.len(), 63);
        assert!(l.starts_with(&"x".repeat(57)));
    }
}
