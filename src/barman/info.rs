//! `backup.info`: the `key=value` file barman-cloud writes last, once a backup ends.
//!
//! barman rejects unknown keys; we keep them (newer barman versions add keys) so that a newer
//! writer never makes a backup look unreadable.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InfoError {
    #[error("line {line}: expected key=value, found {text:?}")]
    NotKeyValue { line: usize, text: String },
    #[error("field '{field}': cannot read {value:?} ({why})")]
    BadField {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("field '{field}' is missing")]
    Missing { field: &'static str },
}

/// Backup status as barman writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupStatus {
    Empty,
    Started,
    WaitingForWals,
    Done,
    Syncing,
    Failed,
}

/// The fields openova reasons with, parsed; every other key is kept verbatim in `other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    pub status: BackupStatus,
    pub begin_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    pub begin_xlog: Option<String>,
    pub end_xlog: Option<String>,
    pub timeline: Option<u32>,
    pub server_name: Option<String>,
    pub systemid: Option<String>,
    pub version: Option<u32>,
    pub compression: Option<String>,
    pub xlog_segment_size: u64,
    pub backup_name: Option<String>,
    pub error: Option<String>,
    /// Every key as written (including the ones above), `None` written as `None` stays absent.
    pub other: BTreeMap<String, String>,
}

/// PostgreSQL's default WAL segment size, used when `xlog_segment_size` is absent.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

impl BackupInfo {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, InfoError> {
        let mut kv = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(InfoError::NotKeyValue {
                    line: i + 1,
                    text: line.to_string(),
                });
            };
            if v != "None" {
                kv.insert(k.trim().to_string(), v.to_string());
            }
        }
        Self::from_map(kv)
    }

    fn from_map(kv: BTreeMap<String, String>) -> Result<Self, InfoError> {
        let s = |k: &str| kv.get(k).cloned();
        Ok(Self {
            status: parse_status(
                kv.get("status")
                    .ok_or(InfoError::Missing { field: "status" })?,
            )?,
            begin_time: opt(&kv, "begin_time", parse_time)?,
            end_time: opt(&kv, "end_time", parse_time)?,
            begin_wal: opt(&kv, "begin_wal", wal_name)?,
            end_wal: opt(&kv, "end_wal", wal_name)?,
            begin_xlog: s("begin_xlog"),
            end_xlog: s("end_xlog"),
            timeline: opt(&kv, "timeline", |v| v.parse().map_err(|_| "not a number"))?,
            server_name: s("server_name"),
            systemid: s("systemid"),
            version: opt(&kv, "version", |v| v.parse().map_err(|_| "not a number"))?,
            compression: s("compression"),
            xlog_segment_size: opt(&kv, "xlog_segment_size", parse_segment_size)?
                .unwrap_or(DEFAULT_SEGMENT_SIZE),
            backup_name: s("backup_name"),
            error: s("error"),
            other: kv,
        })
    }
}

type FieldResult<T> = Result<T, &'static str>;

fn opt<T>(
    kv: &BTreeMap<String, String>,
    field: &'static str,
    f: impl Fn(&str) -> FieldResult<T>,
) -> Result<Option<T>, InfoError> {
    kv.get(field)
        .map(|v| {
            f(v).map_err(|why| InfoError::BadField {
                field,
                value: v.clone(),
                why,
            })
        })
        .transpose()
}

fn parse_status(v: &str) -> Result<BackupStatus, InfoError> {
    Ok(match v {
        "EMPTY" => BackupStatus::Empty,
        "STARTED" => BackupStatus::Started,
        "WAITING_FOR_WALS" => BackupStatus::WaitingForWals,
        "DONE" => BackupStatus::Done,
        "SYNCING" => BackupStatus::Syncing,
        "FAILED" => BackupStatus::Failed,
        _ => {
            let why = "not one of EMPTY, STARTED, WAITING_FOR_WALS, DONE, SYNCING, FAILED";
            return Err(InfoError::BadField {
                field: "status",
                value: v.to_string(),
                why,
            });
        }
    })
}

/// Python's `str(datetime)` with an offset: `2026-11-24 16:26:13.363363+00:00` (the fraction is
/// left out when it is zero).
pub fn parse_time(v: &str) -> FieldResult<DateTime<Utc>> {
    ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"]
        .iter()
        .find_map(|f| DateTime::<FixedOffset>::parse_from_str(v, f).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or("not a time like 2026-11-24 16:26:13.363363+00:00")
}

fn wal_name(v: &str) -> FieldResult<String> {
    if v.len() == 24 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_ascii_uppercase())
    } else {
        Err("not a 24-hex-digit WAL segment name")
    }
}

fn parse_segment_size(v: &str) -> FieldResult<u64> {
    match v.parse::<u64>() {
        Ok(n) if n.is_power_of_two() && (1 << 20..=1 << 30).contains(&n) => Ok(n),
        _ => Err("not a power of two between 1 MiB and 1 GiB"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "backup_label='START WAL LOCATION: 0/2000028'\nbackup_name=None\n\
        begin_time=2026-11-24 16:26:13.363363+00:00\nbegin_wal=000000010000000000000002\n\
        end_time=2026-11-24 16:26:15+00:00\nend_wal=000000010000000000000002\n\
        future_key=something new\nstatus=DONE\ntimeline=1\nversion=150018\n";

    #[test]
    fn parses_known_and_keeps_unknown_keys() {
        let i = BackupInfo::parse(SAMPLE).unwrap();
        assert_eq!(i.status, BackupStatus::Done);
        assert_eq!(
            i.begin_time.unwrap().to_rfc3339(),
            "2026-11-24T16:26:13.363363+00:00"
        );
        assert_eq!(
            i.end_time.unwrap().to_rfc3339(),
            "2026-11-24T16:26:15+00:00"
        );
        assert_eq!(i.timeline, Some(1));
        assert_eq!(i.xlog_segment_size, DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            i.other.get("future_key").map(String::as_str),
            Some("something new")
        );
        assert_eq!(i.backup_name, None, "None means absent");
    }

    #[test]
    fn a_malformed_file_names_line_or_field() {
        let e = BackupInfo::parse("status=DONE\ngarbage line\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: expected key=value, found \"garbage line\""
        );
        let e = BackupInfo::parse("status=DONE\nend_time=yesterday\n").unwrap_err();
        assert!(e.to_string().starts_with("field 'end_time'"), "{e}");
        let e = BackupInfo::parse("begin_wal=000000010000000000000002\n").unwrap_err();
        assert_eq!(e, InfoError::Missing { field: "status" });
        assert!(BackupInfo::parse("status=WEIRD\n").is_err());
    }
}

/// A tablespace of a base backup: `barman-cloud-backup` uploads it as `OID.tar[.gz|...]` (plus
/// `OID_NNNN.tar...` parts) beside `data.tar`, and PostgreSQL finds it through the symlink
/// `pg_tblspc/OID` -> `location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tablespace {
    pub name: String,
    pub oid: u32,
    pub location: String,
}

impl BackupInfo {
    /// The `tablespaces` field: absent or `None` means none. Barman writes it as a Python literal,
    /// `[('name', 16385, '/location'), ...]`.
    pub fn tablespaces(&self) -> Result<Vec<Tablespace>, String> {
        match self.other.get("tablespaces").map(|s| s.trim()) {
            None | Some("None" | "" | "[]") => Ok(vec![]),
            Some(text) => parse_tablespace_list(text).ok_or_else(|| {
                format!("tablespaces = {text}: not a list of (name, oid, location)")
            }),
        }
    }
}

/// Parses a Python literal list of `(str, int, str)` tuples (either quote style, backslash
/// escapes as `repr` writes them).
fn parse_tablespace_list(text: &str) -> Option<Vec<Tablespace>> {
    let mut p = Lit {
        s: text.as_bytes(),
        at: 0,
    };
    let mut out = Vec::new();
    p.eat(b'[')?;
    while !p.peek_is(b']') {
        let close = if p.peek_is(b'(') { b')' } else { b']' };
        p.at += 1;
        let name = p.string()?;
        p.eat(b',')?;
        let oid = p.int()?;
        p.eat(b',')?;
        let location = p.string()?;
        p.skip(b',');
        p.eat(close)?;
        out.push(Tablespace {
            name,
            oid,
            location,
        });
        p.skip(b',');
    }
    p.eat(b']')?;
    p.ws();
    (p.at == p.s.len()).then_some(out)
}

struct Lit<'a> {
    s: &'a [u8],
    at: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }
    fn peek_is(&mut self, c: u8) -> bool {
        self.ws();
        self.s.get(self.at) == Some(&c)
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        self.peek_is(c).then(|| self.at += 1)
    }
    fn skip(&mut self, c: u8) {
        let _ = self.eat(c);
    }
    fn int(&mut self) -> Option<u32> {
        self.ws();
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()
    }
    fn string(&mut self) -> Option<String> {
        self.ws();
        let quote = *self
            .s
            .get(self.at)
            .filter(|c| **c == b'\'' || **c == b'"')?;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match *self.s.get(self.at)? {
                b'\\' => {
                    out.push(*self.s.get(self.at + 1)?);
                    self.at += 2;
                }
                c if c == quote => {
                    self.at += 1;
                    return String::from_utf8(out).ok();
                }
                c => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tablespace_tests {
    use super::*;

    fn info(value: &str) -> BackupInfo {
        let mut i = BackupInfo::parse("status=DONE\n").unwrap();
        i.other.insert("tablespaces".into(), value.into());
        i
    }

    #[test]
    fn tablespace_lists_as_barman_writes_them() {
        assert_eq!(info("None").tablespaces().unwrap(), vec![]);
        let t = info(r#"[('tbs1', 16385, '/var/lib/tbs1'), ("it's", 16390, '/a b/c\'d')]"#)
            .tablespaces()
            .unwrap();
        assert_eq!(
            t,
            [
                Tablespace {
                    name: "tbs1".into(),
                    oid: 16385,
                    location: "/var/lib/tbs1".into()
                },
                Tablespace {
                    name: "it's".into(),
                    oid: 16390,
                    location: "/a b/c'd".into()
                }
            ]
        );
        for bad in [
            "[('x', 'y', '/z')]",
            "[('x', 1)]",
            "[('x', 1, '/z')",
            "nonsense",
        ] {
            assert!(info(bad).tablespaces().is_err(), "{bad}");
        }
    }
}
