//! Extracting one tar of a base backup (as a stream: decompressed and unpacked as it arrives) and
//! the fsync pass over everything a restore wrote.
//!
//! Regular files, nearly all of a base backup's bytes, are written here rather than by the `tar`
//! crate: in 1 MiB writes (not 8 KiB), without copying all-zero 64 KiB stretches (the file's
//! length is allocated first, as `wal-get` does). Files of 1 MiB and more are written with
//! `O_DIRECT`, from aligned blocks straight to the device, by writer threads while this thread
//! reads on ([`super::direct`]): a restore does not need its files in
//! the page cache (it drops them right after anyway), and allocating a gigabyte of page cache is
//! what made restores slow and erratic where memory is costly to take (measured on a VM: the same
//! 1 GB buffered write took 0.2 s to 11 s, a direct one 0.5 s to 0.9 s). Where the filesystem
//! refuses `O_DIRECT`, files are written through the page cache, with the kernel asked to start
//! writing each one back as soon as it is complete. Either way the one fsync pass at the end (as
//! pg_basebackup and pgBackRest do) finds little left to flush. Everything else (folders, links,
//! PAX and GNU headers, sparse entries) goes through the `tar` crate as before, with its checks.

use super::Error;
use super::direct::{ALIGN, BLOCK, Job, Writers, create_new, refused, write_block};
use crate::sparse::{ZERO_RUN, allocate, is_zero};
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one extraction spent its time on (seconds of the extracting thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// Waiting for downloaded data.
    pub waiting: f64,
    /// Inside the decompressor (0 for an uncompressed tar).
    pub decompressing: f64,
    /// Creating and writing files (for large files: waiting for the writer threads).
    pub writing: f64,
    /// The thread's whole busy time (not waiting), tar parsing included.
    pub busy: f64,
    /// CPU time of the thread (Linux; 0 where unknown).
    pub cpu: f64,
}

/// Counters shared with the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of the objects taken by extractors (compressed, as downloaded).
    pub consumed: AtomicU64,
    /// Bytes of file content unpacked (uncompressed).
    pub unpacked: AtomicU64,
}

/// The bytes an extraction reads, as they arrive from the downloader: one ranged GET at a time,
/// in the pieces the store handed on (one pooled buffer per GET from S3, see `store::pool`).
pub struct Chunks {
    rx: tokio::sync::mpsc::Receiver<crate::store::Body>,
    pieces: std::collections::VecDeque<bytes::Bytes>,
    chunk: bytes::Bytes,
    waited: Duration,
    counters: Arc<Counters>,
}

impl Chunks {
    pub fn new(
        rx: tokio::sync::mpsc::Receiver<crate::store::Body>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            rx,
            pieces: std::collections::VecDeque::new(),
            chunk: bytes::Bytes::new(),
            waited: Duration::ZERO,
            counters,
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if let Some(p) = self.pieces.pop_front() {
                self.chunk = p;
                continue;
            }
            let t = Instant::now();
            let next = self.rx.blocking_recv();
            self.waited += t.elapsed();
            match next {
                Some(body) => {
                    self.counters
                        .consumed
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    self.pieces.extend(body.into_pieces());
                }
                None => return Ok(0), // the downloader hung up: end of data
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Reads `body` to its end and drops it (the extraction's place when only the download is measured).
pub fn drain(mut body: Chunks) -> Spent {
    let (started, cpu0) = (Instant::now(), thread_cpu());
    // Dropped as they arrive, not copied anywhere: the download alone.
    loop {
        let t = Instant::now();
        let next = body.rx.blocking_recv();
        body.waited += t.elapsed();
        let Some(got) = next else { break };
        body.counters
            .consumed
            .fetch_add(got.len() as u64, Ordering::Relaxed);
    }
    let waiting = body.waited.as_secs_f64();
    Spent {
        waiting,
        busy: (started.elapsed().as_secs_f64() - waiting).max(0.0),
        cpu: (thread_cpu() - cpu0).max(0.0),
        ..Spent::default()
    }
}

/// Time spent inside a reader (for the decompressor: its own work plus the waits below it).
struct Timed<R> {
    inner: R,
    spent: Duration,
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let t = Instant::now();
        let n = self.inner.read(buf);
        self.spent += t.elapsed();
        n
    }
}

/// Extracts the tar `key` of backup `id` (compressed as its name says) from `body` into `dir`.
pub fn extract(id: &str, key: &str, body: Chunks, dir: &Path) -> Result<Spent, Error> {
    let bad = |why: String| Error::BadArchive {
        id: id.to_string(),
        key: key.to_string(),
        why,
    };
    let (started, cpu0) = (Instant::now(), thread_cpu());
    let counters = body.counters.clone();
    let mut below = Timed {
        inner: body,
        spent: Duration::ZERO,
    };
    let mut spent = Spent::default();
    let decoding;
    let mut writer = Writer::new(dir, counters).map_err(|e| bad(e.to_string()))?;
    {
        let decoder: Box<dyn Read + '_> = match key.rsplit('.').next() {
            Some("gz") => Box::new(flate2::read::GzDecoder::new(&mut below)),
            Some("bz2") => Box::new(bzip2::read::BzDecoder::new(&mut below)),
            Some("snappy") => Box::new(snap::read::FrameDecoder::new(&mut below)),
            Some("tar") => Box::new(&mut below),
            other => return Err(bad(format!("unknown compression {other:?}"))),
        };
        let mut tail = EndMarker {
            inner: Timed {
                inner: decoder,
                spent: Duration::ZERO,
            },
            pos: 0,
            block_zero: true,
            last_block_zero: false,
        };
        unpack(&mut tail, &mut writer).map_err(|e| match Target::take(e) {
            Ok(t) => Error::Write {
                path: t.path,
                cause: t.source,
            },
            Err(e) => bad(e.to_string()),
        })?;
        // The tar reader stops at a zero block (the end-of-archive marker) or, silently, at the
        // end of the data: a tar cut at an entry boundary would pass for a shorter backup.
        if !tail.last_block_zero {
            return Err(bad(
                "it ends without the tar end-of-archive marker: the object is truncated".into(),
            ));
        }
        decoding = tail.inner.spent;
    }
    spent.waiting = below.inner.waited.as_secs_f64();
    spent.decompressing = decoding.saturating_sub(below.spent).as_secs_f64();
    spent.writing = writer.spent.as_secs_f64();
    spent.busy = (started.elapsed().as_secs_f64() - spent.waiting).max(0.0);
    spent.cpu = (thread_cpu() - cpu0).max(0.0);
    Ok(spent)
}

/// Unpacks every entry, as `tar::Archive::unpack` does: folders last (deepest first), so that
/// their permissions cannot stop what goes inside them from being written.
fn unpack(body: &mut dyn Read, writer: &mut Writer) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(body);
    archive.set_preserve_permissions(true);
    let mut folders = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => folders.push(entry),
            tar::EntryType::Regular | tar::EntryType::Continuous => writer.file(&mut entry)?,
            _ => {
                entry.unpack_in(&writer.root)?;
            }
        }
    }
    folders.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in folders {
        dir.unpack_in(&writer.root)?;
    }
    Ok(())
}

/// A failure of the target, not of the archive (a full disk, a file that cannot be created):
/// carried through the `tar` crate's `io::Error`s so that it is reported as such, not as an
/// archive openova cannot read.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    source: std::io::Error,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for Target {}

impl Target {
    /// A closure marking an error as the target's, at `path`.
    fn at(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
        move |source| {
            let kind = source.kind();
            std::io::Error::new(
                kind,
                Self {
                    path: path.to_path_buf(),
                    source,
                },
            )
        }
    }

    /// The target's failure inside `e`, or `e` as it was.
    fn take(e: std::io::Error) -> Result<Self, std::io::Error> {
        type Inner = dyn std::error::Error + Send + Sync;
        if !e.get_ref().is_some_and(Inner::is::<Self>) {
            return Err(e);
        }
        let kind = e.kind();
        match e.into_inner().map(Inner::downcast::<Self>) {
            Some(Ok(t)) => Ok(*t),
            Some(Err(other)) => Err(std::io::Error::new(kind, other)),
            None => Err(std::io::Error::from(kind)),
        }
    }
}

/// Writes regular files under `root`.
struct Writer {
    root: PathBuf,
    /// Folders already created and checked to lie inside `root`.
    checked: HashSet<PathBuf>,
    /// The block files smaller than [`DIRECT_FROM`] are written from.
    buf: Vec<u8>,
    /// Whether large files are written with `O_DIRECT` (until the filesystem refuses it).
    direct: bool,
    /// The threads large files' blocks are written by.
    writers: Writers,
    /// Time spent creating and writing files (waiting for the writer threads included).
    spent: Duration,
    counters: Arc<Counters>,
}

/// A large file is handed to writeback every this many bytes, not only once complete.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// Files at least this long are allocated first and written without their zero stretches.
const ALLOCATE_FROM: u64 = 2 * ZERO_RUN as u64;
/// Files at least this long are written with `O_DIRECT`; smaller ones through the page cache.
const DIRECT_FROM: u64 = 1 << 20;

impl Writer {
    fn new(dir: &Path, counters: Arc<Counters>) -> std::io::Result<Self> {
        let root = dir.canonicalize()?;
        Ok(Self {
            checked: HashSet::from([root.clone()]),
            root,
            buf: Vec::new(),
            direct: true,
            writers: Writers::new()?,
            spent: Duration::ZERO,
            counters,
        })
    }

    /// Where an entry goes: only plain path components, below `root` (what the `tar` crate
    /// checks, except that a `..` is an error here rather than a skipped entry).
    fn destination(&mut self, path: &Path) -> std::io::Result<PathBuf> {
        let mut dst = self.root.clone();
        for c in path.components() {
            match c {
                Component::Normal(part) => dst.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(std::io::Error::other(format!(
                        "entry {} leaves the target folder",
                        path.display()
                    )));
                }
            }
        }
        let Some(parent) = dst.parent().filter(|_| dst != self.root) else {
            return Err(std::io::Error::other(format!(
                "entry {} has no file name",
                path.display()
            )));
        };
        if !self.checked.contains(parent) {
            std::fs::create_dir_all(parent).map_err(Target::at(parent))?;
            // A link unpacked earlier must not lead the file out of the target.
            if !parent.canonicalize()?.starts_with(&self.root) {
                return Err(std::io::Error::other(format!(
                    "entry {} would be written outside the target folder",
                    path.display()
                )));
            }
            self.checked.insert(parent.to_path_buf());
        }
        Ok(dst)
    }

    fn file(&mut self, entry: &mut tar::Entry<'_, &mut dyn Read>) -> std::io::Result<()> {
        let dst = self.destination(&entry.path()?)?;
        let (size, mode) = (entry.size(), entry.header().mode()?);
        let mtime = entry.header().mtime().ok();
        let t = Instant::now();
        let mut direct = self.direct && size >= DIRECT_FROM;
        let target = Target::at(&dst);
        let file = match create_new(&dst, direct) {
            Err(e) if direct && refused(&e) => {
                self.direct = false;
                direct = false;
                create_new(&dst, false).map_err(&target)?
            }
            other => other.map_err(&target)?,
        };
        let skip_zeros = size >= ALLOCATE_FROM && allocate(&file, size);
        self.spent += t.elapsed();
        let file = if direct {
            self.write_direct(entry, file, size, skip_zeros, &target)?
        } else {
            Arc::new(self.write_buffered(entry, file, size, skip_zeros, &target)?)
        };
        let t = Instant::now();
        if direct && size % ALIGN as u64 != 0 {
            file.set_len(size).map_err(&target)?; // the padding of the last direct write
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(&target)?;
        if let Some(secs) = mtime {
            let _ = file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        }
        self.spent += t.elapsed();
        Ok(())
    }

    /// Hands the file's blocks to the writer threads, and returns once all are written. A direct
    /// write is whole aligned blocks: the last one is padded with zeros (the file is cut back to
    /// its size afterwards).
    fn write_direct(
        &mut self,
        entry: &mut dyn Read,
        file: std::fs::File,
        size: u64,
        skip_zeros: bool,
        target: &dyn Fn(std::io::Error) -> std::io::Error,
    ) -> std::io::Result<Arc<std::fs::File>> {
        let file = Arc::new(file);
        let mut at = 0u64;
        let waited = self.writers.waited;
        while at < size {
            let len = usize::try_from((size - at).min(BLOCK as u64)).unwrap_or(BLOCK);
            let padded = len.next_multiple_of(ALIGN);
            let mut block = self.writers.block().map_err(target)?;
            let data = block.get_mut(padded);
            entry.read_exact(&mut data[..len])?;
            data[len..].fill(0);
            self.writers
                .write(Job {
                    file: file.clone(),
                    block,
                    at,
                    len,
                    padded,
                    skip_zeros,
                })
                .map_err(target)?;
            at += len as u64;
            self.counters
                .unpacked
                .fetch_add(len as u64, Ordering::Relaxed);
        }
        self.writers.settle().map_err(target)?;
        self.spent += self.writers.waited - waited;
        if self.writers.refused {
            self.direct = false;
        }
        Ok(file)
    }

    /// Writes the file through the page cache, handing it to the kernel's writeback as it goes.
    fn write_buffered(
        &mut self,
        entry: &mut dyn Read,
        file: std::fs::File,
        size: u64,
        skip_zeros: bool,
        target: &dyn Fn(std::io::Error) -> std::io::Error,
    ) -> std::io::Result<std::fs::File> {
        let (mut at, mut flushed) = (0u64, 0u64);
        while at < size {
            let len = usize::try_from((size - at).min(BLOCK as u64)).unwrap_or(BLOCK);
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            let block = &mut self.buf[..len];
            entry.read_exact(block)?;
            let t = Instant::now();
            write_block(&file, block, at, skip_zeros).map_err(target)?;
            self.spent += t.elapsed();
            at += len as u64;
            if at - flushed >= WRITEBACK_EVERY {
                start_writeback(&file, flushed, at - flushed);
                flushed = at;
            }
            self.counters
                .unpacked
                .fetch_add(len as u64, Ordering::Relaxed);
        }
        start_writeback(&file, flushed, size - flushed);
        Ok(file)
    }
}

/// Asks the kernel to start writing the file back now, without waiting for it (`fadvise`
/// DONTNEED starts writeback of dirty pages, then drops only pages already clean; PostgreSQL
/// uses it the same way where `sync_file_range` is missing), for `len` bytes from `from`.
/// Durability comes from the fsync pass.
fn start_writeback(file: &std::fs::File, from: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// CPU seconds of the calling thread so far (Linux `/proc/thread-self/schedstat`; 0 elsewhere).
#[must_use]
pub fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Tells whether the last whole 512-byte block read was all zeros. Looks at no more than the last
/// block or two of each read, so it costs nothing next to the data.
struct EndMarker<R> {
    inner: R,
    pos: u64,
    /// Whether the block in progress (from its start to `pos`) is all zeros so far.
    block_zero: bool,
    last_block_zero: bool,
}

impl<R: Read> Read for EndMarker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        let local = |at: u64| usize::try_from(at - start).unwrap_or(n);
        let last_end = end - end % 512; // where the last block completed so far ends
        if last_end > start {
            let last_start = last_end - 512;
            self.last_block_zero = if last_start >= start {
                is_zero(&buf[local(last_start)..local(last_end)])
            } else {
                self.block_zero && is_zero(&buf[..local(last_end)])
            };
            self.block_zero = is_zero(&buf[local(last_end)..n]);
        } else {
            self.block_zero &= is_zero(&buf[..n]);
        }
        self.pos = end;
        Ok(n)
    }
}

/// fsyncs every file and folder under `roots` (and the folders holding the roots), `threads` at a
/// time: the one flush of a restore, after everything is written. Returns the number synced.
pub fn sync_all(roots: &[PathBuf], threads: usize) -> Result<usize, Error> {
    let mut paths = Vec::new();
    for root in roots {
        walk(root, &mut paths)?;
        if let Some(parent) = root.parent() {
            paths.push(parent.to_path_buf());
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    if let Err(source) = std::fs::File::open(p).and_then(|f| f.sync_all()) {
                        *failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Error::Io {
                            what: "syncing",
                            path: p.clone(),
                            cause: source,
                        });
                        next.store(paths.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    match failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(paths.len()),
    }
}

/// Every file and folder under `dir` (itself included), not following links.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |cause| Error::Io {
        what: "reading",
        path: dir.to_path_buf(),
        cause,
    };
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content of `size` bytes: a pattern broken by all-zero stretches (some a whole 64 KiB run or
    /// more, some shorter) so that both the written and the skipped parts of a block are checked.
    fn content(size: usize, seed: u8) -> Vec<u8> {
        let mut v: Vec<u8> = (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect();
        let mut at = 100_000;
        while at < size {
            let len = (at % 3 + 1) * ZERO_RUN + 513;
            v[at..(at + len).min(size)].fill(0);
            at += len + 300_000;
        }
        v
    }

    /// A file the target cannot take is the target's failure, named with its path, not an
    /// archive openova cannot read; a truncated archive still is one.
    #[test]
    fn a_failing_target_is_reported_as_such_and_a_cut_archive_as_the_archive_s() {
        let mut tar = tar::Builder::new(Vec::new());
        for name in ["PG_VERSION", "base/1/1259"] {
            let mut h = tar::Header::new_gnu();
            h.set_size(4);
            h.set_mode(0o600);
            tar.append_data(&mut h, name, &b"15\n\n"[..]).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let extract_into = |dir: &Path, bytes: &[u8]| {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.try_send(crate::store::Body::from(bytes::Bytes::copy_from_slice(
                bytes,
            )))
            .unwrap();
            drop(tx);
            extract("B1", "data.tar", Chunks::new(rx, Arc::default()), dir)
        };

        // A folder (not empty) stands where one of the files goes: it cannot be created.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("base/1/1259")).unwrap();
        std::fs::write(dir.path().join("base/1/1259/x"), b"x").unwrap();
        match extract_into(dir.path(), &tar) {
            Err(Error::Write { path, cause }) => {
                assert_eq!(path, dir.path().canonicalize().unwrap().join("base/1/1259"));
                assert_eq!(cause.kind(), std::io::ErrorKind::IsADirectory);
            }
            other => panic!("expected a write failure, got {other:?}"),
        }

        let dir = tempfile::tempdir().unwrap();
        match extract_into(dir.path(), &tar[..tar.len() - 1024 - 512]) {
            Err(e @ Error::BadArchive { .. }) => assert!(e.to_string().contains("data.tar")),
            other => panic!("expected a bad archive, got {other:?}"),
        }

        // A full disk says what to do.
        let full = Error::Write {
            path: "/restore/base/5/16396".into(),
            cause: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let msg = full.to_string();
        assert!(msg.starts_with("writing /restore/base/5/16396: "), "{msg}");
        assert!(
            msg.contains("filesystem is full") && msg.contains("--target-dir"),
            "{msg}"
        );
    }

    /// Gives at most `n` bytes per read, as the network's pieces do.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Whether files under `dir` can be opened with `O_DIRECT` at all.
    fn direct_works(dir: &Path) -> bool {
        create_new(&dir.join(".probe"), true).is_ok()
    }

    #[test]
    fn large_files_written_directly_are_byte_for_byte_the_tar_s_whatever_their_size() {
        let sizes = [
            DIRECT_FROM as usize - 1, // through the page cache
            DIRECT_FROM as usize,     // direct, whole blocks
            DIRECT_FROM as usize + 1, // direct, one byte of a last block
            3 * BLOCK - 100,          // several blocks, a padded tail
            2 * BLOCK + 3 * ALIGN + 7,
            5 * BLOCK,
            8192,
            0,
        ];
        let files: Vec<(String, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("base/1/{}", 16384 + i), content(n, i as u8)))
            .collect();
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(1_764_080_761);
            tar.append_data(&mut h, name, body.as_slice()).unwrap();
        }
        let tar = tar.into_inner().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::new(dir.path(), Arc::new(Counters::default())).unwrap();
        unpack(&mut Trickle(&tar, 7919), &mut writer).unwrap();
        for (name, body) in &files {
            let path = dir.path().join(name);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), body.len(), "{name}: length");
            assert!(got == *body, "{name}: content differs");
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{name}");
        }
        let counted = writer.counters.unpacked.load(Ordering::Relaxed);
        assert_eq!(counted, sizes.iter().sum::<usize>() as u64);
        // On a filesystem that takes O_DIRECT (as the machines these tests run on do), the
        // direct path was the one taken, not the fallback.
        assert_eq!(writer.direct, direct_works(dir.path()));
    }
}
