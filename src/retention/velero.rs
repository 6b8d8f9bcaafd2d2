//! Velero retention: a backup goes once its `status.expiration` (or completion + retention when
//! absent) has passed. Failed and PartiallyFailed backups expire too (Velero's own collector is
//! known to leave them behind), and so does a backup stuck in a non-terminal phase once expired
//! (Velero treats it as PartiallyFailed). The newest Completed backup of the policy is never
//! deleted, whatever its age. A folder without `velero-backup.json` older than the grace period
//! is an orphan. Backups a cluster still knows should be deleted through a DeleteBackupRequest
//! (so Velero also removes their snapshots and kopia data); this planner marks what goes, and the
//! object-store executor removes objects directly, which leaves kopia data of such backups behind.

use super::{Deletion, Kept, Plan, What, day};
use crate::policy::VeleroPolicy;
use crate::velero::VeleroBackup;
use crate::velero::velero_backups_of;
use chrono::{DateTime, TimeDelta, Utc};

pub fn plan(
    all: &[VeleroBackup],
    policy: &VeleroPolicy,
    storage: &str,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Plan {
    let mine = velero_backups_of(&policy.name, all);
    let newest_good = mine
        .iter()
        .filter(|b| b.is_completed())
        .max_by_key(|b| b.start)
        .map(|b| b.name.clone());
    let mut plan = Plan::new(&policy.name, storage, now);
    for b in mine {
        let Some(reason) = reason(b, policy, now, grace) else {
            continue;
        };
        if Some(&b.name) == newest_good.as_ref() {
            plan.kept.push(Kept {
                name: b.name.clone(),
                reason: format!(
                    "the newest Completed backup of policy {} is never deleted ({reason})",
                    policy.name
                ),
            });
            continue;
        }
        let mut keys: Vec<(String, u64)> =
            b.objects.iter().map(|o| (o.key.clone(), o.size)).collect();
        // velero-backup.json first: the backup leaves every catalog before its data goes.
        keys.sort_by_key(|(k, _)| (!k.ends_with("/velero-backup.json"), k.clone()));
        let what = if b.phase.is_none() && b.unreadable.is_none() {
            What::Orphan
        } else {
            What::VeleroBackup
        };
        let bytes = keys.iter().map(|(_, s)| s).sum();
        plan.deletions.push(Deletion {
            what,
            name: b.name.clone(),
            reason,
            keys: keys.into_iter().map(|(k, _)| k).collect::<Vec<_>>().into(),
            bytes,
        });
    }
    plan
}

fn reason(
    b: &VeleroBackup,
    policy: &VeleroPolicy,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Option<String> {
    if b.unreadable.is_some() {
        return None; // cannot know what it is: never deleted, reported by status
    }
    if b.phase.is_none() {
        let last = b.last_write?;
        return (now - last > grace).then(|| format!("objects without velero-backup.json, last written {} (older than the {}h grace period)", day(last), grace.num_hours()));
    }
    let (expires, how) = match (b.expiration, b.completion.or(b.start)) {
        (Some(e), _) => (e, "status.expiration".to_string()),
        (None, Some(t)) => (
            t + policy.retention.0,
            format!("completion + retention {}", policy.retention),
        ),
        (None, None) => return None,
    };
    (expires < now).then(|| {
        let age = b.start.map_or(String::new(), |s| {
            format!(", {} days old", (now - s).num_days())
        });
        format!(
            "{} backup expired {} ({how}){age}, policy {} retention {}",
            b.phase.as_deref().unwrap_or(""),
            day(expires),
            policy.name,
            policy.retention
        )
    })
}
