//! Every user-facing failure is one clear line naming the endpoint, bucket or object, exit 2,
//! and never a panic; a malformed object marks only its backup unreadable.

use crate::cli::{Run, openova, postgres_policy};
use crate::support::{S3Kind, S3Server};

const PLAIN: &[u8] = include_bytes!("../fixtures/barman/done-plain.backup.info");

fn assert_one_line_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line expected: {run:?}");
    assert!(lines[0].contains(needle), "{needle:?} not in {run:?}");
}

fn storage_errors_on(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    let dead = "http://127.0.0.1:1";
    let run = openova(
        Some(&s3),
        &["catalog", "--storage", &s3.url("cnpg"), "--endpoint", dead],
    );
    assert_one_line_error(&run, "cannot reach the S3 endpoint http://127.0.0.1:1");

    let missing = format!("s3://no-such-bucket-{}/cnpg", std::process::id());
    let run = openova(
        Some(&s3),
        &[
            "catalog",
            "--storage",
            &missing,
            "--endpoint",
            &s3.endpoint(),
        ],
    );
    assert_one_line_error(&run, "bucket 'no-such-bucket-");

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_openova"));
    s3.apply_env(&mut cmd)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = cmd
        .args([
            "catalog",
            "--storage",
            &s3.url("cnpg"),
            "--endpoint",
            &s3.endpoint(),
        ])
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert_one_line_error(&run, "refused the credentials");
    assert!(
        !run.stderr.contains(s3.secret_key()) && !run.stderr.contains("not-the-secret"),
        "secrets never printed"
    );

    // Status reports the unreachable storage per policy, names the endpoint, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, "db", "7d", "5m");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace(&s3.endpoint(), dead);
    std::fs::write(&policy, text).unwrap();
    let run = openova(Some(&s3), &["status", "--policies", &policy]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.starts_with(
            "ERROR db (PostgresPolicy): cannot reach the S3 endpoint http://127.0.0.1:1"
        ),
        "{run:?}"
    );
}

#[test]
fn storage_errors_on_s3s() {
    storage_errors_on(S3Kind::S3sFs);
}

#[test]
fn storage_errors_on_versitygw() {
    storage_errors_on(S3Kind::Versitygw);
}

#[test]
fn a_malformed_backup_info_marks_only_that_backup() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let base = "cnpg/db/base";
    s3.put(&format!("{base}/20261125T142612/backup.info"), PLAIN);
    s3.put(&format!("{base}/20261125T142612/data.tar"), b"tar");
    s3.put(
        &format!("{base}/20261125T150000/backup.info"),
        b"status=DONE\nthis line is garbage\n",
    );
    s3.put(&format!("{base}/20261125T150000/data.tar"), b"tar");
    s3.put(
        "cnpg/db/wals/0000000100000000/000000010000000000000002",
        b"wal",
    );
    let run = openova(
        Some(&s3),
        &[
            "catalog",
            "--output",
            "json",
            "--storage",
            &s3.url("cnpg"),
            "--endpoint",
            &s3.endpoint(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let backups = run.json()["storages"][0]["barman"][0]["backups"].clone();
    assert_eq!(backups[0]["status"], "DONE", "{backups:#}");
    assert_eq!(backups[1]["status"], "UNREADABLE", "{backups:#}");
    let err = backups[1]["error"].as_str().unwrap();
    assert!(
        err.starts_with("db/base/20261125T150000/backup.info: line 2"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, "db", "7d", "5m");
    let run = openova(Some(&s3), &["status", "--policies", &policy]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("db: unreadable: base backup 20261125T150000: db/base/20261125T150000/backup.info: line 2"), "{run:?}");
}

#[test]
fn bad_input_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, "kind: PostgresPolicy\nname: x\n").unwrap();
    let run = openova(None, &["status", "--policies", p.to_str().unwrap()]);
    assert_one_line_error(&run, "p.yaml, document 1 (x): missing field");
    let run = openova(None, &["catalog", "--storage", "http://bucket/x"]);
    assert_one_line_error(&run, "invalid storage URL 'http://bucket/x'");
    let run = openova(
        None,
        &[
            "status",
            "--at",
            "yesterday",
            "--policies",
            p.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("invalid value 'yesterday' for '--at"),
        "{run:?}"
    );
}

/// A `file://` storage whose folder does not exist is a wrong URL (exit 2), not an empty archive.
#[test]
fn a_missing_file_folder_is_an_error() {
    let run = crate::cli::openova(
        None,
        &["catalog", "--storage", "file:///no/such/openova/dir"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("the folder /no/such/openova/dir does not exist (check the file:// URL"),
        "{run:?}"
    );
}

/// An endpoint that accepts connections and never answers: the command ends with a clear error
/// (exit 2) naming the endpoint, the operation and the bound, instead of hanging. The listener is a
/// stand-in for a stalled store: it plays only that (accept, then silence).
#[test]
fn a_silent_endpoint_times_out_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let run: crate::cli::Run = crate::cli::openova_cmd(
        None,
        &[
            "catalog",
            "--storage",
            "s3://silent/p",
            "--endpoint",
            &endpoint,
        ],
    )
    .env("AWS_ACCESS_KEY_ID", "AKIDSILENT")
    .env("AWS_SECRET_ACCESS_KEY", "silent-secret-marker")
    .env("OPENOVA_S3_READ_TIMEOUT", "1")
    .env("OPENOVA_S3_OPERATION_TIMEOUT", "4")
    .output()
    .unwrap()
    .into();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("S3 list of 'p/' on {endpoint} failed after "))
            && run
                .stderr
                .contains("no answer within 1 s (the attempt timeout)")
            && run.stderr.contains("the call's bound of 4 s would pass")
            && run.stderr.contains("OPENOVA_S3_ATTEMPT_TIMEOUT"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("silent-secret-marker") && !run.stderr.contains("ResponseError"),
        "{run:?}"
    );
}
