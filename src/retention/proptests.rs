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
use std::collections::BTreeSet;

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
    /// Distinct `begin_wal` positions of the DONE backups on timeline 1 (ids sort like them).
    begins: Vec<u64>,
    /// `end_wal = begin_wal + end_offsets[i]` (0..=2).
    end_offsets: Vec<u64>,
    /// Keep annotation per backup, see [`keep_of`].
    keeps: Vec<u8>,
    /// A FAILED backup: (begin, end offset).
    failed: Option<(u64, u64)>,
    /// Archived WAL starts this many segments before the oldest backup's `begin_wal`.
    wal_before: u64,
    /// The newest segment on timeline 1 is this many segments after the newest `end_wal`.
    wal_after: u64,
    /// Missing segments on timeline 1: (position index into the archived run, run length).
    gaps: Vec<(u64, u64)>,
    /// Timeline 2: (switch position index after the newest backup's end, segments on it).
    tl2: Option<(u64, u64)>,
    /// `now` is this many minutes after the newest archived segment.
    now_after: i64,
    window_minutes: i64,
    redundancy: u32,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::btree_set(2u64..=60, 1..=12),
        prop::collection::vec(0u64..=2, 12),
        prop::collection::vec(0u8..=7, 12),
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
                begins,
                end_offsets,
                keeps,
                failed,
                wal_before,
                wal_after,
                gaps,
                tl2,
                now_after,
                window_minutes,
                redundancy,
            )| Case {
                begins: begins.into_iter().collect(),
                end_offsets,
                keeps,
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
        for (i, &begin) in self.begins.iter().enumerate() {
            let end = begin + self.end_offsets[i];
            newest_end = newest_end.max(end);
            let id = format!("{begin:03}d");
            let mut b = backup(&id, 1, begin, end);
            if let Some(k) = keep_of(self.keeps[i]) {
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

        let first = self.begins[0].saturating_sub(self.wal_before).max(1);
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
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Property 1: the planner never proposes a plan the invariants refuse.
    #[test]
    fn every_plan_passes_the_invariants(c in case()) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        let checked = invariants::check_postgres(&cat, &plan, &p, now);
        prop_assert!(
            checked.is_ok(),
            "{}\ndeleted: {:?}\nkept: {:?}",
            checked.unwrap_err(),
            plan.deletions.iter().map(|d| &d.name).collect::<Vec<_>>(),
            plan.kept
        );
    }

    /// Property 2: a second run over what the first left deletes nothing.
    #[test]
    fn a_second_run_deletes_nothing(c in case()) {
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
    fn newest_annotated_and_redundancy_stay(c in case()) {
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
    fn backup_deletions_list_the_descriptor_first(c in case()) {
        let (cat, p, now) = c.build();
        let plan = plan_of(&cat, &p, now);
        for d in plan.deletions.iter().filter(|d| d.what == What::BarmanBackup) {
            let b = cat.backups.iter().find(|b| b.id == d.name).unwrap();
            prop_assert_eq!(&d.keys[0], &format!("srv/base/{}/backup.info", b.id));
            let mut keys = d.keys.clone();
            keys.sort();
            let mut all: Vec<String> = b.objects.iter().map(|o| o.key.clone()).collect();
            all.sort();
            prop_assert_eq!(keys, all, "deletion of {} lists every object once", &d.name);
        }
    }
}
