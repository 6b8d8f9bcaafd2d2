//! The last transaction of real WAL, as openova reads it (`openova::wal::records`), against what
//! `pg_waldump` (PostgreSQL's own tool) says of the same archived segments: plain and gzip
//! segments from barman-cloud-wal-archive, a full segment whose last record continues into the
//! next, and a segment with no transaction at all. A truncated or damaged segment is an error
//! naming it, never a panic and never another time.

use crate::support::postgres::pg_bin;
use crate::support::{Postgres, PostgresConfig, S3Kind, S3Server, unique_name};
use chrono::{DateTime, NaiveDateTime, Utc};
use openova::wal::records::{LastTransaction, Segment, last_transaction};
use std::path::Path;
use std::process::Command;

/// The last `COMMIT`/`ABORT` time `pg_waldump` prints for the segments in `dir` from `first` to
/// `last` (`None`: none). Its errors at the end of the WAL given are expected and ignored.
fn waldump_last(dir: &Path, first: &str, last: &str) -> Option<(DateTime<Utc>, bool)> {
    let out = Command::new(pg_bin("pg_waldump"))
        .arg("-p")
        .arg(dir)
        .args([first, last])
        .env("TZ", "UTC")
        .env("PGTZ", "UTC")
        .output()
        .expect("run pg_waldump");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("rmgr: Transaction"))
        .filter_map(|l| {
            let desc = l.split("desc: ").nth(1)?;
            let (committed, rest) = if let Some(r) = desc.strip_prefix("COMMIT ") {
                (true, r)
            } else if let Some(r) = desc.strip_prefix("ABORT ") {
                (false, r)
            } else {
                return None;
            };
            // `2026-12-03 11:30:00.123456 UTC` (then `;` and details, sometimes).
            let stamp: String = rest.split(" UTC").next()?.to_string();
            let t = NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.f").ok()?;
            Some((t.and_utc(), committed))
        })
        .next_back()
}

fn ours(dir: &Path, names: &[&str]) -> Option<LastTransaction> {
    let data: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let segs: Vec<Segment<'_>> = names
        .iter()
        .zip(&data)
        .map(|(name, data)| Segment { name, data })
        .collect();
    last_transaction(&segs).unwrap_or_else(|e| panic!("{names:?}: {e}"))
}

/// The archived segment `name` of `pg`, decompressed (as wal-get writes it), into `dir`.
fn fetch(s3: &S3Server, pg: &Postgres, name: &str, dir: &Path) {
    let server = pg.server_name();
    let out = crate::cli::openova(
        Some(s3),
        &[
            "wal-get",
            name,
            dir.join(name).to_str().unwrap(),
            "--storage",
            &s3.url("cnpg"),
            "--server",
            server,
            "--endpoint",
            &s3.endpoint(),
            "--prefetch",
            "0",
            "--spool-dir",
            dir.join("spool").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "wal-get {name}: {out:?}");
}

fn same_as_waldump(dir: &Path, names: &[&str], what: &str) -> Option<LastTransaction> {
    let mine = ours(dir, names);
    let theirs = waldump_last(dir, names[0], names[names.len() - 1]);
    assert_eq!(
        mine.map(|t| (t.time, t.committed)),
        theirs,
        "{what}: openova and pg_waldump disagree on {names:?}"
    );
    mine
}

fn reads_like_waldump(compression: &[&str]) {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let config = PostgresConfig {
        wal_archive_args: compression.iter().map(|s| (*s).to_string()).collect(),
        ..PostgresConfig::default()
    };
    let pg = Postgres::start_with(&s3, &unique_name("wal"), &config);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Commits and an abort, then a switch: the segment ends in XLOG_SWITCH and zeros.
    pg.sql("create table t (id serial, v text)");
    for i in 0..20 {
        pg.sql(&format!("insert into t (v) values ('row {i}')"));
    }
    pg.sql("begin; insert into t (v) values ('rolled back'); rollback;");
    pg.sql("begin; insert into t (v) values ('last'); commit;");
    let plain = pg.switch_wal();

    // No transaction at all: a checkpoint, then a switch.
    pg.sql("checkpoint");
    let quiet = pg.switch_wal();

    // A segment filled to the end (no switch): its last record continues into the next one.
    pg.sql("create table big (b text)");
    for _ in 0..40 {
        pg.sql(
            "insert into big select repeat(md5(random()::text), 40) from generate_series(1, 1000)",
        );
    }
    let after_full = pg.switch_wal();
    pg.wait_archived(&after_full);

    for name in [&plain, &quiet] {
        fetch(&s3, &pg, name, d);
    }
    let t = same_as_waldump(d, &[&plain], "a switched segment").expect("commits found");
    assert!(t.committed);
    assert_eq!(same_as_waldump(d, &[&quiet], "a checkpoint only"), None);

    // The full segments before `after_full`: each alone, and each with the one after it.
    let first_full = segment_after(&quiet, 1);
    let mut names = vec![first_full.clone()];
    while names.last().unwrap() != &after_full {
        let next = segment_after(names.last().unwrap(), 1);
        names.push(next);
    }
    for n in &names {
        fetch(&s3, &pg, n, d);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut continued = 0;
    for pair in refs.windows(2) {
        let alone = same_as_waldump(d, &pair[..1], "a full segment alone");
        let both = same_as_waldump(d, pair, "a full segment and the next");
        assert!(both.map(|t| t.time) >= alone.map(|t| t.time), "{pair:?}");
        let first = std::fs::read(d.join(pair[1])).unwrap();
        if u16::from_le_bytes([first[2], first[3]]) & 0x0001 != 0 {
            continued += 1;
        }
    }
    assert!(
        continued > 0,
        "no segment began with a continued record: the case is not covered ({names:?})"
    );

    // Damage: a truncated segment and flipped bytes are errors naming it, or (where the byte is
    // not read: padding, the zeros after a switch) the same answer; never another time.
    let good = std::fs::read(d.join(&plain)).unwrap();
    let expected = ours(d, &[&plain]);
    for cut in [0, 39, 40, 8192, 100_000, good.len() - 1] {
        let e = last_transaction(&[Segment {
            name: &plain,
            data: &good[..cut],
        }])
        .expect_err("a truncated segment");
        assert_eq!(e.segment, plain, "{e}");
    }
    let written = good.iter().rposition(|b| *b != 0).unwrap_or(0) + 1;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % written as u64) as usize;
        let mut bad = good.clone();
        bad[at] ^= 1 << ((state >> 60) % 8);
        match last_transaction(&[Segment {
            name: &plain,
            data: &bad,
        }]) {
            Err(e) => assert_eq!(e.segment, plain, "{e}"),
            Ok(got) => assert_eq!(got, expected, "byte {at} flipped: another answer"),
        }
    }
}

/// The segment `by` after (or before) `name` on its timeline (16 MiB segments).
fn segment_after(name: &str, by: i64) -> String {
    use openova::barman::wal::{name_of, seg_no, split_segment};
    let (tl, log, seg) = split_segment(name).expect("a segment name");
    let no = seg_no(log, seg, 16 << 20)
        .checked_add_signed(by)
        .expect("a segment number");
    name_of(tl, no, 16 << 20)
}

#[test]
fn last_transaction_matches_pg_waldump_plain() {
    reads_like_waldump(&[]);
}

#[test]
fn last_transaction_matches_pg_waldump_gzip() {
    reads_like_waldump(&["--gzip"]);
}

/// psql on a server started by `restore postgres --start` (socket in its data folder).
fn psql_at(dir: &Path, port: u16, sql: &str) -> String {
    let out = crate::support::postgres::as_postgres(pg_bin("psql"))
        .arg("-h")
        .arg(dir)
        .args(["-p", &port.to_string(), "-d", "postgres", "-At", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A real timeline switch: the archive of a running primary (timeline 1) restored and promoted
/// (timeline 2), a transaction on each, timeline 2's segment and history archived by
/// barman-cloud-wal-archive. `status` reports the last transaction of each timeline as pg_waldump
/// reads it, and measures the RPO against the newest timeline's.
#[test]
fn status_reports_the_last_transaction_of_each_timeline_as_pg_waldump_reads_it() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let pg = Postgres::start(&s3, &unique_name("tl"));
    let server = pg.server_name().to_string();
    pg.base_backup();
    pg.sql("create table t (v text)");
    pg.sql("insert into t values ('one')");
    pg.archive_a_segment();

    // Restored to the end and promoted: timeline 2.
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("restored");
    let port = crate::support::free_port();
    let p = port.to_string();
    let run = crate::restore::restore(
        &s3,
        &server,
        "latest",
        &target,
        &["--start", "--port", &p, "--timeout", "120"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    psql_at(&target, port, "create table t2 (v text)");
    psql_at(&target, port, "insert into t2 values ('on timeline 2')");
    let tl2 = psql_at(
        &target,
        port,
        "select pg_walfile_name(pg_current_wal_lsn())",
    );
    assert!(tl2.starts_with("00000002"), "not promoted: {tl2}");
    psql_at(&target, port, "select pg_switch_wal()");
    // Timeline 2's segment and history, archived as CNPG's plugin archives them (before the server
    // stops: its shutdown checkpoint may recycle the segment).
    let wals = s3.list_keys(&format!("{}wals/", pg.server_key_prefix()));
    for file in [tl2.clone(), "00000002.history".to_string()] {
        if wals.iter().any(|k| k.ends_with(&format!("/{file}"))) {
            continue;
        }
        let out = pg
            .barman_cmd("barman-cloud-wal-archive")
            .args([&pg.destination(), &server])
            .arg(target.join("pg_wal").join(&file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = crate::support::postgres::as_postgres(pg_bin("pg_ctl"))
        .arg("-D")
        .arg(&target)
        .args(["-m", "fast", "stop"])
        .output();
    // A later transaction on timeline 1 (the primary goes on).
    pg.sql("insert into t values ('two')");
    let tl1 = pg.switch_wal();
    pg.wait_archived(&tl1);

    let dir = tempfile::tempdir().unwrap();
    let policy = crate::cli::postgres_policy(dir.path(), &s3, &server, "7d", "1h");
    let status = |at: Option<&str>| {
        let mut args = vec!["status", "--policies", policy.as_str(), "--output", "json"];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        crate::cli::openova(Some(&s3), &args)
    };
    let run = status(None);
    let json = run.json();
    let p = &json["policies"][0];
    let lasts = p["last_transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("{p:#}"));
    assert_eq!(lasts.len(), 2, "{p:#}");
    let fetched = dir.path().join("segs");
    std::fs::create_dir_all(&fetched).unwrap();
    for (row, seg) in lasts.iter().zip([&tl1, &tl2]) {
        assert_eq!(row["newest_segment"], seg.as_str(), "{row:#}");
        assert_eq!(row["segment"], seg.as_str(), "{row:#}");
        fetch(&s3, &pg, seg, &fetched);
        let theirs = waldump_last(&fetched, seg, seg).expect("pg_waldump finds a transaction");
        let ours: DateTime<Utc> = row["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            (ours, row["committed"].as_bool().unwrap()),
            theirs,
            "{row:#}"
        );
    }
    // Only the newest segments are read (each timeline's newest holds its last transaction, so
    // that one and at most the one before it), and nothing is written.
    let out = crate::cli::openova_cmd(
        Some(&s3),
        &["status", "--policies", policy.as_str(), "--output", "json"],
    )
    .env("OPENOVA_LOG", "openova::store=debug")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let requests: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["span"]["name"] == "store")
        .map(|l| l["span"].clone())
        .collect();
    assert!(!requests.is_empty(), "no store request logged: {stderr}");
    let allowed = [&tl1, &tl2]
        .iter()
        .flat_map(|s| [(*s).clone(), segment_after(s, -1)])
        .collect::<Vec<_>>();
    let mut segments_read = 0;
    for r in &requests {
        let op = r["op"].as_str().unwrap_or_default();
        assert!(
            matches!(op, "list" | "list_dir" | "list_page" | "get" | "head"),
            "status wrote to the store: {r}"
        );
        let key = r["key"].as_str().unwrap_or_default();
        if op == "get" && key.contains("/wals/") && !key.ends_with(".history") {
            assert!(
                allowed.iter().any(|seg| key.contains(seg.as_str())),
                "{key} is not among the newest segments {allowed:?}"
            );
            segments_read += 1;
        }
    }
    assert!(
        (2..=4).contains(&segments_read),
        "{segments_read} segment reads for two timelines: {stderr}"
    );

    // catalog reports the same per timeline, in its JSON and its text.
    let run = crate::cli::openova(
        Some(&s3),
        &["catalog", "--policies", policy.as_str(), "--output", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    let timelines = json["storages"][0]["barman"][0]["wal"]["timelines"]
        .as_array()
        .unwrap_or_else(|| panic!("{json:#}"))
        .clone();
    assert_eq!(timelines.len(), 2, "{json:#}");
    for (tl, row) in timelines.iter().zip(lasts) {
        assert_eq!(&tl["last_transaction"], row, "{tl:#}");
    }
    let run = crate::cli::openova(Some(&s3), &["catalog", "--policies", policy.as_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    for row in lasts {
        let time: DateTime<Utc> = row["time"].as_str().unwrap().parse().unwrap();
        let line = format!(
            "last transaction: commit at {} (segment {})",
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            row["segment"].as_str().unwrap()
        );
        assert!(run.stdout.contains(&line), "{line} not in:\n{}", run.stdout);
    }

    // The RPO is measured against timeline 2's last transaction.
    let t2: DateTime<Utc> = lasts[1]["time"].as_str().unwrap().parse().unwrap();
    let late = (t2 + chrono::TimeDelta::minutes(61)).to_rfc3339();
    let run = status(Some(&late));
    let v = &run.json()["policies"][0]["violations"];
    let rpo: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["code"] == "rpo")
        .collect();
    assert_eq!(rpo.len(), 1, "{v:#}");
    assert!(
        rpo[0]["message"]
            .as_str()
            .unwrap()
            .contains("last transaction"),
        "{v:#}"
    );
    let soon = (t2 + chrono::TimeDelta::minutes(59)).to_rfc3339();
    let run = status(Some(&soon));
    let v = &run.json()["policies"][0]["violations"];
    assert!(
        !v.as_array().unwrap().iter().any(|v| v["code"] == "rpo"),
        "{v:#}"
    );
}
