//! Velero: one `BackupStorageLocation` and one `Schedule` per VeleroPolicy, both named after it.

use super::{Doc, Options, Target, VELERO_NAMESPACE, convert, meta, secrets};
use crate::policy::VeleroPolicy;
use serde_json::json;

pub(super) fn docs(p: &VeleroPolicy, t: &Target, opts: &Options) -> Vec<Doc> {
    vec![location(p, t, opts), schedule(p)]
}

fn location(p: &VeleroPolicy, t: &Target, opts: &Options) -> Doc {
    let access = if opts.restore_mode {
        "ReadOnly"
    } else {
        "ReadWrite"
    };
    let mut object_storage = json!({ "bucket": t.bucket });
    if !t.prefix.is_empty() {
        object_storage["prefix"] = json!(t.prefix);
    }
    let value = json!({
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": meta(&p.name, Some(VELERO_NAMESPACE), Some(&p.name)),
        "spec": {
            "provider": "aws",
            "objectStorage": object_storage,
            // velero-plugin-for-aws reads every value as a string.
            "config": {
                "region": t.region,
                "s3Url": t.endpoint,
                "s3ForcePathStyle": t.path_style.to_string(),
                // Empty: the plugin sends no CRC32 trailing checksum, which R2 rejects.
                "checksumAlgorithm": "",
            },
            "credential": { "name": secrets::VELERO, "key": secrets::VELERO_KEY },
            "accessMode": access,
        },
    });
    let comment = format!(
        "Where Velero writes the backups of policy {name}: {url}. Credentials: the key `{key}` of Secret \
         {ns}/{secret} (an AWS credentials file), never in this file.{ro}",
        name = p.name,
        url = p.storage.url,
        key = secrets::VELERO_KEY,
        ns = VELERO_NAMESPACE,
        secret = secrets::VELERO,
        ro = if opts.restore_mode {
            " Restore mode: ReadOnly, so that nothing writes into or deletes from the bucket restored from."
        } else {
            ""
        }
    );
    Doc {
        path: format!("velero/backupstoragelocation-{}.yaml", p.name),
        in_kustomization: true,
        comment,
        value,
    }
}

fn schedule(p: &VeleroPolicy) -> Doc {
    let mut template = json!({ "ttl": convert::go_duration(p.retention) });
    if !p.included_namespaces.is_empty() {
        template["includedNamespaces"] = json!(p.included_namespaces);
    }
    if !p.excluded_namespaces.is_empty() {
        template["excludedNamespaces"] = json!(p.excluded_namespaces);
    }
    template["storageLocation"] = json!(p.name);
    let value = json!({
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": meta(&p.name, Some(VELERO_NAMESPACE), Some(&p.name)),
        "spec": {
            "schedule": p_schedule(p),
            "template": template,
        },
    });
    Doc {
        path: format!("velero/schedule-{}.yaml", p.name),
        in_kustomization: true,
        comment: format!(
            "Velero backs up policy {} at \"{}\" (UTC) and keeps each backup {} (ttl).",
            p.name, p.schedule, p.retention
        ),
        value,
    }
}

fn p_schedule(p: &VeleroPolicy) -> String {
    crate::policy::Schedule::parse(&p.schedule)
        .map(|s| s.five_fields())
        // Policies are validated when loaded; an unparsable schedule cannot reach here.
        .unwrap_or_else(|_| p.schedule.clone())
}
