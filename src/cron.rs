//! `openova cron`, the CronJob's entry point: the status of every policy, then retention (`--apply`,
//! under each storage's lease) for every policy, and one result per policy. Velero backups the cluster
//! knows are deleted through Velero ([`crate::retention::run::VeleroCluster`]); the rest through the
//! store. A policy's result is the worse of its status and its retention: `ok`, `violated` (a check
//! failed, or retention was refused) or `error` (its storage or the cluster could not be used).

use crate::policy::Loaded;
use crate::retention::run::{self, Options, Report, VeleroCluster};
use crate::status::{self, PolicyStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Worst first when compared: `Error > Violated > Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Violated,
    Error,
}

/// What retention did for one policy, without the plan's keys (a WAL plan may name a million).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionDone {
    pub deleted_backups: usize,
    pub deleted_objects: usize,
    pub deleted_bytes: u64,
    /// Backups deleted through Velero (DeleteBackupRequest), among `deleted_backups`.
    pub via_velero: Vec<String>,
    /// Backups past their horizon kept, with why (`name: reason`).
    pub kept: Vec<String>,
    pub refused: Option<String>,
    pub error: Option<String>,
}

/// One policy's line.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRun {
    pub policy: String,
    pub kind: &'static str,
    pub verdict: Verdict,
    pub status: PolicyStatus,
    /// `None` when retention was not run (the storage could not be read for status).
    pub retention: Option<RetentionDone>,
}

/// Judges and prunes every policy of `picked` as of `now`.
pub async fn run(
    picked: &[Loaded],
    now: DateTime<Utc>,
    opts: &Options,
    cluster: Option<&dyn VeleroCluster>,
) -> Vec<PolicyRun> {
    let opts = Options {
        apply: true,
        ..opts.clone()
    };
    let statuses = status::read::judge_all(picked, now, opts.concurrency).await;
    let mut out = Vec::new();
    for s in statuses {
        let Some(l) = picked.iter().find(|l| l.policy.name() == s.name) else {
            continue;
        };
        let mut verdict = if s.error.is_some() {
            Verdict::Error
        } else if s.ok {
            Verdict::Ok
        } else {
            Verdict::Violated
        };
        let retention = if s.error.is_some() {
            None
        } else {
            let done = match run::one(&l.policy, &opts, now, cluster).await {
                Ok(r) => summary(&r),
                Err(e) => RetentionDone {
                    error: Some(format!("{e:#}")),
                    ..summary(&Report::default())
                },
            };
            if done.error.is_some() {
                verdict = verdict.max(Verdict::Error);
            } else if done.refused.is_some() {
                verdict = verdict.max(Verdict::Violated);
            }
            Some(done)
        };
        out.push(PolicyRun {
            policy: s.name.clone(),
            kind: s.kind,
            verdict,
            status: s,
            retention,
        });
    }
    out
}

fn summary(r: &Report) -> RetentionDone {
    let applied = r.applied.clone().unwrap_or_default();
    RetentionDone {
        deleted_backups: applied.backups,
        deleted_objects: applied.objects,
        deleted_bytes: applied.bytes,
        via_velero: applied.via_velero,
        kept: r
            .plan
            .as_ref()
            .map(|p| {
                p.kept
                    .iter()
                    .map(|k| format!("{}: {}", k.name, k.reason))
                    .collect()
            })
            .unwrap_or_default(),
        refused: r.refused.clone(),
        error: None,
    }
}
