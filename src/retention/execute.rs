//! Carries out a checked plan through the object store.
//!
//! Order matters when the process can die at any moment. Each backup's descriptor
//! (`backup.info`, `velero-backup.json`) goes first, so the backup leaves every catalog at once and
//! no catalog ever shows a backup whose data is already gone; then its data; WAL last. Barman
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
}

/// Deletes what the plan says. WAL batches go `concurrency` at a time.
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
    for d in plan.deletions.iter().filter(|d| d.what != What::Wal) {
        progress.message(&format!("{}: deleting {}", plan.policy, d.name));
        let (first, rest) = d.keys.split_at(d.keys.len().min(1));
        store.delete_many(first).await?;
        store.delete_many(rest).await?;
        s.backups += 1;
        s.objects += d.keys.len();
        s.bytes += d.bytes;
    }
    let wal: Vec<&[String]> = plan
        .deletions
        .iter()
        .filter(|d| d.what == What::Wal)
        .flat_map(|d| d.keys.chunks(DELETE_BATCH))
        .collect();
    progress.message(&format!(
        "{}: deleting {} WAL objects",
        plan.policy,
        wal.iter().map(|c| c.len()).sum::<usize>()
    ));
    stream::iter(wal)
        .map(|batch| store.delete_many(batch))
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    for d in plan.deletions.iter().filter(|d| d.what == What::Wal) {
        s.objects += d.keys.len();
        s.bytes += d.bytes;
    }
    Ok(s)
}
