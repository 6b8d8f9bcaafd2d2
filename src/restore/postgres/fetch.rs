//! Fetching a base backup's tars: each one downloaded in ranged GETs, several in flight and kept
//! ahead of a thread that decompresses and unpacks it ([`untar`]), so that neither side waits for
//! the other; a few tars at a time (the split parts `data_NNNN.tar` and the tablespaces' are
//! independent archives). Memory is bounded by the chunks in flight ([`Tuning`]), whatever the size
//! of the backup. Progress (bytes, MB/s, ETA) goes to the [`Progress`] line and, every few seconds,
//! to the `info` log.

use super::Error;
use super::untar::{self, Chunks, Counters, Spent};
use crate::report::Progress;
use crate::store::{Body, ObjectStore};
use futures::StreamExt;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a fetch spends memory and connections. Held in memory at most, per tar: `ahead` chunks
/// downloading (or downloaded out of order), [`READY`] downloaded in order and waiting for the
/// extractor, 2 in its queue and the one it is reading.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Bytes per ranged GET.
    pub chunk: u64,
    /// GETs in flight per tar.
    pub ahead: usize,
    /// Tars fetched at once.
    pub tars: usize,
}

impl Default for Tuning {
    /// 8 MiB × (4 + 2 + 2 + 1) × 2 tars: at most 144 MiB of downloaded data in memory (and
    /// 6 MiB of blocks being written per tar, see `direct`).
    fn default() -> Self {
        Self {
            chunk: 8 << 20,
            ahead: 4,
            tars: 2,
        }
    }
}

/// Downloaded chunks waiting for the extractor's queue, per tar.
const READY: usize = 2;

/// One tar to fetch: its key, its size as listed (`None`: unknown, asked with a HEAD), where it
/// goes (`None`: nowhere, downloaded and dropped, to measure the store's part of a restore).
pub struct Job<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub into: Option<&'a Path>,
}

/// What the tars of one fetch took, summed over them (extraction) or as a span (download).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub bytes: u64,
    /// From the first GET to the last byte downloaded.
    pub download_seconds: f64,
    pub spent: Spent,
}

/// The progress counters of a whole fetch.
pub struct Meter {
    total: u64,
    started: Instant,
    downloaded: AtomicU64,
    /// Nanoseconds from `started` to the last byte downloaded so far.
    last_byte: AtomicU64,
    counters: Arc<Counters>,
}

impl Meter {
    #[must_use]
    pub fn new(total: u64) -> Self {
        Self {
            total,
            started: Instant::now(),
            downloaded: AtomicU64::new(0),
            last_byte: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
        }
    }

    fn got(&self, n: u64) {
        self.downloaded.fetch_add(n, Ordering::Relaxed);
        let at = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_byte.fetch_max(at, Ordering::Relaxed);
    }

    /// `412 of 920 MiB downloaded, 380 MiB extracted (310 MB/s, about 2 s left)`.
    #[must_use]
    pub fn line(&self) -> String {
        let mib = |b: u64| b >> 20;
        let (got, used) = (
            self.downloaded.load(Ordering::Relaxed),
            self.counters.consumed.load(Ordering::Relaxed),
        );
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = used as f64 / secs;
        let left = if rate > 0.0 && self.total >= used {
            format!(", about {:.0} s left", (self.total - used) as f64 / rate)
        } else {
            String::new()
        };
        format!(
            "{} of {} MiB downloaded, {} MiB extracted ({:.0} MB/s{left})",
            mib(got),
            mib(self.total),
            mib(used),
            rate / 1e6
        )
    }
}

/// Fetches every job, `tuning.tars` at a time, reporting progress as it goes. The first failure
/// stops the others; every extraction thread has ended when this returns.
pub async fn fetch_all(
    store: &dyn ObjectStore,
    id: &str,
    jobs: &[Job<'_>],
    tuning: Tuning,
    progress: &dyn Progress,
) -> Result<Totals, Error> {
    let total = jobs.iter().map(|j| j.size.unwrap_or(0)).sum();
    let meter = Meter::new(total);
    let stop = AtomicBool::new(false);
    let all = futures::stream::iter(jobs)
        .map(|job| one_tar(store, id, job, tuning, &meter, &stop))
        .buffer_unordered(tuning.tars.max(1))
        .collect::<Vec<_>>();
    tokio::pin!(all);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut logged = Instant::now();
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = tick.tick() => {
                if super::INTERRUPT.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed); // the tars wind down, then this returns
                }
                progress.message(&meter.line());
                if logged.elapsed() >= Duration::from_secs(5) {
                    logged = Instant::now();
                    tracing::info!(backup = id, progress = %meter.line(), "restore.progress");
                }
            }
        }
    };
    let mut totals = Totals::default();
    for r in results {
        let (bytes, spent) = r?;
        totals.bytes += bytes;
        add(&mut totals.spent, &spent);
    }
    totals.download_seconds = meter.last_byte.load(Ordering::Relaxed) as f64 / 1e9;
    Ok(totals)
}

fn add(to: &mut Spent, s: &Spent) {
    to.waiting += s.waiting;
    to.decompressing += s.decompressing;
    to.writing += s.writing;
    to.busy += s.busy;
    to.cpu += s.cpu;
}

/// One tar: downloaded here, extracted by a blocking thread as the chunks arrive.
async fn one_tar(
    store: &dyn ObjectStore,
    id: &str,
    job: &Job<'_>,
    tuning: Tuning,
    meter: &Meter,
    stop: &AtomicBool,
) -> Result<(u64, Spent), Error> {
    if stop.load(Ordering::Relaxed) {
        return Ok((0, Spent::default()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Body>(2);
    let body = Chunks::new(rx, meter.counters.clone());
    let (id_, key_, into_) = (
        id.to_string(),
        job.key.to_string(),
        job.into.map(Path::to_path_buf),
    );
    let extractor = tokio::task::spawn_blocking(move || match into_ {
        Some(into) => untar::extract(&id_, &key_, body, &into),
        None => Ok(untar::drain(body)),
    });
    let fetched = download(store, id, job, tuning, &tx, meter, stop).await;
    drop(tx); // end of data
    let extracted = extractor.await.map_err(|e| Error::BadArchive {
        id: id.to_string(),
        key: job.key.to_string(),
        why: format!("extraction thread failed: {e}"),
    });
    let done = (|| {
        let bytes = fetched?;
        let spent = extracted??;
        if bytes == 0 {
            return Err(Error::BadArchive {
                id: id.to_string(),
                key: job.key.to_string(),
                why: "the object is empty".into(),
            });
        }
        Ok((bytes, spent))
    })();
    if done.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    done
}

/// Downloads `job.key` into `tx` in order, `tuning.ahead` ranged GETs in flight while the
/// extractor works. Returns the bytes downloaded (fewer when the extractor stopped early or
/// another tar failed).
async fn download(
    store: &dyn ObjectStore,
    id: &str,
    job: &Job<'_>,
    tuning: Tuning,
    tx: &tokio::sync::mpsc::Sender<Body>,
    meter: &Meter,
    stop: &AtomicBool,
) -> Result<u64, Error> {
    let key = job.key;
    let size = match job.size {
        Some(s) => s,
        None => store.head(key).await?.map_or(0, |m| m.size),
    };
    let ranges = ranges(size, tuning.chunk);
    let last = ranges.len() - 1;
    let mut gets =
        futures::stream::iter(ranges.into_iter().enumerate())
            .map(|(i, (off, len))| async move {
                store.get_range(key, off, len).await.map(|b| (i, len, b))
            })
            .buffered(tuning.ahead.max(1));
    let mut ready: VecDeque<Body> = VecDeque::new();
    let (mut offset, mut more, mut grew) = (0u64, true, false);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(offset);
        }
        if !more && ready.is_empty() {
            break;
        }
        tokio::select! {
            permit = tx.reserve(), if !ready.is_empty() => match permit {
                Ok(p) => p.send(ready.pop_front().unwrap_or_default()),
                Err(_) => return Ok(offset), // the extractor stopped: its error says why
            },
            // Wakes the loop to see `stop` even while a GET hangs on a dead store.
            () = tokio::time::sleep(Duration::from_millis(100)), if !stop.load(Ordering::Relaxed) => {}
            got = gets.next(), if more && ready.len() < READY => {
                let Some(got) = got else { more = false; continue };
                let (i, len, body) = got?;
                let n = body.len() as u64;
                offset += n;
                meter.got(n);
                if i == last {
                    // The last range asks for one byte past the listed end.
                    grew = n == len;
                    if n + 1 < len {
                        return Err(shorter(id, job, offset, size));
                    }
                } else if n < len {
                    return Err(shorter(id, job, offset, size));
                }
                if n > 0 {
                    ready.push_back(body);
                }
            }
        }
    }
    if grew {
        offset = follow(store, job, tuning.chunk, offset, tx, meter).await?;
    }
    Ok(offset)
}

/// The object grew since it was listed: the rest, one chunk at a time, to its end.
async fn follow(
    store: &dyn ObjectStore,
    job: &Job<'_>,
    chunk: u64,
    mut offset: u64,
    tx: &tokio::sync::mpsc::Sender<Body>,
    meter: &Meter,
) -> Result<u64, Error> {
    loop {
        let body = store.get_range(job.key, offset, chunk).await?;
        let n = body.len() as u64;
        offset += n;
        meter.got(n);
        if n > 0 && tx.send(body).await.is_err() {
            return Ok(offset);
        }
        if n < chunk {
            return Ok(offset);
        }
    }
}

fn shorter(id: &str, job: &Job<'_>, got: u64, size: u64) -> Error {
    Error::BadArchive {
        id: id.to_string(),
        key: job.key.to_string(),
        why: format!(
            "the object ends after {got} of the {size} bytes it was listed with: it changed while \
             it was being restored"
        ),
    }
}

/// `(offset, length)` of each GET: `chunk`-sized up to `size`, the last one asking for one byte
/// more (which arrives only when the object grew since it was listed).
fn ranges(size: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    let n = size.div_ceil(chunk).max(1);
    (0..n)
        .map(|i| {
            let off = i * chunk;
            let len = chunk.min(size - off.min(size));
            if i == n - 1 {
                (off, len + 1)
            } else {
                (off, len)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_cover_the_object_and_probe_one_byte_past_it() {
        assert_eq!(ranges(0, 8), [(0, 1)]);
        assert_eq!(ranges(5, 8), [(0, 6)]);
        assert_eq!(ranges(8, 8), [(0, 9)]);
        assert_eq!(ranges(20, 8), [(0, 8), (8, 8), (16, 5)]);
        assert_eq!(ranges(24, 8), [(0, 8), (8, 8), (16, 9)]);
    }
}
