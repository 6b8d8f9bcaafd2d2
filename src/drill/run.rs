//! Running a drill: every PostgreSQL point restored for real into a private folder, started as a
//! local PostgreSQL reachable only through a Unix socket, checked and stopped; every Velero backup
//! read end to end. Everything a drill starts or writes lives in one [`Workspace`], removed when
//! the drill ends however it ends (passed, failed, or dropped on SIGINT/SIGTERM).

use super::check;
use super::def::{Drill, PostgresEntry, VeleroEntry};
use super::in_cluster::{self, InClusterReport};
use super::points::{self, Resolved};
use super::report::{Budgets, PointReport, Report, SCHEMA, VeleroReport};
use crate::barman::{ServerCatalog, Window};
use crate::catalog::{self, Scope};
use crate::policy::{Loaded, Policy, PostgresPolicy, VeleroPolicy};
use crate::report::Progress;
use crate::restore::postgres::{self as pgrestore, Target, local};
use crate::restore::start;
use crate::store::{self, ObjectStore};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// The port number of the restored servers' sockets (no TCP is opened).
    pub port: u16,
    /// How long one point may replay before it fails.
    pub replay_timeout: Duration,
    /// Where the private working folder is created (default: the system's temporary folder).
    pub work_root: Option<PathBuf>,
    /// Restore the Velero entries for real through this Velero (`--into-cluster`).
    pub cluster: Option<crate::cluster::velero::Velero>,
}

/// A file collected for the evidence bundle (`logs/oldest-postgresql.log`, ...).
#[derive(Debug, Clone)]
pub struct Evidence {
    pub name: String,
    pub body: Vec<u8>,
}

/// The folder a drill works in, and the servers running in it. Dropping it stops them and
/// removes the folder.
pub struct Workspace {
    root: PathBuf,
    running: Mutex<Vec<(PathBuf, Option<u32>)>>,
    /// Socket folders made outside the root (see [`Workspace::socket_dir`]).
    outside: Mutex<Vec<PathBuf>>,
}

impl Workspace {
    /// A new private folder (0700) under `parent`.
    pub fn create(parent: Option<&Path>) -> std::io::Result<Arc<Self>> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let root = parent.join(format!("openova-drill-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&parent)?;
        std::fs::create_dir(&root)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        Ok(Arc::new(Self {
            root,
            running: Mutex::default(),
            outside: Mutex::default(),
        }))
    }

    /// A private folder (0700) for a server's Unix socket: `POINT_DIR/s`, or, when that path would
    /// pass the kernel's 107-byte limit for a socket path (a deep `--work-dir`), a short one in
    /// `/tmp`, removed with the workspace.
    fn socket_dir(&self, point_dir: &Path, port: u16) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let inside = point_dir.join("s");
        let socket = inside.join(format!(".s.PGSQL.{port}"));
        let dir = if socket.as_os_str().len() <= 100 {
            inside
        } else {
            let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() % 1_000_000_000;
            let d = PathBuf::from(format!("/tmp/openova-s-{}-{nanos}", std::process::id()));
            if let Ok(mut o) = self.outside.lock() {
                o.push(d.clone());
            }
            d
        };
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(dir)
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn started(&self, dir: &Path, major: Option<u32>) {
        if let Ok(mut r) = self.running.lock() {
            r.push((dir.to_path_buf(), major));
        }
    }

    /// Stops the server on `dir` (if this drill started one) and removes `dir` and its helper.
    fn finish_point(&self, dir: &Path) {
        let entry = self.running.lock().ok().and_then(|mut r| {
            let i = r.iter().position(|(d, _)| d == dir)?;
            Some(r.remove(i))
        });
        if let Some((d, major)) = entry {
            stop(&d, major);
        }
        let _ = crate::wal::prefetch::clear(&local::helper_dir(dir).join("spool"));
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(dir));
        for d in self
            .outside
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
        {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let running = self.running.lock().map(|mut r| std::mem::take(&mut *r));
        for (dir, major) in running.unwrap_or_default() {
            stop(&dir, major);
            let _ = crate::wal::prefetch::clear(&local::helper_dir(&dir).join("spool"));
        }
        for d in self
            .outside
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
        {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "warning: could not remove the drill folder {}: {e}",
                self.root.display()
            );
        }
    }
}

/// `pg_ctl stop -m immediate`: the restored copy is thrown away, nothing to flush.
fn stop(dir: &Path, major: Option<u32>) {
    if !dir.join("postmaster.pid").exists() {
        return;
    }
    let mut c = start::as_postgres(&start::bin_dir(major).join("pg_ctl"));
    c.arg("-D")
        .arg(dir)
        .args(["-m", "immediate", "-w", "-t", "60", "stop"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _ = c.status();
}

/// Runs `drill` with the `policies` it names. Never fails as a whole for one bad point: each
/// point and backup records its own error; `Err` only when the workspace cannot be created.
pub async fn run(
    drill: &Drill,
    policies: &[Loaded],
    opts: &Options,
    ws: &Arc<Workspace>,
    progress: &dyn Progress,
) -> (Report, Vec<Evidence>) {
    let started = Utc::now();
    let mut evidence = Vec::new();
    let mut pg = Vec::new();
    for entry in &drill.postgres {
        pg.extend(postgres_entry(entry, policies, opts, ws, progress, &mut evidence).await);
    }
    let mut velero = Vec::new();
    for entry in &drill.velero {
        velero.push(velero_entry(entry, policies, opts.cluster.as_ref(), progress).await);
    }
    let budgets = Budgets {
        rto_seconds: drill
            .budgets
            .rto
            .map(|d| d.0.num_milliseconds() as f64 / 1000.0),
        rpo_seconds: drill
            .budgets
            .rpo
            .map(|d| d.0.num_milliseconds() as f64 / 1000.0),
    };
    for p in &mut pg {
        over_budget(p, &budgets);
    }
    let worst = |f: fn(&PointReport) -> Option<f64>| {
        pg.iter()
            .filter_map(f)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let report = Report {
        schema: SCHEMA.into(),
        drill: drill.name.clone(),
        started,
        finished: Utc::now(),
        seed: opts.seed,
        passed: pg.iter().all(|p| p.passed) && velero.iter().all(|v| v.passed),
        budgets,
        rto_seconds: worst(|p| p.rto_seconds),
        rpo_seconds: worst(|p| p.rpo_seconds),
        postgres: pg,
        velero,
    };
    (report, evidence)
}

/// Fails a point that restored but took longer, or lost more, than the budget allows.
fn over_budget(p: &mut PointReport, b: &Budgets) {
    let mut over = Vec::new();
    if let (Some(v), Some(max)) = (p.rto_seconds, b.rto_seconds)
        && v > max
    {
        over.push(format!("RTO {v:.1} s is over the budget of {max} s"));
    }
    if let (Some(v), Some(max)) = (p.rpo_seconds, b.rpo_seconds)
        && v > max
    {
        over.push(format!("RPO {v:.1} s is over the budget of {max} s"));
    }
    if !over.is_empty() {
        p.passed = false;
        let why = over.join("; ");
        p.error = Some(match p.error.take() {
            Some(e) => format!("{e}; {why}"),
            None => why,
        });
    }
}

fn policy_of<'a, T>(
    policies: &'a [Loaded],
    name: &str,
    pick: fn(&'a Policy) -> Option<&'a T>,
    kind: &str,
) -> Result<&'a T, String> {
    let found = policies.iter().find(|l| l.policy.name() == name);
    match found {
        None => Err(format!("no policy named {name} (give --policies)")),
        Some(l) => pick(&l.policy).ok_or_else(|| format!("policy {name} is not a {kind}")),
    }
}

fn as_pg(p: &Policy) -> Option<&PostgresPolicy> {
    match p {
        Policy::PostgresPolicy(p) => Some(p),
        Policy::VeleroPolicy(_) => None,
    }
}

fn as_velero(p: &Policy) -> Option<&VeleroPolicy> {
    match p {
        Policy::VeleroPolicy(p) => Some(p),
        Policy::PostgresPolicy(_) => None,
    }
}

/// One failed point that never got to restore.
fn failed(entry: &PostgresEntry, server: &str, point: &str, why: String) -> PointReport {
    PointReport {
        policy: entry.policy.clone(),
        server: server.to_string(),
        point: point.to_string(),
        error: Some(why),
        ..PointReport::default()
    }
}

async fn postgres_entry(
    entry: &PostgresEntry,
    policies: &[Loaded],
    opts: &Options,
    ws: &Arc<Workspace>,
    progress: &dyn Progress,
    evidence: &mut Vec<Evidence>,
) -> Vec<PointReport> {
    let labels: Vec<String> = entry.points.iter().map(super::def::Point::label).collect();
    let all_failed = |server: &str, why: String, errored: bool| -> Vec<PointReport> {
        labels
            .iter()
            .map(|l| PointReport {
                errored,
                ..failed(entry, server, l, why.clone())
            })
            .collect()
    };
    let p = match policy_of(policies, &entry.policy, as_pg, "PostgresPolicy") {
        Ok(p) => p,
        Err(e) => return all_failed("", e, true),
    };
    let url = p.storage.url.clone();
    let conn = p.storage.connection();
    let loaded = async {
        let store = store::open(&url, &conn).await.map_err(|e| e.to_string())?;
        progress.message(&format!("reading the catalog of {url}"));
        let scope = Scope {
            velero: false,
            servers: Some(vec![p.server_name.clone()]),
        };
        let cat = catalog::load(store.as_ref(), &scope, 16)
            .await
            .map_err(|e| format!("reading the catalog of {url}: {e}"))?;
        Ok::<_, String>((store, cat))
    }
    .await;
    let (store, cat) = match loaded {
        Ok(x) => x,
        Err(e) => return all_failed(&p.server_name, e, true),
    };
    let Some((server, window)) = cat.barman.into_iter().next() else {
        let why = format!("no server {} in {url}", p.server_name);
        return all_failed(&p.server_name, why, false);
    };
    let resolve = |last_commit| {
        points::resolve(
            &entry.points,
            &window,
            p.recovery_window.0,
            Utc::now(),
            opts.seed,
            last_commit,
        )
    };
    let resolved = match resolve(None) {
        Ok(r) => r,
        Err(e) => return all_failed(&p.server_name, format!("{}: {e}", p.server_name), false),
    };
    let ctx = PointContext {
        entry,
        policy: p,
        store: store.as_ref(),
        server: &server,
        window: &window,
        opts,
        ws,
        progress,
    };
    // `latest` first: the last transaction it replays is the true end of the window, which
    // bounds `random` (see `points::resolve`).
    let mut order: Vec<usize> = (0..resolved.len()).collect();
    order.sort_by_key(|&i| resolved[i].target != Target::Latest);
    let mut out: Vec<Option<PointReport>> = vec![None; resolved.len()];
    let mut resolved = resolved;
    let mut last_commit = None;
    for i in order {
        if last_commit.is_some()
            && entry.points[i] == super::def::Point::Random
            && let Ok(again) = resolve(last_commit)
        {
            resolved[i] = again[i].clone();
        }
        let point = &resolved[i];
        let (report, log) = ctx.run(i, point).await;
        if point.target == Target::Latest && last_commit.is_none() {
            last_commit = report
                .achieved
                .as_deref()
                .and_then(|t| pgrestore::parse_time(t).ok());
        }
        if let Some(body) = log {
            evidence.push(Evidence {
                name: format!(
                    "logs/{}-{}-{}-postgresql.log",
                    entry.policy,
                    i + 1,
                    point.label.replace([':', ' '], "_")
                ),
                body,
            });
        }
        out[i] = Some(report);
    }
    out.into_iter().flatten().collect()
}

struct PointContext<'a> {
    entry: &'a PostgresEntry,
    policy: &'a PostgresPolicy,
    store: &'a dyn ObjectStore,
    server: &'a ServerCatalog,
    window: &'a Window,
    opts: &'a Options,
    ws: &'a Arc<Workspace>,
    progress: &'a dyn Progress,
}

impl PointContext<'_> {
    /// Restores, starts, checks and stops one point; also returns PostgreSQL's log.
    async fn run(&self, index: usize, point: &Resolved) -> (PointReport, Option<Vec<u8>>) {
        let began = Instant::now();
        let mut r = failed(
            self.entry,
            &self.policy.server_name,
            &point.label,
            String::new(),
        );
        r.error = None;
        r.target = match point.target {
            Target::Time(t) => Some(t),
            Target::Latest => None,
        };
        let plan = match pgrestore::plan(self.server, self.window, point.target) {
            Ok(p) => p,
            Err(e) => {
                r.error = Some(e.to_string());
                return (r, None);
            }
        };
        r.backup_id = Some(plan.backup_id.clone());
        if let Some(why) = gap_behind(point, &plan, self.window) {
            r.error = Some(why);
            return (r, None);
        }
        let point_dir = self
            .ws
            .root()
            .join(format!("{}-{}", self.entry.policy, index + 1));
        let data = point_dir.join("data");
        let outcome = self
            .restore_and_check(&plan, &point_dir, &data, &mut r, began)
            .await;
        let log = std::fs::read(data.join("openova-restore.log")).ok();
        self.ws.finish_point(&data);
        if let Err(e) = outcome {
            r.error = Some(e);
        }
        r.passed = r.error.is_none() && r.checks.iter().all(|c| c.passed);
        (r, log)
    }

    async fn restore_and_check(
        &self,
        plan: &pgrestore::Plan,
        point_dir: &Path,
        data: &Path,
        r: &mut PointReport,
        began: Instant,
    ) -> Result<(), String> {
        std::fs::create_dir(point_dir)
            .map_err(|e| format!("creating {}: {e}", point_dir.display()))?;
        self.progress.message(&format!(
            "{} {}: restoring base backup {}",
            self.entry.policy, r.point, plan.backup_id
        ));
        let url = self.policy.storage.url.clone();
        let conn = self.policy.storage.connection();
        let source = local::Source {
            url: &url,
            server: &self.policy.server_name,
            conn: &conn,
        };
        let fetched =
            local::fetch_and_configure(self.store, plan, data, &source, None, &[], self.progress)
                .await
                .map_err(|e| e.to_string())?;
        r.phases.download_seconds = fetched.download_seconds;
        r.phases.extract_seconds = fetched.extract_seconds;
        let socket = self
            .ws
            .socket_dir(point_dir, self.opts.port)
            .map_err(|e| format!("creating a socket folder for {}: {e}", point_dir.display()))?;
        // The postgres user must reach the data folder through the workspace.
        start::hand_over(self.ws.root()).map_err(|e| e.to_string())?;
        start::hand_over(point_dir).map_err(|e| e.to_string())?;
        start::hand_over(&socket).map_err(|e| e.to_string())?;
        self.progress
            .message(&format!("{} {}: replaying WAL", self.entry.policy, r.point));
        self.ws.started(data, plan.pg_major);
        let reached = local::start_and_wait(
            data,
            &socket,
            plan,
            self.opts.port,
            self.opts.replay_timeout,
            true,
        )
        .await
        .map_err(|e| e.to_string())?;
        r.phases.replay_seconds = reached.replay_seconds;
        r.achieved.clone_from(&reached.last_replayed);
        let achieved = reached
            .last_replayed
            .as_deref()
            .and_then(|t| pgrestore::parse_time(t).ok());
        let bind: DateTime<Utc> = match plan.target {
            Target::Time(t) => t,
            Target::Latest => achieved.unwrap_or_else(Utc::now),
        };
        self.progress.message(&format!(
            "{} {}: running checks",
            self.entry.policy, r.point
        ));
        for c in &self.entry.checks {
            let (c, dir, port, major) = (c.clone(), socket.clone(), self.opts.port, plan.pg_major);
            let outcome =
                tokio::task::spawn_blocking(move || check::run(&c, &dir, port, major, bind))
                    .await
                    .map_err(|e| e.to_string())?;
            r.phases.checks_seconds += outcome.seconds;
            r.checks.push(outcome);
        }
        if r.checks.iter().all(|c| c.passed) {
            r.rto_seconds = Some(began.elapsed().as_secs_f64());
        }
        r.rpo_seconds = achieved.map(|a| {
            let lost = match plan.target {
                Target::Time(t) => t - a,
                Target::Latest => Utc::now() - a,
            };
            (lost.num_milliseconds().max(0) as f64) / 1000.0
        });
        // No transaction replayed after the base backup: recovery stopped before the first commit
        // past the target, so nothing up to the target was lost.
        if r.rpo_seconds.is_none() && matches!(plan.target, Target::Time(_)) {
            let log = std::fs::read_to_string(data.join("openova-restore.log")).unwrap_or_default();
            if log.contains("recovery stopping before commit") {
                r.rpo_seconds = Some(0.0);
            }
        }
        Ok(())
    }
}

/// `latest` must reach the newest archived WAL: a gap after the base backup would make it stop
/// early and still "pass". Names the gap and how far `latest` could go.
fn gap_behind(point: &Resolved, plan: &pgrestore::Plan, window: &Window) -> Option<String> {
    if point.target != Target::Latest {
        return None;
    }
    let gap = window
        .gaps
        .iter()
        .find(|g| g.first_missing.as_str() > plan.wal_to.as_str())?;
    let missing = if gap.count == 1 {
        format!("segment {} is missing", gap.first_missing)
    } else {
        format!(
            "segments {} .. {} are missing",
            gap.first_missing, gap.last_missing
        )
    };
    Some(format!(
        "WAL gap: {missing}, so latest reaches only {} (base backup {}), not the newest archived WAL",
        plan.wal_to, plan.backup_id
    ))
}

async fn velero_entry(
    entry: &VeleroEntry,
    policies: &[Loaded],
    cluster: Option<&crate::cluster::velero::Velero>,
    progress: &dyn Progress,
) -> VeleroReport {
    let mut r = VeleroReport {
        policy: entry.policy.clone(),
        ..VeleroReport::default()
    };
    if let Err(e) = velero_check(entry, policies, cluster, progress, &mut r).await {
        r.error = Some(e);
    }
    r.passed = r.error.is_none()
        && r.missing.is_empty()
        && r.in_cluster.as_ref().is_none_or(InClusterReport::passed);
    r
}

async fn velero_check(
    entry: &VeleroEntry,
    policies: &[Loaded],
    cluster: Option<&crate::cluster::velero::Velero>,
    progress: &dyn Progress,
    r: &mut VeleroReport,
) -> Result<(), String> {
    // Until the catalog is read, a failure is the drill's error, not a finding about the backups.
    r.errored = true;
    let p = policy_of(policies, &entry.policy, as_velero, "VeleroPolicy")?;
    let url = p.storage.url.clone();
    let store = store::open(&url, &p.storage.connection())
        .await
        .map_err(|e| e.to_string())?;
    progress.message(&format!("reading the Velero catalog of {url}"));
    let scope = Scope {
        velero: true,
        servers: Some(vec![]),
    };
    let cat = catalog::load(store.as_ref(), &scope, 16)
        .await
        .map_err(|e| e.to_string())?;
    r.errored = false;
    let all = cat.velero.unwrap_or_default();
    let b = crate::velero::choose(&all, Some(&p.name), &entry.backup, &url.to_string())
        .map_err(|e| e.to_string())?;
    r.backup = Some(b.name.clone());
    let key = crate::velero::tarball_key(&b.name);
    progress.message(&format!("reading {key}"));
    let body = store.get(&key).await.map_err(|e| e.to_string())?;
    let (items, _) = crate::velero::tarball::read_items(body.as_ref())
        .map_err(|e| format!("{key} is not readable to its end (truncated or corrupt): {e}"))?;
    r.items = items.len();
    for ns in &entry.expect.namespaces {
        let present = items.iter().any(|i| {
            i.namespace.as_deref() == Some(ns.as_str())
                || (i.group_resource == "namespaces" && i.namespace.is_none() && &i.name == ns)
        });
        if !present {
            r.missing.push(format!("namespace {ns}"));
        }
    }
    for want in &entry.expect.resources {
        let parts: Vec<&str> = want.split('/').collect();
        let present = items.iter().any(|i| match parts.as_slice() {
            [gr, ns, name] => {
                i.group_resource == *gr && i.namespace.as_deref() == Some(*ns) && i.name == *name
            }
            [gr, name] => i.group_resource == *gr && i.namespace.is_none() && i.name == *name,
            _ => false,
        });
        if !present {
            r.missing.push((*want).clone());
        }
    }
    if let Some(v) = cluster {
        r.in_cluster = Some(
            in_cluster::restore_and_check(v, store.as_ref(), b, &items, &entry.expect, progress)
                .await,
        );
    }
    Ok(())
}
