//! Carries out a checked plan through the object store.
//!
//! Order matters when the process can die at any moment. The backups' descriptors
//! (`backup.info`, `velero-backup.json`) go first, so the backup leaves every catalog at once and
//! no catalog ever shows a backup whose data is already gone; then their data and the WAL, in
//! parallel batches. Barman
//! deletes `backup.info` last so that a failed delete can be retried from its catalog; we choose
//! the opposite on purpose, and the next run finishes a half-done deletion because data left
//! without a descriptor is planned as an orphan (once older than the grace period).

use super::{Plan, What};
use crate::report::Progress;
use crate::store::{self, DELETE_BATCH, ObjectStore};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub policy: String,
    pub backups: usize,
    pub objects: usize,
    pub bytes: u64,
    /// How long the deletion took.
    pub seconds: f64,
    /// Backups deleted through Velero (a DeleteBackupRequest) rather than through the store;
    /// counted in `backups`, `objects` and `bytes` too.
    pub via_velero: Vec<String>,
}

/// Deletes what the plan says: first the descriptor of every backup it removes (one batch for
/// up to 1,000 backups), then everything else (backup data, orphans, WAL) in batches of 1,000
/// keys (packed across backups), `concurrency` batches at a time. Every backup thus leaves the
/// catalog before any of its data goes, and no request waits on another backup's.
pub async fn execute(
    store: &dyn ObjectStore,
    plan: &Plan,
    concurrency: usize,
    progress: &dyn Progress,
) -> store::Result<Summary> {
    let mut s = Summary {
        policy: plan.policy.clone(),
        ..Summary::default()
    };
    let backups: Vec<_> = plan
        .deletions
        .iter()
        .filter(|d| d.what != What::Wal)
        .collect();
    // The first key of a backup's deletion is its descriptor (see the planner).
    let descriptors: Vec<String> = backups.iter().filter_map(|d| d.keys.first()).collect();
    if !backups.is_empty() {
        progress.message(&format!(
            "{}: deleting {} backup(s): descriptors first",
            plan.policy,
            backups.len()
        ));
    }
    for batch in descriptors.chunks(DELETE_BATCH) {
        store.delete_many(batch).await?;
    }
    // Packed across deletions: a backup's data is often one object, and a request per backup
    // would cost a round trip (and the store its per-request work) for each. Spelt batch by
    // batch: a plan may name a million WAL segments.
    let rest = plan.deletions.iter().flat_map(|d| {
        let skip = usize::from(d.what != What::Wal);
        d.keys.iter().skip(skip).map(std::borrow::Cow::into_owned)
    });
    let count: usize = plan
        .deletions
        .iter()
        .map(|d| d.keys.len() - usize::from(d.what != What::Wal).min(d.keys.len()))
        .sum();
    progress.message(&format!(
        "{}: deleting {count} objects of data and WAL",
        plan.policy
    ));
    stream::iter(rest)
        .chunks(DELETE_BATCH)
        .map(|batch| async move { store.delete_many(&batch).await })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    for d in &plan.deletions {
        s.backups += usize::from(d.what != What::Wal);
        s.objects += d.keys.len();
        s.bytes += d.bytes;
    }
    Ok(s)
}
