//! SQL checks on a restored database, run through `psql` as the `postgres` user over the
//! restored server's Unix socket. `:target` in a check's SQL is bound as a `timestamptz`
//! parameter of a prepared statement (`PREPARE … ($1)`, `EXECUTE …(:'target')`), never pasted
//! into the text.

use super::def::{Check, Expect};
use crate::restore::start;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

/// What one check found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    pub sql: String,
    pub passed: bool,
    /// What was expected, in words (`at least 1`, `sha256 ab12…`).
    pub expected: String,
    /// What was seen: the first value, or the result's digest for `sha256`.
    pub seen: Option<String>,
    pub error: Option<String>,
    pub seconds: f64,
}

/// The result rows as text: columns joined by tabs, rows by newlines (psql's unaligned output).
/// `sha256` expectations are the digest of exactly this text.
#[must_use]
pub fn digest(result: &str) -> String {
    let d = Sha256::digest(result.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces `:target` (not `::target`, not `:targets`) with `$1`.
fn bind_target(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < sql.len() {
        let rest = &sql[i..];
        let is_param = rest.starts_with(":target")
            && (i == 0 || bytes[i - 1] != b':')
            && !rest[7..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if is_param {
            out.push_str("$1");
            i += 7;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Runs `check` on the server whose socket is in `socket_dir` on `port`.
#[must_use]
pub fn run(
    check: &Check,
    socket_dir: &Path,
    port: u16,
    major: Option<u32>,
    target: DateTime<Utc>,
) -> Outcome {
    let began = std::time::Instant::now();
    let expected = describe(&check.expect);
    let result = query(check, socket_dir, port, major, target);
    let mut out = Outcome {
        name: check.name.clone(),
        sql: check.sql.clone(),
        passed: false,
        expected,
        seen: None,
        error: None,
        seconds: 0.0,
    };
    match result {
        Ok(rows) => {
            let (passed, seen) = judge(&check.expect, &rows);
            out.passed = passed;
            out.seen = Some(seen);
        }
        Err(e) => out.error = Some(e),
    }
    out.seconds = began.elapsed().as_secs_f64();
    out
}

fn query(
    check: &Check,
    socket_dir: &Path,
    port: u16,
    major: Option<u32>,
    target: DateTime<Utc>,
) -> Result<String, String> {
    let sql = bind_target(check.sql.trim().trim_end_matches(';'));
    let script = format!(
        "PREPARE openova_check(timestamptz) AS {sql};\nEXECUTE openova_check(:'target');\n"
    );
    let psql = start::bin_dir(major).join("psql");
    let mut cmd = start::as_postgres(&psql);
    cmd.arg("-h")
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", "postgres", "-d"])
        .arg(check.database.as_deref().unwrap_or("postgres"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
        ])
        .arg(format!(
            "target={}",
            target.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to psql: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for psql: {e}"))?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .map(|l| l.trim_start_matches("psql:<stdin>:").trim())
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_string())
    }
}

fn describe(e: &Expect) -> String {
    if let Some(n) = e.at_least {
        format!("at least {n}")
    } else if let Some(n) = e.at_most {
        format!("at most {n}")
    } else if let Some(s) = &e.equals {
        format!("equals {s:?}")
    } else {
        format!("sha256 {}", e.sha256.as_deref().unwrap_or_default())
    }
}

/// Whether `rows` meets `e`, and what was seen.
fn judge(e: &Expect, rows: &str) -> (bool, String) {
    let first = rows.lines().next().unwrap_or_default();
    let first = first.split('\t').next().unwrap_or_default().trim();
    let number = first.parse::<f64>().ok();
    #[allow(clippy::cast_precision_loss)]
    if let Some(n) = e.at_least {
        return (number.is_some_and(|v| v >= n as f64), first.to_string());
    }
    #[allow(clippy::cast_precision_loss)]
    if let Some(n) = e.at_most {
        return (number.is_some_and(|v| v <= n as f64), first.to_string());
    }
    if let Some(s) = &e.equals {
        return (rows == s, rows.to_string());
    }
    let d = digest(rows);
    (
        e.sha256
            .as_deref()
            .is_some_and(|want| want.eq_ignore_ascii_case(&d)),
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_bound_not_pasted() {
        assert_eq!(
            bind_target("select 1 where t <= :target and x::target_t = 1 and :targets"),
            "select 1 where t <= $1 and x::target_t = 1 and :targets"
        );
        assert_eq!(bind_target(":target"), "$1");
        assert_eq!(bind_target("é :target é"), "é $1 é");
    }

    #[test]
    fn expectations() {
        let at_least = Expect {
            at_least: Some(2),
            ..Expect::default()
        };
        assert_eq!(judge(&at_least, "3"), (true, "3".into()));
        assert_eq!(judge(&at_least, "1"), (false, "1".into()));
        assert_eq!(judge(&at_least, ""), (false, String::new()));
        assert_eq!(judge(&at_least, "x"), (false, "x".into()));
        let sha = Expect {
            sha256: Some(digest("1\tEUR\n2\tUSD")),
            ..Expect::default()
        };
        assert!(judge(&sha, "1\tEUR\n2\tUSD").0);
        assert!(!judge(&sha, "1\tEUR\n2\tGBP").0);
        assert_eq!(
            digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
