//! Where a command reads from: a storage named on its command line (`--storage URL`, with
//! `--endpoint` and, for a Barman archive, `--server NAME`), or the storage of a policy named by
//! `--policy NAME` in the policy files (`--policies PATH`). Every command that reads a storage
//! resolves it here, so the choice between the two, the defaults and the errors are the same
//! everywhere. The flags themselves are `cli`'s; this sees only their values.

use super::{Error, Loaded, Policy, Result};
use crate::location::{Connection, Location, StorageUrl};
use std::path::Path;

/// A Barman Cloud archive: a storage and the server folder in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub location: Location,
    pub server: String,
}

/// What a command line says about where to read. A `--storage` wins over the policies.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `--storage URL`.
    pub storage: Option<&'a str>,
    /// `--endpoint`, for `--storage` (a policy names its own).
    pub endpoint: Option<&'a str>,
    /// `--policy NAME`.
    pub policy: Option<&'a str>,
    /// `--policies PATH`: a policy file or a folder of them.
    pub policies: &'a Path,
}

impl Request<'_> {
    /// A Barman Cloud archive for `command`: `--storage` with `server`, or the storage and
    /// `serverName` of the PostgresPolicy `--policy` names.
    pub fn archive(&self, server: Option<&str>, command: &'static str) -> Result<Archive> {
        match (self.storage, server, self.policy) {
            (Some(url), Some(server), _) => Ok(Archive {
                location: self.given(url)?,
                server: server.to_string(),
            }),
            (None, None, Some(name)) => match self.named(name)? {
                Policy::PostgresPolicy(p) => Ok(Archive {
                    location: p.storage.location(),
                    server: p.server_name,
                }),
                other => Err(wrong_kind(&other, "PostgresPolicy", command)),
            },
            _ => Err(Error::NoArchive),
        }
    }

    /// A Velero location for `command`: `--storage`, or the storage of the VeleroPolicy
    /// `--policy` names.
    pub fn velero(&self, command: &'static str) -> Result<Location> {
        match (self.storage, self.policy) {
            (Some(url), _) => self.given(url),
            (None, Some(name)) => match self.named(name)? {
                Policy::VeleroPolicy(p) => Ok(p.storage.location()),
                other => Err(wrong_kind(&other, "VeleroPolicy", command)),
            },
            (None, None) => Err(Error::NoStorage),
        }
    }

    /// One storage of any kind: `--storage`, or that of the policy `--policy` names, or else of
    /// the first policy.
    pub fn one(&self) -> Result<Location> {
        match self.storage {
            Some(url) => self.given(url),
            None => Ok(self.picked()?[0].policy.storage().location()),
        }
    }

    /// Every storage to read: `--storage`, or each distinct storage of the policies (only the
    /// one `--policy` names, when given).
    pub fn every(&self) -> Result<Vec<Location>> {
        match self.storage {
            Some(url) => Ok(vec![self.given(url)?]),
            None => Ok(by_location(&self.picked()?)
                .into_iter()
                .map(|(l, _)| l)
                .collect()),
        }
    }

    fn given(&self, url: &str) -> Result<Location> {
        let conn = Connection {
            endpoint: self.endpoint.map(str::to_string),
            ..Connection::default()
        };
        Ok(Location {
            url: StorageUrl::parse(url)?,
            conn: conn.with_env(),
        })
    }

    fn picked(&self) -> Result<Vec<Loaded>> {
        super::select(super::load(self.policies)?, self.policy)
    }

    fn named(&self, name: &str) -> Result<Policy> {
        let mut picked = super::select(super::load(self.policies)?, Some(name))?;
        Ok(picked.swap_remove(0).policy)
    }
}

fn wrong_kind(p: &Policy, needs: &'static str, command: &'static str) -> Error {
    Error::WrongKind {
        name: p.name().to_string(),
        is: p.kind(),
        needs,
        command,
    }
}

/// The policies grouped by the storage they read (URL and connection), in order of first
/// appearance: policies sharing a storage can be judged from one read of it.
#[must_use]
pub fn by_location(picked: &[Loaded]) -> Vec<(Location, Vec<&Policy>)> {
    let mut groups: Vec<(Location, Vec<&Policy>)> = Vec::new();
    for l in picked {
        let at = l.policy.storage().location();
        match groups.iter_mut().find(|(g, _)| *g == at) {
            Some((_, g)) => g.push(&l.policy),
            None => groups.push((at, vec![&l.policy])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICIES: &str = r#"
kind: VeleroPolicy
name: cluster-daily
schedule: "0 3 * * *"
retention: 30d
rpo: 26h
storage: { url: "s3://backups/velero", endpoint: "https://r2.example" }
---
kind: PostgresPolicy
name: platform-db
cluster: { namespace: databases, name: platform-db }
serverName: pg-main
baseBackupSchedule: "0 2 * * *"
recoveryWindow: 7d
rpo: 5m
storage: { url: "s3://backups/cnpg", endpoint: "https://r2.example" }
---
kind: PostgresPolicy
name: other-db
cluster: { namespace: databases, name: other-db }
serverName: other-db
baseBackupSchedule: "0 2 * * *"
recoveryWindow: 7d
rpo: 5m
storage: { url: "s3://backups/cnpg/", endpoint: "https://r2.example" }
"#;

    fn with_policies(check: impl FnOnce(Request)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, POLICIES).unwrap();
        check(Request {
            storage: None,
            endpoint: None,
            policy: None,
            policies: &path,
        });
    }

    #[test]
    fn an_archive_comes_from_the_command_line_or_a_postgres_policy() {
        with_policies(|r| {
            let given = Request {
                storage: Some("file:///srv/cnpg"),
                ..r
            };
            let a = given.archive(Some("db"), "wal-get").unwrap();
            assert_eq!(a.location.url.to_string(), "file:///srv/cnpg");
            assert_eq!(a.server, "db");

            let named = Request {
                policy: Some("platform-db"),
                ..r
            };
            let a = named.archive(None, "wal-get").unwrap();
            assert_eq!(a.location.url.to_string(), "s3://backups/cnpg");
            assert_eq!(
                a.location.conn.endpoint.as_deref(),
                Some("https://r2.example")
            );
            assert_eq!(a.server, "pg-main");
        });
    }

    #[test]
    fn the_wrong_kind_or_no_source_says_what_to_give() {
        with_policies(|r| {
            let velero = Request {
                policy: Some("cluster-daily"),
                ..r
            };
            let e = velero.archive(None, "restore postgres").unwrap_err();
            assert_eq!(
                e.to_string(),
                "policy cluster-daily is a VeleroPolicy; restore postgres needs a PostgresPolicy"
            );
            let pg = Request {
                policy: Some("platform-db"),
                ..r
            };
            let e = pg.velero("restore velero").unwrap_err();
            assert_eq!(
                e.to_string(),
                "policy platform-db is a PostgresPolicy; restore velero needs a VeleroPolicy"
            );
            let e = r.archive(None, "wal-get").unwrap_err();
            assert_eq!(
                e.to_string(),
                "give --policy NAME, or --storage URL and --server NAME"
            );
            let e = r.velero("restore velero").unwrap_err();
            assert_eq!(e.to_string(), "give --policy NAME or --storage URL");
            let bad = Request {
                storage: Some("bucket/prefix"),
                ..r
            };
            let e = bad.one().unwrap_err().to_string();
            assert!(e.starts_with("invalid storage URL 'bucket/prefix'"), "{e}");
        });
    }

    #[test]
    fn policies_sharing_a_storage_are_read_once() {
        with_policies(|r| {
            let every = r.every().unwrap();
            let urls: Vec<String> = every.iter().map(|l| l.url.to_string()).collect();
            assert_eq!(urls, ["s3://backups/velero", "s3://backups/cnpg"]);
            let picked = crate::policy::load(r.policies).unwrap();
            let groups = by_location(&picked);
            let names: Vec<Vec<&str>> = groups
                .iter()
                .map(|(_, ps)| ps.iter().map(|p| p.name()).collect())
                .collect();
            assert_eq!(
                names,
                [vec!["cluster-daily"], vec!["platform-db", "other-db"]]
            );
            assert_eq!(r.one().unwrap().url.to_string(), "s3://backups/velero");
        });
    }
}
