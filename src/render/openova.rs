//! openova itself in the cluster: its Namespace, ServiceAccount, least-privilege RBAC, the policies
//! (and drills) as ConfigMaps, and the CronJobs (`openova cron` every 15 minutes, each drill weekly).

use super::{Doc, Input, NAMESPACE, Options, VELERO_NAMESPACE, file_name, labels, meta, secrets};
use crate::drill::def as drill_def;
use crate::policy::{Loaded, Policy};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const SERVICE_ACCOUNT: &str = "openova";
const POLICIES_DIR: &str = "/etc/openova/policies";
const DRILLS_DIR: &str = "/etc/openova/drills";
/// openova's CronJob: status, then retention under the lease, every 15 minutes.
const CRON_SCHEDULE: &str = "*/15 * * * *";
/// Drills: weekly, Sunday 04:00 UTC (after the nightly backups of the shipped policies).
const DRILL_SCHEDULE: &str = "0 4 * * 0";

pub(super) fn docs(
    policies: &[Loaded],
    input: &Input,
    drills: &[drill_def::Loaded],
    opts: &Options,
) -> Vec<Doc> {
    let mut docs = vec![namespace(), service_account()];
    docs.extend(rbac(policies));
    docs.extend(drill_cluster_role(drills));
    docs.push(config_map(
        "openova-policies",
        "openova/configmap-policies.yaml",
        &input.policies,
        "The policy files, as reviewed, mounted into openova's pods.",
    ));
    docs.push(cron_job(
        "openova-cron",
        CRON_SCHEDULE,
        &["cron"],
        false,
        opts,
        "`openova cron` every 15 minutes: status of every policy, then retention under the lease; exit code \
         the worst result.",
    ));
    if !drills.is_empty() {
        docs.push(config_map(
            "openova-drills",
            "openova/configmap-drills.yaml",
            &input.drills,
            "The drill files, as reviewed, mounted into the drill CronJobs.",
        ));
    }
    for d in drills {
        let name = &d.drill.name;
        docs.push(cron_job(
            &format!("openova-drill-{name}"),
            DRILL_SCHEDULE,
            &drill_args(d),
            true,
            opts,
            &if d.drill.velero.is_empty() {
                format!("The DR drill {name}, weekly (Sunday 04:00 UTC), offline: it restores from the bucket alone.")
            } else {
                format!(
                    "The DR drill {name}, weekly (Sunday 04:00 UTC): PostgreSQL offline from the bucket, the Velero \
                     backups restored for real into scratch namespaces (drill-TAG-NS) and deleted after."
                )
            },
        ));
    }
    docs
}

fn namespace() -> Doc {
    Doc {
        path: "openova/namespace.yaml".into(),
        in_kustomization: true,
        comment: "openova's namespace.".into(),
        value: json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": meta(NAMESPACE, None, None) }),
    }
}

fn service_account() -> Doc {
    Doc {
        path: "openova/serviceaccount.yaml".into(),
        in_kustomization: true,
        comment: "The identity openova's CronJobs run as; RBAC grants it only what openova calls."
            .into(),
        value: json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(SERVICE_ACCOUNT, Some(NAMESPACE), None),
            "automountServiceAccountToken": true,
        }),
    }
}

/// One Role (and RoleBinding) in Velero's namespace and one in each CNPG cluster's namespace. No
/// ClusterRole for these: the only cluster-wide rights are a drill's ([`drill_cluster_role`]).
fn rbac(policies: &[Loaded]) -> Vec<Doc> {
    let mut docs = Vec::new();
    if policies
        .iter()
        .any(|l| matches!(l.policy, Policy::VeleroPolicy(_)))
    {
        // Each rule names the calls that need it; openova polls (no watch). The cluster tests run
        // openova as this ServiceAccount and fail with its 403 message when a rule is missing.
        let rules = json!([
            // backup: create a Backup from a Schedule's template and follow it (get); retention and
            // cron: list the Backups the cluster knows, follow a deletion (get).
            { "apiGroups": ["velero.io"], "resources": ["backups"], "verbs": ["create", "get", "list"] },
            // retention and cron delete a known backup the way Velero does, and follow the request.
            { "apiGroups": ["velero.io"], "resources": ["deletebackuprequests"], "verbs": ["create", "get"] },
            // restore velero --into-cluster and drill run --into-cluster create a Restore and follow
            // it; a drill deletes its Restore after.
            { "apiGroups": ["velero.io"], "resources": ["restores"], "verbs": ["create", "get", "delete"] },
            // backup reads the Schedule whose template it copies.
            { "apiGroups": ["velero.io"], "resources": ["schedules"], "verbs": ["get"] },
            // backup and restore read whether the location is writable (a ReadOnly one takes no
            // backup; a restore wants it ReadOnly).
            { "apiGroups": ["velero.io"], "resources": ["backupstoragelocations"], "verbs": ["get"] },
        ]);
        docs.extend(role(
            VELERO_NAMESPACE,
            "velero",
            &rules,
            "What openova calls in Velero's namespace: Backups (create and follow), DeleteBackupRequests \
             (retention the way Velero deletes), Schedules and BackupStorageLocations (read).",
        ));
    }
    let namespaces: BTreeSet<&str> = policies
        .iter()
        .filter_map(|l| match &l.policy {
            Policy::PostgresPolicy(p) => Some(p.cluster.namespace.as_str()),
            Policy::VeleroPolicy(_) => None,
        })
        .collect();
    for ns in namespaces {
        let rules = json!([
            // backup creates a CNPG Backup (method plugin) and follows it to its end (get).
            { "apiGroups": ["postgresql.cnpg.io"], "resources": ["backups"], "verbs": ["create", "get"] },
            // backup checks that the policy's Cluster exists; restore postgres --into-cluster reads its
            // spec and creates the recovered Cluster (never updates or deletes one).
            { "apiGroups": ["postgresql.cnpg.io"], "resources": ["clusters"], "verbs": ["create", "get"] },
        ]);
        docs.extend(role(
            ns,
            ns,
            &rules,
            &format!(
                "What openova calls in namespace {ns}: CNPG Backups (create and follow) and the Cluster (read)."
            ),
        ));
    }
    docs
}

/// `drill run --drills DIR --name NAME`, with `--into-cluster` when the drill has Velero entries.
fn drill_args(d: &drill_def::Loaded) -> Vec<&str> {
    let mut args = vec![
        "drill",
        "run",
        "--drills",
        DRILLS_DIR,
        "--name",
        &d.drill.name,
    ];
    if !d.drill.velero.is_empty() {
        args.push("--into-cluster");
    }
    args
}

/// What a drill with Velero entries needs outside Velero's namespace: Velero restores into scratch
/// namespaces named per run (`drill-TAG-NS`), which RBAC cannot name in advance, so reading the
/// objects the drills expect there and deleting the scratch namespaces after is granted cluster-wide:
/// `get` on exactly the resources the drill files list in `expect`, `get` and `delete` on namespaces.
/// openova deletes only the namespaces it made for the run. Nothing when no drill has Velero entries.
fn drill_cluster_role(drills: &[drill_def::Loaded]) -> Vec<Doc> {
    let mut by_group: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut any = false;
    for d in drills {
        for v in &d.drill.velero {
            any = true;
            for r in &v.expect.resources {
                let gr = r.split('/').next().unwrap_or_default();
                let (plural, group) = gr.split_once('.').unwrap_or((gr, ""));
                by_group
                    .entry(group.to_string())
                    .or_default()
                    .insert(plural.to_string());
            }
        }
    }
    if !any {
        return vec![];
    }
    let mut rules = vec![json!({
        // Velero creates the scratch namespaces; the drill checks them and deletes them after.
        "apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "delete"],
    })];
    for (group, plurals) in by_group {
        // The objects the drills' `expect.resources` name, looked for in the scratch namespaces.
        rules.push(json!({ "apiGroups": [group], "resources": plurals, "verbs": ["get"] }));
    }
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta("openova-drill", None, None),
        "rules": rules,
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta("openova-drill", None, None),
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "openova-drill" },
        "subjects": [{ "kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE }],
    });
    vec![
        Doc {
            path: "openova/clusterrole-drill.yaml".into(),
            in_kustomization: true,
            comment: "drill run --into-cluster: Velero restores into scratch namespaces named per run (drill-TAG-NS), \
                      which RBAC cannot name in advance, so reading the objects the drills expect there (exactly \
                      the resources their expect lists name) and deleting the scratch namespaces after is granted \
                      cluster-wide. openova deletes only the namespaces it made for the run. Drop the Velero entries \
                      of the drills to drop this role."
                .into(),
            value: role,
        },
        Doc {
            path: "openova/clusterrolebinding-drill.yaml".into(),
            in_kustomization: true,
            comment: format!(
                "Grants ClusterRole openova-drill to ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT}."
            ),
            value: binding,
        },
    ]
}

fn role(ns: &str, file: &str, rules: &Value, comment: &str) -> Vec<Doc> {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta("openova", Some(ns), None),
        "rules": rules.clone(),
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta("openova", Some(ns), None),
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "openova" },
        "subjects": [{ "kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE }],
    });
    vec![
        Doc {
            path: format!("openova/role-{file}.yaml"),
            in_kustomization: true,
            comment: comment.into(),
            value: role,
        },
        Doc {
            path: format!("openova/rolebinding-{file}.yaml"),
            in_kustomization: true,
            comment: format!(
                "Grants Role {ns}/openova to ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT}."
            ),
            value: binding,
        },
    ]
}

fn config_map(name: &str, path: &str, sources: &[crate::policy::Source], comment: &str) -> Doc {
    let mut data = serde_json::Map::new();
    for s in sources {
        data.insert(file_name(&s.path), Value::String(s.text.clone()));
    }
    Doc {
        path: path.into(),
        in_kustomization: true,
        comment: comment.into(),
        value: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(name, Some(NAMESPACE), None),
            "data": data,
        }),
    }
}

fn cron_job(
    name: &str,
    schedule: &str,
    args: &[&str],
    drills: bool,
    opts: &Options,
    comment: &str,
) -> Doc {
    let secret_env = |var: &str| json!({ "name": var, "valueFrom": { "secretKeyRef": { "name": secrets::OPENOVA, "key": var } } });
    let mut env = vec![json!({ "name": "OPENOVA_POLICIES", "value": POLICIES_DIR })];
    if let Some(endpoint) = &opts.endpoint {
        env.push(json!({ "name": "OPENOVA_S3_ENDPOINT", "value": endpoint }));
    }
    env.push(secret_env("AWS_ACCESS_KEY_ID"));
    env.push(secret_env("AWS_SECRET_ACCESS_KEY"));
    let mut mounts = vec![
        json!({ "name": "policies", "mountPath": POLICIES_DIR, "readOnly": true }),
        json!({ "name": "tmp", "mountPath": "/tmp" }),
    ];
    let mut volumes = vec![
        json!({ "name": "policies", "configMap": { "name": "openova-policies" } }),
        json!({ "name": "tmp", "emptyDir": {} }),
    ];
    if drills {
        mounts.push(json!({ "name": "drills", "mountPath": DRILLS_DIR, "readOnly": true }));
        volumes.push(json!({ "name": "drills", "configMap": { "name": "openova-drills" } }));
    }
    let pod = json!({
        "metadata": { "labels": labels(None) },
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [{
                "name": "openova",
                "image": opts.image,
                "args": args,
                "env": env,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": { "drop": ["ALL"] },
                },
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    });
    let value = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(name, Some(NAMESPACE), None),
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            // A run still going when the next is due is not doubled (retention takes a lease anyway).
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": { "spec": { "backoffLimit": 0, "template": pod } },
        },
    });
    Doc {
        path: format!(
            "openova/cronjob-{}.yaml",
            name.trim_start_matches("openova-")
        ),
        in_kustomization: true,
        comment: format!(
            "{comment} S3 credentials: Secret {NAMESPACE}/{} (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never in this file.",
            secrets::OPENOVA
        ),
        value,
    }
}
