//! The platform's backup layer as Kubernetes manifests, built from the policies: Velero's
//! `BackupStorageLocation` and `Schedule` per VeleroPolicy, the Barman Cloud plugin's `ObjectStore`, a CNPG
//! `ScheduledBackup` and a `Cluster` patch per PostgresPolicy, and openova's own Namespace,
//! ServiceAccount, RBAC, ConfigMaps and CronJobs, with a `kustomization.yaml` so Flux applies the folder
//! as is.
//!
//! Pure: it takes the policy (and drill) files as text and returns files as text; the CLI reads and
//! writes them. Deterministic: the same input gives the same bytes (maps keep insertion order, inputs
//! are taken in path order, nothing depends on the clock or the environment).
//!
//! Secrets are never rendered: every credential is a reference to a Secret by name and key
//! ([`secrets`] lists them); the platform creates those Secrets itself (SOPS, sealed secrets, ...).

mod cnpg;
mod convert;
mod openova;
mod velero;

#[cfg(test)]
mod tests;

pub use cnpg::recovery_cluster;
pub use convert::{go_duration, retention_days};

use crate::drill::def as drill_def;
use crate::location::StorageUrl;
use crate::policy::{self, Policy, Source};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] policy::Error),
    #[error(transparent)]
    Drill(#[from] drill_def::Error),
    #[error(
        "policy {policy}: storage.url {url} is not on S3; Velero and CNPG write to an S3 store (s3://BUCKET/PREFIX)"
    )]
    NotS3 { policy: String, url: String },
    #[error(
        "policy {policy}: no S3 endpoint; set storage.endpoint in the policy or give --endpoint (e.g. https://ACCOUNT_ID.r2.cloudflarestorage.com)"
    )]
    NoEndpoint { policy: String },
    #[error(
        "policy {policy}: recoveryWindow {window} is not a whole number of days; CNPG's retentionPolicy counts days (e.g. 7d)"
    )]
    WindowNotDays { policy: String, window: String },
    #[error("drill '{name}' is defined twice: {first} and {second}")]
    DuplicateDrill {
        name: String,
        first: String,
        second: String,
    },
    #[error("cannot write manifests as YAML: {0}")]
    Yaml(#[source] serde_norway::Error),
}

/// What to render and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The S3 endpoint for policies whose `storage.endpoint` is not set (R2:
    /// `https://ACCOUNT_ID.r2.cloudflarestorage.com`).
    pub endpoint: Option<String>,
    /// The container image of openova's CronJobs.
    pub image: String,
    /// Velero's disaster procedure: the storage locations become `accessMode: ReadOnly`, so that
    /// nothing writes into (or deletes from) the bucket being restored from.
    pub restore_mode: bool,
}

/// The input: policy files and, optionally, drill files, as text (the CLI reads them).
#[derive(Debug, Clone)]
pub struct Input {
    /// Where the policies were read from (for the "no policy" error).
    pub policies_path: PathBuf,
    pub policies: Vec<Source>,
    pub drills: Vec<Source>,
}

/// The rendered files: path relative to the output folder → YAML text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub files: BTreeMap<String, String>,
}

/// The Secrets the manifests refer to, by namespace, name and keys. None is rendered.
pub mod secrets {
    /// In Velero's namespace: an AWS credentials file (`[default]` with `aws_access_key_id` and
    /// `aws_secret_access_key`) under the key [`VELERO_KEY`], as velero-plugin-for-aws reads it.
    pub const VELERO: &str = "openova-velero-s3";
    pub const VELERO_KEY: &str = "cloud";
    /// In each CNPG cluster's namespace: the keys the Barman Cloud plugin is pointed at.
    pub const CNPG: &str = "openova-cnpg-s3";
    pub const CNPG_ACCESS_KEY: &str = "ACCESS_KEY_ID";
    pub const CNPG_SECRET_KEY: &str = "ACCESS_SECRET_KEY";
    /// In openova's namespace: the AWS SDK's variables, passed to the CronJobs as environment.
    pub const OPENOVA: &str = "openova-s3";
}

/// The namespace openova runs in, and Velero's.
pub const NAMESPACE: &str = "openova";
pub const VELERO_NAMESPACE: &str = crate::velero::NAMESPACE;

/// Renders the backup layer.
pub fn render(input: &Input, opts: &Options) -> Result<Rendered> {
    let policies = policy::parse_all(&input.policies_path, &input.policies)?;
    let drills = parse_drills(&input.drills)?;
    let mut docs: Vec<Doc> = Vec::new();
    for loaded in &policies {
        match &loaded.policy {
            Policy::VeleroPolicy(p) => docs.extend(velero::docs(p, &target(loaded, opts)?, opts)),
            Policy::PostgresPolicy(p) => docs.extend(cnpg::docs(p, &target(loaded, opts)?)?),
        }
    }
    docs.extend(openova::docs(&policies, input, &drills, opts));
    assemble(docs)
}

/// One manifest: where it goes, whether kustomize applies it, what it says.
struct Doc {
    path: String,
    /// `false` for the Cluster patches: they change objects the platform owns, so they go beside
    /// the kustomization, not into it.
    in_kustomization: bool,
    comment: String,
    value: Value,
}

/// The S3 target of a policy: bucket, prefix, endpoint, region, addressing.
struct Target {
    bucket: String,
    prefix: String,
    endpoint: String,
    region: String,
    path_style: bool,
}

impl Target {
    /// `s3://BUCKET/PREFIX` (Barman's destinationPath).
    fn url(&self) -> String {
        StorageUrl::S3 {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
        .to_string()
    }
}

fn target(loaded: &policy::Loaded, opts: &Options) -> Result<Target> {
    let p = &loaded.policy;
    let storage = p.storage();
    let StorageUrl::S3 { bucket, prefix } = &storage.url else {
        return Err(Error::NotS3 {
            policy: p.name().into(),
            url: storage.url.to_string(),
        });
    };
    let endpoint = storage
        .endpoint
        .clone()
        .or_else(|| opts.endpoint.clone())
        .ok_or_else(|| Error::NoEndpoint {
            policy: p.name().into(),
        })?;
    Ok(Target {
        bucket: bucket.clone(),
        prefix: prefix.clone(),
        endpoint,
        region: storage.region.clone().unwrap_or_else(|| "auto".into()),
        path_style: storage.path_style.unwrap_or(true),
    })
}

fn parse_drills(sources: &[Source]) -> Result<Vec<drill_def::Loaded>> {
    let mut all: Vec<drill_def::Loaded> = Vec::new();
    for s in sources {
        for l in drill_def::parse_file(&s.path, &s.text)? {
            if let Some(first) = all.iter().find(|a| a.drill.name == l.drill.name) {
                return Err(Error::DuplicateDrill {
                    name: l.drill.name.clone(),
                    first: first.source.clone(),
                    second: l.source,
                });
            }
            all.push(l);
        }
    }
    Ok(all)
}

/// Writes every document as a YAML file with its header, and the kustomization listing them.
fn assemble(docs: Vec<Doc>) -> Result<Rendered> {
    let mut out = Rendered::default();
    let mut resources: Vec<String> = Vec::new();
    for d in docs {
        let yaml = serde_norway::to_string(&d.value).map_err(Error::Yaml)?;
        out.files
            .insert(d.path.clone(), format!("{}{yaml}", header(&d.comment)));
        if d.in_kustomization {
            resources.push(d.path);
        }
    }
    resources.sort();
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    let yaml = serde_norway::to_string(&kustomization).map_err(Error::Yaml)?;
    let comment = "Flux (or `kubectl apply -k`) applies this folder as is. The Cluster patches in \
                   patches/ are not listed: they change CNPG Clusters the platform owns; add them to \
                   the kustomization that owns each Cluster, or apply them server-side (`kubectl apply --server-side -f patches/`).";
    out.files.insert(
        "kustomization.yaml".into(),
        format!("{}{yaml}", header(comment)),
    );
    Ok(out)
}

/// The comment heading every file: rendered, not edited, and what it is.
fn header(comment: &str) -> String {
    let mut out = String::from(
        "# Rendered by `openova render` from the policies: edit those and re-render.\n",
    );
    for line in wrap(comment, 110) {
        out.push_str("# ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Labels on everything openova renders.
fn labels(policy: Option<&str>) -> Value {
    let mut l = serde_json::json!({
        "app.kubernetes.io/managed-by": "openova",
        "app.kubernetes.io/part-of": "openova",
    });
    if let Some(p) = policy {
        l["openova.io/policy"] = Value::String(p.to_string());
    }
    l
}

fn meta(name: &str, namespace: Option<&str>, policy: Option<&str>) -> Value {
    let mut m = serde_json::json!({ "name": name });
    if let Some(ns) = namespace {
        m["namespace"] = Value::String(ns.to_string());
    }
    m["labels"] = labels(policy);
    m
}

/// The file name of a source, for ConfigMap keys.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
