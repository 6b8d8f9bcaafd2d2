//! `openova cron`: the CronJob's entry point. Status of every policy, then retention under the lease;
//! one line per policy (JSON lines when stdout is not a terminal, or with `--output json`); exit code
//! the worst result (0 all good, 1 a check failed or retention was refused, 2 an error).

use super::{ClusterArgs, Outcome, PolicyArgs, StoreArgs};
use crate::cluster::velero::Deleter;
use crate::cron::{self, PolicyRun, Verdict};
use crate::policy::{self, Duration};
use crate::report::{self, Output};
use crate::retention::run::Options;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;
use std::io::IsTerminal;

#[derive(Args, Debug)]
pub struct CronArgs {
    #[command(flatten)]
    pub policies: PolicyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Work from the store alone: no cluster is asked and Velero backups are deleted through the store
    /// (Velero then keeps their Backup objects until its sync drops them, and any kopia data).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub no_cluster: bool,
    /// How long Velero may take to delete one backup (a DeleteBackupRequest).
    #[arg(long, default_value = "5m", value_parser = |s: &str| Duration::parse(s))]
    pub delete_timeout: Duration,
    /// Objects without a descriptor are orphans only once older than this.
    #[arg(long, default_value = "24h", value_parser = |s: &str| Duration::parse(s))]
    pub grace: Duration,
    /// Judge and prune as of this time (RFC 3339) instead of now.
    #[arg(long, value_parser = super::status::parse_time)]
    pub at: Option<DateTime<Utc>>,
}

pub async fn run(args: CronArgs, output: Output) -> anyhow::Result<Outcome> {
    let json_lines = output == Output::Json || !std::io::stdout().is_terminal();
    let now = args.at.unwrap_or_else(Utc::now);
    let failed = |e: &anyhow::Error| {
        let message = format!("{e:#}");
        if json_lines {
            println!(
                "{}",
                json!({ "time": report::time(Utc::now()), "level": "error", "message": message })
            );
        } else {
            println!("ERROR {message}");
        }
        Ok(Outcome::Error)
    };
    let picked = match policy::load(&args.policies.policies)
        .and_then(|p| policy::select(p, args.policies.policy.as_deref()))
    {
        Ok(p) => p,
        Err(e) => return failed(&e.into()),
    };
    let velero_policies = picked
        .iter()
        .any(|l| matches!(l.policy, policy::Policy::VeleroPolicy(_)));
    let reached = args
        .cluster
        .velero(velero_policies && !args.no_cluster)
        .await
        .map_err(|e| {
            e.context(
                "reaching Velero through the cluster (--no-cluster works from the store alone)",
            )
        });
    let deleter = match reached {
        Ok(v) => v.map(|velero| Deleter {
            velero,
            bound: args.delete_timeout.0.to_std().unwrap_or_default(),
        }),
        Err(e) => return failed(&e),
    };
    let opts = Options {
        apply: true,
        single_writer: false,
        grace: args.grace.0,
        concurrency: usize::from(args.store.concurrency),
    };
    let runs = cron::run(
        &picked,
        now,
        &opts,
        deleter
            .as_ref()
            .map(|d| d as &dyn crate::retention::run::VeleroCluster),
    )
    .await;
    for r in &runs {
        if json_lines {
            println!("{}", line_json(r, now));
        } else {
            println!("{}", line_text(r));
        }
    }
    Ok(match runs.iter().map(|r| r.verdict).max() {
        None | Some(Verdict::Ok) => Outcome::Ok,
        Some(Verdict::Violated) => Outcome::Violated,
        Some(Verdict::Error) => Outcome::Error,
    })
}

fn line_json(r: &PolicyRun, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "time": report::time(Utc::now()),
        "level": match r.verdict { Verdict::Ok => "info", Verdict::Violated => "warn", Verdict::Error => "error" },
        "at": report::time(now),
        "policy": r.policy,
        "kind": r.kind,
        "result": r.verdict,
        "status": {
            "ok": r.status.ok,
            "newest_backup": r.status.newest_backup,
            "violations": r.status.violations,
            "error": r.status.error,
        },
        "retention": r.retention,
    })
}

fn line_text(r: &PolicyRun) -> String {
    let head = match r.verdict {
        Verdict::Ok => "OK   ",
        Verdict::Violated => "FAIL ",
        Verdict::Error => "ERROR",
    };
    let mut parts = Vec::new();
    if let Some(e) = &r.status.error {
        parts.push(format!("status: {e}"));
    }
    if let Some(b) = &r.status.newest_backup {
        parts.push(format!(
            "newest backup {} ({} ago)",
            b.id,
            policy::duration::human(chrono::TimeDelta::seconds(b.age_seconds))
        ));
    }
    for v in &r.status.violations {
        parts.push(format!("{}: {}", v.code, v.message));
    }
    match &r.retention {
        None => parts.push("retention: not run (storage unreadable)".into()),
        Some(d) => {
            if let Some(e) = &d.error {
                parts.push(format!("retention failed: {e}"));
            } else if let Some(why) = &d.refused {
                parts.push(format!("retention refused: {why}"));
            } else if d.deleted_backups == 0 && d.deleted_objects == 0 {
                parts.push("retention: nothing to delete".into());
            } else {
                let via = if d.via_velero.is_empty() {
                    String::new()
                } else {
                    format!(" ({} through Velero)", d.via_velero.len())
                };
                parts.push(format!(
                    "retention: deleted {} backups{via}, {} objects, {} bytes",
                    d.deleted_backups, d.deleted_objects, d.deleted_bytes
                ));
            }
        }
    }
    format!("{head} {} ({}): {}", r.policy, r.kind, parts.join("; "))
}
