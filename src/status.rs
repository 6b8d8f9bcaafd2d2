//! `openova status`: judges each policy against what the object store holds. Pure: takes a
//! loaded [`StorageCatalog`], a policy and `now`, returns violations, each one line saying what
//! is wrong and since when. Owns the JSON shape `openova.status/v1` (see README).

use crate::barman::{BackupStatus, ServerCatalog, Window};
use crate::catalog::StorageCatalog;
use crate::policy::duration::human;
use crate::policy::{Policy, PostgresPolicy, Schedule, VeleroPolicy};
use crate::velero::velero_backups_of;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

pub const SCHEMA: &str = "openova.status/v1";

/// A scheduled run counts as missed only once this long has passed since it was due.
pub const SCHEDULE_GRACE: TimeDelta = TimeDelta::hours(1);
/// A backup with no final state after this long is reported as stuck or abandoned.
pub const STUCK_AFTER: TimeDelta = TimeDelta::hours(24);

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Stable identifier: `no-backup`, `schedule-missed`, `rpo`, `window`, `wal-gap`,
    /// `failed-backup`, `unreadable`, `incomplete-backup`, `unrestorable-backup`.
    pub code: &'static str,
    pub message: String,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewestBackup {
    pub id: String,
    pub time: DateTime<Utc>,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub name: String,
    pub kind: &'static str,
    pub storage: String,
    pub ok: bool,
    pub newest_backup: Option<NewestBackup>,
    pub window: Option<WindowSummary>,
    pub violations: Vec<Violation>,
    /// Set when the storage could not be read at all; the policy is then not judged.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowSummary {
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub newest_wal: Option<String>,
}

fn v(code: &'static str, message: String, since: Option<DateTime<Utc>>) -> Violation {
    Violation {
        code,
        message,
        since,
    }
}

/// Judges one policy against the catalog of its storage.
#[must_use]
pub fn judge(policy: &Policy, storage: &StorageCatalog, now: DateTime<Utc>) -> PolicyStatus {
    let mut s = PolicyStatus {
        name: policy.name().to_string(),
        kind: policy.kind(),
        storage: storage.url.clone(),
        ok: true,
        newest_backup: None,
        window: None,
        violations: Vec::new(),
        error: None,
    };
    match policy {
        Policy::VeleroPolicy(p) => judge_velero(p, &policy.schedule(), storage, now, &mut s),
        Policy::PostgresPolicy(p) => judge_postgres(p, &policy.schedule(), storage, now, &mut s),
    }
    s.ok = s.violations.is_empty();
    s
}

/// The newest good backup against the schedule: a run due at least [`SCHEDULE_GRACE`] ago must
/// have produced a backup that started at or after it was due.
fn check_schedule(
    schedule: &Schedule,
    newest_start: DateTime<Utc>,
    now: DateTime<Utc>,
    out: &mut Vec<Violation>,
) {
    let Some(due) = schedule.previous(now - SCHEDULE_GRACE) else {
        return;
    };
    // Allow a little clock skew between the scheduler and the machine that took the backup.
    if newest_start < due - TimeDelta::minutes(5) {
        let msg = format!(
            "scheduled backup due {} (schedule \"{}\") did not produce a good backup; newest good one started {}",
            crate::report::time(due),
            schedule.expr(),
            crate::report::time(newest_start)
        );
        out.push(v("schedule-missed", msg, Some(due + SCHEDULE_GRACE)));
    }
}

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

fn judge_velero(
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

fn judge_postgres(
    p: &PostgresPolicy,
    schedule: &Schedule,
    storage: &StorageCatalog,
    now: DateTime<Utc>,
    s: &mut PolicyStatus,
) {
    let Some((cat, window)) = storage
        .barman
        .iter()
        .find(|(c, _)| c.server == p.server_name)
    else {
        let msg = format!(
            "no Barman server folder '{}' in {}",
            p.server_name, storage.url
        );
        s.violations.push(v("no-backup", msg, None));
        return;
    };
    let newest_wal = cat.newest_segment();
    s.window = Some(WindowSummary {
        earliest: window.earliest,
        latest: window.latest,
        newest_wal: newest_wal.map(|w| w.name.clone()),
    });
    let out = &mut s.violations;
    backup_problems(cat, window, now, out);
    let newest = cat
        .backups
        .iter()
        .filter(|b| b.is_done())
        .filter_map(|b| Some((b, b.info.as_ref()?)))
        .filter_map(|(b, i)| Some((b, i.begin_time?, i.end_time?)))
        .max_by_key(|(_, begin, _)| *begin);
    let Some((good, begin, end)) = newest else {
        out.push(v(
            "no-backup",
            format!(
                "no DONE base backup of server {} in {}",
                p.server_name, storage.url
            ),
            None,
        ));
        return;
    };
    s.newest_backup = Some(NewestBackup {
        id: good.id.clone(),
        time: end,
        age_seconds: (now - end).num_seconds(),
    });
    check_schedule(schedule, begin, now, out);
    match newest_wal.and_then(|w| Some((w, w.archived?))) {
        Some((w, at)) if now - at > p.rpo.0 => {
            let msg = format!(
                "newest archived WAL {} is {} old (rpo {})",
                w.name,
                human(now - at),
                p.rpo
            );
            out.push(v("rpo", msg, Some(at + p.rpo.0)));
        }
        Some(_) => {}
        None => out.push(v(
            "rpo",
            format!("no archived WAL for server {}", p.server_name),
            None,
        )),
    }
    let (from, to) = (now - p.recovery_window.0, now - p.rpo.0);
    if !window.covers(from, to) {
        let have = match (window.earliest, window.latest) {
            (Some(a), Some(b)) => format!(
                "restorable {} .. {}",
                crate::report::time(a),
                crate::report::time(b)
            ),
            _ => "nothing is restorable".to_string(),
        };
        let msg = format!(
            "recovery window does not cover {} .. {} (recoveryWindow {}, rpo {}): {have}",
            crate::report::time(from),
            crate::report::time(to),
            p.recovery_window,
            p.rpo
        );
        // Say why when WAL gaps break the window, so the two lines read as one problem.
        let msg = if window.gaps.is_empty() {
            msg
        } else {
            format!("{msg}; broken by the WAL gap(s) reported above")
        };
        out.push(v("window", msg, None));
    }
    for b in cat
        .backups
        .iter()
        .filter(|b| b.status() == Some(BackupStatus::Failed))
    {
        if b.info
            .as_ref()
            .and_then(|i| i.begin_time)
            .is_some_and(|t| t > begin)
        {
            let err = b
                .info
                .as_ref()
                .and_then(|i| i.error.clone())
                .unwrap_or_default();
            out.push(v(
                "failed-backup",
                format!("base backup {} FAILED: {err}", b.id),
                b.info.as_ref().and_then(|i| i.end_time.or(i.begin_time)),
            ));
        }
    }
}

/// Unreadable, abandoned and unrestorable backups, and WAL gaps.
fn backup_problems(
    cat: &ServerCatalog,
    window: &Window,
    now: DateTime<Utc>,
    out: &mut Vec<Violation>,
) {
    for b in &cat.backups {
        if let Some(why) = &b.unreadable {
            out.push(v(
                "unreadable",
                format!("base backup {}: {why}", b.id),
                None,
            ));
        }
        let last_write = b.objects.iter().filter_map(|o| o.last_modified).max();
        if b.in_progress() && last_write.is_some_and(|t| now - t > STUCK_AFTER) {
            let msg = format!(
                "base backup {} has data but no backup.info (abandoned mid-way?)",
                b.id
            );
            out.push(v("incomplete-backup", msg, last_write));
        }
        if b.status() == Some(BackupStatus::Done) && !b.has_data {
            out.push(v(
                "unrestorable-backup",
                format!("base backup {} is DONE but its data.tar is missing", b.id),
                None,
            ));
        }
    }
    for u in &window.unrestorable {
        out.push(v(
            "unrestorable-backup",
            format!(
                "base backup {} cannot be restored: {}",
                u.backup_id, u.reason
            ),
            None,
        ));
    }
    for g in &window.gaps {
        let what = if g.count == 1 {
            format!(
                "WAL gap on timeline {}: segment {} is missing",
                g.timeline, g.first_missing
            )
        } else {
            format!(
                "WAL gap on timeline {}: {} segments {} .. {} are missing",
                g.timeline, g.count, g.first_missing, g.last_missing
            )
        };
        out.push(v("wal-gap", what, g.since));
    }
    for p in &cat.problems {
        out.push(v("unreadable", p.clone(), None));
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
