//! The answers of `catalog`, `status` and `retention` on a generated Barman archive stay exactly
//! what they were before the WAL inventory was held as runs (issue 14): the archive has WAL gaps,
//! two timelines, a `.history`, `.backup` and `.partial` files, compressed and duplicate segments,
//! keep-annotated, FAILED, data-less and unfinished backups. The golden JSON files in
//! `tests/golden/archive/` were written by the code before that change; `OPENOVA_BLESS=1` rewrites
//! them (only do that when an answer is meant to change, and say why in the commit).
//!
//! On `file://`, where the test sets every object's modification time, so the archive times in the
//! answers are fixed.

use crate::cli::openova;
use crate::support::{S3Kind, S3Server, unique_name};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Path, PathBuf};

const SERVER: &str = "gold";
const SEG: u64 = 16 * 1024 * 1024;
const PER_LOG: u64 = 0x1_0000_0000 / SEG;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Segment position `p` is archived `p` × 10 minutes after t0.
fn at(p: u64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(i64::try_from(p * 10).unwrap())
}

fn name(tl: u32, p: u64) -> String {
    format!("{tl:08X}{:08X}{:08X}", p / PER_LOG, p % PER_LOG)
}

fn lsn(p: u64, offset: u64) -> String {
    let pos = p * SEG + offset;
    format!("{:X}/{:X}", pos >> 32, pos & 0xFFFF_FFFF)
}

struct Archive {
    root: PathBuf,
}

impl Archive {
    fn write(&self, key: &str, body: &[u8], time: DateTime<Utc>) {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(time.into()).unwrap();
    }

    fn wal(&self, file: &str, body: &[u8], time: DateTime<Utc>) {
        let folder = if file.ends_with(".history") || file.len() < 16 {
            String::new()
        } else {
            format!("{}/", &file[..16])
        };
        self.write(&format!("{SERVER}/wals/{folder}{file}"), body, time);
    }

    fn segment(&self, tl: u32, p: u64, suffix: &str) {
        // Sizes vary, as compressed segments do, so that bytes in plans are checked.
        let body = vec![b'w'; 1 + usize::try_from(p % 7).unwrap()];
        self.wal(&format!("{}{suffix}", name(tl, p)), &body, at(p));
    }
}

struct Backup {
    tl: u32,
    begin: u64,
    end: u64,
    status: &'static str,
    keep: Option<&'static str>,
    data: bool,
}

fn backup_info(b: &Backup) -> String {
    let t = |p: u64| (at(p) + TimeDelta::seconds(30)).format("%Y-%m-%d %H:%M:%S%.6f%:z");
    let error = if b.status == "FAILED" {
        "failure during backup: connection lost"
    } else {
        "None"
    };
    format!(
        "backup_label=None\nbackup_name=None\nbegin_offset=40\nbegin_time={}\nbegin_wal={}\n\
         begin_xlog={}\nchildren_backup_ids=None\ncluster_size=23224009\ncompression=None\n\
         config_file=/var/lib/postgresql/data/pgdata/postgresql.conf\ndata_checksums=on\n\
         deduplicated_size=None\nencryption=None\nend_offset=256\nend_time={}\nend_wal={}\n\
         end_xlog={}\nerror={error}\nhba_file=/var/lib/postgresql/data/pgdata/pg_hba.conf\n\
         ident_file=/var/lib/postgresql/data/pgdata/pg_ident.conf\nincluded_files=None\nmode=None\n\
         parent_backup_id=None\npgdata=/var/lib/postgresql/data/pgdata\nserver_name=cloud\nsize=None\n\
         snapshots_info=None\nstatus={}\nsummarize_wal=None\nsystemid=7438512960125829147\n\
         tablespaces=None\ntimeline={}\nversion=150018\nxlog_segment_size=16777216\n",
        t(b.begin),
        name(b.tl, b.begin),
        lsn(b.begin, 40),
        t(b.end),
        name(b.tl, b.end),
        lsn(b.end, 256),
        b.status,
        b.tl,
    )
}

fn backups() -> Vec<Backup> {
    let b = |tl, begin, end, status, keep, data| Backup {
        tl,
        begin,
        end,
        status,
        keep,
        data,
    };
    vec![
        b(1, 10, 12, "DONE", None, true),
        b(1, 60, 62, "DONE", None, true),
        b(1, 150, 151, "DONE", Some("standalone"), true),
        b(1, 250, 252, "DONE", None, true),
        b(1, 350, 352, "DONE", None, true),
        b(1, 380, 381, "FAILED", None, true),
        b(1, 450, 452, "DONE", Some("standalone"), true),
        b(1, 480, 481, "DONE", None, false),
        b(1, 600, 602, "DONE", None, true),
        b(2, 700, 702, "DONE", Some("full"), true),
        b(2, 850, 852, "DONE", Some("standalone"), true),
        b(2, 890, 891, "DONE", None, true),
    ]
}

/// Builds the archive under `root/gold/`.
fn build(root: &Path) {
    let a = Archive {
        root: root.to_path_buf(),
    };
    let tl1_gaps = |p: u64| (100..=104).contains(&p) || p == 300 || (520..=530).contains(&p);
    for p in (1..=700).filter(|p| !tl1_gaps(*p)) {
        let suffix = match p {
            200..=260 => ".gz",
            400 => ".bz2",
            _ => "",
        };
        a.segment(1, p, suffix);
    }
    // The same segment twice, plain and compressed (an archive command retried with compression).
    a.segment(1, 50, ".gz");
    // Promoted at position 672: timeline 2 starts there.
    a.wal(
        "00000002.history",
        format!("1\t{}\tno recovery target specified\n", lsn(672, 0)).as_bytes(),
        at(672),
    );
    for p in (672..=900).filter(|p| !(800..=805).contains(p)) {
        a.segment(2, p, "");
    }
    a.wal(&format!("{}.partial", name(1, 701)), b"partial", at(701));
    a.wal("notes.txt", b"not a WAL file", at(1));
    for b in backups() {
        let id = (at(b.begin) + TimeDelta::seconds(30))
            .format("%Y%m%dT%H%M%S")
            .to_string();
        let base = format!("{SERVER}/base/{id}");
        let end = at(b.end) + TimeDelta::seconds(30);
        if b.data {
            let body = vec![b'd'; 1000 + usize::try_from(b.begin).unwrap()];
            a.write(&format!("{base}/data.tar"), &body, end);
        }
        a.write(
            &format!("{base}/backup.info"),
            backup_info(&b).as_bytes(),
            end,
        );
        if let Some(k) = b.keep {
            a.write(&format!("{base}/annotations/keep"), k.as_bytes(), end);
        }
        if b.status == "DONE" {
            let label = format!("{}.00000028.backup", name(b.tl, b.begin));
            a.wal(&label, b"START WAL LOCATION", end);
        }
    }
    // A backup that never finished: data, no backup.info, long ago (an orphan for retention).
    a.write(
        &format!("{SERVER}/base/20261104T100000/data.tar"),
        b"half",
        at(500),
    );
}

/// Where the archive is read: its URL, the S3 server serving it, and the URL written in the golden
/// files in its place.
struct Storage<'a> {
    url: String,
    s3: Option<&'a S3Server>,
}

impl Storage<'_> {
    fn yaml(&self) -> String {
        match self.s3 {
            Some(s3) => format!(
                "{{ url: \"{}\", endpoint: \"{}\" }}",
                self.url,
                s3.endpoint()
            ),
            None => format!("{{ url: \"{}\" }}", self.url),
        }
    }
}

fn policy(dir: &Path, storage: &Storage, name: &str, window: &str, redundancy: u32) -> String {
    let text = format!(
        "kind: PostgresPolicy\nname: {name}\ncluster: {{ namespace: databases, name: {SERVER} }}\n\
         serverName: {SERVER}\nbaseBackupSchedule: \"0 2 * * *\"\nrecoveryWindow: {window}\n\
         rpo: 1h\nminimumRedundancy: {redundancy}\nstorage: {}\n",
        storage.yaml()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The JSON with what changes from run to run taken out: the storage URL (written `file://ROOT`
/// in the golden files), the time of the run and how long planning took.
fn normalised(stdout: &str, url: &str) -> String {
    let text = stdout.replace(url, "file://ROOT");
    let mut v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    if let Some(o) = v.as_object_mut() {
        o.remove("generated_at");
    }
    if let Some(ps) = v["policies"].as_array_mut() {
        for p in ps {
            if let Some(o) = p.as_object_mut() {
                o.remove("plan_seconds");
            }
        }
    }
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/archive")
}

/// Compares with the golden file (or writes it, with `OPENOVA_BLESS=1`).
fn check(name: &str, got: &str, mismatches: &mut Vec<String>) {
    let path = golden_dir().join(name);
    if std::env::var_os("OPENOVA_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (OPENOVA_BLESS=1 writes it)", path.display()));
    if want != got {
        let out = std::env::temp_dir().join(format!("openova-golden-{}", unique_name("got")));
        std::fs::write(&out, got).unwrap();
        mismatches.push(format!(
            "{name} differs: diff {} {}",
            path.display(),
            out.display()
        ));
    }
}

/// Every answer on the archive read through `storage`, against the golden files.
fn answers_match(storage: &Storage) {
    let dir = tempfile::tempdir().unwrap();
    let run = openova(
        storage.s3,
        &[
            "catalog",
            "--output",
            "json",
            "--policies",
            &policy(dir.path(), storage, "all", "7d", 1),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let mut mismatches = Vec::new();
    check(
        "catalog.json",
        &normalised(&run.stdout, &storage.url),
        &mut mismatches,
    );
    // Judged a week after t0, where timeline 2's newest segment is 900 (6.25 days).
    let now = (t0() + TimeDelta::days(7)).to_rfc3339();
    for (name, window, redundancy) in [
        ("window-1d-min3", "1d", 3),
        ("window-2d", "2d", 1),
        ("window-4d", "4d", 1),
        ("window-6d", "6d", 1),
        ("window-7d-min2", "7d", 2),
    ] {
        let p = policy(dir.path(), storage, name, window, redundancy);
        for command in ["status", "retention"] {
            let run = openova(
                storage.s3,
                &[command, "--output", "json", "--policies", &p, "--at", &now],
            );
            assert!(run.code == 0 || run.code == 1, "{run:?}");
            let got = normalised(&run.stdout, &storage.url);
            check(&format!("{command}-{name}.json"), &got, &mut mismatches);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}: {}",
        storage.url,
        mismatches.join("\n")
    );
}

#[test]
fn catalog_status_and_retention_answers_are_unchanged_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    build(&root);
    answers_match(&Storage {
        url: format!("file://{}", root.display()),
        s3: None,
    });
}

/// The same archive served by each S3 server: written straight into its bucket folder, which both
/// serve as objects (with the files' modification times as LastModified).
#[test]
fn catalog_status_and_retention_answers_are_unchanged_on_s3() {
    for kind in S3Kind::all() {
        let s3 = S3Server::start(kind);
        build(&s3.dir().join("root").join(s3.bucket()).join("cnpg"));
        let keys = s3.list_keys("cnpg/");
        assert!(keys.len() > 900, "{kind} lists {} objects", keys.len());
        answers_match(&Storage {
            url: s3.url("cnpg"),
            s3: Some(&s3),
        });
    }
}
