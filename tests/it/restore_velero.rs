//! Offline Velero extraction: a fixture backup (Velero's layout, written by the fixture writer)
//! with CRDs, namespaced and cluster-scoped objects comes out in restore order, one YAML file per
//! object, each equal to the JSON in the tarball.

use crate::cli::openova;
use crate::support::velero_fixture::VeleroBackupFixture;
use crate::support::{S3Kind, S3Server};
use serde_json::{Value, json};

fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
    let mut meta = json!({ "name": name, "labels": { "app": "web" } });
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    json!({ "apiVersion": api, "kind": kind, "metadata": meta, "spec": { "replicas": 2, "note": "multi\nline: yes" } })
}

#[test]
fn velero_backup_is_written_as_yaml_in_restore_order() {
    let s3 = S3Server::start(S3Kind::S3sFs);
    let items = [
        (
            "deployments.apps",
            Some("app"),
            "web",
            obj("apps/v1", "Deployment", Some("app"), "web"),
        ),
        (
            "widgets.example.com",
            Some("app"),
            "w1",
            obj("example.com/v1", "Widget", Some("app"), "w1"),
        ),
        (
            "clusterroles.rbac.authorization.k8s.io",
            None,
            "viewer",
            obj(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "viewer",
            ),
        ),
        (
            "pods",
            Some("app"),
            "web-0",
            obj("v1", "Pod", Some("app"), "web-0"),
        ),
        (
            "pods",
            Some("other"),
            "x-0",
            obj("v1", "Pod", Some("other"), "x-0"),
        ),
        (
            "namespaces",
            None,
            "app",
            obj("v1", "Namespace", None, "app"),
        ),
        (
            "namespaces",
            None,
            "other",
            obj("v1", "Namespace", None, "other"),
        ),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            "widgets.example.com",
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "widgets.example.com",
            ),
        ),
    ];
    let mut fixture =
        VeleroBackupFixture::new("cluster-daily-20261125030000").schedule("cluster-daily");
    for (gr, ns, name, json) in &items {
        fixture = fixture.item(gr, *ns, name, json.clone());
    }
    fixture.upload(&s3, "velero");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = restore_velero(
        &s3,
        &["--backup", "latest", "--extract", out.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run:?}");

    let mut files: Vec<String> = walk(&out)
        .into_iter()
        .map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "01-customresourcedefinitions.apiextensions.k8s.io/widgets.example.com.yaml",
            "02-namespaces/app.yaml",
            "02-namespaces/other.yaml",
            "03-pods/app/web-0.yaml",
            "03-pods/other/x-0.yaml",
            "04-clusterroles.rbac.authorization.k8s.io/viewer.yaml",
            "05-deployments.apps/app/web.yaml",
            "06-widgets.example.com/app/w1.yaml",
        ]
    );
    for (gr, ns, name, json) in &items {
        let file = files
            .iter()
            .find(|f| {
                f.contains(gr)
                    && f.ends_with(&format!("/{name}.yaml"))
                    && ns.is_none_or(|n| f.contains(&format!("/{n}/")))
            })
            .unwrap();
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        let parsed: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{file} is not YAML: {e}\n{text}"));
        assert_eq!(&parsed, json, "{file}");
    }

    // One namespace: its objects, its Namespace, the CRDs; nothing of `other`, no cluster roles.
    let only = dir.path().join("only");
    let run = restore_velero(
        &s3,
        &[
            "--backup",
            "cluster-daily-20261125030000",
            // --target-dir, as `restore postgres` names it, is the same flag.
            "--target-dir",
            only.to_str().unwrap(),
            "--namespace",
            "app",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(walk(&only).len(), 5, "{run:?}");
    assert!(
        !walk(&only)
            .iter()
            .any(|p| p.to_string_lossy().contains("other")
                || p.to_string_lossy().contains("clusterroles"))
    );

    // A truncated tarball is an error, not a shorter restore.
    let key = "velero/backups/cluster-daily-20261125030000/cluster-daily-20261125030000.tar.gz";
    let body = s3.get(key);
    s3.put(key, &body[..body.len() / 2]);
    let run = restore_velero(
        &s3,
        &[
            "--backup",
            "latest",
            "--extract",
            dir.path().join("t").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("truncated or corrupt tarball"),
        "{run:?}"
    );
}

/// `openova restore velero --storage s3://BUCKET/velero --endpoint EP ARGS...`
fn restore_velero(s3: &S3Server, args: &[&str]) -> crate::cli::Run {
    let (url, ep) = (s3.url("velero"), s3.endpoint());
    let mut all = vec!["restore", "velero", "--storage", &url, "--endpoint", &ep];
    all.extend(args);
    openova(Some(s3), &all)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
