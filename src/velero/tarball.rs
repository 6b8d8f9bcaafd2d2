//! Inside `NAME.tar.gz`: items at `resources/GROUP_RESOURCE/namespaces/NS/NAME.json` or
//! `resources/GROUP_RESOURCE/cluster/NAME.json`. Velero writes the preferred version of each item
//! a second time under `resources/GROUP_RESOURCE/VERSION-preferredversion/...` (and other versions
//! under `.../VERSION/...`): only the unversioned path is counted, so each item counts once.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;

/// Items per group-resource and namespace (`""` for cluster-scoped items).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResourceCount {
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    pub total: u64,
    pub format_version: Option<String>,
}

/// One item of a backup tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub group_resource: String,
    /// `None` for cluster-scoped items.
    pub namespace: Option<String>,
    pub name: String,
    pub json: Vec<u8>,
}

/// Where an item sits, or `None` for other entries (version folders, metadata).
fn item_path(path: &str) -> Option<(String, Option<String>, String)> {
    let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
    let file = |f: &str| f.strip_suffix(".json").map(str::to_string);
    match parts.as_slice() {
        ["resources", gr, "namespaces", ns, f] => {
            Some(((*gr).into(), Some((*ns).into()), file(f)?))
        }
        ["resources", gr, "cluster", f] => Some(((*gr).into(), None, file(f)?)),
        _ => None,
    }
}

/// Reads every item of a gzip tarball. A truncated or corrupt tarball is an error, never a
/// silently shorter list.
pub fn read_items(tar_gz: impl Read) -> std::io::Result<(Vec<Item>, Option<String>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let (mut items, mut version) = (Vec::new(), None);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body)?;
        if path.trim_start_matches("./") == "metadata/version" {
            version = Some(String::from_utf8_lossy(&body).trim().to_string());
        } else if let Some((group_resource, namespace, name)) = item_path(&path) {
            items.push(Item {
                group_resource,
                namespace,
                name,
                json: body,
            });
        }
    }
    Ok((items, version))
}

/// Counts the items of a gzip tarball by group-resource and namespace.
pub fn inspect_tarball(tar_gz: impl Read) -> std::io::Result<ResourceCount> {
    let (items, format_version) = read_items(tar_gz)?;
    let mut c = ResourceCount {
        format_version,
        ..ResourceCount::default()
    };
    for i in items {
        let ns = i.namespace.unwrap_or_default();
        *c.by_resource
            .entry(i.group_resource)
            .or_default()
            .entry(ns)
            .or_default() += 1;
        c.total += 1;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (path, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn counts_each_item_once() {
        let tgz = tarball(&[
            ("metadata/version", "1.1.0"),
            ("resources/pods/namespaces/app/web-0.json", "{}"),
            (
                "resources/pods/v1-preferredversion/namespaces/app/web-0.json",
                "{}",
            ),
            ("resources/deployments.apps/namespaces/app/web.json", "{}"),
            ("resources/namespaces/cluster/app.json", "{}"),
            (
                "resources/namespaces/v1-preferredversion/cluster/app.json",
                "{}",
            ),
        ]);
        let c = inspect_tarball(tgz.as_slice()).unwrap();
        assert_eq!(c.total, 3);
        assert_eq!(c.by_resource["pods"]["app"], 1);
        assert_eq!(c.by_resource["namespaces"][""], 1);
        assert_eq!(c.format_version.as_deref(), Some("1.1.0"));
    }

    #[test]
    fn a_truncated_tarball_is_an_error() {
        let tgz = tarball(&[(
            "resources/pods/namespaces/app/web-0.json",
            &"x".repeat(10_000),
        )]);
        assert!(inspect_tarball(&tgz[..tgz.len() / 2]).is_err());
    }
}
