use super::*;

const GOOD: &str = r#"
kind: VeleroPolicy
name: cluster-daily
schedule: "0 3 * * *"
retention: 30d
rpo: 26h
includedNamespaces: ["*"]
excludedNamespaces: [kube-system, velero]
storage: { url: "s3://openova-backups/velero" }
---
kind: PostgresPolicy
name: platform-db
cluster: { namespace: databases, name: platform-db }
serverName: platform-db
baseBackupSchedule: "0 2 * * *"
recoveryWindow: 7d
rpo: 5m
storage: { url: "s3://openova-backups/cnpg" }
"#;

fn err(text: &str) -> String {
    parse_file(Path::new("policies/x.yaml"), text)
        .unwrap_err()
        .to_string()
}

fn with(line_from: &str, line_to: &str) -> String {
    GOOD.replace(line_from, line_to)
}

#[test]
fn parses_the_documented_example() {
    let all = parse_file(Path::new("p.yaml"), GOOD).unwrap();
    assert_eq!(all.len(), 2);
    let Policy::PostgresPolicy(p) = &all[1].policy else {
        panic!("second is postgres")
    };
    assert_eq!(p.minimum_redundancy, 1);
    assert_eq!(p.recovery_window.to_string(), "7d");
    assert_eq!(all[0].source, "p.yaml, document 1");
}

#[test]
fn errors_name_file_document_and_field() {
    let e = err(&with("\"0 3 * * *\"", "\"0 3 * *\""));
    assert!(
        e.starts_with("policies/x.yaml, document 1 (cluster-daily): schedule:"),
        "{e}"
    );
    let e = err(&with("kind: PostgresPolicy", "kind: MysqlPolicy"));
    assert!(
        e.contains("document 2 (platform-db): kind: unknown kind")
            && e.contains("VeleroPolicy or PostgresPolicy"),
        "{e}"
    );
    let e = err(&with("retention: 30d", "retention: 30"));
    assert!(e.contains("retention") && e.contains("has no unit"), "{e}");
    let e = err(&with("rpo: 26h", "rpo: 26h\nrpoo: 1h"));
    assert!(e.contains("unknown field `rpoo`"), "{e}");
    let e = err(&with("retention: 30d", "retention: 0d"));
    assert!(e.contains("retention: must be longer than 0"), "{e}");
    let e = err(&with("recoveryWindow: 7d", "recoveryWindow: 2m"));
    assert!(
        e.contains("recoveryWindow 2m is shorter than rpo 5m"),
        "{e}"
    );
    let e = err(&with("s3://openova-backups/cnpg", "openova-backups/cnpg"));
    assert!(e.contains("document 2 (platform-db): storage.url"), "{e}");
}

/// A bad storage URL fails the policy file when it is loaded, naming the file, the document,
/// the policy and the field; there is no parsed-later fallback to stumble on.
#[test]
fn a_bad_storage_url_is_an_error_of_the_policy() {
    let e = err(&with(
        "s3://openova-backups/velero",
        "file://relative/velero",
    ));
    assert_eq!(
        e,
        "policies/x.yaml, document 1 (cluster-daily): storage.url: invalid storage URL \
         'file://relative/velero': a file URL needs an absolute path, like file:///var/backups"
    );
    let e = err(&with("s3://openova-backups/cnpg", "s3://"));
    assert_eq!(
        e,
        "policies/x.yaml, document 2 (platform-db): storage.url: invalid storage URL 's3://': \
         the bucket name is missing"
    );
    let all = parse_file(Path::new("p.yaml"), GOOD).unwrap();
    assert_eq!(
        all[1].policy.storage().url,
        StorageUrl::S3 {
            bucket: "openova-backups".into(),
            prefix: "cnpg".into()
        }
    );
}

#[test]
fn duplicate_names_across_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
    std::fs::write(dir.path().join("b.yaml"), GOOD).unwrap();
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(
        e.starts_with("policy 'cluster-daily' is defined twice"),
        "{e}"
    );
    assert!(
        select(load(&dir.path().join("a.yaml")).unwrap(), Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("known: cluster-daily, platform-db")
    );
}

#[test]
fn the_platform_policies_in_the_repository_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let all = load(&dir).unwrap();
    let names: Vec<&str> = all.iter().map(|l| l.policy.name()).collect();
    assert_eq!(names, ["cluster-daily", "platform-db"]);
}

#[test]
fn a_missing_policy_path_says_once_why_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = format!("{:#}", anyhow::Error::from(load(&missing).unwrap_err()));
    assert!(
        e.starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
    assert_eq!(
        e.matches("os error 2").count(),
        1,
        "the cause once, also as a chain: {e}"
    );
    assert!(e.contains("--policies or OPENOVA_POLICIES"), "{e}");
}

#[test]
fn storage_timeouts_override_the_defaults_and_are_checked() {
    let text = with(
        "storage: { url: \"s3://openova-backups/cnpg\" }",
        "storage:\n  url: \"s3://openova-backups/cnpg\"\n  timeouts: { attempt: 10s, operation: 1m, retries: 5 }",
    );
    let all = parse_file(Path::new("p.yaml"), &text).unwrap();
    let limits = all[1].policy.storage().connection().limits;
    let t = crate::location::Timeouts::default().with(&limits);
    assert_eq!(t.attempt, std::time::Duration::from_secs(10));
    assert_eq!(t.operation, std::time::Duration::from_secs(60));
    assert_eq!(t.retries, 5);
    assert_eq!(t.stall, crate::location::Timeouts::default().stall);

    let e = err(&text.replace("attempt: 10s", "attempt: 0s"));
    assert!(
        e.contains("storage.timeouts.attempt: must be longer than 0"),
        "{e}"
    );
    let e = err(&text.replace("operation: 1m", "operation: 5s"));
    assert!(
        e.contains("operation 5s is shorter than attempt 10s"),
        "{e}"
    );
    let e = err(&text.replace("retries: 5", "retry: 5"));
    assert!(e.contains("timeouts") && e.contains("retry"), "{e}");
}
