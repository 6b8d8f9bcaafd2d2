//! PostgreSQL point-in-time restore from a Barman Cloud archive: the plan (which base backup,
//! which WAL, how many bytes), fetching and extracting the base backup, the recovery settings;
//! [`local`] carries a plan out on this machine.

mod direct;
mod fetch;
pub mod local;
mod untar;

pub use fetch::Tuning;

use crate::barman::{BaseBackup, ServerCatalog, Window, window::Range};
use crate::report::time;
use crate::store::{self, ObjectStore};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where recovery should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Latest,
    Time(DateTime<Utc>),
}

impl Target {
    /// `latest` or a time (see [`parse_time`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "latest" {
            return Ok(Self::Latest);
        }
        parse_time(s).map(Self::Time)
    }
}

/// A point in time as a user pastes it: RFC 3339 (`2026-12-03T00:31:12Z`), or as PostgreSQL
/// prints a `timestamptz` (`2026-12-03 00:31:12.123456+00`, `+05:30`). A time without a zone is
/// refused: guessing one would restore to the wrong hour.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    let hint = "write e.g. 2026-11-25T03:00:00Z or 2026-11-25 03:00:00+00";
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ] {
        let naive = chrono::NaiveDateTime::parse_from_str(s, format).is_ok()
            || chrono::NaiveDate::parse_from_str(s, format).is_ok();
        if naive {
            return Err(format!(
                "{s:?} has no time zone: add one (Z or +00 for UTC), {hint}"
            ));
        }
    }
    Err(format!("{s:?} is not a time: {hint}"))
}

/// What a restore will do: the backup chosen, the WAL needed, the bytes to fetch.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub server: String,
    pub target: Target,
    pub backup_id: String,
    pub backup_end: DateTime<Utc>,
    pub timeline: u32,
    pub wal_from: String,
    pub wal_to: String,
    pub download_bytes: u64,
    /// Every object to download: the data tar(s), then each tablespace's.
    pub objects: Vec<String>,
    pub pg_major: Option<u32>,
    pub tablespaces: Vec<TablespacePlan>,
    /// Each object's size as listed (the download knows where it ends, and the progress its ETA).
    #[serde(skip)]
    pub sizes: std::collections::BTreeMap<String, u64>,
}

/// Where a tablespace of the backup goes.
#[derive(Debug, Clone, Serialize)]
pub struct TablespacePlan {
    pub name: String,
    pub oid: u32,
    /// Its location when backed up.
    pub original: String,
    /// Where it is restored (the original unless relocated); `pg_tblspc/OID` links there.
    pub location: PathBuf,
    pub objects: Vec<String>,
}

impl Plan {
    /// Applies `NAME:DIR` relocations (as barman-cloud-restore's `--tablespace`).
    pub fn relocate(&mut self, rules: &[String]) -> Result<(), Error> {
        for rule in rules {
            let (name, to) = rule
                .split_once(':')
                .filter(|(n, d)| !n.is_empty() && !d.is_empty())
                .ok_or_else(|| Error::Relocation(format!("'{rule}' is not NAME:DIR")))?;
            let known: Vec<String> = self.tablespaces.iter().map(|t| t.name.clone()).collect();
            let t = self
                .tablespaces
                .iter_mut()
                .find(|t| t.name == name)
                .ok_or_else(|| {
                    Error::Relocation(format!(
                        "backup {} has no tablespace '{name}' (it has: {})",
                        self.backup_id,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
            t.location =
                std::path::absolute(to).map_err(|e| Error::Relocation(format!("{to}: {e}")))?;
        }
        Ok(())
    }
}

/// Set by the command (on SIGINT or SIGTERM) to stop a fetch: it winds down (the extraction
/// threads end), removes what it wrote as a failed fetch does, and fails with
/// [`Error::Interrupted`]. Checked a few times a second.
pub static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "interrupted: the restore was stopped before it was complete, and what it had written was \
         removed (the target is as it was found)"
    )]
    Interrupted,
    #[error("target {target} is outside the recoverable window of {server}: {window}")]
    OutsideWindow {
        server: String,
        target: String,
        window: String,
    },
    #[error("base backup {id}: {why}")]
    Tablespaces { id: String, why: String },
    #[error("--tablespace {0}")]
    Relocation(String),
    #[error("base backup {id}: {key} is not a tar archive openova can read ({why})")]
    BadArchive {
        id: String,
        key: String,
        why: String,
    },
    /// Writing the restored files failed (the archive was fine). The cause is part of the
    /// message, followed by what to do, so it is not a `source` (printed again after the hint).
    #[error("writing {path}: {cause}{}", full_hint(cause))]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Boxed: the largest variant.
    #[error(transparent)]
    AfterLastTransaction(Box<AfterLast>),
    #[error("target directory {0} is not empty; restore into an empty or new directory")]
    NotEmpty(PathBuf),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A target time after the last transaction of the archive.
#[derive(Debug, thiserror::Error)]
#[error(
    "target {target} is after the last transaction the archive holds for {server}: it {how} \
     at {last} (LSN {lsn}, in segment {segment}); PostgreSQL could not reach the target and \
     would stop there. Restore with --to latest, or give a time up to {last}"
)]
pub struct AfterLast {
    pub server: String,
    pub target: String,
    pub how: &'static str,
    pub last: String,
    pub lsn: String,
    pub segment: String,
}

/// The last transaction the WAL of a plan holds (see [`crate::wal::horizon`]).
#[derive(Debug, Clone, Serialize)]
pub struct LastTransaction {
    pub segment: String,
    pub time: DateTime<Utc>,
    pub lsn: String,
    pub committed: bool,
}

/// Reads the last transaction on the plan's timeline and refuses a target time after it,
/// before anything is downloaded. WAL that cannot be read is no refusal: the restore goes on
/// (a warning says why), and PostgreSQL's own end is diagnosed after replay.
pub async fn check_reachable(
    store: &dyn store::ObjectStore,
    plan: &Plan,
) -> Result<Option<LastTransaction>, Error> {
    let found = match crate::wal::horizon::last_transaction(store, &plan.server, &plan.wal_to).await
    {
        Ok(found) => found,
        Err(why) => {
            tracing::warn!(segment = %plan.wal_to, %why, "cannot read the last transaction time from the archived WAL");
            return Ok(None);
        }
    };
    let Some((segment, t)) = found else {
        return Ok(None);
    };
    let last = LastTransaction {
        segment,
        time: t.time,
        lsn: crate::wal::records::lsn(t.lsn),
        committed: t.committed,
    };
    if let Target::Time(target) = plan.target
        && target > last.time
    {
        return Err(Error::AfterLastTransaction(Box::new(AfterLast {
            server: plan.server.clone(),
            target: as_given(target),
            how: if last.committed {
                "committed"
            } else {
                "aborted"
            },
            last: last
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            lsn: last.lsn,
            segment: last.segment,
        })));
    }
    Ok(Some(last))
}

fn describe(window: &Window) -> String {
    let spans = crate::barman::window::merged(&window.ranges);
    if spans.is_empty() {
        return "nothing is restorable (no DONE backup with its WAL)".into();
    }
    let parts: Vec<String> = spans
        .iter()
        .map(|(a, b)| format!("{} .. {}", time(*a), time(*b)))
        .collect();
    let gaps: Vec<String> = window
        .gaps
        .iter()
        .map(|g| match g.count {
            1 => format!("segment {} is missing", g.first_missing),
            _ => format!(
                "segments {} .. {} are missing",
                g.first_missing, g.last_missing
            ),
        })
        .collect();
    let gaps = if gaps.is_empty() {
        String::new()
    } else {
        format!(" (WAL gap: {})", gaps.join("; "))
    };
    format!("restorable {}{gaps}", parts.join(", "))
}

/// Chooses the newest restorable DONE backup that ended at or before the target, whose range
/// reaches the target.
pub fn plan(cat: &ServerCatalog, window: &Window, target: Target) -> Result<Plan, Error> {
    let fits = |r: &&Range| match target {
        Target::Latest => true,
        Target::Time(t) => r.from <= t && t <= r.to,
    };
    let best = window
        .ranges
        .iter()
        .filter(fits)
        .max_by_key(|r| (r.from, r.to));
    let best = match target {
        // Latest: the range reaching furthest, then the newest base.
        Target::Latest => window.ranges.iter().max_by_key(|r| (r.to, r.from)),
        Target::Time(_) => best,
    };
    let Some(range) = best else {
        let target = match target {
            Target::Latest => "latest".to_string(),
            Target::Time(t) => as_given(t),
        };
        return Err(Error::OutsideWindow {
            server: cat.server.clone(),
            target,
            window: describe(window),
        });
    };
    let b: &BaseBackup = cat
        .backups
        .iter()
        .find(|b| b.id == range.backup_id)
        .expect("ranges come from backups");
    let info = b.info.as_ref().expect("ranges come from DONE backups");
    let bad = |why: String| Error::Tablespaces {
        id: b.id.clone(),
        why,
    };
    let mut objects: Vec<String> = b
        .objects
        .iter()
        .filter(|o| is_data(&o.key))
        .map(|o| o.key.clone())
        .collect();
    objects.sort();
    let mut tablespaces = Vec::new();
    for t in info.tablespaces().map_err(bad)? {
        let mut parts: Vec<String> = b
            .objects
            .iter()
            .filter(|o| is_part_of(&o.key, &t.oid.to_string()))
            .map(|o| o.key.clone())
            .collect();
        parts.sort();
        if parts.is_empty() {
            return Err(bad(format!(
                "tablespace {} (oid {}) has no {}.tar* object in the backup folder",
                t.name, t.oid, t.oid
            )));
        }
        objects.extend(parts.iter().cloned());
        tablespaces.push(TablespacePlan {
            location: PathBuf::from(&t.location),
            name: t.name,
            oid: t.oid,
            original: t.location,
            objects: parts,
        });
    }
    let wanted: std::collections::HashSet<&String> = objects.iter().collect();
    let sizes = b
        .objects
        .iter()
        .filter(|o| wanted.contains(&o.key))
        .map(|o| (o.key.clone(), o.size))
        .collect();
    Ok(Plan {
        server: cat.server.clone(),
        target,
        backup_id: b.id.clone(),
        backup_end: range.from,
        timeline: info.timeline.unwrap_or(1),
        wal_from: info.begin_wal.clone().unwrap_or_default(),
        wal_to: range.last_segment.clone(),
        download_bytes: b
            .objects
            .iter()
            .filter(|o| wanted.contains(&o.key))
            .map(|o| o.size)
            .sum(),
        objects,
        pg_major: info.version.map(|v| v / 10000),
        tablespaces,
        sizes,
    })
}

/// A target time in a message as precise as it was given (psql prints microseconds; a target
/// shown cut to the second would not be the one refused).
fn as_given(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What to do when the target's filesystem is full (nothing for other failures).
fn full_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            ": the target's filesystem is full (nothing was kept). Free space there, or restore \
             into another --target-dir; --dry-run gives the bytes to download, and the restored \
             files take about as much"
        }
        _ => "",
    }
}

fn is_data(key: &str) -> bool {
    is_part_of(key, "data")
}

/// `BASE.tar[.COMPRESSION]` or an additional part `BASE_NNNN.tar[...]`, as barman-cloud names them.
fn is_part_of(key: &str, base: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or_default();
    file.strip_prefix(base)
        .is_some_and(|rest| rest.starts_with(".tar") || rest.starts_with('_'))
}

/// What fetching the base backup took. The phase times of extraction are seconds of the
/// extracting threads, summed over the tars (several run at once).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fetched {
    pub bytes: u64,
    /// From the first request to the last byte downloaded.
    pub download_seconds: f64,
    /// Extracting threads busy (decompressing, parsing, writing; waiting for data not counted).
    pub extract_seconds: f64,
    pub decompress_seconds: f64,
    pub write_seconds: f64,
    /// Extracting threads waiting for downloaded data.
    pub wait_seconds: f64,
    /// The fsync pass over everything written, at the end.
    pub sync_seconds: f64,
    /// Wall time of the whole fetch, from the first request to the end of the fsync pass.
    pub seconds: f64,
    /// CPU seconds: of the extracting threads, and of the whole process during the fetch.
    pub extract_cpu_seconds: f64,
    pub cpu_seconds: f64,
    /// The process's peak resident size so far (Linux `VmHWM`), in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// After the fetch: writing the recovery settings and the `wal-get` helper beside the target
    /// (absent when only downloading).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configure_seconds: Option<f64>,
}

/// Downloads the base backup and extracts it into `dir` (which must be empty or absent), then
/// syncs it to disk. A failure leaves `dir` and the tablespace locations as they were found:
/// absent, or empty.
pub async fn download_and_extract(
    store: &dyn ObjectStore,
    plan: &Plan,
    dir: &Path,
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    download_and_extract_with(store, plan, dir, Tuning::default(), progress).await
}

/// [`download_and_extract`] with other chunk sizes and parallelism.
pub async fn download_and_extract_with(
    store: &dyn ObjectStore,
    plan: &Plan,
    dir: &Path,
    tuning: Tuning,
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    let mut roots = vec![dir.to_path_buf()];
    roots.extend(plan.tablespaces.iter().map(|t| t.location.clone()));
    // Every destination is checked before anything is written.
    let existed = roots
        .iter()
        .map(|d| empty_or_absent(d))
        .collect::<Result<Vec<bool>, Error>>()?;
    let done = fetch_into(store, plan, dir, &roots, tuning, progress).await;
    if done.is_err() {
        for (root, existed) in roots.iter().zip(existed) {
            clear(root, existed);
        }
    }
    done
}

/// `Ok(true)` when `d` exists (and is empty), `Ok(false)` when absent.
fn empty_or_absent(d: &Path) -> Result<bool, Error> {
    match std::fs::read_dir(d) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(Error::NotEmpty(d.to_path_buf())),
            None => Ok(true),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(cause) => Err(Error::Io {
            what: "reading",
            path: d.to_path_buf(),
            cause,
        }),
    }
}

/// Puts a destination back as it was found: removed when it was absent, emptied when it existed.
fn clear(root: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(root);
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
    }
}

/// Fetches into `dir` and the tablespace locations; `roots` are all of them, synced at the end.
async fn fetch_into(
    store: &dyn ObjectStore,
    plan: &Plan,
    dir: &Path,
    roots: &[PathBuf],
    tuning: Tuning,
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |cause| Error::Io { what, path, cause }
    };
    let (started, cpu0) = (std::time::Instant::now(), process_cpu());
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let mut jobs: Vec<fetch::Job> = plan
        .objects
        .iter()
        .filter(|k| is_data(k))
        .map(|k| job(plan, k, dir))
        .collect();
    for t in &plan.tablespaces {
        std::fs::create_dir_all(&t.location).map_err(io("creating", &t.location))?;
        jobs.extend(t.objects.iter().map(|k| job(plan, k, &t.location)));
    }
    let totals = fetch::fetch_all(store, &plan.backup_id, &jobs, tuning, progress).await;
    if INTERRUPT.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let totals = totals?;
    // PostgreSQL finds each tablespace through pg_tblspc/OID.
    let links = dir.join("pg_tblspc");
    std::fs::create_dir_all(&links).map_err(io("creating", &links))?;
    for t in &plan.tablespaces {
        let link = links.join(t.oid.to_string());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&t.location, &link).map_err(io("linking", &link))?;
    }
    // barman-cloud-backup leaves pg_wal's content out; PostgreSQL needs the folder.
    std::fs::create_dir_all(dir.join("pg_wal")).map_err(io("creating", &dir.join("pg_wal")))?;
    let _ = std::fs::remove_file(dir.join("postmaster.pid"));
    progress.message("syncing the restored files to disk");
    let synced = std::time::Instant::now();
    let roots = roots.to_vec();
    tokio::task::spawn_blocking(move || untar::sync_all(&roots, SYNC_THREADS))
        .await
        .map_err(|e| Error::Io {
            what: "syncing",
            path: dir.to_path_buf(),
            cause: std::io::Error::other(e.to_string()),
        })??;
    let s = &totals.spent;
    Ok(Fetched {
        bytes: totals.bytes,
        download_seconds: totals.download_seconds,
        extract_seconds: s.busy,
        decompress_seconds: s.decompressing,
        write_seconds: s.writing,
        wait_seconds: s.waiting,
        sync_seconds: synced.elapsed().as_secs_f64(),
        seconds: started.elapsed().as_secs_f64(),
        extract_cpu_seconds: s.cpu,
        cpu_seconds: (process_cpu() - cpu0).max(0.0),
        peak_rss_bytes: peak_rss(),
        configure_seconds: None,
    })
}

/// Downloads every object of the base backup exactly as [`download_and_extract`] does, and drops
/// the bytes: what the store and the network allow a restore (`restore postgres --discard`, for
/// `scripts/bench-restore`'s floor). Nothing is written.
pub async fn download_only(
    store: &dyn ObjectStore,
    plan: &Plan,
    tuning: Tuning,
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    let (started, cpu0) = (std::time::Instant::now(), process_cpu());
    let jobs: Vec<fetch::Job> = plan
        .objects
        .iter()
        .map(|key| fetch::Job {
            key,
            size: plan.sizes.get(key).copied(),
            into: None,
        })
        .collect();
    let totals = fetch::fetch_all(store, &plan.backup_id, &jobs, tuning, progress).await?;
    Ok(Fetched {
        bytes: totals.bytes,
        download_seconds: totals.download_seconds,
        wait_seconds: totals.spent.waiting,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: (process_cpu() - cpu0).max(0.0),
        peak_rss_bytes: peak_rss(),
        ..Fetched::default()
    })
}

fn job<'a>(plan: &Plan, key: &'a str, into: &'a Path) -> fetch::Job<'a> {
    fetch::Job {
        key,
        size: plan.sizes.get(key).copied(),
        into: Some(into),
    }
}

/// fsyncs at once: the device queue takes several, and each waits on its own file.
const SYNC_THREADS: usize = 8;

/// CPU seconds of this process so far (Linux `/proc/self/stat`, in clock ticks of 1/100 s; 0
/// elsewhere).
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses; utime and stime are
    // the 14th and 15th fields, 12th and 13th after it.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The peak resident size of this process (Linux `VmHWM` in `/proc/self/status`).
#[must_use]
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The recovery settings appended to `postgresql.auto.conf`, and `recovery.signal`.
pub fn write_recovery(
    dir: &Path,
    plan: &Plan,
    restore_command: &str,
    extra: &[String],
) -> Result<(), Error> {
    let io = |path: PathBuf| {
        move |cause| Error::Io {
            what: "writing",
            path,
            cause,
        }
    };
    let mut conf = String::from("\n# written by openova restore\n");
    conf += &format!(
        "restore_command = '{}'\n",
        restore_command.replace('\'', "''")
    );
    if let Target::Time(t) = plan.target {
        conf += &format!(
            "recovery_target_time = '{}'\n",
            t.format("%Y-%m-%d %H:%M:%S%.6f+00")
        );
    }
    conf += "recovery_target_action = 'promote'\nrecovery_target_timeline = 'latest'\n";
    // Never write into the production archive from a restored instance.
    conf += "archive_mode = 'off'\n";
    for line in extra {
        conf += line;
        conf.push('\n');
    }
    let auto = dir.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text += &conf;
    std::fs::write(&auto, text).map_err(io(auto))?;
    std::fs::write(dir.join("recovery.signal"), "").map_err(io(dir.join("recovery.signal")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_users_paste_them() {
        let want = "2026-12-03T00:31:12.123456Z";
        for s in [
            "2026-12-03T00:31:12.123456Z",
            "2026-12-03 00:31:12.123456+00",
            "2026-12-03 01:31:12.123456+01",
            "2026-12-03 06:01:12.123456+05:30",
            " 2026-12-03T00:31:12.123456+00:00 ",
        ] {
            let t = parse_time(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                want,
                "{s}"
            );
        }
        assert_eq!(
            parse_time("2026-12-03 00:31:12").unwrap_err(),
            "\"2026-12-03 00:31:12\" has no time zone: add one (Z or +00 for UTC), write e.g. \
             2026-11-25T03:00:00Z or 2026-11-25 03:00:00+00"
        );
        assert!(
            parse_time("2026-12-03")
                .unwrap_err()
                .contains("has no time zone")
        );
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("is not a time")
        );
        assert_eq!(Target::parse("latest"), Ok(Target::Latest));
    }
    use crate::store::{FsStore, StorageUrl};
    use bytes::Bytes;
    use std::io::{Read, Write};

    /// One tar through the pipeline, in 4 KiB GETs, 3 in flight.
    async fn stream_extract(store: &FsStore, key: &str, into: &Path) -> Result<u64, Error> {
        let tuning = Tuning {
            chunk: 4096,
            ahead: 3,
            tars: 1,
        };
        let job = fetch::Job {
            key,
            size: None,
            into: Some(into),
        };
        let silent = crate::report::Silent;
        fetch::fetch_all(store, "b", &[job], tuning, &silent)
            .await
            .map(|t| t.bytes)
    }

    /// A gzip tar of a few files, larger than the chunk size used below.
    fn tarball() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        let files: Vec<(String, Vec<u8>)> = (0..5u32)
            .map(|i| {
                let mut x = u64::from(i) + 1;
                let body: Vec<u8> = (0..20_000)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (x >> 56) as u8
                    })
                    .collect();
                (format!("base/{i}"), body)
            })
            .collect();
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, body.as_slice()).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b.into_inner().unwrap()).unwrap();
        (gz.finish().unwrap(), files)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_base_backup_is_extracted_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().join("s").display())).unwrap();
        let store = FsStore::new(url);
        let (gz, files) = tarball();
        assert!(gz.len() > 3 * 4096, "several chunks");
        store
            .put("b/data.tar.gz", Bytes::from(gz.clone()))
            .await
            .unwrap();
        let into = dir.path().join("out");
        std::fs::create_dir(&into).unwrap();
        let bytes = stream_extract(&store, "b/data.tar.gz", &into)
            .await
            .unwrap();
        assert_eq!(bytes, gz.len() as u64);
        for (name, body) in &files {
            assert_eq!(&std::fs::read(into.join(name)).unwrap(), body, "{name}");
        }
        // Truncated: an error naming the object, never a shorter restore passed off as whole.
        store
            .put("b/cut.tar.gz", Bytes::from(gz[..gz.len() / 2].to_vec()))
            .await
            .unwrap();
        let into = dir.path().join("cut");
        std::fs::create_dir(&into).unwrap();
        let e = stream_extract(&store, "b/cut.tar.gz", &into)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("b/cut.tar.gz"), "{e}");
        // Uncompressed, cut right after the first entry (a header boundary).
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        let first = 512 + files[0].1.len().div_ceil(512) * 512;
        store
            .put("b/cut.tar", Bytes::from(raw[..first].to_vec()))
            .await
            .unwrap();
        let into = dir.path().join("cut-raw");
        std::fs::create_dir(&into).unwrap();
        let e = stream_extract(&store, "b/cut.tar", &into)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b/cut.tar") && e.contains("end-of-archive"),
            "{e}"
        );
    }
}
