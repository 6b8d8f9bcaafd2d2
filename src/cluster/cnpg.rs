//! CloudNativePG through its API: an on-demand `Backup` (method `plugin`, the Barman Cloud plugin, as the
//! rendered ScheduledBackup makes them) for a policy's Cluster, followed to its end. The operator does the
//! work; openova creates the object and reads the status the operator writes (`phase`, `backupId`,
//! `error`). Every wait polls once a second and has a bound.

use super::{Error, Result, text};
use crate::report::Progress;
use chrono::Utc;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Barman Cloud plugin's name in a Backup's `pluginConfiguration`.
pub const PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

const POLL: Duration = Duration::from_secs(1);

/// A CNPG Backup's end as the operator recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEnd {
    pub name: String,
    pub namespace: String,
    /// `completed` or `failed`.
    pub phase: String,
    /// The Barman backup id (`20261203T020000`), the folder name in the object store.
    pub backup_id: String,
    pub error: String,
}

impl BackupEnd {
    #[must_use]
    pub fn completed(&self) -> bool {
        self.phase == "completed"
    }
}

fn api(client: &Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", kind),
        plural,
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Checks that Cluster `ns/cluster` exists, then creates a Backup of it with the Barman Cloud plugin
/// and returns the Backup's name.
pub async fn backup(client: &Client, ns: &str, cluster: &str) -> Result<String> {
    let what = format!("get Cluster {ns}/{cluster}");
    api(client, ns, "Cluster", "clusters")
        .get_opt(cluster)
        .await
        .map_err(|e| Error::from_kube(what.clone(), e))?
        .ok_or_else(|| Error::Missing {
            what,
            hint: "the policy's cluster.name and cluster.namespace name a CNPG Cluster that does not exist"
                .into(),
        })?;
    let name = format!("{cluster}-{}", Utc::now().format("%Y%m%d%H%M%S"));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Backup",
        "metadata": { "name": name, "namespace": ns, "labels": { "app.kubernetes.io/managed-by": "openova" } },
        "spec": {
            "cluster": { "name": cluster },
            "method": "plugin",
            "pluginConfiguration": { "name": PLUGIN },
        },
    }))
    .map_err(|e| Error::Request {
        what: format!("create Backup {ns}/{name}"),
        cause: e.to_string(),
    })?;
    api(client, ns, "Backup", "backups")
        .create(&PostParams::default(), &obj)
        .await
        .map_err(|e| Error::from_kube(format!("create Backup {ns}/{name}"), e))?;
    Ok(name)
}

/// Follows Backup `ns/name` until the operator marks it `completed` or `failed`; gives up after `bound`.
pub async fn wait_backup(
    client: &Client,
    ns: &str,
    name: &str,
    bound: Duration,
    progress: &dyn Progress,
) -> Result<BackupEnd> {
    let api = api(client, ns, "Backup", "backups");
    let what = format!("follow Backup {ns}/{name}");
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
        if phase == "completed" || phase == "failed" {
            return Ok(BackupEnd {
                name: name.to_string(),
                namespace: ns.to_string(),
                phase,
                backup_id: text(&o.data, &["status", "backupId"]),
                error: text(&o.data, &["status", "error"]),
            });
        }
        let shown = if phase.is_empty() { "pending" } else { &phase };
        progress.message(&format!(
            "Backup {ns}/{name}: {shown}, {:.0}s",
            started.elapsed().as_secs_f64()
        ));
        if started.elapsed() > bound {
            return Err(Error::TimedOut {
                what,
                bound,
                state: format!("phase {shown}"),
                hint: "is the CloudNativePG operator running, with the Barman Cloud plugin? (kubectl -n cnpg-system logs deploy/cnpg-controller-manager)".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The spec of Cluster `ns/name`, or `None` when there is no such Cluster (the cluster was lost).
pub async fn cluster_spec(client: &Client, ns: &str, name: &str) -> Result<Option<Value>> {
    let found = api(client, ns, "Cluster", "clusters")
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("get Cluster {ns}/{name}"), e))?;
    Ok(found.and_then(|o| o.data.get("spec").cloned()))
}

/// Creates the Cluster `value` describes (the API server validates it against CNPG's schema and CEL
/// rules); a Cluster of that name already there is refused, never replaced.
pub async fn create_cluster(client: &Client, value: &Value) -> Result<()> {
    let ns = text(value, &["metadata", "namespace"]);
    let name = text(value, &["metadata", "name"]);
    let what = format!("create Cluster {ns}/{name}");
    let obj: DynamicObject = serde_json::from_value(value.clone()).map_err(|e| Error::Request {
        what: what.clone(),
        cause: e.to_string(),
    })?;
    api(client, &ns, "Cluster", "clusters")
        .create(&PostParams::default(), &obj)
        .await
        .map_err(|e| Error::from_kube(what, e))?;
    Ok(())
}
