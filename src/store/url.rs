use super::{Error, Result};
use std::fmt;
use std::path::PathBuf;

/// A storage location: `s3://bucket[/prefix]` or `file:///absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StorageUrl {
    S3 { bucket: String, prefix: String },
    File { root: PathBuf },
}

impl StorageUrl {
    /// Parses a storage URL; the error says which forms are accepted.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadUrl {
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
