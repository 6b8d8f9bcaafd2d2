//! Scratch namespaces a drill restores into, and what it checks there through the API: objects found
//! by group, resource and name (the resource's version through discovery), and the namespaces deleted
//! after, waited for until gone.

use super::{Error, Result};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::discovery;
use std::time::{Duration, Instant};

/// Whether `group_resource` (`configmaps`, `deployments.apps`) named `name` exists, in namespace `ns`
/// (or cluster-scoped when `None`).
pub async fn exists(
    client: &Client,
    group_resource: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<bool> {
    let (plural, group) = group_resource
        .split_once('.')
        .unwrap_or((group_resource, ""));
    let what = format!(
        "find {group_resource} {}{name}",
        ns.map(|n| format!("{n}/")).unwrap_or_default()
    );
    let g = discovery::group(client, group)
        .await
        .map_err(|e| Error::from_kube(what.clone(), e))?;
    let Some((ar, _)) = g
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| ar.plural == plural)
    else {
        return Ok(false);
    };
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    Ok(api
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(what, e))?
        .is_some())
}

/// Deletes namespace `name` and waits until it is gone (its objects with it); gone already is fine.
pub async fn delete_namespace(client: &Client, name: &str, bound: Duration) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let what = format!("delete Namespace {name}");
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(Error::from_kube(what, e)),
    }
    let started = Instant::now();
    loop {
        let left = api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(what.clone(), e))?;
        if left.is_none() {
            return Ok(());
        }
        if started.elapsed() > bound {
            return Err(Error::TimedOut {
                what,
                bound,
                state: "still Terminating".into(),
                hint: "the namespace controller (kube-controller-manager) finishes deletions; check finalizers with kubectl get namespace -o yaml".into(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
