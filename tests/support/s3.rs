//! Real S3 servers for tests: `s3s-fs` (an S3 server on a folder; fast, the default) and versitygw (an
//! S3 gateway over a POSIX folder, Apache-2.0). `scripts/setup` installs both (`cargo install` and
//! `go install`). They differ where S3 stores differ (DESIGN.md): s3s-fs treats an empty delimiter as
//! one and lets racing `If-None-Match: *` puts all win; versitygw lists flat and lets exactly one win.
//!
//! [`S3Server::start`] picks free loopback ports, generates a random key pair, starts the server in a
//! temporary directory, creates one bucket and waits until the bucket answers S3 requests. Dropping the
//! server kills its process group and removes the directory.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{barman, find_executable, kill_process_group, poll, random_hex, tail};

/// The region every test server is configured with: openova defaults to `auto`, like Cloudflare R2.
pub const REGION: &str = "auto";

/// Which S3 server implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Kind {
    /// `s3s-fs` 0.14.1: a bucket is a sub-directory of its root folder.
    S3sFs,
    /// versitygw v1.8.0 (`posix` backend): a bucket is a sub-directory of its root folder, object
    /// metadata sits in user xattrs. It cannot hold both `x` and `x/y`, nor a path segment over 255
    /// bytes; barman and Velero keys never take these shapes.
    Versitygw,
}

impl S3Kind {
    /// From `OPENOVA_TEST_S3`: `s3s` / `s3s-fs` (the default when unset) or `versitygw`.
    pub fn from_env() -> S3Kind {
        match std::env::var("OPENOVA_TEST_S3") {
            Err(_) => S3Kind::S3sFs,
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "s3s" | "s3s-fs" | "s3sfs" => S3Kind::S3sFs,
                "versitygw" | "versity" => S3Kind::Versitygw,
                other => panic!("OPENOVA_TEST_S3={other:?}: expected `s3s` or `versitygw`"),
            },
        }
    }

    /// Both servers, `s3s-fs` first. A test over all of them fails when one is not installed
    /// (`scripts/setup` installs both); it never skips it.
    pub fn all() -> [S3Kind; 2] {
        [S3Kind::S3sFs, S3Kind::Versitygw]
    }

    /// Name of the server binary.
    pub fn binary_name(self) -> &'static str {
        match self {
            S3Kind::S3sFs => "s3s-fs",
            S3Kind::Versitygw => "versitygw",
        }
    }

    /// Path of the server binary (`OPENOVA_S3S_FS_BIN` / `OPENOVA_VERSITYGW_BIN`, `PATH`,
    /// `~/.cargo/bin`, `/opt/openova/bin` where `scripts/setup` puts versitygw).
    pub fn binary(self) -> Option<PathBuf> {
        match self {
            S3Kind::S3sFs => find_executable("s3s-fs", "OPENOVA_S3S_FS_BIN"),
            S3Kind::Versitygw => find_executable("versitygw", "OPENOVA_VERSITYGW_BIN"),
        }
    }

    /// Whether the server binary is installed.
    pub fn is_available(self) -> bool {
        self.binary().is_some()
    }
}

impl fmt::Display for S3Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary_name())
    }
}

/// A running S3 server with one bucket. Killed (with its whole process group) and its directory removed
/// on drop.
pub struct S3Server {
    kind: S3Kind,
    child: Option<Child>,
    port: u16,
    bucket: String,
    access_key: String,
    secret_key: String,
    log: PathBuf,
    dir: TempDir,
}

impl S3Server {
    /// Starts a server of `kind` with one bucket named `openova-test`.
    pub fn start(kind: S3Kind) -> S3Server {
        S3Server::start_with_bucket(kind, "openova-test")
    }

    /// Starts a server of [`S3Kind::from_env`].
    pub fn start_default() -> S3Server {
        S3Server::start(S3Kind::from_env())
    }

    /// Starts a server of `kind` with one bucket named `bucket`.
    pub fn start_with_bucket(kind: S3Kind, bucket: &str) -> S3Server {
        let bin = kind.binary().unwrap_or_else(|| {
            panic!(
                "{kind} is not installed (looked at ${}, PATH and ~/.cargo/bin); run scripts/setup",
                match kind {
                    S3Kind::S3sFs => "OPENOVA_S3S_FS_BIN",
                    S3Kind::Versitygw => "OPENOVA_VERSITYGW_BIN",
                }
            )
        });
        let dir = tempfile::Builder::new()
            .prefix(&format!("openova-{}-", kind.binary_name()))
            .tempdir()
            .expect("create a temporary directory for the S3 server");
        let log = dir.path().join("server.log");
        let mut server = S3Server {
            kind,
            child: None,
            port: 0,
            bucket: bucket.to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            log,
            dir,
        };
        match kind {
            S3Kind::S3sFs => server.start_s3s_fs(&bin),
            S3Kind::Versitygw => server.start_versitygw(&bin),
        }
        server.wait_bucket_ready();
        server
    }

    fn spawn_logged(&mut self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let out = File::create(&self.log).expect("create the S3 server log");
        let err = out.try_clone().expect("clone the S3 server log handle");
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {cmd:?}: {e}", self.kind));
        self.child = Some(child);
    }

    /// Panics with `msg` and the tail of the server log.
    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{} at {}: {msg}\n--- server log ({}):\n{}",
            self.kind,
            self.endpoint(),
            self.log.display(),
            tail(&self.log, 40)
        )
    }

    fn check_alive(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            self.child = None;
            self.fail(&format!("the server exited early with {status}"));
        }
    }

    fn start_s3s_fs(&mut self, bin: &Path) {
        // s3s-fs accepts any access key / secret key pair given on its command line.
        self.access_key = format!("OPENOVA{}", random_hex(8).to_ascii_uppercase());
        self.secret_key = random_hex(20);
        let root = self.dir.path().join("root");
        std::fs::create_dir_all(root.join(&self.bucket)).expect("create the s3s-fs bucket folder");
        // Port 0: s3s-fs binds a free port and logs "server is running at http://127.0.0.1:PORT", so
        // there is no race with other tests over the port.
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(&root)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        self.spawn_logged(&mut cmd);
        let needle = "server is running at http://127.0.0.1:";
        let port = poll(Duration::from_secs(20), Duration::from_millis(50), || {
            self.check_alive();
            let text = std::fs::read_to_string(&self.log).ok()?;
            let rest = &text[text.find(needle)? + needle.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u16>().ok()
        });
        match port {
            Some(p) => self.port = p,
            None => self.fail("did not report its port within 20 s"),
        }
    }

    fn start_versitygw(&mut self, bin: &Path) {
        // versitygw takes the root key pair from its environment and serves the sub-folders of its
        // root as buckets. Its port must be chosen before it starts: retry on a bind clash.
        self.access_key = format!("OPENOVA{}", random_hex(8).to_ascii_uppercase());
        self.secret_key = random_hex(20);
        let root = self.dir.path().join("root");
        std::fs::create_dir_all(root.join(&self.bucket))
            .expect("create the versitygw bucket folder");
        for attempt in 1..=3 {
            self.port = super::free_port();
            let mut cmd = Command::new(bin);
            cmd.arg("--port")
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--quiet")
                .arg("--access-log")
                .arg(self.dir.path().join("access.log"))
                .arg("posix")
                .arg(&root)
                .env("ROOT_ACCESS_KEY", &self.access_key)
                .env("ROOT_SECRET_KEY", &self.secret_key)
                .env("VGW_REGION", REGION);
            self.spawn_logged(&mut cmd);
            let exited = poll(Duration::from_secs(10), Duration::from_millis(50), || {
                if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                    return Some(true);
                }
                std::net::TcpStream::connect(("127.0.0.1", self.port))
                    .ok()
                    .map(|_| false)
            });
            match exited {
                Some(false) => return,
                Some(true) if attempt < 3 && tail(&self.log, 20).contains("in use") => {
                    self.child = None;
                }
                Some(true) => {
                    self.child = None;
                    self.fail("versitygw exited during start-up");
                }
                None => self.fail("versitygw did not open its port within 10 s"),
            }
        }
        self.fail("could not start versitygw on a free port");
    }

    /// Waits until a write succeeds (a put and a delete of a marker object): a server may answer
    /// listings before it accepts writes.
    fn wait_bucket_ready(&mut self) {
        let mut last = String::new();
        let ok = poll(Duration::from_secs(60), Duration::from_millis(250), || {
            self.check_alive();
            match barman::s3_op(self, &["probe", ".openova-test-ready"]) {
                Ok(_) => Some(()),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        if ok.is_none() {
            self.fail(&format!(
                "bucket {} not writable within 60 s: {last}",
                self.bucket
            ));
        }
    }

    pub fn kind(&self) -> S3Kind {
        self.kind
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Always [`REGION`] (`auto`).
    pub fn region(&self) -> &str {
        REGION
    }

    /// `s3://BUCKET/PREFIX` (no trailing slash; `prefix` may be empty).
    pub fn url(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{prefix}", self.bucket)
        }
    }

    /// The server's temporary directory (for s3s-fs, `root/BUCKET/KEY` are the objects).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// versitygw's S3 access log (one line per request, naming the operation: `s3_DeleteObjects`);
    /// `None` for s3s-fs, whose own log is [`S3Server::log_path`].
    pub fn access_log(&self) -> Option<PathBuf> {
        (self.kind == S3Kind::Versitygw).then(|| self.dir.path().join("access.log"))
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Environment pointing an AWS SDK client (the openova binary, boto3, barman-cloud-*) at this server:
    /// credentials, region (`AWS_REGION` for the Rust SDK, `AWS_DEFAULT_REGION` for boto3), endpoint.
    /// SDK checksum defaults are left alone (both servers accept boto3 1.44's CRC32 trailing checksums);
    /// `OPENOVA_TEST_CHECKSUMS_WHEN_REQUIRED=1` adds [`barman::BOTO3_CHECKSUM_ENV`].
    /// Also sets `AWS_EC2_METADATA_DISABLED` and empties the profile/config file variables, so nothing
    /// from the machine leaks in.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push(("AWS_ENDPOINT_URL".into(), self.endpoint()));
        env.push(("AWS_ENDPOINT_URL_S3".into(), self.endpoint()));
        if std::env::var_os("OPENOVA_TEST_CHECKSUMS_WHEN_REQUIRED").is_some() {
            for (k, v) in barman::BOTO3_CHECKSUM_ENV {
                env.push(((*k).to_string(), (*v).to_string()));
            }
        }
        env
    }

    /// Names of the variables [`S3Server::env`] sets, to remove from a child's environment first
    /// (`AWS_PROFILE`, `AWS_SESSION_TOKEN` are included so the machine's do not leak in).
    pub fn env_to_clear() -> &'static [&'static str] {
        &[
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_CA_BUNDLE",
        ]
    }

    /// Applies [`S3Server::env`] to `cmd` (after removing [`S3Server::env_to_clear`]).
    pub fn apply_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for k in S3Server::env_to_clear() {
            cmd.env_remove(k);
        }
        cmd.envs(self.env())
    }

    /// Keys of the objects under `prefix` (ListObjectsV2 via boto3, no delimiter), sorted.
    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        let out = barman::s3_op(self, &["list", prefix])
            .unwrap_or_else(|e| self.fail(&format!("listing {prefix:?}: {e}")));
        let mut keys: Vec<String> = serde_json::from_str(&out)
            .unwrap_or_else(|e| self.fail(&format!("listing {prefix:?}: bad output ({e}): {out}")));
        keys.sort();
        keys
    }

    /// Whether an object `key` exists.
    pub fn exists(&self, key: &str) -> bool {
        self.list_keys(key).iter().any(|k| k == key)
    }

    /// The bytes of object `key`.
    pub fn get(&self, key: &str) -> Vec<u8> {
        barman::s3_op_bytes(self, &["get", key], None)
            .unwrap_or_else(|e| self.fail(&format!("GetObject {key:?}: {e}")))
    }

    /// Uploads `body` as object `key`.
    pub fn put(&self, key: &str, body: &[u8]) {
        barman::s3_op_bytes(self, &["put", key], Some(body))
            .unwrap_or_else(|e| self.fail(&format!("PutObject {key:?}: {e}")));
    }

    /// Deletes object `key`.
    pub fn delete(&self, key: &str) {
        barman::s3_op_bytes(self, &["delete", key], None)
            .unwrap_or_else(|e| self.fail(&format!("DeleteObject {key:?}: {e}")));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl fmt::Debug for S3Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Server")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint())
            .field("bucket", &self.bucket)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}
