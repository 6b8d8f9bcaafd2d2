//! Drill definitions (`restore-drills/*.yaml`): the serde model and its validation, with errors
//! that name the file, the document and the field, as policies do.

use crate::policy::Duration;
use crate::restore::postgres::parse_time;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {cause} (give a drill file, or a folder of them with --drills)")]
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
    #[error("no drill files (*.yaml, *.yml) in {0}")]
    Empty(PathBuf),
    #[error("drill '{name}' is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("no drill named '{0}' (known: {1})")]
    Unknown(String, String),
}

/// One drill: PostgreSQL points to restore and check, Velero backups to read, budgets to meet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Drill {
    pub name: String,
    #[serde(default)]
    pub postgres: Vec<PostgresEntry>,
    #[serde(default)]
    pub velero: Vec<VeleroEntry>,
    #[serde(default)]
    pub budgets: Budgets,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresEntry {
    /// A PostgresPolicy's name.
    pub policy: String,
    #[serde(default = "default_points")]
    pub points: Vec<Point>,
    #[serde(default)]
    pub checks: Vec<Check>,
}

fn default_points() -> Vec<Point> {
    vec![Point::Oldest, Point::Random, Point::Latest]
}

/// A point of the recovery window to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Point {
    /// The later of (now − recoveryWindow) and the window's start, plus a small margin.
    Oldest,
    /// A seeded random point inside the window.
    Random,
    /// The newest restorable point.
    Latest,
    /// A fixed time.
    At(DateTime<Utc>),
}

impl Point {
    /// `oldest`, `random`, `latest`, or a time (RFC 3339 or as PostgreSQL prints it).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "oldest" => Ok(Self::Oldest),
            "random" => Ok(Self::Random),
            "latest" => Ok(Self::Latest),
            other => parse_time(other)
                .map(Self::At)
                .map_err(|e| format!("{e}; or write oldest, random or latest")),
        }
    }

    /// How the point is named in reports: `oldest`, `random`, `latest` or the time.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Oldest => "oldest".into(),
            Self::Random => "random".into(),
            Self::Latest => "latest".into(),
            Self::At(t) => crate::report::time(*t),
        }
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A SQL check run on the restored database. `:target` in the SQL is bound as a `timestamptz`
/// parameter (the point's target time; for `latest`, the time the drill reached).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub sql: String,
    #[serde(default)]
    pub database: Option<String>,
    pub expect: Expect,
}

/// What a check's result must be: exactly one of these.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// The first column of the first row, a number, is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<i64>,
    /// The first column of the first row, a number, is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<i64>,
    /// The result, rows joined by newlines and columns by tabs, is exactly this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The SHA-256 (hex) of the result as written for `equals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VeleroEntry {
    /// A VeleroPolicy's name.
    pub policy: String,
    /// A backup name, or `latest` (the newest Completed backup of the policy).
    #[serde(default = "latest")]
    pub backup: String,
    #[serde(default)]
    pub expect: VeleroExpect,
}

fn latest() -> String {
    "latest".into()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VeleroExpect {
    /// Namespaces whose objects must be in the backup.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Objects that must be in the backup: `GROUP_RESOURCE/NAMESPACE/NAME` (`deployments.apps/shop/api`,
    /// `secrets/shop/db-credentials`) or `GROUP_RESOURCE/NAME` for cluster-scoped ones.
    #[serde(default)]
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Budgets {
    /// The longest a point may take from start to checks passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<Duration>,
    /// The most data a point may lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Duration>,
}

impl Drill {
    /// Checks what serde cannot: names, one expectation per check, resource forms, budgets.
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "name {:?}: use lowercase letters, digits and '-'",
                self.name
            ));
        }
        if self.postgres.is_empty() && self.velero.is_empty() {
            return Err("nothing to drill: give postgres or velero entries".into());
        }
        for (i, e) in self.postgres.iter().enumerate() {
            if e.points.is_empty() {
                return Err(format!(
                    "postgres[{i}].points: empty; write e.g. [oldest, random, latest]"
                ));
            }
            for (j, c) in e.checks.iter().enumerate() {
                let at = format!("postgres[{i}].checks[{j}]");
                if c.sql.trim().is_empty() {
                    return Err(format!("{at}.sql: empty"));
                }
                c.expect
                    .validate()
                    .map_err(|why| format!("{at}.expect: {why}"))?;
            }
        }
        for (i, e) in self.velero.iter().enumerate() {
            for r in &e.expect.resources {
                let parts = r.split('/').count();
                if !(2..=3).contains(&parts) || r.split('/').any(str::is_empty) {
                    return Err(format!(
                        "velero[{i}].expect.resources: {r:?}; write GROUP_RESOURCE/NAMESPACE/NAME \
                         (deployments.apps/shop/api) or GROUP_RESOURCE/NAME for cluster-scoped objects"
                    ));
                }
            }
        }
        for (field, d) in [("rto", self.budgets.rto), ("rpo", self.budgets.rpo)] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(format!("budgets.{field}: must be longer than 0"));
            }
        }
        Ok(())
    }
}

impl Expect {
    fn validate(&self) -> Result<(), String> {
        let given = [
            self.at_least.is_some(),
            self.at_most.is_some(),
            self.equals.is_some(),
            self.sha256.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(format!(
                "give exactly one of atLeast, atMost, equals, sha256 (found {given})"
            ));
        }
        if let Some(h) = &self.sha256
            && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!("sha256 {h:?}: 64 hex digits expected"));
        }
        Ok(())
    }
}

/// A drill with the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub drill: Drill,
    /// `FILE, document N`, for messages.
    pub source: String,
    /// The file it came from (kept in the evidence bundle).
    pub path: PathBuf,
}

/// Parses every document of one YAML file (`kind: Drill`).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Loaded>, Error> {
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
        let mut value = serde_norway::Value::deserialize(doc)
            .map_err(|e| invalid("", format!("not valid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let map = value
            .as_mapping_mut()
            .ok_or_else(|| invalid("", "a drill must be a mapping with kind, name, ...".into()))?;
        match map.remove("kind").as_ref().and_then(|k| k.as_str()) {
            Some("Drill") => {}
            Some(other) => {
                return Err(invalid(&name, format!("kind: {other:?}; write Drill")));
            }
            None => return Err(invalid(&name, "kind: missing; write Drill".into())),
        }
        let drill: Drill = serde_path_to_error::deserialize(value).map_err(|e| {
            invalid(
                &name,
                match e.path().to_string() {
                    p if p == "." => e.inner().to_string(),
                    p => format!("{p}: {}", e.inner()),
                },
            )
        })?;
        drill.validate().map_err(|why| invalid(&name, why))?;
        out.push(Loaded {
            drill,
            source: format!("{}, document {}", path.display(), i + 1),
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Loads a drill file, or every `*.yaml`/`*.yml` file of a folder (sorted), rejecting duplicates.
pub fn load(path: &Path) -> Result<Vec<Loaded>, Error> {
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
    let mut all: Vec<Loaded> = Vec::new();
    for f in &files {
        for l in parse_file(f, &read(f)?)? {
            if let Some(first) = all.iter().find(|a| a.drill.name == l.drill.name) {
                return Err(Error::Duplicate {
                    name: l.drill.name.clone(),
                    first: first.source.clone(),
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

/// Keeps only the named drill, or all when `name` is `None`.
pub fn select(all: Vec<Loaded>, name: Option<&str>) -> Result<Vec<Loaded>, Error> {
    let Some(name) = name else { return Ok(all) };
    let known = all
        .iter()
        .map(|l| l.drill.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let picked: Vec<Loaded> = all.into_iter().filter(|l| l.drill.name == name).collect();
    if picked.is_empty() {
        Err(Error::Unknown(name.to_string(), known))
    } else {
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
kind: Drill
name: platform-db-window
postgres:
  - policy: platform-db
    points: [oldest, random, latest, "2026-12-03 00:31:12.123456+00"]
    checks:
      - name: orders exist
        sql: "select count(*) from orders where created_at <= :target"
        expect: { atLeast: 1 }
velero:
  - policy: cluster-daily
    expect:
      namespaces: [databases, shop]
      resources: ["deployments.apps/shop/api", "secrets/shop/db-credentials"]
budgets: { rto: 15m, rpo: 5m }
"#;

    fn err(text: &str) -> String {
        parse_file(Path::new("d.yaml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_the_documented_example() {
        let l = parse_file(Path::new("d.yaml"), GOOD).unwrap();
        let d = &l[0].drill;
        assert_eq!(d.name, "platform-db-window");
        assert_eq!(d.postgres[0].points.len(), 4);
        assert_eq!(
            d.postgres[0].points[3].label(),
            "2026-12-03T00:31:12Z",
            "a psql timestamp is read"
        );
        assert_eq!(d.velero[0].backup, "latest");
        assert_eq!(d.budgets.rto.unwrap().0.num_minutes(), 15);
    }

    #[test]
    fn names_the_file_document_and_field() {
        let e = err("kind: Drill\nname: x\npostgres: [{ policy: p, points: [soon] }]\n");
        assert!(
            e.starts_with("d.yaml, document 1 (x): postgres[0].points[0]: ")
                && e.contains("or write oldest, random or latest"),
            "{e}"
        );
        assert!(err("kind: Policy\nname: x\n").contains("kind: \"Policy\"; write Drill"));
        assert!(err("name: x\n").contains("kind: missing"));
        assert!(
            err("kind: Drill\nname: x\npostgres: [{ policy: p, colour: red }]\n")
                .contains("unknown field `colour`")
        );
        assert!(
            err("kind: Drill\nname: x\npostgres: [{ policy: p, checks: [{ name: c, sql: s, expect: { atLeast: 1, sha256: ab } }] }]\n")
                .contains("postgres[0].checks[0].expect: give exactly one of")
        );
        assert!(err("kind: Drill\nname: x\n").contains("nothing to drill"));
        assert!(
            err("kind: Drill\nname: x\nvelero: [{ policy: v, expect: { resources: [api] } }]\n")
                .contains("velero[0].expect.resources: \"api\"")
        );
        assert!(
            err("kind: Drill\nname: x\nvelero: [{ policy: v }]\nbudgets: { rto: 0s }\n")
                .contains("budgets.rto: must be longer than 0")
        );
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// The drills shipped in `restore-drills/` load, and name policies of `policies/` of the right kind.
    #[test]
    fn shipped_drills_load_and_name_known_policies() {
        let drills = load(Path::new("restore-drills")).unwrap();
        let policies = crate::policy::load(Path::new("policies")).unwrap();
        let kind = |name: &str| {
            policies
                .iter()
                .find(|l| l.policy.name() == name)
                .map(|l| matches!(l.policy, crate::policy::Policy::PostgresPolicy(_)))
        };
        for d in &drills {
            for e in &d.drill.postgres {
                assert_eq!(kind(&e.policy), Some(true), "{}: {}", d.source, e.policy);
            }
            for e in &d.drill.velero {
                assert_eq!(kind(&e.policy), Some(false), "{}: {}", d.source, e.policy);
            }
        }
    }
}
