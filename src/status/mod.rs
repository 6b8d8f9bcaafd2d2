//! `openova status`: judges each policy against what the object store holds. Pure: takes a
//! loaded [`StorageCatalog`], a policy and `now`, returns violations, each one line saying what
//! is wrong and since when. Owns the JSON shape `openova.status/v1` (see README); the checks of
//! each kind of policy are in `velero` and `postgres`. [`judge`] reads no store; [`read::judge_all`]
//! reads each storage once and judges its policies. Nothing here prints (`cli::status` does).

mod postgres;
pub mod read;
mod velero;

use crate::catalog::StorageCatalog;
use crate::policy::{Policy, Schedule};
pub use crate::wal::horizon::TimelineTransaction;
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
    /// PostgreSQL: the last transaction the archive holds on each timeline, read from its newest
    /// segments ([`read::judge_all`] fills it; empty for Velero).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_transactions: Vec<TimelineTransaction>,
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
        last_transactions: Vec::new(),
    };
    match policy {
        Policy::VeleroPolicy(p) => velero::judge(p, &policy.schedule(), storage, now, &mut s),
        Policy::PostgresPolicy(p) => postgres::judge(p, &policy.schedule(), storage, now, &mut s),
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
