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
    #[arg(
        long,
        visible_alias = "target-dir",
        required_unless_present = "into_cluster",
        conflicts_with = "into_cluster"
    )]
    pub extract: Option<PathBuf>,
    /// Restore into the cluster through Velero (a Restore, followed to its end) instead of writing files.
    #[arg(long)]
    pub into_cluster: bool,
    /// With --into-cluster: restore namespace OLD as NEW (repeatable), e.g. `shop:shop-restored`.
    #[arg(long = "namespace-mapping", value_name = "OLD:NEW", requires = "into_cluster", value_parser = parse_mapping)]
    pub namespace_mapping: Vec<(String, String)>,
    /// With --into-cluster: restore although the backup's location is ReadWrite (Velero's disaster
    /// procedure sets it ReadOnly first: openova render --restore-mode).
    #[arg(long, requires = "into_cluster")]
    pub allow_writable_location: bool,
    /// With --into-cluster: how long the Restore may take.
    #[arg(long, default_value = "1h", requires = "into_cluster", value_parser = |s: &str| crate::policy::Duration::parse(s))]
    pub timeout: crate::policy::Duration,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
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
    #[arg(long, required_unless_present_any = ["into_cluster", "discard"], conflicts_with = "into_cluster")]
    pub target_dir: Option<PathBuf>,
    /// Restore into the cluster instead: a new CNPG Cluster bootstrapped by recovery from the policy's
    /// ObjectStore to --to, archiving under its own server folder (never into the source's).
    #[arg(long, requires = "new_name", conflicts_with_all = ["start", "restore_command", "storage"])]
    pub into_cluster: bool,
    /// With --into-cluster: the new Cluster's name, also its server folder in the store (must not exist).
    #[arg(long, requires = "into_cluster")]
    pub new_name: Option<String>,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
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

fn parse_mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(':') => {
            Ok((a.to_string(), b.to_string()))
        }
        _ => Err(format!("{s:?}: give OLD:NEW, e.g. shop:shop-restored")),
    }
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
    if !a.into_cluster && a.new_name.is_some() {
        bail!("--new-name goes with --into-cluster (the name of the Cluster to create)");
    }
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
    // A target time after the archive's last transaction is refused before anything is
    // downloaded. For `latest` nothing can be refused: the last transaction is read while the
    // base backup downloads (it is only reported), and not at all for `--discard`, which measures
    // the download alone.
    let read_first = matches!(plan.target, Target::Time(_)) || a.dry_run || a.into_cluster;
    let last = if read_first {
        pgrestore::check_reachable(store.as_ref(), &plan).await?
    } else {
        None
    };
    let mut report = serde_json::json!({
        "schema": "openova.restore/v1",
        "plan": plan,
        "last_transaction": last,
        "dry_run": a.dry_run,
    });
    if a.into_cluster {
        return postgres_into_cluster(&a, &plan, store.as_ref(), report, output).await;
    }
    if a.discard {
        return discard(store.as_ref(), &plan, report, output).await;
    }
    let Some(target_dir) = a.target_dir.clone() else {
        bail!("give --target-dir (where to restore) or --into-cluster");
    };
    if output == Output::Text {
        print_plan(&plan, &target_dir, a.dry_run);
        print_last(last.as_ref());
    }
    if !a.dry_run {
        let progress = report::progress(&format!(
            "downloading and extracting base backup {}",
            plan.backup_id
        ));
        let source = local::Source { url, server, conn };
        // Ctrl-C (or SIGTERM) while the fetch runs stops it cleanly: the partly restored files
        // are removed, so that the next try does not find the target full of them.
        let signals = interrupt_fetch();
        let fetch = local::fetch_and_configure(
            store.as_ref(),
            &plan,
            &target_dir,
            &source,
            a.restore_command.as_deref(),
            &[],
            progress.as_ref(),
        );
        let (got, read) = if read_first {
            (fetch.await, Ok(None))
        } else {
            tokio::join!(fetch, pgrestore::check_reachable(store.as_ref(), &plan))
        };
        progress.finish();
        let stopped_by = signals.fetch_done();
        let got = match got {
            Err(pgrestore::Error::Interrupted) => {
                eprintln!(
                    "openova: {} (folder {})",
                    pgrestore::Error::Interrupted,
                    target_dir.display()
                );
                return Ok(stopped_by.unwrap_or(Outcome::Interrupted));
            }
            other => other?,
        };
        if let Some(outcome) = stopped_by {
            eprintln!(
                "openova: interrupted after the restore was complete: {} holds the whole base \
                 backup and its recovery settings",
                target_dir.display()
            );
            return Ok(outcome);
        }
        if !read_first {
            let last = read?;
            if output == Output::Text {
                print_last(last.as_ref());
            }
            report["last_transaction"] = serde_json::to_value(&last)?;
        }
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

/// Turns SIGINT and SIGTERM into a request to stop the fetch ([`pgrestore::INTERRUPT`]) while
/// it runs; once [`Signals::fetch_done`] is called, a signal ends the process at once, as it
/// would without this (PostgreSQL started by `--start` gets a terminal's SIGINT itself).
fn interrupt_fetch() -> Signals {
    use std::sync::atomic::Ordering;
    let state = std::sync::Arc::new(std::sync::Mutex::new((true, None::<Outcome>)));
    let watch = state.clone();
    if let Some(mut signals) = super::StopSignals::new() {
        tokio::spawn(async move {
            loop {
                let outcome = signals.next().await;
                let mut s = watch
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !s.0 {
                    std::process::exit(i32::from(outcome.code()));
                }
                if s.1.is_some() {
                    eprintln!("openova: stopped at once; the partly restored files were left");
                    std::process::exit(i32::from(outcome.code()));
                }
                s.1 = Some(outcome);
                pgrestore::INTERRUPT.store(true, Ordering::Relaxed);
                eprintln!(
                    "openova: stopping the restore and removing what it wrote (again to stop at \
                     once, leaving them)"
                );
            }
        });
    }
    Signals(state)
}

struct Signals(std::sync::Arc<std::sync::Mutex<(bool, Option<Outcome>)>>);

impl Signals {
    /// The fetch is over: the signal that stopped it, if one did; later ones end the process.
    fn fetch_done(&self) -> Option<Outcome> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.0 = false;
        s.1
    }
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

fn print_last(last: Option<&pgrestore::LastTransaction>) {
    if let Some(t) = last {
        println!(
            "  the archive's last transaction {} at {} (segment {})",
            if t.committed { "committed" } else { "aborted" },
            t.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            t.segment
        );
    }
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
    // clap counts a flag's default (false) as present, so `requires = "into_cluster"` cannot refuse these.
    if !a.into_cluster && (!a.namespace_mapping.is_empty() || a.allow_writable_location) {
        bail!("--namespace-mapping and --allow-writable-location go with --into-cluster");
    }
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
    let Some(extract) = &a.extract else {
        return into_cluster(&a, b, store.as_ref(), output).await;
    };
    let key = crate::velero::tarball_key(&b.name);
    let progress = report::progress(&format!("downloading {key}"));
    let tarball = store.get(&key).await;
    progress.finish();
    let tarball = tarball.with_context(|| format!("backup {}", b.name))?;
    let (items, _) = crate::velero::tarball::read_items(tarball.as_ref())
        .with_context(|| format!("reading {key}: truncated or corrupt tarball"))?;
    let groups =
        crate::restore::velero::ordered(crate::restore::velero::filter(items, &a.namespaces));
    let files = crate::restore::velero::write(extract, &groups)?;
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
                extract.display()
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

/// `restore velero --into-cluster`: a Velero Restore of backup `b`, followed to its end.
async fn into_cluster(
    a: &VeleroArgs,
    b: &crate::velero::VeleroBackup,
    store: &dyn store::ObjectStore,
    output: Output,
) -> anyhow::Result<Outcome> {
    use crate::restore::into_cluster::{self as ic, Request};
    let client = crate::cluster::connect(a.cluster.kubeconfig.as_deref()).await?;
    let v = crate::cluster::velero::Velero::new(client, &a.cluster.velero_namespace);
    let location = b
        .storage_location
        .clone()
        .or_else(|| a.policy.clone())
        .unwrap_or_else(|| "default".into());
    let req = Request {
        backup: &b.name,
        location: &location,
        mapping: &a.namespace_mapping,
        namespaces: &a.namespaces,
        allow_writable: a.allow_writable_location,
        bound: a.timeout.0.to_std().unwrap_or_default(),
    };
    let progress = report::progress(&format!("restoring {}", b.name));
    let done = ic::velero(&v, store, &req, progress.as_ref()).await;
    progress.finish();
    let done = done?;
    match output {
        Output::Json => print_json(&serde_json::json!({
            "schema": "openova.restore-velero-cluster/v1",
            "restore": done,
        }))?,
        Output::Text => {
            let e = &done.end;
            println!(
                "{} restore {} of backup {}: {} of {} items restored, {} errors, {} warnings",
                e.phase, e.name, done.backup, e.items_restored, e.total_items, e.errors, e.warnings
            );
            for m in e.messages.iter().chain(&done.details) {
                println!("  {m}");
            }
        }
    }
    Ok(if done.completed() {
        Outcome::Ok
    } else {
        Outcome::Violated
    })
}

/// `restore postgres --into-cluster --new-name NAME`: a CNPG Cluster bootstrapped by recovery, created
/// once the plan holds (the target inside the window and before the last transaction) and the new
/// server folder is free.
async fn postgres_into_cluster(
    a: &PgArgs,
    plan: &pgrestore::Plan,
    store: &dyn store::ObjectStore,
    mut report: serde_json::Value,
    output: Output,
) -> anyhow::Result<Outcome> {
    let Some(name) = a.policy.as_deref() else {
        bail!(
            "--into-cluster needs --policy: the ObjectStore, namespace and Cluster come from the PostgresPolicy"
        );
    };
    let policies = crate::policy::select(crate::policy::load(&a.policies)?, Some(name))?;
    let Some(crate::policy::Policy::PostgresPolicy(p)) = policies.first().map(|l| &l.policy) else {
        bail!("policy {name} is not a PostgresPolicy");
    };
    let new_name = a.new_name.as_deref().unwrap_or_default();
    if new_name == p.server_name || new_name == p.cluster.name {
        bail!(
            "--new-name {new_name} is the source's own name: the restored cluster must archive under a server folder of its own"
        );
    }
    let taken = store.list_dir(&format!("{new_name}/")).await?;
    if !taken.objects.is_empty() || !taken.dirs.is_empty() {
        bail!(
            "server folder {new_name}/ already holds objects in {}: the restored cluster would archive into it and CNPG \
             refuses that (\"Expected empty archive\"); choose another --new-name",
            store.url()
        );
    }
    let target = match plan.target {
        pgrestore::Target::Latest => None,
        pgrestore::Target::Time(t) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    };
    let client = crate::cluster::connect(a.cluster.kubeconfig.as_deref()).await?;
    let source =
        crate::cluster::cnpg::cluster_spec(&client, &p.cluster.namespace, &p.cluster.name).await?;
    let cluster = crate::render::recovery_cluster(p, new_name, target.as_deref(), source.as_ref());
    report["cluster"] = cluster.clone();
    if !a.dry_run {
        crate::cluster::cnpg::create_cluster(&client, &cluster).await?;
    }
    match output {
        Output::Json => print_json(&report)?,
        Output::Text => {
            let to = target.as_deref().unwrap_or("the end of the archive");
            let verb = if a.dry_run { "would create" } else { "created" };
            println!(
                "{verb} Cluster {ns}/{new_name}: CNPG restores base backup {} of {} and replays WAL to {to}; it archives under {new_name}/ (the source's folder is only read)",
                plan.backup_id,
                p.server_name,
                ns = p.cluster.namespace
            );
            if !a.dry_run {
                println!(
                    "  follow it: kubectl -n {} get cluster {new_name} -w",
                    p.cluster.namespace
                );
            }
        }
    }
    Ok(Outcome::Ok)
}
