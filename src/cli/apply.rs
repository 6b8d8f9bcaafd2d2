//! `openova apply DIR`: server-side apply (field manager `openova`) of what `openova render` wrote: the
//! files DIR/kustomization.yaml lists, as Flux would apply them.

use super::{Outcome, print_json};
use crate::cluster;
use crate::report::Output;
use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A folder `openova render` wrote (its kustomization.yaml lists what to apply).
    pub dir: PathBuf,
    /// Have the API server validate everything (schemas, CEL rules, RBAC) without storing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn run(args: ApplyArgs, output: Output) -> anyhow::Result<Outcome> {
    let manifests = read(&args.dir)?;
    let client = cluster::connect(args.kubeconfig.as_deref()).await?;
    let applied = cluster::apply(&client, &manifests, args.dry_run).await?;
    match output {
        Output::Json => print_json(&serde_json::json!({ "applied": applied }))?,
        Output::Text => {
            let how = if args.dry_run {
                "validated (dry run)"
            } else {
                "applied"
            };
            for a in &applied {
                match &a.namespace {
                    Some(ns) => println!("{how} {} {ns}/{}", a.kind, a.name),
                    None => println!("{how} {} {}", a.kind, a.name),
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// The manifests of the files `DIR/kustomization.yaml` lists under `resources`.
fn read(dir: &Path) -> anyhow::Result<Vec<cluster::Manifest>> {
    #[derive(serde::Deserialize)]
    struct Kustomization {
        #[serde(default)]
        resources: Vec<String>,
    }
    let kpath = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kpath).with_context(|| {
        format!(
            "cannot read {} (give a folder `openova render` wrote)",
            kpath.display()
        )
    })?;
    let k: Kustomization = serde_norway::from_str(&text)
        .with_context(|| format!("{}: not a kustomization", kpath.display()))?;
    let mut out = Vec::new();
    for r in &k.resources {
        let path = dir.join(r);
        if !path.is_file() {
            bail!(
                "{}: resource {r} is not a file in {} (openova apply takes the flat folders openova render writes)",
                kpath.display(),
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        out.extend(cluster::parse(&path.display().to_string(), &text)?);
    }
    Ok(out)
}
