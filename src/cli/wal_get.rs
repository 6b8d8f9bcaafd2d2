use super::Outcome;
use crate::policy::{Archive, Request};
use crate::store;
use crate::wal;
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

/// `restore_command = 'openova wal-get %f %p --storage s3://bucket/cnpg --server NAME'`, or
/// `'openova wal-get %f %p --policy NAME --policies /etc/openova/policies'`.
#[derive(Args, Debug)]
pub struct WalGetArgs {
    /// The WAL file PostgreSQL asks for (%f).
    pub wal_name: String,
    /// Where to write it (%p).
    pub dest: PathBuf,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// How many following segments a background worker keeps downloading into the spool
    /// (0: none, every call fetches its own).
    #[arg(long, default_value_t = 8)]
    pub prefetch: usize,
    /// The last segment the restore plan needs (set by `openova restore`): a segment up to it
    /// (same timeline) that is missing is an error, not the end of recovery.
    #[arg(long)]
    pub needed_until: Option<String>,
    /// Where prefetched segments wait (default: $TMPDIR/openova-wal-spool-SERVER-HASH, one per
    /// archive).
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
}

/// Which Barman Cloud archive: a PostgresPolicy, or a storage and a server.
#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// The PostgresPolicy naming storage and server (or give --storage and --server).
    #[arg(long, conflicts_with_all = ["storage", "server"])]
    pub policy: Option<String>,
    /// Policy file or folder. PostgreSQL runs restore_command in the data directory, so give an
    /// absolute path there.
    #[arg(long, default_value = "policies", env = "OPENOVA_POLICIES")]
    pub policies: PathBuf,
    /// The Barman Cloud archive: s3://BUCKET/PREFIX or file:///PATH.
    #[arg(long, requires = "server")]
    pub storage: Option<String>,
    /// The server folder under the storage prefix.
    #[arg(long, requires = "storage")]
    pub server: Option<String>,
    /// S3 endpoint for --storage (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long, requires = "storage")]
    pub endpoint: Option<String>,
}

/// The hidden `wal-prefetch` worker that `wal-get` starts (see `openova::wal::prefetch`).
#[derive(Args, Debug)]
pub struct WalPrefetchArgs {
    #[command(flatten)]
    pub archive: ArchiveArgs,
    #[arg(long, default_value_t = 8)]
    pub prefetch: usize,
    #[arg(long)]
    pub spool_dir: PathBuf,
}

impl ArchiveArgs {
    fn resolve(&self) -> Result<Archive, crate::policy::Error> {
        let request = Request {
            storage: self.storage.as_deref(),
            endpoint: self.endpoint.as_deref(),
            policy: self.policy.as_deref(),
            policies: &self.policies,
        };
        request.archive(self.server.as_deref(), "wal-get")
    }

    /// The same archive as arguments for the prefetch worker, so that it reaches the archive as
    /// this call does (with a policy: its region and addressing too).
    fn for_worker(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut pair = |flag: &str, value: OsString| out.extend([flag.into(), value]);
        if let Some(name) = &self.policy {
            // The worker may start elsewhere than this call: a relative path must not move.
            let path = std::path::absolute(&self.policies).unwrap_or(self.policies.clone());
            pair("--policy", name.into());
            pair("--policies", path.into());
        }
        for (flag, value) in [
            ("--storage", &self.storage),
            ("--server", &self.server),
            ("--endpoint", &self.endpoint),
        ] {
            if let Some(v) = value {
                pair(flag, v.into());
            }
        }
        out
    }
}

/// Exit 0 restored, 1 not in the archive, 255 a real error (PostgreSQL then aborts recovery
/// rather than ending it early). An archive that cannot be named is such an error too.
pub async fn run(args: WalGetArgs) -> anyhow::Result<Outcome> {
    let archive = match args.archive.resolve() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("openova wal-get: ERROR: {e}");
            return Ok(Outcome::WalError);
        }
    };
    let (at, server) = (&archive.location, archive.server.as_str());
    let storage = at.url.to_string();
    let endpoint = at.conn.endpoint.as_deref();
    let spool = args
        .spool_dir
        .clone()
        .unwrap_or_else(|| wal::prefetch::default_spool(&storage, server, endpoint));
    let worker = wal::prefetch::WorkerArgs {
        storage: &storage,
        server,
        endpoint,
        archive_args: &args.archive.for_worker(),
        spool: &spool,
        prefetch: args.prefetch,
    };
    // Most calls are served locally: answer those before building an S3 client.
    match wal::from_local(&worker, &args.wal_name, &args.dest) {
        Ok(true) => return Ok(Outcome::Ok),
        Ok(false) => {}
        Err(e) => {
            eprintln!(
                "openova wal-get: ERROR restoring {} from the spool: {e:#}",
                args.wal_name
            );
            return Ok(Outcome::WalError);
        }
    }
    let result = async {
        let store = store::open_with(&at.url, &at.conn, store::Timeouts::for_wal_get()).await?;
        Ok::<_, anyhow::Error>(wal::get(store.as_ref(), server, &args.wal_name, &args.dest).await?)
    };
    match result.await {
        Ok(true) => Ok(Outcome::Ok),
        Ok(false) if needed(&args.wal_name, args.needed_until.as_deref()) => {
            let until = args.needed_until.as_deref().unwrap_or_default();
            eprintln!(
                "openova wal-get: ERROR: {} is missing from the archive {storage}/{server}, but the restore needs every segment up to {until}",
                args.wal_name
            );
            Ok(Outcome::WalError)
        }
        Ok(false) => {
            eprintln!(
                "openova wal-get: {} is not in the archive {storage}/{server}",
                args.wal_name
            );
            Ok(Outcome::NotFound)
        }
        Err(e) => {
            eprintln!("openova wal-get: ERROR restoring {}: {e:#}", args.wal_name);
            Ok(Outcome::WalError)
        }
    }
}

/// Runs the prefetch worker until it is idle; its errors only go to the spool's log.
pub async fn run_prefetch(args: WalPrefetchArgs) -> anyhow::Result<Outcome> {
    let archive = args.archive.resolve()?;
    let at = &archive.location;
    let store = store::open_with(&at.url, &at.conn, store::Timeouts::for_wal_get()).await?;
    wal::prefetch::run_worker(store, &archive.server, &args.spool_dir, args.prefetch).await?;
    Ok(Outcome::Ok)
}

/// Whether `name` is a segment at or before `until` on the same timeline.
fn needed(name: &str, until: Option<&str>) -> bool {
    let (Some(until), Some(a)) = (until, crate::barman::wal::split_segment(name)) else {
        return false;
    };
    crate::barman::wal::split_segment(until).is_some_and(|b| a.0 == b.0 && (a.1, a.2) <= (b.1, b.2))
}
