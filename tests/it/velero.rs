//! Velero: `openova catalog` and `openova status` against Velero backups in a real S3 server.
//!
//! Velero needs a Kubernetes cluster, which cannot run here: the backups are written by the fixture
//! writer `support::velero_fixture`, which follows Velero's object-store layout (see its docs and
//! DESIGN.md). Every expected value below is written out literally or taken from the fixture's
//! input, never from openova's own parsing.

use crate::cli::{Run, openova};
use crate::support::velero_fixture::{VeleroBackupFixture, upload_all};
use crate::support::{S3Kind, S3Server};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const PREFIX: &str = "velero";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// A JSON time (or null) as a time.
fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(t)
}

/// A small but varied cluster: namespaced core and grouped resources, cluster-scoped objects, a CRD.
fn with_items(b: VeleroBackupFixture) -> VeleroBackupFixture {
    b.item("namespaces", None, "app", json!({"apiVersion": "v1", "kind": "Namespace"}))
        .item("namespaces", None, "db", json!({"apiVersion": "v1", "kind": "Namespace"}))
        .item(
            "pods",
            Some("app"),
            "web-0",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
        )
        .item("pods", Some("app"), "web-1", json!({"apiVersion": "v1", "kind": "Pod"}))
        .item("pods", Some("db"), "pg-1", json!({"apiVersion": "v1", "kind": "Pod"}))
        .item(
            "deployments.apps",
            Some("app"),
            "web",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}}),
        )
        .item(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            "x.example.com",
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}),
        )
}

/// `openova catalog --storage s3://BUCKET/velero --output json`, the endpoint from
/// `OPENOVA_S3_ENDPOINT`.
fn catalog(s3: &S3Server, output: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openova"));
    cmd.args(["catalog", "--storage", &s3.url(PREFIX), "--output", output]);
    s3.apply_env(&mut cmd);
    cmd.env("OPENOVA_S3_ENDPOINT", s3.endpoint());
    let out = cmd.output().expect("run openova");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `velero` list of the only storage of a catalog run, by name.
fn velero_list(run: &Run) -> Vec<Value> {
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["schema"], "openova.catalog/v1", "{json:#}");
    let storages = json["storages"].as_array().expect("storages");
    assert_eq!(storages.len(), 1, "{json:#}");
    storages[0]["velero"]
        .as_array()
        .unwrap_or_else(|| panic!("no velero list in {json:#}"))
        .clone()
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backup {name} in {list:#?}"))
}

/// Writes a VeleroPolicy file for the Velero prefix of `s3`; returns its path.
fn velero_policy(dir: &Path, s3: &S3Server, name: &str, schedule: &str, rpo: &str) -> String {
    let text = format!(
        "kind: VeleroPolicy\nname: {name}\nschedule: \"{schedule}\"\nretention: 30d\nrpo: {rpo}\n\
         includedNamespaces: [\"*\"]\nexcludedNamespaces: [kube-system, velero]\n\
         storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
        s3.url(PREFIX),
        s3.endpoint()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn status(s3: &S3Server, policy: &str, at: &str, json_output: bool) -> Run {
    let mut args = vec!["status", "--policies", policy, "--at", at];
    if json_output {
        args.extend(["--output", "json"]);
    }
    openova(Some(s3), &args)
}

/// The violation codes of the only policy of a JSON status run.
fn codes(run: &Run) -> Vec<String> {
    let json = run.json();
    let policies = json["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 1, "{json:#}");
    policies[0]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_string())
        .collect()
}

/// The one stdout line containing every one of `parts`; panics with the run if there is none.
fn line_with<'a>(run: &'a Run, parts: &[&str]) -> &'a str {
    run.stdout
        .lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in {run:?}"))
}

#[test]
fn catalog_lists_velero_backups_as_written() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let completed = with_items(VeleroBackupFixture::new("cluster-daily-20261124030000"))
        .schedule("cluster-daily")
        .started(t("2026-11-24T03:00:00Z"))
        .completed(t("2026-11-24T03:01:10Z"))
        .ttl("720h0m0s")
        .warnings(3)
        .excluded_namespaces(&["kube-system", "velero"]);
    let partial = with_items(VeleroBackupFixture::new("cluster-daily-20261125030000"))
        .phase("PartiallyFailed")
        .schedule("cluster-daily")
        .started(t("2026-11-25T03:00:00Z"))
        .completed(t("2026-11-25T03:02:05Z"))
        .ttl("240h0m0s")
        .errors(2)
        .warnings(1)
        .items_backed_up(5);
    let failed = VeleroBackupFixture::new("cluster-daily-20261126030000")
        .phase("Failed")
        .schedule("cluster-daily")
        .started(t("2026-11-26T03:00:00Z"))
        .completed(t("2026-11-26T03:00:20Z"))
        .errors(1)
        .failure_reason("get a backup store: rpc error: code = Unknown desc = AccessDenied")
        .without("cluster-daily-20261126030000.tar.gz")
        .without("cluster-daily-20261126030000-resource-list.json.gz");
    let no_tarball = with_items(VeleroBackupFixture::new("manual-20261126120000"))
        .started(t("2026-11-26T12:00:00Z"))
        .completed(t("2026-11-26T12:00:45Z"))
        .storage_location("r2-secondary")
        .included_namespaces(&["app"])
        .without("manual-20261126120000.tar.gz");
    let all = [
        completed.clone(),
        partial.clone(),
        failed.clone(),
        no_tarball.clone(),
    ];
    upload_all(&s3, PREFIX, &all);

    let run = catalog(&s3, "json");
    let list = velero_list(&run);
    let names: Vec<&str> = list.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cluster-daily-20261124030000",
            "cluster-daily-20261125030000",
            "cluster-daily-20261126030000",
            "manual-20261126120000"
        ],
        "listed oldest first: {run:?}"
    );

    let b = by_name(&list, "cluster-daily-20261124030000");
    assert_eq!(b["phase"], "Completed", "{b:#}");
    assert_eq!(b["schedule"], "cluster-daily", "{b:#}");
    assert_eq!(
        time_of(&b["start"]),
        Some(t("2026-11-24T03:00:00Z")),
        "{b:#}"
    );
    assert_eq!(
        time_of(&b["completion"]),
        Some(t("2026-11-24T03:01:10Z")),
        "{b:#}"
    );
    assert_eq!(
        time_of(&b["expiration"]),
        Some(t("2026-12-24T03:00:00Z")),
        "start + 720h: {b:#}"
    );
    assert_eq!(b["ttl"], "720h0m0s", "{b:#}");
    assert_eq!(b["storage_location"], "default", "{b:#}");
    assert_eq!(b["included_namespaces"], json!(["*"]), "{b:#}");
    assert_eq!(
        b["excluded_namespaces"],
        json!(["kube-system", "velero"]),
        "{b:#}"
    );
    assert_eq!(b["errors"], 0, "{b:#}");
    assert_eq!(b["warnings"], 3, "{b:#}");
    assert_eq!(b["items_backed_up"], 7, "{b:#}");
    assert_eq!(b["total_items"], 7, "{b:#}");
    assert_eq!(b["missing"], json!([]), "{b:#}");
    assert_eq!(b["unreadable"], Value::Null, "{b:#}");
    assert_eq!(
        b["size"],
        completed.size(),
        "sum of the backup's object sizes: {b:#}"
    );

    let b = by_name(&list, "cluster-daily-20261125030000");
    assert_eq!(b["phase"], "PartiallyFailed", "{b:#}");
    assert_eq!(
        time_of(&b["start"]),
        Some(t("2026-11-25T03:00:00Z")),
        "{b:#}"
    );
    assert_eq!(
        time_of(&b["completion"]),
        Some(t("2026-11-25T03:02:05Z")),
        "{b:#}"
    );
    assert_eq!(
        time_of(&b["expiration"]),
        Some(t("2026-12-05T03:00:00Z")),
        "start + 240h: {b:#}"
    );
    assert_eq!(b["errors"], 2, "{b:#}");
    assert_eq!(b["warnings"], 1, "{b:#}");
    assert_eq!(b["items_backed_up"], 5, "{b:#}");
    assert_eq!(b["total_items"], 7, "{b:#}");
    assert_eq!(b["missing"], json!([]), "{b:#}");

    let b = by_name(&list, "cluster-daily-20261126030000");
    assert_eq!(b["phase"], "Failed", "{b:#}");
    assert_eq!(b["errors"], 1, "{b:#}");
    assert_eq!(b["warnings"], 0, "{b:#}");
    assert_eq!(b["items_backed_up"], 0, "{b:#}");
    assert_eq!(
        b["failure_reason"], "get a backup store: rpc error: code = Unknown desc = AccessDenied",
        "{b:#}"
    );
    assert_eq!(
        b["missing"],
        json!([]),
        "a Failed backup has no tarball to miss: {b:#}"
    );
    assert_eq!(b["unreadable"], Value::Null, "{b:#}");

    let b = by_name(&list, "manual-20261126120000");
    assert_eq!(b["phase"], "Completed", "{b:#}");
    assert_eq!(b["schedule"], Value::Null, "not made by a Schedule: {b:#}");
    assert_eq!(b["storage_location"], "r2-secondary", "{b:#}");
    assert_eq!(b["included_namespaces"], json!(["app"]), "{b:#}");
    assert_eq!(
        b["missing"],
        json!(["manual-20261126120000.tar.gz"]),
        "{b:#}"
    );
    assert_eq!(b["size"], no_tarball.size(), "{b:#}");

    // The text view says the same, with the missing tarball spelled out.
    let text = catalog(&s3, "text");
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("velero: 4 backups"), "{text:?}");
    line_with(
        &text,
        &[
            "cluster-daily-20261125030000",
            "PartiallyFailed",
            "2026-11-25 03:00:00",
            "2026-12-05 03:00:00",
        ],
    );
    line_with(&text, &["missing: manual-20261126120000.tar.gz"]);
}

#[test]
fn a_malformed_backup_object_is_unreadable_and_the_others_are_listed() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let dir = tempfile::tempdir().unwrap();
    let good = with_items(VeleroBackupFixture::new("cluster-daily-20261124030000"))
        .schedule("cluster-daily")
        .started(t("2026-11-24T03:00:00Z"))
        .completed(t("2026-11-24T03:01:10Z"));
    let truncated = with_items(VeleroBackupFixture::new("cluster-daily-20261125030000"))
        .schedule("cluster-daily")
        .raw_backup_json(br#"{"kind":"Backup","metadata":"#);
    let later = with_items(VeleroBackupFixture::new("cluster-daily-20261126030000"))
        .schedule("cluster-daily")
        .started(t("2026-11-26T03:00:00Z"))
        .completed(t("2026-11-26T03:01:00Z"));
    upload_all(&s3, PREFIX, &[good, truncated, later]);

    let run = catalog(&s3, "json");
    assert_eq!(
        run.code, 0,
        "one bad backup does not fail the catalog: {run:?}"
    );
    let list = velero_list(&run);
    assert_eq!(list.len(), 3, "{list:#?}");
    let bad = by_name(&list, "cluster-daily-20261125030000");
    let why = bad["unreadable"]
        .as_str()
        .unwrap_or_else(|| panic!("not marked unreadable: {bad:#}"));
    assert!(
        why.contains("backups/cluster-daily-20261125030000/velero-backup.json"),
        "names the key: {why}"
    );
    assert_eq!(bad["phase"], Value::Null, "{bad:#}");
    for name in [
        "cluster-daily-20261124030000",
        "cluster-daily-20261126030000",
    ] {
        let b = by_name(&list, name);
        assert_eq!(b["phase"], "Completed", "{b:#}");
        assert_eq!(b["unreadable"], Value::Null, "{b:#}");
        assert_eq!(b["items_backed_up"], 7, "{b:#}");
    }

    // status: the newest good backup is fresh, only the unreadable one is wrong.
    let policy = velero_policy(dir.path(), &s3, "cluster-daily", "0 3 * * *", "26h");
    let at = "2026-11-26T05:00:00Z";
    let run = status(&s3, &policy, at, false);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("FAIL"), "{run:?}");
    line_with(
        &run,
        &[
            "cluster-daily: unreadable: backup cluster-daily-20261125030000",
            "backups/cluster-daily-20261125030000/velero-backup.json",
        ],
    );
    assert_eq!(codes(&status(&s3, &policy, at, true)), ["unreadable"]);

    // Valid JSON that is not this backup's object, and a folder without velero-backup.json.
    let renamed = VeleroBackupFixture::new("cluster-daily-20261127030000").raw_backup_json(
        &serde_json::to_vec(&VeleroBackupFixture::new("someone-else").backup_json()).unwrap(),
    );
    let headless = with_items(VeleroBackupFixture::new("cluster-daily-20261128030000"))
        .without("velero-backup.json");
    upload_all(&s3, PREFIX, &[renamed, headless]);
    let list = velero_list(&catalog(&s3, "json"));
    assert_eq!(list.len(), 5, "{list:#?}");
    let why = by_name(&list, "cluster-daily-20261127030000")["unreadable"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("someone-else")
            && why.contains("backups/cluster-daily-20261127030000/velero-backup.json"),
        "{why}"
    );
    // Velero uploads velero-backup.json after the log, and none when the upload failed: a folder
    // without it is unfinished (or abandoned), not corrupt.
    let headless = by_name(&list, "cluster-daily-20261128030000");
    assert!(headless["unreadable"].is_null(), "{headless:#}");
    assert_eq!(
        headless["missing"],
        serde_json::json!(["velero-backup.json"]),
        "{headless:#}"
    );
    let run = status(&s3, &policy, at, true);
    assert_eq!(run.code, 1, "{run:?}");
    // Judged by when its objects were written (now, in real time): only once that is more than
    // 24 h ago is the headless folder reported, as abandoned.
    let unreadable: Vec<_> = codes(&run)
        .into_iter()
        .filter(|c| c != "incomplete-backup")
        .collect();
    assert_eq!(unreadable, ["unreadable", "unreadable"], "{run:?}");
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(25)).to_rfc3339();
    let run = status(&s3, &policy, &later, false);
    line_with(
        &run,
        &[
            "incomplete-backup: backup cluster-daily-20261128030000 is still without velero-backup.json",
        ],
    );
}

#[test]
fn status_judges_a_daily_schedule_rpo_and_failures() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let dir = tempfile::tempdir().unwrap();
    let daily = |day: &str| {
        with_items(VeleroBackupFixture::new(&format!(
            "cluster-daily-202611{day}030000"
        )))
        .schedule("cluster-daily")
        .started(t(&format!("2026-11-{day}T03:00:00Z")))
        .completed(t(&format!("2026-11-{day}T03:01:10Z")))
    };
    // Another schedule's newer backup must not count for cluster-daily (it would satisfy the
    // 2026-11-25 03:00 run below).
    let other = with_items(VeleroBackupFixture::new("other-daily-20261125030000"))
        .schedule("other-daily")
        .started(t("2026-11-25T03:00:00Z"))
        .completed(t("2026-11-25T03:01:00Z"));
    upload_all(&s3, PREFIX, &[daily("23"), daily("24"), other]);
    std::fs::create_dir(dir.path().join("p")).unwrap();
    let policy = velero_policy(
        &dir.path().join("p"),
        &s3,
        "cluster-daily",
        "0 3 * * *",
        "26h",
    );

    // 2 h after the newest Completed backup: all good.
    let ok = status(&s3, &policy, "2026-11-24T05:01:10Z", false);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.starts_with("OK"), "{ok:?}");
    assert!(
        ok.stdout
            .contains("newest good backup cluster-daily-20261124030000 (2h 0m ago)"),
        "{ok:?}"
    );
    let json = status(&s3, &policy, "2026-11-24T05:01:10Z", true).json();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(
        json["policies"][0]["newest_backup"]["id"], "cluster-daily-20261124030000",
        "{json:#}"
    );
    assert_eq!(
        json["policies"][0]["newest_backup"]["age_seconds"], 7200,
        "{json:#}"
    );

    // 30 h after it: the RPO (26 h) is exceeded and the 2026-11-25 03:00 run never came.
    let late = status(&s3, &policy, "2026-11-25T09:01:10Z", false);
    assert_eq!(late.code, 1, "{late:?}");
    assert!(late.stdout.starts_with("FAIL"), "{late:?}");
    line_with(
        &late,
        &[
            "cluster-daily: rpo: ",
            "cluster-daily-20261124030000",
            "(since 2026-11-25T05:01:10Z)",
        ],
    );
    line_with(
        &late,
        &[
            "cluster-daily: schedule-missed: ",
            "2026-11-25T03:00:00Z",
            "(since 2026-11-25T04:00:00Z)",
        ],
    );
    let mut got = codes(&status(&s3, &policy, "2026-11-25T09:01:10Z", true));
    got.sort();
    assert_eq!(got, ["rpo", "schedule-missed"]);

    // A Failed run newer than the newest Completed backup is reported; an older PartiallyFailed one
    // and another schedule's failure are not. A Completed backup without its tarball and one stuck
    // in Finalizing for more than a day are incomplete.
    let failed = VeleroBackupFixture::new("cluster-daily-20261125030000")
        .phase("Failed")
        .schedule("cluster-daily")
        .started(t("2026-11-25T03:00:00Z"))
        .completed(t("2026-11-25T03:00:40Z"))
        .errors(4)
        .failure_reason("error getting backup storage location: not found")
        .without("cluster-daily-20261125030000.tar.gz");
    let older_partial = with_items(VeleroBackupFixture::new("cluster-daily-20261123150000"))
        .phase("PartiallyFailed")
        .schedule("cluster-daily")
        .started(t("2026-11-23T15:00:00Z"))
        .completed(t("2026-11-23T15:02:00Z"))
        .errors(1);
    let other_failed = VeleroBackupFixture::new("other-daily-20261125040000")
        .phase("Failed")
        .schedule("other-daily")
        .started(t("2026-11-25T04:00:00Z"))
        .completed(t("2026-11-25T04:00:30Z"))
        .errors(9);
    let adhoc = with_items(VeleroBackupFixture::new("cluster-daily-adhoc"))
        .started(t("2026-11-24T12:00:00Z"))
        .completed(t("2026-11-24T12:01:00Z"))
        .without("cluster-daily-adhoc.tar.gz");
    let stuck = with_items(VeleroBackupFixture::new("cluster-daily-20261124010000"))
        .phase("Finalizing")
        .schedule("cluster-daily")
        .started(t("2026-11-24T01:00:00Z"));
    upload_all(
        &s3,
        PREFIX,
        &[failed, older_partial, other_failed, adhoc, stuck],
    );

    let run = status(&s3, &policy, "2026-11-25T05:00:00Z", false);
    assert_eq!(run.code, 1, "{run:?}");
    line_with(
        &run,
        &[
            "cluster-daily: failed-backup: backup cluster-daily-20261125030000 ended Failed (4 errors): error getting backup storage location: not found",
            "(since 2026-11-25T03:00:40Z)",
        ],
    );
    line_with(
        &run,
        &[
            "cluster-daily: incomplete-backup: backup cluster-daily-adhoc is Completed but cluster-daily-adhoc.tar.gz missing",
        ],
    );
    line_with(
        &run,
        &[
            "cluster-daily: incomplete-backup: backup cluster-daily-20261124010000 is still Finalizing",
        ],
    );
    assert!(
        !run.stdout.contains("cluster-daily-20261123150000"),
        "older than the newest good backup: {run:?}"
    );
    assert!(
        !run.stdout.contains("other-daily"),
        "another schedule's backups: {run:?}"
    );
    assert!(
        run.stdout
            .contains("newest good backup cluster-daily-20261124030000"),
        "{run:?}"
    );
    let mut got = codes(&status(&s3, &policy, "2026-11-25T05:00:00Z", true));
    got.sort();
    assert_eq!(
        got,
        [
            "failed-backup",
            "incomplete-backup",
            "incomplete-backup",
            "schedule-missed"
        ],
        "no rpo yet (25h59m old)"
    );

    // A policy without any backup in the bucket.
    let none = velero_policy(dir.path(), &s3, "nightly", "0 1 * * *", "26h");
    let run = status(&s3, &none, "2026-11-25T05:00:00Z", false);
    assert_eq!(run.code, 1, "{run:?}");
    line_with(
        &run,
        &["nightly: no-backup: no Completed backup of policy nightly in "],
    );
}

#[test]
fn tarball_inspection_counts_each_item_once() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let fixture = with_items(VeleroBackupFixture::new("cluster-daily-20261124030000"))
        .schedule("cluster-daily")
        .started(t("2026-11-24T03:00:00Z"))
        .completed(t("2026-11-24T03:01:10Z"))
        .other_version("deployments.apps", "v1beta2");
    fixture.upload(&s3, PREFIX);
    let key = format!(
        "{PREFIX}/backups/cluster-daily-20261124030000/cluster-daily-20261124030000.tar.gz"
    );
    let bytes = s3.get(&key);
    assert_eq!(
        bytes,
        fixture.tarball(),
        "the tarball round-trips through the S3 server"
    );

    // The fixture writes Velero's layout: every item twice (plus the extra API version).
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    for e in archive.entries().unwrap() {
        entries.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(entries[0], "metadata/version");
    assert_eq!(entries.len(), 1 + 7 * 2 + 1, "{entries:#?}");
    for p in [
        "resources/pods/namespaces/app/web-0.json",
        "resources/pods/v1-preferredversion/namespaces/app/web-0.json",
        "resources/namespaces/cluster/app.json",
        "resources/namespaces/v1-preferredversion/cluster/app.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/app/web.json",
        "resources/deployments.apps/v1beta2/namespaces/app/web.json",
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/x.example.com.json",
        "resources/customresourcedefinitions.apiextensions.k8s.io/v1-preferredversion/cluster/x.example.com.json",
    ] {
        assert!(entries.iter().any(|e| e == p), "{p} not in {entries:#?}");
    }

    let counts = openova::velero::inspect_tarball(bytes.as_slice()).expect("inspect the tarball");
    assert_eq!(counts.total, 7, "{counts:#?}");
    assert_eq!(counts.format_version.as_deref(), Some("1.1.0"));
    let expected: BTreeMap<String, BTreeMap<String, u64>> = [
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            vec![("", 1)],
        ),
        ("deployments.apps", vec![("app", 1)]),
        ("namespaces", vec![("", 2)]),
        ("pods", vec![("app", 2), ("db", 1)]),
    ]
    .into_iter()
    .map(|(gr, by_ns)| {
        (
            gr.to_string(),
            by_ns
                .into_iter()
                .map(|(ns, n)| (ns.to_string(), n))
                .collect(),
        )
    })
    .collect();
    assert_eq!(counts.by_resource, expected);

    // Each item read back is the object the fixture wrote (unversioned path).
    let (items, _) = openova::velero::tarball::read_items(bytes.as_slice()).unwrap();
    assert_eq!(items.len(), 7);
    let web0 = items.iter().find(|i| i.name == "web-0").expect("web-0");
    assert_eq!(
        (web0.group_resource.as_str(), web0.namespace.as_deref()),
        ("pods", Some("app"))
    );
    let json: Value = serde_json::from_slice(&web0.json).unwrap();
    assert_eq!(json["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(json["metadata"]["namespace"], "app");
    let names: BTreeSet<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "app",
            "db",
            "web-0",
            "web-1",
            "pg-1",
            "web",
            "x.example.com"
        ])
    );

    // A tarball cut short is an error, never a shorter count.
    assert!(openova::velero::inspect_tarball(&bytes[..bytes.len() / 2]).is_err());

    // The catalog's itemsBackedUp matches what the tarball holds.
    let list = velero_list(&catalog(&s3, "json"));
    assert_eq!(
        by_name(&list, "cluster-daily-20261124030000")["items_backed_up"],
        counts.total
    );
}

/// A Velero location at the bucket root tolerates no other top-level object, so `--apply` writes
/// no lease there: it is refused (saying why) unless `--single-writer`, which then deletes the
/// expired backup and leaves nothing of openova's in the bucket.
#[test]
fn retention_of_a_velero_location_at_the_bucket_root_writes_no_lease() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let old = with_items(VeleroBackupFixture::new("cluster-daily-20261001030000"))
        .schedule("cluster-daily")
        .started(t("2026-10-01T03:00:00Z"))
        .completed(t("2026-10-01T03:01:00Z"))
        .ttl("720h0m0s");
    let new = with_items(VeleroBackupFixture::new("cluster-daily-20261124030000"))
        .schedule("cluster-daily")
        .started(t("2026-11-24T03:00:00Z"))
        .completed(t("2026-11-24T03:01:00Z"))
        .ttl("720h0m0s");
    upload_all(&s3, "", &[old.clone(), new.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("root.yaml");
    std::fs::write(
        &policy,
        format!(
            "kind: VeleroPolicy\nname: cluster-daily\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 25h\n\
             storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
            s3.url(""),
            s3.endpoint()
        ),
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec!["retention", "--policies", policy, "--apply"];
        args.extend(["--at", "2026-11-25T12:00:00Z"]);
        args.extend(extra);
        openova(Some(&s3), &args)
    };
    let before = s3.list_keys("");
    let run = apply(&[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("Velero location at the bucket root")
            && run.stdout.contains("--single-writer"),
        "{run:?}"
    );
    assert_eq!(s3.list_keys(""), before, "nothing written, nothing deleted");

    let run = apply(&["--single-writer"]);
    assert_eq!(run.code, 0, "{run:?}");
    let after = s3.list_keys("");
    assert!(after.iter().all(|k| k.starts_with("backups/")), "{after:?}");
    assert!(
        !after.iter().any(|k| k.contains(old.name())),
        "{after:?} {run:?}"
    );
    assert!(after.iter().any(|k| k.contains(new.name())), "{after:?}");
}
