//! Reading the stores for a status run: policies sharing a storage are judged from one read of it,
//! and a storage that cannot be read gives each of its policies an `error` instead of a judgement.
//! The judging itself stays pure ([`super::judge`]); this is the part that talks to the store.

use super::{PolicyStatus, judge};
use crate::catalog::{self, Scope, StorageCatalog};
use crate::location::Location;
use crate::policy::{Loaded, Policy, source};
use crate::report;
use crate::store;
use chrono::{DateTime, Utc};

/// Judges every policy of `picked` as of `now`, reading each storage once.
pub async fn judge_all(
    picked: &[Loaded],
    now: DateTime<Utc>,
    concurrency: usize,
) -> Vec<PolicyStatus> {
    let mut results = Vec::new();
    for (at, group) in source::by_location(picked) {
        results.extend(judge_group(&at, &group, now, concurrency).await);
    }
    results
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
        Ok(cat) => group.iter().map(|p| judge(p, &cat, now)).collect(),
        Err(e) => group
            .iter()
            .map(|p| errored(p, &url.to_string(), &e))
            .collect(),
    }
}

fn errored(p: &Policy, url: &str, e: &store::Error) -> PolicyStatus {
    let mut s = judge(
        p,
        &StorageCatalog {
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
