//! Smoke tests of the test harness itself (`tests/support`): a real PostgreSQL archives WAL and takes a
//! base backup with barman-cloud into a real S3 server, and the result is where CNPG would put it.

use crate::support::{Postgres, S3Kind, S3Server, barman, unique_name};

fn barman_backup_lands_on(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    let server = unique_name("pg");
    let pg = Postgres::start(&s3, &server);

    assert_eq!(pg.write_rows(100), 100);
    pg.insert_sentinel("before-backup");
    let segment = pg.switch_wal();
    pg.wait_archived(&segment);

    let id = pg.base_backup();
    assert_eq!(id.len(), "YYYYMMDDTHHMMSS".len(), "backup id {id:?}");

    // What barman itself sees, run as the current user against the same destination.
    let listed = barman::backup_list(&s3, pg.prefix(), &server);
    let entry = listed
        .iter()
        .find(|b| b.backup_id == id)
        .unwrap_or_else(|| panic!("backup {id} not in barman-cloud-backup-list: {listed:?}"));
    assert_eq!(entry.status, "DONE", "{entry:?}");

    // The objects, as CNPG lays them out: base/ID/backup.info + data.tar, and the archived segment.
    let keys = s3.list_keys(&pg.server_key_prefix());
    let info_key = format!("cnpg/{server}/base/{id}/backup.info");
    assert!(
        keys.contains(&info_key),
        "{info_key} missing; keys: {keys:#?}"
    );
    assert!(
        keys.contains(&format!("cnpg/{server}/base/{id}/data.tar")),
        "data.tar missing; keys: {keys:#?}"
    );
    let wal_key = format!("cnpg/{server}/wals/{}/{segment}", &segment[..16]);
    assert!(
        keys.contains(&wal_key),
        "{wal_key} missing; keys: {keys:#?}"
    );
    // Uncompressed WAL: the object is the segment itself (no aws-chunked framing left in it).
    assert_eq!(
        s3.get(&wal_key).len(),
        16 * 1024 * 1024,
        "size of {wal_key}"
    );

    let info = String::from_utf8(s3.get(&info_key)).expect("backup.info is UTF-8");
    assert!(
        info.lines().any(|l| l == "status=DONE"),
        "backup.info:\n{info}"
    );
    // barman-cloud writes `server_name=cloud` whatever the server folder is called.
    assert!(
        info.lines().any(|l| l.starts_with("end_wal=")),
        "backup.info:\n{info}"
    );
}

#[test]
fn barman_backup_lands_on_s3s() {
    barman_backup_lands_on(S3Kind::S3sFs);
}

#[test]
fn barman_backup_lands_on_versitygw() {
    barman_backup_lands_on(S3Kind::Versitygw);
}

/// The object helpers work on both servers (put / get / list / delete).
#[test]
fn s3_object_helpers_round_trip() {
    for kind in S3Kind::all() {
        let s3 = S3Server::start(kind);
        s3.put("a/b/c.txt", b"hello");
        assert_eq!(s3.get("a/b/c.txt"), b"hello", "{kind}");
        assert_eq!(s3.list_keys("a/"), vec!["a/b/c.txt".to_string()], "{kind}");
        assert!(s3.exists("a/b/c.txt"), "{kind}");
        s3.delete("a/b/c.txt");
        assert!(s3.list_keys("").is_empty(), "{kind}");
    }
}
