//! The Velero part of a drill restored for real (`drill run --into-cluster`): the backup restored by
//! Velero into scratch namespaces (`drill-TAG-NS`, through a namespace mapping, so nothing of the
//! platform's is touched), what the drill expects looked for through the API in them, and then
//! everything it created deleted — the Restore and the scratch namespaces, waited for until gone —
//! whether the check passed, failed or could not run.

use super::def::VeleroExpect;
use crate::cluster::{scratch, velero::Velero};
use crate::report::Progress;
use crate::restore::into_cluster::{self, Request};
use crate::store::ObjectStore;
use crate::velero::{VeleroBackup, tarball::Item};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a scratch namespace may take to go.
const DELETE_BOUND: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InClusterReport {
    /// The Velero Restore (deleted after).
    pub restore: Option<String>,
    pub phase: Option<String>,
    /// `shop -> drill-1a2b3c-shop`.
    pub namespaces: Vec<String>,
    /// Expected objects found in the scratch namespaces.
    pub found: usize,
    /// Expected objects (mapped) not found there.
    pub missing: Vec<String>,
    /// Velero's warnings and errors for the restore.
    pub details: Vec<String>,
    /// What could not be cleaned up (empty: nothing left behind).
    pub left_behind: Vec<String>,
    pub error: Option<String>,
}

impl InClusterReport {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.missing.is_empty()
            && self.left_behind.is_empty()
            && self.phase.as_deref() == Some("Completed")
    }
}

/// `drill-TAG-NS`, cut to a valid namespace name (63 characters).
fn scratch_name(tag: &str, ns: &str) -> String {
    let mut n = format!("drill-{tag}-{ns}");
    n.truncate(63);
    n.trim_end_matches('-').to_string()
}

pub async fn restore_and_check(
    v: &Velero,
    store: &dyn ObjectStore,
    b: &VeleroBackup,
    items: &[Item],
    expect: &VeleroExpect,
    progress: &dyn Progress,
) -> InClusterReport {
    let mut r = InClusterReport::default();
    let in_backup: BTreeSet<&str> = items
        .iter()
        .filter_map(|i| i.namespace.as_deref())
        .collect();
    let namespaces: Vec<String> = if expect.namespaces.is_empty() {
        in_backup.iter().map(|s| (*s).to_string()).collect()
    } else {
        expect.namespaces.clone()
    };
    let tag = format!("{:06x}", rand_tag());
    let mapping: Vec<(String, String)> = namespaces
        .iter()
        .map(|ns| (ns.clone(), scratch_name(&tag, ns)))
        .collect();
    r.namespaces = mapping.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
    let location = b
        .storage_location
        .clone()
        .unwrap_or_else(|| "default".into());
    let req = Request {
        backup: &b.name,
        location: &location,
        mapping: &mapping,
        namespaces: &namespaces,
        // A drill restores from the production location while it stays writable: a restore writes
        // only its own logs under restores/, and nothing is deleted from the location.
        allow_writable: true,
        bound: Duration::from_secs(1800),
    };
    progress.message(&format!(
        "drill: Velero restoring {} into scratch namespaces",
        b.name
    ));
    let restored = match into_cluster::start(v, &req, progress).await {
        Ok(name) => {
            r.restore = Some(name.clone());
            into_cluster::finish(v, store, &req, &name, progress).await
        }
        Err(e) => Err(e),
    };
    match restored {
        Ok(done) => {
            r.phase = Some(done.end.phase.clone());
            r.details = done.details;
            r.details.extend(done.end.messages);
            if let Err(e) = check(v, expect, &mapping, &mut r).await {
                r.error = Some(e);
            }
        }
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    cleanup(v, &mapping, &mut r, progress).await;
    r
}

async fn check(
    v: &Velero,
    expect: &VeleroExpect,
    mapping: &[(String, String)],
    r: &mut InClusterReport,
) -> Result<(), String> {
    let mapped = |ns: &str| {
        mapping
            .iter()
            .find(|(a, _)| a == ns)
            .map_or_else(|| ns.to_string(), |(_, b)| b.clone())
    };
    let client = v.client();
    for ns in &expect.namespaces {
        let m = mapped(ns);
        if scratch::exists(client, "namespaces", None, &m)
            .await
            .map_err(|e| e.to_string())?
        {
            r.found += 1;
        } else {
            r.missing.push(format!("namespace {m}"));
        }
    }
    for want in &expect.resources {
        let parts: Vec<&str> = want.split('/').collect();
        let (gr, ns, name) = match parts.as_slice() {
            [gr, ns, name] => (*gr, Some(mapped(ns)), *name),
            [gr, name] => (*gr, None, *name),
            _ => continue,
        };
        if scratch::exists(client, gr, ns.as_deref(), name)
            .await
            .map_err(|e| e.to_string())?
        {
            r.found += 1;
        } else {
            r.missing.push(match &ns {
                Some(ns) => format!("{gr}/{ns}/{name}"),
                None => format!("{gr}/{name}"),
            });
        }
    }
    Ok(())
}

async fn cleanup(
    v: &Velero,
    mapping: &[(String, String)],
    r: &mut InClusterReport,
    progress: &dyn Progress,
) {
    progress.message("drill: deleting the scratch namespaces and the Restore");
    if let Some(name) = &r.restore
        && let Err(e) = v.delete_restore(name, DELETE_BOUND).await
    {
        r.left_behind.push(format!("Restore {name}: {e}"));
    }
    for (_, ns) in mapping {
        if let Err(e) = scratch::delete_namespace(v.client(), ns, DELETE_BOUND).await {
            r.left_behind.push(format!("Namespace {ns}: {e}"));
        }
    }
}

/// A tag from the clock and the process id: unique enough among a cluster's drills.
fn rand_tag() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id().rotate_left(16)) & 0x00ff_ffff
}

#[cfg(test)]
mod tests {
    #[test]
    fn scratch_names_are_valid_namespace_names() {
        assert_eq!(super::scratch_name("1a2b3c", "shop"), "drill-1a2b3c-shop");
        let long = super::scratch_name("1a2b3c", &"x".repeat(80));
        assert_eq!(long.len(), 63);
    }
}
