use super::{Outcome, PolicyArgs, StoreArgs, print_json};
use crate::catalog::{self, Scope};
use crate::location::Location;
use crate::policy::{self, Policy, source};
use crate::report::{self, Output};
use crate::status::{self, PolicyStatus};
use crate::store;
use chrono::{DateTime, Utc};
use clap::Args;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub policies: PolicyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Judge as of this time (RFC 3339) instead of now: for drills and reproducing a report.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    crate::restore::postgres::parse_time(s)
}

pub async fn run(args: StatusArgs, output: Output) -> anyhow::Result<Outcome> {
    let now = args.at.unwrap_or_else(Utc::now);
    let picked = policy::select(
        policy::load(&args.policies.policies)?,
        args.policies.policy.as_deref(),
    )?;
    let mut results = Vec::new();
    // Policies sharing a storage are judged from one read of it.
    for (at, group) in source::by_location(&picked) {
        results.extend(judge_group(&at, &group, now, usize::from(args.store.concurrency)).await);
    }
    let outcome = if results.iter().any(|r| r.error.is_some()) {
        Outcome::Error
    } else if results.iter().all(|r| r.ok) {
        Outcome::Ok
    } else {
        Outcome::Violated
    };
    match output {
        Output::Json => print_json(&serde_json::json!({
            "schema": status::SCHEMA,
            "generated_at": now,
            "ok": outcome == Outcome::Ok,
            "policies": results,
        }))?,
        Output::Text => results.iter().for_each(|r| print_text(r, now)),
    }
    Ok(outcome)
}

async fn judge_group(
    at: &Location,
    group: &[&Policy],
    now: DateTime<Utc>,
    concurrency: usize,
) -> Vec<PolicyStatus> {
    let url = &at.url;
    let scope = Scope {
        velero: group.iter().any(|p| matches!(p, Policy::VeleroPolicy(_))),
        servers: Some(
            group
                .iter()
                .filter_map(|p| match p {
                    Policy::PostgresPolicy(pg) => Some(pg.server_name.clone()),
                    Policy::VeleroPolicy(_) => None,
                })
                .collect(),
        ),
    };
    let progress = report::progress(&format!("reading {url}"));
    let loaded = match store::open(url, &at.conn).await {
        Ok(s) => catalog::load(s.as_ref(), &scope, concurrency).await,
        Err(e) => Err(e),
    };
    progress.finish();
    match loaded {
        Ok(cat) => group.iter().map(|p| status::judge(p, &cat, now)).collect(),
        Err(e) => group
            .iter()
            .map(|p| errored(p, &url.to_string(), &e))
            .collect(),
    }
}

fn errored(p: &Policy, url: &str, e: &store::Error) -> PolicyStatus {
    let mut s = status::judge(
        p,
        &catalog::StorageCatalog {
            url: url.to_string(),
            velero: None,
            barman: vec![],
        },
        Utc::now(),
    );
    s.ok = false;
    s.violations.clear();
    s.error = Some(e.to_string());
    s
}

fn print_text(r: &PolicyStatus, now: DateTime<Utc>) {
    let newest = r
        .newest_backup
        .as_ref()
        .map(|b| {
            format!(
                ", newest good backup {} ({} ago)",
                b.id,
                policy::duration::human(now - b.time)
            )
        })
        .unwrap_or_default();
    let window = r
        .window
        .as_ref()
        .and_then(|w| Some((w.earliest?, w.latest?)));
    let window = window.map_or(String::new(), |(a, b)| {
        format!(
            ", restorable {} .. {}",
            crate::report::time(a),
            crate::report::time(b)
        )
    });
    let newest = format!("{newest}{window}");
    match (&r.error, r.ok) {
        (Some(e), _) => println!("ERROR {} ({}): {e}", r.name, r.kind),
        (None, true) => println!("OK    {} ({}){newest}", r.name, r.kind),
        (None, false) => println!("FAIL  {} ({}){newest}", r.name, r.kind),
    }
    for v in &r.violations {
        let since = v
            .since
            .map(|s| format!(" (since {})", crate::report::time(s)))
            .unwrap_or_default();
        println!("  {}: {}: {}{since}", r.name, v.code, v.message);
    }
}
