//! Retention: which backups and WAL may go, and why — planned as plain data, proven safe, then
//! carried out.
//!
//! [`postgres::plan`] and [`velero::plan`] are pure: `(catalog, policy, now) -> Plan`. Every
//! deletion names its reason. [`invariants::check`] applies a plan to a copy of the catalog and
//! recomputes what stays restorable; only a plan that passes goes to [`execute`]. [`run::one`]
//! strings it together for one policy (lease, catalog, plan, checks, deletes). Only `run`, `lease`
//! and the executor touch the store.

pub mod execute;
pub mod invariants;
pub mod keys;
pub mod lease;
pub mod postgres;
pub mod run;
pub mod velero;

pub use keys::Keys;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// Data left without its descriptor is an orphan only after this long: a backup still being
/// written has no `backup.info` / `velero-backup.json` yet either.
pub const DEFAULT_GRACE: TimeDelta = TimeDelta::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    BarmanBackup,
    Wal,
    VeleroBackup,
    /// Objects of a backup whose descriptor is gone (a half-done deletion) or never came.
    Orphan,
}

/// One thing to delete: a backup (descriptor first, then its data), or a run of WAL objects.
#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    pub what: What,
    /// Backup id or name; for WAL, `FIRST .. LAST`.
    pub name: String,
    pub reason: String,
    /// Keys in deletion order. For a backup, the descriptor comes first (see [`execute`]).
    pub keys: Keys,
    pub bytes: u64,
}

/// A backup that stays although it is older than the policy's horizon, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub policy: String,
    pub storage: String,
    pub now: DateTime<Utc>,
    pub deletions: Vec<Deletion>,
    pub kept: Vec<Kept>,
}

impl Plan {
    /// An empty plan for one policy on one storage.
    #[must_use]
    pub fn new(policy: &str, storage: &str, now: DateTime<Utc>) -> Self {
        Self {
            policy: policy.to_string(),
            storage: storage.to_string(),
            now,
            deletions: vec![],
            kept: vec![],
        }
    }

    #[must_use]
    pub fn objects(&self) -> usize {
        self.deletions.iter().map(|d| d.keys.len()).sum()
    }

    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.deletions.iter().map(|d| d.bytes).sum()
    }
}

/// Why no plan could be made: deleting anything would be unsafe.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{policy}: {what} is unreadable ({why}); nothing is deleted while the catalog cannot be read whole"
    )]
    Unreadable {
        policy: String,
        what: String,
        why: String,
    },
    #[error("{policy}: no Barman server folder '{server}' in {storage}")]
    NoServer {
        policy: String,
        server: String,
        storage: String,
    },
}

/// `2026-10-20 03:00 UTC`
fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
