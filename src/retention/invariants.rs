//! The checks a plan must pass before anything is deleted: apply it to a copy of the catalog,
//! recompute, and compare. The recoverable window must still cover everything it covered inside
//! `[now − recoveryWindow, newest WAL]`, no WAL gap may appear, and the newest good backup of every
//! policy must stay.

use super::Plan;
use crate::barman::wal::{WalFile, WalKind};
use crate::barman::{self, ServerCatalog};
use crate::policy::{PostgresPolicy, VeleroPolicy};
use crate::velero::VeleroBackup;
use crate::velero::velero_backups_of;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    #[error("the recoverable window would no longer cover {from} .. {to}")]
    Window {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("a new WAL gap would appear on timeline {timeline}: {first} .. {last}")]
    NewGap {
        timeline: u32,
        first: String,
        last: String,
    },
    #[error("the newest good backup {0} would be deleted")]
    NewestGood(String),
}

/// The catalog as it would be once the plan's keys are gone. A backup whose descriptor or data
/// goes leaves the catalog.
#[must_use]
pub fn apply(cat: &ServerCatalog, plan: &Plan) -> ServerCatalog {
    let mut gone: HashSet<&str> = HashSet::new();
    // WAL positions that go, by timeline: the plan's runs, and any key naming a segment.
    let mut spans: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for d in &plan.deletions {
        let (keys, runs) = d.keys.parts();
        gone.extend(keys);
        for (tl, a, b) in runs {
            spans.entry(tl).or_default().push((a, b));
        }
    }
    for key in &gone {
        if let Some((tl, p)) = segment_at(cat, key) {
            spans.entry(tl).or_default().push((p, p));
        }
    }
    let timelines = cat
        .timelines
        .iter()
        .map(|(id, t)| {
            let mut runs = t.runs.clone();
            for (a, b) in spans.get(id).into_iter().flatten() {
                runs = barman::runs::without(&runs, *a, *b);
            }
            let t = barman::catalog::Timeline {
                id: t.id,
                runs,
                history: t.history.clone(),
            };
            (*id, t)
        })
        .filter(|(_, t)| !t.runs.is_empty() || !t.history.is_empty())
        .collect();
    ServerCatalog {
        server: cat.server.clone(),
        segment_size: cat.segment_size,
        backups: cat
            .backups
            .iter()
            .filter(|b| !b.objects.iter().any(|o| gone.contains(o.key.as_str())))
            .cloned()
            .collect(),
        timelines,
        keys: cat.keys.clone(),
        other_wal_files: cat
            .other_wal_files
            .iter()
            .filter(|o| !gone.contains(o.key.as_str()))
            .cloned()
            .collect(),
        problems: cat.problems.clone(),
    }
}

/// The timeline and position of the archived segment whose key is `key`, if one is.
fn segment_at(cat: &ServerCatalog, key: &str) -> Option<(u32, u64)> {
    let name = key.rsplit('/').next()?;
    let f = WalFile::parse(name).filter(|f| f.kind == WalKind::Segment)?;
    let p = barman::wal::seg_no(f.log, f.seg, cat.segment_size);
    let runs = &cat.timelines.get(&f.timeline)?.runs;
    let run = runs.get(runs.partition_point(|r| r.last < p))?;
    (run.first <= p && cat.keys.key(f.timeline, p, &run.shape) == key).then_some((f.timeline, p))
}

/// Checks a PostgreSQL plan; the error names the first broken invariant.
pub fn check_postgres(
    cat: &ServerCatalog,
    plan: &Plan,
    policy: &PostgresPolicy,
    now: DateTime<Utc>,
) -> Result<(), Violation> {
    let after = apply(cat, plan);
    let (before_w, after_w) = (barman::analyse(cat), barman::analyse(&after));
    let horizon = now - policy.recovery_window.0;
    for (from, to) in barman::window::merged(&before_w.ranges) {
        if to < horizon {
            continue;
        }
        let from = from.max(horizon);
        if !after_w.covers(from, to) {
            return Err(Violation::Window { from, to });
        }
    }
    for g in &after_w.gaps {
        let span = |first: &str, last: &str| Some((cat.position(first)?.1, cat.position(last)?.1));
        let Some((a, b)) = span(&g.first_missing, &g.last_missing) else {
            continue;
        };
        let old = before_w
            .gaps
            .iter()
            .filter(|o| o.timeline == g.timeline)
            .filter_map(|o| span(&o.first_missing, &o.last_missing));
        if !old.clone().any(|(oa, ob)| oa <= a && b <= ob) {
            return Err(Violation::NewGap {
                timeline: g.timeline,
                first: g.first_missing.clone(),
                last: g.last_missing.clone(),
            });
        }
    }
    let newest = |c: &ServerCatalog| {
        c.backups
            .iter()
            .filter(|b| b.is_done())
            .max_by_key(|b| b.info.as_ref().and_then(|i| i.begin_time))
            .map(|b| b.id.clone())
    };
    match newest(cat) {
        Some(id) if !after.backups.iter().any(|b| b.id == id) => Err(Violation::NewestGood(id)),
        _ => Ok(()),
    }
}

/// Checks a Velero plan: the policy's newest Completed backup stays.
pub fn check_velero(
    all: &[VeleroBackup],
    plan: &Plan,
    policy: &VeleroPolicy,
) -> Result<(), Violation> {
    let newest = velero_backups_of(&policy.name, all)
        .into_iter()
        .filter(|b| b.is_completed())
        .max_by_key(|b| b.start);
    match newest {
        Some(b) if plan.deletions.iter().any(|d| d.name == b.name) => {
            Err(Violation::NewestGood(b.name.clone()))
        }
        _ => Ok(()),
    }
}
