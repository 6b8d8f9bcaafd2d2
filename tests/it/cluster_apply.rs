//! `openova apply` against the real test bed: server-side apply of what `openova render` wrote, with
//! field manager `openova`; a dry run stores nothing; an identity without rights gets openova's 403
//! message naming the object; an API server that is not there is a clear error (exit 2).

use crate::cli::{Run, openova};
use crate::render::render_shipped;
use crate::support::free_port;
use crate::support::kube::{KubeOptions, KubeTestBed};

fn apply(dir: &std::path::Path, extra: &[&str], kubeconfig: &std::path::Path) -> Run {
    let mut args = vec![
        "apply",
        dir.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    openova(None, &args)
}

#[test]
fn apply_dry_run_then_for_real_with_field_manager_openova() {
    let bed = KubeTestBed::start(KubeOptions::default());
    // The platform's namespaces (openova's own comes with the render).
    for ns in ["velero", "databases"] {
        bed.kubectl_ok(&["create", "namespace", ns]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    assert_eq!(render_shipped(&dir).code, 0);
    let listed = crate::render::files_under(&dir)
        .keys()
        .filter(|p| !p.starts_with("patches/") && *p != "kustomization.yaml")
        .count();

    // A dry run of objects in a namespace that does not exist yet is refused by the server: create
    // openova's namespace first, then the dry run stores nothing.
    bed.kubectl_ok(&["create", "namespace", "openova"]);
    let dry = apply(&dir, &["--dry-run"], &bed.kubeconfig());
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(
        dry.stdout
            .lines()
            .filter(|l| l.starts_with("validated (dry run) "))
            .count(),
        listed,
        "{dry:?}"
    );
    assert!(
        bed.jsonpath(
            "schedules.velero.io",
            "cluster-daily",
            "velero",
            "{.metadata.name}"
        )
        .is_none(),
        "a dry run stored the Schedule"
    );

    let run = apply(&dir, &[], &bed.kubeconfig());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("applied Schedule velero/cluster-daily"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("applied ObjectStore databases/platform-db"),
        "{run:?}"
    );
    let managers = bed
        .jsonpath(
            "schedules.velero.io",
            "cluster-daily",
            "velero",
            "{.metadata.managedFields[*].manager}",
        )
        .expect("the Schedule exists");
    assert_eq!(managers, "openova");
    assert_eq!(
        bed.jsonpath(
            "scheduledbackups.postgresql.cnpg.io",
            "platform-db",
            "databases",
            "{.spec.schedule}"
        )
        .as_deref(),
        Some("0 0 2 * * *")
    );

    // Restore mode, applied over it: the location becomes ReadOnly (the same field manager owns it).
    let ro = tmp.path().join("restore");
    let r: Run = crate::cli::openova_cmd(None, crate::render::DEPLOY_ARGS)
        .args(["--restore-mode", "--out", ro.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:?}");
    let run = apply(&ro, &[], &bed.kubeconfig());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        bed.jsonpath(
            "backupstoragelocations.velero.io",
            "cluster-daily",
            "velero",
            "{.spec.accessMode}"
        )
        .as_deref(),
        Some("ReadOnly")
    );
}

#[test]
fn apply_without_rights_is_a_clear_403_and_no_server_is_exit_2() {
    let bed = KubeTestBed::start(KubeOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    assert_eq!(render_shipped(&dir).code, 0);
    bed.kubectl_ok(&["create", "namespace", "nobody"]);
    bed.kubectl_ok(&["create", "serviceaccount", "nobody", "-n", "nobody"]);
    let token = bed.kubectl_ok(&["create", "token", "nobody", "-n", "nobody"]);
    let kc = bed.kubeconfig_with_token("nobody", token.trim());
    let run = apply(&dir, &[], &kc);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("apply Namespace openova") && run.stderr.contains("forbidden (403)"),
        "{run:?}"
    );

    // A kubeconfig whose server is not there.
    let dead = std::fs::read_to_string(bed.kubeconfig())
        .unwrap()
        .replace(&bed.server(), &format!("https://127.0.0.1:{}", free_port()));
    let dead_kc = tmp.path().join("dead.kubeconfig");
    std::fs::write(&dead_kc, dead).unwrap();
    let run = apply(&dir, &[], &dead_kc);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("apply Namespace openova")
            && run
                .stderr
                .contains("the request to the API server failed: Connection refused"),
        "{run:?}"
    );
}
