//! `openova wal-get` against real barman-cloud-wal-archive output: the bytes equal what
//! barman-cloud-wal-restore writes, prefetch fills the spool, a missing segment exits 1, a
//! corrupt object exits 255 (so PostgreSQL aborts recovery instead of ending it early).

use crate::cli::{Run, openova, openova_cmd, postgres_policy};
use crate::support::{Postgres, PostgresConfig, S3Kind, S3Server, barman, unique_name};

fn wal_get(
    s3: &S3Server,
    server: &str,
    name: &str,
    dest: &std::path::Path,
    spool: &std::path::Path,
) -> Run {
    let (d, sp) = (dest.to_str().unwrap(), spool.to_str().unwrap());
    let url = s3.url("cnpg");
    let ep = s3.endpoint();
    openova(
        Some(s3),
        &[
            "wal-get",
            name,
            d,
            "--storage",
            &url,
            "--server",
            server,
            "--endpoint",
            &ep,
            "--spool-dir",
            sp,
        ],
    )
}

/// Polls `cond` for up to 20 s.
fn wait_until(cond: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

fn same_bytes_as_barman_on(kind: S3Kind, compression: &str) {
    let s3 = S3Server::start(kind);
    let server = unique_name("pg");
    let args = if compression.is_empty() {
        vec![]
    } else {
        vec![compression.to_string()]
    };
    let config = PostgresConfig {
        wal_archive_args: args,
        ..PostgresConfig::default()
    };
    let pg = Postgres::start_with(&s3, &server, &config);
    let mut segments = Vec::new();
    for _ in 0..3 {
        pg.write_rows(20);
        segments.push(pg.switch_wal());
    }
    pg.wait_archived(segments.last().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    for seg in &segments[..2] {
        let theirs = dir.path().join(format!("{seg}.barman"));
        barman::run(
            &s3,
            "barman-cloud-wal-restore",
            &[&s3.url("cnpg"), &server, seg, theirs.to_str().unwrap()],
        );
        let ours = dir.path().join(format!("{seg}.openova"));
        let run = wal_get(&s3, &server, seg, &ours, &spool);
        assert_eq!(run.code, 0, "{run:?}");
        let (a, b) = (
            std::fs::read(&theirs).unwrap(),
            std::fs::read(&ours).unwrap(),
        );
        assert_eq!(a.len(), 16 << 20);
        assert!(
            a == b,
            "{seg}: openova wal-get wrote different bytes than barman-cloud-wal-restore"
        );
    }
    // The calls started a prefetch worker, which fetches what follows the last asked segment.
    assert!(
        wait_until(|| spool.join(&segments[2]).is_file()),
        "prefetched {} into the spool",
        segments[2]
    );

    let missing = "0000000100000000000000F0";
    let run = wal_get(&s3, &server, missing, &dir.path().join("m"), &spool);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!dir.path().join("m").exists());
    // Inside what the restore plan needs, a missing segment is an error, not the end of recovery.
    let (d, sp) = (dir.path().join("m"), spool.to_str().unwrap().to_string());
    let (url, ep) = (s3.url("cnpg"), s3.endpoint());
    let args = [
        "wal-get",
        missing,
        d.to_str().unwrap(),
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--spool-dir",
        &sp,
        "--needed-until",
        "0000000100000000000000FF",
    ];
    let run = openova(Some(&s3), &args);
    assert_eq!(run.code, 255, "{run:?}");
    assert!(
        run.stderr.contains("is missing from the archive"),
        "{run:?}"
    );

    // A truncated upload: half of a real compressed object under a fresh segment name.
    let key = s3
        .list_keys(&format!("cnpg/{server}/wals/"))
        .into_iter()
        .find(|k| k.contains(&segments[0]))
        .unwrap();
    let body = s3.get(&key);
    let fake = "0000000100000000000000E0";
    let suffix = key.rsplit_once(segments[0].as_str()).unwrap().1;
    s3.put(
        &format!("cnpg/{server}/wals/0000000100000000/{fake}{suffix}"),
        &body[..body.len() / 2],
    );
    let run = wal_get(&s3, &server, fake, &dir.path().join("c"), &spool);
    assert_eq!(run.code, 255, "{run:?}");
    assert!(
        run.stderr.contains(&format!("ERROR restoring {fake}")),
        "{run:?}"
    );
    assert!(
        !dir.path().join("c").exists(),
        "nothing written for a corrupt object"
    );
}

#[test]
fn wal_get_matches_barman_gzip_on_s3s() {
    same_bytes_as_barman_on(S3Kind::S3sFs, "--gzip");
}

#[test]
fn wal_get_matches_barman_bzip2_on_versitygw() {
    same_bytes_as_barman_on(S3Kind::Versitygw, "--bzip2");
}

#[test]
fn wal_get_matches_barman_snappy_on_s3s() {
    same_bytes_as_barman_on(S3Kind::S3sFs, "--snappy");
}

#[test]
fn wal_get_matches_barman_uncompressed_on_versitygw() {
    same_bytes_as_barman_on(S3Kind::Versitygw, "");
}

/// `wal-get --policy`: a PostgresPolicy names the storage, its endpoint and the server, as for
/// the other commands, and the prefetch worker the call starts reaches the archive the same way.
/// A policy of the wrong kind, or no archive named at all, is an error (255), never "not found".
#[test]
fn wal_get_takes_the_archive_from_a_policy() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let server = unique_name("pol");
    let pg = Postgres::start(&s3, &server);
    let mut segments = Vec::new();
    for _ in 0..2 {
        pg.write_rows(20);
        segments.push(pg.switch_wal());
    }
    pg.wait_archived(segments.last().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, &server, "7d", "1h");
    let spool = dir.path().join("spool");
    let by_policy = |seg: &str, dest: &std::path::Path, policy: &str| {
        let (d, sp) = (dest.to_str().unwrap(), spool.to_str().unwrap());
        let args = ["wal-get", seg, d, "--policy", &server, "--policies", policy];
        openova(Some(&s3), &[&args[..], &["--spool-dir", sp]].concat())
    };

    let theirs = dir.path().join("theirs");
    barman::run(
        &s3,
        "barman-cloud-wal-restore",
        &[
            &s3.url("cnpg"),
            &server,
            &segments[0],
            theirs.to_str().unwrap(),
        ],
    );
    let ours = dir.path().join("ours");
    let run = by_policy(&segments[0], &ours, &policy);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        std::fs::read(&theirs).unwrap() == std::fs::read(&ours).unwrap(),
        "the bytes barman-cloud-wal-restore writes"
    );
    // The worker was started with the policy too: it fetches the next segment.
    assert!(
        wait_until(|| spool.join(&segments[1]).is_file()),
        "the worker prefetched {} through the policy",
        segments[1]
    );
    let run = by_policy(&segments[1], &dir.path().join("next"), &policy);
    assert_eq!(run.code, 0, "{run:?}");

    // A VeleroPolicy names no Barman archive.
    let velero = dir.path().join("velero.yaml");
    let text = format!(
        "kind: VeleroPolicy\nname: {server}\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 26h\n\
         storage: {{ url: \"{}\" }}\n",
        s3.url("velero")
    );
    std::fs::write(&velero, text).unwrap();
    let run = by_policy(
        &segments[1],
        &dir.path().join("v"),
        velero.to_str().unwrap(),
    );
    assert_eq!(run.code, 255, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "policy {server} is a VeleroPolicy; wal-get needs a PostgresPolicy"
        )),
        "{run:?}"
    );
    // Neither a policy nor a storage: an error, not the end of recovery.
    let dest = dir.path().join("none");
    let run = openova(
        Some(&s3),
        &["wal-get", &segments[1], dest.to_str().unwrap()],
    );
    assert_eq!(run.code, 255, "{run:?}");
    assert!(
        run.stderr
            .contains("give --policy NAME, or --storage URL and --server NAME"),
        "{run:?}"
    );
    // Both: a usage error, which wal-get reports with its error code too.
    let url = s3.url("cnpg");
    let args = [
        "wal-get",
        &segments[1],
        dest.to_str().unwrap(),
        "--policy",
        &server,
    ];
    let run = openova(
        Some(&s3),
        &[&args[..], &["--storage", &url, "--server", &server]].concat(),
    );
    assert_eq!(run.code, 255, "{run:?}");
    assert!(!dest.exists());
}

/// A 16 MiB segment as PostgreSQL 15 writes one: a long page header declaring the segment size,
/// some record bytes unique to `no`, zeros after.
fn synthetic_segment(no: u64) -> Vec<u8> {
    let mut seg = vec![0u8; 16 << 20];
    seg[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    seg[2..4].copy_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
    seg[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    for (i, b) in seg[40..100_000].iter_mut().enumerate() {
        *b = (i as u64 * 7 + no * 13) as u8;
    }
    seg
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// The prefetch worker on a file:// archive: a sequence of calls is served right, the worker
/// keeps no more than its window in the spool, a corrupt object it met is still reported by the
/// call that needs it, and it exits when idle or when its spool goes.
#[test]
fn prefetch_worker_serves_a_sequence_and_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let wals = dir.path().join("archive/db/wals/0000000100000000");
    std::fs::create_dir_all(&wals).unwrap();
    let name = |no: u64| format!("00000001000000000000{no:04X}");
    for no in 1..=20 {
        std::fs::write(
            wals.join(format!("{}.gz", name(no))),
            gzip(&synthetic_segment(no)),
        )
        .unwrap();
    }
    // Segment 15 is a truncated upload.
    let bad = gzip(&synthetic_segment(15));
    std::fs::write(wals.join(format!("{}.gz", name(15))), &bad[..bad.len() / 2]).unwrap();
    let storage = format!("file://{}", dir.path().join("archive").display());
    let spool = dir.path().join("spool");
    let call = |no: u64, idle: &str| {
        let dest = dir.path().join("RECOVERYXLOG");
        let _ = std::fs::remove_file(&dest); // as PostgreSQL does before each call
        let (d, sp) = (dest.to_str().unwrap(), spool.to_str().unwrap());
        let args = ["wal-get", &name(no), d, "--storage", &storage];
        let out = openova_cmd(None, &args)
            .args(["--server", "db", "--spool-dir", sp])
            .env("OPENOVA_PREFETCH_IDLE_SECS", idle)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (code, std::fs::read(&dest).ok(), stderr)
    };
    let worker_pid = || {
        std::fs::read_to_string(spool.join(".worker.lock"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    };
    // Running, not a zombie waiting for a reaper (its parent, the call, is long gone).
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };

    for no in 1..=14 {
        let (code, got, stderr) = call(no, "60");
        assert_eq!(code, 0, "{}: {stderr}", name(no));
        assert!(
            got.unwrap() == synthetic_segment(no),
            "{}: wrong bytes",
            name(no)
        );
    }
    let pid = worker_pid().expect("a worker wrote its pid");
    assert!(alive(pid), "the worker runs while recovery goes on");
    // Its window after 14 is 15..=22: 16..=20 are spooled, 15 (corrupt) and 21, 22 (absent) not.
    assert!(
        wait_until(|| spool.join(name(20)).is_file()),
        "20 prefetched"
    );
    let spooled = |no: u64| spool.join(name(no)).is_file();
    assert!(!spooled(15) && !spooled(21) && (1..=14).all(|n| !spooled(n)));
    // What the worker could not fetch, the call fetches itself and reports.
    let (code, got, stderr) = call(15, "60");
    assert_eq!(code, 255, "{stderr}");
    assert!(stderr.contains("cannot decompress"), "{stderr}");
    assert!(got.is_none());
    for no in 16..=20 {
        let (code, got, stderr) = call(no, "60");
        assert_eq!(code, 0, "{}: {stderr}", name(no));
        assert!(got.unwrap() == synthetic_segment(no));
    }
    let (code, _, stderr) = call(21, "60");
    assert_eq!(code, 1, "past the end of the archive: not found ({stderr})");

    // Another archive with the same server and segment names, through the same spool while the
    // worker fills it for the first: its own bytes, never the spooled ones.
    let other = dir.path().join("other/db/wals/0000000100000000");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join(format!("{}.gz", name(22))),
        gzip(&synthetic_segment(122)),
    )
    .unwrap();
    std::fs::write(spool.join(name(22)), synthetic_segment(22)).unwrap(); // as if prefetched
    let other_url = format!("file://{}", dir.path().join("other").display());
    let dest = dir.path().join("OTHER");
    let args = [
        "wal-get",
        &name(22),
        dest.to_str().unwrap(),
        "--storage",
        &other_url,
    ];
    let out = openova_cmd(None, &args)
        .args(["--server", "db", "--spool-dir", spool.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        std::fs::read(&dest).unwrap() == synthetic_segment(122),
        "the other archive's bytes"
    );
    assert!(
        spool.join(name(22)).is_file(),
        "the live worker's spool is left alone"
    );
    // Removing the spool's lock (as `openova restore` does once recovery is over) ends it.
    std::fs::remove_file(spool.join(".worker.lock")).unwrap();
    assert!(
        wait_until(|| !alive(pid)),
        "the worker exits when its spool goes"
    );

    // A spool left behind (no worker) by another archive is emptied before use; files that are
    // not openova's stay.
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join(".source"), "storage=s3://elsewhere\n").unwrap();
    std::fs::write(spool.join(name(4)), synthetic_segment(999)).unwrap();
    std::fs::write(spool.join("notes.txt"), "mine").unwrap();
    // A fresh worker with a 1 s idle timeout exits on its own after the last call.
    let (code, _, stderr) = call(3, "1");
    assert_eq!(code, 0, "{stderr}");
    assert!(wait_until(|| worker_pid().is_some()));
    let pid = worker_pid().unwrap();
    assert!(wait_until(|| !alive(pid)), "an idle worker exits");
    assert_eq!(
        std::fs::read_to_string(spool.join("notes.txt")).unwrap(),
        "mine"
    );
    let (code, got, stderr) = call(4, "1");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        got.unwrap() == synthetic_segment(4),
        "not the stale spooled segment"
    );
}
