//! A real PostgreSQL 15 (Debian's, `/usr/lib/postgresql/15/bin`) that archives to an [`S3Server`] the way
//! CloudNativePG does: `archive_command = barman-cloud-wal-archive ... s3://BUCKET/PREFIX SERVER %p`, and
//! base backups with `barman-cloud-backup`.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every PostgreSQL and barman command
//! runs as the `postgres` OS user (`runuser -u postgres --`). The data directory lives in a temporary
//! directory under `/tmp` owned by that user; the server listens on a free loopback port and on a unix
//! socket in that directory. The S3 credentials reach `archive_command` through the environment of
//! `pg_ctl`, never the command line. Dropping a [`Postgres`] stops it (`pg_ctl stop -m immediate`), kills
//! any left-over process that mentions its directory, and removes the directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::barman::{self, BackupEntry};
use super::{S3Server, free_port, kill_processes_matching, poll, running_as_root, tail};

/// Directory of PostgreSQL's server binaries (`OPENOVA_PG_BIN`, default `/usr/lib/postgresql/15/bin`).
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os("OPENOVA_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// Path of a PostgreSQL binary, e.g. `pg_bin("pg_ctl")`.
pub fn pg_bin(name: &str) -> PathBuf {
    pg_bin_dir().join(name)
}

/// Whether PostgreSQL (and, when running as root, `runuser`) is there.
pub fn is_available() -> bool {
    pg_bin("initdb").is_file() && pg_bin("pg_ctl").is_file()
}

/// A command that runs `program` as the `postgres` OS user when the tests run as root (via `runuser`),
/// else as the current user. The environment is inherited (runuser only resets HOME, SHELL, USER and
/// LOGNAME).
pub fn as_postgres(program: impl AsRef<Path>) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program.as_ref());
        cmd
    } else {
        Command::new(program.as_ref())
    }
}

/// How to set up a [`Postgres`]; `PostgresConfig::default()` is what [`Postgres::start`] uses.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// Folder in the bucket above the server folder (`s3://BUCKET/PREFIX/SERVER/`). Default `cnpg`.
    pub prefix: String,
    /// Extra arguments for `barman-cloud-wal-archive` in `archive_command`, e.g. `["--gzip"]`.
    pub wal_archive_args: Vec<String>,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            prefix: "cnpg".to_string(),
            wal_archive_args: Vec::new(),
            extra_conf: Vec::new(),
        }
    }
}

/// A running PostgreSQL 15 archiving to S3 with barman-cloud. Stopped and removed on drop.
pub struct Postgres {
    server_name: String,
    prefix: String,
    bucket: String,
    endpoint: String,
    env: Vec<(String, String)>,
    port: u16,
    dir: TempDir,
    running: bool,
}

impl Postgres {
    /// Starts PostgreSQL archiving to `s3://BUCKET/cnpg/SERVER_NAME/`.
    pub fn start(s3: &S3Server, server_name: &str) -> Postgres {
        Postgres::start_with(s3, server_name, &PostgresConfig::default())
    }

    /// Starts PostgreSQL archiving to `s3://BUCKET/PREFIX/SERVER_NAME/` as `config` says.
    pub fn start_with(s3: &S3Server, server_name: &str, config: &PostgresConfig) -> Postgres {
        assert!(
            is_available(),
            "PostgreSQL 15 is not installed at {} (set OPENOVA_PG_BIN or run scripts/setup)",
            pg_bin_dir().display()
        );
        assert!(
            barman::is_available(),
            "barman-cloud is not installed at {} (run scripts/setup)",
            barman::venv().display()
        );
        let root = running_as_root();
        // Under /tmp so that every parent directory is traversable by the postgres user.
        let base = if root {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("openova-pg-")
            .tempdir_in(base)
            .expect("create a temporary directory for PostgreSQL");
        std::fs::create_dir(dir.path().join("sock")).expect("create the socket directory");
        if root {
            super::run_ok(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
                "chown the PostgreSQL directory to postgres",
            );
        }
        let mut pg = Postgres {
            server_name: server_name.to_string(),
            prefix: config.prefix.trim_matches('/').to_string(),
            bucket: s3.bucket().to_string(),
            endpoint: s3.endpoint(),
            env: s3.env(),
            port: 0,
            dir,
            running: false,
        };

        let out = pg
            .pg_cmd("initdb")
            .arg("-D")
            .arg(pg.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg("--no-sync")
            .output()
            .expect("run initdb");
        if !out.status.success() {
            panic!(
                "initdb failed with {}\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut archive_command = format!(
            "{} --endpoint-url {}",
            barman::tool("barman-cloud-wal-archive").display(),
            pg.endpoint
        );
        for a in &config.wal_archive_args {
            archive_command.push(' ');
            archive_command.push_str(a);
        }
        archive_command.push_str(&format!(" {} {} %p", pg.destination(), pg.server_name));

        // A port picked now may be taken by the time PostgreSQL binds it: retry with another one.
        for attempt in 1..=3 {
            pg.port = free_port();
            let mut conf = vec![
                "listen_addresses = '127.0.0.1'".to_string(),
                format!("port = {}", pg.port),
                format!("unix_socket_directories = '{}'", pg.socket_dir().display()),
                "wal_level = replica".to_string(),
                "archive_mode = on".to_string(),
                format!(
                    "archive_command = '{}'",
                    archive_command.replace('\'', "''")
                ),
                "max_wal_senders = 4".to_string(),
                "fsync = off".to_string(),
                "synchronous_commit = off".to_string(),
                "shared_buffers = 16MB".to_string(),
                "max_connections = 20".to_string(),
                "logging_collector = off".to_string(),
            ];
            conf.extend(config.extra_conf.iter().cloned());
            // postgresql.auto.conf wins over postgresql.conf; rewritten on every attempt.
            pg.write_as_postgres(
                &pg.data_dir().join("postgresql.auto.conf"),
                &(conf.join("\n") + "\n"),
            );
            let out = pg
                .pg_cmd("pg_ctl")
                .arg("-D")
                .arg(pg.data_dir())
                .arg("-l")
                .arg(pg.log_path())
                .args(["-w", "-t", "60", "start"])
                .stdin(Stdio::null())
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                pg.running = true;
                break;
            }
            let log = tail(&pg.log_path(), 40);
            if attempt < 3 && (log.contains("could not bind") || log.contains("already in use")) {
                continue;
            }
            panic!(
                "pg_ctl start failed with {}\n--- stdout\n{}\n--- stderr\n{}\n--- postgres log\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        pg
    }

    /// A PostgreSQL binary run as the postgres user, in the temporary directory, with the S3
    /// environment (so a server started by it passes the credentials to `archive_command`).
    fn pg_cmd(&self, name: &str) -> Command {
        let mut cmd = as_postgres(pg_bin(name));
        for k in S3Server::env_to_clear() {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .env("LC_ALL", "C.UTF-8")
            .current_dir(self.dir.path());
        cmd
    }

    fn write_as_postgres(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        if running_as_root() {
            super::run_ok(
                Command::new("chown").arg("postgres:postgres").arg(path),
                "chown a PostgreSQL configuration file",
            );
        }
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The folder in the bucket, e.g. `cnpg`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://BUCKET/PREFIX`: the barman-cloud destination (the server folder is below it).
    pub fn destination(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// Object key prefix of this server's folder, `PREFIX/SERVER/`.
    pub fn server_key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            format!("{}/", self.server_name)
        } else {
            format!("{}/{}/", self.prefix, self.server_name)
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the unix socket (use as `-h` / `PGHOST`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temporary directory holding data, socket and log (owned by the postgres user).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// A connection URL over TCP, `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with `psql -X -At -v ON_ERROR_STOP=1` as postgres over the socket and returns stdout
    /// without the final newline; panics with psql's error and the log tail on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|e| {
            panic!(
                "SQL failed: {sql}\n{e}\n--- postgres log\n{}",
                self.log_tail(20)
            )
        })
    }

    /// [`Postgres::sql`] returning psql's error instead of panicking.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .psql_cmd()
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run psql: {e}"))?;
        if out.status.success() {
            let s = String::from_utf8_lossy(&out.stdout);
            Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `psql -h SOCKET -p PORT -U postgres -d postgres` as the postgres user; add arguments.
    pub fn psql_cmd(&self) -> Command {
        let psql = if pg_bin("psql").is_file() {
            pg_bin("psql")
        } else {
            PathBuf::from("psql")
        };
        let mut cmd = as_postgres(psql);
        cmd.arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .current_dir(self.dir.path());
        cmd
    }

    /// Inserts `n` rows into `openova_rows (id bigserial, payload text, created_at timestamptz)`,
    /// creating the table if needed. Returns the table's row count afterwards.
    pub fn write_rows(&self, n: u64) -> u64 {
        self.sql(
            "create table if not exists openova_rows \
             (id bigserial primary key, payload text not null, created_at timestamptz not null default clock_timestamp())",
        );
        self.sql(&format!(
            "insert into openova_rows (payload) select md5(g::text) from generate_series(1, {n}) g"
        ));
        self.sql("select count(*) from openova_rows")
            .trim()
            .parse()
            .expect("count(*) is a number")
    }

    /// Inserts `label` into `openova_sentinel (label text primary key, at timestamptz)` (created if
    /// needed) and returns the insert time as PostgreSQL prints it (ISO, UTC offset), useful as a
    /// recovery target.
    pub fn insert_sentinel(&self, label: &str) -> String {
        self.sql(
            "create table if not exists openova_sentinel \
             (label text primary key, at timestamptz not null default clock_timestamp())",
        );
        let label = label.replace('\'', "''");
        self.sql(&format!(
            "set timezone = 'UTC'; insert into openova_sentinel (label) values ('{label}') returning at"
        ))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
    }

    /// Labels in `openova_sentinel`, sorted (empty if the table does not exist).
    pub fn sentinels(&self) -> Vec<String> {
        match self.try_sql("select label from openova_sentinel order by label") {
            Ok(s) => s.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The current WAL segment name (`pg_walfile_name(pg_current_wal_lsn())`).
    pub fn current_wal(&self) -> String {
        self.sql("select pg_walfile_name(pg_current_wal_lsn())")
    }

    /// Switches to a new WAL segment and returns the name of the segment switched away from (the one
    /// the archiver will ship next): `select pg_walfile_name(pg_switch_wal())`. If nothing was written
    /// since the last switch, PostgreSQL does not switch and this returns the last completed segment.
    pub fn switch_wal(&self) -> String {
        self.sql("select pg_walfile_name(pg_switch_wal())")
    }

    /// `(last_archived_wal, last_failed_wal, failed_count)` from `pg_stat_archiver`.
    pub fn archiver_status(&self) -> (String, String, String) {
        let row = self.sql(
            "select coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), failed_count \
             from pg_stat_archiver",
        );
        let mut parts = row.split('|').map(str::to_string);
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    }

    /// Waits (60 s at most) until `pg_stat_archiver.last_archived_wal >= segment`; panics with the
    /// archiver status and the log tail otherwise.
    pub fn wait_archived(&self, segment: &str) {
        self.wait_archived_for(segment, Duration::from_secs(60));
    }

    pub fn wait_archived_for(&self, segment: &str, timeout: Duration) {
        let done = poll(timeout, Duration::from_millis(200), || {
            let (last, _, _) = self.archiver_status();
            (!last.is_empty() && last.as_str() >= segment).then_some(())
        });
        if done.is_none() {
            let (last, failed, count) = self.archiver_status();
            panic!(
                "WAL segment {segment} was not archived within {timeout:?}: last_archived_wal={last:?} \
                 last_failed_wal={failed:?} failed_count={count}\n--- postgres log\n{}",
                self.log_tail(40)
            );
        }
    }

    /// Writes a little, switches WAL and waits until the segment is archived; returns the segment.
    pub fn archive_a_segment(&self) -> String {
        self.write_rows(10);
        let seg = self.switch_wal();
        self.wait_archived(&seg);
        seg
    }

    /// A barman-cloud tool run as the postgres user with the S3 environment, `--endpoint-url` set and
    /// the connection (`PGHOST`/`PGPORT`/`PGUSER`) pointing at this server. Append the rest.
    pub fn barman_cmd(&self, name: &str) -> Command {
        let mut cmd = as_postgres(barman::tool(name));
        for k in S3Server::env_to_clear() {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PGHOST", self.socket_dir())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(self.dir.path())
            .args(["--endpoint-url", &self.endpoint]);
        cmd
    }

    fn barman_ok(&self, name: &str, args: &[&str]) -> Output {
        let out = self
            .barman_cmd(name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {name}: {e}"));
        if !out.status.success() {
            panic!(
                "{name} {} failed with {}\n--- stdout\n{}\n--- stderr\n{}\n--- postgres log\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(20)
            );
        }
        out
    }

    /// Takes a base backup with `barman-cloud-backup` and returns its backup id.
    pub fn base_backup(&self) -> String {
        self.base_backup_with(&[])
    }

    /// [`Postgres::base_backup`] with extra `barman-cloud-backup` arguments (e.g. `["--gzip"]`,
    /// `["-n", "my-name"]`). Backup ids have a one-second resolution, so this waits until at least a
    /// second has passed since the previous backup of this server started.
    pub fn base_backup_with(&self, args: &[&str]) -> String {
        let before: Vec<String> = self.backups().into_iter().map(|b| b.backup_id).collect();
        if let Some(newest) = before.iter().max() {
            // Wait until the local time in seconds (barman's id format) is past the newest id.
            poll(Duration::from_secs(3), Duration::from_millis(100), || {
                (local_backup_id_now().as_str() > newest.as_str()).then_some(())
            });
        }
        let dest = self.destination();
        let mut all: Vec<&str> = vec!["-h"];
        let sock = self.socket_dir();
        let sock = sock.to_string_lossy().into_owned();
        let port = self.port.to_string();
        all.push(&sock);
        all.extend(["-p", &port, "-U", "postgres"]);
        all.extend(args);
        all.push(&dest);
        all.push(&self.server_name);
        self.barman_ok("barman-cloud-backup", &all);
        let after = self.backups();
        after
            .iter()
            .map(|b| b.backup_id.clone())
            .filter(|id| !before.contains(id))
            .max()
            .unwrap_or_else(|| {
                panic!(
                    "barman-cloud-backup succeeded but no new backup is listed (before: {before:?}, \
                     after: {after:?})"
                )
            })
    }

    /// `barman-cloud-backup-list --format json` for this server, oldest first.
    pub fn backups(&self) -> Vec<BackupEntry> {
        let dest = self.destination();
        let out = self.barman_ok(
            "barman-cloud-backup-list",
            &["--format", "json", &dest, &self.server_name],
        );
        barman::parse_backup_list(&String::from_utf8_lossy(&out.stdout))
    }

    /// Stops PostgreSQL (`pg_ctl stop -m MODE`: `fast`, `smart` or `immediate`); done by drop too.
    pub fn stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let _ = self
            .pg_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "30", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.running = false;
    }
}

/// The backup id barman would give a backup started now: `YYYYMMDDTHHMMSS`, local time.
fn local_backup_id_now() -> String {
    let out = Command::new("date")
        .arg("+%Y%m%dT%H%M%S")
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("immediate");
        // Anything still running from this directory (a postmaster pg_ctl could not stop: its command
        // line has `-D DIR/data`) or for this server (an archive_command in flight): killed by pid.
        kill_processes_matching(&format!("{}/", self.dir.path().display()));
        kill_processes_matching(&format!("{} {} ", self.destination(), self.server_name));
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("server_name", &self.server_name)
            .field("destination", &self.destination())
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}
