//! Not a test: regenerates `tests/fixtures/barman/*.backup.info` from real barman-cloud output.
//! Run with `cargo test --test it capture_barman_fixtures -- --ignored`.

use crate::support::{Postgres, S3Kind, S3Server};

#[test]
#[ignore = "writes tests/fixtures; run by hand to refresh the captured backup.info files"]
fn capture_barman_fixtures() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let pg = Postgres::start(&s3, "platform-db");
    pg.write_rows(10);
    let seg = pg.switch_wal();
    pg.wait_archived(&seg);
    let plain = pg.base_backup();
    let named = pg.base_backup_with(&["--name", "before-upgrade", "--gzip"]);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/barman");
    std::fs::create_dir_all(&out).unwrap();
    for (id, file) in [(plain, "done-plain"), (named, "done-named-gzip")] {
        let body = s3.get(&format!("cnpg/platform-db/base/{id}/backup.info"));
        std::fs::write(out.join(format!("{file}.backup.info")), body).unwrap();
    }
}
