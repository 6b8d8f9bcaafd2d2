//! Which times a drill restores to: `oldest`, `random` and `latest` resolved against the
//! recoverable window the catalog computed (pure: no I/O).

use super::def::Point;
use crate::barman::Window;
use crate::barman::window::merged;
use crate::restore::postgres::Target;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// A point made concrete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// As the drill names it: `oldest`, `random`, `latest` or the time.
    pub label: String,
    pub target: Target,
}

/// How far inside the window `oldest` and the end of `random`'s range sit: a twentieth of the
/// window, between 1 s and 1 min. At the very edge a restore may need a commit that is not yet
/// archived (the end) or land before the base backup's consistency point (the start).
fn margin(span: TimeDelta) -> TimeDelta {
    (span / 20).clamp(TimeDelta::seconds(1), TimeDelta::minutes(1))
}

/// Resolves `points` against `window` at `now`, for a policy keeping `recovery_window`. `random`
/// is drawn from `[oldest, end − margin]` with `seed`, or from `[oldest, last_commit)` when the
/// last restorable transaction is known (a `latest` restore found it): the window's end is the
/// archive time of the newest segment, which can lie well after its last commit, and a target
/// past the last commit cannot be reached. `Err` says why nothing is restorable.
pub fn resolve(
    points: &[Point],
    window: &Window,
    recovery_window: TimeDelta,
    now: DateTime<Utc>,
    seed: u64,
    last_commit: Option<DateTime<Utc>>,
) -> Result<Vec<Resolved>, String> {
    let spans = merged(&window.ranges);
    let (Some(start), Some(end)) = (spans.first().map(|s| s.0), spans.last().map(|s| s.1)) else {
        return Err("nothing is restorable: no DONE base backup with its WAL".into());
    };
    let m = margin(end - start);
    let oldest = ((now - recovery_window).max(start) + m).min(end);
    let last = match last_commit {
        Some(c) => (c - TimeDelta::milliseconds(1)).max(oldest),
        None => (end - m).max(oldest),
    };
    let mut rng = SplitMix(seed);
    Ok(points
        .iter()
        .map(|p| Resolved {
            label: p.label(),
            target: match p {
                Point::Oldest => Target::Time(oldest),
                Point::Random => {
                    let range = (last - oldest).num_microseconds().unwrap_or(0).max(0);
                    let off = if range == 0 {
                        0
                    } else {
                        (rng.next() % (range as u64 + 1)) as i64
                    };
                    Target::Time(oldest + TimeDelta::microseconds(off))
                }
                Point::Latest => Target::Latest,
                Point::At(t) => Target::Time(*t),
            },
        })
        .collect())
}

/// SplitMix64: small, seedable, and the same on every machine, so `--seed N` repeats a run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barman::window::Range;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(from: &str, to: &str) -> Window {
        Window {
            earliest: Some(t(from)),
            latest: Some(t(to)),
            ranges: vec![Range {
                backup_id: "b".into(),
                from: t(from),
                to: t(to),
                timeline: 1,
                last_segment: "000000010000000000000009".into(),
            }],
            ..Window::default()
        }
    }

    fn time(r: &Resolved) -> DateTime<Utc> {
        match r.target {
            Target::Time(t) => t,
            Target::Latest => panic!("latest"),
        }
    }

    #[test]
    fn oldest_random_latest_inside_the_window() {
        let w = window("2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z");
        let now = t("2026-12-03T00:00:10Z");
        let all = [Point::Oldest, Point::Random, Point::Latest];
        let r = resolve(&all, &w, TimeDelta::days(1), now, 7, None).unwrap();
        // now − 1 day is later than the window's start: that plus a minute.
        assert_eq!(time(&r[0]), t("2026-12-02T00:01:10Z"));
        assert!(time(&r[1]) >= time(&r[0]) && time(&r[1]) <= t("2026-12-02T23:59:00Z"));
        assert_eq!(r[2].target, Target::Latest);
        // The same seed gives the same point; another seed another one.
        let again = resolve(&all, &w, TimeDelta::days(1), now, 7, None).unwrap();
        assert_eq!(r, again);
        let other = resolve(&all, &w, TimeDelta::days(1), now, 8, None).unwrap();
        // Once the last commit is known, random stays before it.
        let commit = t("2026-12-02T00:05:00Z");
        for seed in 0..50 {
            let r = resolve(&all, &w, TimeDelta::days(1), now, seed, Some(commit)).unwrap();
            assert!(
                time(&r[1]) >= time(&r[0]) && time(&r[1]) < commit,
                "seed {seed}"
            );
        }
        assert_ne!(time(&r[1]), time(&other[1]));
        // A window shorter than the policy's: oldest is the window's start plus the margin.
        let r = resolve(&[Point::Oldest], &w, TimeDelta::days(7), now, 1, None).unwrap();
        assert_eq!(time(&r[0]), t("2026-12-01T00:01:00Z"));
    }

    #[test]
    fn a_short_window_keeps_points_inside_it() {
        let w = window("2026-12-03T00:00:00Z", "2026-12-03T00:00:30Z");
        let now = t("2026-12-03T00:00:31Z");
        let r = resolve(
            &[Point::Oldest, Point::Random],
            &w,
            TimeDelta::days(7),
            now,
            3,
            None,
        )
        .unwrap();
        assert_eq!(time(&r[0]), t("2026-12-03T00:00:01.5Z"));
        assert!(time(&r[1]) >= time(&r[0]) && time(&r[1]) <= t("2026-12-03T00:00:28.5Z"));
    }

    #[test]
    fn nothing_restorable_is_said() {
        let e = resolve(
            &[Point::Latest],
            &Window::default(),
            TimeDelta::days(7),
            Utc::now(),
            1,
            None,
        );
        assert!(e.unwrap_err().contains("nothing is restorable"));
    }
}
