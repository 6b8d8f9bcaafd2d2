//! Judging a VeleroPolicy: its newest Completed backup against the schedule and the RPO, and
//! its unreadable, incomplete, stuck and failed backups.

use super::{NewestBackup, PolicyStatus, STUCK_AFTER, check_schedule, v};
use crate::catalog::StorageCatalog;
use crate::policy::duration::human;
use crate::policy::{Schedule, VeleroPolicy};
use crate::velero::velero_backups_of;
use chrono::{DateTime, Utc};

/// Whether an unreadable backup (no labels to go by) may belong to policy `name`: its name
/// starts with `NAME-`, or it does not have the shape `SCHEDULE-YYYYMMDDhhmmss` of another
/// schedule's backups (a manual backup could be anyone's).
fn may_be_of(backup: &str, name: &str) -> bool {
    if backup.starts_with(&format!("{name}-")) {
        return true;
    }
    !backup
        .rsplit_once('-')
        .is_some_and(|(_, ts)| ts.len() == 14 && ts.bytes().all(|c| c.is_ascii_digit()))
}

pub(super) fn judge(
    p: &VeleroPolicy,
    schedule: &Schedule,
    storage: &StorageCatalog,
    now: DateTime<Utc>,
    s: &mut PolicyStatus,
) {
    let all = storage.velero.as_deref().unwrap_or_default();
    let mine = velero_backups_of(&p.name, all);
    let out = &mut s.violations;
    for b in all
        .iter()
        .filter(|b| b.unreadable.is_some() && may_be_of(&b.name, &p.name))
    {
        out.push(v(
            "unreadable",
            format!(
                "backup {}: {}",
                b.name,
                b.unreadable.as_deref().unwrap_or("")
            ),
            None,
        ));
    }
    for b in &mine {
        if b.phase.as_deref() == Some("Completed") && !b.missing.is_empty() {
            let msg = format!(
                "backup {} is Completed but {} missing",
                b.name,
                b.missing.join(", ")
            );
            out.push(v("incomplete-backup", msg, b.completion));
        }
        // Without velero-backup.json there is no start time: the objects' last write stands in.
        let began = b.start.or(b.last_write);
        if !b.is_finished()
            && b.unreadable.is_none()
            && began.is_some_and(|t| now - t > STUCK_AFTER)
        {
            let state = b.phase.as_deref().unwrap_or("without velero-backup.json");
            let age = human(now - began.unwrap_or(now));
            let msg = format!("backup {} is still {state} after {age}", b.name);
            out.push(v("incomplete-backup", msg, began.map(|t| t + STUCK_AFTER)));
        }
    }
    let newest = mine
        .iter()
        .filter(|b| b.is_completed())
        .filter_map(|b| Some((b, b.start?, b.completion.or(b.start)?)))
        .max_by_key(|(_, start, _)| *start);
    let Some((good, start, done)) = newest else {
        out.push(v(
            "no-backup",
            format!(
                "no Completed backup of policy {} in {}",
                p.name, storage.url
            ),
            None,
        ));
        return;
    };
    s.newest_backup = Some(NewestBackup {
        id: good.name.clone(),
        time: done,
        age_seconds: (now - done).num_seconds(),
    });
    if now - done > p.rpo.0 {
        let msg = format!(
            "newest Completed backup {} is {} old (rpo {})",
            good.name,
            human(now - done),
            p.rpo
        );
        out.push(v("rpo", msg, Some(done + p.rpo.0)));
    }
    check_schedule(schedule, start, now, out);
    for b in mine
        .iter()
        .filter(|b| b.is_failed() && b.start.is_some_and(|t| t > start))
    {
        let why = b
            .failure_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let msg = format!(
            "backup {} ended {} ({} errors){why}",
            b.name,
            b.phase.as_deref().unwrap_or(""),
            b.errors
        );
        out.push(v("failed-backup", msg, b.completion.or(b.start)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unreadable_backups_go_to_the_schedule_their_name_says() {
        assert!(super::may_be_of(
            "cluster-daily-20261125030000",
            "cluster-daily"
        ));
        assert!(!super::may_be_of(
            "apps-hourly-20261125030000",
            "cluster-daily"
        ));
        assert!(super::may_be_of("before-upgrade", "cluster-daily"));
    }
}
