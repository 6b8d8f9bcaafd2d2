//! DR drills on a real barman-cloud archive: a PostgreSQL archiving with barman-cloud-wal-archive,
//! a base backup by barman-cloud-backup, rows written across WAL switches; `openova drill run`
//! restores oldest/random/latest for real, runs SQL checks, stores its record in the bucket; a
//! check that cannot hold and a budget that cannot be met fail the drill; nothing is left behind.

use crate::cli::{Run, openova, openova_cmd, postgres_policy};
use crate::support::{Postgres, S3Kind, S3Server, unique_name};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A drill file over `points` of `server` with the given checks and budgets.
pub fn drill_file(
    dir: &Path,
    name: &str,
    server: &str,
    points: &str,
    checks: &str,
    budgets: &str,
) -> String {
    let text = format!(
        "kind: Drill\nname: {name}\npostgres:\n  - policy: {server}\n    points: {points}\n    checks:\n{checks}{budgets}"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

pub const GOOD_CHECKS: &str = "      - name: orders exist\n        sql: \"select count(*) from orders where created_at <= :target\"\n        expect: { atLeast: 1 }\n      - name: reference data unchanged\n        sql: \"select id, code from currencies order by id\"\n        expect: { sha256: \"SHA\" }\n";

/// An archive with a base backup and rows written over a few seconds after it.
pub fn archive(s3: &S3Server, server: &str) -> Postgres {
    let pg = Postgres::start(s3, server);
    pg.sql(
        "create table currencies (id int primary key, code text); \
         insert into currencies values (1, 'EUR'), (2, 'USD'); \
         create table orders (id serial, created_at timestamptz default clock_timestamp())",
    );
    pg.sql("insert into orders default values");
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    pg.base_backup();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        pg.sql("insert into orders default values");
        pg.switch_wal();
    }
    let last = pg.switch_wal();
    pg.wait_archived(&last);
    pg
}

fn drill(s3: &S3Server, file: &str, policy: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--output",
        "json",
        "drill",
        "run",
        file,
        "--policies",
        policy,
        "--seed",
        "42",
    ];
    args.extend(extra);
    openova(Some(s3), &args)
}

/// No `openova-drill-*` folder left in `work`, and no PostgreSQL running on one.
fn nothing_left(work: &Path) {
    let left: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let running: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains(&*work.to_string_lossy()))
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
}

#[test]
fn a_drill_over_the_window_passes_and_its_record_is_in_the_bucket() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let server = unique_name("drill");
    let pg = archive(&s3, &server);
    let digest = hex(&Sha256::digest(
        pg.sql("select id, code from currencies order by id")
            .replace('|', "\t"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let work_arg = work.to_string_lossy().into_owned();
    let policy = postgres_policy(dir.path(), &s3, &server, "7d", "1h");
    let checks = GOOD_CHECKS.replace("SHA", &digest);
    let file = drill_file(
        dir.path(),
        "window",
        &server,
        "[oldest, random, latest]",
        &checks,
        "budgets: { rto: 15m, rpo: 1h }\n",
    );
    let reports = dir.path().join("reports");
    let run = drill(
        &s3,
        &file,
        &policy,
        &[
            "--work-dir",
            &work_arg,
            "--report-dir",
            &reports.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("seed 42"), "{run:?}");
    let r = run.json();
    assert_eq!(r["schema"], "openova.drill/v1");
    assert_eq!(r["passed"], true, "{run:?}");
    let points: Vec<&str> = r["postgres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["point"].as_str().unwrap())
        .collect();
    assert_eq!(points, ["oldest", "random", "latest"]);
    for p in r["postgres"].as_array().unwrap() {
        assert_eq!(p["passed"], true, "{p}");
        assert_eq!(p["checks"].as_array().unwrap().len(), 2, "{p}");
        assert!(p["rto_seconds"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["rpo_seconds"].as_f64().is_some(), "{p}");
    }
    // oldest restores fewer orders than latest: the points really are different times.
    let seen = |i: usize| {
        r["postgres"][i]["checks"][0]["seen"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert!(seen(0) < seen(2), "oldest {} latest {}", seen(0), seen(2));
    assert_eq!(seen(2), 5, "latest has every order");
    assert!(
        r["postgres"][2]["achieved"].is_string(),
        "latest replayed transactions"
    );
    nothing_left(&work);

    // The record: three reports, the bundle and its checksum, in the bucket and in --report-dir.
    let keys = s3.list_keys("openova/drills/");
    let folder = r["stored"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    for f in [
        "report.json",
        "report.md",
        "junit.xml",
        "evidence.tar.zst",
        "evidence.tar.zst.sha256",
    ] {
        assert!(
            keys.contains(&format!("openova/drills/{folder}/{f}")),
            "{f} in {keys:?}"
        );
        assert!(
            reports.join(&folder).join(f).is_file(),
            "{f} in --report-dir"
        );
    }
    let bundle = s3.get(&format!("openova/drills/{folder}/evidence.tar.zst"));
    let sum =
        String::from_utf8(s3.get(&format!("openova/drills/{folder}/evidence.tar.zst.sha256")))
            .unwrap();
    assert_eq!(
        sum,
        format!("{}  evidence.tar.zst\n", hex(&Sha256::digest(&bundle)))
    );
    let inside: Vec<String> = openova::drill::record::unbundle(&bundle)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        inside.contains(&"report.json".to_string())
            && inside.iter().filter(|n| n.starts_with("logs/")).count() == 3,
        "{inside:?}"
    );
    let everything: Vec<u8> = keys.iter().flat_map(|k| s3.get(k)).collect();
    assert!(
        !String::from_utf8_lossy(&everything).contains(s3.secret_key()),
        "no secret in the record"
    );
    assert!(
        String::from_utf8_lossy(&s3.get(&format!("openova/drills/{folder}/junit.xml")))
            .contains("failures=\"0\"")
    );

    // history lists it.
    let h = openova(
        Some(&s3),
        &[
            "--output",
            "json",
            "drill",
            "history",
            "--policies",
            &policy,
        ],
    );
    assert_eq!(h.code, 0, "{h:?}");
    let runs = h.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{h:?}");
    assert_eq!(runs[0]["passed"], true);

    // A check that cannot hold fails the drill: exit 1, the testcase failed with query and value.
    let bad = GOOD_CHECKS
        .replace("SHA", &digest)
        .replace("atLeast: 1 }", "atLeast: 1000 }");
    let file = drill_file(dir.path(), "impossible", &server, "[latest]", &bad, "");
    let run = drill(
        &s3,
        &file,
        &policy,
        &[
            "--work-dir",
            &work_arg,
            "--report-dir",
            &reports.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let junit = std::fs::read_dir(&reports)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-impossible"))
        .map(|e| std::fs::read_to_string(e.path().join("junit.xml")).unwrap())
        .unwrap();
    assert!(
        junit.contains("check &quot;orders exist&quot;: expected at least 1000, saw 5"),
        "{junit}"
    );
    assert!(
        junit.contains("query: select count(*) from orders where created_at &lt;= :target"),
        "{junit}"
    );
    nothing_left(&work);

    // A budget that cannot be met fails on the budget, with the value.
    let file = drill_file(
        dir.path(),
        "too-slow",
        &server,
        "[latest]",
        &checks,
        "budgets: { rto: 1s }\n",
    );
    let run = drill(&s3, &file, &policy, &["--work-dir", &work_arg]);
    assert_eq!(run.code, 1, "{run:?}");
    let err = run.json()["postgres"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.starts_with("RTO ") && err.ends_with("s is over the budget of 1 s"),
        "{run:?}"
    );

    // history over three runs; a corrupted report is named, not fatal.
    let keys = s3.list_keys("openova/drills/");
    let reports_in_bucket: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("/report.json"))
        .collect();
    assert_eq!(reports_in_bucket.len(), 3, "{keys:?}");
    s3.put(reports_in_bucket[1], b"{ not json");
    let html = dir.path().join("history.html");
    let h = openova(
        Some(&s3),
        &[
            "drill",
            "history",
            "--policies",
            &policy,
            "--html",
            &html.to_string_lossy(),
        ],
    );
    assert_eq!(h.code, 0, "{h:?}");
    assert!(
        h.stdout.contains("unreadable") && h.stdout.contains("is not a drill report"),
        "{h:?}"
    );
    assert!(h.stdout.contains("over budget"), "{h:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && !page.contains("<script"),
        "self-contained page"
    );
    nothing_left(&work);
}

/// SIGINT in the middle of a drill: it stops what it started and removes its folder.
#[test]
fn an_interrupted_drill_leaves_nothing_behind() {
    let s3 = S3Server::start(S3Kind::Versitygw);
    let server = unique_name("drillint");
    let _pg = archive(&s3, &server);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let policy = postgres_policy(dir.path(), &s3, &server, "7d", "1h");
    let checks = "      - name: slow\n        sql: \"select count(*) from pg_sleep(30)\"\n        expect: { atLeast: 1 }\n";
    let file = drill_file(dir.path(), "interrupted", &server, "[latest]", checks, "");
    let child = openova_cmd(
        Some(&s3),
        &[
            "drill",
            "run",
            &file,
            "--policies",
            &policy,
            "--work-dir",
            &work.to_string_lossy(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until its PostgreSQL runs (the check sleeps), then interrupt.
    let started = std::time::Instant::now();
    loop {
        let running = std::fs::read_dir(&work)
            .unwrap()
            .filter_map(Result::ok)
            .any(|d| {
                std::fs::read_dir(d.path())
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .any(|p| p.path().join("data/postmaster.pid").exists())
            });
        if running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the drill never started PostgreSQL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 130, "{run:?}");
    assert!(run.stderr.contains("interrupted"), "{run:?}");
    nothing_left(&work);
}

/// A WAL gap inside the window: points behind it fail with the gap named (`latest` too, which
/// would otherwise stop early at the gap and look fine); the point before it passes.
#[test]
fn a_wal_gap_fails_the_points_behind_it() {
    let s3 = S3Server::start(S3Kind::Versitygw);
    let server = unique_name("drillgap");
    let pg = archive(&s3, &server);
    // Three more segments with an order each; the middle one goes missing.
    let mut segs = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        pg.sql("insert into orders default values");
        segs.push(pg.switch_wal());
    }
    let last = pg.switch_wal();
    pg.wait_archived(&last);
    let victim = s3
        .list_keys(&format!("cnpg/{server}/wals/"))
        .into_iter()
        .find(|k| k.contains(&segs[1]))
        .unwrap();
    s3.delete(&victim);
    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, &server, "7d", "1h");
    let checks = "      - name: orders exist\n        sql: \"select count(*) from orders\"\n        expect: { atLeast: 1 }\n";
    let file = drill_file(dir.path(), "gap", &server, "[oldest, latest]", checks, "");
    let run = drill(&s3, &file, &policy, &["--no-store"]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    assert_eq!(
        r["postgres"][0]["passed"], true,
        "oldest is before the gap: {run:?}"
    );
    let err = r["postgres"][1]["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "WAL gap: segment {} is missing, so latest reaches only ",
            segs[1]
        )),
        "{run:?}"
    );
}

/// Velero entries: the tarball is read end to end and what `expect` lists must be in it.
#[test]
fn a_velero_backup_is_read_end_to_end_and_checked() {
    use crate::support::velero_fixture::VeleroBackupFixture;
    use serde_json::json;
    let s3 = S3Server::start(S3Kind::S3sFs);
    let obj = |kind: &str, ns: Option<&str>, name: &str| {
        let mut meta = json!({ "name": name });
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({ "apiVersion": "v1", "kind": kind, "metadata": meta })
    };
    VeleroBackupFixture::new("cluster-daily-20261203030000")
        .schedule("cluster-daily")
        .item(
            "deployments.apps",
            Some("shop"),
            "api",
            obj("Deployment", Some("shop"), "api"),
        )
        .item(
            "secrets",
            Some("shop"),
            "db-credentials",
            obj("Secret", Some("shop"), "db-credentials"),
        )
        .item(
            "namespaces",
            None,
            "databases",
            obj("Namespace", None, "databases"),
        )
        .upload(&s3, "velero");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("velero.yaml");
    std::fs::write(
        &policy,
        format!(
            "kind: VeleroPolicy\nname: cluster-daily\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 26h\n\
             storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
            s3.url("velero"),
            s3.endpoint()
        ),
    )
    .unwrap();
    let policy = policy.to_string_lossy().into_owned();
    let write = |name: &str, expect: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, format!("kind: Drill\nname: {name}\nvelero:\n  - policy: cluster-daily\n    expect: {expect}\n")).unwrap();
        path.to_string_lossy().into_owned()
    };
    let good = write(
        "objects",
        "{ namespaces: [databases, shop], resources: [\"deployments.apps/shop/api\", \"secrets/shop/db-credentials\", \"namespaces/databases\"] }",
    );
    let run = drill(&s3, &good, &policy, &["--no-store"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v = &run.json()["velero"][0];
    assert_eq!(v["backup"], "cluster-daily-20261203030000", "{run:?}");
    assert_eq!(v["items"], 3, "{run:?}");

    let missing = write(
        "missing",
        "{ namespaces: [payments], resources: [\"deployments.apps/shop/web\"] }",
    );
    let run = drill(&s3, &missing, &policy, &["--no-store"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.json()["velero"][0]["missing"],
        json!(["namespace payments", "deployments.apps/shop/web"]),
        "{run:?}"
    );

    // A truncated tarball is not readable to its end: the drill fails and says so.
    let key = "velero/backups/cluster-daily-20261203030000/cluster-daily-20261203030000.tar.gz";
    let body = s3.get(key);
    s3.put(key, &body[..body.len() / 2]);
    let run = drill(&s3, &good, &policy, &["--no-store"]);
    assert_eq!(run.code, 1, "{run:?}");
    let err = run.json()["velero"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("is not readable to its end (truncated or corrupt)"),
        "{run:?}"
    );
}

/// A dead endpoint is an error of the drill (exit 2, the endpoint named), not a failed drill, and
/// nothing is left behind.
#[test]
fn a_dead_endpoint_is_an_error_not_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("db.yaml");
    std::fs::write(
        &policy,
        "kind: PostgresPolicy\nname: db\ncluster: { namespace: databases, name: db }\nserverName: db\n\
         baseBackupSchedule: \"0 0 * * *\"\nrecoveryWindow: 7d\nrpo: 1h\n\
         storage: { url: \"s3://nowhere/cnpg\", endpoint: \"http://127.0.0.1:1\" }\n",
    )
    .unwrap();
    let file = drill_file(
        dir.path(),
        "dead",
        "db",
        "[latest]",
        "      - { name: c, sql: \"select 1\", expect: { atLeast: 1 } }\n",
        "",
    );
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run: Run = openova_cmd(
        None,
        &[
            "--output",
            "json",
            "drill",
            "run",
            &file,
            "--policies",
            &policy.to_string_lossy(),
            "--work-dir",
            &work.to_string_lossy(),
        ],
    )
    .env("AWS_ACCESS_KEY_ID", "AKIDEAD")
    .env("AWS_SECRET_ACCESS_KEY", "dead-secret-marker")
    .output()
    .unwrap()
    .into();
    assert!(
        !run.stdout.contains("dead-secret-marker") && !run.stderr.contains("dead-secret-marker")
    );
    assert!(
        run.stderr
            .contains("could not store the drill's record in s3://nowhere"),
        "{run:?}"
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let r = run.json();
    assert_eq!(r["postgres"][0]["errored"], true, "{run:?}");
    assert!(
        r["postgres"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach the S3 endpoint http://127.0.0.1:1"),
        "{run:?}"
    );
    nothing_left(&work);
}
