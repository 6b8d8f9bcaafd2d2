//! What a Barman catalog can restore: the recoverable window and the WAL gaps. Pure functions.
//!
//! A DONE backup is a restore base when every segment from its `begin_wal` to its `end_wal` is
//! archived. From there recovery can go as far as the WAL is contiguous, following a timeline
//! switch into a child timeline when the child's history says it branched off within that reach.
//! The time of the last segment reached is the object's archive time, an upper bound of the
//! records it holds, as barman-cloud never learns record times either.

use super::catalog::{BaseBackup, ServerCatalog, Timeline};
use super::wal;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A run of missing segments on one timeline, named exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub timeline: u32,
    pub first_missing: String,
    pub last_missing: String,
    pub count: u64,
    /// The archive time of the segment just before the gap (the gap exists since then).
    pub since: Option<DateTime<Utc>>,
}

/// A span of time that can be restored to, from one base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub backup_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Timeline and segment the WAL reaches, contiguously, from the backup.
    pub timeline: u32,
    pub last_segment: String,
}

/// A DONE backup that cannot serve as a restore base, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrestorable {
    pub backup_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// Earliest and latest restorable time over all ranges.
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub ranges: Vec<Range>,
    pub gaps: Vec<Gap>,
    pub unrestorable: Vec<Unrestorable>,
}

impl Window {
    /// Whether one continuous range covers `[from, to]`.
    #[must_use]
    pub fn covers(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        merged(&self.ranges)
            .iter()
            .any(|(a, b)| *a <= from && *b >= to)
    }
}

/// Ranges merged into disjoint spans (ranges from different backups overlap).
#[must_use]
pub fn merged(ranges: &[Range]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: Vec<_> = ranges.iter().map(|r| (r.from, r.to)).collect();
    spans.sort();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Computes ranges, gaps and unrestorable backups of a catalog.
#[must_use]
pub fn analyse(cat: &ServerCatalog) -> Window {
    let runs = Runs::of(cat);
    let mut w = Window {
        gaps: gaps(cat),
        ..Window::default()
    };
    for b in cat.backups.iter().filter(|b| b.is_done()) {
        match range_of(cat, &runs, b) {
            Ok(r) => w.ranges.push(r),
            Err(reason) => w.unrestorable.push(Unrestorable {
                backup_id: b.id.clone(),
                reason,
            }),
        }
    }
    w.earliest = w.ranges.iter().map(|r| r.from).min();
    w.latest = w.ranges.iter().map(|r| r.to).max();
    w
}

/// The contiguous stretches of segments of every timeline, `(first, last, archive time of last)`
/// by position, in order: computed once, so that how far each backup reaches is a lookup.
struct Runs(std::collections::BTreeMap<u32, Vec<super::runs::Stretch>>);

impl Runs {
    fn of(cat: &ServerCatalog) -> Self {
        let runs = cat
            .timelines
            .iter()
            .map(|(id, t)| (*id, super::runs::stretches(&t.runs)));
        Self(runs.collect())
    }

    /// Last position reached contiguously from `start` on timeline `tl` (`None` if `start` is
    /// missing), and the archive time of the segment there.
    fn reach(&self, tl: u32, start: u64) -> Option<(u64, Option<DateTime<Utc>>)> {
        let runs = self.0.get(&tl)?;
        let i = runs.partition_point(|run| run.0 <= start);
        let run = runs.get(i.checked_sub(1)?)?;
        (start <= run.1).then_some((run.1, run.2))
    }
}

fn range_of(cat: &ServerCatalog, runs: &Runs, b: &BaseBackup) -> Result<Range, String> {
    let info = b.info.as_ref().ok_or("no backup.info")?;
    let (Some(begin), Some(end), Some(end_time)) = (&info.begin_wal, &info.end_wal, info.end_time)
    else {
        return Err("backup.info lacks begin_wal, end_wal or end_time".into());
    };
    let (tl, start) = cat.position(begin).ok_or("bad begin_wal")?;
    let (_, stop) = cat.position(end).ok_or("bad end_wal")?;
    match runs.reach(tl, start) {
        Some((r, archived)) if r >= stop => {
            let (tl, last, archived) = follow_children(cat, runs, tl, r, archived);
            let to = archived.unwrap_or(end_time).max(end_time);
            Ok(Range {
                backup_id: b.id.clone(),
                from: end_time,
                to,
                timeline: tl,
                last_segment: wal::name_of(tl, last, cat.segment_size),
            })
        }
        Some((r, _)) => Err(format!(
            "WAL needed to make it consistent is missing: {} (it needs {begin} to {end})",
            wal::name_of(tl, r + 1, cat.segment_size)
        )),
        None => Err(format!("its first WAL segment {begin} is not archived")),
    }
}

/// From position `at` reached on timeline `tl`, continue into the newest child timeline that
/// branched off at or before `at + 1` (the switch segment is copied onto the child timeline).
fn follow_children(
    cat: &ServerCatalog,
    runs: &Runs,
    mut tl: u32,
    mut at: u64,
    mut archived: Option<DateTime<Utc>>,
) -> (u32, u64, Option<DateTime<Utc>>) {
    loop {
        let child = cat.timelines.values().rev().find_map(|t| {
            let entry = t.history.last().filter(|h| h.parent == tl)?;
            let switch = wal::lsn_seg_no(&entry.switch_lsn, cat.segment_size)?;
            (switch <= at + 1).then_some(())?;
            runs.reach(t.id, switch).map(|r| (t.id, r))
        });
        match child {
            Some((c, (r, time))) if c != tl => (tl, at, archived) = (c, r, time),
            _ => return (tl, at, archived),
        }
    }
}

/// Missing segments on each timeline, from where the timeline's WAL is needed (the oldest DONE
/// backup's `begin_wal` on it, or its switch point for a child timeline) to its newest segment.
#[must_use]
pub fn gaps(cat: &ServerCatalog) -> Vec<Gap> {
    let mut out = Vec::new();
    for t in cat.timelines.values() {
        let Some(start) = needed_from(cat, t) else {
            continue;
        };
        let mut prev: Option<(u64, Option<DateTime<Utc>>)> = None;
        for (first, last, archived) in super::runs::stretches(&t.runs) {
            if last < start {
                continue;
            }
            let first = first.max(start);
            let expected = prev.map_or(start, |(p, _)| p + 1);
            if first > expected {
                out.push(Gap {
                    timeline: t.id,
                    first_missing: wal::name_of(t.id, expected, cat.segment_size),
                    last_missing: wal::name_of(t.id, first - 1, cat.segment_size),
                    count: first - expected,
                    since: prev.and_then(|(_, time)| time),
                });
            }
            prev = Some((last, archived));
        }
    }
    out
}

fn needed_from(cat: &ServerCatalog, t: &Timeline) -> Option<u64> {
    let from_backups = cat
        .backups
        .iter()
        // A keep:standalone backup needs only its own begin_wal..end_wal, checked when its range is
        // computed; WAL after it is not expected to stay (retention may remove it, as Barman does).
        .filter(|b| b.is_done() && b.keep.as_deref() != Some("standalone"))
        .filter_map(|b| cat.position(b.info.as_ref()?.begin_wal.as_ref()?))
        .filter(|(tl, _)| *tl == t.id)
        .map(|(_, no)| no)
        .min();
    let from_switch = t
        .history
        .last()
        .and_then(|h| wal::lsn_seg_no(&h.switch_lsn, cat.segment_size));
    match (from_backups, from_switch) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
