//! The real Kubernetes test bed (`support::kube`): etcd + kube-apiserver (+ kube-controller-manager)
//! and `velero server` with velero-plugin-for-aws, against a harness S3 server. No kubelet runs, so no
//! pod starts; Velero backs up API objects for real.
//!
//! - The bed works: RBAC denies, a RoleBinding allows, TokenRequest issues a token, the audit log records.
//! - Velero writes, with the BackupStorageLocation and Schedule `openova render` made for a policy on the
//!   harness S3 server, a real backup there, which `openova catalog` reads.
//! - Every manifest `openova render` writes for the shipped policies is accepted by the API server with
//!   the real CRDs (server-side dry-run), and a wrong one is refused (the check can fail).

use crate::cli::openova;
use crate::render::{DEPLOY_ARGS, files_under};
use crate::support::kube::{KubeOptions, KubeTestBed, Velero};
use crate::support::{S3Server, poll};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn stdout(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Renders `policy` (one policy file's text) into `dir/out` and returns the rendered folder.
fn render(dir: &Path, policy: &str, extra: &[&str]) -> std::path::PathBuf {
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let out = dir.join("out");
    let mut args = vec![
        "render",
        "--policies",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = openova(None, &args);
    assert_eq!(run.code, 0, "{run:?}");
    out
}

#[test]
fn test_bed_has_rbac_tokens_and_an_audit_log() {
    let bed = KubeTestBed::start(KubeOptions {
        controller_manager: true,
    });
    // CRDs of Velero, CNPG and the Barman Cloud plugin are served.
    let crds = bed.kubectl_ok(&["get", "crd", "-o", "name"]);
    for crd in [
        "backups.velero.io",
        "clusters.postgresql.cnpg.io",
        "objectstores.barmancloud.cnpg.io",
    ] {
        assert!(crds.contains(crd), "{crd} not installed: {crds}");
    }
    bed.kubectl_ok(&["create", "namespace", "rbac-check"]);
    bed.kubectl_ok(&["create", "serviceaccount", "reader", "-n", "rbac-check"]);
    let token = bed.kubectl_ok(&["create", "token", "reader", "-n", "rbac-check"]);
    let as_reader = bed.kubeconfig_with_token("reader", token.trim());
    let get = || {
        bed.kubectl_cmd(&["get", "configmaps", "-n", "rbac-check"])
            .arg("--kubeconfig")
            .arg(&as_reader)
            .output()
            .unwrap()
    };
    let denied = get();
    assert!(
        !denied.status.success(),
        "allowed before any binding: {}",
        stdout(&denied)
    );
    assert!(stdout(&denied).contains("forbidden"), "{}", stdout(&denied));
    bed.kubectl_ok(&[
        "create",
        "role",
        "read-cm",
        "-n",
        "rbac-check",
        "--verb=list",
        "--resource=configmaps",
    ]);
    bed.kubectl_ok(&[
        "create",
        "rolebinding",
        "read-cm",
        "-n",
        "rbac-check",
        "--role=read-cm",
        "--serviceaccount=rbac-check:reader",
    ]);
    let allowed = poll(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = get();
        out.status.success().then_some(out)
    });
    assert!(allowed.is_some(), "still denied after the RoleBinding");
    // The audit log holds the denied request (403) of the service account.
    let audit = std::fs::read_to_string(bed.audit_log()).expect("audit log");
    let denied_logged = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["user"]["username"] == "system:serviceaccount:rbac-check:reader"
                && e["responseStatus"]["code"] == 403
        });
    assert!(denied_logged, "no 403 for the reader in the audit log");
    // With kube-controller-manager a namespace finishes deleting.
    bed.kubectl_ok(&["delete", "namespace", "rbac-check", "--timeout=60s"]);
}

#[test]
fn velero_backs_up_a_namespace_into_s3_and_catalog_reads_it() {
    let s3 = S3Server::start_default();
    let bed = KubeTestBed::start(KubeOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let policy = format!(
        "kind: VeleroPolicy\nname: nightly\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 26h\n\
         includedNamespaces: [shop]\nstorage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
        s3.url("velero"),
        s3.endpoint()
    );
    let out = render(tmp.path(), &policy, &[]);
    let mut velero = Velero::start(&bed, &s3);
    // What openova rendered for the policy, applied as is.
    for f in [
        "velero/backupstoragelocation-nightly.yaml",
        "velero/schedule-nightly.yaml",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        bed.apply_ok(&text, &["--server-side"]);
    }
    velero.wait_location_available(&bed, "nightly");

    bed.kubectl_ok(&["create", "namespace", "shop"]);
    bed.kubectl_ok(&[
        "create",
        "configmap",
        "prices",
        "-n",
        "shop",
        "--from-literal=tea=3",
    ]);
    bed.kubectl_ok(&[
        "create",
        "deployment",
        "api",
        "-n",
        "shop",
        "--image=example.org/api:1",
        "--replicas=0",
    ]);
    let backup = "apiVersion: velero.io/v1\nkind: Backup\nmetadata:\n  name: shop-1\n  namespace: velero\n\
                  spec:\n  includedNamespaces: [shop]\n  storageLocation: nightly\n  ttl: 720h0m0s\n";
    bed.apply_ok(backup, &[]);
    let mut phase = String::new();
    let done = poll(Duration::from_secs(120), Duration::from_millis(500), || {
        phase = bed
            .jsonpath("backups.velero.io", "shop-1", "velero", "{.status.phase}")
            .unwrap_or_default();
        matches!(
            phase.as_str(),
            "Completed" | "PartiallyFailed" | "Failed" | "FailedValidation"
        )
        .then_some(())
    });
    assert!(
        done.is_some() && phase == "Completed",
        "backup phase {phase:?}; velero log:\n{}",
        velero.log()
    );

    assert!(
        s3.exists("velero/backups/shop-1/velero-backup.json"),
        "{:?}",
        s3.list_keys("velero/")
    );
    let run = openova(
        Some(&s3),
        &[
            "catalog",
            "--storage",
            &s3.url("velero"),
            "--endpoint",
            &s3.endpoint(),
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    let list = json["storages"][0]["velero"]
        .as_array()
        .unwrap_or_else(|| panic!("{json:#}"));
    let b = list
        .iter()
        .find(|b| b["name"] == "shop-1")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(b["phase"], "Completed", "{b:#}");
    assert_eq!(b["storage_location"], "nightly", "{b:#}");
    assert_eq!(b["ttl"], "720h0m0s", "{b:#}");
    assert_eq!(
        b["included_namespaces"],
        serde_json::json!(["shop"]),
        "{b:#}"
    );
    assert!(b["missing"].as_array().is_some_and(Vec::is_empty), "{b:#}");
}

/// Namespaces the rendered objects live in (the platform makes `velero` and the databases' own).
fn create_namespaces(bed: &KubeTestBed, names: &[&str]) {
    for ns in names {
        bed.kubectl_ok(&["create", "namespace", ns]);
    }
}

#[test]
fn rendered_manifests_are_accepted_by_the_api_server_and_a_wrong_one_is_not() {
    let bed = KubeTestBed::start(KubeOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let run = crate::render::render_shipped(tmp.path());
    assert_eq!(run.code, 0, "{run:?} ({DEPLOY_ARGS:?})");
    for restore_mode in [false, true] {
        let dir = tmp
            .path()
            .join(if restore_mode { "restore" } else { "normal" });
        let mut args: Vec<&str> = DEPLOY_ARGS.to_vec();
        args.extend(["--out", dir.to_str().unwrap()]);
        if restore_mode {
            args.push("--restore-mode");
        }
        let mut cmd = crate::cli::openova_cmd(None, &args);
        let r: crate::cli::Run = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "{r:?}");
    }
    create_namespaces(&bed, &["openova", "velero", "databases"]);
    // Server-side dry-run of the whole kustomization: schemas, CEL rules, RBAC objects, CronJobs.
    for mode in ["normal", "restore"] {
        let dir = tmp.path().join(mode);
        let out = bed.kubectl(&[
            "apply",
            "-k",
            dir.to_str().unwrap(),
            "--server-side",
            "--dry-run=server",
        ]);
        assert!(out.status.success(), "{mode}: {}", stdout(&out));
        let text = stdout(&out);
        let expected = files_under(&dir)
            .keys()
            .filter(|p| {
                p.ends_with(".yaml") && !p.starts_with("patches/") && *p != "kustomization.yaml"
            })
            .count();
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("serverside-applied"))
                .count(),
            expected,
            "{text}"
        );
    }
    // The Cluster patch merges into a real Cluster (one must exist: it is the platform's).
    bed.apply_ok(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: platform-db, namespace: databases}\n\
         spec:\n  instances: 1\n  storage: {size: 1Gi}\n",
        &["--server-side"],
    );
    let patch = tmp
        .path()
        .join("normal/patches/cluster-databases-platform-db.yaml");
    let out = bed.kubectl(&[
        "apply",
        "-f",
        patch.to_str().unwrap(),
        "--server-side",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        merged["spec"]["instances"], 1,
        "the patch keeps the Cluster's own fields"
    );
    assert_eq!(
        merged["spec"]["plugins"][0]["parameters"]["barmanObjectName"],
        "platform-db"
    );

    // The check can fail: the Barman Cloud plugin's CEL rule refuses serverName in an ObjectStore, and the
    // ScheduledBackup schema refuses an unknown method.
    let os = std::fs::read_to_string(tmp.path().join("normal/cnpg/objectstore-platform-db.yaml"))
        .unwrap();
    let wrong = os.replace(
        "    destinationPath:",
        "    serverName: platform-db\n    destinationPath:",
    );
    let out = bed.apply(&wrong, &["--server-side", "--dry-run=server"]);
    assert!(!out.status.success(), "accepted: {wrong}");
    assert!(
        stdout(&out).contains("use the 'serverName' plugin parameter in the Cluster resource"),
        "{}",
        stdout(&out)
    );
    let sb = std::fs::read_to_string(
        tmp.path()
            .join("normal/cnpg/scheduledbackup-platform-db.yaml"),
    )
    .unwrap();
    let out = bed.apply(
        &sb.replace("method: plugin", "method: barman"),
        &["--server-side", "--dry-run=server"],
    );
    assert!(
        !out.status.success() && stdout(&out).contains("spec.method"),
        "{}",
        stdout(&out)
    );
}
