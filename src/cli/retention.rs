use super::{ClusterArgs, Outcome, PolicyArgs, StoreArgs, write_json};
use crate::cluster::velero::Deleter;
use crate::policy::{self, Duration};
use crate::report::Output;
use crate::retention::run::{self, Options, Report, VeleroCluster};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub policies: PolicyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Delete what the plan lists. Without it, the plan is printed and nothing is deleted.
    #[arg(long)]
    pub apply: bool,
    /// Run --apply even where the store ignores conditional writes (Garage), so that the lease
    /// cannot exclude a second run: your word that nothing else deletes on this storage.
    #[arg(long, requires = "apply")]
    pub single_writer: bool,
    /// Objects without a descriptor are orphans only once older than this (a backup being
    /// written has no descriptor yet either).
    #[arg(long, default_value = "24h", value_parser = |s: &str| Duration::parse(s))]
    pub grace: Duration,
    /// With --apply, delete the Velero backups the cluster knows through Velero (a DeleteBackupRequest,
    /// as `velero backup delete` does), the rest through the store. Implied by --kubeconfig.
    #[arg(long)]
    pub cluster: bool,
    #[command(flatten)]
    pub kube: ClusterArgs,
    /// How long Velero may take to delete one backup (a DeleteBackupRequest).
    #[arg(long, default_value = "5m", value_parser = |s: &str| Duration::parse(s))]
    pub delete_timeout: Duration,
    /// Plan as of this time (RFC 3339) instead of now.
    #[arg(long, value_parser = super::status::parse_time)]
    pub at: Option<DateTime<Utc>>,
}

/// The JSON document of a run (`openova.retention/v1`), written as it is serialised.
#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    now: DateTime<Utc>,
    apply: bool,
    policies: &'a [Report],
}

pub async fn run(args: RetentionArgs, output: Output) -> anyhow::Result<Outcome> {
    let now = args.at.unwrap_or_else(Utc::now);
    let picked = policy::select(
        policy::load(&args.policies.policies)?,
        args.policies.policy.as_deref(),
    )?;
    let opts = Options {
        apply: args.apply,
        single_writer: args.single_writer,
        grace: args.grace.0,
        concurrency: usize::from(args.store.concurrency),
    };
    let velero_policies = picked
        .iter()
        .any(|l| matches!(l.policy, policy::Policy::VeleroPolicy(_)));
    let with_cluster = args.apply && (args.cluster || args.kube.kubeconfig.is_some());
    let deleter = args
        .kube
        .velero(with_cluster && velero_policies)
        .await?
        .map(|velero| Deleter {
            velero,
            bound: args.delete_timeout.0.to_std().unwrap_or_default(),
        });
    let mut reports = Vec::new();
    for l in &picked {
        let r = run::one(
            &l.policy,
            &opts,
            now,
            deleter.as_ref().map(|d| d as &dyn VeleroCluster),
        )
        .await
        .with_context(|| format!("policy {}", l.policy.name()))?;
        if output == Output::Text {
            print_text(&r, args.apply);
        }
        reports.push(r);
    }
    if output == Output::Json {
        write_json(&Document {
            schema: "openova.retention/v1",
            now,
            apply: args.apply,
            policies: &reports,
        })?;
    }
    Ok(if reports.iter().any(|r| r.refused.is_some()) {
        Outcome::Violated
    } else {
        Outcome::Ok
    })
}

fn print_text(r: &Report, apply: bool) {
    if let Some(why) = &r.refused {
        println!("REFUSED {}: {why}", r.policy);
        return;
    }
    let Some(plan) = &r.plan else { return };
    let verb = if apply { "deleting" } else { "would delete" };
    println!(
        "{} ({}): {verb} {} objects, {} bytes",
        plan.policy,
        plan.storage,
        plan.objects(),
        plan.bytes()
    );
    for d in &plan.deletions {
        println!(
            "  delete {:?} {}: {} ({} objects)",
            d.what,
            d.name,
            d.reason,
            d.keys.len()
        );
    }
    for k in &plan.kept {
        println!("  keep {}: {}", k.name, k.reason);
    }
    if let Some(s) = r.applied.as_ref().filter(|s| !s.via_velero.is_empty()) {
        println!(
            "  through Velero (DeleteBackupRequest): {}",
            s.via_velero.join(", ")
        );
    }
    match &r.applied {
        Some(s) => println!(
            "  done: {} backups, {} objects, {} bytes removed (read and planned in {:.1}s, deleted in {:.1}s)",
            s.backups, s.objects, s.bytes, r.plan_seconds, s.seconds
        ),
        None if !plan.deletions.is_empty() => {
            println!("  dry run: nothing deleted; run with --apply to delete");
        }
        None => {}
    }
}
