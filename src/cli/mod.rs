//! Command-line definitions. Each subcommand lives in its own file and only wires the library's
//! modules together. Exit codes: 0 all good, 1 a policy or check failed, 2 an error.

mod apply;
mod backup;
mod catalog;
mod cron;
mod drill;
mod render;
mod restore;
mod retention;
mod status;
mod wal_get;

use crate::report::Output;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// What a command found, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    Violated = 1,
    Error = 2,
    /// `wal-get`: the file is not in the archive (PostgreSQL ends recovery there).
    NotFound = 3,
    /// `wal-get`: a real error; above 125 so that PostgreSQL aborts recovery instead.
    WalError = 255,
    /// Stopped by SIGINT (after cleaning up), as a shell reports it.
    Interrupted = 130,
    /// Stopped by SIGTERM (after cleaning up).
    Terminated = 143,
}

/// SIGINT and SIGTERM, watched (instead of ending the process) by a command that cleans up first.
pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// `None` where they cannot be watched.
    pub(crate) fn new() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Self {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// The next one, as the exit code a shell gives such a death.
    pub(crate) async fn next(&mut self) -> Outcome {
        tokio::select! {
            _ = self.int.recv() => Outcome::Interrupted,
            _ = self.term.recv() => Outcome::Terminated,
        }
    }
}

impl Outcome {
    /// The process exit code (`NotFound` exits 1, as PostgreSQL's restore_command contract wants).
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::NotFound => crate::wal::EXIT_NOT_FOUND,
            Self::WalError => crate::wal::EXIT_ERROR,
            other => other as u8,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "openova",
    version,
    about = "Backup and disaster recovery for the openova platform (Velero + CloudNativePG/Barman Cloud on S3/R2)",
    after_help = "Exit codes: 0 all good, 1 a policy or check failed, 2 an error (bad input, storage unreachable).\n\
                  S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an AWS profile); the endpoint \
                  from the policy's storage.endpoint or OPENOVA_S3_ENDPOINT.\n\
                  Every store call is bounded and retried with backoff: storage.timeouts in a policy, or \
                  OPENOVA_S3_CONNECT_TIMEOUT, _ATTEMPT_TIMEOUT, _OPERATION_TIMEOUT, _STALL_TIMEOUT and \
                  OPENOVA_S3_RETRY_BUDGET (README: Timeouts and retries)."
)]
pub struct Cli {
    /// Output format of results on stdout.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every Velero and Barman backup, WAL ranges, the recoverable window and each timeline's last transaction, from the store alone.
    Catalog(catalog::CatalogArgs),
    /// Judge each policy: newest good backup against schedule and RPO, window coverage, WAL gaps, failures.
    Status(status::StatusArgs),
    /// Plan (and with --apply, carry out) retention: 30-day Velero expiry, the PostgreSQL recovery window.
    Retention(retention::RetentionArgs),
    /// DR drills: restore every point of the recovery window for real, check it, record RTO and RPO.
    Drill(drill::DrillArgs),
    /// Back up now through the cluster: a Velero Backup from the policy's Schedule, a CNPG Backup of its
    /// Cluster; with --wait, follow each to its end and check that the object store holds it.
    Backup(backup::BackupArgs),
    /// The CronJob's entry point: status of every policy, then retention --apply under the lease (Velero
    /// backups the cluster knows deleted through Velero); a line per policy, exit code the worst result.
    Cron(cron::CronArgs),
    /// Server-side apply (field manager openova) of a folder `openova render` wrote.
    Apply(apply::ApplyArgs),
    /// Render the backup layer as Kubernetes manifests (Velero, CNPG, openova's CronJobs and RBAC) from the policies.
    Render(render::RenderArgs),
    /// Restore from the object store alone (the cluster may be gone), or with --into-cluster through Velero / a new CNPG Cluster.
    Restore(restore::RestoreArgs),
    /// PostgreSQL restore_command: fetch one WAL file from a Barman Cloud archive (exit 0 found, 1 not found, 255 error).
    WalGet(wal_get::WalGetArgs),
    /// The background prefetcher `wal-get` starts (internal).
    #[command(hide = true)]
    WalPrefetch(wal_get::WalPrefetchArgs),
}

/// Where policies come from.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// A policy file or a folder of them.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// Only this policy.
    #[arg(long)]
    pub policy: Option<String>,
}

/// Store access tuning.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// How many requests run at once: listings (one per WAL folder / backup folder) and, for
    /// `retention --apply`, delete batches of 1,000 keys.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// The cluster, for commands that drive Velero through it.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Velero's namespace.
    #[arg(long, default_value = crate::velero::NAMESPACE)]
    pub velero_namespace: String,
}

impl ClusterArgs {
    /// Velero through the cluster when `needed`, checked reachable (the API server answers and lets
    /// openova list Velero's Backups).
    pub async fn velero(
        &self,
        needed: bool,
    ) -> anyhow::Result<Option<crate::cluster::velero::Velero>> {
        if !needed {
            return Ok(None);
        }
        let client = crate::cluster::connect(self.kubeconfig.as_deref()).await?;
        let velero = crate::cluster::velero::Velero::new(client, &self.velero_namespace);
        velero.backups().await?;
        Ok(Some(velero))
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Catalog(a) => catalog::run(a, cli.output).await,
        Command::Status(a) => status::run(a, cli.output).await,
        Command::Retention(a) => retention::run(a, cli.output).await,
        Command::WalGet(a) => wal_get::run(a).await,
        Command::WalPrefetch(a) => wal_get::run_prefetch(a).await,
        Command::Restore(a) => restore::run(a, cli.output).await,
        Command::Drill(a) => drill::run(a, cli.output).await,
        Command::Render(a) => render::run(a),
        Command::Apply(a) => apply::run(a, cli.output).await,
        Command::Cron(a) => cron::run(a, cli.output).await,
        Command::Backup(a) => backup::run(a, cli.output).await,
    }
}

/// Prints a JSON document on stdout.
fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    write_json(v)
}

/// Writes a document as JSON on stdout as it is serialised, without building it in memory first
/// (a retention plan may name a million keys).
fn write_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, v)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
