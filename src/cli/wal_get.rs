use super::Outcome;
use crate::policy::Request;
use crate::store;
use crate::wal;
use clap::Args;
use std::path::{Path, PathBuf};

/// `restore_command = 'openova wal-get %f %p --storage s3://bucket/cnpg --server NAME'`
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

/// Which Barman Cloud archive.
#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// The Barman Cloud archive: s3://BUCKET/PREFIX or file:///PATH.
    #[arg(long)]
    pub storage: String,
    /// The server folder under the storage prefix.
    #[arg(long)]
    pub server: String,
    /// S3 endpoint (default: OPENOVA_S3_ENDPOINT, else AWS).
    #[arg(long)]
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
    fn request(&self) -> Request<'_> {
        Request {
            storage: Some(&self.storage),
            endpoint: self.endpoint.as_deref(),
            policy: None,
            policies: Path::new(""),
        }
    }
}

async fn open_store(a: &ArchiveArgs) -> anyhow::Result<std::sync::Arc<dyn store::ObjectStore>> {
    let at = a.request().archive(Some(&a.server), "wal-get")?.location;
    Ok(store::open(&at.url, &at.conn).await?)
}

/// Exit 0 restored, 1 not in the archive, 255 a real error (PostgreSQL then aborts recovery
/// rather than ending it early).
pub async fn run(args: WalGetArgs) -> anyhow::Result<Outcome> {
    let spool = args.spool_dir.clone().unwrap_or_else(|| {
        wal::prefetch::default_spool(
            &args.archive.storage,
            &args.archive.server,
            args.archive.endpoint.as_deref(),
        )
    });
    let worker = wal::prefetch::WorkerArgs {
        storage: &args.archive.storage,
        server: &args.archive.server,
        endpoint: args.archive.endpoint.as_deref(),
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
        let store = open_store(&args.archive).await?;
        Ok::<_, anyhow::Error>(
            wal::get(
                store.as_ref(),
                &args.archive.server,
                &args.wal_name,
                &args.dest,
            )
            .await?,
        )
    };
    match result.await {
        Ok(true) => Ok(Outcome::Ok),
        Ok(false) if needed(&args.wal_name, args.needed_until.as_deref()) => {
            let until = args.needed_until.as_deref().unwrap_or_default();
            eprintln!(
                "openova wal-get: ERROR: {} is missing from the archive {}/{}, but the restore needs every segment up to {until}",
                args.wal_name, args.archive.storage, args.archive.server
            );
            Ok(Outcome::WalError)
        }
        Ok(false) => {
            eprintln!(
                "openova wal-get: {} is not in the archive {}/{}",
                args.wal_name, args.archive.storage, args.archive.server
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
    let store = open_store(&args.archive).await?;
    wal::prefetch::run_worker(store, &args.archive.server, &args.spool_dir, args.prefetch).await?;
    Ok(Outcome::Ok)
}

/// Whether `name` is a segment at or before `until` on the same timeline.
fn needed(name: &str, until: Option<&str>) -> bool {
    let (Some(until), Some(a)) = (until, crate::barman::wal::split_segment(name)) else {
        return false;
    };
    crate::barman::wal::split_segment(until).is_some_and(|b| a.0 == b.0 && (a.1, a.2) <= (b.1, b.2))
}
