use super::{Outcome, print_json};
use crate::catalog::{self, Scope};
use crate::policy::Request;
use crate::report::{self, Output};
use crate::restore::postgres::{self as pgrestore, Target, local};
use crate::store;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub what: RestoreWhat,
}

#[derive(Subcommand, Debug)]
pub enum RestoreWhat {
    /// Restore a PostgreSQL base backup and set up point-in-time recovery to a target.
    Postgres(PgArgs),
    /// Write a Velero backup's objects as YAML files, in Velero's restore order (offline: no cluster needed).
    Velero(VeleroArgs),
}

#[derive(Args, Debug)]
pub struct VeleroArgs {
    /// The backup's name, or `latest` (the newest Completed backup of the policy, or of the storage).
    #[arg(long)]
    pub backup: String,
    /// The VeleroPolicy naming the storage (or give --storage).
    #[arg(long, conflicts_with = "storage")]
    pub policy: Option<String>,
    /// Policy file or folder.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// The Velero storage: s3://BUCKET/PREFIX or file:///PATH.
    #[arg(long)]
    pub storage: Option<String>,
    /// S3 endpoint for --storage (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long, requires = "storage")]
    pub endpoint: Option<String>,
    /// Where to write the YAML files (must be empty or absent).
    #[arg(long)]
    pub extract: PathBuf,
    /// Only these namespaces (repeatable); their Namespace objects and all CRDs come along.
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PgArgs {
    /// The PostgresPolicy naming storage and server (or give --storage and --server).
    #[arg(long, conflicts_with_all = ["storage", "server"])]
    pub policy: Option<String>,
    /// Policy file or folder.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// The Barman Cloud archive: s3://BUCKET/PREFIX or file:///PATH.
    #[arg(long, requires = "server")]
    pub storage: Option<String>,
    /// The server folder under the storage prefix.
    #[arg(long, requires = "storage")]
    pub server: Option<String>,
    /// S3 endpoint for --storage (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long, requires = "storage")]
    pub endpoint: Option<String>,
    /// `latest`, or a time inside the recoverable window: RFC 3339 (2026-11-25T03:00:00Z) or as
    /// psql prints it (2026-11-25 03:00:00.123456+00). A time without a zone is refused.
    #[arg(long, value_parser = parse_target)]
    pub to: Target,
    /// Where to restore (must be empty or absent).
    #[arg(long, required_unless_present = "discard")]
    pub target_dir: Option<PathBuf>,
    /// Print the plan (backup, WAL range, bytes) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start a local PostgreSQL on the restored data and wait until it reached the target.
    #[arg(long)]
    pub start: bool,
    /// Port for --start.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// Use this restore_command instead of `openova wal-get` (e.g. barman-cloud-wal-restore, for a
    /// comparison); `%f` and `%p` as PostgreSQL expands them.
    #[arg(long)]
    pub restore_command: Option<String>,
    /// Give up waiting for recovery after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Restore tablespace NAME into DIR instead of its original location (repeatable). Every
    /// tablespace location must be empty or absent.
    #[arg(long = "tablespace", value_name = "NAME:DIR")]
    pub tablespaces: Vec<String>,
    /// Download the base backup exactly as a restore does and drop the bytes, writing nothing:
    /// the store's share of a restore (scripts/bench-restore measures its floor with it).
    #[arg(long, hide = true, conflicts_with_all = ["start", "dry_run", "target_dir"])]
    pub discard: bool,
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s)
}

impl PgArgs {
    fn request(&self) -> Request<'_> {
        Request {
            storage: self.storage.as_deref(),
            endpoint: self.endpoint.as_deref(),
            policy: self.policy.as_deref(),
            policies: &self.policies,
        }
    }
}

impl VeleroArgs {
    fn request(&self) -> Request<'_> {
        Request {
            storage: self.storage.as_deref(),
            endpoint: self.endpoint.as_deref(),
            policy: self.policy.as_deref(),
            policies: &self.policies,
        }
    }
}

pub async fn run(args: RestoreArgs, output: Output) -> anyhow::Result<Outcome> {
    let a = match args.what {
        RestoreWhat::Postgres(a) => a,
        RestoreWhat::Velero(v) => return velero(v, output).await,
    };
    let archive = a
        .request()
        .archive(a.server.as_deref(), "restore postgres")?;
    let (url, conn, server) = (
        &archive.location.url,
        &archive.location.conn,
        &archive.server,
    );
    let store = store::open(url, conn).await?;
    let progress = report::progress(&format!("reading {url}"));
    let scope = Scope {
        velero: false,
        servers: Some(vec![server.clone()]),
    };
    let cat = catalog::load(store.as_ref(), &scope, 16).await;
    progress.finish();
    let cat = cat.with_context(|| format!("reading the catalog of {url}"))?;
    let Some((server_cat, window)) = cat.barman.first() else {
        bail!("no server {server} in {url}")
    };
    let mut plan = pgrestore::plan(server_cat, window, a.to)?;
    plan.relocate(&a.tablespaces)?;
    let last = pgrestore::check_reachable(store.as_ref(), &plan).await?;
    let mut report = serde_json::json!({
        "schema": "openova.restore/v1",
        "plan": plan,
        "last_transaction": last,
        "dry_run": a.dry_run,
    });
    if a.discard {
        return discard(store.as_ref(), &plan, report, output).await;
    }
    let target_dir = a.target_dir.clone().unwrap_or_default();
    if output == Output::Text {
        print_plan(&plan, &target_dir, a.dry_run);
        if let Some(t) = &last {
            println!(
                "  the archive's last transaction {} at {} (segment {})",
                if t.committed { "committed" } else { "aborted" },
                t.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                t.segment
            );
        }
    }
    if !a.dry_run {
        let progress = report::progress(&format!(
            "downloading and extracting base backup {}",
            plan.backup_id
        ));
        let source = local::Source {
            url,
            server,
            endpoint: conn.endpoint.as_deref(),
        };
        let got = local::fetch_and_configure(
            store.as_ref(),
            &plan,
            &target_dir,
            &source,
            a.restore_command.as_deref(),
            &[],
            progress.as_ref(),
        )
        .await;
        progress.finish();
        let got = got?;
        report["fetched"] = serde_json::to_value(&got)?;
        if output == Output::Text {
            println!(
                "base backup extracted into {} ({} bytes in {:.1}s, {:.0} MB/s; download {:.1}s, extract {:.1}s, sync {:.1}s); recovery.signal written",
                target_dir.display(),
                got.bytes,
                got.seconds,
                got.bytes as f64 / got.seconds.max(1e-3) / 1e6,
                got.download_seconds,
                got.extract_seconds,
                got.sync_seconds
            );
        }
        if a.start {
            let reached = local::start_and_wait(
                &target_dir,
                &target_dir,
                &plan,
                a.port,
                Duration::from_secs(a.timeout),
                a.restore_command.is_none(),
            )
            .await?;
            if output == Output::Text {
                println!(
                    "WAL replay finished in {:.1}s; last replayed transaction {}; PostgreSQL is running on port {} (socket in {})",
                    reached.replay_seconds,
                    reached.last_replayed.as_deref().unwrap_or("none"),
                    reached.port,
                    target_dir.display()
                );
            }
            report["reached"] = serde_json::to_value(&reached)?;
        }
    }
    if output == Output::Json {
        print_json(&report)?;
    }
    Ok(Outcome::Ok)
}

/// `--discard`: the download alone.
async fn discard(
    store: &dyn store::ObjectStore,
    plan: &pgrestore::Plan,
    mut report: serde_json::Value,
    output: Output,
) -> anyhow::Result<Outcome> {
    let progress = report::progress(&format!("downloading base backup {}", plan.backup_id));
    let got =
        pgrestore::download_only(store, plan, pgrestore::Tuning::default(), progress.as_ref())
            .await;
    progress.finish();
    let got = got?;
    match output {
        Output::Json => {
            report["fetched"] = serde_json::to_value(&got)?;
            print_json(&report)?;
        }
        Output::Text => println!(
            "base backup {} downloaded and dropped: {} bytes in {:.1}s ({:.0} MB/s)",
            plan.backup_id,
            got.bytes,
            got.seconds,
            got.bytes as f64 / got.seconds.max(1e-3) / 1e6
        ),
    }
    Ok(Outcome::Ok)
}

fn print_plan(p: &pgrestore::Plan, dir: &Path, dry_run: bool) {
    let target = match p.target {
        Target::Latest => "latest".to_string(),
        Target::Time(t) => report::time(t),
    };
    println!("restore {} to {target}", p.server);
    println!(
        "  base backup {} (ended {}), timeline {}",
        p.backup_id,
        report::time(p.backup_end),
        p.timeline
    );
    println!(
        "  WAL {} .. {} (fetched by openova wal-get during recovery)",
        p.wal_from, p.wal_to
    );
    println!(
        "  download {} bytes in {} object(s) into {}",
        p.download_bytes,
        p.objects.len(),
        dir.display()
    );
    for t in &p.tablespaces {
        let moved = if t.location.as_os_str() == t.original.as_str() {
            String::new()
        } else {
            format!(" (backed up at {})", t.original)
        };
        println!(
            "  tablespace {} (oid {}) into {}{moved}, linked from pg_tblspc/{}",
            t.name,
            t.oid,
            t.location.display(),
            t.oid
        );
    }
    if dry_run {
        println!("  dry run: nothing downloaded or written");
    }
}

async fn velero(a: VeleroArgs, output: Output) -> anyhow::Result<Outcome> {
    let at = a.request().velero("restore velero")?;
    let store = store::open(&at.url, &at.conn).await?;
    let cat = catalog::load(
        store.as_ref(),
        &Scope {
            velero: true,
            servers: Some(vec![]),
        },
        16,
    )
    .await?;
    let all = cat.velero.unwrap_or_default();
    let b = crate::velero::choose(&all, a.policy.as_deref(), &a.backup, &at.url.to_string())?;
    let key = crate::velero::tarball_key(&b.name);
    let progress = report::progress(&format!("downloading {key}"));
    let tarball = store.get(&key).await;
    progress.finish();
    let tarball = tarball.with_context(|| format!("backup {}", b.name))?;
    let (items, _) = crate::velero::tarball::read_items(tarball.as_ref())
        .with_context(|| format!("reading {key}: truncated or corrupt tarball"))?;
    let groups =
        crate::restore::velero::ordered(crate::restore::velero::filter(items, &a.namespaces));
    let files = crate::restore::velero::write(&a.extract, &groups)?;
    match output {
        Output::Json => print_json(&serde_json::json!({
            "schema": "openova.restore-velero/v1",
            "backup": b.name,
            "phase": b.phase,
            "files": files,
        }))?,
        Output::Text => {
            println!(
                "backup {} ({}): {} objects written to {} in restore order",
                b.name,
                b.phase.as_deref().unwrap_or("-"),
                files.len(),
                a.extract.display()
            );
            for (gr, items) in &groups {
                println!("  {gr}: {}", items.len());
            }
            if b.phase.as_deref() != Some("Completed") {
                println!(
                    "  note: the backup's phase is {}, not Completed: some objects may be missing",
                    b.phase.as_deref().unwrap_or("unknown")
                );
            }
        }
    }
    Ok(Outcome::Ok)
}
