//! Test support: real parts started for a test and torn down when dropped (see DESIGN.md, "Real parts
//! used in tests"). Nothing here is a mock:
//!
//! - [`S3Server`]: a real S3 server, `s3s-fs` (default) or versitygw, on a free loopback port, with one bucket
//!   and a random key pair ([`s3`]).
//! - [`Postgres`]: Debian's PostgreSQL 15, run as the `postgres` OS user, archiving its WAL to that server
//!   with `barman-cloud-wal-archive` and taking base backups with `barman-cloud-backup`, exactly like
//!   CloudNativePG does ([`postgres`]).
//! - [`barman`]: running the other `barman-cloud-*` tools against a server.
//! - [`fault_proxy`]: a TCP proxy in front of a real S3 server that stalls, resets, cuts, throttles,
//!   corrupts or slows chosen requests.
//! - [`kube`]: etcd and kube-apiserver (and optionally kube-controller-manager) on loopback, the real
//!   Velero, CNPG and Barman Cloud CRDs, and `velero server` with its AWS plugin against an S3 server.
//!   No kubelet runs, so no pod ever starts.
//!
//! `scripts/setup` installs all of them. The support code depends on std, `tempfile`, `serde_json`
//! and `socket2` (a reset with SO_LINGER 0) only (`kube` also runs the `openssl` command);
//! it knows nothing of the `openova` crate's types.
//!
//! Environment knobs: `OPENOVA_TEST_S3` (`s3s`, the default, or `versitygw`), `OPENOVA_S3S_FS_BIN`,
//! `OPENOVA_VERSITYGW_BIN`, `OPENOVA_BARMAN_VENV` (default `/opt/openova/barman-venv`), `OPENOVA_PG_BIN`
//! (default `/usr/lib/postgresql/15/bin`).
#![allow(dead_code)]

pub mod barman;
pub mod cnpg_standin;
pub mod fault_proxy;
pub mod kube;
pub mod postgres;
pub mod s3;
pub mod velero_fixture;

#[allow(unused_imports)]
pub use barman::BackupEntry;
#[allow(unused_imports)]
pub use postgres::{Postgres, PostgresConfig};
#[allow(unused_imports)]
pub use s3::{S3Kind, S3Server};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `n_bytes` random bytes, hex encoded (not cryptographic; good for test names and keys).
pub fn random_hex(n_bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(n_bytes * 2 + 16);
    while out.len() < n_bytes * 2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n_bytes * 2);
    out
}

/// A lowercase name `prefix-XXXXXXXX`, unique enough for a server name or a bucket.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(4))
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// The last `lines` lines of a (log) file, or a note saying why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut buf = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)) {
        Ok(_) => {
            let text = String::from_utf8_lossy(&buf);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// Poll `f` every `every` until it returns `Some`, or give up after `timeout`.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Finds an executable: the environment variable `env_override` if set, else `name` on `PATH`,
/// else `$CARGO_HOME/bin/name` or `~/.cargo/bin/name` (where `cargo install` puts it).
pub fn find_executable(name: &str, env_override: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        let p = PathBuf::from(p);
        return is_executable(&p).then_some(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(c) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(c).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    // Where scripts/setup installs the Go-built test servers.
    dirs.push(PathBuf::from("/opt/openova/bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the test process runs as root (then PostgreSQL and barman run as `postgres` via `runuser`).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `cmd`, returning its output; panics with `what`, the command and its output if it cannot be
/// started or exits non-zero.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what}: {cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Kills the process group `pgid` (a child spawned with `process_group(0)`) with SIGKILL.
pub(crate) fn kill_process_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills (SIGKILL, one by one, by pid) every process whose command line contains `marker`: left-overs
/// such as an `archive_command` still running when PostgreSQL was stopped.
pub(crate) fn kill_processes_matching(marker: &str) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // Arguments are NUL-separated in /proc/PID/cmdline.
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(marker)
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
