//! The WAL inventory of a timeline, held as what it is: runs of consecutive segments (issue 14).
//!
//! A busy server archives hundreds of thousands of segments; holding each as an object costs
//! ~300 bytes apiece. A run holds its first and last position, how its keys are spelt, its total
//! size and the archive times a reader needs (of its last segment, and its newest), so memory
//! follows the number of runs and gaps. Runs are also cut where a base backup's WAL begins and
//! after where it ends: retention deletes, and its checks keep, whole runs then, and the archive
//! time of every segment a recoverable range can end on is known.

use super::wal;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How the keys of a run's segments are spelt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `WALS/TTTTTTTTLLLLLLLL/NAME` + suffix (none, `.gz`, ...), the name in upper case: what
    /// barman-cloud writes.
    Canonical(Box<str>),
    /// A segment whose key is spelt otherwise (lower-case hex, another folder): the key itself.
    /// Its run holds just that segment.
    Exact(Box<str>),
}

/// Consecutive segments of one timeline, by position (see [`wal::seg_no`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub first: u64,
    pub last: u64,
    pub shape: Shape,
    /// Total size of the run's segments.
    pub bytes: u64,
    /// Archive time of the last segment.
    pub last_archived: Option<DateTime<Utc>>,
    /// Newest archive time of any of its segments.
    pub newest_archived: Option<DateTime<Utc>>,
}

impl Run {
    #[must_use]
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// A run holds at least one segment.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Where segment keys live and how positions map to names: what it takes to spell a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBase {
    /// `SERVER/wals/`, relative to the store.
    pub wals: Arc<str>,
    pub segment_size: u64,
}

impl KeyBase {
    /// The key of position `p` of timeline `tl` in a run spelt `shape`.
    #[must_use]
    pub fn key(&self, tl: u32, p: u64, shape: &Shape) -> String {
        match shape {
            Shape::Exact(key) => key.to_string(),
            Shape::Canonical(suffix) => {
                let name = wal::name_of(tl, p, self.segment_size);
                format!("{}{}/{name}{suffix}", self.wals, &name[..16])
            }
        }
    }

    /// How `key` (the object of segment `p` on `tl`, file name `file`) is spelt.
    fn shape_of(&self, tl: u32, p: u64, key: &str, file: &str) -> Shape {
        let name = wal::name_of(tl, p, self.segment_size);
        let canonical = file.get(..24) == Some(name.as_str())
            && key.strip_prefix(&*self.wals).is_some_and(|rest| {
                rest.get(..16) == Some(&name[..16]) && rest.get(16..17) == Some("/")
            })
            && key.len() == self.wals.len() + 17 + file.len();
        if canonical {
            Shape::Canonical(file[24..].into())
        } else {
            Shape::Exact(key.into())
        }
    }
}

/// One archived segment, as a listing reports it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub tl: u32,
    pub p: u64,
    pub size: u64,
    pub archived: Option<DateTime<Utc>>,
    pub shape: Shape,
}

/// Builds the runs of every timeline from segments given in key order (as listings return them).
/// A segment listed twice under one position (`X` and `X.gz`) counts once, the later key, as a
/// map keyed by position would hold it.
#[derive(Debug)]
pub struct Builder {
    base: KeyBase,
    /// `(timeline, position)` where a run must not continue from the position before: a backup's
    /// `begin_wal`, and the one after its `end_wal`.
    cuts: BTreeSet<(u32, u64)>,
    /// The segment last given, not yet in a run: the next may replace it.
    pending: Option<Listed>,
    pub runs: std::collections::BTreeMap<u32, Vec<Run>>,
}

impl Builder {
    #[must_use]
    pub fn new(base: KeyBase, cuts: BTreeSet<(u32, u64)>) -> Self {
        Self {
            base,
            cuts,
            pending: None,
            runs: std::collections::BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn base(&self) -> &KeyBase {
        &self.base
    }

    /// Adds the segment of timeline `tl` at position `p` whose object is `key` (file name `file`).
    pub fn push(
        &mut self,
        tl: u32,
        p: u64,
        key: &str,
        file: &str,
        size: u64,
        archived: Option<DateTime<Utc>>,
    ) {
        let shape = self.base.shape_of(tl, p, key, file);
        let seg = Listed {
            tl,
            p,
            size,
            archived,
            shape,
        };
        match &self.pending {
            Some(prev) if prev.tl == tl && prev.p == p => {}
            _ => self.flush(),
        }
        self.pending = Some(seg);
    }

    fn flush(&mut self) {
        let Some(s) = self.pending.take() else {
            return;
        };
        let cut = self.cuts.contains(&(s.tl, s.p));
        let runs = self.runs.entry(s.tl).or_default();
        let run = Run {
            first: s.p,
            last: s.p,
            bytes: s.size,
            last_archived: s.archived,
            newest_archived: s.archived,
            shape: s.shape,
        };
        match runs.last_mut() {
            Some(r) if r.last + 1 == run.first => {
                if !cut && r.shape == run.shape && matches!(r.shape, Shape::Canonical(_)) {
                    r.last = run.first;
                    r.bytes += run.bytes;
                    r.last_archived = run.last_archived;
                    r.newest_archived = r.newest_archived.max(run.newest_archived);
                } else {
                    runs.push(run);
                }
            }
            Some(r) if r.last >= run.first => {
                // Listed out of position order (a key spelt unlike barman-cloud's): a position
                // already held keeps its first object; a missing one gets a run of its own.
                let i = runs.partition_point(|r| r.last < run.first);
                if runs.get(i).is_none_or(|r| r.first > run.first) {
                    runs.insert(i, run);
                }
            }
            _ => runs.push(run),
        }
    }

    /// The runs of every timeline.
    #[must_use]
    pub fn finish(mut self) -> std::collections::BTreeMap<u32, Vec<Run>> {
        self.flush();
        self.runs
    }
}

/// Positions `(timeline, position)` where runs are cut for backups with these `begin_wal` and
/// `end_wal` names.
#[must_use]
pub fn cuts<'a>(
    walls: impl Iterator<Item = (&'a str, &'a str)>,
    segment_size: u64,
) -> BTreeSet<(u32, u64)> {
    let pos = |n: &str| {
        let (t, l, s) = wal::split_segment(n)?;
        Some((t, wal::seg_no(l, s, segment_size)))
    };
    let mut out = BTreeSet::new();
    for (begin, end) in walls {
        out.extend(pos(begin));
        out.extend(pos(end).map(|(t, p)| (t, p + 1)));
    }
    out
}

/// Contiguous segments, `(first, last, archive time of last)`: runs, merged where they touch.
pub type Stretch = (u64, u64, Option<DateTime<Utc>>);

/// The contiguous stretches of a timeline's runs.
#[must_use]
pub fn stretches(runs: &[Run]) -> Vec<Stretch> {
    let mut out: Vec<Stretch> = Vec::new();
    for r in runs {
        match out.last_mut() {
            Some(s) if s.1 + 1 == r.first => {
                s.1 = r.last;
                s.2 = r.last_archived;
            }
            _ => out.push((r.first, r.last, r.last_archived)),
        }
    }
    out
}

/// The runs with the positions `first..=last` taken out. A run cut inside keeps what it knows:
/// the archive time of the new last segment of a piece before the cut is unknown (`None`), so a
/// window computed on what stays can only look shorter, never longer.
#[must_use]
pub fn without(runs: &[Run], first: u64, last: u64) -> Vec<Run> {
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        if r.last < first || r.first > last {
            out.push(r.clone());
            continue;
        }
        if r.first < first {
            out.push(Run {
                last: first - 1,
                last_archived: None,
                ..r.clone()
            });
        }
        if r.last > last {
            out.push(Run {
                first: last + 1,
                ..r.clone()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyBase {
        KeyBase {
            wals: "srv/wals/".into(),
            segment_size: 16 * 1024 * 1024,
        }
    }

    fn push(b: &mut Builder, p: u64, suffix: &str, size: u64) {
        let name = wal::name_of(1, p, 16 * 1024 * 1024);
        let file = format!("{name}{suffix}");
        let key = format!("srv/wals/{}/{file}", &name[..16]);
        b.push(1, p, &key, &file, size, None);
    }

    #[test]
    fn consecutive_segments_make_one_run_across_folders() {
        let mut b = Builder::new(base(), BTreeSet::new());
        for p in 250..=260 {
            push(&mut b, p, "", 2);
        }
        let runs = b.finish();
        assert_eq!(runs[&1].len(), 1);
        assert_eq!((runs[&1][0].first, runs[&1][0].last), (250, 260));
        assert_eq!(runs[&1][0].bytes, 22);
        assert_eq!(
            base().key(1, 256, &runs[&1][0].shape),
            "srv/wals/0000000100000001/000000010000000100000000"
        );
    }

    #[test]
    fn runs_break_at_gaps_suffixes_cuts_and_odd_keys() {
        let cuts = BTreeSet::from([(1, 20)]);
        let mut b = Builder::new(base(), cuts);
        for p in [1, 2, 3, 5, 6] {
            push(&mut b, p, "", 1);
        }
        push(&mut b, 7, ".gz", 1);
        push(&mut b, 19, "", 1);
        push(&mut b, 20, "", 1);
        b.push(
            1,
            21,
            "srv/wals/elsewhere",
            "000000010000000000000015",
            1,
            None,
        );
        let spans: Vec<(u64, u64)> = b.finish()[&1].iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(
            spans,
            [(1, 3), (5, 6), (7, 7), (19, 19), (20, 20), (21, 21)]
        );
    }

    #[test]
    fn a_position_listed_twice_keeps_the_later_key() {
        let mut b = Builder::new(base(), BTreeSet::new());
        push(&mut b, 1, "", 1);
        push(&mut b, 2, "", 5);
        push(&mut b, 2, ".gz", 2);
        push(&mut b, 3, "", 1);
        let runs = b.finish();
        let spans: Vec<(u64, u64, u64)> = runs[&1]
            .iter()
            .map(|r| (r.first, r.last, r.bytes))
            .collect();
        assert_eq!(spans, [(1, 1, 1), (2, 2, 2), (3, 3, 1)]);
    }

    #[test]
    fn taking_positions_out_keeps_the_rest() {
        let mut b = Builder::new(base(), BTreeSet::new());
        for p in 1..=10 {
            push(&mut b, p, "", 1);
        }
        let runs = b.finish().remove(&1).unwrap();
        let left: Vec<(u64, u64)> = without(&runs, 4, 6)
            .iter()
            .map(|r| (r.first, r.last))
            .collect();
        assert_eq!(left, [(1, 3), (7, 10)]);
        assert_eq!(stretches(&without(&runs, 4, 6)).len(), 2);
    }
}
