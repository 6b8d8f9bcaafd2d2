//! Faults at the store: the fault proxy (`tests/support/fault_proxy.rs`) in front of each real S3
//! server breaks requests of `catalog`, `status`, `retention --apply`, `wal-get`, `restore postgres`
//! and `restore velero --extract`. A transient fault ends in the same answer as a clean run, after
//! retries the proxy saw; a lasting one ends in one clear error and a non-zero exit, within the
//! small bounds set here (2 s per attempt, 6 s per call); no run hangs (a watchdog kills it and
//! fails the test). The secret key appears in no output at any log level.

use crate::cli::{Run, openova_cmd};
use crate::support::barman::{backup_info, py_time, wal_name, xlog};
use crate::support::fault_proxy::{Fault, FaultProxy, Rule};
use crate::support::velero_fixture::VeleroBackupFixture;
use crate::support::{Postgres, S3Kind, S3Server, barman, unique_name};
use chrono::{TimeDelta, Utc};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const PLAIN: &str = include_str!("../fixtures/barman/done-plain.backup.info");
/// A run that takes longer than this hung: with the bounds below every command ends far sooner.
const WATCHDOG: Duration = Duration::from_secs(120);
/// A lasting fault must end the command within this (the call's bound is 6 s; the rest is slack
/// for a loaded machine, not a performance claim).
const BOUND: Duration = Duration::from_secs(45);
const LOG_LEVELS: [&str; 4] = ["error", "info", "debug", "trace"];

/// `openova ARGS` through `proxy`, small bounds, a log level; killed (and the test failed) if it
/// hangs. Returns the run and how long it took.
fn run_via(s3: &S3Server, proxy: &FaultProxy, args: &[&str], log: &str) -> (Run, Duration) {
    let mut cmd = openova_cmd(Some(s3), args);
    cmd.env("OPENOVA_S3_ENDPOINT", proxy.endpoint())
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("OPENOVA_S3_ATTEMPT_TIMEOUT", "2")
        .env("OPENOVA_S3_OPERATION_TIMEOUT", "6")
        .env("OPENOVA_S3_STALL_TIMEOUT", "2")
        .env("OPENOVA_LOG", log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("run openova");
    // Drained while it runs: a full pipe would stall the child (trace logs are long).
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            let tail: String = err
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "openova {args:?} hung for {WATCHDOG:?}:\n--- stdout\n{out}\n--- stderr (end)\n{tail}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (run, took)
}

/// A Barman archive under `cnpg/SERVER` with four DONE backups 30, 20, 10 and 1 days old and the
/// WAL between them: with a 7-day window, the two oldest backups and their WAL are obsolete.
fn seed_old_archive(s3: &S3Server, server: &str) -> (Vec<String>, Vec<String>) {
    let now = Utc::now();
    let mut objects: Vec<(String, String)> = Vec::new();
    let (mut obsolete, mut needed) = (Vec::new(), Vec::new());
    let step = 4u64;
    for (i, days) in [30i64, 20, 10, 1].into_iter().enumerate() {
        let p = 2 + step * i as u64;
        let begin = now - TimeDelta::days(days);
        let end = begin + TimeDelta::seconds(60);
        let id = begin.format("%Y%m%dT%H%M%S").to_string();
        let fields = vec![
            ("begin_time", py_time(begin)),
            ("end_time", py_time(end)),
            ("begin_wal", wal_name(1, p)),
            ("end_wal", wal_name(1, p + 1)),
            ("begin_xlog", xlog(p, 0x28)),
            ("end_xlog", xlog(p + 1, 0x100)),
            ("server_name", server.to_string()),
            ("timeline", "1".to_string()),
        ];
        let base = format!("cnpg/{server}/base/{id}");
        let keys = [
            (format!("{base}/backup.info"), backup_info(PLAIN, &fields)),
            (format!("{base}/data.tar"), format!("tar of {id}")),
        ];
        for (k, v) in keys {
            if i < 2 {
                obsolete.push(k.clone());
            } else {
                needed.push(k.clone());
            }
            objects.push((k, v));
        }
    }
    for p in 1..=(2 + step * 3 + 3) {
        let name = wal_name(1, p);
        let key = format!("cnpg/{server}/wals/{}/{name}", &name[..16]);
        // The WAL from the third backup's begin on is needed.
        if p >= 2 + step * 2 {
            needed.push(key.clone());
        } else {
            obsolete.push(key.clone());
        }
        objects.push((key, format!("wal {name}")));
    }
    let refs: Vec<(&str, &str)> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    barman::put_all(s3, &refs);
    (obsolete, needed)
}

fn policy_file(dir: &Path, s3: &S3Server, proxy: &FaultProxy, server: &str) -> String {
    let text = format!(
        "kind: PostgresPolicy\nname: {server}\ncluster: {{ namespace: db, name: {server} }}\n\
         serverName: {server}\nbaseBackupSchedule: \"0 2 * * *\"\nrecoveryWindow: 7d\nrpo: 2d\n\
         storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
        s3.url("cnpg"),
        proxy.endpoint()
    );
    let path = dir.join(format!("{server}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// No SDK debug structures, no secret, one `ERROR` line naming the proxy's endpoint.
fn assert_clear_error(run: &Run, s3: &S3Server, what: &str) {
    assert_ne!(run.code, 0, "{what}: {run:?}");
    // Log lines (JSON, at the chosen level) may carry details; the messages a user reads may not.
    let messages: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim_start().starts_with('{'))
        .collect();
    // `--output json` carries the error in the report on stdout.
    let messages = format!("{}\n{}", messages.join("\n"), run.stdout);
    for noise in [
        "ResponseError",
        "DispatchFailure",
        "ConnectorError",
        "raw: Response",
        "{ \"",
    ] {
        assert!(
            !messages.contains(noise),
            "{what}: SDK internals ({noise}) in the message: {run:?}"
        );
    }
    assert!(
        messages.contains("127.0.0.1"),
        "{what}: the message names no endpoint: {run:?}"
    );
    assert_no_secret(run, s3, what);
}

fn assert_no_secret(run: &Run, s3: &S3Server, what: &str) {
    assert!(
        !run.stdout.contains(s3.secret_key()) && !run.stderr.contains(s3.secret_key()),
        "{what}: the secret key was printed: {run:?}"
    );
}

/// What a command's answer is, compared between a clean run and one with a transient fault.
fn answer(run: &Run) -> String {
    // Timings and the time of the run differ from run to run; what was found must not.
    let mut v: serde_json::Value = match serde_json::from_str(&run.stdout) {
        Ok(v) => v,
        Err(_) => return run.stdout.clone(),
    };
    strip(&mut v);
    v.to_string()
}

fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| {
                !matches!(
                    k.as_str(),
                    "generatedAt"
                        | "generated_at"
                        | "now"
                        | "at"
                        | "seconds"
                        | "took"
                        | "elapsed"
                        | "durationSeconds"
                        | "duration_seconds"
                        | "downloadSeconds"
                        | "download_seconds"
                        | "extractSeconds"
                        | "extract_seconds"
                        | "age"
                        | "ageSeconds"
                        | "age_seconds"
                        | "rpoSeconds"
                        | "lag"
                )
            });
            m.values_mut().for_each(strip);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// A command's arguments, given a fresh output folder.
type Args<'a> = Box<dyn Fn(&Path) -> Vec<String> + 'a>;

struct Case<'a> {
    name: &'a str,
    /// The arguments, given a fresh output folder.
    args: Args<'a>,
    /// Whether the answer is compared with the clean run's.
    compare: bool,
}

impl Case<'_> {
    /// The command through `proxy` with a fresh output folder (returned, so that a test can
    /// look into what it left).
    fn run(&self, s3: &S3Server, proxy: &FaultProxy, log: &str) -> (Run, Duration, TempDir) {
        let out = tempfile::tempdir().unwrap();
        let args = (self.args)(out.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (run, took) = run_via(s3, proxy, &args, log);
        (run, took, out)
    }
}

fn faults_on(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    let proxy = FaultProxy::start(s3.port());
    let tmp = tempfile::tempdir().unwrap();

    // A real archive: PostgreSQL archiving through barman-cloud, one base backup, WAL after it.
    let server = unique_name("pg");
    let pg = Postgres::start(&s3, &server);
    pg.write_rows(100);
    pg.base_backup();
    let segment = pg.switch_wal();
    pg.wait_archived(&segment);
    drop(pg);
    // A Velero backup, and an old archive for retention to prune.
    VeleroBackupFixture::new("nightly-20261201030000")
        .schedule("nightly")
        .upload(&s3, "velero");
    let old = unique_name("old");
    seed_old_archive(&s3, &old);
    let old_policy = policy_file(tmp.path(), &s3, &proxy, &old);
    let pg_dir = tmp.path().join("pg");
    std::fs::create_dir(&pg_dir).unwrap();
    let pg_policy = policy_file(&pg_dir, &s3, &proxy, &server);

    let (cnpg, velero, ep) = (s3.url("cnpg"), s3.url("velero"), proxy.endpoint());
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    // Judged as of one time, so that every run of `status` can give the same answer.
    let at = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let cases = vec![
        Case {
            name: "catalog",
            args: Box::new(|_| {
                s(&[
                    "catalog",
                    "--output",
                    "json",
                    "--storage",
                    &cnpg,
                    "--endpoint",
                    &ep,
                ])
            }),
            compare: true,
        },
        Case {
            name: "status",
            args: Box::new(|_| {
                s(&[
                    "status",
                    "--output",
                    "json",
                    "--policies",
                    &pg_policy,
                    "--at",
                    &at,
                ])
            }),
            compare: true,
        },
        Case {
            name: "retention --apply",
            args: Box::new(|_| {
                s(&[
                    "retention",
                    "--apply",
                    "--output",
                    "json",
                    "--policies",
                    &old_policy,
                ])
            }),
            compare: false,
        },
        Case {
            name: "wal-get",
            args: Box::new(|out: &Path| {
                let dest = out.join(&segment);
                let spool = out.join("spool");
                s(&[
                    "wal-get",
                    &segment,
                    dest.to_str().unwrap(),
                    "--storage",
                    &cnpg,
                    "--server",
                    &server,
                    "--endpoint",
                    &ep,
                    "--prefetch",
                    "0",
                    "--spool-dir",
                    spool.to_str().unwrap(),
                ])
            }),
            compare: false,
        },
        Case {
            name: "restore postgres",
            args: Box::new(|out: &Path| {
                let dir = out.join("data");
                s(&[
                    "restore",
                    "postgres",
                    "--output",
                    "json",
                    "--storage",
                    &cnpg,
                    "--server",
                    &server,
                    "--endpoint",
                    &ep,
                    "--to",
                    "latest",
                    "--target-dir",
                    dir.to_str().unwrap(),
                ])
            }),
            compare: false,
        },
        Case {
            name: "restore velero --extract",
            args: Box::new(|out: &Path| {
                let dir = out.join("yaml");
                s(&[
                    "restore",
                    "velero",
                    "--output",
                    "json",
                    "--storage",
                    &velero,
                    "--endpoint",
                    &ep,
                    "--backup",
                    "latest",
                    "--extract",
                    dir.to_str().unwrap(),
                ])
            }),
            compare: true,
        },
    ];

    let transient = [
        (
            "throttled twice",
            Rule::new(Fault::SlowDown).first(2),
            Fault::SlowDown,
        ),
        (
            "refused once",
            Rule::new(Fault::Refuse).first(1),
            Fault::Refuse,
        ),
        (
            "no answer once",
            Rule::new(Fault::StallBeforeResponse).nth(1),
            Fault::StallBeforeResponse,
        ),
        (
            "a GET stalls mid-body once",
            Rule::new(Fault::StallMidBody(10)).method("GET").nth(1),
            Fault::StallMidBody(10),
        ),
        (
            "a GET is reset mid-body once",
            Rule::new(Fault::ResetMidBody(10)).method("GET").nth(1),
            Fault::ResetMidBody(10),
        ),
        (
            "a GET closes early once",
            Rule::new(Fault::CloseEarly(10)).method("GET").nth(1),
            Fault::CloseEarly(10),
        ),
        (
            "a downloaded object with a flipped byte once",
            Rule::new(Fault::FlipByte(5))
                .method("GET")
                .not_target("list-type")
                .nth(1),
            Fault::FlipByte(5),
        ),
        (
            "slow bandwidth",
            Rule::new(Fault::Bandwidth(16 << 20)).method("GET"),
            Fault::Bandwidth(16 << 20),
        ),
    ];
    let lasting = [
        ("no answer ever", Rule::new(Fault::StallBeforeResponse)),
        ("always throttled", Rule::new(Fault::SlowDown)),
        (
            "every GET reset mid-body",
            Rule::new(Fault::ResetMidBody(10)).method("GET"),
        ),
        ("every connection refused", Rule::new(Fault::Refuse)),
    ];

    let mut level = LOG_LEVELS.iter().cycle();
    for case in &cases {
        let (clean, _, _) = case.run(&s3, &proxy, "error");
        // `status` says 1: the fresh archive cannot cover a 7-day window yet. That is its answer.
        let code = if case.name == "status" { 1 } else { 0 };
        assert_eq!(
            clean.code, code,
            "{kind}, {} without faults: {clean:?}",
            case.name
        );
        let expected = answer(&clean);

        for (what, rule, fault) in &transient {
            // A flipped byte is caught only where a checksum exists (README, "Checksums on
            // download"); it is tried where the answer is compared, so a miss would show.
            if matches!(fault, Fault::FlipByte(_)) && !case.compare {
                continue;
            }
            proxy.clear();
            proxy.add(rule.clone());
            let before = proxy.count(*fault);
            let (run, _, _) = case.run(&s3, &proxy, level.next().unwrap());
            let label = format!("{kind}, {} with {what}", case.name);
            assert!(
                proxy.count(*fault) > before,
                "{label}: the fault never fired"
            );
            assert_eq!(run.code, code, "{label}: {run:?}");
            if case.compare {
                assert_eq!(answer(&run), expected, "{label}: a different answer");
            }
            assert_no_secret(&run, &s3, &label);
        }
        for (what, rule) in &lasting {
            proxy.clear();
            proxy.add(rule.clone());
            let (run, took, out) = case.run(&s3, &proxy, level.next().unwrap());
            let label = format!("{kind}, {} with {what}", case.name);
            assert_clear_error(&run, &s3, &label);
            assert_ne!(run.code, code, "{label}: the clean run's answer: {run:?}");
            assert!(took < BOUND, "{label}: took {took:?}: {run:?}");
            if case.name == "restore postgres" {
                let data = out.path().join("data");
                let left = std::fs::read_dir(&data).map(Iterator::count).unwrap_or(0);
                assert_eq!(left, 0, "{label}: a failed restore left files in {data:?}");
            }
        }
        proxy.clear();
    }
}

#[test]
fn store_faults_on_s3s() {
    faults_on(S3Kind::S3sFs);
}

#[test]
fn store_faults_on_versitygw() {
    faults_on(S3Kind::Versitygw);
}

/// `retention --apply` cut off by a lasting fault at each of its writes in turn (the lease, the
/// probe's clean-up, the descriptors' batch, the data's batch, the lease's removal): the store it
/// leaves is one `status` reads and that holds everything the policy needs, and the next run,
/// once the store answers again, finishes the job.
fn interrupted_retention_on(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    let proxy = FaultProxy::start(s3.port());
    let tmp = tempfile::tempdir().unwrap();
    let mut points: Vec<(String, Rule)> = vec![(
        "the lease write".into(),
        Rule::new(Fault::SlowDown)
            .method("PUT")
            .target("openova/lease"),
    )];
    for n in 1..=5 {
        points.push((
            format!("delete request {n} on"),
            Rule::new(Fault::SlowDown)
                .method("POST")
                .target("delete")
                .from(n),
        ));
    }
    let mut interrupted = 0;
    for (what, rule) in points {
        let server = unique_name("old");
        let (obsolete, needed) = seed_old_archive(&s3, &server);
        let policy = policy_file(tmp.path(), &s3, &proxy, &server);
        let label = format!("{kind}, retention cut at {what}");

        proxy.clear();
        proxy.add(rule);
        let (run, _) = run_via(
            &s3,
            &proxy,
            &["retention", "--apply", "--policies", &policy],
            "info",
        );
        proxy.clear();
        if run.code != 0 {
            interrupted += 1;
            assert_clear_error(&run, &s3, &label);
        }
        // One listing per check: a lookup per key would start a client per key.
        let held = |s3: &S3Server| -> std::collections::BTreeSet<String> {
            s3.list_keys(&format!("cnpg/{server}/"))
                .into_iter()
                .collect()
        };
        let now = held(&s3);
        for key in &needed {
            assert!(now.contains(key), "{label}: {key} is gone: {run:?}");
        }
        let (status, _) = run_via(
            &s3,
            &proxy,
            &["status", "--output", "json", "--policies", &policy],
            "error",
        );
        let report = status.json();
        assert!(
            report["policies"][0]["error"].is_null() && report["policies"][0]["window"].is_object(),
            "{label}: status cannot read the store it left: {status:?}"
        );

        let (again, _) = run_via(
            &s3,
            &proxy,
            // A run cut between a backup's descriptor and its data leaves the data without a
            // descriptor: an orphan, deleted once older than --grace (24 h by default; the
            // objects here are seconds old).
            &[
                "retention",
                "--apply",
                "--policies",
                &policy,
                "--grace",
                "1s",
            ],
            "error",
        );
        assert_eq!(again.code, 0, "{label}: the next run: {again:?}");
        let now = held(&s3);
        for key in &obsolete {
            assert!(
                !now.contains(key),
                "{label}: {key} is still there after the next run"
            );
        }
        for key in &needed {
            assert!(
                now.contains(key),
                "{label}: {key} is gone after the next run"
            );
        }
        let lease: Vec<String> = s3
            .list_keys("openova/")
            .into_iter()
            // A run cut off mid-probe leaves its small probe object; a later run removes it
            // once it is an hour old (see `retention::lease::probe`).
            .filter(|k| k.contains("lease") && !k.contains(".probe-"))
            .collect();
        assert!(
            lease.is_empty(),
            "{label}: lease objects left behind: {lease:?}"
        );
    }
    assert!(
        interrupted >= 4,
        "{kind}: only {interrupted} runs were cut off"
    );
}

#[test]
fn interrupted_retention_resumes_on_s3s() {
    interrupted_retention_on(S3Kind::S3sFs);
}

#[test]
fn interrupted_retention_resumes_on_versitygw() {
    interrupted_retention_on(S3Kind::Versitygw);
}

/// Every file under `dir`, read as text where it is (reports, logs, YAML, the data directory).
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            hits.push(path);
        }
    }
    hits
}

/// The secret key as a marker (the server's key is random: it occurs nowhere by chance): every
/// subcommand, at every log level (the AWS SDK's and HTTP stack's own traces included), with and
/// without faults, never writes it to stdout, stderr, a report, a spool log, an extracted file or
/// a record in the bucket. A drill under throttling still passes; under a dead store it ends in
/// one clear error within the bound.
#[test]
fn the_secret_key_is_never_printed_or_stored() {
    use crate::drill::{GOOD_CHECKS, archive, drill_file, hex};
    use sha2::{Digest, Sha256};

    let s3 = S3Server::start(S3Kind::S3sFs);
    let proxy = FaultProxy::start(s3.port());
    let marker = s3.secret_key().to_string();
    let server = unique_name("secret");
    let pg = archive(&s3, &server);
    let digest = hex(&Sha256::digest(
        pg.sql("select id, code from currencies order by id")
            .replace('|', "\t"),
    ));
    let segment = pg.current_wal();
    drop(pg);
    VeleroBackupFixture::new("nightly-20261201030000")
        .schedule("nightly")
        .upload(&s3, "velero");
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), &s3, &proxy, &server);
    let drill = drill_file(
        tmp.path(),
        "secret",
        &server,
        "[latest]",
        &GOOD_CHECKS.replace("SHA", &digest),
        "",
    );
    let (cnpg, velero, ep) = (s3.url("cnpg"), s3.url("velero"), proxy.endpoint());
    let levels = [
        "error",
        "warn",
        "info",
        "debug",
        "trace",
        "trace,aws_smithy_runtime=trace,aws_sigv4=trace,aws_config=trace,hyper=trace,hyper_util=trace",
    ];
    let faults: [Option<Rule>; 2] = [None, Some(Rule::new(Fault::SlowDown).first(2))];
    for level in levels {
        for fault in &faults {
            let out = tempfile::tempdir().unwrap();
            let o = |p: &str| out.path().join(p).to_string_lossy().into_owned();
            let (dest, spool, data, yaml) = (o("wal"), o("spool"), o("data"), o("yaml"));
            let commands: Vec<Vec<&str>> = vec![
                vec!["catalog", "--storage", &cnpg, "--endpoint", &ep],
                vec!["status", "--policies", &policy],
                vec!["retention", "--policies", &policy],
                vec!["retention", "--apply", "--policies", &policy],
                vec![
                    "wal-get",
                    &segment,
                    &dest,
                    "--storage",
                    &cnpg,
                    "--server",
                    &server,
                    "--endpoint",
                    &ep,
                    "--spool-dir",
                    &spool,
                ],
                vec![
                    "restore",
                    "postgres",
                    "--policies",
                    &policy,
                    "--policy",
                    &server,
                    "--to",
                    "latest",
                    "--target-dir",
                    &data,
                    "--dry-run",
                ],
                vec![
                    "restore",
                    "velero",
                    "--storage",
                    &velero,
                    "--endpoint",
                    &ep,
                    "--backup",
                    "latest",
                    "--extract",
                    &yaml,
                ],
                vec![
                    "drill",
                    "history",
                    "--policies",
                    &policy,
                    "--policy",
                    &server,
                ],
                vec!["--help"],
                vec![
                    "catalog",
                    "--storage",
                    &cnpg,
                    "--endpoint",
                    &ep,
                    "--no-such-flag",
                ],
            ];
            for args in commands {
                proxy.clear();
                if let Some(rule) = fault {
                    proxy.add(rule.clone());
                }
                let (run, _) = run_via(&s3, &proxy, &args, level);
                let label = format!("{args:?} at {level}, fault {fault:?}");
                assert_no_secret(&run, &s3, &label);
            }
            let hits = files_containing(out.path(), &marker);
            assert!(hits.is_empty(), "the secret is in {hits:?}");
        }
    }

    // A drill, throttled at first: it passes, and neither its report nor its record holds the key.
    let reports = tmp.path().join("reports");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let (reports_arg, work_arg) = (
        reports.to_string_lossy().into_owned(),
        work.to_string_lossy().into_owned(),
    );
    proxy.clear();
    // Two, not three: after three the next backoff (2–4 s, random) can pass run_via's 6 s bound,
    // and the drill then rightly gives up (seen in CI): this test is about what gets printed.
    proxy.add(Rule::new(Fault::SlowDown).first(2));
    let (run, _) = run_via(
        &s3,
        &proxy,
        &[
            "--output",
            "json",
            "drill",
            "run",
            &drill,
            "--policies",
            &policy,
            "--report-dir",
            &reports_arg,
            "--work-dir",
            &work_arg,
        ],
        "debug",
    );
    assert!(proxy.count(Fault::SlowDown) >= 2, "the fault never fired");
    assert_eq!(run.code, 0, "a throttled drill: {run:?}");
    assert_no_secret(&run, &s3, "drill run");
    let hits = files_containing(&reports, &marker);
    assert!(hits.is_empty(), "the secret is in {hits:?}");
    proxy.clear();
    for key in s3.list_keys("openova/drills/") {
        let body = s3.get(&key);
        assert!(
            !body.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "the secret is in the stored record {key}"
        );
    }

    // A drill against a store that never answers: one clear error, exit 2, within the bound.
    proxy.add(Rule::new(Fault::StallBeforeResponse));
    let (run, took) = run_via(
        &s3,
        &proxy,
        &[
            "drill",
            "run",
            &drill,
            "--policies",
            &policy,
            "--work-dir",
            &work_arg,
            "--no-store",
        ],
        "error",
    );
    assert_clear_error(&run, &s3, "a drill against a silent store");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(took < BOUND, "took {took:?}: {run:?}");
}
