//! PostgreSQL point-in-time restore from a Barman Cloud archive: the plan (which base backup,
//! which WAL, how many bytes), fetching and extracting the base backup, the recovery settings;
//! [`local`] carries a plan out on this machine.

pub mod local;

use crate::barman::{BaseBackup, ServerCatalog, Window, window::Range};
use crate::report::time;
use crate::store::{self, ObjectStore};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Read;
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
            target: time(target),
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
            Target::Time(t) => time(t),
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
    })
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

/// What fetching the base backup took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fetched {
    pub bytes: u64,
    pub download_seconds: f64,
    pub extract_seconds: f64,
}

/// Downloads the base backup and extracts it into `dir` (which must be empty or absent).
/// Returns the bytes downloaded.
pub async fn download_and_extract(
    store: &dyn ObjectStore,
    plan: &Plan,
    dir: &Path,
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let empty_or_absent = |d: &Path| -> Result<(), Error> {
        if d.exists()
            && std::fs::read_dir(d)
                .map_err(io("reading", d))?
                .next()
                .is_some()
        {
            return Err(Error::NotEmpty(d.to_path_buf()));
        }
        Ok(())
    };
    // Every destination is checked before anything is written.
    empty_or_absent(dir)?;
    for t in &plan.tablespaces {
        empty_or_absent(&t.location)?;
    }
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let mut got = Fetched::default();
    let mut jobs: Vec<(&String, &Path)> = plan
        .objects
        .iter()
        .filter(|k| is_data(k))
        .map(|k| (k, dir))
        .collect();
    for t in &plan.tablespaces {
        std::fs::create_dir_all(&t.location).map_err(io("creating", &t.location))?;
        jobs.extend(t.objects.iter().map(|k| (k, t.location.as_path())));
    }
    for (key, into) in jobs {
        let (bytes, download, extract) =
            stream_extract(store, &plan.backup_id, key, into, CHUNK, progress).await?;
        got.bytes += bytes;
        got.download_seconds += download;
        got.extract_seconds += extract;
    }
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
    Ok(got)
}

/// How much of an archive one ranged GET fetches: what is held in memory per tar, twice (one
/// chunk being extracted, one on its way), whatever the size of the base backup.
const CHUNK: u64 = 32 << 20;

/// Downloads `key` in ranged chunks while a blocking thread extracts what has arrived into
/// `into`: the base backup is never held in memory whole, and download and extraction overlap.
/// Returns the bytes downloaded, the seconds spent downloading and the seconds spent extracting
/// (waiting for data not counted).
async fn stream_extract(
    store: &dyn ObjectStore,
    id: &str,
    key: &str,
    into: &Path,
    chunk_size: u64,
    progress: &dyn crate::report::Progress,
) -> Result<(u64, f64, f64), Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(1);
    let (id_, key_, into_) = (id.to_string(), key.to_string(), into.to_path_buf());
    let extractor = tokio::task::spawn_blocking(move || {
        let mut reader = ChunkReader {
            rx,
            chunk: Bytes::new(),
            waited: std::time::Duration::ZERO,
        };
        let t = std::time::Instant::now();
        let done = extract(&id_, &key_, &mut reader, &into_);
        (
            done,
            t.elapsed().saturating_sub(reader.waited).as_secs_f64(),
        )
    });
    let (mut offset, mut download) = (0u64, 0.0);
    let fetched: Result<(), Error> = async {
        loop {
            let t = std::time::Instant::now();
            let chunk = store.get_range(key, offset, chunk_size).await?;
            download += t.elapsed().as_secs_f64();
            let n = chunk.len() as u64;
            offset += n;
            if n > 0 {
                progress.message(&format!("{key}: {} MiB downloaded", offset >> 20));
                if tx.send(chunk).is_err() {
                    break; // the extractor stopped: its error says why
                }
            }
            if n < chunk_size {
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(tx); // end of data
    let (extracted, extract_seconds) = extractor.await.map_err(|e| Error::BadArchive {
        id: id.to_string(),
        key: key.to_string(),
        why: format!("extraction thread failed: {e}"),
    })?;
    fetched?;
    extracted?;
    if offset == 0 {
        return Err(Error::BadArchive {
            id: id.to_string(),
            key: key.to_string(),
            why: "the object is empty".into(),
        });
    }
    Ok((offset, download, extract_seconds))
}

/// A `Read` over the chunks the downloader sends; end of data when it hangs up.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
    waited: std::time::Duration,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let t = std::time::Instant::now();
            let next = self.rx.recv();
            self.waited += t.elapsed();
            match next {
                Ok(c) => self.chunk = c,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

fn extract(id: &str, key: &str, body: &mut dyn Read, dir: &Path) -> Result<(), Error> {
    let bad = |why: String| Error::BadArchive {
        id: id.to_string(),
        key: key.to_string(),
        why,
    };
    let reader: Box<dyn Read + '_> = match key.rsplit('.').next() {
        Some("gz") => Box::new(flate2::read::GzDecoder::new(body)),
        Some("bz2") => Box::new(bzip2::read::BzDecoder::new(body)),
        Some("snappy") => Box::new(snap::read::FrameDecoder::new(body)),
        Some("tar") => Box::new(body),
        other => return Err(bad(format!("unknown compression {other:?}"))),
    };
    let mut tail = EndMarker {
        inner: reader,
        pos: 0,
        block_zero: true,
        last_block_zero: false,
    };
    let mut archive = tar::Archive::new(&mut tail);
    archive.set_preserve_permissions(true);
    archive.unpack(dir).map_err(|e| bad(e.to_string()))?;
    // The tar reader stops at a zero block (the end-of-archive marker) or, silently, at the end
    // of the data: a tar cut at an entry boundary would pass for a shorter backup.
    if !tail.last_block_zero {
        return Err(bad(
            "it ends without the tar end-of-archive marker: the object is truncated".into(),
        ));
    }
    Ok(())
}

/// Tells whether the last whole 512-byte block read was all zeros.
struct EndMarker<R> {
    inner: R,
    pos: u64,
    block_zero: bool,
    last_block_zero: bool,
}

impl<R: Read> Read for EndMarker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = (512 - self.pos % 512) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.block_zero &= now.iter().all(|b| *b == 0);
            self.pos += now.len() as u64;
            if self.pos.is_multiple_of(512) {
                self.last_block_zero = self.block_zero;
                self.block_zero = true;
            }
            rest = later;
        }
        Ok(n)
    }
}

/// The recovery settings appended to `postgresql.auto.conf`, and `recovery.signal`.
pub fn write_recovery(
    dir: &Path,
    plan: &Plan,
    restore_command: &str,
    extra: &[String],
) -> Result<(), Error> {
    let io = |path: PathBuf| {
        move |source| Error::Io {
            what: "writing",
            path,
            source,
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
    use std::io::Write;

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
        let silent = crate::report::Silent;
        let (bytes, _, _) = stream_extract(&store, "b", "b/data.tar.gz", &into, 4096, &silent)
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
        let e = stream_extract(&store, "b", "b/cut.tar.gz", &into, 4096, &silent)
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
        let e = stream_extract(&store, "b", "b/cut.tar", &into, 4096, &silent)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b/cut.tar") && e.contains("end-of-archive"),
            "{e}"
        );
    }
}
