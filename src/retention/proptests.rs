//! Property tests of the PostgreSQL planner over random hand-built catalogs (segments are minutes
//! after t0, see `barman::testkit`) and random `now`, window and `minimumRedundancy`:
//! - every plan passes `invariants::check_postgres`;
//! - planning again after applying a plan deletes nothing;
//! - the newest DONE backup and keep-annotated backups stay, and so do `minimumRedundancy`;
//! - a backup's deletion lists its `backup.info` first.

use super::invariants::{self, apply};
use super::{DEFAULT_GRACE, Plan, What, postgres};
use crate::barman::testkit::{backup, catalog, minutes, t0};
use crate::barman::wal::HistoryEntry;
use crate::barman::{BackupStatus, ServerCatalog};
use crate::policy::{Policy, PostgresPolicy, parse_file};
use crate::store::ObjectMeta;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const CASES: u32 = 512;

fn policy(window_minutes: i64, redundancy: u32) -> PostgresPolicy {
    let text = format!(
        "kind: PostgresPolicy\nname: db\ncluster: {{namespace: d, name: db}}\nserverName: srv\n\
         baseBackupSchedule: \"0 2 * * *\"\nrecoveryWindow: {window_minutes}m\nrpo: 1m\n\
         minimumRedundancy: {redundancy}\nstorage: {{url: \"s3://b/cnpg\"}}\n"
    );
    match parse_file(std::path::Path::new("t.yaml"), &text)
        .unwrap()
        .remove(0)
        .policy
    {
        Policy::PostgresPolicy(p) => p,
        Policy::VeleroPolicy(_) => unreachable!(),
    }
}

/// Keep annotation drawn per backup: 0 → `full`, 1 → `standalone`, anything else → none.
fn keep_of(k: u8) -> Option<&'static str> {
    match k {
        0 => Some("full"),
        1 => Some("standalone"),
        _ => None,
    }
}

/// The parameters of one random catalog; `build` turns them into the catalog, policy and `now`.
/// Kept as plain numbers so that proptest shrinks them and prints a readable case.
#[derive(Debug, Clone)]
struct Case {
    /// DONE backups on timeline 1: `begin_wal` position → (`end_wal − begin_wal` in 0..=2, keep
    /// annotation drawn as in [`keep_of`]). Ids sort like the positions, as Barman's do.
    backups: BTreeMap<u64, (u64, u8)>,
    /// A FAILED backup: (begin, end offset).
    failed: Option<(u64, u64)>,
    /// Archived WAL starts this many segments before the oldest backup's `begin_wal`.
    wal_before: u64,
    /// The newest segment on timeline 1 is this many segments after the newest `end_wal`.
    wal_after: u64,
    /// Missing segments on timeline 1: (position index into the archived run, run length).
    gaps: Vec<(u64, u64)>,
    /// Timeline 2: (switch position index after the newest backup's end, segments after the
    /// switch segment).
    tl2: Option<(u64, u64)>,
    /// `now` is this many minutes after the newest archived segment.
    now_after: i64,
    window_minutes: i64,
    redundancy: u32,
}

/// Random cases; `standalone` says whether `keep: standalone` annotations may be drawn (without,
/// a drawn `standalone` becomes `full`).
fn case(standalone: bool) -> impl Strategy<Value = Case> {
    let keep = (0u8..=7).prop_map(move |k| if k == 1 && !standalone { 0 } else { k });
    (
        prop::collection::btree_map(2u64..=60, (0u64..=2, keep), 1..=12),
        prop::option::of((0u64..=64, 0u64..=2)),
        0u64..=3,
        0u64..=20,
        prop::collection::vec((0u64..=100, 1u64..=3), 0..=3),
        prop::option::of((0u64..=30, 0u64..=10)),
        0i64..=120,
        1i64..=90,
        1u32..=3,
    )
        .prop_map(
            |(
                backups,
                failed,
                wal_before,
                wal_after,
                gaps,
                tl2,
                now_after,
                window_minutes,
                redundancy,
            )| Case {
                backups,
                failed,
                wal_before,
                wal_after,
                gaps,
                tl2,
                now_after,
                window_minutes,
                redundancy,
            },
        )
}

fn lsn_of(position: u64) -> String {
    let lsn = position * crate::barman::testkit::SIZE + 0x100;
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

impl Case {
    fn build(&self) -> (ServerCatalog, PostgresPolicy, DateTime<Utc>) {
        let mut backups = Vec::new();
        let mut newest_end = 0;
        for (&begin, &(offset, keep)) in &self.backups {
            let end = begin + offset;
            newest_end = newest_end.max(end);
            let id = format!("{begin:03}d");
            let mut b = backup(&id, 1, begin, end);
            if let Some(k) = keep_of(keep) {
                b.keep = Some(k.into());
                b.objects.push(ObjectMeta {
                    key: format!("srv/base/{id}/annotations/keep"),
                    size: 1,
                    last_modified: Some(t0()),
                });
            }
            backups.push(b);
        }
        if let Some((begin, off)) = self.failed {
            let mut f = backup(&format!("{begin:03}f"), 1, begin, begin + off);
            f.info.as_mut().unwrap().status = BackupStatus::Failed;
            backups.push(f);
        }
        backups.sort_by(|a, b| a.id.cmp(&b.id));

        let first = self
            .backups
            .keys()
            .next()
            .copied()
            .unwrap_or(2)
            .saturating_sub(self.wal_before)
            .max(1);
        let newest = newest_end + self.wal_after;
        let mut tl1: BTreeSet<u64> = (first..=newest).collect();
        let len = newest - first + 1;
        for &(at, run) in &self.gaps {
            let start = first + at % len;
            for p in start..start + run {
                tl1.remove(&p);
            }
        }
        let mut timelines = vec![(1, tl1.into_iter().collect::<Vec<_>>(), vec![])];
        if let Some((at, count)) = self.tl2 {
            // Branches after the newest backup, at most one past timeline 1's newest segment.
            let switch = newest_end + 1 + at % (newest - newest_end + 1);
            let history = vec![HistoryEntry {
                parent: 1,
                switch_lsn: lsn_of(switch),
                reason: "promote".into(),
            }];
            timelines.push((2, (switch..=switch + count).collect(), history));
        }
        let cat = catalog(backups, timelines);
        let newest_time = cat
            .newest_segment()
            .and_then(|s| s.archived)
            .unwrap_or_else(|| minutes(0));
        let now = newest_time + chrono::TimeDelta::minutes(self.now_after);
        (cat, policy(self.window_minutes, self.redundancy), now)
    }
}

fn plan_of(cat: &ServerCatalog, p: &PostgresPolicy, now: DateTime<Utc>) -> Plan {
    postgres::plan(cat, p, "s3://b/cnpg", now, DEFAULT_GRACE).expect("readable catalogs plan")
}

fn refused(checked: &Result<(), invariants::Violation>, plan: &Plan) -> String {
    format!(
        "{checked:?}\ndeleted: {:?}\nkept: {:?}",
        plan.deletions.iter().map(|d| &d.name).collect::<Vec<_>>(),
        plan.kept
    )
}

fn deleted_backups(plan: &Plan) -> Vec<&str> {
    plan.deletions
        .iter()
        .filter(|d| d.what == What::BarmanBackup)
        .map(|d| d.name.as_str())
        .collect()
}

fn done_ids(cat: &ServerCatalog) -> Vec<&str> {
    cat.backups
        .iter()
        .filter(|b| b.status() == Some(BackupStatus::Done))
        .map(|b| b.id.as_str())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Counterexamples are reported in the failure message; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    })]

    /// Property 1: the planner never proposes a plan the invariants refuse — strictly, on
    /// catalogs without `keep: standalone` annotations.
    #[test]
    fn every_plan_passes_the_invariants(c in case(false)) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        let checked = invariants::check_postgres(&cat, &plan, &p, now);
        prop_assert!(checked.is_ok(), "{}", refused(&checked, &plan));
    }

    /// Property 1 with `keep: standalone` annotations (this found two planner bugs: a standalone
    /// backup chosen as the window's base lost its WAL, and WAL after a standalone backup counted
    /// as needed by the gap analysis; see `standalone_cases` below).
    #[test]
    fn every_plan_passes_the_invariants_with_standalone_backups(c in case(true)) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        let checked = invariants::check_postgres(&cat, &plan, &p, now);
        prop_assert!(checked.is_ok(), "{}", refused(&checked, &plan));
    }

    /// Property 2: a second run over what the first left deletes nothing.
    #[test]
    fn a_second_run_deletes_nothing(c in case(true)) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        let after = apply(&cat, &plan);
        let again = plan_of(&after, &p, now);
        prop_assert!(
            again.deletions.is_empty(),
            "second run deletes {:?}",
            again.deletions.iter().map(|d| &d.name).collect::<Vec<_>>()
        );
    }

    /// Property 3: the newest DONE backup, keep-annotated ones and `minimumRedundancy` stay.
    #[test]
    fn newest_annotated_and_redundancy_stay(c in case(true)) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        let gone = deleted_backups(&plan);
        let done = done_ids(&cat);
        let newest = done.iter().max().copied().unwrap();
        prop_assert!(!gone.contains(&newest), "newest DONE {newest} deleted");
        for b in cat.backups.iter().filter(|b| b.keep.is_some()) {
            prop_assert!(!gone.contains(&b.id.as_str()), "keep-annotated {} deleted", b.id);
        }
        let after = apply(&cat, &plan);
        let left = done_ids(&after).len();
        let want = done.len().min(p.minimum_redundancy as usize);
        prop_assert!(left >= want, "{left} DONE backups left, minimumRedundancy {}", p.minimum_redundancy);
    }

    /// Property 4: a backup's deletion starts with its descriptor and lists all its objects.
    #[test]
    fn backup_deletions_list_the_descriptor_first(c in case(true)) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        for d in plan.deletions.iter().filter(|d| d.what == What::BarmanBackup) {
            let b = cat.backups.iter().find(|b| b.id == d.name).unwrap();
            let mut keys = d.keys.to_vec();
            prop_assert_eq!(&keys[0], &format!("srv/base/{}/backup.info", b.id));
            keys.sort();
            let mut all: Vec<String> = b.objects.iter().map(|o| o.key.clone()).collect();
            all.sort();
            prop_assert_eq!(keys, all, "deletion of {} lists every object once", &d.name);
        }
    }
}

/// The minimal counterexamples proptest found for keep:standalone backups; they are now planned
/// safely (the invariants accept the plan).
mod standalone_cases {
    use super::*;

    fn check(cat: &ServerCatalog, window: i64, now: i64) -> Result<(), invariants::Violation> {
        let p = policy(window, 1);
        let plan = plan_of(cat, &p, minutes(now));
        invariants::check_postgres(cat, &plan, &p, minutes(now))
    }

    /// `a` (keep: standalone, WAL 2) ended before the window start (minute 3), so it is the
    /// window's base: its WAL 3 must stay although `b` begins at 4.
    #[test]
    fn standalone_base_loses_the_window_start() {
        let mut a = backup("a", 1, 2, 2);
        a.keep = Some("standalone".into());
        let cat = catalog(
            vec![a, backup("b", 1, 4, 4)],
            vec![(1, (2..=7).collect(), vec![])],
        );
        check(&cat, 4, 7).unwrap();
    }

    /// `b` (plain) is the base; `a` (keep: standalone, WAL 2) stays by its annotation; segment 3
    /// goes, which `gaps` reports as a new gap since `a` is the oldest DONE backup.
    #[test]
    fn standalone_below_the_anchors_leaves_a_wal_gap() {
        let mut a = backup("a", 1, 2, 2);
        a.keep = Some("standalone".into());
        let cat = catalog(
            vec![a, backup("b", 1, 4, 4)],
            vec![(1, (1..=9).collect(), vec![])],
        );
        check(&cat, 1, 9).unwrap();
    }
}
