//! Offline Velero restore: the backup tarball's objects written out as YAML, one file per object,
//! in the order Velero restores them, ready for inspection or `kubectl apply -R -f DIR`.
//!
//! Order (Velero's default restore priorities, `pkg/cmd/server`): its high-priority resources in
//! their order (CRDs, namespaces, storage classes, volumes and claims, service accounts, secrets,
//! config maps, ...), then every other cluster-scoped resource, then every other namespaced
//! resource (alphabetically by group-resource), then its low-priority resources. Folders are
//! numbered so that a plain `ls` or `kubectl apply -R` walks them in that order.

use crate::velero::tarball::Item;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Velero's default high-priority restore order.
pub const HIGH: [&str; 18] = [
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclass.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "secrets",
    "configmaps",
    "limitranges",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
];

/// Velero's default low-priority restore order (after everything else).
pub const LOW: [&str; 3] = [
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
];

/// Sort key of a group-resource: (band, position, name).
fn rank(gr: &str, cluster_scoped: bool) -> (u8, usize, String) {
    if let Some(i) = HIGH.iter().position(|h| *h == gr) {
        return (0, i, gr.to_string());
    }
    if let Some(i) = LOW.iter().position(|l| *l == gr) {
        return (3, i, gr.to_string());
    }
    (if cluster_scoped { 1 } else { 2 }, 0, gr.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{group_resource} {name}: the backup holds JSON that is not an object ({why})")]
    BadItem {
        group_resource: String,
        name: String,
        why: String,
    },
    #[error("extraction directory {0} is not empty; use an empty or new directory")]
    NotEmpty(PathBuf),
}

/// Keeps the items of `namespaces` (all when empty): their namespaced objects, their Namespace
/// objects and the CRDs (which their custom resources need).
#[must_use]
pub fn filter(items: Vec<Item>, namespaces: &[String]) -> Vec<Item> {
    if namespaces.is_empty() {
        return items;
    }
    items
        .into_iter()
        .filter(|i| match &i.namespace {
            Some(ns) => namespaces.contains(ns),
            None if i.group_resource == "namespaces" => namespaces.contains(&i.name),
            None => i.group_resource == HIGH[0],
        })
        .collect()
}

/// Items grouped by group-resource, in restore order.
#[must_use]
pub fn ordered(items: Vec<Item>) -> Vec<(String, Vec<Item>)> {
    let mut groups: BTreeMap<(u8, usize, String), Vec<Item>> = BTreeMap::new();
    for i in items {
        let key = rank(&i.group_resource, i.namespace.is_none());
        groups.entry(key).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|((_, _, gr), mut v)| {
            v.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            (gr, v)
        })
        .collect()
}

/// Writes every item as `DIR/NN-GROUP_RESOURCE/[NAMESPACE/]NAME.yaml`; returns the files in order.
pub fn write(dir: &Path, groups: &[(String, Vec<Item>)]) -> Result<Vec<PathBuf>, Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| Error::Io { path, cause }
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(Error::NotEmpty(dir.to_path_buf()));
    }
    let mut files = Vec::new();
    for (n, (gr, items)) in groups.iter().enumerate() {
        for i in items {
            let bad = |why: String| Error::BadItem {
                group_resource: gr.clone(),
                name: i.name.clone(),
                why,
            };
            let value: serde_json::Value =
                serde_json::from_slice(&i.json).map_err(|e| bad(e.to_string()))?;
            let yaml = serde_norway::to_string(&value).map_err(|e| bad(e.to_string()))?;
            let mut path = dir.join(format!("{:02}-{gr}", n + 1));
            if let Some(ns) = &i.namespace {
                path = path.join(ns);
            }
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            let file = path.join(format!("{}.yaml", i.name));
            std::fs::write(&file, yaml).map_err(io(&file))?;
            files.push(file);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(gr: &str, ns: Option<&str>, name: &str) -> Item {
        Item {
            group_resource: gr.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
            json: b"{\"kind\":\"X\"}".to_vec(),
        }
    }

    #[test]
    fn crds_then_namespaces_then_cluster_scoped_then_namespaced() {
        let groups = ordered(vec![
            item("deployments.apps", Some("app"), "web"),
            item("clusterroles.rbac.authorization.k8s.io", None, "view"),
            item("pods", Some("app"), "web-0"),
            item("namespaces", None, "app"),
            item(
                "customresourcedefinitions.apiextensions.k8s.io",
                None,
                "x.example.com",
            ),
            item("widgets.example.com", Some("app"), "w"),
        ]);
        let names: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(
            names,
            [
                "customresourcedefinitions.apiextensions.k8s.io",
                "namespaces",
                "pods",
                "clusterroles.rbac.authorization.k8s.io",
                "deployments.apps",
                "widgets.example.com"
            ]
        );
    }

    #[test]
    fn a_namespace_filter_keeps_its_objects_its_namespace_and_crds() {
        let kept = filter(
            vec![
                item("pods", Some("app"), "a"),
                item("pods", Some("other"), "b"),
                item("namespaces", None, "app"),
                item("namespaces", None, "other"),
                item(HIGH[0], None, "c"),
                item("clusterroles.rbac.authorization.k8s.io", None, "v"),
            ],
            &["app".to_string()],
        );
        let names: Vec<&str> = kept.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "app", "c"]);
    }
}
