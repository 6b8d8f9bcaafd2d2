//! openova driving real Velero through a real API server (the test bed), run as the ServiceAccount
//! `openova render` makes, with a token from TokenRequest and the rendered Role — RBAC for real:
//! - `backup --wait`: Velero backs up a namespace into the harness S3 server; openova follows it and
//!   finds it in the store, and `catalog` reads what Velero wrote. A location on a missing bucket ends
//!   with Velero's own words and exit 1.
//! - `restore velero --into-cluster`: refused while the location is ReadWrite; with the location
//!   ReadOnly (`render --restore-mode`), Velero restores into a mapped namespace and the objects are there.
//! - `retention --apply --cluster`: an expired backup the cluster knows is deleted by Velero through
//!   openova's DeleteBackupRequest; an orphan no cluster knows goes through the store.
//! - `cron`: exit 0 on a healthy store, a JSON line per policy when stdout is not a terminal; a dead API
//!   server is a clear error, exit 2.
//! - The audit log shows no request of openova's ServiceAccount denied; without the DeleteBackupRequest
//!   rule, retention stops with openova's 403 message and deletes nothing.

use crate::cli::{Run, openova};
use crate::support::kube::{KubeOptions, KubeTestBed, Velero};
use crate::support::{S3Server, free_port};
use serde_json::Value;
use std::path::{Path, PathBuf};

const SA_USER: &str = "system:serviceaccount:openova:openova";

/// A Velero policy for namespace `shop`, backed up into `s3` under `prefix` (bucket `bucket`).
fn velero_policy(name: &str, s3: &S3Server, bucket: &str, prefix: &str) -> String {
    format!(
        "kind: VeleroPolicy\nname: {name}\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 26h\n\
         includedNamespaces: [shop]\nstorage: {{ url: \"s3://{bucket}/{prefix}\", endpoint: \"{}\" }}\n",
        s3.endpoint()
    )
}

/// Renders `policies` (one file) into `dir/out` and returns the folder.
fn render(dir: &Path, policies: &str) -> (PathBuf, PathBuf) {
    let file = dir.join("policies.yaml");
    std::fs::write(&file, policies).unwrap();
    let out = dir.join("out");
    let run = openova(
        None,
        &[
            "render",
            "--policies",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    (file, out)
}

fn apply_files(bed: &KubeTestBed, out: &Path, files: &[&str]) {
    for f in files {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        bed.apply_ok(&text, &["--server-side"]);
    }
}

/// openova's namespace, ServiceAccount and rendered Velero Role, and a kubeconfig with a token of that
/// ServiceAccount (TokenRequest).
fn as_openova(bed: &KubeTestBed, out: &Path) -> PathBuf {
    apply_files(
        bed,
        out,
        &[
            "openova/namespace.yaml",
            "openova/serviceaccount.yaml",
            "openova/role-velero.yaml",
            "openova/rolebinding-velero.yaml",
        ],
    );
    let token = bed.kubectl_ok(&["create", "token", "openova", "-n", "openova"]);
    bed.kubeconfig_with_token("openova", token.trim())
}

fn run_as(s3: &S3Server, kubeconfig: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
    openova(Some(s3), &all)
}

#[test]
fn backup_retention_and_cron_drive_real_velero_as_the_rendered_service_account() {
    let s3 = S3Server::start_default();
    let bed = KubeTestBed::start(KubeOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let policies = format!(
        "{}---\n{}",
        velero_policy("nightly", &s3, s3.bucket(), "velero"),
        velero_policy("broken", &s3, "no-such-bucket", "velero")
    );
    let (file, out) = render(tmp.path(), &policies);
    let file = file.to_str().unwrap();
    let mut velero = Velero::start(&bed, &s3);
    apply_files(
        &bed,
        &out,
        &[
            "velero/backupstoragelocation-nightly.yaml",
            "velero/schedule-nightly.yaml",
            "velero/backupstoragelocation-broken.yaml",
            "velero/schedule-broken.yaml",
        ],
    );
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
    let kc = as_openova(&bed, &out);

    // Two backups through openova, each followed and found in the store.
    let mut names = Vec::new();
    for _ in 0..2 {
        let run = run_as(
            &s3,
            &kc,
            &[
                "backup",
                "--policies",
                file,
                "--policy",
                "nightly",
                "--wait",
                "--output",
                "json",
            ],
        );
        assert_eq!(run.code, 0, "{run:?}\nvelero log:\n{}", velero.log());
        let b = &run.json()["backups"][0];
        assert_eq!(b["phase"], "Completed", "{b:#}");
        assert_eq!(b["landed"], true, "{b:#}");
        let name = b["backup_id"].as_str().unwrap().to_string();
        assert!(
            s3.exists(&format!("velero/backups/{name}/velero-backup.json")),
            "{:?}",
            s3.list_keys("velero/")
        );
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    // What Velero wrote, as openova's catalog reads it: labelled with the schedule, as Velero does.
    let cat = openova(
        Some(&s3),
        &[
            "catalog",
            "--policies",
            file,
            "--policy",
            "nightly",
            "--output",
            "json",
        ],
    );
    assert_eq!(cat.code, 0, "{cat:?}");
    let listed: Vec<Value> = cat.json()["storages"][0]["velero"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for n in &names {
        let b = listed
            .iter()
            .find(|b| b["name"] == n.as_str())
            .unwrap_or_else(|| panic!("{n} not in the catalog: {listed:#?}"));
        assert_eq!(b["phase"], "Completed");
        assert_eq!(b["schedule"], "nightly", "{b:#}");
    }

    // Restore into mapped namespaces: refused while the location is writable, then done the way
    // Velero's disaster procedure does it (the location ReadOnly, from `render --restore-mode`).
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "velero",
            "--policies",
            file,
            "--policy",
            "nightly",
            "--backup",
            "latest",
            "--into-cluster",
            "--namespace-mapping",
            "shop:shop-restored",
        ];
        args.extend_from_slice(extra);
        run_as(&s3, &kc, &args)
    };
    let refused = restore(&[]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("BackupStorageLocation nightly is ReadWrite")
            && refused.stderr.contains("--restore-mode"),
        "{refused:?}"
    );
    let ro = tmp.path().join("restore-mode");
    let r = openova(
        None,
        &[
            "render",
            "--policies",
            file,
            "--out",
            ro.to_str().unwrap(),
            "--restore-mode",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    apply_files(&bed, &ro, &["velero/backupstoragelocation-nightly.yaml"]);
    let run = restore(&["--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}\nvelero log:\n{}", velero.log());
    let r = &run.json()["restore"];
    assert_eq!(r["phase"], "Completed", "{r:#}");
    assert_eq!(r["backup"], names[1].as_str(), "{r:#}");
    assert_eq!(
        bed.jsonpath("configmap", "prices", "shop-restored", "{.data.tea}")
            .as_deref(),
        Some("3"),
        "the ConfigMap was not restored into shop-restored"
    );
    apply_files(&bed, &out, &["velero/backupstoragelocation-nightly.yaml"]);

    // A location on a bucket that does not exist: Velero's refusal, shown, and exit 1.
    let run = run_as(
        &s3,
        &kc,
        &[
            "backup",
            "--policies",
            file,
            "--policy",
            "broken",
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}\nvelero log:\n{}", velero.log());
    assert!(run.stdout.starts_with("FAILED  broken"), "{run:?}");
    // Velero's own words: its validation refuses a backup into a location it found unavailable.
    assert!(
        run.stdout.contains(
            "backup can't be created because BackupStorageLocation broken is in Unavailable status"
        ),
        "Velero's reason not shown: {run:?}"
    );

    // An orphan no cluster knows (no velero-backup.json), and retention 40 days on: the older backup
    // goes through Velero, the orphan through the store, the newest Completed stays.
    s3.put(
        "velero/backups/nightly-20261101030000/nightly-20261101030000.tar.gz",
        b"left behind",
    );
    let later = (chrono::Utc::now() + chrono::TimeDelta::days(40)).to_rfc3339();
    let dry = run_as(
        &s3,
        &kc,
        &[
            "retention",
            "--policies",
            file,
            "--policy",
            "nightly",
            "--at",
            &later,
            "--grace",
            "1s",
        ],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(s3.exists(&format!("velero/backups/{}/velero-backup.json", names[0])));

    // Without the DeleteBackupRequest rule: openova's 403 message, and nothing deleted.
    let role = std::fs::read_to_string(out.join("openova/role-velero.yaml")).unwrap();
    let mut role: Value = serde_norway::from_str(&role).unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| r["resources"] != serde_json::json!(["deletebackuprequests"]));
    assert_eq!(rules.len(), before - 1, "{role:#}");
    bed.apply_ok(&role.to_string(), &["--server-side"]);
    let refused = run_as(
        &s3,
        &kc,
        &[
            "retention",
            "--policies",
            file,
            "--policy",
            "nightly",
            "--at",
            &later,
            "--grace",
            "1s",
            "--apply",
        ],
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("forbidden (403)")
            && refused.stderr.contains("DeleteBackupRequest")
            && refused.stderr.contains("openova render"),
        "{refused:?}"
    );
    assert!(s3.exists(&format!("velero/backups/{}/velero-backup.json", names[0])));
    assert!(
        !bed.denied(SA_USER).is_empty(),
        "the audit log should hold the denied create"
    );
    let denied_before = bed.denied(SA_USER).len();
    apply_files(&bed, &out, &["openova/role-velero.yaml"]);

    let run = run_as(
        &s3,
        &kc,
        &[
            "retention",
            "--policies",
            file,
            "--policy",
            "nightly",
            "--at",
            &later,
            "--grace",
            "1s",
            "--apply",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}\nvelero log:\n{}", velero.log());
    let applied = &run.json()["policies"][0]["applied"];
    assert_eq!(
        applied["via_velero"],
        serde_json::json!([names[0]]),
        "{run:?}"
    );
    assert_eq!(applied["backups"], 2, "{applied:#}");
    assert!(
        s3.list_keys(&format!("velero/backups/{}/", names[0]))
            .is_empty(),
        "Velero left objects of the deleted backup"
    );
    assert!(!s3.exists("velero/backups/nightly-20261101030000/nightly-20261101030000.tar.gz"));
    assert!(s3.exists(&format!("velero/backups/{}/velero-backup.json", names[1])));
    assert!(
        bed.jsonpath("backups.velero.io", &names[0], "velero", "{.metadata.name}")
            .is_none(),
        "the Backup object is still in the cluster"
    );
    assert!(
        bed.jsonpath("backups.velero.io", &names[1], "velero", "{.metadata.name}")
            .is_some(),
        "the newest Backup object is gone"
    );

    // cron as the CronJob runs it: healthy now, one JSON line per policy (stdout is a pipe).
    let run = run_as(
        &s3,
        &kc,
        &["cron", "--policies", file, "--policy", "nightly"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert_eq!(lines[0]["policy"], "nightly");
    assert_eq!(lines[0]["result"], "ok", "{run:?}");
    assert_eq!(lines[0]["retention"]["deleted_backups"], 0, "{run:?}");

    // Every request of openova's ServiceAccount since the Role was whole was allowed.
    assert_eq!(
        bed.denied(SA_USER).len(),
        denied_before,
        "denied: {:?}",
        bed.denied(SA_USER)
    );

    // A dead API server: a clear error and exit 2, nothing deleted.
    let dead = bed.dir().join("dead.kubeconfig");
    let text = std::fs::read_to_string(&kc)
        .unwrap()
        .replace(&bed.server(), &format!("https://127.0.0.1:{}", free_port()));
    std::fs::write(&dead, text).unwrap();
    let run = run_as(
        &s3,
        &dead,
        &["cron", "--policies", file, "--policy", "nightly"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    let line: Value =
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    assert_eq!(line["level"], "error");
    let msg = line["message"].as_str().unwrap();
    assert!(
        msg.contains("the request to the API server failed") && msg.contains("Connection refused"),
        "{msg}"
    );
    // A kubeconfig that is not one.
    std::fs::write(&dead, "not: [a kubeconfig").unwrap();
    let run = run_as(
        &s3,
        &dead,
        &["cron", "--policies", file, "--policy", "nightly"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("cannot use kubeconfig"), "{run:?}");
}
