//! `openova wal-get` against real barman-cloud-wal-archive output: the bytes equal what
//! barman-cloud-wal-restore writes, prefetch fills the spool, a missing segment exits 1, a
//! corrupt object exits 255 (so PostgreSQL aborts recovery instead of ending it early).

use crate::cli::{Run, openova};
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
    // The first call prefetched the following segments into the spool; the second was served from
    // it, so the third is still waiting there.
    assert!(
        spool.join(&segments[2]).is_file(),
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
fn wal_get_matches_barman_bzip2_on_garage() {
    same_bytes_as_barman_on(S3Kind::Garage, "--bzip2");
}

#[test]
fn wal_get_matches_barman_snappy_on_s3s() {
    same_bytes_as_barman_on(S3Kind::S3sFs, "--snappy");
}

#[test]
fn wal_get_matches_barman_uncompressed_on_garage() {
    same_bytes_as_barman_on(S3Kind::Garage, "");
}
