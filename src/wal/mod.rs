//! `openova wal-get`: the fast PostgreSQL `restore_command` for a Barman Cloud archive.
//!
//! One call fetches the asked-for file (segment, `.history`, `.backup`, `.partial`), decompresses
//! it (none, gzip, bzip2, snappy as barman-cloud-wal-archive writes them) and writes it atomically
//! to the destination. For a segment it also makes sure a detached prefetcher ([`prefetch`]) keeps
//! the next segments downloading into a spool folder, so the next calls are served from local
//! disk without a round trip.
//!
//! PostgreSQL's contract: exit 0 when the file was restored, non-zero when it is not in the archive
//! (which ends recovery). A real failure (network, credentials, a corrupt object) must NOT look like
//! "not found", or recovery would end early and promote with data missing: it exits with
//! [`EXIT_ERROR`] (255), which PostgreSQL treats like a signal and aborts recovery on.

use crate::barman::wal::{self, WalFile, WalKind};
use crate::sparse;
use crate::store::{self, ObjectStore};
use std::io::Read;
use std::path::{Path, PathBuf};

pub mod horizon;
pub mod prefetch;
pub mod records;

/// Exit code for "not in the archive".
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code for a real error: above 125, so PostgreSQL aborts recovery instead of ending it.
pub const EXIT_ERROR: u8 = 255;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "'{0}' is not a WAL file name (24 hex digits, optionally .partial / .OFFSET.backup, or TTTTTTTT.history)"
    )]
    BadName(String),
    #[error("{key}: cannot decompress ({compression}): {why}")]
    Corrupt {
        key: String,
        compression: String,
        why: String,
    },
    #[error("{key}: compression '{0}' is not supported by openova wal-get (supported: none, gz, bz2, snappy)", .compression)]
    Unsupported { key: String, compression: String },
    #[error(
        "{key}: {size} bytes is not the size its header declares (a power of two, 16 MiB by default): truncated or corrupt"
    )]
    BadSize { key: String, size: usize },
    /// The cause is part of the message, not a `source` (which `{:#}` would print a second time).
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Where a file lives in the archive, relative to the storage prefix.
fn folder(server: &str, f: &WalFile) -> String {
    match f.kind {
        WalKind::History => format!("{server}/wals/"),
        _ => format!("{server}/wals/{}/", &f.segment_name()[..16]),
    }
}

/// Decompresses by the object's suffix.
pub fn decompress(key: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    decompress_into(key, body, &mut out)?;
    Ok(out)
}

/// Decompresses by the object's suffix into `out` (cleared first; its allocation is reused, so a
/// long-lived caller does not map and fault in 16 MiB per segment).
pub fn decompress_into(key: &str, body: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let compression =
        WalFile::parse(key.rsplit('/').next().unwrap_or_default()).and_then(|f| f.compression);
    out.clear();
    out.reserve(SEGMENT_SIZE as usize);
    let read = match compression.as_deref() {
        None => {
            out.extend_from_slice(body);
            return Ok(());
        }
        Some("gz") => flate2::read::GzDecoder::new(body).read_to_end(out),
        Some("bz2") => bzip2::read::BzDecoder::new(body).read_to_end(out),
        Some("snappy") => snap::read::FrameDecoder::new(body).read_to_end(out),
        Some(other) => {
            return Err(Error::Unsupported {
                key: key.to_string(),
                compression: other.to_string(),
            });
        }
    };
    read.map_err(|e| Error::Corrupt {
        key: key.to_string(),
        compression: compression.unwrap_or_default(),
        why: e.to_string(),
    })?;
    Ok(())
}

/// An archive object as stored (still compressed).
pub struct Fetched {
    pub key: String,
    pub body: bytes::Bytes,
    kind: WalKind,
}

impl Fetched {
    /// Decompresses into `out` and checks a segment has the size its header declares.
    pub fn decode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        decompress_into(&self.key, &self.body, out)?;
        if self.kind == WalKind::Segment && Some(out.len()) != declared_size(out) {
            return Err(Error::BadSize {
                key: self.key.clone(),
                size: out.len(),
            });
        }
        Ok(())
    }
}

/// Downloads one archive file as stored; `Ok(None)` when it is not in the archive.
pub async fn download(
    store: &dyn ObjectStore,
    server: &str,
    name: &str,
) -> Result<Option<Fetched>, Error> {
    let f = WalFile::parse(name)
        .filter(|f| f.compression.is_none())
        .ok_or_else(|| Error::BadName(name.to_string()))?;
    let dir = folder(server, &f);
    // One listing finds the object whatever its compression suffix.
    let listed = store.list_dir(&format!("{dir}{name}")).await?.objects;
    let exact = |o: &&store::ObjectMeta| {
        let file = &o.key[dir.len()..];
        file == name
            || file
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix('.'))
                .is_some_and(|c| wal::COMPRESSIONS.contains(&c))
    };
    let Some(obj) = listed.iter().find(exact) else {
        return Ok(None);
    };
    let Some(body) = store::get_if_exists(store, &obj.key).await? else {
        return Ok(None);
    };
    Ok(Some(Fetched {
        key: obj.key.clone(),
        body,
        kind: f.kind,
    }))
}

/// Fetches one archive file, decompressed; `Ok(None)` when it is not in the archive.
pub async fn fetch(
    store: &dyn ObjectStore,
    server: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(got) = download(store, server, name).await? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    got.decode_into(&mut data)?;
    Ok(Some(data))
}

/// The segment size a WAL segment declares in its first page's long header (`xlp_seg_size` at
/// byte 32, present when `xlp_info` has `XLP_LONG_HEADER`); a valid size without that header.
/// A truncated segment is shorter than it declares.
fn declared_size(data: &[u8]) -> Option<usize> {
    const XLP_LONG_HEADER: u16 = 0x0002;
    let info = u16::from_le_bytes(data.get(2..4)?.try_into().ok()?);
    let size = if info & XLP_LONG_HEADER != 0 {
        usize::try_from(u32::from_le_bytes(data.get(32..36)?.try_into().ok()?)).ok()?
    } else {
        data.len()
    };
    (size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size)).then_some(size)
}

/// Writes `data` to `dest` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(dest: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = dest.with_extension("openova-partial");
    let written = std::fs::File::create(&tmp)
        .and_then(|file| write_skipping_zeros(&file, data))
        .and_then(|()| std::fs::rename(&tmp, dest));
    written.map_err(|cause| {
        // A full disk must not leave a partial segment behind in pg_wal.
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            what: "writing",
            path: dest.to_path_buf(),
            cause,
        }
    })
}

/// Writes `data` into an empty file without copying its zero-filled stretches (a segment that
/// `archive_timeout` or `pg_switch_wal()` switched early is mostly zeros; copying 16 MiB into the
/// page cache is most of a fetch's CPU time). The whole length is first allocated with
/// `fallocate`: those blocks read back as zeros and are real allocated blocks, not a sparse hole,
/// so PostgreSQL later overwriting a recycled segment can never fail for want of space. Where
/// `fallocate` is not supported it writes every byte.
fn write_skipping_zeros(file: &std::fs::File, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if data.len() < 2 * sparse::ZERO_RUN || !sparse::allocate(file, data.len() as u64) {
        return (&*file).write_all(data);
    }
    sparse::write_nonzero(file, data, 0)
}

/// The segment size the prefetcher assumes when naming the next segments (PostgreSQL's default;
/// with another size its guesses are simply not in the archive and calls fetch for themselves).
pub const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// Serves `name` from the spool when the prefetcher put it there: a rename, no network. Called
/// before anything else (even before the store client is built), since most calls end here.
/// `Ok(false)` when it is not there (also when the prefetcher removed it a moment ago).
pub fn from_spool(spool: &Path, name: &str, dest: &Path) -> Result<bool, Error> {
    let spooled = spool.join(name);
    match std::fs::rename(&spooled, dest) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) => {}
    }
    // Another filesystem: copy then remove.
    let data = match std::fs::read(&spooled) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(cause) => {
            return Err(Error::Io {
                what: "reading",
                path: spooled,
                cause,
            });
        }
    };
    write_atomic(dest, &data)?;
    let _ = std::fs::remove_file(&spooled);
    Ok(true)
}

/// The next `n` segment names after `name` on its timeline.
fn following(name: &str, n: usize, segment_size: u64) -> Vec<String> {
    let Some((tl, log, seg)) = wal::split_segment(name) else {
        return vec![];
    };
    let at = wal::seg_no(log, seg, segment_size);
    (1..=n as u64)
        .map(|i| wal::name_of(tl, at + i, segment_size))
        .collect()
}

fn is_segment(name: &str) -> bool {
    WalFile::parse(name).is_some_and(|f| f.kind == WalKind::Segment && f.compression.is_none())
}

/// The local part of a call: serves `name` from the spool, or from the prefetcher's download of it
/// (waiting for it), then tells the prefetcher where recovery is and starts one if none runs.
/// `Ok(false)`: the caller must fetch it from the store itself.
pub fn from_local(w: &prefetch::WorkerArgs, name: &str, dest: &Path) -> Result<bool, Error> {
    if !prefetch::claim_spool(w) {
        // The spool belongs to another archive's live worker: fetch directly, touch nothing.
        return Ok(false);
    }
    let segment = is_segment(name);
    let mut served = from_spool(w.spool, name, dest)?;
    if !served && segment && w.prefetch > 0 && prefetch::wait_for(w.spool, name) {
        served = from_spool(w.spool, name, dest)?;
    }
    if segment && w.prefetch > 0 && std::fs::create_dir_all(w.spool).is_ok() {
        // Before our own download, so that the worker fetches the next ones meanwhile.
        prefetch::note_asked(w.spool, name);
        prefetch::ensure_worker(w);
    }
    Ok(served)
}

/// Fetches `name` from the store and writes it to `dest`. `Ok(false)` when the archive does not
/// have it.
pub async fn get(
    store: &dyn ObjectStore,
    server: &str,
    name: &str,
    dest: &Path,
) -> Result<bool, Error> {
    let Some(data) = fetch(store, server, name).await? else {
        return Ok(false);
    };
    write_atomic(dest, &data)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A segment that cannot be put in place leaves nothing behind in pg_wal, and the message
    /// names the path and the cause once.
    #[test]
    fn a_failed_write_leaves_no_partial_segment() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("000000010000000000000001");
        // A folder (not empty) where the segment goes: the rename at the end fails.
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("x"), b"x").unwrap();
        let err = write_atomic(&dest, &[7u8; 4096]).unwrap_err();
        let msg = format!("{:#}", anyhow::Error::from(err));
        assert!(
            msg.starts_with(&format!("writing {}: ", dest.display())),
            "{msg}"
        );
        assert_eq!(msg.matches("os error").count(), 1, "{msg}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [dest.file_name().unwrap()], "left behind: {left:?}");
    }

    #[test]
    fn decompresses_every_supported_format_and_rejects_truncation() {
        let data = vec![7u8; 4096];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).unwrap();
        let bz = bz.finish().unwrap();
        let mut sn = snap::write::FrameEncoder::new(Vec::new());
        sn.write_all(&data).unwrap();
        let sn = sn.into_inner().unwrap();
        let name = "srv/wals/0000000100000000/000000010000000000000003";
        assert_eq!(decompress(name, &data).unwrap(), data);
        assert_eq!(decompress(&format!("{name}.gz"), &gz).unwrap(), data);
        assert_eq!(decompress(&format!("{name}.bz2"), &bz).unwrap(), data);
        assert_eq!(decompress(&format!("{name}.snappy"), &sn).unwrap(), data);
        let e = decompress(&format!("{name}.gz"), &gz[..gz.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot decompress (gz)"), "{e}");
        assert!(matches!(
            decompress(&format!("{name}.xz"), b"x"),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn zero_stretches_are_skipped_but_read_back_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        // Records at the start, in the middle and in the last (short) chunk; zeros between.
        let mut data = vec![0u8; (16 << 20) + 100];
        data[..3000].fill(0x5a);
        data[5 << 20..(5 << 20) + 70_000].fill(0xa5);
        *data.last_mut().unwrap() = 1;
        let dest = dir.path().join("000000010000000000000001");
        write_atomic(&dest, &data).unwrap();
        assert!(std::fs::read(&dest).unwrap() == data);
        // Small and all-zero inputs too.
        for len in [0, 10, 200_000] {
            write_atomic(&dest, &vec![0u8; len]).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), vec![0u8; len]);
        }
    }

    #[test]
    fn next_segments_cross_log_boundaries() {
        assert_eq!(
            following("0000000100000000000000FF", 2, 16 << 20),
            ["000000010000000100000000", "000000010000000100000001"]
        );
    }
}
