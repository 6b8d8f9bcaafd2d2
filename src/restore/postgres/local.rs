//! Carrying out a PostgreSQL restore plan on this machine: the base backup fetched into a folder,
//! recovery configured with `openova wal-get` as its restore_command, and (when asked) a local
//! PostgreSQL started on it until it reached the target. `openova restore postgres` and drills
//! both go through here.

use super::{Error, Fetched, Plan, download_and_extract, write_recovery};
use crate::location::{Connection, Limits};
use crate::restore::start::{self, Reached};
use crate::store::{ObjectStore, StorageUrl};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::Instrument;

/// Beside the target: a copy of this binary the postgres user can run, and the WAL spool.
#[must_use]
pub fn helper_dir(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "restore".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!(".{name}.openova"))
}

/// Where `openova wal-get` is fetched from during recovery.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub url: &'a StorageUrl,
    pub server: &'a str,
    /// The endpoint, region, addressing and time bounds the restore itself used (a policy's
    /// `storage`, the environment): `wal-get` runs under PostgreSQL, which has neither.
    pub conn: &'a Connection,
}

/// Copies this binary into the helper folder (the postgres user may not read the original) and
/// returns the `wal-get` restore_command that fetches until `needed_until`.
pub fn wal_get_command(
    target: &Path,
    source: &Source,
    needed_until: &str,
) -> Result<String, Error> {
    let dir = helper_dir(target);
    let io = |what, path: PathBuf| {
        move |e| Error::Io {
            what,
            path,
            cause: e,
        }
    };
    std::fs::create_dir_all(dir.join("spool")).map_err(io("creating", dir.join("spool")))?;
    let exe = dir.join("openova");
    let me = std::env::current_exe().map_err(io("finding", PathBuf::from("openova")))?;
    super::direct::copy(&me, &exe).map_err(io("copying openova to", exe.clone()))?;
    // The environment wins over a policy's bounds, as it did for the restore itself.
    let limits = source
        .conn
        .limits
        .or(Limits::from_env().unwrap_or_default());
    Ok(command_line(
        &exe,
        &dir.join("spool"),
        source,
        &limits,
        needed_until,
    ))
}

/// `[VAR=value ...] EXE wal-get %f %p --storage URL --server NAME [--endpoint URL] --spool-dir DIR
/// --needed-until SEGMENT`: what the connection sets besides the endpoint (region, addressing) and
/// the time bounds `l` go in as the environment variables `wal-get` reads, since the command has
/// no policy to read them from.
fn command_line(
    exe: &Path,
    spool: &Path,
    source: &Source,
    l: &Limits,
    needed_until: &str,
) -> String {
    let c = source.conn;
    let mut env = Vec::new();
    if let Some(r) = &c.region {
        env.push(format!("OPENOVA_S3_REGION={}", shell_word(r)));
    }
    if let Some(p) = c.path_style {
        env.push(format!("OPENOVA_S3_PATH_STYLE={p}"));
    }
    for (var, d) in [
        ("OPENOVA_S3_CONNECT_TIMEOUT", l.connect),
        ("OPENOVA_S3_ATTEMPT_TIMEOUT", l.attempt),
        ("OPENOVA_S3_OPERATION_TIMEOUT", l.operation),
        ("OPENOVA_S3_STALL_TIMEOUT", l.stall),
    ] {
        if let Some(d) = d {
            env.push(format!("{var}={}ms", d.as_millis()));
        }
    }
    if let Some(n) = l.retries {
        env.push(format!("OPENOVA_S3_RETRY_BUDGET={n}"));
    }
    let endpoint = c
        .endpoint
        .as_deref()
        .map(|e| format!(" --endpoint {}", shell_word(e)))
        .unwrap_or_default();
    let env = env.iter().map(|e| format!("{e} ")).collect::<String>();
    format!(
        "{env}{} wal-get %f %p --storage {} --server {}{endpoint} --spool-dir {} --needed-until {needed_until}",
        shell_word(&exe.to_string_lossy()),
        shell_word(&source.url.to_string()),
        shell_word(source.server),
        shell_word(&spool.to_string_lossy()),
    )
}

/// `word` as one shell word (restore_command runs through `sh -c`): as it is when it holds only
/// characters the shell leaves alone, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Fetches the base backup into `target` and writes the recovery settings. `restore_command`
/// replaces `openova wal-get` when given; `extra` lines go into `postgresql.auto.conf`.
pub async fn fetch_and_configure(
    store: &dyn ObjectStore,
    plan: &Plan,
    target: &Path,
    source: &Source<'_>,
    restore_command: Option<&str>,
    extra: &[String],
    progress: &dyn crate::report::Progress,
) -> Result<Fetched, Error> {
    // Instrumented, not entered: an entered span must not be held across an await.
    let span =
        tracing::info_span!("restore.fetch", backup = %plan.backup_id, bytes = plan.download_bytes);
    async {
        let mut fetched = download_and_extract(store, plan, target, progress).await?;
        tracing::info!(
            bytes = fetched.bytes,
            download_seconds = fetched.download_seconds,
            extract_seconds = fetched.extract_seconds,
            "base backup downloaded and extracted"
        );
        let started = std::time::Instant::now();
        let command = match restore_command {
            Some(c) => c.to_string(),
            None => wal_get_command(target, source, &plan.wal_to)?,
        };
        write_recovery(target, plan, &command, extra)?;
        fetched.configure_seconds = Some(started.elapsed().as_secs_f64());
        Ok(fetched)
    }
    .instrument(span)
    .await
}

/// Why starting the restored PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// PostgreSQL replayed every archived segment without reaching the target time.
    #[error(
        "recovery ended before the target {target} was reached: the newest archived WAL segment is {newest}, \
         and the last transaction in it was at {last}; restore with --to latest to get everything the archive holds"
    )]
    TargetNotReached {
        target: String,
        newest: String,
        last: String,
    },
    #[error(transparent)]
    Start(#[from] start::Error),
    #[error("{0}")]
    Join(String),
}

/// Hands the folders to the postgres user, starts PostgreSQL on `target` (Unix socket in
/// `socket_dir`, no TCP) and waits until recovery reached the plan's target; the WAL spool is cleared
/// afterwards. `own_helper`: the restore_command is openova's (there is a helper folder).
pub async fn start_and_wait(
    target: &Path,
    socket_dir: &Path,
    plan: &Plan,
    port: u16,
    timeout: Duration,
    own_helper: bool,
) -> Result<Reached, StartError> {
    start::hand_over(target)?;
    for t in &plan.tablespaces {
        start::hand_over(&t.location)?;
    }
    if own_helper {
        start::hand_over(&helper_dir(target))?;
    }
    let dir = target.to_path_buf();
    let socket_dir = socket_dir.to_path_buf();
    let major = plan.pg_major;
    let span = tracing::info_span!("restore.replay", server = %plan.server);
    let reached = tokio::task::spawn_blocking(move || {
        let _g = span.entered();
        let reached = start::start_and_wait(&dir, &socket_dir, major, port, timeout);
        match &reached {
            Ok(r) => tracing::info!(
                replay_seconds = r.replay_seconds,
                last_replayed = r.last_replayed.as_deref().unwrap_or("none"),
                "recovery reached its target"
            ),
            Err(e) => tracing::info!(error = %e, "recovery did not reach its target"),
        }
        reached
    })
    .await
    .map_err(|e| StartError::Join(e.to_string()))?;
    if own_helper {
        // Recovery is over (or failed): stop the prefetcher and drop what it fetched ahead.
        let spool = helper_dir(target).join("spool");
        if let Err(e) = crate::wal::prefetch::clear(&spool) {
            tracing::warn!(spool = %spool.display(), error = %e, "could not remove the WAL spool");
        }
    }
    reached.map_err(|e| diagnose(e, plan))
}

/// Names the common failure of a target past the archive in openova's words.
fn diagnose(e: start::Error, plan: &Plan) -> StartError {
    if let start::Error::Failed { log, .. } = &e {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("recovery ended before configured recovery target was reached") {
            let last = text
                .lines()
                .filter_map(|l| l.split_once("last completed transaction was at log time "))
                .map(|(_, t)| t.trim().to_string())
                .next_back()
                .unwrap_or_else(|| "unknown (no transaction was replayed)".into());
            let target = match plan.target {
                super::Target::Latest => "latest".into(),
                super::Target::Time(t) => crate::report::time(t),
            };
            return StartError::TargetNotReached {
                target,
                newest: plan.wal_to.clone(),
                last,
            };
        }
    }
    StartError::Start(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(conn: &Connection) -> String {
        let url = StorageUrl::parse("s3://backups/cnpg").unwrap();
        let source = Source {
            url: &url,
            server: "platform-db",
            conn,
        };
        command_line(
            Path::new("/var/restore/.data.openova/openova"),
            Path::new("/var/restore/.data.openova/spool"),
            &source,
            &conn.limits,
            "000000010000000000000009",
        )
    }

    #[test]
    fn the_restore_command_carries_the_connection_and_the_policys_time_bounds() {
        assert_eq!(
            line(&Connection::default()),
            "/var/restore/.data.openova/openova wal-get %f %p --storage s3://backups/cnpg \
             --server platform-db --spool-dir /var/restore/.data.openova/spool \
             --needed-until 000000010000000000000009"
        );
        let conn = Connection {
            endpoint: Some("https://acct.r2.cloudflarestorage.com".into()),
            region: Some("auto".into()),
            path_style: Some(true),
            limits: Limits {
                attempt: Some(Duration::from_millis(2500)),
                stall: Some(Duration::from_secs(4)),
                retries: Some(3),
                ..Limits::default()
            },
        };
        assert_eq!(
            line(&conn),
            "OPENOVA_S3_REGION=auto OPENOVA_S3_PATH_STYLE=true OPENOVA_S3_ATTEMPT_TIMEOUT=2500ms \
             OPENOVA_S3_STALL_TIMEOUT=4000ms OPENOVA_S3_RETRY_BUDGET=3 \
             /var/restore/.data.openova/openova wal-get %f %p --storage s3://backups/cnpg \
             --server platform-db --endpoint https://acct.r2.cloudflarestorage.com \
             --spool-dir /var/restore/.data.openova/spool --needed-until 000000010000000000000009"
        );
        // Every value goes back through the parser wal-get uses.
        let vars: Vec<(String, String)> = line(&conn)
            .split(' ')
            .take_while(|w| w.starts_with("OPENOVA_"))
            .filter_map(|w| w.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect();
        let back = Limits::from_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .unwrap();
        assert_eq!(back, conn.limits);
    }

    #[test]
    fn odd_characters_are_quoted_for_the_shell() {
        assert_eq!(shell_word("/srv/pg data"), "'/srv/pg data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_word("s3://b/p"), "s3://b/p");
    }
}
