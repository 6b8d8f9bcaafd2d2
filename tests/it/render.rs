//! `openova render`: the shipped policies render exactly to `deploy/manifests/` (the folder is not
//! edited by hand, and a change to the renderer or the policies must come with its re-render), and
//! the CLI's errors.

use crate::cli::{Run, openova_cmd};
use std::collections::BTreeMap;
use std::path::Path;

/// The command that made `deploy/manifests/` (deploy/README.md says the same), run from the repository.
pub const DEPLOY_ARGS: &[&str] = &[
    "render",
    "--policies",
    "policies",
    "--drills",
    "restore-drills",
    "--endpoint",
    "https://ACCOUNT_ID.r2.cloudflarestorage.com",
];

/// Every file under `dir`, by path relative to it.
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("read file"),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Renders the shipped policies into a fresh folder, as `deploy/manifests/` was made.
pub fn render_shipped(out: &Path) -> Run {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = openova_cmd(None, DEPLOY_ARGS);
    cmd.current_dir(root)
        .env_remove("OPENOVA_POLICIES")
        .arg("--out")
        .arg(out);
    cmd.output().expect("run openova render").into()
}

#[test]
fn deploy_manifests_are_the_render_of_the_shipped_policies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = render_shipped(tmp.path());
    assert_eq!(run.code, 0, "{run:?}");
    let fresh = files_under(tmp.path());
    let shipped = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/manifests"));
    let fresh_names: Vec<&String> = fresh.keys().collect();
    let shipped_names: Vec<&String> = shipped.keys().collect();
    assert_eq!(
        shipped_names, fresh_names,
        "deploy/manifests has other files than a fresh render: re-render it (deploy/README.md)"
    );
    for (name, bytes) in &fresh {
        assert!(
            shipped[name] == *bytes,
            "deploy/manifests/{name} differs from a fresh render: re-render it (deploy/README.md)\n--- fresh\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn rendering_twice_gives_the_same_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_eq!(render_shipped(a.path()).code, 0);
    assert_eq!(render_shipped(b.path()).code, 0);
    assert_eq!(files_under(a.path()), files_under(b.path()));
}

#[test]
fn a_policy_without_endpoint_and_no_endpoint_flag_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let run: Run = openova_cmd(None, &["render", "--policies", "policies", "--out"])
        .arg(tmp.path())
        .current_dir(root)
        .env_remove("OPENOVA_POLICIES")
        .output()
        .expect("run openova")
        .into();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("policy cluster-daily: no S3 endpoint")
            && run.stderr.contains("--endpoint"),
        "{run:?}"
    );
    assert!(
        files_under(tmp.path()).is_empty(),
        "nothing written on error"
    );
}
