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
    let first_full = next_segment(&quiet);
    let mut names = vec![first_full.clone()];
    while names.last().unwrap() != &after_full {
        let next = next_segment(names.last().unwrap());
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

fn next_segment(name: &str) -> String {
    use openova::barman::wal::{name_of, seg_no, split_segment};
    let (tl, log, seg) = split_segment(name).expect("a segment name");
    name_of(tl, seg_no(log, seg, 16 << 20) + 1, 16 << 20)
}

#[test]
fn last_transaction_matches_pg_waldump_plain() {
    reads_like_waldump(&[]);
}

#[test]
fn last_transaction_matches_pg_waldump_gzip() {
    reads_like_waldump(&["--gzip"]);
}
