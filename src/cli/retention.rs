use super::{Outcome, PolicyArgs, StoreArgs, write_json};
use crate::catalog::{self, Scope};
use crate::policy::{self, Duration, Policy};
use crate::report::{self, Output};
use crate::retention::lease::{self, Lease};
use crate::retention::{self, Plan, execute::Summary, invariants};
use crate::store::{self, ObjectStore, StorageUrl};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use std::sync::Arc;

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
    /// Plan as of this time (RFC 3339) instead of now.
    #[arg(long, value_parser = super::status::parse_time)]
    pub at: Option<DateTime<Utc>>,
}

/// One policy's outcome: its plan, whether it was refused (and why), what was deleted.
#[derive(Serialize)]
struct Report {
    policy: String,
    plan: Option<Plan>,
    refused: Option<String>,
    applied: Option<Summary>,
    /// Reading the catalog and planning (checks included), in seconds.
    plan_seconds: f64,
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
    let mut reports = Vec::new();
    for l in &picked {
        let r = one(&l.policy, &args, now)
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

async fn one(p: &Policy, args: &RetentionArgs, now: DateTime<Utc>) -> anyhow::Result<Report> {
    let storage = p.storage();
    let url = storage.url.clone();
    let store = store::open(&url, &storage.connection()).await?;
    let mut r = Report {
        policy: p.name().to_string(),
        plan: None,
        refused: None,
        applied: None,
        plan_seconds: 0.0,
    };
    // A Velero location at the bucket root owns the whole bucket: Velero marks it unavailable
    // when anything else appears at the top ("invalid top-level directories"), so no lease can
    // live there.
    let velero_at_root = matches!(p, Policy::VeleroPolicy(_))
        && matches!(&url, StorageUrl::S3 { prefix, .. } if prefix.is_empty());
    if args.apply && velero_at_root && !args.single_writer {
        r.refused = Some(format!(
            "{url} is a Velero location at the bucket root, where Velero tolerates no other object, so              openova cannot keep its retention lease there; give the location a prefix, or run with              --single-writer if nothing else deletes in it"
        ));
        return Ok(r);
    }
    // Under the lease from before the catalog is read, so two runs never plan on the same state.
    let lease = if args.apply && !velero_at_root {
        let (up, name) = url.parent();
        let lease_store = store::open(&up, &storage.connection()).await?;
        let key = format!(
            "openova/lease/{}",
            if name.is_empty() { "root" } else { &name }
        );
        match Lease::acquire(
            lease_store,
            &key,
            &url.to_string(),
            "retention",
            args.single_writer,
        )
        .await
        {
            Ok(l) => Some(l),
            Err(lease::Error::Store(e)) => return Err(e.into()),
            Err(e) => {
                r.refused = Some(e.to_string());
                return Ok(r);
            }
        }
    } else {
        None
    };
    let outcome = planned_and_applied(p, args, now, store, r).await;
    if let Some(l) = lease {
        l.release().await?;
    }
    outcome
}

async fn planned_and_applied(
    p: &Policy,
    args: &RetentionArgs,
    now: DateTime<Utc>,
    store: Arc<dyn ObjectStore>,
    mut r: Report,
) -> anyhow::Result<Report> {
    let url = store.url().clone();
    let scope = match p {
        Policy::VeleroPolicy(_) => Scope {
            velero: true,
            servers: Some(vec![]),
        },
        Policy::PostgresPolicy(pg) => Scope {
            velero: false,
            servers: Some(vec![pg.server_name.clone()]),
        },
    };
    let started = std::time::Instant::now();
    let progress = report::progress(&format!("reading {url}"));
    let concurrency = usize::from(args.store.concurrency);
    let cat = catalog::load(store.as_ref(), &scope, concurrency).await;
    progress.finish();
    let cat = cat?;
    let planned = match p {
        Policy::PostgresPolicy(pg) => match cat.barman.first() {
            Some((server, _)) => retention::postgres::plan(server, pg, &cat.url, now, args.grace.0)
                .map_err(|e| e.to_string())
                .and_then(|plan| {
                    invariants::check_postgres(server, &plan, pg, now)
                        .map(|()| plan)
                        .map_err(|v| format!("refused: {v}"))
                }),
            None => Err(format!(
                "no Barman server folder '{}' in {}",
                pg.server_name, cat.url
            )),
        },
        Policy::VeleroPolicy(v) => {
            let all = cat.velero.as_deref().unwrap_or_default();
            let plan = retention::velero::plan(all, v, &cat.url, now, args.grace.0);
            invariants::check_velero(all, &plan, v)
                .map(|()| plan)
                .map_err(|e| format!("refused: {e}"))
        }
    };
    r.plan_seconds = started.elapsed().as_secs_f64();
    match planned {
        Ok(plan) => {
            if args.apply {
                r.applied = Some(apply(store.as_ref(), &plan, concurrency).await?);
            }
            r.plan = Some(plan);
        }
        Err(why) => r.refused = Some(why),
    }
    Ok(r)
}

async fn apply(
    store: &dyn ObjectStore,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<Summary> {
    let started = std::time::Instant::now();
    let progress = report::progress(&format!("{}: deleting", plan.policy));
    let done = retention::execute::execute(store, plan, concurrency, progress.as_ref()).await;
    progress.finish();
    Ok(Summary {
        seconds: started.elapsed().as_secs_f64(),
        ..done?
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
