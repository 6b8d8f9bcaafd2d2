//! `openova render`: reads the policy (and drill) files, renders the backup layer, writes the files.

use super::Outcome;
use crate::policy;
use crate::render::{self, Input, Options};
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// A policy file or a folder of them.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// Drill files (file or folder): each becomes a weekly CronJob. None when not given.
    #[arg(long)]
    pub drills: Option<PathBuf>,
    /// The folder to write the manifests into (created; files openova renders are overwritten, others left alone).
    #[arg(long)]
    pub out: PathBuf,
    /// S3 endpoint for policies without storage.endpoint (R2: https://ACCOUNT_ID.r2.cloudflarestorage.com).
    #[arg(long, env = "OPENOVA_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Container image of openova's CronJobs.
    #[arg(long, default_value = concat!("ghcr.io/openova/openova:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Velero's disaster procedure: storage locations ReadOnly, so nothing writes into the bucket restored from.
    #[arg(long)]
    pub restore_mode: bool,
}

pub fn run(args: RenderArgs) -> anyhow::Result<Outcome> {
    let input = Input {
        policies: policy::read_sources(&args.policies)?,
        drills: match &args.drills {
            Some(d) => policy::read_sources(d)?,
            None => Vec::new(),
        },
        policies_path: args.policies.clone(),
    };
    let opts = Options {
        endpoint: args.endpoint,
        image: args.image,
        restore_mode: args.restore_mode,
    };
    let rendered = render::render(&input, &opts)?;
    for (rel, text) in &rendered.files {
        write(&args.out.join(rel), text)?;
    }
    println!(
        "rendered {} files into {}",
        rendered.files.len(),
        args.out.display()
    );
    Ok(Outcome::Ok)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
