//! The background prefetcher behind `openova wal-get`.
//!
//! PostgreSQL runs `restore_command` once per segment and waits for it: a call that also downloads
//! the next segments makes that one call slow, and the next call finds nothing until it is done.
//! So, like pgBackRest's asynchronous archive-get, one detached worker process per spool folder
//! keeps the next `prefetch` segments downloading while PostgreSQL replays: every call records the
//! segment it was asked for, the worker keeps the window after it filled, and a call finds its
//! segment in the spool, or waits for the worker's download of it instead of starting a second one.
//!
//! Files in the spool folder:
//! - `NAME`: a segment ready to be taken (a rename into `pg_wal`);
//! - `NAME.fetching`: the worker is downloading it;
//! - `.asked`: the last segment a call was asked for (the worker fetches the ones after it);
//! - `.worker.lock`: locked (`flock`) by the live worker, and holds its pid;
//! - `.worker.log`: what the worker could not fetch (calls then fetch it themselves and report it);
//! - `.source`: the archive (storage, server, endpoint) the spool holds segments of. A call for
//!   another archive never takes a segment from it: a spool left by an earlier restore of another
//!   archive is emptied, and one a live worker fills for another archive is left alone.
//!
//! The worker is a bonus, never a source of truth: whatever it fails at, the call that needs the
//! segment fetches it itself and reports success, "not found" or the error as usual. It exits once
//! nothing new has been asked for [`idle_timeout`], or when its spool folder is gone.

use super::{Error, download, write_atomic};
use crate::store::ObjectStore;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOCK: &str = ".worker.lock";
const ASKED: &str = ".asked";
const LOG: &str = ".worker.log";
const FETCHING: &str = "fetching";
/// How often the worker looks for a new `.asked`, and a waiting call for its segment.
const POLL: Duration = Duration::from_millis(2);
/// How long a call waits for the worker's download of its segment before fetching it itself.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// How long the worker stays without a new request (`OPENOVA_PREFETCH_IDLE_SECS`, default 30 s).
fn idle_timeout() -> Duration {
    std::env::var("OPENOVA_PREFETCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// Records that PostgreSQL asked for `name`: the worker's window starts after it.
pub fn note_asked(spool: &Path, name: &str) {
    let tmp = spool.join(format!("{ASKED}.{}", std::process::id()));
    if std::fs::write(&tmp, name).is_ok() && std::fs::rename(&tmp, spool.join(ASKED)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn read_asked(spool: &Path) -> Option<String> {
    let s = std::fs::read_to_string(spool.join(ASKED)).ok()?;
    super::wal::split_segment(s.trim()).map(|_| s.trim().to_string())
}

/// Whether a worker holds the spool's lock.
pub fn worker_alive(spool: &Path) -> bool {
    let Ok(f) = File::open(spool.join(LOCK)) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(_) => true,
    }
}

/// Waits while the worker downloads `name`: `true` once it is in the spool, `false` when there is
/// no such download (or it ended without the file, or took too long): the caller fetches it then.
pub fn wait_for(spool: &Path, name: &str) -> bool {
    let (ready, claim) = (spool.join(name), spool.join(format!("{name}.{FETCHING}")));
    let start = Instant::now();
    loop {
        if ready.is_file() {
            return true;
        }
        if !claim.exists() || start.elapsed() > WAIT_LIMIT || !worker_alive(spool) {
            return ready.is_file();
        }
        std::thread::sleep(POLL);
    }
}

/// Ends the spool's worker (removing its lock makes it exit) and removes what openova put in the
/// spool, then the folder if that left it empty, for when recovery is over. Other files are never
/// touched (a mistaken `--spool-dir` must not cost anyone data). A download finishing meanwhile
/// is retried over for ~2 s.
pub fn clear(spool: &Path) -> std::io::Result<()> {
    let worker = std::fs::read_to_string(spool.join(LOCK))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    let _ = std::fs::remove_file(spool.join(LOCK));
    if let Some(pid) = worker {
        wait_gone(pid);
    }
    for _ in 0..100 {
        remove_spool_files(spool);
        match std::fs::remove_dir(spool) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if !has_spool_files(spool) => return Ok(()), // only foreign files remain
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Err(std::io::Error::other(format!(
        "{}: files keep appearing",
        spool.display()
    )))
}

/// Waits (up to ~2 s) for the worker `pid` to exit now that its lock is gone, then ends it, so
/// that nothing of a restore outlives it (a drill promises to leave no process behind).
fn wait_gone(pid: u32) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("wal-prefetch"))
    };
    for _ in 0..100 {
        if !alive() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether `name` is a file openova's spool holds (WAL files and its own bookkeeping).
fn is_spool_file(name: &str) -> bool {
    let base = name
        .strip_suffix(".fetching")
        .or_else(|| name.strip_suffix(".openova-partial"))
        .unwrap_or(name);
    crate::barman::wal::WalFile::parse(base).is_some()
        || [LOCK, LOG, ASKED, SOURCE]
            .iter()
            .any(|own| base == *own || base.starts_with(&format!("{own}.")))
}

fn spool_files(spool: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(spool).map_or_else(
        |_| vec![],
        |d| {
            d.flatten()
                .filter(|e| is_spool_file(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        },
    )
}

fn has_spool_files(spool: &Path) -> bool {
    !spool_files(spool).is_empty()
}

fn remove_spool_files(spool: &Path) {
    for f in spool_files(spool) {
        let _ = std::fs::remove_file(f);
    }
}

const SOURCE: &str = ".source";

fn source_of(w: &WorkerArgs) -> String {
    format!(
        "storage={}\nserver={}\nendpoint={}\n",
        w.storage,
        w.server,
        w.endpoint.unwrap_or_default()
    )
}

/// Makes sure the spool holds segments of this call's archive: `true` when the call may use it
/// (it is new, empty or already this archive's), `false` when a live worker fills it for another
/// archive. A stale spool of another archive is emptied and taken over.
pub fn claim_spool(w: &WorkerArgs) -> bool {
    let mine = source_of(w);
    match std::fs::read_to_string(w.spool.join(SOURCE)) {
        Ok(theirs) if theirs == mine => return true,
        Ok(_) => {
            if worker_alive(w.spool) {
                return false;
            }
            remove_spool_files(w.spool);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A spool without a source (from an older openova) may hold any archive's segments.
            if worker_alive(w.spool) {
                return false;
            }
            remove_spool_files(w.spool);
        }
        Err(_) => return false,
    }
    if std::fs::create_dir_all(w.spool).is_err() {
        return false;
    }
    let tmp = w.spool.join(format!("{SOURCE}.{}", std::process::id()));
    std::fs::write(&tmp, &mine).is_ok() && std::fs::rename(&tmp, w.spool.join(SOURCE)).is_ok()
}

/// The default spool folder: per server and archive, so two restores never share one.
pub fn default_spool(storage: &str, server: &str, endpoint: Option<&str>) -> PathBuf {
    // FNV-1a: stable across runs and versions (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{storage}\n{}", endpoint.unwrap_or_default()).bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("openova-wal-spool-{server}-{:08x}", h >> 32))
}

/// What a detached worker needs to reach the archive (credentials come from the environment).
pub struct WorkerArgs<'a> {
    /// The archive, as the spool's `.source` records it.
    pub storage: &'a str,
    pub server: &'a str,
    pub endpoint: Option<&'a str>,
    /// How the worker's command line names the archive (`--storage URL --server NAME
    /// [--endpoint URL]`, or `--policy NAME --policies PATH`): as the calling `wal-get`'s did, so
    /// that it reaches the archive the same way.
    pub archive_args: &'a [std::ffi::OsString],
    pub spool: &'a Path,
    pub prefetch: usize,
}

/// Starts a worker for the spool unless one runs. It is detached (own process group, no terminal,
/// output to `.worker.log`), so the calling `wal-get` returns at once and PostgreSQL goes on.
pub fn ensure_worker(args: &WorkerArgs) {
    if args.prefetch == 0 || worker_alive(args.spool) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.spool.join(LOG));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("wal-prefetch")
        .args(args.archive_args)
        .arg("--spool-dir")
        .arg(args.spool)
        .args(["--prefetch", &args.prefetch.to_string()]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log.map_or_else(|_| std::process::Stdio::null(), Into::into));
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // Not waited for: it outlives this call; init reaps it.
    let _ = cmd.spawn();
}

/// The worker: keeps the `prefetch` segments after the last asked one in the spool.
pub async fn run_worker(
    store: std::sync::Arc<dyn ObjectStore>,
    server: &str,
    spool: &Path,
    prefetch: usize,
) -> Result<(), Error> {
    let io = |cause| Error::Io {
        what: "locking",
        path: spool.join(LOCK),
        cause,
    };
    std::fs::create_dir_all(spool).map_err(io)?;
    let mut lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.join(LOCK))
        .map_err(io)?;
    if lock.try_lock().is_err() {
        return Ok(()); // another worker has this spool
    }
    let _ = lock.set_len(0);
    let _ = writeln!(lock, "{}", std::process::id());
    let mut worker = Worker {
        store,
        server: server.to_string(),
        spool: spool.to_path_buf(),
        prefetch: prefetch.max(1),
        in_flight: tokio::task::JoinSet::new(),
        fetching: HashSet::new(),
        skip: HashSet::new(),
        asked: None,
        buffers: std::sync::Arc::default(),
    };
    worker.run().await;
    // Claims of downloads cut short (spool removed, idle exit) must not make a call wait.
    for name in &worker.fetching {
        let _ = std::fs::remove_file(worker.claim(name));
    }
    Ok(())
}

struct Worker {
    store: std::sync::Arc<dyn ObjectStore>,
    server: String,
    spool: PathBuf,
    prefetch: usize,
    in_flight: tokio::task::JoinSet<(String, Result<bool, Error>)>,
    fetching: HashSet<String>,
    /// Not in the archive, or failed: left to the call that needs it.
    skip: HashSet<String>,
    /// The last segment asked for.
    asked: Option<String>,
    /// Decompression buffers, reused from segment to segment.
    buffers: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Worker {
    fn claim(&self, name: &str) -> PathBuf {
        self.spool.join(format!("{name}.{FETCHING}"))
    }

    async fn run(&mut self) {
        let (idle, mut since) = (idle_timeout(), Instant::now());
        // Whether the window may need new downloads: recovery moved on, or one ended.
        let mut changed = true;
        loop {
            if !self.spool.join(LOCK).exists() {
                return; // the spool was removed: the restore is over
            }
            let asked = read_asked(&self.spool);
            if asked != self.asked {
                self.asked = asked;
                since = Instant::now();
                self.drop_stale();
                changed = true;
            }
            if changed && let Some(a) = self.asked.clone() {
                self.start_downloads(&a);
            }
            changed = false;
            if self.in_flight.is_empty() && since.elapsed() > idle {
                return;
            }
            tokio::select! {
                Some(done) = self.in_flight.join_next() => {
                    if let Ok((name, result)) = done {
                        self.finished(&name, result);
                    }
                    changed = true;
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// The window after `asked`: starts what is neither spooled, nor running, nor given up.
    fn start_downloads(&mut self, asked: &str) {
        for name in super::following(asked, self.prefetch, super::SEGMENT_SIZE) {
            if self.fetching.len() >= self.prefetch {
                break;
            }
            if self.fetching.contains(&name)
                || self.skip.contains(&name)
                || self.spool.join(&name).exists()
            {
                continue;
            }
            if std::fs::write(self.claim(&name), b"").is_err() {
                continue;
            }
            self.fetching.insert(name.clone());
            let (store, server, spool) =
                (self.store.clone(), self.server.clone(), self.spool.clone());
            let buffers = self.buffers.clone();
            self.in_flight.spawn(async move {
                let result = match download(store.as_ref(), &server, &name).await {
                    Ok(Some(got)) => {
                        let dest = spool.join(&name);
                        // Decompressing and writing is CPU and disk work: off the async threads.
                        tokio::task::spawn_blocking(move || {
                            let mut buf = buffers
                                .lock()
                                .ok()
                                .and_then(|mut b| b.pop())
                                .unwrap_or_default();
                            let done = got
                                .decode_into(&mut buf)
                                .and_then(|()| write_atomic(&dest, &buf));
                            if let Ok(mut b) = buffers.lock() {
                                b.push(buf);
                            }
                            done.map(|()| true)
                        })
                        .await
                        .unwrap_or_else(|e| {
                            Err(Error::Io {
                                what: "writing",
                                path: spool.join(&name),
                                cause: std::io::Error::other(e.to_string()),
                            })
                        })
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                };
                (name, result)
            });
        }
    }

    fn finished(&mut self, name: &str, result: Result<bool, Error>) {
        self.fetching.remove(name);
        match result {
            Ok(true) => {}
            Ok(false) => {
                self.skip.insert(name.to_string());
            }
            Err(e) => {
                eprintln!(
                    "openova wal-prefetch: {name}: {e:#} (the call that needs it fetches it itself)"
                );
                self.skip.insert(name.to_string());
            }
        }
        // The claim goes last: a waiting call sees the segment before it sees the claim gone.
        let _ = std::fs::remove_file(self.claim(name));
        // Recovery may have moved past it meanwhile (a call fetched it itself).
        self.drop_stale();
    }

    /// Spooled segments outside the window after `asked` (recovery moved on, or to another
    /// timeline) are removed, so the spool never holds more than the window.
    fn drop_stale(&self) {
        let Some(asked) = &self.asked else { return };
        let window: HashSet<String> = super::following(asked, self.prefetch, super::SEGMENT_SIZE)
            .into_iter()
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.spool) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if super::wal::split_segment(&name).is_some()
                && name.len() == 24
                && !window.contains(&name)
                && !self.fetching.contains(&name)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
