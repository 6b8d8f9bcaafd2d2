//! Starting a restored PostgreSQL and waiting until recovery reached its target (it promotes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {cause}")]
    Spawn {
        program: String,
        cause: std::io::Error,
    },
    #[error("PostgreSQL did not start or stopped during recovery; last lines of {log}:\n{tail}")]
    Failed { log: PathBuf, tail: String },
    #[error(
        "recovery did not finish within {0:?}; the server keeps running in the target directory"
    )]
    Timeout(Duration),
}

/// Where the PostgreSQL binaries of a major version are (`OPENOVA_PG_BIN` overrides).
#[must_use]
pub fn bin_dir(major: Option<u32>) -> PathBuf {
    std::env::var_os("OPENOVA_PG_BIN").map_or_else(
        || PathBuf::from(format!("/usr/lib/postgresql/{}/bin", major.unwrap_or(15))),
        PathBuf::from,
    )
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// `program args` as the `postgres` user when we are root (PostgreSQL refuses to run as root).
pub fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command) -> Result<std::process::Output, Error> {
    let program = format!("{cmd:?}");
    cmd.output()
        .map_err(|cause| Error::Spawn { program, cause })
}

/// Makes the directory usable by the postgres user (when running as root).
pub fn hand_over(dir: &Path) -> Result<(), Error> {
    if is_root() {
        let mut c = Command::new("chown");
        c.arg("-R").arg("postgres:postgres").arg(dir);
        run(c)?;
    }
    let mut c = Command::new("chmod");
    c.arg("0700").arg(dir);
    run(c)?;
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// What recovery achieved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reached {
    /// `pg_last_xact_replay_timestamp()` once promoted: the last transaction replayed.
    pub last_replayed: Option<String>,
    pub replay_seconds: f64,
    pub port: u16,
}

/// Starts PostgreSQL on `dir` (port `port`, its Unix socket in `socket_dir`, no TCP) and waits
/// until it left recovery. A socket path is limited to 107 bytes: keep `socket_dir` short.
pub fn start_and_wait(
    dir: &Path,
    socket_dir: &Path,
    major: Option<u32>,
    port: u16,
    timeout: Duration,
) -> Result<Reached, Error> {
    let bin = bin_dir(major);
    let log = dir.join("openova-restore.log");
    let began = Instant::now();
    let mut start = as_postgres(&bin.join("pg_ctl"));
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=''",
        socket_dir.display()
    );
    start
        .arg("-D")
        .arg(dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "600", "-o", &opts, "start"]);
    let out = run(start)?;
    if !out.status.success() {
        return Err(Error::Failed {
            log: log.clone(),
            tail: tail(&log),
        });
    }
    let sql = |q: &str| -> Option<String> {
        let mut c = as_postgres(&bin.join("psql"));
        c.arg("-h").arg(socket_dir).args([
            "-p",
            &port.to_string(),
            "-d",
            "postgres",
            "-At",
            "-c",
            q,
        ]);
        run(c)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    loop {
        match sql("select pg_is_in_recovery()") {
            Some(r) if r == "f" => break,
            None if !dir.join("postmaster.pid").exists() => {
                return Err(Error::Failed {
                    log: log.clone(),
                    tail: tail(&log),
                });
            }
            _ if began.elapsed() > timeout => return Err(Error::Timeout(timeout)),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let last = sql("select pg_last_xact_replay_timestamp()").filter(|s| !s.is_empty());
    Ok(Reached {
        last_replayed: last,
        replay_seconds: began.elapsed().as_secs_f64(),
        port,
    })
}
