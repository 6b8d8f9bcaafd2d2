//! Judging a PostgresPolicy: the newest DONE base backup against the schedule, the newest
//! archived WAL against the RPO, the recoverable window against recoveryWindow, and the
//! server's unreadable, abandoned, unrestorable and failed backups and WAL gaps.

use super::{NewestBackup, PolicyStatus, STUCK_AFTER, Violation, WindowSummary, check_schedule, v};
use crate::barman::{BackupStatus, ServerCatalog, Window};
use crate::catalog::StorageCatalog;
use crate::policy::duration::human;
use crate::policy::{PostgresPolicy, Schedule};
use chrono::{DateTime, Utc};

pub(super) fn judge(
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
        newest_wal: newest_wal.as_ref().map(|w| w.name.clone()),
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
    match newest_wal.as_ref().and_then(|w| Some((w, w.archived?))) {
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
