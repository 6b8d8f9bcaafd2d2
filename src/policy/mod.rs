//! The platform's backup policies (`policies/*.yaml`, one YAML document per protected thing):
//! the serde model, validation with errors that name the file, the document and the field, cron
//! schedules and durations. No I/O beyond reading the policy files.

pub mod duration;
pub mod schedule;
pub mod source;

pub use duration::Duration;
pub use schedule::Schedule;
pub use source::{Archive, Request};

use crate::location::{Connection, Limits, Location, StorageUrl};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is part of the message, not a `source`: printed as a chain it would repeat.
    #[error(
        "cannot read {path}: {cause} (point --policies or OPENOVA_POLICIES at a policy file or a folder of them)"
    )]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}, document {doc}{name}: {why}")]
    Invalid {
        path: PathBuf,
        doc: usize,
        name: String,
        why: String,
    },
    #[error("no policy files (*.yaml, *.yml) in {0}")]
    Empty(PathBuf),
    #[error("policy '{name}' is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("no policy named '{0}' (known: {1})")]
    Unknown(String, String),
    #[error("give --policy NAME, or --storage URL and --server NAME")]
    NoArchive,
    #[error("give --policy NAME or --storage URL")]
    NoStorage,
    #[error("policy {name} is a {is}; {command} needs a {needs}")]
    WrongKind {
        name: String,
        is: &'static str,
        needs: &'static str,
        command: &'static str,
    },
    #[error(transparent)]
    BadUrl(#[from] crate::location::BadUrl),
}

/// Where a policy's backups are stored. Credentials never go here: they come from the
/// environment (AWS_ACCESS_KEY_ID, ...) or a mounted Secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Storage {
    /// Parsed when the policy is loaded: a bad URL fails the policy file there.
    pub url: StorageUrl,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    /// Time bounds and retries of the calls to this storage; what is left out keeps its default.
    #[serde(default)]
    pub timeouts: StorageTimeouts,
}

/// `storage.timeouts`: overrides of the defaults that suit R2 (README, "Timeouts and retries").
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageTimeouts {
    pub connect: Option<Duration>,
    pub attempt: Option<Duration>,
    pub operation: Option<Duration>,
    pub stall: Option<Duration>,
    pub retries: Option<u32>,
}

impl StorageTimeouts {
    fn limits(&self) -> Limits {
        let std = |d: Option<Duration>| d.and_then(|d| d.0.to_std().ok());
        Limits {
            connect: std(self.connect),
            attempt: std(self.attempt),
            operation: std(self.operation),
            stall: std(self.stall),
            retries: self.retries,
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (field, d) in [
            ("connect", self.connect),
            ("attempt", self.attempt),
            ("operation", self.operation),
            ("stall", self.stall),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(format!(
                    "storage.timeouts.{field}: must be longer than 0 (leave it out for the default)"
                ));
            }
        }
        if let (Some(a), Some(o)) = (self.attempt, self.operation)
            && o < a
        {
            return Err(format!(
                "storage.timeouts.operation {o} is shorter than attempt {a}: a call could never \
                 finish one attempt"
            ));
        }
        Ok(())
    }
}

impl Storage {
    /// The connection settings, what the policy leaves open filled from the environment.
    #[must_use]
    pub fn connection(&self) -> Connection {
        Connection {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            limits: self.timeouts.limits(),
        }
        .with_env()
    }

    /// The URL with its connection settings, ready for `store::open`.
    #[must_use]
    pub fn location(&self) -> Location {
        Location {
            url: self.url.clone(),
            conn: self.connection(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VeleroPolicy {
    pub name: String,
    pub schedule: String,
    pub retention: Duration,
    pub rpo: Duration,
    #[serde(default)]
    pub included_namespaces: Vec<String>,
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    pub storage: Storage,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresPolicy {
    pub name: String,
    pub cluster: ClusterRef,
    pub server_name: String,
    pub base_backup_schedule: String,
    pub recovery_window: Duration,
    pub rpo: Duration,
    #[serde(default = "one")]
    pub minimum_redundancy: u32,
    pub storage: Storage,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind")]
pub enum Policy {
    VeleroPolicy(VeleroPolicy),
    PostgresPolicy(PostgresPolicy),
}

impl Policy {
    /// `VeleroPolicy` or `PostgresPolicy`, as the `kind:` of its document says.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::VeleroPolicy(_) => "VeleroPolicy",
            Self::PostgresPolicy(_) => "PostgresPolicy",
        }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::VeleroPolicy(p) => &p.name,
            Self::PostgresPolicy(p) => &p.name,
        }
    }

    #[must_use]
    pub fn storage(&self) -> &Storage {
        match self {
            Self::VeleroPolicy(p) => &p.storage,
            Self::PostgresPolicy(p) => &p.storage,
        }
    }

    /// The cron schedule (validated at load time).
    #[must_use]
    pub fn schedule(&self) -> Schedule {
        let expr = match self {
            Self::VeleroPolicy(p) => &p.schedule,
            Self::PostgresPolicy(p) => &p.base_backup_schedule,
        };
        Schedule::parse(expr).unwrap_or_else(|_| unreachable!("validated when loaded"))
    }

    #[must_use]
    pub fn rpo(&self) -> Duration {
        match self {
            Self::VeleroPolicy(p) => p.rpo,
            Self::PostgresPolicy(p) => p.rpo,
        }
    }

    /// Checks what serde cannot: schedules, names, positive durations, the window against the
    /// RPO. (The storage URL is parsed by serde, as part of reading the document.)
    fn validate(&self) -> Result<(), String> {
        Schedule::parse(self.schedule_expr())
            .map_err(|e| format!("{}: {e}", self.schedule_field()))?;
        if self.name().is_empty()
            || !self
                .name()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "name {:?}: use lowercase letters, digits and '-'",
                self.name()
            ));
        }
        let (keep_field, keep) = match self {
            Self::VeleroPolicy(p) => ("retention", p.retention),
            Self::PostgresPolicy(p) => ("recoveryWindow", p.recovery_window),
        };
        if keep.is_zero() {
            return Err(format!(
                "{keep_field}: must be longer than 0 (it says how long backups are kept)"
            ));
        }
        if self.rpo().is_zero() {
            return Err("rpo: must be longer than 0".into());
        }
        self.storage().timeouts.validate()?;
        if keep < self.rpo() {
            return Err(format!(
                "{keep_field} {keep} is shorter than rpo {}: nothing could meet both",
                self.rpo()
            ));
        }
        Ok(())
    }

    fn schedule_expr(&self) -> &str {
        match self {
            Self::VeleroPolicy(p) => &p.schedule,
            Self::PostgresPolicy(p) => &p.base_backup_schedule,
        }
    }

    fn schedule_field(&self) -> &'static str {
        match self {
            Self::VeleroPolicy(_) => "schedule",
            Self::PostgresPolicy(_) => "baseBackupSchedule",
        }
    }
}

/// A policy with the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policy: Policy,
    pub source: String,
}

/// Parses every document of one YAML file.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Loaded>> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let invalid = |name: &str, why: String| Error::Invalid {
            path: path.to_path_buf(),
            doc: i + 1,
            name: if name.is_empty() {
                String::new()
            } else {
                format!(" ({name})")
            },
            why,
        };
        let value = serde_norway::Value::deserialize(doc)
            .map_err(|e| invalid("", format!("not valid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let policy = from_value(value).map_err(|why| invalid(&name, why))?;
        policy.validate().map_err(|why| invalid(&name, why))?;
        out.push(Loaded {
            policy,
            source: format!("{}, document {}", path.display(), i + 1),
        });
    }
    Ok(out)
}

fn from_value(mut value: serde_norway::Value) -> Result<Policy, String> {
    let kinds = "VeleroPolicy or PostgresPolicy";
    let map = value
        .as_mapping_mut()
        .ok_or("a policy must be a mapping with kind, name, ...")?;
    let kind = map
        .remove("kind")
        .ok_or(format!("kind: missing; write {kinds}"))?;
    match kind.as_str() {
        Some("VeleroPolicy") => with_path(value).map(Policy::VeleroPolicy),
        Some("PostgresPolicy") => with_path(value).map(Policy::PostgresPolicy),
        _ => Err(format!("kind: unknown kind {kind:?}; write {kinds}")),
    }
}

/// Deserializes, naming the field that failed (`retention: ...`, `storage.url: ...`).
fn with_path<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
        p if p == "." => e.inner().to_string(),
        p => format!("{p}: {}", e.inner()),
    })
}

/// A policy file as read from disk: its path and its text. `render` puts the text in a ConfigMap as is.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Loads a policy file, or every `*.yaml`/`*.yml` file of a folder (sorted), rejecting duplicate names.
pub fn load(path: &Path) -> Result<Vec<Loaded>> {
    parse_all(path, &read_sources(path)?)
}

/// Reads a policy file, or every `*.yaml`/`*.yml` file of a folder, sorted by path.
pub fn read_sources(path: &Path) -> Result<Vec<Source>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|cause| Error::Read {
            path: p.to_path_buf(),
            cause,
        })
    };
    let files = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|cause| Error::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|f| {
            let text = read(&f)?;
            Ok(Source { path: f, text })
        })
        .collect()
}

/// Parses the sources read from `path` (named in the error when there is no policy at all),
/// rejecting duplicate names.
pub fn parse_all(path: &Path, sources: &[Source]) -> Result<Vec<Loaded>> {
    let mut all: Vec<Loaded> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for f in sources {
        for l in parse_file(&f.path, &f.text)? {
            if let Some(first) = seen.insert(l.policy.name().to_string(), l.source.clone()) {
                return Err(Error::Duplicate {
                    name: l.policy.name().to_string(),
                    first,
                    second: l.source,
                });
            }
            all.push(l);
        }
    }
    if all.is_empty() {
        return Err(Error::Empty(path.to_path_buf()));
    }
    Ok(all)
}

/// Keeps only the named policy, or all when `name` is `None`.
pub fn select(all: Vec<Loaded>, name: Option<&str>) -> Result<Vec<Loaded>> {
    let Some(name) = name else { return Ok(all) };
    let known = all
        .iter()
        .map(|l| l.policy.name().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let picked: Vec<Loaded> = all
        .into_iter()
        .filter(|l| l.policy.name() == name)
        .collect();
    if picked.is_empty() {
        Err(Error::Unknown(name.to_string(), known))
    } else {
        Ok(picked)
    }
}

#[cfg(test)]
mod tests;
