//! A drill's record: its reports and an evidence bundle (`evidence.tar.zst`: the reports, each
//! restore's PostgreSQL log, the definition and the plan) with its `.sha256`, stored in the
//! bucket under `openova/drills/TIMESTAMP-NAME/` beside the storage prefix (as the retention
//! lease is), and written to a local folder when asked. Nothing secret goes in: reports hold
//! storage URLs and results, never credentials.

use super::report::Report;
use super::run::Evidence;
use crate::store::{self, ObjectStore};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Where drill records live, relative to the location one level above the storage prefix.
pub const PREFIX: &str = "openova/drills";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("building the evidence bundle: {0}")]
    Bundle(std::io::Error),
    #[error("writing {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
    #[error("report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The files of one record, by name.
pub struct Files {
    /// `TIMESTAMP-NAME`, the record's folder.
    pub folder: String,
    pub files: Vec<(String, Vec<u8>)>,
}

/// The record of `report`: `report.json`, `report.md`, `junit.xml`, `evidence.tar.zst` and
/// `evidence.tar.zst.sha256`.
pub fn files(report: &Report, definition: &str, evidence: &[Evidence]) -> Result<Files, Error> {
    let json = serde_json::to_vec_pretty(report)?;
    let md = report.markdown().into_bytes();
    let junit = report.junit().into_bytes();
    let mut bundle: Vec<(String, Vec<u8>)> = vec![
        ("report.json".into(), json.clone()),
        ("report.md".into(), md.clone()),
        ("junit.xml".into(), junit.clone()),
        ("drill.yaml".into(), definition.as_bytes().to_vec()),
    ];
    bundle.extend(evidence.iter().map(|e| (e.name.clone(), e.body.clone())));
    let tar_zst = bundle_of(&bundle).map_err(Error::Bundle)?;
    let sum = format!("{}  evidence.tar.zst\n", hex(&Sha256::digest(&tar_zst)));
    Ok(Files {
        folder: format!(
            "{}-{}",
            report.started.format("%Y%m%dT%H%M%SZ"),
            report.drill
        ),
        files: vec![
            ("report.json".into(), json),
            ("report.md".into(), md),
            ("junit.xml".into(), junit),
            ("evidence.tar.zst".into(), tar_zst),
            ("evidence.tar.zst.sha256".into(), sum.into_bytes()),
        ],
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar of `files`, zstd-compressed.
fn bundle_of(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_slice())?;
    }
    let raw = tar.into_inner()?;
    zstd::stream::encode_all(raw.as_slice(), 3)
}

/// Stores the record under `openova/drills/FOLDER/` of `store`; returns the folder's key.
pub async fn store(store: &dyn ObjectStore, files: &Files) -> Result<String, Error> {
    let folder = format!("{PREFIX}/{}", files.folder);
    // The report last: `drill history` lists a run by its report, so a record is whole once seen.
    let mut order: Vec<&(String, Vec<u8>)> = files.files.iter().collect();
    order.sort_by_key(|(name, _)| name == "report.json");
    for (name, body) in order {
        store
            .put(&format!("{folder}/{name}"), Bytes::from(body.clone()))
            .await?;
    }
    Ok(folder)
}

/// Writes the record into `dir/FOLDER/`; returns that folder.
pub fn write(dir: &Path, files: &Files) -> Result<std::path::PathBuf, Error> {
    let folder = dir.join(&files.folder);
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |cause| Error::Write { path, cause }
    };
    std::fs::create_dir_all(&folder).map_err(err(&folder))?;
    for (name, body) in &files.files {
        let p = folder.join(name);
        std::fs::write(&p, body).map_err(err(&p))?;
    }
    Ok(folder)
}

/// The files inside an evidence bundle, by name (for tests and audits).
pub fn unbundle(tar_zst: &[u8]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use std::io::Read;
    let raw = zstd::stream::decode_all(tar_zst)?;
    let mut out = Vec::new();
    for entry in tar::Archive::new(raw.as_slice()).entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body)?;
        out.push((name, body));
    }
    Ok(out)
}
