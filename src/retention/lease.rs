//! Mutual exclusion between retention runs on one storage: a lease object, created with a conditional put (`If-None-Match: *`), holding its
//! owner and expiry, renewed while the run lasts and removed at the end. An expired lease (its
//! holder died) is taken over.
//!
//! Some stores ignore conditional writes (Garage 2.5 overwrote silently), which would let two runs
//! both "win". [`probe`] detects that by writing a probe object twice; on such a store `--apply`
//! needs `--single-writer`, the operator's word that nothing else deletes there.
//!
//! Where: for storage `s3://bucket/velero` the lease is `s3://bucket/openova/lease/velero`, beside
//! the storage prefix rather than inside it, because Velero marks a backup location unavailable
//! when its prefix holds folders other than its own (`backups/`, `restores/`, ...).

use crate::store::{self, ObjectStore};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long a lease lives without renewal; renewed every third of it.
pub const TTL: TimeDelta = TimeDelta::minutes(10);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub purpose: String,
    pub since: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{purpose} already running on {url} since {}, owner {owner} (lease expires {})", crate::report::time(*since), crate::report::time(*expires))]
    Held {
        url: String,
        purpose: String,
        owner: String,
        since: DateTime<Utc>,
        expires: DateTime<Utc>,
    },
    #[error(
        "the store at {0} ignores conditional writes (If-None-Match), so openova cannot stop two retention runs \
         from interleaving there; if this is the only openova deleting on this storage, run with --single-writer"
    )]
    NoConditionalWrites(String),
    #[error(
        "the lease {key} is being taken over by another run that did not finish (a run killed mid-takeover \
         leaves {key}.takeover-*); if no openova run is active on this storage, delete those objects"
    )]
    TakeoverStuck { key: String },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Whether the store honours `If-None-Match: *` on PutObject: a conditional put onto an existing
/// object must fail. Each run probes its own key beside the lease: with one shared key, a run
/// deleting it between another run's two puts made the store look unconditional (seen in CI).
/// A run killed mid-probe leaves that small object behind; the next run to hold the lease
/// removes it once it is an hour old. The two puts carry different bytes: a conditional put
/// retried after a broken attempt reads the object back and takes bytes equal to its own as its
/// own write, so with equal bytes a retried second put passed for a store ignoring the condition
/// (seen in CI on versitygw under load).
pub async fn probe(store: &dyn ObjectStore, lease_key: &str) -> Result<bool, store::Error> {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let key = format!("{lease_key}.probe-{}-{nanos}", std::process::id());
    store
        .put_if_absent(&key, Bytes::from_static(b"probe 1"))
        .await?;
    let second = store
        .put_if_absent(&key, Bytes::from_static(b"probe 2"))
        .await;
    store.delete_many(std::slice::from_ref(&key)).await?;
    Ok(!second?)
}

/// Removes probe objects older than an hour that runs killed mid-probe left beside the lease (a
/// probe lasts two round trips, so none of them belongs to a live run). Best effort.
async fn sweep_probes(store: &dyn ObjectStore, lease_key: &str) {
    let Ok(found) = store.list(&format!("{lease_key}.probe-")).await else {
        return;
    };
    let old = Utc::now() - chrono::TimeDelta::hours(1);
    let stale: Vec<String> = found
        .into_iter()
        .filter(|o| o.last_modified.is_some_and(|t| t < old))
        .map(|o| o.key)
        .collect();
    if !stale.is_empty() {
        let _ = store.delete_many(&stale).await;
    }
}

/// A held lease; renewed in the background until [`Lease::release`].
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    key: String,
    holder: Holder,
    renewer: tokio::task::JoinHandle<()>,
}

fn body(h: &Holder) -> Bytes {
    Bytes::from(serde_json::to_vec(h).unwrap_or_default())
}

impl Lease {
    /// Takes the lease or says who holds it. `single_writer` skips the conditional-write probe.
    /// `store` is where the lease lives, `key` names it, `url` is the storage it guards.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        key: &str,
        url: &str,
        purpose: &str,
        single_writer: bool,
    ) -> Result<Self, Error> {
        if !single_writer && !probe(store.as_ref(), key).await? {
            return Err(Error::NoConditionalWrites(url.to_string()));
        }
        let now = Utc::now();
        let owner = format!("{}@{}", std::process::id(), hostname());
        let holder = Holder {
            owner,
            purpose: purpose.to_string(),
            since: now,
            expires: now + TTL,
        };
        // A few rounds: a takeover by another run may be under way; it ends within a round trip.
        for _ in 0..3 {
            let mut got = store.put_if_absent(key, body(&holder)).await?;
            if got && !single_writer {
                confirm(store.as_ref(), key, url, &holder).await?;
            }
            if !got {
                match current(store.as_ref(), key).await? {
                    // The store refused the put but kept this run's body (a conditional put that
                    // is not atomic): the lease names this run, so it is this run's.
                    Some(h) if h.owner == holder.owner && h.since == holder.since => got = true,
                    Some(h) if h.expires > now && !died_here(&h.owner) => {
                        let (purpose, owner, since, expires) =
                            (h.purpose, h.owner, h.since, h.expires);
                        return Err(Error::Held {
                            url: url.to_string(),
                            purpose,
                            owner,
                            since,
                            expires,
                        });
                    }
                    // Expired (its holder died), held by a process of this machine that is gone
                    // (a run that failed and could not remove it: a store fault stops that
                    // delete too), or unreadable: take it over, exactly one run wins.
                    expired => {
                        got = take_over(store.as_ref(), key, expired.as_ref(), &holder).await?;
                    }
                }
            }
            if got {
                sweep_probes(store.as_ref(), key).await;
                let renewer = tokio::spawn(renew(store.clone(), key.to_string(), holder.clone()));
                return Ok(Self {
                    store,
                    key: key.to_string(),
                    holder,
                    renewer,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(Error::TakeoverStuck {
            key: key.to_string(),
        })
    }

    /// Stops renewing and removes the lease if it is still ours.
    pub async fn release(self) -> Result<(), store::Error> {
        self.renewer.abort();
        if current(self.store.as_ref(), &self.key)
            .await?
            .is_some_and(|h| h.owner == self.holder.owner)
        {
            self.store
                .delete_many(std::slice::from_ref(&self.key))
                .await?;
        }
        Ok(())
    }
}

/// Replaces an expired (or unreadable) lease so that only one of several runs that saw it expired
/// wins: each first creates a marker naming that very lease, conditionally; the one that creates
/// it checks the lease is still the expired one, replaces it, and removes the marker only once its
/// own lease is in place. A run that creates the marker later finds a newer lease and backs off.
/// `Ok(false)`: someone else's lease is (or may be) in place now; acquire again to find out.
/// How long a fresh lease settles before it is read back (see [`confirm`]).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Reads the lease back after [`SETTLE`]: still ours, or the run that overwrote it. Some stores
/// (s3s-fs) check `If-None-Match` before the write instead of atomically with it, so two runs
/// racing for a free lease can both be told they got it; the later write wins, and this is how
/// the other one learns it lost. (Its window is the store's check-to-write time, far below the
/// settle time.)
async fn confirm(
    store: &dyn ObjectStore,
    key: &str,
    url: &str,
    mine: &Holder,
) -> Result<(), Error> {
    tokio::time::sleep(SETTLE).await;
    match current(store, key).await? {
        Some(h) if h.owner != mine.owner => Err(Error::Held {
            url: url.to_string(),
            purpose: h.purpose,
            owner: h.owner,
            since: h.since,
            expires: h.expires,
        }),
        _ => Ok(()),
    }
}

async fn take_over(
    store: &dyn ObjectStore,
    key: &str,
    expired: Option<&Holder>,
    mine: &Holder,
) -> Result<bool, store::Error> {
    let tag = expired.map_or_else(
        || "unreadable".to_string(),
        |h| {
            format!(
                "{}-{}",
                h.since.timestamp_micros(),
                h.owner.replace(['/', '@'], "_")
            )
        },
    );
    let marker = format!("{key}.takeover-{tag}");
    if !store
        .put_if_absent(&marker, Bytes::from_static(b"takeover"))
        .await?
    {
        return Ok(false);
    }
    let still_expired = current(store, key).await? == expired.cloned();
    let won = still_expired && {
        store.delete_many(&[key.to_string()]).await?;
        store.put_if_absent(key, body(mine)).await?
    };
    store.delete_many(&[marker]).await?;
    Ok(won)
}

async fn renew(store: Arc<dyn ObjectStore>, key: String, mut holder: Holder) {
    loop {
        tokio::time::sleep((TTL / 3).to_std().unwrap_or_default()).await;
        holder.expires = Utc::now() + TTL;
        if let Err(e) = store.put(&key, body(&holder)).await {
            tracing::warn!(error = %e, "could not renew the retention lease");
        }
    }
}

/// A lease is a few hundred bytes; more is not one openova wrote.
const LEASE_MAX: u64 = 64 << 10;

/// The holder the lease object names (`None`: absent, or not a lease openova can read). Read as
/// a range, so without the whole-object ETag check: two conditional puts racing on a store that
/// does not serialise them (versitygw did, in a CI run) can leave one writer's ETag on the other's
/// body, and every checked GET then failed, for both runs and every run after. What the body says
/// is what the store holds; both racers read the same body and exactly one finds itself in it.
async fn current(store: &dyn ObjectStore, key: &str) -> Result<Option<Holder>, store::Error> {
    match store.get_range(key, 0, LEASE_MAX).await {
        Ok(b) => Ok(serde_json::from_slice(&b.into_bytes()).ok()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `owner` (`PID@HOST`) names a process of this machine that no longer runs: its lease
/// can be taken over at once instead of after [`TTL`]. Another machine's holder (a CronJob pod) is
/// only ever judged by its expiry.
fn died_here(owner: &str) -> bool {
    let Some((pid, host)) = owner.split_once('@') else {
        return false;
    };
    host == hostname()
        && pid.parse::<u32>().is_ok_and(|p| {
            p != std::process::id()
                && std::path::Path::new("/proc/self").exists()
                && !std::path::Path::new(&format!("/proc/{p}")).exists()
        })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map_or_else(|| "unknown".into(), |h| h.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsStore, StorageUrl};

    #[test]
    fn only_a_gone_process_of_this_machine_counts_as_dead() {
        let here = hostname();
        // Far above any pid this machine hands out.
        assert!(died_here(&format!("4000000000@{here}")));
        assert!(!died_here(&format!("{}@{here}", std::process::id())));
        assert!(!died_here("4000000000@another-host-openova-test"));
        assert!(!died_here("garbage"));
        // pid 1 runs on every Linux machine.
        assert!(!died_here(&format!("1@{here}")));
    }

    fn fs() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
        (dir, Arc::new(FsStore::new(url)))
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_expired_leases_are_taken_over() {
        let (_dir, store) = fs();
        assert!(
            probe(store.as_ref(), "openova/lease/cnpg").await.unwrap(),
            "a local folder honours create-if-absent"
        );
        let first = Lease::acquire(
            store.clone(),
            "openova/lease/cnpg",
            "s3://b/cnpg",
            "retention",
            false,
        )
        .await
        .unwrap();
        let second = Lease::acquire(
            store.clone(),
            "openova/lease/cnpg",
            "s3://b/cnpg",
            "retention",
            false,
        )
        .await;
        let msg = second.err().unwrap().to_string();
        assert!(
            msg.starts_with("retention already running on s3://b/cnpg since ")
                && msg.contains("owner "),
            "{msg}"
        );
        first.release().await.unwrap();
        let again = Lease::acquire(
            store.clone(),
            "openova/lease/cnpg",
            "s3://b/cnpg",
            "retention",
            false,
        )
        .await
        .unwrap();
        again.renewer.abort();
        // Its holder "died": the lease expired an hour ago.
        let dead = Holder {
            owner: "1@gone".into(),
            purpose: "retention".into(),
            since: Utc::now() - TimeDelta::hours(2),
            expires: Utc::now() - TimeDelta::hours(1),
        };
        store.put("openova/lease/cnpg", body(&dead)).await.unwrap();
        let taken = Lease::acquire(
            store.clone(),
            "openova/lease/cnpg",
            "s3://b/cnpg",
            "retention",
            false,
        )
        .await
        .unwrap();
        assert_ne!(
            current(store.as_ref(), "openova/lease/cnpg")
                .await
                .unwrap()
                .unwrap()
                .owner,
            "1@gone"
        );
        taken.release().await.unwrap();
        assert!(
            current(store.as_ref(), "openova/lease/cnpg")
                .await
                .unwrap()
                .is_none(),
            "released leases are removed"
        );
    }
}

#[cfg(test)]
mod unconditional_tests {
    use super::*;
    use crate::store::testkit::IgnoresConditions;
    use crate::store::{FsStore, StorageUrl};

    /// On a store that ignores `If-None-Match` the lease is refused (naming `--single-writer`)
    /// and nothing is left behind; with `single_writer` it is taken and released.
    #[tokio::test]
    async fn a_store_ignoring_conditional_writes_needs_single_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(IgnoresConditions(FsStore::new(url)));
        let key = "openova/lease/cnpg";
        assert!(!probe(store.as_ref(), key).await.unwrap());
        let refused = Lease::acquire(store.clone(), key, "s3://b/cnpg", "retention", false).await;
        let msg = refused.err().unwrap().to_string();
        assert!(
            msg.starts_with("the store at s3://b/cnpg ignores conditional writes")
                && msg.contains("run with --single-writer"),
            "{msg}"
        );
        assert!(
            store.list("").await.unwrap().is_empty(),
            "no lease or probe left"
        );
        let lease = Lease::acquire(store.clone(), key, "s3://b/cnpg", "retention", true)
            .await
            .unwrap();
        assert!(current(store.as_ref(), key).await.unwrap().is_some());
        lease.release().await.unwrap();
        assert!(store.list("").await.unwrap().is_empty(), "released");
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;
    use crate::store::{FsStore, StorageUrl};

    #[tokio::test]
    async fn probes_left_by_killed_runs_are_swept_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(url));
        let key = "openova/lease/cnpg";
        for k in ["probe-1-1", "probe-2-2"] {
            store
                .put(&format!("{key}.{k}"), Bytes::from_static(b"probe"))
                .await
                .unwrap();
        }
        let stale = dir.path().join(format!("{key}.probe-1-1"));
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
            .unwrap();
        let lease = Lease::acquire(store.clone(), key, "s3://b/cnpg", "retention", false)
            .await
            .unwrap();
        assert!(!stale.exists(), "a two-hour-old probe is swept");
        assert!(
            dir.path().join(format!("{key}.probe-2-2")).exists(),
            "a fresh one may be a live run's"
        );
        lease.release().await.unwrap();
    }
}
