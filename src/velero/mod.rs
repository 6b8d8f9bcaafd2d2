//! The Velero catalog, read from the object store alone (`PREFIX/backups/NAME/...`), and the
//! inspection of a backup tarball. Velero's own layout is documented in DESIGN.md; this module
//! reads it tolerantly (unknown fields are ignored: Velero adds fields over time).

pub mod backup;
pub mod tarball;

pub use backup::{VeleroBackup, load};
pub use tarball::{ResourceCount, inspect_tarball};

/// The namespace Velero runs in on the platform (and where its objects are rendered).
pub const NAMESPACE: &str = "velero";

/// Velero backups belong to a policy through the Schedule's label, or a `NAME-` name prefix.
#[must_use]
pub fn velero_backups_of<'a>(name: &str, all: &'a [VeleroBackup]) -> Vec<&'a VeleroBackup> {
    let prefix = format!("{name}-");
    all.iter()
        // The name prefix only for backups without the label: policy `cluster` must not claim
        // backups of schedule `cluster-daily`.
        .filter(|b| match &b.schedule {
            Some(s) => s == name,
            None => b.name.starts_with(&prefix),
        })
        .collect()
}

/// Why no backup could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("no backup {backup} in {url} (run `openova catalog --storage {url}` to list them)")]
    NotFound { backup: String, url: String },
    #[error("backup {name} is unreadable: {why}")]
    Unreadable { name: String, why: String },
}

/// The backup named `backup`, or for `latest` the newest Completed one (of `policy`'s schedule
/// when given, else of the whole storage).
pub fn choose<'a>(
    all: &'a [VeleroBackup],
    policy: Option<&str>,
    backup: &str,
    url: &str,
) -> Result<&'a VeleroBackup, ChooseError> {
    let candidates: Vec<&VeleroBackup> = match policy {
        Some(name) => velero_backups_of(name, all),
        None => all.iter().collect(),
    };
    let chosen = if backup == "latest" {
        candidates
            .into_iter()
            .filter(|b| b.is_completed())
            .max_by_key(|b| b.start)
    } else {
        all.iter().find(|b| b.name == backup)
    };
    let b = chosen.ok_or_else(|| ChooseError::NotFound {
        backup: backup.to_string(),
        url: url.to_string(),
    })?;
    if let Some(why) = &b.unreadable {
        return Err(ChooseError::Unreadable {
            name: b.name.clone(),
            why: why.clone(),
        });
    }
    Ok(b)
}

/// The key of a backup's tarball, relative to the storage prefix.
#[must_use]
pub fn tarball_key(name: &str) -> String {
    format!("backups/{name}/{name}.tar.gz")
}
