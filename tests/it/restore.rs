//! Real point-in-time recovery: sentinel rows at known times, a base backup, more rows across
//! WAL switches; `openova restore postgres --start` to a time between two sentinels must bring
//! back exactly the rows up to that time, `latest` all archived rows.

use crate::cli::openova;
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
    let target = times[0] + (times[1] - times[0]) / 2; // between sentinels b and c
    let (url, ep) = (s3.url("cnpg"), s3.endpoint());
    let dir = work.path().join("pitr");
    let port = free_port().to_string();
    let to = target.to_rfc3339();
    let args = [
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--to",
        &to,
    ];
    let dry = openova(
        Some(&s3),
        &[
            &args[..],
            &["--target-dir", dir.to_str().unwrap(), "--dry-run"],
        ]
        .concat(),
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("dry run: nothing downloaded") && !dir.exists(),
        "{dry:?}"
    );
    let run = openova(
        Some(&s3),
        &[
            &args[..],
            &[
                "--target-dir",
                dir.to_str().unwrap(),
                "--start",
                "--port",
                &port,
                "--timeout",
                "120",
            ],
        ]
        .concat(),
    );
    let got = sentinels_in(&dir, port.parse().unwrap());
    stop(&dir);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(got, ["a-before-backup", "b"], "{run:?}");

    let dir = work.path().join("latest");
    let port = free_port().to_string();
    let args = [
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--to",
        "latest",
    ];
    let run = openova(
        Some(&s3),
        &[
            &args[..],
            &[
                "--target-dir",
                dir.to_str().unwrap(),
                "--start",
                "--port",
                &port,
                "--timeout",
                "120",
            ],
        ]
        .concat(),
    );
    let got = sentinels_in(&dir, port.parse().unwrap());
    stop(&dir);
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
    let dir = work.path().join("corrupt");
    let port = free_port().to_string();
    let run = openova(
        Some(&s3),
        &[
            &args[..],
            &[
                "--target-dir",
                dir.to_str().unwrap(),
                "--start",
                "--port",
                &port,
                "--timeout",
                "120",
            ],
        ]
        .concat(),
    );
    stop(&dir);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("ERROR restoring {}", segments_after[1]))
            && run.stderr.contains("truncated or corrupt"),
        "{run:?}"
    );

    // A missing segment: a target past it is outside the window, and the message names it.
    s3.delete(&victim);
    let to = times[2].to_rfc3339();
    let args = [
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--to",
        &to,
    ];
    let run = openova(
        Some(&s3),
        &[
            &args[..],
            &["--target-dir", work.path().join("gap").to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("segment {} is missing", segments_after[1])),
        "{run:?}"
    );

    // Outside the window: after the newest WAL.
    let late = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let args_late = [
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--to",
        &late,
    ];
    let run = openova(
        Some(&s3),
        &[
            &args_late[..],
            &["--target-dir", work.path().join("y").to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("is outside the recoverable window"),
        "{run:?}"
    );

    // Outside the window: before the backup ended.
    let early = (times[0] - chrono::TimeDelta::hours(1)).to_rfc3339();
    let args = [
        "restore",
        "postgres",
        "--storage",
        &url,
        "--server",
        &server,
        "--endpoint",
        &ep,
        "--to",
        &early,
    ];
    let run = openova(
        Some(&s3),
        &[
            &args[..],
            &["--target-dir", work.path().join("x").to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("is outside the recoverable window")
            && run.stderr.contains("restorable "),
        "{run:?}"
    );
}
