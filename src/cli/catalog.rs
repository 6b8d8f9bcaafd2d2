use super::{Outcome, PolicyArgs, StoreArgs, print_json};
use crate::catalog::{self, Scope, StorageCatalog};
use crate::location::Location;
use crate::policy::Request;
use crate::report::{self, Output};
use crate::store;
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Read this storage URL (s3://BUCKET/PREFIX or file:///PATH) instead of the policies' storages.
    #[arg(long)]
    pub storage: Option<String>,
    /// S3 endpoint for --storage (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long, requires = "storage")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub policies: PolicyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The storages to read: `--storage`, or every distinct storage of the policies.
pub fn targets(args: &CatalogArgs) -> anyhow::Result<Vec<Location>> {
    let request = Request {
        storage: args.storage.as_deref(),
        endpoint: args.endpoint.as_deref(),
        policy: args.policies.policy.as_deref(),
        policies: &args.policies.policies,
    };
    Ok(request.every()?)
}

pub async fn run(args: CatalogArgs, output: Output) -> anyhow::Result<Outcome> {
    let concurrency = usize::from(args.store.concurrency);
    let mut catalogs = Vec::new();
    for Location { url, conn } in targets(&args)? {
        let progress = report::progress(&format!("listing {url}"));
        let store = store::open(&url, &conn).await?;
        let loaded = catalog::load(store.as_ref(), &Scope::everything(), concurrency).await;
        let mut loaded = loaded.with_context(|| format!("reading the catalog of {url}"));
        if let Ok(c) = &mut loaded {
            progress.message(&format!("reading the newest WAL of {url}"));
            c.read_last_transactions(store.as_ref()).await;
        }
        progress.finish();
        catalogs.push(loaded?);
    }
    match output {
        Output::Json => {
            let storages: Vec<_> = catalogs.iter().map(StorageCatalog::view).collect();
            print_json(&serde_json::json!({
                "schema": catalog::SCHEMA,
                "generated_at": Utc::now(),
                "storages": storages,
            }))?;
        }
        Output::Text => catalogs.iter().for_each(print_text),
    }
    Ok(Outcome::Ok)
}

fn t(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(
        || "-".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn print_text(c: &StorageCatalog) {
    println!("{}", c.url);
    if c.velero.is_none() && c.barman.is_empty() {
        println!("  no Velero backups and no Barman server folders here");
    }
    for (cat, w) in &c.barman {
        let view = catalog::ServerView::of(cat, w, c.last_transactions_of(&cat.server));
        println!(
            "  barman server {}: {} base backup(s), {} WAL segments",
            cat.server,
            cat.backups.len(),
            view.wal.segments
        );
        println!(
            "    {:<17} {:<11} {:<19}  {:<19}  {:<24} {:<24} {:>12}",
            "BACKUP", "STATUS", "BEGIN (UTC)", "END (UTC)", "BEGIN WAL", "END WAL", "BYTES"
        );
        for b in &view.backups {
            let keep = b.keep.map(|k| format!(" keep:{k}")).unwrap_or_default();
            println!(
                "    {:<17} {:<11} {:<19}  {:<19}  {:<24} {:<24} {:>12}{keep}",
                b.id,
                b.status,
                t(b.begin_time),
                t(b.end_time),
                b.begin_wal.unwrap_or("-"),
                b.end_wal.unwrap_or("-"),
                b.size
            );
            if let Some(e) = b.error {
                println!("      error: {e}");
            }
        }
        for tl in &view.wal.timelines {
            println!(
                "    WAL timeline {}: {} .. {} ({} segments), newest archived {}",
                tl.timeline,
                tl.first.as_deref().unwrap_or("-"),
                tl.last.as_deref().unwrap_or("-"),
                tl.segments,
                t(tl.newest_archived)
            );
            if let Some(l) = &tl.last_transaction {
                println!("      {l}");
            }
        }
        match (w.earliest, w.latest) {
            (Some(a), Some(b)) => println!(
                "    recoverable window: {} .. {} (UTC)",
                t(Some(a)),
                t(Some(b))
            ),
            _ => println!("    recoverable window: none (no DONE backup with its WAL)"),
        }
        for g in &w.gaps {
            match g.count {
                1 => println!("    WAL gap: {} missing", g.first_missing),
                n => println!(
                    "    WAL gap: {} .. {} ({n} missing)",
                    g.first_missing, g.last_missing
                ),
            }
        }
        for u in &w.unrestorable {
            println!("    not restorable: {}: {}", u.backup_id, u.reason);
        }
    }
    if let Some(velero) = &c.velero {
        println!("  velero: {} backups", velero.len());
        println!(
            "    {:<40} {:<16} {:<19}  {:<19}  {:<19}  {:>6} {:>6}",
            "NAME", "PHASE", "STARTED (UTC)", "COMPLETED (UTC)", "EXPIRES (UTC)", "ITEMS", "ERRORS"
        );
        for b in velero {
            println!(
                "    {:<40} {:<16} {:<19}  {:<19}  {:<19}  {:>6} {:>6}",
                b.name,
                b.phase.as_deref().unwrap_or("-"),
                t(b.start),
                t(b.completion),
                t(b.expiration),
                b.items_backed_up.map_or("-".into(), |n| n.to_string()),
                b.errors
            );
            if let Some(u) = &b.unreadable {
                println!("      unreadable: {u}");
            }
            if !b.missing.is_empty() {
                println!("      missing: {}", b.missing.join(", "));
            }
        }
    }
}
