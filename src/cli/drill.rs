use super::{Outcome, print_json};
use crate::drill::{self, history, record, run};
use crate::location::Location;
use crate::policy::{self, Loaded, Request};
use crate::report::{self, Output};
use crate::store;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub what: DrillWhat,
}

#[derive(Subcommand, Debug)]
pub enum DrillWhat {
    /// Restore every point a drill names (offline: no cluster needed), run its checks, measure RTO
    /// and RPO, and store the reports and evidence in the bucket. Exit 0 passed, 1 failed, 2 error.
    Run(RunArgs),
    /// The stored drill runs: RTO/RPO per run, median, worst, runs over budget.
    History(HistoryArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A drill file (or give --name to pick one from --drills).
    pub file: Option<PathBuf>,
    /// The drill to run, by name, from --drills.
    #[arg(long, conflicts_with = "file")]
    pub name: Option<String>,
    /// Drill file or folder.
    #[arg(long, default_value = "restore-drills", env = "OPENOVA_DRILLS")]
    pub drills: PathBuf,
    /// Policy file or folder (the drill names its policies).
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// Seed of the `random` points (printed, so that a run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the reports and the evidence bundle into DIR/TIMESTAMP-NAME/.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Do not store the record in the bucket (by default it goes under openova/drills/).
    #[arg(long)]
    pub no_store: bool,
    /// Give up on a point whose WAL replay takes longer than this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Where the private working folder is made (default: the system's temporary folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also restore each Velero entry for real through Velero, into scratch namespaces (namespace
    /// mapping), check it through the API, and delete everything created after, passed or failed.
    #[arg(long)]
    pub into_cluster: bool,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only this drill's runs.
    #[arg(long)]
    pub name: Option<String>,
    /// Policy file or folder.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// The policy whose storage the records sit beside (default: the first policy).
    #[arg(long, conflicts_with = "storage")]
    pub policy: Option<String>,
    /// A storage location (s3://BUCKET/PREFIX or file:///PATH) the records sit beside.
    #[arg(long)]
    pub storage: Option<String>,
    /// S3 endpoint for --storage (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long, requires = "storage")]
    pub endpoint: Option<String>,
    /// How many of the newest runs to list.
    #[arg(long, default_value_t = 10)]
    pub last: usize,
    /// Also write a self-contained HTML page (charts and table) to FILE.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub async fn run(args: DrillArgs, output: Output) -> anyhow::Result<Outcome> {
    match args.what {
        DrillWhat::Run(a) => run_drill(a, output).await,
        DrillWhat::History(a) => show_history(a, output).await,
    }
}

/// Where a drill's record goes: beside the storage of the first policy it names.
fn record_location(d: &drill::Drill, policies: &[Loaded]) -> Option<Location> {
    let first = d
        .postgres
        .iter()
        .map(|e| &e.policy)
        .chain(d.velero.iter().map(|e| &e.policy))
        .next()?;
    let p = policies.iter().find(|l| l.policy.name() == first)?;
    let at = p.policy.storage().location();
    Some(Location {
        url: at.url.parent().0,
        ..at
    })
}

async fn run_drill(a: RunArgs, output: Output) -> anyhow::Result<Outcome> {
    let picked = match (&a.file, &a.name) {
        (Some(f), _) => drill::def::load(f)?,
        (None, name) => drill::def::select(drill::def::load(&a.drills)?, name.as_deref())?,
    };
    if picked.len() > 1 {
        let names: Vec<&str> = picked.iter().map(|l| l.drill.name.as_str()).collect();
        bail!(
            "{} drills found ({}): give a file or --name NAME",
            names.len(),
            names.join(", ")
        );
    }
    let loaded = &picked[0];
    let policies = policy::load(&a.policies)?;
    let seed = a.seed.unwrap_or_else(|| {
        let n = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        (n.unsigned_abs() ^ u64::from(std::process::id())) % 1_000_000_000
    });
    eprintln!(
        "drill {}: seed {seed} (repeat with --seed {seed})",
        loaded.drill.name
    );
    let opts = run::Options {
        seed,
        port: 5432,
        replay_timeout: Duration::from_secs(a.timeout),
        work_root: a.work_dir.clone(),
        cluster: a
            .cluster
            .velero(a.into_cluster && !loaded.drill.velero.is_empty())
            .await?,
    };
    let ws = run::Workspace::create(opts.work_root.as_deref())
        .context("creating the drill's working folder")?;
    let progress = report::progress(&format!("drill {}", loaded.drill.name));
    let (report, evidence) = {
        let fut = run::run(&loaded.drill, &policies, &opts, &ws, progress.as_ref());
        tokio::select! {
            r = fut => r,
            code = interrupted() => {
                progress.finish();
                eprintln!("drill {}: interrupted; stopping what it started and removing {}", loaded.drill.name, ws.root().display());
                drop(ws);
                return Ok(code);
            }
        }
    };
    progress.finish();
    drop(ws);
    let definition = std::fs::read_to_string(&loaded.path).unwrap_or_default();
    let files = record::files(&report, &definition, &evidence)?;
    // A record that cannot be stored does not hide the report: it is printed, and the run
    // exits 2 with the reason.
    let (mut stored, mut store_error) = (None, None);
    if !a.no_store
        && let Some(Location { url, conn }) = record_location(&loaded.drill, &policies)
    {
        let put = async {
            let store = store::open(&url, &conn).await?;
            record::store(store.as_ref(), &files)
                .await
                .map_err(anyhow::Error::from)
        };
        match put.await {
            Ok(folder) => {
                stored = Some(format!(
                    "{}/{folder}/",
                    url.to_string().trim_end_matches('/')
                ));
            }
            Err(e) => {
                store_error = Some(format!(
                    "could not store the drill's record in {url}: {e:#}"
                ));
            }
        }
    }
    let written = match &a.report_dir {
        Some(dir) => Some(record::write(dir, &files)?),
        None => None,
    };
    match output {
        Output::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["stored"] = serde_json::json!(stored);
            v["store_error"] = serde_json::json!(store_error);
            v["report_dir"] = serde_json::json!(written);
            print_json(&v)?;
        }
        Output::Text => {
            print!("{}", report.markdown());
            if let Some(s) = &stored {
                println!("\nrecord stored in {s}");
            }
            if let Some(w) = &written {
                println!("reports written to {}", w.display());
            }
        }
    }
    if let Some(e) = &store_error {
        eprintln!("error: {e}");
    }
    Ok(if report.errored() || store_error.is_some() {
        Outcome::Error
    } else if report.passed {
        Outcome::Ok
    } else {
        Outcome::Violated
    })
}

/// Waits for SIGINT or SIGTERM; the exit code the shell gives such a death.
async fn interrupted() -> Outcome {
    match super::StopSignals::new() {
        Some(mut signals) => signals.next().await,
        None => std::future::pending().await,
    }
}

async fn show_history(a: HistoryArgs, output: Output) -> anyhow::Result<Outcome> {
    let at = Request {
        storage: a.storage.as_deref(),
        endpoint: a.endpoint.as_deref(),
        policy: a.policy.as_deref(),
        policies: &a.policies,
    }
    .one()?;
    let beside = at.url.parent().0;
    let store = store::open(&beside, &at.conn).await?;
    let runs = history::load(store.as_ref(), a.name.as_deref())
        .await
        .with_context(|| format!("reading the drill records in {beside}"))?;
    let shown = &runs[runs.len().saturating_sub(a.last)..];
    let readable: Vec<&drill::Report> = shown.iter().filter_map(|r| r.report.as_ref()).collect();
    let stat = |f: fn(&drill::Report) -> Option<f64>| {
        history::median_and_worst(&readable.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let (rto, rpo) = (stat(|r| r.rto_seconds), stat(|r| r.rpo_seconds));
    if let Some(path) = &a.html {
        std::fs::write(path, history::html(shown))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match output {
        Output::Json => print_json(&serde_json::json!({
            "schema": "openova.drill-history/v1",
            "location": beside.to_string(),
            "runs": shown.iter().map(|r| serde_json::json!({
                "folder": r.folder,
                "drill": r.report.as_ref().map(|x| &x.drill),
                "started": r.report.as_ref().map(|x| x.started),
                "passed": r.report.as_ref().map(|x| x.passed),
                "rto_seconds": r.report.as_ref().and_then(|x| x.rto_seconds),
                "rpo_seconds": r.report.as_ref().and_then(|x| x.rpo_seconds),
                "over_budget": r.over_budget(),
                "unreadable": r.unreadable,
            })).collect::<Vec<_>>(),
            "rto": rto.map(|(m, w)| serde_json::json!({"median_seconds": m, "worst_seconds": w})),
            "rpo": rpo.map(|(m, w)| serde_json::json!({"median_seconds": m, "worst_seconds": w})),
        }))?,
        Output::Text => {
            if shown.is_empty() {
                println!("no drill runs recorded in {beside}/{}/", record::PREFIX);
            }
            for r in shown {
                match &r.report {
                    Some(x) => println!(
                        "{}  {:<24} {:<6}  RTO {:>8}  RPO {:>8}{}",
                        report::time(x.started),
                        x.drill,
                        if x.passed { "passed" } else { "FAILED" },
                        x.rto_seconds.map_or("-".into(), |v| format!("{v:.1} s")),
                        x.rpo_seconds.map_or("-".into(), |v| format!("{v:.1} s")),
                        if r.over_budget() { "  over budget" } else { "" }
                    ),
                    None => println!(
                        "{}: unreadable: {}",
                        r.folder,
                        r.unreadable.as_deref().unwrap_or("?")
                    ),
                }
            }
            if let Some((m, w)) = rto {
                println!("RTO median {m:.1} s, worst {w:.1} s");
            }
            if let Some((m, w)) = rpo {
                println!("RPO median {m:.1} s, worst {w:.1} s");
            }
            if let Some(path) = &a.html {
                println!("page written to {}", path.display());
            }
        }
    }
    Ok(Outcome::Ok)
}
