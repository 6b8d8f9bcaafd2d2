use super::{Outcome, PolicyArgs, StoreArgs, print_json};
use crate::policy;
use crate::report::Output;
use crate::status::{self, PolicyStatus};
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
    let results = status::read::judge_all(&picked, now, usize::from(args.store.concurrency)).await;
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
    for t in &r.last_transactions {
        println!("  {}: timeline {}: {t}", r.name, t.timeline);
    }
    for v in &r.violations {
        let since = v
            .since
            .map(|s| format!(" (since {})", crate::report::time(s)))
            .unwrap_or_default();
        println!("  {}: {}: {}{since}", r.name, v.code, v.message);
    }
}
