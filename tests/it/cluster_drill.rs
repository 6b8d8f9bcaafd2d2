//! `drill run --into-cluster` on the real test bed (with kube-controller-manager, so that namespaces
//! finish deleting) and real Velero, run as the rendered ServiceAccount with the rendered Role and the
//! drill's ClusterRole: the backup restored into scratch namespaces and checked through the API; nothing
//! left behind — no scratch namespace, no Restore — whether the drill passed or failed; no request denied.

use crate::cli::openova;
use crate::support::S3Server;
use crate::support::kube::{KubeOptions, KubeTestBed, Velero};
use std::path::Path;

const SA_USER: &str = "system:serviceaccount:openova:openova";

fn drill(name: &str, resources: &[&str]) -> String {
    let list: Vec<String> = resources.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "kind: Drill\nname: {name}\nvelero:\n  - policy: nightly\n    backup: latest\n    expect:\n      \
         namespaces: [shop]\n      resources: [{}]\n",
        list.join(", ")
    )
}

fn left_behind(bed: &KubeTestBed) -> Vec<String> {
    let ns = bed.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    let restores = bed.kubectl_ok(&["get", "restores.velero.io", "-n", "velero", "-o", "name"]);
    ns.lines()
        .filter(|l| l.starts_with("namespace/drill-"))
        .chain(restores.lines())
        .map(str::to_string)
        .collect()
}

fn apply(bed: &KubeTestBed, dir: &Path, files: &[&str]) {
    for f in files {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        bed.apply_ok(&text, &["--server-side"]);
    }
}

#[test]
fn drill_into_cluster_restores_into_scratch_namespaces_and_leaves_nothing_behind() {
    let s3 = S3Server::start_default();
    let bed = KubeTestBed::start(KubeOptions {
        controller_manager: true,
    });
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "kind: VeleroPolicy\nname: nightly\nschedule: \"0 3 * * *\"\nretention: 30d\nrpo: 26h\n\
             includedNamespaces: [shop]\nstorage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
            s3.url("velero"),
            s3.endpoint()
        ),
    )
    .unwrap();
    let drills = tmp.path().join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    let good = drills.join("good.yaml");
    std::fs::write(
        &good,
        drill(
            "good",
            &["configmaps/shop/prices", "secrets/shop/db-credentials"],
        ),
    )
    .unwrap();
    let bad = drills.join("bad.yaml");
    std::fs::write(&bad, drill("bad", &["configmaps/shop/absent"])).unwrap();
    let out = tmp.path().join("out");
    let (p, o, d) = (
        policy.to_str().unwrap(),
        out.to_str().unwrap(),
        drills.to_str().unwrap(),
    );
    let r = openova(
        None,
        &["render", "--policies", p, "--drills", d, "--out", o],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // The rendered drill CronJob runs it into the cluster.
    let cron = std::fs::read_to_string(out.join("openova/cronjob-drill-good.yaml")).unwrap();
    assert!(cron.contains("- --into-cluster"), "{cron}");

    let mut velero = Velero::start(&bed, &s3);
    apply(
        &bed,
        &out,
        &[
            "velero/backupstoragelocation-nightly.yaml",
            "velero/schedule-nightly.yaml",
            "openova/namespace.yaml",
            "openova/serviceaccount.yaml",
            "openova/role-velero.yaml",
            "openova/rolebinding-velero.yaml",
            "openova/clusterrole-drill.yaml",
            "openova/clusterrolebinding-drill.yaml",
        ],
    );
    velero.wait_location_available(&bed, "nightly");
    bed.kubectl_ok(&["create", "namespace", "shop"]);
    bed.kubectl_ok(&[
        "create",
        "configmap",
        "prices",
        "-n",
        "shop",
        "--from-literal=tea=3",
    ]);
    bed.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db-credentials",
        "-n",
        "shop",
        "--from-literal=password=x",
    ]);
    let token = bed.kubectl_ok(&["create", "token", "openova", "-n", "openova"]);
    let kc = bed.kubeconfig_with_token("openova", token.trim());
    let kc = kc.to_str().unwrap();
    let run = openova(
        Some(&s3),
        &["backup", "--policies", p, "--wait", "--kubeconfig", kc],
    );
    assert_eq!(run.code, 0, "{run:?}\nvelero log:\n{}", velero.log());

    let run = openova(
        Some(&s3),
        &[
            "drill",
            "run",
            good.to_str().unwrap(),
            "--policies",
            p,
            "--into-cluster",
            "--kubeconfig",
            kc,
            "--no-store",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}\nvelero log:\n{}", velero.log());
    let v = &run.json()["velero"][0];
    let c = &v["in_cluster"];
    assert_eq!(c["phase"], "Completed", "{v:#}");
    assert_eq!(c["found"], 3, "{v:#}");
    assert!(c["missing"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(c["left_behind"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(
        c["namespaces"][0]
            .as_str()
            .unwrap()
            .starts_with("shop -> drill-"),
        "{v:#}"
    );
    assert_eq!(left_behind(&bed), Vec::<String>::new());
    // The platform's own namespace was not touched.
    assert_eq!(
        bed.jsonpath("configmap", "prices", "shop", "{.data.tea}")
            .as_deref(),
        Some("3")
    );

    // A drill that fails (an object the backup lacks) cleans up all the same.
    let run = openova(
        Some(&s3),
        &[
            "drill",
            "run",
            bad.to_str().unwrap(),
            "--policies",
            p,
            "--into-cluster",
            "--kubeconfig",
            kc,
            "--no-store",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let c = &run.json()["velero"][0]["in_cluster"];
    assert!(
        c["missing"][0]
            .as_str()
            .unwrap()
            .starts_with("configmaps/drill-"),
        "{c:#}"
    );
    assert!(c["left_behind"].as_array().unwrap().is_empty(), "{c:#}");
    assert_eq!(left_behind(&bed), Vec::<String>::new());

    let denied = bed.denied(SA_USER);
    assert!(denied.is_empty(), "{denied:#?}");
}
