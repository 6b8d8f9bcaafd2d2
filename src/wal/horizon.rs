//! The end of what a restore can reach: the time of the last transaction the archive's WAL
//! holds, read from the newest segments of a timeline (see `wal::records`). `restore` checks its
//! target against it; `status` reports it per timeline. A target
//! after it would make PostgreSQL stop with "recovery ended before configured recovery target
//! was reached" once the whole base backup is down; checked first, it costs one or two segment
//! downloads instead.

use crate::barman::ServerCatalog;
use crate::barman::wal::{name_of, seg_no, split_segment};
use crate::store::ObjectStore;
use crate::wal;
use crate::wal::records::{self, LastTransaction, Segment};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Segments read back from the newest before giving up on finding a transaction (a quiet
/// database archiving on `archive_timeout` writes segments with no commit in them).
const LOOK_BACK: usize = 8;

/// The last transaction in the WAL up to and including `last_segment` (24 hex digits), and
/// the segment it is in; `Ok(None)` when the newest segments hold none. Reads at most
/// [`LOOK_BACK`] segments, two at a time (so that a record crossing into a segment is whole).
pub async fn last_transaction(
    store: &dyn ObjectStore,
    server: &str,
    last_segment: &str,
) -> Result<Option<(String, LastTransaction)>, String> {
    let mut newer: Option<(String, Vec<u8>)> = None;
    let mut name = last_segment.to_string();
    for _ in 0..LOOK_BACK {
        let data = wal::fetch(store, server, &name)
            .await
            .map_err(|e| e.to_string())?;
        let Some(data) = data else {
            break;
        };
        let mut segs = vec![Segment {
            name: &name,
            data: &data,
        }];
        if let Some((n, d)) = &newer {
            segs.push(Segment { name: n, data: d });
        }
        if let Some(t) = records::last_transaction(&segs).map_err(|e| e.to_string())? {
            let at = segs
                .iter()
                .rev()
                .find(|s| starts_at(s) <= t.lsn)
                .map_or(name.clone(), |s| s.name.to_string());
            return Ok(Some((at, t)));
        }
        // The segment's own length is its size (the reader refuses one that differs from its
        // header).
        let Some(prev) = previous(&name, data.len() as u64) else {
            break;
        };
        newer = Some((name, data));
        name = prev;
    }
    Ok(None)
}

/// The LSN a segment starts at, from its first page header.
fn starts_at(s: &Segment<'_>) -> u64 {
    s.data
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The last commit or abort in the archived WAL of one timeline: where a restore can reach, to the
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineTransaction {
    pub timeline: u32,
    /// `xact_time` of the last commit or abort record; `None` when the newest segments hold none.
    pub time: Option<DateTime<Utc>>,
    pub committed: Option<bool>,
    /// The segment it is in.
    pub segment: Option<String>,
    /// The timeline's newest archived segment.
    pub newest_segment: String,
    /// Why it could not be read (the segment is named).
    pub error: Option<String>,
}

/// `last transaction: commit at 2026-12-03T11:30:00.123456Z (segment ..)`, as `catalog` and
/// `status` print it; or why it is unknown, or that the newest segments hold none.
impl std::fmt::Display for TimelineTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.error, self.time) {
            (Some(e), _) => write!(f, "last transaction unknown: {e}"),
            (None, Some(time)) => write!(
                f,
                "last transaction: {} at {} (segment {})",
                if self.committed == Some(true) {
                    "commit"
                } else {
                    "abort"
                },
                time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                self.segment.as_deref().unwrap_or_default()
            ),
            (None, None) => write!(
                f,
                "last transaction: none in the newest segments up to {}",
                self.newest_segment
            ),
        }
    }
}

/// The last transaction of each timeline of `server`, from its newest segments (only GETs: the
/// store is not written). A segment that cannot be read is reported in its row, not fatal.
pub async fn per_timeline(
    store: &dyn ObjectStore,
    server: &ServerCatalog,
) -> Vec<TimelineTransaction> {
    let mut out = Vec::new();
    for t in server.timelines.values() {
        let Some(run) = t.runs.last() else { continue };
        let newest = name_of(t.id, run.last, server.segment_size);
        let mut row = TimelineTransaction {
            timeline: t.id,
            time: None,
            committed: None,
            segment: None,
            newest_segment: newest.clone(),
            error: None,
        };
        match last_transaction(store, &server.server, &newest).await {
            Ok(Some((segment, last))) => {
                row.time = Some(last.time);
                row.committed = Some(last.committed);
                row.segment = Some(segment);
            }
            Ok(None) => {}
            Err(e) => row.error = Some(e),
        }
        out.push(row);
    }
    out
}

/// The segment before `name` on its timeline, for segments of `segment_size` bytes.
fn previous(name: &str, segment_size: u64) -> Option<String> {
    let (tl, log, seg) = split_segment(name)?;
    let no = seg_no(log, seg, segment_size).checked_sub(1)?;
    Some(name_of(tl, no, segment_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_segments() {
        const MIB16: u64 = 16 << 20;
        assert_eq!(
            previous("000000020000000100000000", MIB16).as_deref(),
            Some("0000000200000000000000FF")
        );
        assert_eq!(
            previous("000000010000000000000005", MIB16).as_deref(),
            Some("000000010000000000000004")
        );
        assert_eq!(previous("000000010000000000000000", MIB16), None);
        // 64 MiB segments: 64 per log.
        assert_eq!(
            previous("000000010000000100000000", 64 << 20).as_deref(),
            Some("00000001000000000000003F")
        );
    }
}
