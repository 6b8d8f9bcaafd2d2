//! **A stand-in for the CloudNativePG operator with the Barman Cloud plugin**, for `openova backup`.
//! The real operator cannot run here: it manages PostgreSQL in pods, and no kubelet runs in the test bed.
//! The objects are real (the real API server validates them against CNPG's real CRDs) and so is the
//! backup: the stand-in runs the real `barman-cloud-backup` against the harness PostgreSQL into the
//! harness S3 server. What it plays, and nothing else:
//! - it notices a `postgresql.cnpg.io/v1` `Backup` with no `status.phase` (the operator's reconcile);
//! - it checks `spec.method: plugin` with `pluginConfiguration.name: barman-cloud.cloudnative-pg.io`
//!   and `spec.cluster.name` (anything else is marked `failed`, as the operator would refuse it);
//! - it writes `status.phase: running`, takes a base backup with `barman-cloud-backup` (as the plugin's
//!   sidecar does), then writes `status.phase: completed` with `backupId`, `serverName`,
//!   `destinationPath`, `method`, `startedAt` and `stoppedAt` — or `failed` with `error`.
//!
//! It does not play: scheduling (ScheduledBackup), WAL archiving (the harness PostgreSQL archives with
//! `barman-cloud-wal-archive` itself), online/offline choice, volume snapshots, retention by the plugin.

use super::kube::KubeTestBed;
use super::postgres::Postgres;
use serde_json::{Value, json};

pub struct CnpgStandIn<'a> {
    pub bed: &'a KubeTestBed,
    pub pg: &'a Postgres,
    /// When set, every backup fails with this error instead (to test openova's handling).
    pub fail_with: Option<String>,
}

impl CnpgStandIn<'_> {
    /// Handles every Backup not handled yet; returns how many.
    pub fn reconcile_once(&self) -> usize {
        let out = self
            .bed
            .kubectl_ok(&["get", "backups.postgresql.cnpg.io", "-A", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("backup list is JSON");
        let mut n = 0;
        for b in list["items"].as_array().into_iter().flatten() {
            if b["status"]["phase"].as_str().is_some_and(|p| !p.is_empty()) {
                continue;
            }
            let name = b["metadata"]["name"].as_str().unwrap_or_default();
            let ns = b["metadata"]["namespace"].as_str().unwrap_or_default();
            self.reconcile(ns, name, &b["spec"]);
            n += 1;
        }
        n
    }

    fn patch(&self, ns: &str, name: &str, status: &Value) {
        self.bed.kubectl_ok(&[
            "patch",
            "backups.postgresql.cnpg.io",
            name,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({ "status": status }).to_string(),
        ]);
    }

    fn reconcile(&self, ns: &str, name: &str, spec: &Value) {
        let started = chrono::Utc::now().to_rfc3339();
        let plugin = spec["pluginConfiguration"]["name"].as_str();
        if spec["method"] != "plugin" || plugin != Some("barman-cloud.cloudnative-pg.io") {
            self.patch(ns, name, &json!({ "phase": "failed", "error": "stand-in: only method plugin with the Barman Cloud plugin is played" }),
            );
            return;
        }
        self.patch(
            ns,
            name,
            &json!({ "phase": "running", "startedAt": started, "method": "plugin" }),
        );
        if let Some(e) = &self.fail_with {
            self.patch(ns, name, &json!({ "phase": "failed", "error": e }));
            return;
        }
        let id = self.pg.base_backup();
        self.patch(
            ns,
            name,
            &json!({
                "phase": "completed",
                "backupId": id,
                "serverName": self.pg.server_name(),
                "destinationPath": self.pg.destination(),
                "method": "plugin",
                "startedAt": started,
                "stoppedAt": chrono::Utc::now().to_rfc3339(),
            }),
        );
    }
}
