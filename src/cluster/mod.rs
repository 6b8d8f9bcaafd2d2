//! The Kubernetes side: a client from a kubeconfig or the pod's ServiceAccount (as `kube::Config::infer`
//! finds it), and server-side apply of rendered manifests with field manager `openova` ([`apply`]).
//!
//! It owns talking to the API server and turning its answers into errors that say what was refused and
//! why (a 403 names the object and points at openova's rendered Role). It does not read files: the CLI
//! gives it manifest text. [`velero`] drives Velero through its API (backups from a Schedule, followed
//! to their end; deletions through a DeleteBackupRequest).

pub mod apply;
pub mod cnpg;
pub mod scratch;
pub mod velero;

pub use apply::{Applied, Manifest, apply, parse};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The field manager of every server-side apply openova makes.
pub const FIELD_MANAGER: &str = "openova";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no Kubernetes configuration found: {0} (give --kubeconfig or set KUBECONFIG; in a pod the ServiceAccount is used)"
    )]
    NoConfig(String),
    #[error("cannot use kubeconfig {path}: {cause}")]
    Kubeconfig { path: PathBuf, cause: String },
    #[error(
        "{what}: forbidden (403): {message}. openova's rendered Roles (openova render) list the rights it needs"
    )]
    Forbidden { what: String, message: String },
    #[error("{what}: refused by the API server ({code} {reason}): {message}")]
    Refused {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The cause is the innermost error's text, not a `source`: kube's errors repeat their sources
    /// in their own text, so a printed chain would say everything twice.
    #[error(
        "{what}: the request to the API server failed: {cause} (check the kubeconfig's server and that the API server runs)"
    )]
    Request { what: String, cause: String },
    #[error("{what}: not found ({hint})")]
    Missing { what: String, hint: String },
    #[error("{what}: no end after {}s ({state}); {hint}", bound.as_secs())]
    TimedOut {
        what: String,
        bound: std::time::Duration,
        state: String,
        hint: String,
    },
    #[error("{what}: Velero refused: {}", errors.join("; "))]
    VeleroRefused { what: String, errors: Vec<String> },
    #[error("{file}, document {doc}: {why}")]
    Manifest {
        file: String,
        doc: usize,
        why: String,
    },
}

impl Error {
    /// Classifies a failed request about `what` (`apply Schedule velero/nightly`).
    fn from_kube(what: String, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) if status.code == 403 => Self::Forbidden {
                what,
                message: status.message,
            },
            kube::Error::Api(status) => Self::Refused {
                what,
                code: status.code,
                reason: status.reason,
                message: status.message,
            },
            other => Self::Request {
                what,
                cause: root_cause(&other),
            },
        }
    }
}

/// A client from `kubeconfig`, else as `kube::Config::infer` finds one (KUBECONFIG, ~/.kube/config, the
/// pod's ServiceAccount).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |cause: String| Error::Kubeconfig {
                path: path.to_path_buf(),
                cause,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| Error::NoConfig(e.to_string()))?,
    };
    let server = config.cluster_url.to_string();
    Client::try_from(config).map_err(|e| Error::Request {
        what: format!("connect to {server}"),
        cause: root_cause(&e),
    })
}

/// The text of the innermost error of a chain (`Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The string at `path` in an object's JSON (`["status", "phase"]`), empty when absent.
fn text(v: &serde_json::Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The number at `path` in an object's JSON, 0 when absent.
fn number(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default()
}
