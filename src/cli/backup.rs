//! `openova backup [--policy NAME] [--wait]`: a backup now, through the cluster, for each policy; with
//! `--wait`, followed to its end (progress on stderr) and confirmed in the object store.

use super::{ClusterArgs, Outcome, PolicyArgs, StoreArgs, print_json};
use crate::backup;
use crate::cluster::{self, velero::Velero};
use crate::policy::{self, Duration, Policy};
use crate::report::{self, Output};
use clap::Args;

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub policies: PolicyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Follow each backup to its end, then check that the object store holds it whole.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long one backup may take.
    #[arg(long, default_value = "1h", value_parser = |s: &str| Duration::parse(s))]
    pub timeout: Duration,
}

pub async fn run(args: BackupArgs, output: Output) -> anyhow::Result<Outcome> {
    let picked = policy::select(
        policy::load(&args.policies.policies)?,
        args.policies.policy.as_deref(),
    )?;
    let client = cluster::connect(args.cluster.kubeconfig.as_deref()).await?;
    let velero = Velero::new(client.clone(), &args.cluster.velero_namespace);
    let wait = args
        .wait
        .then(|| args.timeout.0.to_std().unwrap_or_default());
    let concurrency = usize::from(args.store.concurrency);
    let mut outcomes = Vec::new();
    for l in &picked {
        let progress = report::progress(&format!("{}: backing up", l.policy.name()));
        let done = match &l.policy {
            Policy::VeleroPolicy(p) => {
                backup::velero(&velero, p, wait, concurrency, progress.as_ref()).await
            }
            Policy::PostgresPolicy(p) => {
                backup::postgres(&client, p, wait, concurrency, progress.as_ref()).await
            }
        };
        progress.finish();
        let done = done.map_err(|e| e.context(format!("policy {}", l.policy.name())))?;
        if output == Output::Text {
            print_text(&done);
        }
        outcomes.push(done);
    }
    if output == Output::Json {
        print_json(&serde_json::json!({ "schema": "openova.backup/v1", "backups": outcomes }))?;
    }
    Ok(if outcomes.iter().all(backup::Outcome::ok) {
        Outcome::Ok
    } else {
        Outcome::Violated
    })
}

fn print_text(o: &backup::Outcome) {
    let head = match (o.ok(), o.landed) {
        (true, Some(true)) => "LANDED ",
        (true, _) => "CREATED",
        (false, _) => "FAILED ",
    };
    let phase = o
        .phase
        .as_ref()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    let id = o
        .backup_id
        .as_ref()
        .filter(|id| !o.object.ends_with(id.as_str()))
        .map(|id| format!(" as {id}"))
        .unwrap_or_default();
    println!(
        "{head} {} ({}): {}{phase}{id} in {:.0}s",
        o.policy, o.kind, o.object, o.seconds
    );
    for p in &o.problems {
        println!("  {}: {p}", o.policy);
    }
    if o.landed.is_none() {
        println!("  not waited for: run with --wait to follow it and check the store");
    }
}
