//! Where backups are stored, as plain data: a storage URL (`s3://bucket/prefix`, `file:///path`)
//! and the connection settings an S3 store needs besides it (endpoint, region, addressing).
//!
//! A leaf: it knows nothing of policies or of talking to a store. `policy` keeps these in its
//! validated model and `store` opens them, so neither has to import the other.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A string that is not a storage URL; the message says which forms are accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage URL '{url}': {why}")]
pub struct BadUrl {
    pub url: String,
    pub why: String,
}

/// A storage location: `s3://bucket[/prefix]` or `file:///absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum StorageUrl {
    S3 { bucket: String, prefix: String },
    File { root: PathBuf },
}

impl StorageUrl {
    /// Parses a storage URL; the error says which forms are accepted.
    pub fn parse(s: &str) -> Result<Self, BadUrl> {
        let bad = |why: &str| BadUrl {
            url: s.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the bucket name is missing"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file URL needs an absolute path, like file:///var/backups",
                ));
            }
            return Ok(Self::File {
                root: PathBuf::from(path),
            });
        }
        Err(bad("use s3://BUCKET/PREFIX or file:///PATH"))
    }

    /// The full key of `key` relative to this location's prefix (S3 only).
    #[must_use]
    pub fn full_key(&self, key: &str) -> String {
        match self {
            Self::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{key}"),
            _ => key.to_string(),
        }
    }
}

impl StorageUrl {
    /// The location one level up and the last component of this one:
    /// `s3://b/x/velero` -> (`s3://b/x`, `velero`); `s3://b` -> (`s3://b`, ``).
    #[must_use]
    pub fn parent(&self) -> (Self, String) {
        match self {
            Self::S3 { bucket, prefix } => {
                let (up, name) = prefix.rsplit_once('/').unwrap_or(("", prefix));
                (
                    Self::S3 {
                        bucket: bucket.clone(),
                        prefix: up.to_string(),
                    },
                    name.to_string(),
                )
            }
            Self::File { root } => {
                let name = root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    Self::File {
                        root: root.parent().unwrap_or(root).to_path_buf(),
                    },
                    name,
                )
            }
        }
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::File { root } => write!(f, "file://{}", root.display()),
        }
    }
}

// Policies hold a parsed URL: a bad one is an error of the policy file when it is loaded, named by
// its field (`storage.url: invalid storage URL ...`), never a value found wrong later.
impl TryFrom<String> for StorageUrl {
    type Error = BadUrl;
    fn try_from(s: String) -> Result<Self, BadUrl> {
        Self::parse(&s)
    }
}

impl From<StorageUrl> for String {
    fn from(u: StorageUrl) -> Self {
        u.to_string()
    }
}

/// Where the endpoint and addressing of an S3 store come from, besides the URL itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `storage.endpoint` from a policy, `--endpoint`, or `OPENOVA_S3_ENDPOINT`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
}

impl Connection {
    /// Fills what the policy left open from the environment (`OPENOVA_S3_ENDPOINT`,
    /// `OPENOVA_S3_REGION`, `OPENOVA_S3_PATH_STYLE`).
    #[must_use]
    pub fn with_env(mut self) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        self.endpoint = self.endpoint.or_else(|| env("OPENOVA_S3_ENDPOINT"));
        self.region = self.region.or_else(|| env("OPENOVA_S3_REGION"));
        if self.path_style.is_none() {
            self.path_style = env("OPENOVA_S3_PATH_STYLE").map(|v| v == "true" || v == "1");
        }
        self
    }
}

/// A storage to open: its URL and how to connect to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub url: StorageUrl,
    pub conn: Connection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_and_file_urls() {
        let u = StorageUrl::parse("s3://b/cnpg/").unwrap();
        assert_eq!(
            u,
            StorageUrl::S3 {
                bucket: "b".into(),
                prefix: "cnpg".into()
            }
        );
        assert_eq!(u.full_key("x/y"), "cnpg/x/y");
        assert_eq!(StorageUrl::parse("s3://b").unwrap().full_key("k"), "k");
        assert!(matches!(
            StorageUrl::parse("file:///tmp/x").unwrap(),
            StorageUrl::File { .. }
        ));
    }

    #[test]
    fn parent_locations() {
        let (up, name) = StorageUrl::parse("s3://b/x/velero").unwrap().parent();
        assert_eq!(
            (up.to_string(), name.as_str()),
            ("s3://b/x".to_string(), "velero")
        );
        let (up, name) = StorageUrl::parse("s3://b/cnpg").unwrap().parent();
        assert_eq!(
            (up.to_string(), name.as_str()),
            ("s3://b".to_string(), "cnpg")
        );
    }

    #[test]
    fn rejects_other_forms_with_a_hint() {
        for s in ["http://x", "s3://", "file://rel/path", "bucket/prefix"] {
            let e = StorageUrl::parse(s).unwrap_err().to_string();
            assert!(e.contains(s), "{e}");
        }
    }
}
