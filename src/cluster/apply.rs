//! Server-side apply of manifests, field manager `openova`, each object's resource found through the
//! API server's discovery (so CRDs such as Velero's and CNPG's need no compiled-in types).

use super::{Error, FIELD_MANAGER, Result};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// One object to apply, with where it came from (`FILE, document N`).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub source: String,
    pub value: Value,
    kind: String,
    name: String,
    namespace: Option<String>,
    gvk: GroupVersionKind,
}

impl Manifest {
    /// `Schedule velero/nightly`, `Namespace openova`.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// What was applied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub dry_run: bool,
}

/// Parses every document of one manifest file; each needs apiVersion, kind and metadata.name.
pub fn parse(file: &str, text: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let bad = |why: String| Error::Manifest {
            file: file.to_string(),
            doc: i + 1,
            why,
        };
        let value = Value::deserialize(doc).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(&value, |v, k| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let api_version =
            field(&["apiVersion"]).ok_or_else(|| bad("apiVersion: missing".into()))?;
        let kind = field(&["kind"]).ok_or_else(|| bad("kind: missing".into()))?;
        let name =
            field(&["metadata", "name"]).ok_or_else(|| bad("metadata.name: missing".into()))?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        out.push(Manifest {
            source: format!("{file}, document {}", i + 1),
            gvk: GroupVersionKind::gvk(group, version, &kind),
            namespace: field(&["metadata", "namespace"]),
            kind,
            name,
            value,
        });
    }
    Ok(out)
}

/// Applies `manifests` (Namespaces first, then in the order given), or with `dry_run` has the API server
/// validate them without storing anything. Stops at the first refusal.
pub async fn apply(client: &Client, manifests: &[Manifest], dry_run: bool) -> Result<Vec<Applied>> {
    let mut ordered: Vec<&Manifest> = manifests.iter().filter(|m| m.kind == "Namespace").collect();
    ordered.extend(manifests.iter().filter(|m| m.kind != "Namespace"));
    let mut resources: HashMap<String, (ApiResource, ApiCapabilities)> = HashMap::new();
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let mut out = Vec::new();
    for m in ordered {
        let what = format!("apply {} ({})", m.describe(), m.source);
        let key = format!("{}/{}/{}", m.gvk.group, m.gvk.version, m.gvk.kind);
        if !resources.contains_key(&key) {
            let found = discovery::pinned_kind(client, &m.gvk)
                .await
                .map_err(|e| Error::from_kube(what.clone(), e))?;
            resources.insert(key.clone(), found);
        }
        let (ar, caps) = &resources[&key];
        let api: Api<DynamicObject> = match (&caps.scope, &m.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
            (Scope::Namespaced, None) => {
                return Err(Error::Manifest {
                    file: m.source.clone(),
                    doc: 0,
                    why: format!("{} is namespaced: metadata.namespace is missing", m.kind),
                });
            }
            (Scope::Cluster, _) => Api::all_with(client.clone(), ar),
        };
        let obj: DynamicObject =
            serde_json::from_value(m.value.clone()).map_err(|e| Error::Manifest {
                file: m.source.clone(),
                doc: 0,
                why: e.to_string(),
            })?;
        api.patch(&m.name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| Error::from_kube(what, e))?;
        out.push(Applied {
            kind: m.kind.clone(),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            dry_run,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_version_kind_name_and_namespace() {
        let text = "apiVersion: velero.io/v1\nkind: Schedule\nmetadata: {name: nightly, namespace: velero}\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata: {name: openova}\n";
        let m = parse("x.yaml", text).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].gvk.group, "velero.io");
        assert_eq!(m[0].describe(), "Schedule velero/nightly");
        assert_eq!(m[1].gvk.group, "");
        assert_eq!(m[1].gvk.version, "v1");
        assert_eq!(m[1].describe(), "Namespace openova");
    }

    #[test]
    fn a_manifest_without_name_is_refused_with_its_place() {
        let e = parse("x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap_err();
        assert_eq!(e.to_string(), "x.yaml, document 1: metadata.name: missing");
    }
}
