//! Barman Cloud (`barman[cloud]` 3.17.0 in the virtualenv `scripts/setup` builds at
//! `/opt/openova/barman-venv`, on Debian's `/usr/bin/python3` so the `postgres` user can run it).
//!
//! [`command`] prepares any `barman-cloud-*` tool against an [`S3Server`]; [`backup_list`] parses
//! `barman-cloud-backup-list --format json`. The small boto3 client behind [`S3Server::list_keys`] and
//! friends lives here too, since it uses the same virtualenv.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::S3Server;

/// boto3 ≥ 1.36 (and the Rust SDK) send CRC32 checksums on every upload (trailing checksums in
/// `aws-chunked` bodies) and validate response checksums; these variables restore the pre-1.36 behaviour
/// (only when an operation requires it). Both s3s-fs 0.14.1 and Garage 2.5.0 accept the new defaults
/// (checked with boto3 1.44.8), so [`S3Server::env`] sets them only when
/// `OPENOVA_TEST_CHECKSUMS_WHEN_REQUIRED` is set.
pub const BOTO3_CHECKSUM_ENV: &[(&str, &str)] = &[
    ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
    ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
];

/// The virtualenv holding barman (`OPENOVA_BARMAN_VENV`, default `/opt/openova/barman-venv`).
pub fn venv() -> PathBuf {
    std::env::var_os("OPENOVA_BARMAN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/openova/barman-venv"))
}

/// Path of a tool in the virtualenv, e.g. `tool("barman-cloud-backup-list")`.
pub fn tool(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

/// Whether barman-cloud is installed.
pub fn is_available() -> bool {
    tool("barman-cloud-backup").is_file()
}

fn require() {
    assert!(
        is_available(),
        "barman-cloud is not installed at {} (set OPENOVA_BARMAN_VENV or run scripts/setup)",
        venv().display()
    );
}

/// `barman-cloud-TOOL --endpoint-url ENDPOINT` with the server's credentials in the environment, run as
/// the current user. Append the remaining arguments (usually `s3://BUCKET/PREFIX SERVER_NAME`, see
/// [`S3Server::url`]). `name` is the full tool name, e.g. `barman-cloud-backup-delete`.
pub fn command(s3: &S3Server, name: &str) -> Command {
    require();
    let mut cmd = Command::new(tool(name));
    s3.apply_env(&mut cmd);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["--endpoint-url", &s3.endpoint()]);
    cmd
}

/// Runs `barman-cloud-TOOL --endpoint-url ENDPOINT ARGS...`; returns stdout, panics with the output and
/// the S3 server log on failure.
pub fn run(s3: &S3Server, name: &str, args: &[&str]) -> String {
    let mut cmd = command(s3, name);
    cmd.args(args);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {name}: {e}"));
    if !out.status.success() {
        panic!(
            "{name} {} failed with {}\n--- stdout\n{}\n--- stderr\n{}\n--- S3 server log\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            s3.log_tail(30)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One entry of `barman-cloud-backup-list --format json`.
#[derive(Clone, Debug)]
pub struct BackupEntry {
    pub backup_id: String,
    /// `DONE`, `FAILED`, ...
    pub status: String,
    pub backup_name: Option<String>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    pub end_time: Option<String>,
    /// The whole JSON object, for fields not listed above.
    pub raw: serde_json::Value,
}

/// The backups barman sees under `s3://BUCKET/PREFIX SERVER` (`barman-cloud-backup-list --format
/// json`), oldest first.
pub fn backup_list(s3: &S3Server, prefix: &str, server_name: &str) -> Vec<BackupEntry> {
    let out = run(
        s3,
        "barman-cloud-backup-list",
        &["--format", "json", &s3.url(prefix), server_name],
    );
    parse_backup_list(&out)
}

/// Parses `barman-cloud-backup-list --format json` output (`{"backups_list": [...]}`).
pub fn parse_backup_list(json: &str) -> Vec<BackupEntry> {
    let v: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("barman-cloud-backup-list output is not JSON ({e}): {json}"));
    let list = v["backups_list"]
        .as_array()
        .unwrap_or_else(|| panic!("no backups_list in barman-cloud-backup-list output: {json}"));
    let s = |e: &serde_json::Value, k: &str| e[k].as_str().map(str::to_string);
    list.iter()
        .map(|e| BackupEntry {
            backup_id: s(e, "backup_id").unwrap_or_default(),
            status: s(e, "status").unwrap_or_default(),
            backup_name: s(e, "backup_name"),
            begin_wal: s(e, "begin_wal"),
            end_wal: s(e, "end_wal"),
            end_time: s(e, "end_time"),
            raw: e.clone(),
        })
        .collect()
}

/// A tiny boto3 client (list / get / put / delete / probe: a put and a delete) run with the virtualenv's python, so tests can
/// look at a bucket whatever server runs it. `sys.argv`: OP BUCKET [KEY_OR_PREFIX].
const S3_PY: &str = r#"
import json, os, sys
import boto3
from botocore.config import Config
c = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                 region_name=os.environ["AWS_DEFAULT_REGION"],
                 config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
op, bucket = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else ""
if op == "list":
    keys, kw = [], {"Bucket": bucket, "Prefix": arg}
    while True:
        r = c.list_objects_v2(**kw)
        keys += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            break
        kw["ContinuationToken"] = r["NextContinuationToken"]
    print(json.dumps(keys))
elif op == "get":
    sys.stdout.buffer.write(c.get_object(Bucket=bucket, Key=arg)["Body"].read())
elif op == "put":
    c.put_object(Bucket=bucket, Key=arg, Body=sys.stdin.buffer.read())
elif op == "delete":
    c.delete_object(Bucket=bucket, Key=arg)
elif op == "probe":
    c.put_object(Bucket=bucket, Key=arg, Body=b"ready")
    c.delete_object(Bucket=bucket, Key=arg)
else:
    sys.exit("unknown op " + op)
"#;

/// Runs the boto3 helper: `args` = OP [KEY_OR_PREFIX]; returns stdout as text or the error output.
pub(crate) fn s3_op(s3: &S3Server, args: &[&str]) -> Result<String, String> {
    s3_op_bytes(s3, args, None).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(crate) fn s3_op_bytes(
    s3: &S3Server,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    require();
    let mut cmd = Command::new(venv().join("bin/python"));
    s3.apply_env(&mut cmd);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", S3_PY, args[0], s3.bucket()])
        .args(&args[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run python: {e}"))?;
    if let Some(body) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(body)
            .map_err(|e| format!("writing to python: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for python: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        // The last line of a Python traceback is the exception itself.
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        Err(format!("{} ({})", last.trim(), out.status))
    }
}

/// Puts every `(key, body)` through one boto3 process, 16 at a time (one process per object would
/// take minutes). The objects' LastModified is the time of the put.
pub fn put_all(s3: &S3Server, objects: &[(&str, &str)]) {
    const PY: &str = r#"
import json, os, sys
import boto3
from botocore.config import Config
from concurrent.futures import ThreadPoolExecutor
c = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                 region_name=os.environ["AWS_DEFAULT_REGION"],
                 config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
items = json.load(sys.stdin)
def put(kv):
    c.put_object(Bucket=sys.argv[1], Key=kv[0], Body=kv[1].encode())
with ThreadPoolExecutor(16) as ex:
    list(ex.map(put, items))
"#;
    let mut cmd = Command::new(venv().join("bin/python"));
    s3.apply_env(&mut cmd);
    cmd.args(["-c", PY, s3.bucket()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run python");
    let body = serde_json::to_vec(objects).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "upload failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s3.log_tail(20)
    );
}

/// Python's `str(datetime)` of an aware UTC datetime, as barman writes it in `backup.info`.
pub fn py_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

/// Segment number `p` (of 16 MiB segments) on timeline `tl`, as a WAL file name.
pub fn wal_name(tl: u32, p: u64) -> String {
    format!("{tl:08X}{:08X}{:08X}", p / 256, p % 256)
}

/// The LSN `offset` bytes into segment number `p`, as PostgreSQL prints it (`X/X`).
pub fn xlog(p: u64, offset: u64) -> String {
    format!("{:X}/{:X}", p / 256, ((p % 256) << 24) | offset)
}

/// A captured `backup.info` (`template`) with the values of `fields` replaced; keys stay in order,
/// as barman writes them. Every field must be in the template.
pub fn backup_info(template: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut seen = 0;
    for line in template.lines() {
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        match fields.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => {
                seen += 1;
                out.push_str(&format!("{k}={v}\n"));
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    assert_eq!(
        seen,
        fields.len(),
        "every replaced field is in the template"
    );
    out
}
