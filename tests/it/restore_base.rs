//! The base backup's download and extraction at scale, on synthetic Barman Cloud archives in a
//! `file://` store (the store is not what these tests are about; `restore.rs` restores real
//! barman-cloud backups from real S3 servers): a 5 GiB backup in five split tars restores with a
//! peak resident size under 256 MiB, no larger than one of a quarter its size, and every byte
//! lands where it belongs; a truncated tar fails clearly and leaves the target as it was, and so
//! does a restore stopped by SIGINT or SIGTERM (also while the store hangs, behind the fault proxy
//! in front of a real S3 server). And real barman-cloud backups in every compression, and split
//! into parts, restore as barman-cloud-restore restores them.
//!
//! The tars are sparse files: a header per entry and a 4 KiB non-zero marker every 64 MiB of
//! content, holes between. A restore still moves every byte through the whole pipeline (ranged
//! reads, the tar reader, the zero check); what it does not do is write the zeros (it allocates them).

use crate::cli::{Run, openova};
use crate::support::fault_proxy::{Fault, FaultProxy, Rule};
use crate::support::{Postgres, S3Kind, S3Server, barman, unique_name};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const INFO: &str = include_str!("../fixtures/barman/done-plain.backup.info");
const SERVER: &str = "cloud";
const BACKUP: &str = "20261125T142601";
const MARK_EVERY: u64 = 64 << 20;
const MARK_LEN: usize = 4096;
const MIB: u64 = 1 << 20;

/// One file of a synthetic backup: where it goes, its size, the seed of its markers.
struct Member {
    path: String,
    size: u64,
    seed: u8,
}

impl Member {
    fn marker(&self, k: u64) -> Vec<u8> {
        vec![(self.seed.wrapping_add(k as u8)) | 1; MARK_LEN]
    }

    fn marks(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.size.div_ceil(MARK_EVERY))
            .filter(|k| k * MARK_EVERY + MARK_LEN as u64 <= self.size)
    }
}

/// A tar at `path` holding `dirs` (folders) and `files`, sparse; returns its size.
fn sparse_tar(path: &Path, dirs: &[&str], files: &[Member]) -> u64 {
    let f = File::create(path).unwrap();
    let mut at = 0u64;
    let header = |name: &str, size: u64, kind: tar::EntryType, mode: u32, at: &mut u64| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_764_080_761);
        h.set_cksum();
        f.write_all_at(h.as_bytes(), *at).unwrap();
        *at += 512;
    };
    for d in dirs {
        header(d, 0, tar::EntryType::Directory, 0o700, &mut at);
    }
    for m in files {
        header(&m.path, m.size, tar::EntryType::Regular, 0o600, &mut at);
        for k in m.marks() {
            f.write_all_at(&m.marker(k), at + k * MARK_EVERY).unwrap();
        }
        at += m.size.div_ceil(512) * 512;
    }
    at += 1024; // the end-of-archive marker: two zero blocks
    f.set_len(at).unwrap();
    at
}

/// A `file://` archive of server `cloud` with one DONE backup (its WAL archived) whose data tar
/// parts are `parts` (file name, members); returns the storage URL and the tars' total size.
fn archive(root: &Path, parts: &[(String, Vec<Member>)]) -> (String, u64) {
    let base = root.join(SERVER).join("base").join(BACKUP);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("backup.info"), INFO).unwrap();
    let wals = root.join(SERVER).join("wals").join("0000000100000000");
    std::fs::create_dir_all(&wals).unwrap();
    std::fs::write(wals.join("000000010000000000000002"), vec![0u8; 8192]).unwrap();
    let mut total = 0;
    for (i, (name, members)) in parts.iter().enumerate() {
        let dirs: &[&str] = if i == 0 {
            &["base/", "base/16384/", "global/"]
        } else {
            &[]
        };
        total += sparse_tar(&base.join(name), dirs, members);
    }
    (format!("file://{}", root.display()), total)
}

/// `restore postgres --storage URL --server cloud --to latest --target-dir DIR`.
fn restore_args<'a>(url: &'a str, dir: &'a Path) -> [&'a str; 10] {
    [
        "restore",
        "postgres",
        "--storage",
        url,
        "--server",
        SERVER,
        "--to",
        "latest",
        "--target-dir",
        dir.to_str().unwrap(),
    ]
}

fn restore(url: &str, dir: &Path) -> Run {
    let mut args = restore_args(url, dir).to_vec();
    args.extend(["--output", "json"]);
    openova(None, &args)
}

/// Every member restored with its size, its markers, and zeros between them.
fn check_restored(dir: &Path, parts: &[(String, Vec<Member>)]) {
    for m in parts.iter().flat_map(|(_, members)| members) {
        let f = File::open(dir.join(&m.path)).unwrap_or_else(|e| panic!("{}: {e}", m.path));
        assert_eq!(f.metadata().unwrap().len(), m.size, "{}", m.path);
        let mut got = vec![0u8; MARK_LEN];
        for k in m.marks() {
            f.read_exact_at(&mut got, k * MARK_EVERY).unwrap();
            assert_eq!(got, m.marker(k), "{} marker {k}", m.path);
            if (k * MARK_EVERY + MARK_EVERY / 2) < m.size {
                f.read_exact_at(&mut got, k * MARK_EVERY + MARK_EVERY / 2)
                    .unwrap();
                assert!(
                    got.iter().all(|b| *b == 0),
                    "{} zeros after marker {k}",
                    m.path
                );
            }
        }
    }
}

/// `parts` tars of `per_part` bytes of content each (one relation segment file per tar, as
/// PostgreSQL splits relations into 1 GiB files), plus a small `global/pg_control`.
fn backup_of(parts: usize, per_part: u64) -> Vec<(String, Vec<Member>)> {
    (0..parts)
        .map(|i| {
            let name = if i == 0 {
                "data.tar".to_string()
            } else {
                format!("data_{i:04}.tar")
            };
            let suffix = if i == 0 {
                String::new()
            } else {
                format!(".{i}")
            };
            let mut members = vec![Member {
                path: format!("base/16384/16385{suffix}"),
                size: per_part,
                seed: (i as u8) * 40,
            }];
            if i == 0 {
                members.push(Member {
                    path: "global/pg_control".into(),
                    size: 8192,
                    seed: 200,
                });
            }
            (name, members)
        })
        .collect()
}

/// The peak resident size the restore reported, after checking what it wrote.
fn restore_and_check(work: &Path, name: &str, parts: usize, per_part: u64) -> u64 {
    let parts = backup_of(parts, per_part);
    let (url, total) = archive(&work.join(format!("archive-{name}")), &parts);
    let dir = work.join(format!("restored-{name}"));
    let run = restore(&url, &dir);
    assert_eq!(run.code, 0, "{run:?}");
    let out: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let fetched = &out["fetched"];
    assert_eq!(fetched["bytes"].as_u64(), Some(total), "{fetched}");
    check_restored(&dir, &parts);
    assert!(dir.join("pg_wal").is_dir() && dir.join("recovery.signal").is_file());
    // What it wrote is not needed any more: 5 GiB of allocated blocks.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(work.join(format!("archive-{name}"))).unwrap();
    fetched["peak_rss_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no peak_rss_bytes: {fetched}"))
}

#[test]
fn a_5_gib_backup_restores_in_flat_memory() {
    let work = tempfile::tempdir().unwrap();
    let small = restore_and_check(work.path(), "small", 5, 256 * MIB);
    let large = restore_and_check(work.path(), "large", 5, 1 << 30);
    eprintln!(
        "peak RSS: 1.25 GiB backup {} MiB, 5 GiB backup {} MiB",
        small / MIB,
        large / MIB
    );
    assert!(
        large < 256 * MIB,
        "restoring 5 GiB peaked at {} MiB resident, over 256 MiB",
        large / MIB
    );
    // Flat: four times the data, not more memory (a margin for the allocator's moods).
    assert!(
        large <= small + 48 * MIB,
        "5 GiB peaked at {} MiB, 1.25 GiB at {} MiB: memory grows with the backup",
        large / MIB,
        small / MIB
    );
}

/// A tar cut short (here, in the middle of a file's content): exit 2 naming the object and what
/// is wrong; the target is left as it was found (absent, or empty), never half restored.
#[test]
fn a_truncated_base_backup_leaves_the_target_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let parts = backup_of(2, 48 * MIB);
    let (url, _) = archive(&work.path().join("archive"), &parts);
    let cut = work
        .path()
        .join("archive")
        .join(SERVER)
        .join("base")
        .join(BACKUP)
        .join("data_0001.tar");
    let f = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
    f.set_len(30 * MIB).unwrap();
    for existed in [false, true] {
        let dir = work.path().join(format!("restored-{existed}"));
        if existed {
            std::fs::create_dir(&dir).unwrap();
        }
        let run = restore(&url, &dir);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            run.stderr.contains("data_0001.tar") && run.stderr.contains("is not a tar archive"),
            "{run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{run:?}");
        if existed {
            let left = std::fs::read_dir(&dir).unwrap().count();
            assert_eq!(left, 0, "a failed restore left files in {dir:?}");
        } else {
            assert!(!dir.exists(), "a failed restore left {dir:?}");
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM in the middle of the download: the restore stops, removes what it
/// wrote (the target absent, or empty, as it was found) and exits as a shell reports the signal,
/// so that the next try does not find a half-restored folder in its way.
#[test]
fn an_interrupted_restore_leaves_the_target_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let parts = backup_of(3, 1 << 30);
    let (url, _) = archive(&work.path().join("archive"), &parts);
    for (signal, code, existed) in [("-INT", 130, false), ("-TERM", 143, true)] {
        let dir = work.path().join(format!("restored{signal}"));
        if existed {
            std::fs::create_dir(&dir).unwrap();
        }
        let child = crate::cli::openova_cmd(None, &restore_args(&url, &dir))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Signalled once the first large file is being written.
        let first = dir.join("base/16384/16385");
        interrupt_and_check(child, &dir, signal, code, existed, &|| first.exists());
    }
}

/// Sends `signal` to the restore `child` once `ready` says so, and checks that it exits with
/// `code`, saying so, and leaves `dir` as it was (absent, or empty when it `existed`).
fn interrupt_and_check(
    child: std::process::Child,
    dir: &Path,
    signal: &str,
    code: i32,
    existed: bool,
    ready: &dyn Fn() -> bool,
) {
    let since = std::time::Instant::now();
    while !ready() {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(60),
            "the restore never got under way"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.id();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // A restore that does not stop is killed after a minute (and the test fails).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the restore did not stop within a minute of {signal}")
        });
    let run: Run = out.into();
    assert_eq!(run.code, code, "{run:?}");
    assert!(run.stderr.contains("interrupted"), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    if existed {
        let left = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(left, 0, "an interrupted restore left files in {dir:?}");
    } else {
        assert!(!dir.exists(), "an interrupted restore left {dir:?}");
    }
}

/// Ctrl-C while the store has stopped answering (GETs hang, the attempt timeout set far away):
/// the restore stops at once all the same, and removes what it wrote.
#[test]
fn an_interrupted_restore_stops_even_while_the_store_hangs() {
    let s3 = S3Server::start_default();
    let work = tempfile::tempdir().unwrap();
    let parts = backup_of(1, 64 * MIB);
    let root = work.path().join("archive");
    archive(&root, &parts);
    let base = format!("{SERVER}/base/{BACKUP}");
    for name in ["backup.info", "data.tar"] {
        let body = std::fs::read(root.join(&base).join(name)).unwrap();
        s3.put(&format!("cnpg/{base}/{name}"), &body);
    }
    s3.put(
        &format!("cnpg/{SERVER}/wals/0000000100000000/000000010000000000000002"),
        &[0u8; 8192],
    );
    let proxy = FaultProxy::start(s3.port());
    // No GET of data.tar is ever answered (the restore has created its target by then).
    proxy.add(
        Rule::new(Fault::StallBeforeResponse)
            .method("GET")
            .target("data.tar"),
    );
    let dir = work.path().join("restored");
    let (url, endpoint) = (s3.url("cnpg"), proxy.endpoint());
    let mut args = restore_args(&url, &dir).to_vec();
    args.extend(["--endpoint", &endpoint]);
    let child = crate::cli::openova_cmd(Some(&s3), &args)
        .env("OPENOVA_S3_ATTEMPT_TIMEOUT", "600")
        .env("OPENOVA_S3_STALL_TIMEOUT", "600")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hanging = || dir.exists() && proxy.count(Fault::StallBeforeResponse) > 0;
    interrupt_and_check(child, &dir, "-INT", 130, false, &hanging);
}

/// Every file under `base/` and `global/` of a restored data folder, with its sha256.
fn manifest(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                walk(root, &e.path(), out);
            } else if kind.is_file() {
                let body = std::fs::read(e.path()).unwrap();
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                let hash: String = sha2::Sha256::digest(&body)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(rel, hash);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for top in ["base", "global"] {
        walk(dir, &dir.join(top), &mut out);
    }
    out
}

/// Real base backups in every compression barman-cloud-backup 3.17 writes (gzip, bzip2, snappy;
/// uncompressed is `restore.rs`'s), one of them split into `data_NNNN.tar` parts by a small
/// `--max-archive-size`, each restored by openova and by barman-cloud-restore: the same files.
#[test]
fn every_compression_and_split_parts_restore_as_barman_cloud_restore_does() {
    let s3 = S3Server::start(S3Kind::Versitygw);
    let server = unique_name("pgzip");
    let pg = Postgres::start(&s3, &server);
    let work = tempfile::tempdir().unwrap();
    // Split parts in the snappy case: each part is a tar of its own, compressed on its own.
    let cases: [(&str, &[&str], &str); 3] = [
        ("gzip", &["--gzip"], "data.tar.gz"),
        ("bzip2", &["--bzip2"], "data.tar.bz2"),
        (
            "snappy, split",
            &["--snappy", "--max-archive-size", "2MB"],
            "data_0001.tar.snappy",
        ),
    ];
    for (label, args, expect) in cases {
        let id = pg.base_backup_with(args);
        let seg = pg.switch_wal();
        pg.wait_archived(&seg);
        let keys = s3.list_keys(&format!("{}base/{id}/", pg.server_key_prefix()));
        assert!(
            keys.iter().any(|k| k.ends_with(&format!("/{expect}"))),
            "{label}: no {expect} in {keys:?}"
        );
        let theirs = work.path().join(format!("barman-{}", &label[..4]));
        let out = barman::command(&s3, "barman-cloud-restore")
            .args([&pg.destination(), &server, &id])
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{label}: barman-cloud-restore: {out:?}"
        );
        let ours = work.path().join(format!("openova-{}", &label[..4]));
        let run = crate::restore::restore(&s3, &server, "latest", &ours, &["--output", "json"]);
        assert_eq!(run.code, 0, "{label}: {run:?}");
        let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(out["plan"]["backup_id"], id.as_str(), "{label}");
        let (a, b) = (manifest(&theirs), manifest(&ours));
        assert!(a.len() > 100, "{label}: {} files", a.len());
        assert!(
            a == b,
            "{label}: openova and barman-cloud-restore wrote different files"
        );
    }
}
