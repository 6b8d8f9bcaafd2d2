//! Real point-in-time recovery: sentinel rows at known times, a base backup, more rows across
//! WAL switches; `openova restore postgres --start` to a time between two sentinels must bring
//! back exactly the rows up to that time, `latest` all archived rows.

use crate::cli::{Run, openova};
use crate::support::{Postgres, S3Kind, S3Server, free_port, postgres::as_postgres, unique_name};
use std::path::Path;
use std::time::Duration;

fn pg_time(t: &str) -> chrono::DateTime<chrono::Utc> {
    let t = if t.len() > 22 && t.as_bytes()[t.len() - 3] == b'+' {
        format!("{t}:00")
    } else {
        t.to_string()
    };
    chrono::DateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f%:z")
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .with_timezone(&chrono::Utc)
}

fn sentinels_in(dir: &Path, port: u16) -> Vec<String> {
    let out = as_postgres("/usr/lib/postgresql/15/bin/psql")
        .arg("-h")
        .arg(dir)
        .args([
            "-p",
            &port.to_string(),
            "-d",
            "postgres",
            "-At",
            "-c",
            "select label from openova_sentinel order by label",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn stop(dir: &Path) {
    let _ = as_postgres("/usr/lib/postgresql/15/bin/pg_ctl")
        .arg("-D")
        .arg(dir)
        .args(["-m", "immediate", "stop"])
        .output();
}

#[test]
fn point_in_time_restore_brings_back_exactly_the_rows_up_to_the_target() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let server = unique_name("pg");
    let pg = Postgres::start(&s3, &server);
    pg.insert_sentinel("a-before-backup");
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    pg.base_backup();
    let (mut times, mut segments_after) = (Vec::new(), Vec::new());
    for label in ["b", "c", "d"] {
        std::thread::sleep(Duration::from_millis(1100));
        pg.insert_sentinel(label);
        let at = pg.sql(&format!(
            "set timezone = 'UTC'; select at from openova_sentinel where label = '{label}'"
        ));
        times.push(pg_time(at.lines().last().unwrap_or_default()));
        pg.write_rows(10);
        segments_after.push(pg.switch_wal());
    }
    let last = pg.switch_wal();
    pg.wait_archived(&last);

    let work = tempfile::tempdir().unwrap();
    let between = times[0] + (times[1] - times[0]) / 2; // between sentinels b and c
    let dir = work.path().join("pitr");
    let dry = restore(&s3, &server, &between.to_rfc3339(), &dir, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("dry run: nothing downloaded") && !dir.exists(),
        "{dry:?}"
    );
    let (run, got) = restore_started(&s3, &server, &between.to_rfc3339(), &dir);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(got, ["a-before-backup", "b"], "{run:?}");

    let (run, got) = restore_started(&s3, &server, "latest", &work.path().join("latest"));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(got, ["a-before-backup", "b", "c", "d"], "{run:?}");

    // A corrupt (truncated) segment that recovery needs: the restore fails loudly, naming it,
    // instead of ending recovery early and promoting.
    let keys = s3.list_keys(&format!("cnpg/{server}/wals/"));
    let victim = keys
        .iter()
        .find(|k| k.ends_with(&segments_after[1]))
        .unwrap()
        .clone();
    let body = s3.get(&victim);
    s3.put(&victim, &body[..body.len() / 3]);
    let (run, _) = restore_started(&s3, &server, "latest", &work.path().join("corrupt"));
    assert_eq!(run.code, 2, "{run:?}");
    let named = format!("ERROR restoring {}", segments_after[1]);
    assert!(
        run.stderr.contains(&named) && run.stderr.contains("truncated or corrupt"),
        "{run:?}"
    );

    // A missing segment: a target past it is outside the window, and the message names it.
    s3.delete(&victim);
    let run = restore(
        &s3,
        &server,
        &times[2].to_rfc3339(),
        &work.path().join("gap"),
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("segment {} is missing", segments_after[1])),
        "{run:?}"
    );

    // Outside the window: after the newest WAL, and before the backup ended. Given as psql
    // prints a timestamp, and named in the refusal as precisely as it was given.
    for when in [
        chrono::Utc::now() + chrono::TimeDelta::hours(1),
        times[0] - chrono::TimeDelta::hours(1),
    ] {
        use chrono::Timelike;
        let when = when
            .with_nanosecond(when.nanosecond() / 1000 * 1000)
            .unwrap();
        let given = when.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
        let run = restore(&s3, &server, &given, &work.path().join("x"), &[]);
        assert_eq!(run.code, 2, "{run:?}");
        let shown = format!(
            "target {} is outside the recoverable window",
            when.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        );
        assert!(run.stderr.contains(&shown), "{shown}: {run:?}");
        assert!(run.stderr.contains("restorable "), "{run:?}");
    }
}

/// `openova restore postgres --storage ... --server SERVER --to TO --target-dir DIR EXTRA...`
pub(crate) fn restore(s3: &S3Server, server: &str, to: &str, dir: &Path, extra: &[&str]) -> Run {
    let (url, ep, dir) = (
        s3.url("cnpg"),
        s3.endpoint(),
        dir.to_string_lossy().into_owned(),
    );
    let mut args = vec![
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        server,
        "--endpoint",
        &ep,
    ];
    args.extend(["--to", to, "--target-dir", &dir]);
    args.extend(extra);
    openova(Some(s3), &args)
}

/// The same with `--start` on a free port: the run, the sentinel rows the restored server holds;
/// the server is stopped afterwards.
fn restore_started(s3: &S3Server, server: &str, to: &str, dir: &Path) -> (Run, Vec<String>) {
    let port = free_port();
    let p = port.to_string();
    let run = restore(
        s3,
        server,
        to,
        dir,
        &["--start", "--port", &p, "--timeout", "120"],
    );
    let got = sentinels_in(dir, port);
    stop(dir);
    // Recovery over: the prefetch worker's spool (beside the target) is gone.
    let helper = dir.with_file_name(format!(
        ".{}.openova",
        dir.file_name().unwrap().to_string_lossy()
    ));
    assert!(
        run.code != 0 || (helper.is_dir() && !helper.join("spool").exists()),
        "{} should be cleared: {run:?}",
        helper.join("spool").display()
    );
    (run, got)
}

/// A backup with a tablespace: `--tablespace NAME:DIR` restores it into DIR, linked from
/// `pg_tblspc/OID`, and the restored server reads the table that lives there.
#[test]
fn tablespaces_are_restored_and_can_be_relocated() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let server = unique_name("pgts");
    let pg = Postgres::start(&s3, &server);
    let original = pg.dir().join("tbs");
    let made = as_postgres("mkdir")
        .arg("-p")
        .arg(&original)
        .status()
        .unwrap();
    assert!(made.success());
    pg.sql(&format!(
        "create tablespace tbs location '{}'",
        original.display()
    ));
    pg.sql("create table in_tbs (x int) tablespace tbs; insert into in_tbs values (42)");
    let oid = pg.sql("select oid from pg_tablespace where spcname = 'tbs'");
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    pg.base_backup();
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);

    let work = tempfile::tempdir().unwrap();
    let (dir, moved) = (work.path().join("data"), work.path().join("tbs-moved"));
    let rule = format!("tbs:{}", moved.display());
    let dry = restore(
        &s3,
        &server,
        "latest",
        &dir,
        &["--dry-run", "--tablespace", &rule],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains(&format!(
            "tablespace tbs (oid {oid}) into {}",
            moved.display()
        )) && dry
            .stdout
            .contains(&format!("backed up at {}", original.display())),
        "{dry:?}"
    );
    let wrong = restore(&s3, &server, "latest", &dir, &["--tablespace", "nope:/x"]);
    assert_eq!(wrong.code, 2, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("has no tablespace 'nope' (it has: tbs)")
            && !dir.exists(),
        "{wrong:?}"
    );

    let port = free_port();
    let p = port.to_string();
    let run = restore(
        &s3,
        &server,
        "latest",
        &dir,
        &[
            "--tablespace",
            &rule,
            "--start",
            "--port",
            &p,
            "--timeout",
            "120",
        ],
    );
    let got = as_postgres("/usr/lib/postgresql/15/bin/psql")
        .arg("-h")
        .arg(&dir)
        .args([
            "-p",
            &p,
            "-d",
            "postgres",
            "-At",
            "-c",
            "select x from in_tbs",
        ])
        .output()
        .unwrap();
    stop(&dir);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let link = std::fs::read_link(dir.join("pg_tblspc").join(&oid)).unwrap();
    assert_eq!(link, moved);
    assert!(std::fs::read_dir(&moved).unwrap().next().is_some());
}

/// A target inside the window (before the newest segment was archived) but after the last
/// transaction in the WAL: refused before anything is downloaded, naming the last commit's time
/// as the WAL records it and suggesting `--to latest` (PostgreSQL would otherwise stop with
/// "recovery ended before configured recovery target was reached" after the whole download).
/// The target is written as psql prints a timestamptz, which `--to` takes; a time without a zone
/// is refused with a hint.
#[test]
fn a_target_after_the_last_transaction_is_refused_before_download() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let server = unique_name("pgend");
    let pg = Postgres::start(&s3, &server);
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    pg.base_backup();
    pg.insert_sentinel("last");
    let at = pg.sql("set timezone = 'UTC'; select at from openova_sentinel where label = 'last'");
    let last_commit = pg_time(at.lines().last().unwrap_or_default());
    // The segment holding the last commit is archived well after it.
    std::thread::sleep(Duration::from_millis(2500));
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);

    let work = tempfile::tempdir().unwrap();
    let target = (last_commit + chrono::TimeDelta::milliseconds(1200))
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string();
    let past = work.path().join("past");
    let (run, _) = restore_started(&s3, &server, &target, &past);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("is after the last transaction the archive holds")
            && run.stderr.contains("it committed at ")
            && run.stderr.contains("Restore with --to latest"),
        "{run:?}"
    );
    assert!(!past.exists(), "nothing is downloaded before the refusal");
    // The time it names is the commit's, to the microsecond: a little after the sentinel's
    // clock_timestamp(), and a target at it is accepted (a dry run: the plan only).
    let named = run
        .stderr
        .split("it committed at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("a time");
    let named = chrono::DateTime::parse_from_rfc3339(named)
        .expect("RFC 3339")
        .to_utc();
    assert!(
        named >= last_commit && named < last_commit + chrono::TimeDelta::seconds(1),
        "last commit {named} vs the row's time {last_commit}"
    );
    let at = named.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let run = restore(&s3, &server, &at, &work.path().join("at"), &["--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");

    let naive = &target[..target.len() - 3];
    let run = restore(
        &s3,
        &server,
        naive,
        &work.path().join("naive"),
        &["--dry-run"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("has no time zone: add one (Z or +00 for UTC)"),
        "{run:?}"
    );
}
