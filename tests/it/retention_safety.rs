//! Retention is safe when two runs meet and when a run dies half-way.
//!
//! - The lease: a run finding the lease held is refused (exit 1) and names the holder (on
//!   s3s-fs); of two runs started together exactly one deletes: on versitygw, which decides
//!   `If-None-Match` atomically, the conditional put alone picks the winner; on s3s-fs, which
//!   passes openova's conditional-write probe but lets racing conditional puts all succeed, the
//!   lease's read-back referees; and on a `file://` storage (a hard link).
//! - A store that ignores conditional writes: `--apply` is refused there unless `--single-writer`
//!   (no server here ignores them since Garage left; `retention::lease`'s unit tests play one).
//! - Crashes: a run killed (SIGKILL) at a random moment leaves a store that `status` still reads,
//!   and the next run converges to the very state an uninterrupted run leaves.
//! - A known bug, as an ignored test: two runs taking over an expired lease can both win.
//!
//! Every test starts from the same catalog ([`seed`]): twelve DONE backups, one every 4 days from
//! 45 days ago to yesterday, 100 WAL segments between two backups and 20 after the newest, with a
//! backup history file per backup. Under `recoveryWindow: 7d` the backups 1, 5 and 9 days old stay
//! (9 days: the base for the window's start), the nine older ones go, and so does all WAL before
//! the 9-day-old backup's `begin_wal` ([`expected_after`]).
//!
//! On s3s-fs the objects are written straight into the bucket folder with backdated modification
//! times (s3s-fs serves a file's mtime as LastModified), so the store looks like one filled over
//! 45 days: a WAL segment's archive time lies between the backups around it, a backup's data is as
//! old as the backup. That matters for the crash test: data left without its `backup.info` by a
//! killed run is as old as its backup, far past the 24 h grace period, so the next run finishes
//! the deletion as an orphan with the default `--grace`.

use crate::cli::{Run, openova, openova_cmd, postgres_policy};
use crate::support::barman::{self, py_time, xlog};
use crate::support::{S3Kind, S3Server};
use chrono::{DateTime, TimeDelta, Utc};
use openova::store::{self as store, ObjectStore, S3Options, S3Store, StorageUrl};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

const PLAIN: &str = include_str!("../fixtures/barman/done-plain.backup.info");
const PREFIX: &str = "cnpg";
const SERVER: &str = "db";
/// Where the retention lease of storage `s3://BUCKET/cnpg` lives.
const LEASE: &str = "openova/lease/cnpg";
const BACKUPS: u64 = 12;
/// Age in days of the oldest backup; one every [`EVERY`] days after it.
const OLDEST: i64 = 45;
const EVERY: i64 = 4;
/// WAL segments between two backups, position of the oldest backup's `begin_wal`, and segments
/// archived after the newest backup began.
const STEP: u64 = 100;
const P0: u64 = 2;
const TAIL: u64 = 20;
/// Backups that go under a 7-day window: all but the 1, 5 and 9 days old ones.
const DELETED: u64 = 9;

fn wal_name(p: u64) -> String {
    barman::wal_name(1, p)
}

fn wal_key(name: &str) -> String {
    format!("{PREFIX}/{SERVER}/wals/{}/{name}", &name[..16])
}

/// One object of the seeded catalog: key, body, modification time.
#[derive(Clone)]
struct Obj {
    key: String,
    body: String,
    mtime: DateTime<Utc>,
}

/// The catalog described in the module docs, as of `now`. Identical for an identical `now`.
fn seed(now: DateTime<Utc>) -> Vec<Obj> {
    let begin = |i: u64| {
        now - TimeDelta::days(OLDEST - EVERY * i as i64) + TimeDelta::microseconds(618_023)
    };
    let last = P0 + STEP * (BACKUPS - 1) + TAIL;
    // When segment `p` was archived: between the backups around it; the tail up to a minute ago.
    let archived = |p: u64| -> DateTime<Utc> {
        if p < P0 {
            return begin(0) - TimeDelta::hours(1);
        }
        let i = ((p - P0) / STEP).min(BACKUPS - 1);
        let (from, to, span) = if i == BACKUPS - 1 {
            (
                begin(i),
                now - TimeDelta::minutes(1),
                last - (P0 + STEP * i),
            )
        } else {
            (begin(i), begin(i + 1), STEP)
        };
        let frac = (p - P0 - STEP * i) as f64 / span as f64;
        from + TimeDelta::seconds(30)
            + TimeDelta::milliseconds(((to - from).num_milliseconds() as f64 * frac) as i64)
    };
    let mut objs = Vec::new();
    for i in 0..BACKUPS {
        let (b, p) = (begin(i), P0 + STEP * i);
        let end = b + TimeDelta::seconds(65) + TimeDelta::microseconds(552_801);
        let id = b.format("%Y%m%dT%H%M%S").to_string();
        let begin_wal = wal_name(p);
        let label = format!(
            "'START WAL LOCATION: {} (file {begin_wal})\\nCHECKPOINT LOCATION: {}\\n\
             BACKUP METHOD: streamed\\nBACKUP FROM: primary\\nSTART TIME: {} UTC\\n\
             LABEL: Barman backup {SERVER} {id}\\nSTART TIMELINE: 1\\n'",
            xlog(p, 0x28),
            xlog(p, 0x60),
            b.format("%Y-%m-%d %H:%M:%S"),
        );
        let info = barman::backup_info(
            PLAIN,
            &[
                ("backup_label", label),
                ("begin_time", py_time(b)),
                ("begin_wal", begin_wal.clone()),
                ("begin_xlog", xlog(p, 0x28)),
                ("end_time", py_time(end)),
                ("end_wal", wal_name(p + 1)),
                ("end_xlog", xlog(p + 1, 0x100)),
                ("server_name", SERVER.to_string()),
            ],
        );
        let base = format!("{PREFIX}/{SERVER}/base/{id}");
        objs.push(Obj {
            key: format!("{base}/data.tar"),
            body: format!("tar of {id}"),
            mtime: end,
        });
        objs.push(Obj {
            key: format!("{base}/backup.info"),
            body: info,
            mtime: end + TimeDelta::seconds(1),
        });
        objs.push(Obj {
            key: wal_key(&format!("{begin_wal}.00000028.backup")),
            body: format!("START WAL LOCATION: {}\n", xlog(p, 0x28)),
            mtime: end,
        });
    }
    for p in 1..=last {
        let name = wal_name(p);
        objs.push(Obj {
            key: wal_key(&name),
            body: format!("wal {name}"),
            mtime: archived(p),
        });
    }
    objs
}

/// The keys a correct retention run (window 7d) leaves of [`seed`].
fn expected_after(objs: &[Obj]) -> BTreeSet<String> {
    let horizon = wal_name(P0 + STEP * DELETED);
    let deleted_ids: BTreeSet<String> = {
        let mut ids: Vec<String> = objs
            .iter()
            .filter(|o| o.key.ends_with("/backup.info"))
            .map(|o| o.key.split('/').nth(3).unwrap().to_string())
            .collect();
        ids.sort();
        ids.truncate(DELETED as usize);
        ids.into_iter().collect()
    };
    objs.iter()
        .filter(|o| {
            let parts: Vec<&str> = o.key.split('/').collect();
            match parts[2] {
                "base" => !deleted_ids.contains(parts[3]),
                // WAL (and backup history files) at or past the oldest kept backup's begin_wal.
                _ => parts[4][..24] >= *horizon,
            }
        })
        .map(|o| o.key.clone())
        .collect()
}

fn keys_of(objs: &[Obj]) -> BTreeSet<String> {
    objs.iter().map(|o| o.key.clone()).collect()
}

/// s3s-fs: the bucket's folder (one file per object).
fn bucket_dir(s3: &S3Server) -> PathBuf {
    s3.dir().join("root").join(s3.bucket())
}

/// Replaces the content of `dir` (the s3s-fs bucket folder, or a `file://` storage's parent
/// folder) with `objs`, written as files with their mtimes. Also drops s3s-fs's metadata files
/// (kept beside the bucket folders) of objects put earlier.
fn write_dir(dir: &Path, objs: &[Obj]) {
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    drop_s3s_metadata(dir);
    for o in objs {
        let path = dir.join(&o.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &f, o.body.as_bytes()).unwrap();
        f.set_modified(SystemTime::from(o.mtime)).unwrap();
    }
}

/// s3s-fs keeps each PutObject's checksums in `.bucket-*` files beside the bucket folder; one left
/// from an earlier put of a key would be served with a body written here and fail the client's
/// checksum validation.
fn drop_s3s_metadata(bucket_dir: &Path) {
    for e in std::fs::read_dir(bucket_dir.parent().unwrap())
        .unwrap()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".bucket-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn write_fs(s3: &S3Server, objs: &[Obj]) {
    write_dir(&bucket_dir(s3), objs);
}

/// s3s-fs: writes object `key` as a file.
fn put_fs(s3: &S3Server, key: &str, body: &[u8]) {
    let dir = bucket_dir(s3);
    drop_s3s_metadata(&dir);
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// Every file under `dir`, as keys relative to it.
fn keys_dir(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// s3s-fs: every object key in the bucket (the files under its folder).
fn keys_fs(s3: &S3Server) -> BTreeSet<String> {
    keys_dir(&bucket_dir(s3))
}

/// A policy like [`postgres_policy`]'s on a local folder: storage `file://DIR/cnpg`, whose lease
/// is `DIR/openova/lease/cnpg` (the same layout as in a bucket).
fn file_policy(policy_dir: &Path, data: &Path) -> String {
    let text = format!(
        "kind: PostgresPolicy\nname: {SERVER}\ncluster: {{ namespace: databases, name: {SERVER} }}\n\
         serverName: {SERVER}\nbaseBackupSchedule: \"0 0 1 1 *\"\nrecoveryWindow: 7d\nrpo: 1h\n\
         storage: {{ url: \"file://{}/{PREFIX}\" }}\n",
        data.display()
    );
    let path = policy_dir.join("file.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Any server: uploads every object (LastModified is now, not `mtime`).
fn upload(s3: &S3Server, objs: &[Obj]) {
    let items: Vec<(&str, &str)> = objs
        .iter()
        .map(|o| (o.key.as_str(), o.body.as_str()))
        .collect();
    barman::put_all(s3, &items);
}

/// `openova ARGS` as a child process with the server's credentials, stdout and stderr piped.
fn spawn(s3: Option<&S3Server>, args: &[&str]) -> Child {
    openova_cmd(s3, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openova")
}

fn finish(child: Child) -> Run {
    child.wait_with_output().expect("wait for openova").into()
}

/// `retention --policies POLICY --apply EXTRA.. --output json`.
fn apply_json<'a>(policy: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["retention", "--policies", policy, "--apply"];
    args.extend(extra);
    args.extend(["--output", "json"]);
    args
}

/// The one policy report of a `retention --output json` run.
fn report(run: &Run) -> serde_json::Value {
    let v = run.json();
    assert_eq!(v["schema"], "openova.retention/v1", "{run:?}");
    let policies = v["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "{run:?}");
    policies[0].clone()
}

/// A lease held by someone else, as `openova` writes it.
fn holder(owner: &str, since: DateTime<Utc>, expires: DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "owner": owner, "purpose": "retention", "since": since, "expires": expires,
    }))
    .unwrap()
}

/// Whether `s3` honours `If-None-Match: *` on PutObject, as openova's own probe finds.
fn probe(s3: &S3Server) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = S3Store::connect(
            StorageUrl::parse(&s3.url("")).unwrap(),
            S3Options {
                endpoint: Some(s3.endpoint()),
                region: "auto".into(),
                path_style: true,
                credentials: Some((s3.access_key().into(), s3.secret_key().into())),
                timeouts: openova::store::Timeouts::default(),
            },
        )
        .await
        .unwrap();
        openova::retention::lease::probe(&store, "openova/lease/probe-test")
            .await
            .unwrap()
    })
}

/// openova's probe, on both servers: both refuse a conditional put onto an existing object (two
/// puts in a row). Checked as observed, so a server that changes shows up here.
#[test]
fn conditional_write_probe_per_server() {
    for kind in S3Kind::all() {
        let s3 = S3Server::start(kind);
        let honoured = probe(&s3);
        eprintln!("{kind}: honours If-None-Match: {honoured}");
        assert!(
            honoured,
            "{kind} no longer refuses a second conditional put"
        );
        assert!(
            s3.list_keys("openova/").is_empty(),
            "{kind}: the probe object is removed"
        );
    }
}

#[test]
fn two_concurrent_applies_exactly_one_deletes() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    assert!(probe(&s3), "s3s-fs honours If-None-Match");
    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, SERVER, "7d", "1h");
    let now = Utc::now();
    let objs = seed(now);
    let expected = expected_after(&objs);
    let apply = apply_json(&policy, &[]);

    // Someone holds the lease: the run is refused, names the holder, deletes nothing.
    write_fs(&s3, &objs);
    let since = DateTime::from_timestamp(now.timestamp() - 60, 0).unwrap();
    let expires = since + TimeDelta::minutes(11);
    put_fs(&s3, LEASE, &holder("test@x", since, expires));
    let run = openova(Some(&s3), &apply);
    assert_eq!(run.code, 1, "{run:?}");
    let r = report(&run);
    let refused = r["refused"].as_str().unwrap_or_default();
    let url = s3.url(PREFIX);
    let want = format!(
        "retention already running on {url} since {}, owner test@x (lease expires {})",
        since.format("%Y-%m-%dT%H:%M:%SZ"),
        expires.format("%Y-%m-%dT%H:%M:%SZ")
    );
    assert_eq!(refused, want, "{run:?}");
    assert!(r["applied"].is_null() && r["plan"].is_null(), "{run:?}");
    let mut with_lease = keys_of(&objs);
    with_lease.insert(LEASE.to_string());
    assert_eq!(
        keys_fs(&s3),
        with_lease,
        "nothing deleted, the lease left alone"
    );
    assert_eq!(
        std::fs::read(bucket_dir(&s3).join(LEASE)).unwrap(),
        holder("test@x", since, expires),
        "another holder's lease is never touched"
    );

    // Two runs at once on s3s-fs, whose If-None-Match is check-then-write, not atomic (two
    // simultaneous conditional puts of one key can both succeed, see
    // `s3s_fs_conditional_put_is_not_atomic`): the lease's read-back after it settles referees.
    let on_s3 = Target {
        name: "s3s-fs",
        s3: Some(&s3),
        url: &url,
        reset: &|| write_fs(&s3, &objs),
        keys: &|| keys_fs(&s3),
    };
    two_runs_at_once(&on_s3, &apply, &expected);

    // And on a `file://` storage, whose create-if-absent is a hard link (atomic on POSIX), like
    // the conditional put of S3 or R2.
    let fdir = tempfile::tempdir().unwrap();
    let data = fdir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let fpolicy = file_policy(fdir.path(), &data);
    let furl = format!("file://{}/{PREFIX}", data.display());
    let fapply = apply_json(&fpolicy, &[]);
    let on_folder = Target {
        name: "file://",
        s3: None,
        url: &furl,
        reset: &|| write_dir(&data, &objs),
        keys: &|| keys_dir(&data),
    };
    two_runs_at_once(&on_folder, &fapply, &expected);
}

/// On versitygw, which decides `If-None-Match` atomically (see
/// `versitygw_conditional_put_has_one_winner`), two runs started together: the conditional put
/// itself refuses the second, as on R2.
#[test]
fn two_concurrent_applies_on_versitygw_the_conditional_put_decides() {
    let s3 = S3Server::start(S3Kind::Versitygw);
    assert!(probe(&s3), "versitygw honours If-None-Match");
    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, SERVER, "7d", "1h");
    let objs = seed(Utc::now());
    let expected = expected_after(&objs);
    let url = s3.url(PREFIX);
    let reset = || {
        let stale: Vec<String> = s3.list_keys("");
        for k in stale {
            s3.delete(&k);
        }
        upload(&s3, &objs);
    };
    let keys = || s3.list_keys("").into_iter().collect::<BTreeSet<_>>();
    let target = Target {
        name: "versitygw",
        s3: Some(&s3),
        url: &url,
        reset: &reset,
        keys: &keys,
    };
    two_runs_at_once(&target, &apply_json(&policy, &[]), &expected);
}

/// Where two runs race: its server (if any), storage URL, how to reseed it and list its keys.
struct Target<'a> {
    name: &'a str,
    s3: Option<&'a S3Server>,
    url: &'a str,
    reset: &'a dyn Fn(),
    keys: &'a dyn Fn() -> BTreeSet<String>,
}

/// Two `retention --apply` started together on a freshly seeded target: exactly one deletes, the
/// other is refused (the lease is held) or, if it came after the first was done, finds nothing to
/// delete. Repeated until they overlapped once.
fn two_runs_at_once(t: &Target, apply: &[&str], expected: &BTreeSet<String>) {
    let url = t.url;
    for attempt in 1..=10 {
        (t.reset)();
        let started = Instant::now();
        let (a, b) = (spawn(t.s3, apply), spawn(t.s3, apply));
        let runs = [finish(a), finish(b)];
        let took = started.elapsed();
        assert!(runs.iter().all(|r| matches!(r.code, 0 | 1)), "{runs:?}");
        let reports: Vec<serde_json::Value> = runs.iter().map(report).collect();
        let deleted = |r: &serde_json::Value| r["applied"]["objects"].as_u64().unwrap_or(0);
        eprintln!(
            "{} attempt {attempt}: {took:?}, exits {} {}, objects deleted {} {}",
            t.name,
            runs[0].code,
            runs[1].code,
            deleted(&reports[0]),
            deleted(&reports[1])
        );
        assert_eq!(
            reports.iter().filter(|r| deleted(r) > 0).count(),
            1,
            "exactly one run deletes: {runs:?}"
        );
        assert_eq!((t.keys)(), *expected, "the result of one run: {runs:?}");
        let Some(won) = (0..2).find(|i| deleted(&reports[*i]) > 0) else {
            unreachable!()
        };
        let lost = 1 - won;
        assert_eq!(runs[won].code, 0, "{:?}", runs[won]);
        assert!(reports[won]["refused"].is_null(), "{:?}", runs[won]);
        if runs[lost].code == 1 {
            let refused = reports[lost]["refused"].as_str().unwrap_or_default();
            assert!(
                refused.starts_with(&format!("retention already running on {url} since "))
                    && refused.contains(", owner "),
                "{:?}",
                runs[lost]
            );
            assert!(
                reports[lost]["plan"].is_null() && reports[lost]["applied"].is_null(),
                "{:?}",
                runs[lost]
            );
            return;
        }
        // The second came after the first was done: it planned on the result and deleted nothing.
        assert_eq!(reports[lost]["applied"]["objects"], 0, "{:?}", runs[lost]);
    }
    panic!(
        "{}: two runs started together never overlapped in 10 attempts",
        t.name
    );
}

/// 100 races of two clients putting one new key with `If-None-Match: *` at the same moment, on
/// `kind`: how many races each number of winners (0, 1, 2) had.
fn conditional_put_races(kind: S3Kind) -> [usize; 3] {
    let s3 = S3Server::start(kind);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = || {
            S3Store::connect(
                StorageUrl::parse(&s3.url("")).unwrap(),
                S3Options {
                    endpoint: Some(s3.endpoint()),
                    region: "auto".into(),
                    path_style: true,
                    credentials: Some((s3.access_key().into(), s3.secret_key().into())),
                    timeouts: openova::store::Timeouts::default(),
                },
            )
        };
        let a = std::sync::Arc::new(connect().await.unwrap());
        let b = std::sync::Arc::new(connect().await.unwrap());
        let mut winners = [0; 3];
        for i in 0..100 {
            let key = format!("race/{i}");
            let put = |s: std::sync::Arc<S3Store>, key: String| {
                tokio::spawn(async move {
                    s.put_if_absent(&key, bytes::Bytes::from_static(b"x"))
                        .await
                        .unwrap()
                })
            };
            let (ta, tb) = (put(a.clone(), key.clone()), put(b.clone(), key));
            let won = usize::from(ta.await.unwrap()) + usize::from(tb.await.unwrap());
            winners[won] += 1;
        }
        winners
    })
}

/// Observed, so that a fixed s3s-fs shows up: its `If-None-Match: *` is a check before the write,
/// so of two simultaneous conditional puts of one key both may succeed. (openova's probe, which
/// puts twice in a row, cannot tell; AWS S3, R2 and versitygw decide atomically.)
#[test]
fn s3s_fs_conditional_put_is_not_atomic() {
    let [none, one, both] = conditional_put_races(S3Kind::S3sFs);
    eprintln!("s3s-fs: of 100 races, {both} had two winners, {one} one, {none} none");
    assert!(both > 0, "s3s-fs now decides If-None-Match atomically");
}

/// versitygw decides `If-None-Match: *` atomically: every race has exactly one winner, which is
/// what openova's lease relies on (on R2 too).
#[test]
fn versitygw_conditional_put_has_one_winner() {
    let winners = conditional_put_races(S3Kind::Versitygw);
    eprintln!("versitygw: races by number of winners (0, 1, 2): {winners:?}");
    assert_eq!(winners, [0, 100, 0], "every race has exactly one winner");
}

/// A deterministic pseudo-random sequence (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// What a killed run left: lease, descriptors gone, data without descriptor, WAL gone.
fn describe(keys: &BTreeSet<String>, objs: &[Obj]) -> String {
    let gone = |suffix: &str| {
        objs.iter()
            .filter(|o| o.key.ends_with(suffix) && !keys.contains(&o.key))
            .count()
    };
    let wal_gone = objs
        .iter()
        .filter(|o| o.key.contains("/wals/") && !keys.contains(&o.key))
        .count();
    format!(
        "lease {}, backup.info gone {}, data.tar gone {}, WAL gone {wal_gone}",
        if keys.contains(LEASE) { "held" } else { "free" },
        gone("/backup.info"),
        gone("/data.tar")
    )
}

/// One crash test run on s3s-fs: the policy, the seed and what a correct run leaves of it.
struct Crash<'a> {
    s3: &'a S3Server,
    policy: String,
    objs: Vec<Obj>,
    expected: BTreeSet<String>,
}

impl Crash<'_> {
    fn apply(&self) -> [&str; 5] {
        // --single-writer: no probe before the lease (s3s-fs passes it anyway), so the run
        // deletes sooner after it starts and a kill cannot leave a probe object behind; the
        // lease is still taken and held.
        [
            "retention",
            "--policies",
            &self.policy,
            "--apply",
            "--single-writer",
        ]
    }

    fn status(&self) -> Run {
        openova(Some(self.s3), &["status", "--policies", &self.policy])
    }

    /// From the state a killed run left (`label` says which): `status` reads it, a lease of
    /// another machine refuses the next run until it expires (one of this machine whose process
    /// is gone does not), and the next run converges to [`Self::expected`].
    fn recover(&self, label: &str) {
        let s3 = self.s3;
        let left = keys_fs(s3);
        let state = describe(&left, &self.objs);
        eprintln!("{label}: {state}");
        let seeded = keys_of(&self.objs);
        assert!(
            left.is_subset(&seeded.iter().cloned().chain([LEASE.to_string()]).collect()),
            "{label}: the killed run left only seeded objects and its lease: {state}"
        );
        assert!(
            self.expected.is_subset(&left),
            "{label}: the killed run deleted something that must stay: {state}"
        );
        let run = self.status();
        assert!(
            matches!(run.code, 0 | 1) && !run.stderr.contains("panicked"),
            "{label}: status reads the store a killed run left ({state}): {run:?}"
        );
        if left.contains(LEASE) {
            let old: serde_json::Value =
                serde_json::from_slice(&std::fs::read(bucket_dir(s3).join(LEASE)).unwrap())
                    .unwrap();
            let owner = old["owner"].as_str().unwrap_or_default().to_string();
            let here = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok();
            let host = std::env::var("HOSTNAME").ok().or(here).unwrap_or_default();
            let local = owner.split_once('@').is_some_and(|(_, h)| h == host);
            if local {
                // A run of this machine, killed: its process is gone, so the next run takes
                // its lease over at once instead of waiting 10 minutes for it to expire.
                let pid = owner.split('@').next().unwrap_or_default();
                assert!(
                    !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "{label}: the killed run {pid} still runs"
                );
            } else {
                // Another machine's run (a CronJob pod): its lease is honoured until it
                // expires (10 minutes)...
                let run = openova(Some(s3), &self.apply());
                assert_eq!(run.code, 1, "{label}: {run:?}");
                assert!(
                    run.stdout.contains("already running on"),
                    "{label}: {run:?}"
                );
                // ...so let it expire (its expiry rewritten into the past): the next run takes
                // it over.
                let since: DateTime<Utc> = serde_json::from_value(old["since"].clone()).unwrap();
                put_fs(
                    s3,
                    LEASE,
                    &holder(&owner, since, Utc::now() - TimeDelta::seconds(1)),
                );
            }
        }
        // Default --grace (24h): data a kill left without its backup.info is as old as its
        // backup (days), so it is an orphan already and this run finishes the deletion.
        let run = openova(Some(s3), &self.apply());
        assert_eq!(run.code, 0, "{label} ({state}): {run:?}");
        let after = keys_fs(s3);
        assert_eq!(
            after,
            self.expected,
            "{label} ({state}): the re-run converges; left over {:?}, missing {:?}\n{run:?}",
            after.difference(&self.expected).collect::<Vec<_>>(),
            self.expected.difference(&after).collect::<Vec<_>>()
        );
        let run = self.status();
        assert_eq!(run.code, 0, "{label}: {run:?}");
    }

    /// The id of the `i`-th oldest backup.
    fn backup(&self, i: usize) -> String {
        let mut ids: Vec<&str> = self
            .objs
            .iter()
            .filter(|o| o.key.ends_with("/backup.info"))
            .map(|o| o.key.split('/').nth(3).unwrap())
            .collect();
        ids.sort_unstable();
        ids[i].to_string()
    }
}

#[test]
fn killed_mid_apply_then_status_reads_and_rerun_converges() {
    const TRIALS: u64 = 30;
    let s3 = S3Server::start(S3Kind::S3sFs);
    let dir = tempfile::tempdir().unwrap();
    let objs = seed(Utc::now());
    let c = Crash {
        s3: &s3,
        policy: postgres_policy(dir.path(), &s3, SERVER, "7d", "1h"),
        expected: expected_after(&objs),
        objs,
    };
    let base = |id: &str, file: &str| format!("{PREFIX}/{SERVER}/base/{id}/{file}");

    // An uninterrupted run: what every trial must end with, and how long a run takes.
    write_fs(&s3, &c.objs);
    let started = Instant::now();
    let run = finish(spawn(Some(&s3), &c.apply()));
    let full = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(keys_fs(&s3), c.expected, "{run:?}");
    let run = c.status();
    assert_eq!(
        run.code, 0,
        "the store after retention meets its policy: {run:?}"
    );
    eprintln!("uninterrupted run: {full:?}");

    // The narrowest window, hard to hit with a timer: killed between a backup's two deletes
    // (descriptor gone, data left), lease held. Made by hand.
    write_fs(&s3, &c.objs);
    let third = c.backup(2);
    let dead = Utc::now();
    put_fs(
        &s3,
        LEASE,
        &holder("1@killed", dead, dead + TimeDelta::minutes(10)),
    );
    for i in 0..2 {
        let id = c.backup(i);
        std::fs::remove_file(bucket_dir(&s3).join(base(&id, "backup.info"))).unwrap();
        std::fs::remove_file(bucket_dir(&s3).join(base(&id, "data.tar"))).unwrap();
    }
    std::fs::remove_file(bucket_dir(&s3).join(base(&third, "backup.info"))).unwrap();
    c.recover("killed between a descriptor and its data");

    // The same, where the data left behind was written less than the grace period ago: not an
    // orphan yet (it could be a backup being written), so it stays until `--grace` has passed.
    write_fs(&s3, &c.objs);
    let data = bucket_dir(&s3).join(base(&third, "data.tar"));
    std::fs::remove_file(bucket_dir(&s3).join(base(&third, "backup.info"))).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let run = openova(Some(&s3), &c.apply());
    assert_eq!(run.code, 0, "{run:?}");
    let mut with_young = c.expected.clone();
    with_young.insert(base(&third, "data.tar"));
    assert_eq!(
        keys_fs(&s3),
        with_young,
        "young data without descriptor stays: {run:?}"
    );
    let mut apply = c.apply().to_vec();
    apply.extend(["--grace", "30m"]);
    let run = openova(Some(&s3), &apply);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("objects without backup.info"),
        "{run:?}"
    );
    assert_eq!(
        keys_fs(&s3),
        c.expected,
        "an orphan once older than --grace: {run:?}"
    );

    // Killed by a timer at a deterministic pseudo-random moment of the run, and a little past it
    // (the run may then be done).
    let mut rng = Lcg(0x006f_7065_6e6f_7661);
    let mut mid_apply = 0;
    for trial in 0..TRIALS {
        write_fs(&s3, &c.objs);
        let span = full.as_micros() as u64 * 11 / 10;
        let delay = Duration::from_micros(rng.next() % span.max(1));
        let mut child = spawn(Some(&s3), &c.apply());
        std::thread::sleep(delay);
        let _ = child.kill();
        let killed = finish(child);
        let left = keys_fs(&s3);
        if left.len() < c.objs.len() && left.difference(&c.expected).any(|k| k != LEASE) {
            mid_apply += 1;
        }
        c.recover(&format!(
            "trial {trial}, killed after {delay:?} (exit {})",
            killed.code
        ));
    }
    eprintln!("{mid_apply} of {TRIALS} kills landed mid-deletion");
}

/// A store that, once, holds back the answer to a read of [`LEASE`] (`get` or `get_range`, the
/// latter being how the lease is read): it says it has read (`read`) and answers only when told
/// to (`go`). Everything else goes straight to `inner`.
struct Gated {
    inner: std::sync::Arc<dyn ObjectStore>,
    read: std::sync::Arc<tokio::sync::Notify>,
    go: std::sync::Arc<tokio::sync::Notify>,
    armed: std::sync::atomic::AtomicBool,
}

impl Gated {
    /// The first read of the lease waits here until told to go on.
    async fn hold(&self, key: &str) {
        if key == LEASE && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.read.notify_one();
            self.go.notified().await;
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for Gated {
    fn url(&self) -> &StorageUrl {
        self.inner.url()
    }
    async fn list(&self, prefix: &str) -> store::Result<Vec<store::ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn list_dir(&self, prefix: &str) -> store::Result<store::DirListing> {
        self.inner.list_dir(prefix).await
    }
    async fn get(&self, key: &str) -> store::Result<bytes::Bytes> {
        let got = self.inner.get(key).await;
        self.hold(key).await;
        got
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> store::Result<store::Body> {
        let got = self.inner.get_range(key, offset, len).await;
        self.hold(key).await;
        got
    }
    async fn put(&self, key: &str, body: bytes::Bytes) -> store::Result<()> {
        self.inner.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: bytes::Bytes) -> store::Result<bool> {
        self.inner.put_if_absent(key, body).await
    }
    async fn delete_many(&self, keys: &[String]) -> store::Result<()> {
        self.inner.delete_many(keys).await
    }
    async fn head(&self, key: &str) -> store::Result<Option<store::ObjectMeta>> {
        self.inner.head(key).await
    }
}

/// Two runs find a dead run's lease expired and take it over; at most one may hold it. Played
/// step by step on a `file://` store (atomic create-if-absent), so only openova's lease logic is
/// under test: B reads the expired lease; A reads it too, deletes it and creates its own; then B
/// goes on.
///
/// This failed before the takeover went through a conditional marker (the expired lease was deleted
/// unconditionally, so B deleted A's fresh lease and both ran; with two real processes on s3s-fs it
/// happened in 11 of 20 attempts).
#[test]
fn an_expired_lease_is_taken_over_by_one_run_only() {
    use openova::retention::lease::Lease;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
    let fs: Arc<dyn ObjectStore> = Arc::new(store::FsStore::new(url));
    let dead = Utc::now() - TimeDelta::hours(1);
    let lease = dir.path().join(LEASE);
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    std::fs::write(
        &lease,
        holder("1@gone", dead, dead + TimeDelta::minutes(10)),
    )
    .unwrap();
    let gated = Arc::new(Gated {
        inner: fs.clone(),
        read: Arc::default(),
        go: Arc::default(),
        armed: true.into(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = "s3://b/cnpg";
        let b_store: Arc<dyn ObjectStore> = gated.clone();
        let b = tokio::spawn(async move {
            Lease::acquire(b_store, LEASE, storage, "retention", true).await
        });
        gated.read.notified().await;
        let a = Lease::acquire(fs.clone(), LEASE, storage, "retention", true).await;
        gated.go.notify_one();
        let b = b.await.unwrap();
        let holders = [a.is_ok(), b.is_ok()];
        for l in [a, b].into_iter().flatten() {
            l.release().await.unwrap();
        }
        assert_ne!(holders, [true, true], "both runs hold the lease");
    });
}
