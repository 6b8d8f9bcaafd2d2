//! Reading the stores for a status run: policies sharing a storage are judged from one read of it,
//! and a storage that cannot be read gives each of its policies an `error` instead of a judgement.
//! The judging itself stays pure ([`super::judge`]); this is the part that talks to the store.

use super::{PolicyStatus, Violation, judge};
use crate::catalog::{self, Scope, StorageCatalog};
use crate::location::Location;
use crate::policy::PostgresPolicy;
use crate::policy::duration::human;
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
        Ok(s) => match catalog::load(s.as_ref(), &scope, concurrency).await {
            Ok(mut c) => {
                c.read_last_transactions(s.as_ref()).await;
                Ok(c)
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    progress.finish();
    match loaded {
        Ok(cat) => {
            let mut out = Vec::new();
            for p in group {
                let mut s = judge(p, &cat, now);
                if let Policy::PostgresPolicy(pg) = p {
                    s.last_transactions = cat.last_transactions_of(&pg.server_name).to_vec();
                    rpo_to_the_transaction(&mut s, pg, now);
                }
                out.push(s);
            }
            out
        }
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
            last_transactions: std::collections::BTreeMap::new(),
        },
        Utc::now(),
    );
    s.ok = false;
    s.violations.clear();
    s.error = Some(e.to_string());
    s
}

/// RPO to the transaction: when the newest timeline's newest segment holds its last transaction (a
/// database that commits), what is safe ends at that transaction, and the RPO is measured against it
/// rather than the segment's archive time. When the newest segments hold no transaction (a quiet
/// database switching segments on archive_timeout), nothing was committed after the last one up to
/// the newest segment, so the archive time stays the measure.
fn rpo_to_the_transaction(s: &mut PolicyStatus, p: &PostgresPolicy, now: DateTime<Utc>) {
    let Some(last) = s.last_transactions.iter().max_by_key(|t| t.timeline) else {
        return;
    };
    let (Some(time), Some(segment)) = (last.time, last.segment.as_ref()) else {
        return;
    };
    if *segment != last.newest_segment {
        return;
    }
    let what = if last.committed == Some(true) {
        "commit"
    } else {
        "abort"
    };
    s.violations.retain(|v| v.code != "rpo");
    if now - time > p.rpo.0 {
        s.violations.push(Violation {
            code: "rpo",
            message: format!(
                "the archive's last transaction ({what} at {}, timeline {}) is {} old (rpo {})",
                report::time(time),
                last.timeline,
                human(now - time),
                p.rpo
            ),
            since: Some(time + p.rpo.0),
        });
    }
    s.ok = s.violations.is_empty() && s.error.is_none();
}
