//! PostgreSQL retention with the semantics of Barman's `RECOVERY WINDOW OF N DAYS` (what CNPG's
//! `retentionPolicy: "7d"` runs), so that every point of the window stays restorable.
//!
//! Walking DONE backups from the newest id to the oldest (as Barman does), each is kept until the
//! first one that ended before the point of recoverability (now − window), which is kept too: it
//! is the base for the start of the window. Older DONE backups go, unless keep-annotated or needed
//! for `minimumRedundancy`. Where openova differs from Barman on purpose:
//! - FAILED backups that began before the window go (Barman never deletes them, so they pile up);
//! - data without `backup.info` older than the grace period goes as an orphan (a deletion that
//!   died half-way, since openova deletes `backup.info` first; or a backup that never finished).
//!
//! WAL: on each timeline, segments older than the `begin_wal` of the oldest kept backup (keep
//! `standalone` backups do not count, they only protect their own `begin_wal..end_wal`) go;
//! timelines older than every kept backup go whole; `.history` files always stay.

use super::{Deletion, Kept, Keys, Plan, PlanError, What, day};
use crate::barman::runs::Run;
use crate::barman::wal::{self, WalFile};
use crate::barman::{BackupStatus, BaseBackup, ServerCatalog};
use crate::policy::PostgresPolicy;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;

/// Plans the deletions for one server.
pub fn plan(
    cat: &ServerCatalog,
    policy: &PostgresPolicy,
    storage: &str,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Result<Plan, PlanError> {
    if let Some(b) = cat.backups.iter().find(|b| b.unreadable.is_some()) {
        let why = b.unreadable.clone().unwrap_or_default();
        return Err(PlanError::Unreadable {
            policy: policy.name.clone(),
            what: format!("base backup {}", b.id),
            why,
        });
    }
    let por = now - policy.recovery_window.0;
    let mut plan = Plan::new(&policy.name, storage, now);
    let keep = classify(cat, policy, por, &mut plan);
    let kept = |id: &str| {
        keep.iter()
            .find(|(k, _)| *k == id)
            .map(|(_, anchor)| *anchor)
    };
    for b in cat.backups.iter().filter(|b| kept(&b.id).is_none()) {
        if let Some(d) = backup_deletion(b, policy, por, now, grace) {
            plan.deletions.push(d);
        }
    }
    plan.deletions.sort_by(|a, b| a.name.cmp(&b.name));
    let (anchors, standalone): (Vec<&BaseBackup>, Vec<&BaseBackup>) = cat
        .backups
        .iter()
        .filter(|b| kept(&b.id).is_some())
        .partition(|b| kept(&b.id) == Some(true));
    plan.deletions
        .extend(wal_deletions(cat, &anchors, &standalone, &policy.name));
    Ok(plan)
}

/// The ids of the DONE backups that stay, as Barman's recovery-window report classifies them.
fn classify<'a>(
    cat: &'a ServerCatalog,
    policy: &PostgresPolicy,
    por: DateTime<Utc>,
    plan: &mut Plan,
) -> Vec<(&'a str, bool)> {
    let (mut keep, mut found, mut valid) = (Vec::new(), false, 0u32);
    // DONE with its data: a DONE backup whose data.tar is gone cannot be a base (status reports it).
    let mut done: Vec<&BaseBackup> = cat.backups.iter().filter(|b| b.is_done()).collect();
    done.sort_by(|a, b| b.id.cmp(&a.id));
    for b in done {
        let end = b.info.as_ref().and_then(|i| i.end_time);
        // The bool says whether the backup anchors WAL: all do but one kept only for a
        // keep:standalone annotation, which needs just its own begin_wal..end_wal.
        if !found {
            keep.push((b.id.as_str(), true));
            valid += 1;
            if end.is_none_or(|e| e < por) {
                found = true;
                let reason = format!(
                    "the newest backup that ended before the window start {}: the base for the window's start",
                    day(por)
                );
                plan.kept.push(Kept {
                    name: b.id.clone(),
                    reason,
                });
            }
        } else if valid < policy.minimum_redundancy {
            keep.push((b.id.as_str(), true));
            valid += 1;
            let reason = format!("minimumRedundancy {}", policy.minimum_redundancy);
            plan.kept.push(Kept {
                name: b.id.clone(),
                reason,
            });
        } else if let Some(k) = &b.keep {
            keep.push((b.id.as_str(), k != "standalone"));
            plan.kept.push(Kept {
                name: b.id.clone(),
                reason: format!("keep annotation ({k})"),
            });
        }
    }
    keep
}

fn backup_deletion(
    b: &BaseBackup,
    policy: &PostgresPolicy,
    por: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Option<Deletion> {
    let info = b.info.as_ref();
    let reason = match (info.map(|i| i.status), info) {
        // DONE but its data is gone: useless as a base; removed like a FAILED one, once old.
        (Some(BackupStatus::Done), Some(i)) if !b.has_data => {
            if i.end_time.is_none_or(|e| e >= por) {
                return None;
            }
            format!(
                "DONE but its data.tar is missing; ended {}, before the window start {}",
                i.end_time.map_or("-".into(), day),
                day(por)
            )
        }
        (Some(BackupStatus::Done), Some(i)) => format!(
            "ended {}, {} days old, before the window start {} (policy {} recoveryWindow {}); a newer backup is the window's base",
            i.end_time.map_or("-".into(), day),
            i.end_time.map_or(0, |e| (now - e).num_days()),
            day(por),
            policy.name,
            policy.recovery_window
        ),
        (Some(BackupStatus::Failed), Some(i)) if i.begin_time.is_some_and(|t| t < por) => {
            format!(
                "FAILED backup begun {}, before the window start {}",
                i.begin_time.map_or("-".into(), day),
                day(por)
            )
        }
        (None, None) => {
            let last = b.objects.iter().filter_map(|o| o.last_modified).max()?;
            if now - last <= grace {
                return None;
            }
            let reason = format!(
                "objects without backup.info, last written {} (older than the {}h grace period)",
                day(last),
                grace.num_hours()
            );
            return Some(Deletion {
                what: What::Orphan,
                name: b.id.clone(),
                reason,
                keys: sorted_keys(b, "").into(),
                bytes: b.size,
            });
        }
        _ => return None,
    };
    let descriptor = b
        .objects
        .iter()
        .find(|o| o.key.ends_with("/backup.info"))
        .map(|o| o.key.clone())
        .unwrap_or_default();
    Some(Deletion {
        what: What::BarmanBackup,
        name: b.id.clone(),
        reason,
        keys: sorted_keys(b, &descriptor).into(),
        bytes: b.size,
    })
}

/// The backup's keys with the descriptor first.
fn sorted_keys(b: &BaseBackup, descriptor: &str) -> Vec<String> {
    let mut keys: Vec<String> = b
        .objects
        .iter()
        .map(|o| o.key.clone())
        .filter(|k| k != descriptor)
        .collect();
    keys.sort();
    if !descriptor.is_empty() {
        keys.insert(0, descriptor.to_string());
    }
    keys
}

/// WAL below the oldest kept anchor on each timeline, whole older timelines, never `.history`.
fn wal_deletions(
    cat: &ServerCatalog,
    anchors: &[&BaseBackup],
    standalone: &[&BaseBackup],
    policy: &str,
) -> Vec<Deletion> {
    let pos = |name: &Option<String>| name.as_deref().and_then(|n| cat.position(n));
    let anchors: Vec<(u32, u64)> = anchors
        .iter()
        .filter_map(|b| pos(&b.info.as_ref()?.begin_wal))
        .collect();
    let protected: Vec<((u32, u64), (u32, u64))> = standalone
        .iter()
        .filter_map(|b| {
            Some((
                pos(&b.info.as_ref()?.begin_wal)?,
                pos(&b.info.as_ref()?.end_wal)?,
            ))
        })
        .collect();
    let Some(oldest_tl) = anchors.iter().map(|a| a.0).min() else {
        return vec![];
    };
    // A kept backup on an ancestor timeline replays through the switch into `tl`: then all of
    // `tl` (which starts at the switch point) is needed, whatever backups `tl` has itself.
    let replayed_into = |tl: u32| {
        cat.timelines.get(&tl).is_some_and(|t| {
            t.history
                .iter()
                .any(|h| anchors.iter().any(|a| a.0 == h.parent))
        })
    };
    // Everything on timeline `tl` below this position may go.
    let horizon = |tl: u32| -> u64 {
        if replayed_into(tl) {
            return 0;
        }
        match anchors.iter().filter(|a| a.0 == tl).map(|a| a.1).min() {
            Some(p) => p,
            None if tl < oldest_tl => u64::MAX,
            None => 0,
        }
    };
    let mut horizons = std::collections::BTreeMap::new();
    let mut goes = |tl: u32, p: u64| {
        p < *horizons.entry(tl).or_insert_with(|| horizon(tl))
            && !protected
                .iter()
                .any(|(a, b)| (tl, p) >= *a && (tl, p) <= *b)
    };
    // Runs are cut where every backup's WAL begins and after where it ends (see `barman::runs`),
    // which are the only places where `goes` changes: a run goes whole or stays whole.
    let mut going: BTreeMap<u32, (Vec<&Run>, Vec<Odd>)> = BTreeMap::new();
    for t in cat.timelines.values() {
        let runs = t.runs.iter().filter(|r| goes(t.id, r.first));
        going.entry(t.id).or_default().0.extend(runs);
    }
    for o in &cat.other_wal_files {
        let name = o.key.rsplit('/').next().unwrap_or_default();
        if let Some(f) = WalFile::parse(name).filter(|f| f.kind != wal::WalKind::History) {
            let p = wal::seg_no(f.log, f.seg, cat.segment_size);
            if goes(f.timeline, p) {
                going
                    .entry(f.timeline)
                    .or_default()
                    .1
                    .push((p, &o.key, o.size));
            }
        }
    }
    going
        .into_iter()
        .filter_map(|(tl, (runs, mut odd))| {
            odd.sort_unstable();
            wal_deletion(cat, tl, &runs, &odd, policy)
        })
        .collect()
}

/// A `.backup` or `.partial` file (or another non-segment name of a position): position, key, size.
type Odd<'a> = (u64, &'a String, u64);

/// One deletion for a timeline: its going runs and odd files, in key order (position, then key),
/// named by its first and last position.
fn wal_deletion(
    cat: &ServerCatalog,
    tl: u32,
    runs: &[&Run],
    odd: &[Odd<'_>],
    policy: &str,
) -> Option<Deletion> {
    let mut keys = Keys::default();
    let mut bytes = 0;
    let mut ends: Option<(u64, u64)> = None;
    let mut mark = |a: u64, b: u64| ends = Some(ends.map_or((a, b), |(f, _)| (f, b)));
    let mut odd = odd.iter().peekable();
    for run in runs {
        bytes += run.bytes;
        let mut a = run.first;
        while let Some((p, key, size)) = odd.next_if(|o| o.0 <= run.last) {
            bytes += size;
            if *p < a {
                keys.push((*key).clone());
                mark(*p, *p);
                continue;
            }
            if *p > a {
                keys.push_segments(&cat.keys, tl, a, p - 1, &run.shape);
                mark(a, p - 1);
            }
            mark(*p, *p);
            // Files of a position inside the run go where their keys sort among the segment's.
            let seg = cat.keys.key(tl, *p, &run.shape);
            if key.as_str() < seg.as_str() {
                keys.push((*key).clone());
                while let Some((_, k, s)) =
                    odd.next_if(|o| o.0 == *p && o.1.as_str() < seg.as_str())
                {
                    bytes += s;
                    keys.push((*k).clone());
                }
                keys.push_segments(&cat.keys, tl, *p, *p, &run.shape);
            } else {
                keys.push_segments(&cat.keys, tl, *p, *p, &run.shape);
                keys.push((*key).clone());
            }
            a = p + 1;
        }
        keys.push_segments(&cat.keys, tl, a, run.last, &run.shape);
        if a <= run.last {
            mark(a, run.last);
        }
    }
    for (p, key, size) in odd {
        bytes += size;
        keys.push((*key).clone());
        mark(*p, *p);
    }
    let (first, last) = ends?;
    let mut name = wal::name_of(tl, first, cat.segment_size);
    if keys.len() > 1 {
        name = format!("{name} .. {}", wal::name_of(tl, last, cat.segment_size));
    }
    Some(Deletion {
        what: What::Wal,
        name,
        reason: format!(
            "timeline {tl}: older than the oldest kept backup's begin_wal (policy {policy})"
        ),
        keys,
        bytes,
    })
}
