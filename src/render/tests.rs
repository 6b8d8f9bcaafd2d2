use super::*;
use serde_json::Value;

const VELERO: &str = r#"
kind: VeleroPolicy
name: cluster-daily
schedule: "0 3 * * 7"
retention: 30d
rpo: 26h
includedNamespaces: ["*"]
excludedNamespaces: [kube-system]
storage:
  url: "s3://openova-backups/velero"
"#;

const POSTGRES: &str = r#"
kind: PostgresPolicy
name: platform-db
cluster: { namespace: databases, name: pg }
serverName: platform-db-v2
baseBackupSchedule: "0 2 * * *"
recoveryWindow: 7d
rpo: 5m
storage:
  url: "s3://openova-backups/cnpg"
  endpoint: https://acct.r2.cloudflarestorage.com
"#;

fn input(files: &[(&str, &str)]) -> Input {
    Input {
        policies_path: PathBuf::from("policies"),
        policies: files
            .iter()
            .map(|(name, text)| Source {
                path: PathBuf::from("policies").join(name),
                text: (*text).to_string(),
            })
            .collect(),
        drills: Vec::new(),
    }
}

fn opts() -> Options {
    Options {
        endpoint: Some("https://example.r2.cloudflarestorage.com".into()),
        image: "ghcr.io/openova/openova:test".into(),
        restore_mode: false,
    }
}

fn rendered(files: &[(&str, &str)], opts: &Options) -> Rendered {
    render(&input(files), opts).unwrap_or_else(|e| panic!("render: {e}"))
}

/// The YAML document of `path` (after its comment header) as JSON.
fn doc(r: &Rendered, path: &str) -> Value {
    let text = r
        .files
        .get(path)
        .unwrap_or_else(|| panic!("{path} not rendered; files: {:?}", r.files.keys()));
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"))
}

#[test]
fn same_input_same_bytes() {
    let files = [("a.yaml", VELERO), ("b.yaml", POSTGRES)];
    assert_eq!(rendered(&files, &opts()), rendered(&files, &opts()));
}

#[test]
fn velero_location_is_set_up_for_r2() {
    let r = rendered(&[("a.yaml", VELERO)], &opts());
    let bsl = doc(&r, "velero/backupstoragelocation-cluster-daily.yaml");
    assert_eq!(bsl["kind"], "BackupStorageLocation");
    assert_eq!(bsl["metadata"]["namespace"], "velero");
    let spec = &bsl["spec"];
    assert_eq!(spec["provider"], "aws");
    assert_eq!(spec["objectStorage"]["bucket"], "openova-backups");
    assert_eq!(spec["objectStorage"]["prefix"], "velero");
    assert_eq!(spec["config"]["region"], "auto");
    assert_eq!(
        spec["config"]["s3Url"],
        "https://example.r2.cloudflarestorage.com"
    );
    assert_eq!(spec["config"]["s3ForcePathStyle"], "true");
    assert_eq!(spec["config"]["checksumAlgorithm"], "");
    assert_eq!(spec["credential"]["name"], secrets::VELERO);
    assert_eq!(spec["credential"]["key"], "cloud");
    assert_eq!(spec["accessMode"], "ReadWrite");
}

#[test]
fn restore_mode_makes_the_location_read_only() {
    let mut o = opts();
    o.restore_mode = true;
    let r = rendered(&[("a.yaml", VELERO)], &o);
    let bsl = doc(&r, "velero/backupstoragelocation-cluster-daily.yaml");
    assert_eq!(bsl["spec"]["accessMode"], "ReadOnly");
}

#[test]
fn velero_schedule_carries_cron_ttl_and_namespaces() {
    let r = rendered(&[("a.yaml", VELERO)], &opts());
    let s = doc(&r, "velero/schedule-cluster-daily.yaml");
    // Weekday 7 (Sunday for cron(8)) is refused by robfig/cron: written as a name.
    assert_eq!(s["spec"]["schedule"], "0 3 * * SUN");
    let t = &s["spec"]["template"];
    assert_eq!(t["ttl"], "720h0m0s");
    assert_eq!(t["includedNamespaces"], serde_json::json!(["*"]));
    assert_eq!(t["excludedNamespaces"], serde_json::json!(["kube-system"]));
    assert_eq!(t["storageLocation"], "cluster-daily");
}

#[test]
fn cnpg_object_store_scheduled_backup_and_cluster_patch() {
    let r = rendered(&[("b.yaml", POSTGRES)], &opts());
    let os = doc(&r, "cnpg/objectstore-platform-db.yaml");
    assert_eq!(os["apiVersion"], "barmancloud.cnpg.io/v1");
    assert_eq!(os["metadata"]["namespace"], "databases");
    assert_eq!(os["spec"]["retentionPolicy"], "7d");
    let c = &os["spec"]["configuration"];
    assert_eq!(c["destinationPath"], "s3://openova-backups/cnpg");
    // The policy's own endpoint wins over --endpoint.
    assert_eq!(c["endpointURL"], "https://acct.r2.cloudflarestorage.com");
    assert_eq!(c["s3Credentials"]["accessKeyId"]["name"], secrets::CNPG);
    assert_eq!(c["wal"]["compression"], "gzip");
    assert!(c.get("serverName").is_none(), "the plugin refuses it: {c}");

    let sb = doc(&r, "cnpg/scheduledbackup-platform-db.yaml");
    assert_eq!(sb["spec"]["schedule"], "0 0 2 * * *");
    assert_eq!(sb["spec"]["cluster"]["name"], "pg");
    assert_eq!(sb["spec"]["method"], "plugin");
    assert_eq!(
        sb["spec"]["pluginConfiguration"]["name"],
        "barman-cloud.cloudnative-pg.io"
    );

    let patch = doc(&r, "patches/cluster-databases-pg.yaml");
    assert_eq!(patch["kind"], "Cluster");
    let plugin = &patch["spec"]["plugins"][0];
    assert_eq!(plugin["isWALArchiver"], true);
    assert_eq!(plugin["parameters"]["barmanObjectName"], "platform-db");
    assert_eq!(plugin["parameters"]["serverName"], "platform-db-v2");
}

#[test]
fn kustomization_lists_everything_but_the_cluster_patches() {
    let r = rendered(&[("a.yaml", VELERO), ("b.yaml", POSTGRES)], &opts());
    let k = doc(&r, "kustomization.yaml");
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = r
        .files
        .keys()
        .map(String::as_str)
        .filter(|p| *p != "kustomization.yaml" && !p.starts_with("patches/"))
        .collect();
    assert_eq!(listed, expected);
    assert!(r.files.contains_key("patches/cluster-databases-pg.yaml"));
}

#[test]
fn no_secret_is_rendered() {
    let r = rendered(&[("a.yaml", VELERO), ("b.yaml", POSTGRES)], &opts());
    for (path, text) in &r.files {
        let v: Value = serde_norway::from_str(text).unwrap();
        assert_ne!(v["kind"], "Secret", "{path}");
    }
}

#[test]
fn rbac_is_namespaced_and_bound_to_openova() {
    // Without drills with Velero entries, no cluster-wide right at all.
    let r = rendered(&[("a.yaml", VELERO), ("b.yaml", POSTGRES)], &opts());
    assert!(!r.files.values().any(|t| t.contains("kind: ClusterRole")));
    let role = doc(&r, "openova/role-databases.yaml");
    assert_eq!(role["metadata"]["namespace"], "databases");
    let binding = doc(&r, "openova/rolebinding-velero.yaml");
    assert_eq!(binding["subjects"][0]["name"], "openova");
    assert_eq!(binding["subjects"][0]["namespace"], "openova");
}

#[test]
fn policies_config_map_holds_the_files_as_written() {
    let r = rendered(&[("a.yaml", VELERO), ("b.yaml", POSTGRES)], &opts());
    let cm = doc(&r, "openova/configmap-policies.yaml");
    assert_eq!(cm["data"]["a.yaml"], VELERO);
    assert_eq!(cm["data"]["b.yaml"], POSTGRES);
    let cron = doc(&r, "openova/cronjob-cron.yaml");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["args"], serde_json::json!(["cron"]));
    assert_eq!(pod["serviceAccountName"], "openova");
    assert_eq!(cron["spec"]["schedule"], "*/15 * * * *");
}

#[test]
fn errors_name_the_policy_and_what_to_do() {
    let no_endpoint = Options {
        endpoint: None,
        ..opts()
    };
    let e = render(&input(&[("a.yaml", VELERO)]), &no_endpoint).unwrap_err();
    assert!(matches!(e, Error::NoEndpoint { .. }), "{e}");
    assert!(e.to_string().contains("cluster-daily") && e.to_string().contains("--endpoint"));

    let file = VELERO.replace("s3://openova-backups/velero", "file:///srv/backups");
    let e = render(&input(&[("a.yaml", &file)]), &opts()).unwrap_err();
    assert!(matches!(e, Error::NotS3 { .. }), "{e}");

    let hours = POSTGRES.replace("recoveryWindow: 7d", "recoveryWindow: 36h");
    let e = render(&input(&[("b.yaml", &hours)]), &opts()).unwrap_err();
    assert!(matches!(e, Error::WindowNotDays { .. }), "{e}");
    assert!(e.to_string().contains("36h"), "{e}");
}
