//! Where backups are stored, as plain data: a storage URL (`s3://bucket/prefix`, `file:///path`)
//! and the connection settings an S3 store needs besides it (endpoint, region, addressing).
//!
//! A leaf: it knows nothing of policies or of talking to a store. `policy` keeps these in its
//! validated model and `store` opens them, so neither has to import the other.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
    /// `storage.timeouts` from a policy: what it sets replaces the command's defaults; the
    /// environment (`OPENOVA_S3_*_TIMEOUT`, `OPENOVA_S3_RETRY_BUDGET`) wins over both.
    pub limits: Limits,
}

/// Time bounds and retries of the calls to a store, so that every call ends: in a retry that
/// succeeds or in a clear error within a known time. A stalled endpoint must not hang a CronJob
/// (every later run waits behind it) nor PostgreSQL's `restore_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// One attempt of a request: to its whole answer for listings, puts, deletes and heads; to the
    /// answer's headers for downloads (whose bodies are bounded by `stall` instead).
    pub attempt: Duration,
    /// One call with all its retries. A download that is still receiving data is not cut by it:
    /// the clock restarts whenever an attempt received bytes.
    pub operation: Duration,
    /// A download that receives nothing for this long, or less than 1 KiB/s on average after it,
    /// is cut and retried.
    pub stall: Duration,
    /// Retries allowed in all for one command (every call of it together): a store that keeps
    /// failing ends the command instead of being retried call after call.
    pub retries: u32,
}

impl Default for Timeouts {
    /// For R2 on a bad day: 5 s to connect, 30 s per attempt, 2 min per call with its retries,
    /// 20 s without a byte in a download, 50 retries per command.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(120),
            stall: Duration::from_secs(20),
            retries: 50,
        }
    }
}

impl Timeouts {
    /// PostgreSQL's `restore_command` must hear back quickly, or recovery stalls with no
    /// message: 10 s per attempt, 30 s per segment with its retries, 10 s without a byte.
    #[must_use]
    pub fn for_wal_get() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(30),
            stall: Duration::from_secs(10),
            retries: 50,
        }
    }

    /// These with `limits` applied over them.
    #[must_use]
    pub fn with(mut self, limits: &Limits) -> Self {
        self.connect = limits.connect.unwrap_or(self.connect);
        self.attempt = limits.attempt.unwrap_or(self.attempt);
        self.operation = limits.operation.unwrap_or(self.operation);
        self.stall = limits.stall.unwrap_or(self.stall);
        self.retries = limits.retries.unwrap_or(self.retries);
        self
    }
}

/// Overrides of some [`Timeouts`]: from a policy's `storage.timeouts`, or from the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub connect: Option<Duration>,
    pub attempt: Option<Duration>,
    pub operation: Option<Duration>,
    pub stall: Option<Duration>,
    pub retries: Option<u32>,
}

/// An environment variable that is not a valid bound; the message names it and the forms accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not {what} (unset it, or {hint})")]
pub struct BadLimit {
    pub var: &'static str,
    pub value: String,
    pub what: &'static str,
    pub hint: &'static str,
}

impl Limits {
    /// What the environment sets: `OPENOVA_S3_CONNECT_TIMEOUT`, `OPENOVA_S3_ATTEMPT_TIMEOUT`
    /// (`OPENOVA_S3_READ_TIMEOUT` is its older name), `OPENOVA_S3_OPERATION_TIMEOUT`,
    /// `OPENOVA_S3_STALL_TIMEOUT` (durations: `30`, `30s`, `500ms`, `2m`) and
    /// `OPENOVA_S3_RETRY_BUDGET` (a count; 0 turns retries off).
    pub fn from_env() -> Result<Self, BadLimit> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`Limits::from_env`] reading its variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, BadLimit> {
        let time = |name: &'static str| -> Result<Option<Duration>, BadLimit> {
            var(name)
                .map(|v| {
                    parse_duration(&v).ok_or(BadLimit {
                        var: name,
                        value: v,
                        what: "a positive duration",
                        hint: "write seconds or a number with a unit: 30, 30s, 500ms, 2m",
                    })
                })
                .transpose()
        };
        let attempt = match time("OPENOVA_S3_ATTEMPT_TIMEOUT")? {
            Some(d) => Some(d),
            None => time("OPENOVA_S3_READ_TIMEOUT")?,
        };
        let retries = var("OPENOVA_S3_RETRY_BUDGET")
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| BadLimit {
                    var: "OPENOVA_S3_RETRY_BUDGET",
                    value: v,
                    what: "a count of retries",
                    hint: "write a whole number, 0 to turn retries off",
                })
            })
            .transpose()?;
        Ok(Self {
            connect: time("OPENOVA_S3_CONNECT_TIMEOUT")?,
            attempt,
            operation: time("OPENOVA_S3_OPERATION_TIMEOUT")?,
            stall: time("OPENOVA_S3_STALL_TIMEOUT")?,
            retries,
        })
    }

    /// `other`'s settings where it has them, these elsewhere.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        Self {
            connect: other.connect.or(self.connect),
            attempt: other.attempt.or(self.attempt),
            operation: other.operation.or(self.operation),
            stall: other.stall.or(self.stall),
            retries: other.retries.or(self.retries),
        }
    }
}

/// `30` (seconds), `30s`, `500ms`, `2m`: a positive duration, or `None`.
#[must_use]
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
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
    fn limits_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        let l = Limits::from_vars(vars(&[
            ("OPENOVA_S3_ATTEMPT_TIMEOUT", "2"),
            ("OPENOVA_S3_OPERATION_TIMEOUT", "1m"),
            ("OPENOVA_S3_STALL_TIMEOUT", "500ms"),
            ("OPENOVA_S3_RETRY_BUDGET", "0"),
        ]))
        .unwrap();
        let t = Timeouts::default().with(&l);
        assert_eq!(t.attempt, Duration::from_secs(2));
        assert_eq!(t.operation, Duration::from_secs(60));
        assert_eq!(t.stall, Duration::from_millis(500));
        assert_eq!(t.retries, 0);
        assert_eq!(t.connect, Timeouts::default().connect);
        // The older name still works; the newer one wins.
        let old = Limits::from_vars(vars(&[("OPENOVA_S3_READ_TIMEOUT", "7")])).unwrap();
        assert_eq!(old.attempt, Some(Duration::from_secs(7)));
        for bad in ["0", "-1", "2h", "soon", "1.5"] {
            let e = parse_duration(bad);
            assert_eq!(e, None, "{bad}");
        }
        let e = Limits::from_vars(|k| (k == "OPENOVA_S3_STALL_TIMEOUT").then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OPENOVA_S3_STALL_TIMEOUT=\"soon\"") && e.contains("30s"),
            "{e}"
        );
        let e = Limits::from_vars(|k| (k == "OPENOVA_S3_RETRY_BUDGET").then(|| "x".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OPENOVA_S3_RETRY_BUDGET"), "{e}");
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
