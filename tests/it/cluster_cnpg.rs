//! `openova backup --wait` for a PostgresPolicy through a real API server with CNPG's real CRDs, run as
//! the rendered ServiceAccount. CNPG's operator cannot run here (no pods), so
//! [`crate::support::cnpg_standin::CnpgStandIn`] plays it (what it plays is listed there); the backup
//! itself is real (`barman-cloud-backup` of the harness PostgreSQL into the harness S3 server).
//! - completed and in the store: exit 0, `landed: true`, the backup id the store holds;
//! - failed by the operator: its error shown, exit 1;
//! - `restore postgres --into-cluster` to a time pasted from psql: a recovery Cluster the API server
//!   accepts, under a new server folder; refused when that folder already holds objects;
//! - `cron` with a WAL gap in the archive: exit 1, the gap in its JSON line.

use crate::cli::openova_cmd;
use crate::support::S3Server;
use crate::support::cnpg_standin::CnpgStandIn;
use crate::support::kube::{KubeOptions, KubeTestBed};
use crate::support::postgres::Postgres;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const SA_USER: &str = "system:serviceaccount:openova:openova";

/// Runs `openova ARGS` while the stand-in reconciles, until openova exits.
fn run_with_operator(s3: &S3Server, standin: &CnpgStandIn, args: &[&str]) -> crate::cli::Run {
    let mut child = openova_cmd(Some(s3), args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openova");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait openova").is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "openova backup did not end in 180 s"
        );
        standin.reconcile_once();
        std::thread::sleep(Duration::from_millis(300));
    }
    child.wait_with_output().expect("openova output").into()
}

fn write_policy(dir: &Path, s3: &S3Server, pg: &Postgres) -> String {
    let text = format!(
        "kind: PostgresPolicy\nname: platform-db\ncluster: {{ namespace: databases, name: platform-db }}\n\
         serverName: {}\nbaseBackupSchedule: \"0 2 * * *\"\nrecoveryWindow: 7d\nrpo: 1h\n\
         storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
        pg.server_name(),
        pg.destination(),
        s3.endpoint()
    );
    let path = dir.join("platform-db.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn backup_wait_follows_a_cnpg_backup_to_the_store_and_cron_reports_a_wal_gap() {
    let s3 = S3Server::start_default();
    let pg = Postgres::start(&s3, "platform-db");
    pg.archive_a_segment();
    let bed = KubeTestBed::start(KubeOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let file = write_policy(tmp.path(), &s3, &pg);
    let out = tmp.path().join("out");
    let r = crate::cli::openova(
        None,
        &[
            "render",
            "--policies",
            &file,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    bed.kubectl_ok(&["create", "namespace", "databases"]);
    for f in [
        "openova/namespace.yaml",
        "openova/serviceaccount.yaml",
        "openova/role-databases.yaml",
        "openova/rolebinding-databases.yaml",
        "cnpg/objectstore-platform-db.yaml",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        bed.apply_ok(&text, &["--server-side"]);
    }
    bed.apply_ok(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: platform-db, namespace: databases}\n\
         spec:\n  instances: 1\n  storage: {size: 1Gi}\n",
        &["--server-side"],
    );
    let token = bed.kubectl_ok(&["create", "token", "openova", "-n", "openova"]);
    let kc = bed.kubeconfig_with_token("openova", token.trim());
    let kc = kc.to_str().unwrap();

    let mut standin = CnpgStandIn {
        bed: &bed,
        pg: &pg,
        fail_with: None,
    };
    let run = run_with_operator(
        &s3,
        &standin,
        &[
            "backup",
            "--policies",
            &file,
            "--wait",
            "--kubeconfig",
            kc,
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let b = &run.json()["backups"][0];
    assert_eq!(b["phase"], "completed", "{b:#}");
    assert_eq!(b["landed"], true, "{b:#}");
    let newest = pg.backups().last().expect("a backup").backup_id.clone();
    assert_eq!(b["backup_id"], newest.as_str(), "{b:#}");

    // The operator fails the backup: its words, exit 1.
    standin.fail_with = Some("plugin: object store unreachable".into());
    let run = run_with_operator(
        &s3,
        &standin,
        &["backup", "--policies", &file, "--wait", "--kubeconfig", kc],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("FAILED  platform-db"), "{run:?}");
    assert!(
        run.stdout.contains("plugin: object store unreachable"),
        "{run:?}"
    );

    // A policy whose Cluster does not exist: a clear error, exit 2.
    let missing = std::fs::read_to_string(&file)
        .unwrap()
        .replace("name: platform-db }", "name: other-db }");
    let missing_file = tmp.path().join("missing.yaml");
    std::fs::write(&missing_file, missing).unwrap();
    let run = crate::cli::openova(
        Some(&s3),
        &[
            "backup",
            "--policies",
            missing_file.to_str().unwrap(),
            "--kubeconfig",
            kc,
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("get Cluster databases/other-db: not found"),
        "{run:?}"
    );

    // restore postgres --into-cluster to a time pasted from psql: a new Cluster bootstrapped by recovery,
    // accepted by the API server (CNPG's schema and CEL rules), archiving under its own folder.
    let t = pg.sql("select now()");
    pg.archive_a_segment();
    let restore = |new_name: &str| {
        crate::cli::openova(
            Some(&s3),
            &[
                "restore",
                "postgres",
                "--policies",
                &file,
                "--policy",
                "platform-db",
                "--to",
                t.trim(),
                "--into-cluster",
                "--new-name",
                new_name,
                "--kubeconfig",
                kc,
            ],
        )
    };
    s3.put(&format!("{}/taken-db/wals/marker", pg.prefix()), b"x");
    let refused = restore("taken-db");
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("Expected empty archive"),
        "{refused:?}"
    );
    let run = restore("platform-db-restored");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("created Cluster databases/platform-db-restored"),
        "{run:?}"
    );
    let got: Value = serde_json::from_str(&bed.kubectl_ok(&[
        "get",
        "clusters.postgresql.cnpg.io",
        "platform-db-restored",
        "-n",
        "databases",
        "-o",
        "json",
    ]))
    .unwrap();
    let spec = &got["spec"];
    assert_eq!(
        spec["bootstrap"]["recovery"]["source"], "origin",
        "{spec:#}"
    );
    let wanted = chrono::DateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f%#z")
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .with_timezone(&chrono::Utc);
    let target = spec["bootstrap"]["recovery"]["recoveryTarget"]["targetTime"]
        .as_str()
        .unwrap_or_else(|| panic!("{spec:#}"));
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(target)
            .unwrap()
            .with_timezone(&chrono::Utc),
        wanted
    );
    assert_eq!(
        spec["externalClusters"][0]["plugin"]["parameters"]["serverName"],
        pg.server_name(),
        "{spec:#}"
    );
    assert_eq!(
        spec["plugins"][0]["parameters"]["serverName"], "platform-db-restored",
        "{spec:#}"
    );
    assert_eq!(
        spec["storage"]["size"], "1Gi",
        "copied from the source Cluster: {spec:#}"
    );

    // No request of openova's ServiceAccount was denied.
    let denied = bed.denied(SA_USER);
    assert!(denied.is_empty(), "{denied:#?}");

    // A WAL gap: three more segments, the middle one lost. cron: exit 1, the gap in its line.
    let segs: Vec<String> = (0..3).map(|_| pg.archive_a_segment()).collect();
    let lost: Vec<String> = s3
        .list_keys(&pg.server_key_prefix())
        .into_iter()
        .filter(|k| k.contains(&format!("/{}", segs[1])))
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    s3.delete(&lost[0]);
    let run = crate::cli::openova(Some(&s3), &["cron", "--policies", &file]);
    assert_eq!(run.code, 1, "{run:?}");
    let line: Value =
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    assert_eq!(line["result"], "violated", "{line:#}");
    let codes: Vec<&str> = line["status"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["code"].as_str())
        .collect();
    assert!(codes.contains(&"wal-gap"), "{line:#}");
}
