//! The writes of a restore's large files, handed to writer threads: the extracting thread fills
//! an aligned block, hands it on and goes on reading the archive into the next one while the
//! block goes to the device with `O_DIRECT`. A direct write returns only once the device has the
//! data, so done on the extracting thread it would stop parsing and copying for as long; with the
//! writes apart, the two overlap and (with two writers) the device always has the next block.
//!
//! The blocks are few and used again ([`BLOCKS`] per extraction), so memory stays bounded: when
//! all are out, the extracting thread waits for one to come back.

use crate::sparse::write_nonzero;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One write at most this long.
pub const BLOCK: usize = 1 << 20;
/// What `O_DIRECT` needs aligned (buffer address, file offset, length): the largest logical block
/// size of Linux block devices.
pub const ALIGN: usize = 4096;
/// Blocks per extraction: being filled, queued, and being written.
const BLOCKS: usize = 6;
/// Writer threads per extraction.
const THREADS: usize = 2;

/// [`BLOCK`] bytes at an [`ALIGN`]ed address.
pub struct Block {
    buf: Vec<u8>,
    aligned: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0; BLOCK + ALIGN];
        Self {
            aligned: buf.as_ptr().align_offset(ALIGN),
            buf,
        }
    }

    /// The first `len` bytes (at most [`BLOCK`]).
    pub fn get_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.buf[self.aligned..self.aligned + len]
    }

    fn get(&self, len: usize) -> &[u8] {
        &self.buf[self.aligned..self.aligned + len]
    }
}

/// A block to write at `at`: `len` bytes of data, padded with zeros to `padded` (a multiple of
/// [`ALIGN`]) for the direct write.
pub struct Job {
    pub file: Arc<std::fs::File>,
    pub block: Block,
    pub at: u64,
    pub len: usize,
    pub padded: usize,
    /// The file is allocated: its all-zero stretches need not be written.
    pub skip_zeros: bool,
}

impl Job {
    /// Writes the block; `Ok(false)` when the filesystem refused the direct write and the file
    /// was switched to the page cache for it (and what follows).
    fn run(&self) -> std::io::Result<bool> {
        let data = self.block.get(self.padded);
        match write_block(&self.file, data, self.at, self.skip_zeros) {
            Err(e) if refused(&e) => {
                // Accepted at open, refused at a write (an alignment this filesystem does not
                // take): through the page cache from here on.
                rustix::fs::fcntl_setfl(&*self.file, rustix::fs::OFlags::empty())?;
                write_block(&self.file, &data[..self.len], self.at, self.skip_zeros)?;
                Ok(false)
            }
            other => other.map(|()| true),
        }
    }
}

struct Done {
    block: Block,
    result: std::io::Result<bool>,
}

/// The writer threads of one extraction and its blocks.
pub struct Writers {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    free: Vec<Block>,
    /// Blocks made so far (at most [`BLOCKS`]), and those handed out and not back yet.
    made: usize,
    out: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// A direct write was refused (the file it was for went on through the page cache).
    pub refused: bool,
    /// Time the extracting thread waited for writes to finish.
    pub waited: Duration,
}

impl Writers {
    pub fn new() -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel::<Job>(BLOCKS);
        let (tell, done) = channel::<Done>();
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::new();
        for _ in 0..THREADS {
            let (queue, tell) = (queue.clone(), tell.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("openova-write".into())
                    .spawn(move || {
                        loop {
                            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            let Ok(job) = job else { break }; // the extraction is over
                            // A panic is the block's error, not a thread gone quiet (the
                            // extracting thread would wait for that block for ever).
                            let result =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    job.run()
                                }))
                                .unwrap_or_else(|_| {
                                    Err(std::io::Error::other("a writer thread panicked"))
                                });
                            // The file is let go before the block is handed back: once all its
                            // blocks are back, the extracting thread holds the file alone.
                            let Job { file, block, .. } = job;
                            drop(file);
                            if tell.send(Done { block, result }).is_err() {
                                break;
                            }
                        }
                    })?,
            );
        }
        Ok(Self {
            jobs: Some(jobs),
            done,
            free: Vec::new(),
            made: 0,
            out: 0,
            threads,
            refused: false,
            waited: Duration::ZERO,
        })
    }

    /// A free block: a new one while fewer than [`BLOCKS`] exist, else one a writer is done with
    /// (waiting for it). A failed write comes out here, or at [`Writers::settle`].
    pub fn block(&mut self) -> std::io::Result<Block> {
        while let Ok(d) = self.done.try_recv() {
            self.back(d)?;
        }
        if let Some(b) = self.free.pop() {
            return Ok(b);
        }
        if self.made < BLOCKS || self.out == 0 {
            self.made += 1;
            return Ok(Block::new());
        }
        self.wait_one()?;
        Ok(self.free.pop().unwrap_or_else(Block::new))
    }

    /// Hands `job` to the writers.
    pub fn write(&mut self, job: Job) -> std::io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(ended)?;
        jobs.send(job).map_err(|_| ended())?;
        self.out += 1;
        Ok(())
    }

    /// Waits until every block handed on is written; the first failure among them is the error.
    pub fn settle(&mut self) -> std::io::Result<()> {
        let mut first = None;
        while self.out > 0 {
            if let Err(e) = self.wait_one() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn wait_one(&mut self) -> std::io::Result<()> {
        let t = Instant::now();
        let d = self.done.recv().map_err(|_| ended());
        self.waited += t.elapsed();
        self.back(d?)
    }

    fn back(&mut self, d: Done) -> std::io::Result<()> {
        self.out -= 1;
        self.free.push(d.block);
        if !d.result? {
            self.refused = true;
        }
        Ok(())
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finished what they hold.
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn ended() -> std::io::Error {
    std::io::Error::other("the restore's writer threads ended early")
}

/// Copies `from` into `to` (replaced if there), mode included, writing with `O_DIRECT` where the
/// filesystem takes it: the copy of the openova binary a restore leaves beside its target (36 MB)
/// then takes no page cache, which on a VM short of free memory took as long as a tenth of the
/// restore. Elsewhere it is `std::fs::copy`.
pub fn copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut src = std::fs::File::open(from)?;
    let meta = src.metadata()?;
    let dst = match create_new(to, true) {
        Err(e) if refused(&e) => return std::fs::copy(from, to),
        other => other?,
    };
    let (size, mut block, mut at) = (meta.len(), Block::new(), 0u64);
    while at < size {
        let len = usize::try_from((size - at).min(BLOCK as u64)).unwrap_or(BLOCK);
        let padded = len.next_multiple_of(ALIGN);
        let data = block.get_mut(padded);
        src.read_exact(&mut data[..len])?;
        data[len..].fill(0);
        match dst.write_all_at(data, at) {
            Err(e) if refused(&e) => {
                drop(dst);
                return std::fs::copy(from, to);
            }
            other => other?,
        }
        at += len as u64;
    }
    dst.set_len(size)?; // the padding of the last write
    dst.set_permissions(meta.permissions())?;
    Ok(size)
}

/// A new file at `dst` (`direct`: opened with `O_DIRECT`); one already there (not a folder) is
/// replaced, never written through (it could be a link an earlier entry made).
pub fn create_new(dst: &std::path::Path, direct: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if direct {
        rustix::fs::OFlags::DIRECT.bits().cast_signed()
    } else {
        0
    };
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(dst)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(dst)?;
            open()
        }
        other => other,
    }
}

/// Writes `block` at `at`: all of it, or (the file allocated) all but its zero stretches.
pub fn write_block(
    file: &std::fs::File,
    block: &[u8],
    at: u64,
    skip_zeros: bool,
) -> std::io::Result<()> {
    if skip_zeros {
        write_nonzero(file, block, at)
    } else {
        file.write_all_at(block, at)
    }
}

/// Whether `e` is the filesystem refusing `O_DIRECT` (`EINVAL`).
pub fn refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path, direct: bool) -> std::io::Result<Arc<std::fs::File>> {
        create_new(path, direct).map(Arc::new)
    }

    fn job(
        w: &mut Writers,
        file: &Arc<std::fs::File>,
        at: u64,
        len: usize,
        padded: usize,
        byte: u8,
    ) -> Job {
        let mut block = w.block().unwrap();
        let data = block.get_mut(padded);
        data[..len].fill(byte);
        data[len..].fill(0);
        Job {
            file: file.clone(),
            block,
            at,
            len,
            padded,
            skip_zeros: false,
        }
    }

    #[test]
    fn blocks_written_out_of_order_by_the_threads_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let direct = open(&path, true).is_ok();
        let file = open(&path, direct).unwrap();
        let mut w = Writers::new().unwrap();
        // More blocks than the writers have: the later ones wait for earlier ones to come back.
        for i in 0..(3 * BLOCKS) {
            let j = job(&mut w, &file, (i * BLOCK) as u64, BLOCK, BLOCK, i as u8 + 1);
            w.write(j).unwrap();
        }
        w.settle().unwrap();
        assert!(!w.refused);
        assert!(w.made <= BLOCKS, "{} blocks made", w.made);
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 3 * BLOCKS * BLOCK);
        for (i, chunk) in got.chunks(BLOCK).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8 + 1), "block {i}");
        }
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let Ok(file) = open(&path, true) else {
            // This filesystem refuses O_DIRECT at open: the restore never gets here on it.
            return;
        };
        let mut w = Writers::new().unwrap();
        // An unaligned length is what the kernel refuses (EINVAL) for a direct write.
        let j = job(&mut w, &file, 0, 1000, 1000, 7);
        w.write(j).unwrap();
        w.settle().unwrap();
        assert!(w.refused, "the refusal is reported");
        // The file now goes through the page cache: an unaligned write at an unaligned offset.
        let j = job(&mut w, &file, 1000, 333, 333, 9);
        w.write(j).unwrap();
        w.settle().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 1333);
        assert!(got[..1000].iter().all(|&b| b == 7) && got[1000..].iter().all(|&b| b == 9));
    }

    #[test]
    fn a_copy_is_byte_for_byte_the_original_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [0, 1, ALIGN, BLOCK, 3 * BLOCK + 123]
            .into_iter()
            .enumerate()
        {
            let from = dir.path().join(format!("from{i}"));
            let to = dir.path().join(format!("to{i}"));
            let body: Vec<u8> = (0..len).map(|j| (j % 251) as u8 + 1).collect();
            std::fs::write(&from, &body).unwrap();
            std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o751)).unwrap();
            // A longer file already there is replaced, not written over.
            std::fs::write(&to, vec![9; 4 * BLOCK]).unwrap();
            assert_eq!(copy(&from, &to).unwrap(), len as u64);
            assert!(std::fs::read(&to).unwrap() == body, "{len} bytes");
            let mode = std::fs::metadata(&to).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o751, "{len} bytes");
        }
    }

    #[test]
    fn a_failed_write_is_the_error_of_the_file_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        // Open for reading only: every write fails (EBADF).
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let mut w = Writers::new().unwrap();
        let j = job(&mut w, &file, 0, ALIGN, ALIGN, 1);
        w.write(j).unwrap();
        let e = w.settle().unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error())
        );
        // The block came back: the next one is had without waiting.
        assert_eq!(w.out, 0);
        w.block().unwrap();
    }
}
