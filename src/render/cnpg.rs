//! CloudNativePG with the Barman Cloud plugin: per PostgresPolicy an `ObjectStore`
//! (barmancloud.cnpg.io/v1), a `ScheduledBackup` (method `plugin`) and a patch of the CNPG `Cluster`
//! that makes the plugin its WAL archiver.

use super::{Doc, Error, Result, Target, convert, meta, secrets};
use crate::policy::PostgresPolicy;
use serde_json::json;

/// The Barman Cloud plugin's name, as CNPG Clusters and Backups refer to it.
pub const PLUGIN: &str = crate::cluster::cnpg::PLUGIN;

pub(super) fn docs(p: &PostgresPolicy, t: &Target) -> Result<Vec<Doc>> {
    Ok(vec![
        object_store(p, t)?,
        scheduled_backup(p),
        cluster_patch(p),
    ])
}

fn object_store(p: &PostgresPolicy, t: &Target) -> Result<Doc> {
    let retention =
        convert::retention_days(p.recovery_window).ok_or_else(|| Error::WindowNotDays {
            policy: p.name.clone(),
            window: p.recovery_window.to_string(),
        })?;
    let secret = |key: &str| json!({ "name": secrets::CNPG, "key": key });
    let value = json!({
        "apiVersion": "barmancloud.cnpg.io/v1",
        "kind": "ObjectStore",
        "metadata": meta(&p.name, Some(&p.cluster.namespace), Some(&p.name)),
        "spec": {
            // Barman's RECOVERY WINDOW OF N DAYS.
            "retentionPolicy": retention,
            "configuration": {
                // The server folder (serverName) is set on the Cluster, not here: the plugin refuses it.
                "destinationPath": t.url(),
                "endpointURL": t.endpoint,
                "s3Credentials": {
                    "accessKeyId": secret(secrets::CNPG_ACCESS_KEY),
                    "secretAccessKey": secret(secrets::CNPG_SECRET_KEY),
                },
                "wal": { "compression": "gzip" },
            },
        },
    });
    Ok(Doc {
        path: format!("cnpg/objectstore-{}.yaml", p.name),
        in_kustomization: true,
        comment: format!(
            "Where CNPG (Barman Cloud plugin) archives WAL and base backups of policy {name}: {url}, server \
             folder {server}; recovery window {retention}. Credentials: Secret {ns}/{secret}, never in this file.",
            name = p.name,
            url = t.url(),
            server = p.server_name,
            ns = p.cluster.namespace,
            secret = secrets::CNPG,
        ),
        value,
    })
}

fn scheduled_backup(p: &PostgresPolicy) -> Doc {
    let six = crate::policy::Schedule::parse(&p.base_backup_schedule)
        .map(|s| s.six_fields())
        // Policies are validated when loaded; an unparsable schedule cannot reach here.
        .unwrap_or_else(|_| p.base_backup_schedule.clone());
    let value = json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": meta(&p.name, Some(&p.cluster.namespace), Some(&p.name)),
        "spec": {
            // Six fields, seconds first (robfig/cron with seconds).
            "schedule": six,
            "cluster": { "name": p.cluster.name },
            "method": "plugin",
            "pluginConfiguration": { "name": PLUGIN },
            "backupOwnerReference": "self",
        },
    });
    Doc {
        path: format!("cnpg/scheduledbackup-{}.yaml", p.name),
        in_kustomization: true,
        comment: format!(
            "A base backup of CNPG cluster {}/{} at \"{}\" (UTC; CNPG's six-field form \"{six}\").",
            p.cluster.namespace, p.cluster.name, p.base_backup_schedule
        ),
        value,
    }
}

fn cluster_patch(p: &PostgresPolicy) -> Doc {
    let value = json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": { "name": p.cluster.name, "namespace": p.cluster.namespace },
        "spec": {
            "plugins": [{
                "name": PLUGIN,
                "isWALArchiver": true,
                "parameters": { "barmanObjectName": p.name, "serverName": p.server_name },
            }],
        },
    });
    Doc {
        path: format!(
            "patches/cluster-{}-{}.yaml",
            p.cluster.namespace, p.cluster.name
        ),
        in_kustomization: false,
        comment: format!(
            "Patch of CNPG Cluster {ns}/{c}: the Barman Cloud plugin archives its WAL into ObjectStore {os} \
             under server folder {server}. A strategic-merge patch for the kustomization that owns the Cluster, \
             or a partial object for server-side apply (`kubectl apply --server-side`). spec.plugins is an atomic list: the \
             patch sets all of it. The Cluster must not also have spec.backup.barmanObjectStore.",
            ns = p.cluster.namespace,
            c = p.cluster.name,
            os = p.name,
            server = p.server_name
        ),
        value,
    }
}

/// A CNPG `Cluster` named `new_name` bootstrapped by recovery from policy `p`'s ObjectStore, to
/// `target_time` (RFC 3339; `None`: the end of the archive). It archives its own WAL under server folder
/// `new_name` in the same ObjectStore, so it never writes into the source's folder (CNPG refuses to
/// archive into a folder that is not empty: "Expected empty archive"). `source` is the source Cluster's
/// spec when the cluster still has it (instances, storage, image and PostgreSQL settings are copied);
/// otherwise one instance with 10Gi.
#[must_use]
pub fn recovery_cluster(
    p: &PostgresPolicy,
    new_name: &str,
    target_time: Option<&str>,
    source: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut spec = serde_json::Map::new();
    if let Some(s) = source {
        for k in [
            "instances",
            "imageName",
            "storage",
            "walStorage",
            "postgresql",
            "resources",
        ] {
            if let Some(v) = s.get(k) {
                spec.insert(k.to_string(), v.clone());
            }
        }
    }
    spec.entry("instances").or_insert(json!(1));
    spec.entry("storage").or_insert(json!({ "size": "10Gi" }));
    let mut recovery = json!({ "source": "origin" });
    if let Some(t) = target_time {
        recovery["recoveryTarget"] = json!({ "targetTime": t });
    }
    spec.insert("bootstrap".into(), json!({ "recovery": recovery }));
    spec.insert(
        "externalClusters".into(),
        json!([{
            "name": "origin",
            "plugin": {
                "name": PLUGIN,
                "parameters": { "barmanObjectName": p.name, "serverName": p.server_name },
            },
        }]),
    );
    spec.insert(
        "plugins".into(),
        json!([{
            "name": PLUGIN,
            "isWALArchiver": true,
            "parameters": { "barmanObjectName": p.name, "serverName": new_name },
        }]),
    );
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {
            "name": new_name,
            "namespace": p.cluster.namespace,
            "labels": { "app.kubernetes.io/managed-by": "openova", "openova.io/restored-from": p.server_name },
        },
        "spec": spec,
    })
}
