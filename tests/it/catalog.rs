//! Acceptance of the catalog and status commands against real barman-cloud output in a real S3
//! server: both base backups as backup.info holds them, the window, and an exactly named WAL gap.

use crate::cli::{openova, openova_cmd, postgres_policy};
use crate::support::{Postgres, S3Kind, S3Server, unique_name};
use std::collections::BTreeMap;

/// `backup.info` as plain key/value pairs, read independently of openova's parser.
fn info_fields(s3: &S3Server, key: &str) -> BTreeMap<String, String> {
    let text = String::from_utf8(s3.get(key)).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn python_time_to_rfc3339(t: &str) -> String {
    chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z")
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn catalog_and_gap_on(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    let server = unique_name("pg");
    let pg = Postgres::start(&s3, &server);
    pg.write_rows(50);
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    let first = pg.base_backup();
    let mut between = Vec::new();
    for _ in 0..3 {
        pg.write_rows(20);
        between.push(pg.switch_wal());
    }
    pg.wait_archived(between.last().unwrap());
    let second = pg.base_backup();
    pg.write_rows(10);
    let last = pg.switch_wal();
    pg.wait_archived(&last);

    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, &server, "1s", "1s");
    let run = openova(
        Some(&s3),
        &["catalog", "--output", "json", "--policies", &policy],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["schema"], "openova.catalog/v1");
    let srv = &json["storages"][0]["barman"][0];
    assert_eq!(srv["server"], server.as_str());
    let backups = srv["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{srv:#}");
    for (b, id) in backups.iter().zip([&first, &second]) {
        let info = info_fields(&s3, &format!("cnpg/{server}/base/{id}/backup.info"));
        assert_eq!(b["id"], id.as_str());
        assert_eq!(b["status"], "DONE");
        assert_eq!(b["begin_wal"], info["begin_wal"].as_str());
        assert_eq!(b["end_wal"], info["end_wal"].as_str());
        assert_eq!(
            b["begin_time"],
            python_time_to_rfc3339(&info["begin_time"]).as_str()
        );
        assert_eq!(
            b["end_time"],
            python_time_to_rfc3339(&info["end_time"]).as_str()
        );
    }
    let window = &srv["window"];
    assert_eq!(
        window["earliest"], backups[0]["end_time"],
        "window starts where the first backup ends"
    );
    assert!(window["latest"].as_str().unwrap() >= backups[1]["end_time"].as_str().unwrap());
    assert_eq!(window["gaps"].as_array().unwrap().len(), 0, "{window:#}");
    assert_eq!(srv["wal"]["timelines"][0]["last"], last.as_str());

    // Judged just after the newest WAL, with a window the archive covers: all good.
    let at = (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).to_rfc3339();
    let window_secs = (chrono::Utc::now()
        - chrono::DateTime::parse_from_rfc3339(window["earliest"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc))
    .num_seconds()
        - 1;
    let w = format!("{window_secs}s");
    let policy = postgres_policy(dir.path(), &s3, &server, &w, &w);
    let ok = openova(Some(&s3), &["status", "--policies", &policy, "--at", &at]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.starts_with("OK "), "{ok:?}");

    // Lose one segment between the backups: status names exactly that segment.
    let victim = &between[1];
    s3.delete(&format!("cnpg/{server}/wals/{}/{victim}", &victim[..16]));
    let bad = openova(Some(&s3), &["status", "--policies", &policy, "--at", &at]);
    assert_eq!(bad.code, 1, "{bad:?}");
    let line = format!("WAL gap on timeline 1: segment {victim} is missing");
    assert!(bad.stdout.contains(&line), "expected {line:?} in {bad:?}");
    let json = openova(
        Some(&s3),
        &[
            "status",
            "--output",
            "json",
            "--policies",
            &policy,
            "--at",
            &at,
        ],
    )
    .json();
    let gaps: Vec<_> = json["policies"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["code"] == "wal-gap")
        .collect();
    assert_eq!(gaps.len(), 1, "{json:#}");
    assert!(
        gaps[0]["since"].is_string(),
        "a gap says since when: {json:#}"
    );
}

#[test]
fn catalog_and_gap_on_s3s() {
    catalog_and_gap_on(S3Kind::S3sFs);
}

#[test]
fn catalog_and_gap_on_versitygw() {
    catalog_and_gap_on(S3Kind::Versitygw);
}

/// The JSON log lines on stderr (stderr is not a terminal here).
fn log_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The store events of `op` on `prefix`: each names the request and how long it took.
fn store_events<'a>(
    lines: &'a [serde_json::Value],
    op: &str,
    prefix: &str,
) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|l| l["span"]["name"] == "store" && l["span"]["op"] == op)
        .filter(|l| l["span"]["prefix"] == prefix)
        .filter(|l| {
            l["fields"]["elapsed_ms"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0)
        })
        .collect()
}

/// `OPENOVA_LOG=debug`: every request to the store is an event on stderr naming the operation,
/// the prefix or key and its duration, inside the catalog load's span, which ends with its own
/// duration; stdout still holds only the result.
#[test]
fn debug_logs_name_each_store_request_and_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let wals = dir.path().join("db/wals/0000000100000000");
    std::fs::create_dir_all(&wals).unwrap();
    std::fs::write(wals.join("000000010000000000000001.gz"), b"not read").unwrap();
    let url = format!("file://{}", dir.path().display());
    let out = openova_cmd(None, &["catalog", "--storage", &url, "--output", "json"])
        .env("OPENOVA_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["storages"][0]["barman"][0]["server"], "db");

    let lines = log_lines(&stderr);
    let top = store_events(&lines, "list_dir", "");
    assert!(!top.is_empty(), "the listing of the top: {stderr}");
    assert_eq!(top[0]["level"], "DEBUG");
    assert_eq!(top[0]["fields"]["objects"], 1, "db/: {stderr}");
    assert!(
        top[0]["spans"][0]["name"] == "catalog.load" && top[0]["spans"][0]["url"] == url.as_str(),
        "inside the catalog load: {stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "store"
                && l["span"]["prefix"] == "db/wals/0000000100000000/"),
        "the WAL folder's listing: {stderr}"
    );
    let loaded: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "catalog loaded")
        .collect();
    assert_eq!(loaded.len(), 1, "{stderr}");
    assert!(
        loaded[0]["fields"]["elapsed_ms"].as_f64().is_some(),
        "{stderr}"
    );
    assert_eq!(loaded[0]["fields"]["barman_servers"], 1, "{stderr}");
}

/// The same on S3: the requests are logged, the credentials never, and the SDK's own debug
/// output stays out unless asked for by name.
#[test]
fn debug_logs_on_s3_carry_no_credentials() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    s3.put(
        "cnpg/db/wals/0000000100000000/000000010000000000000001.gz",
        b"x",
    );
    let url = s3.url("cnpg");
    let ep = s3.endpoint();
    let out = openova_cmd(
        Some(&s3),
        &["catalog", "--storage", &url, "--endpoint", &ep],
    )
    .env("OPENOVA_LOG", "debug")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = log_lines(&stderr);
    assert!(!store_events(&lines, "list_dir", "").is_empty(), "{stderr}");
    assert!(
        lines.iter().all(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("openova"))),
        "only openova's own events: {stderr}"
    );
    assert!(
        !stderr.contains(s3.secret_key()) && !stderr.contains(s3.access_key()),
        "no credentials in the log"
    );
}
