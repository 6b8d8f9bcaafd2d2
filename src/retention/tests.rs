//! Planner and invariant tests on hand-built catalogs (segments are minutes after t0).

use super::invariants::{self, Violation, apply};
use super::{DEFAULT_GRACE, What, postgres};
use crate::barman::testkit::{backup, catalog, minutes};
use crate::barman::{BackupStatus, ServerCatalog};
use crate::policy::{Policy, PostgresPolicy, parse_file};

fn policy(window: &str, redundancy: u32) -> PostgresPolicy {
    let text = format!(
        "kind: PostgresPolicy\nname: db\ncluster: {{namespace: d, name: db}}\nserverName: srv\n\
         baseBackupSchedule: \"0 2 * * *\"\nrecoveryWindow: {window}\nrpo: 1m\nminimumRedundancy: {redundancy}\n\
         storage: {{url: \"s3://b/cnpg\"}}\n"
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

/// Four daily-ish backups and contiguous WAL 2..=40.
fn four() -> ServerCatalog {
    let b = vec![
        backup("a", 1, 2, 3),
        backup("b", 1, 10, 10),
        backup("c", 1, 20, 20),
        backup("d", 1, 30, 30),
    ];
    catalog(b, vec![(1, (2..=40).collect(), vec![])])
}

fn deleted(plan: &super::Plan, what: What) -> Vec<String> {
    plan.deletions
        .iter()
        .filter(|d| d.what == what)
        .map(|d| d.name.clone())
        .collect()
}

#[test]
fn keeps_the_window_and_the_backup_before_it() {
    let cat = four();
    let p = policy("15m", 1); // point of recoverability: minute 25
    let plan = postgres::plan(&cat, &p, "s3://b/cnpg", minutes(40), DEFAULT_GRACE).unwrap();
    assert_eq!(deleted(&plan, What::BarmanBackup), ["a", "b"]);
    assert_eq!(
        deleted(&plan, What::Wal),
        ["000000010000000000000002 .. 000000010000000000000013"]
    );
    assert!(
        plan.kept
            .iter()
            .any(|k| k.name == "c" && k.reason.contains("base for the window"))
    );
    let d = &plan.deletions[0];
    assert_eq!(
        d.keys.to_vec()[0],
        "srv/base/a/backup.info",
        "descriptor first"
    );
    assert!(d.reason.contains("before the window start"), "{}", d.reason);
    invariants::check_postgres(&cat, &plan, &p, minutes(40)).unwrap();
}

#[test]
fn a_second_run_deletes_nothing() {
    let cat = four();
    let p = policy("15m", 1);
    let plan = postgres::plan(&cat, &p, "s", minutes(40), DEFAULT_GRACE).unwrap();
    let after = apply(&cat, &plan);
    let again = postgres::plan(&after, &p, "s", minutes(40), DEFAULT_GRACE).unwrap();
    assert!(again.deletions.is_empty(), "{:?}", again.deletions);
}

#[test]
fn keep_annotations_and_minimum_redundancy() {
    let mut cat = four();
    cat.backups[0].keep = Some("full".into());
    let plan = postgres::plan(&cat, &policy("15m", 1), "s", minutes(40), DEFAULT_GRACE).unwrap();
    assert_eq!(deleted(&plan, What::BarmanBackup), ["b"]);
    assert!(
        deleted(&plan, What::Wal).is_empty(),
        "a keep:full backup anchors its WAL"
    );

    cat.backups[0].keep = Some("standalone".into());
    let plan = postgres::plan(&cat, &policy("15m", 1), "s", minutes(40), DEFAULT_GRACE).unwrap();
    let wal: Vec<String> = plan
        .deletions
        .iter()
        .filter(|d| d.what == What::Wal)
        .flat_map(|d| d.keys.to_vec())
        .collect();
    assert_eq!(
        wal.len(),
        18 - 2,
        "standalone protects only its own begin..end (2, 3)"
    );

    // Window of 5 minutes: only d is inside, c is the base; redundancy 3 keeps b too.
    let plan = postgres::plan(&four(), &policy("5m", 3), "s", minutes(40), DEFAULT_GRACE).unwrap();
    assert_eq!(deleted(&plan, What::BarmanBackup), ["a"]);
    assert!(
        plan.kept
            .iter()
            .any(|k| k.name == "b" && k.reason.contains("minimumRedundancy 3"))
    );
}

#[test]
fn failed_backups_before_the_window_go_and_unreadable_ones_stop_everything() {
    let mut cat = four();
    let mut failed = backup("e", 1, 5, 6);
    failed.info.as_mut().unwrap().status = BackupStatus::Failed;
    cat.backups.push(failed);
    let plan = postgres::plan(&cat, &policy("15m", 1), "s", minutes(40), DEFAULT_GRACE).unwrap();
    assert_eq!(deleted(&plan, What::BarmanBackup), ["a", "b", "e"]);

    cat.backups[1].unreadable = Some("srv/base/b/backup.info: line 2".into());
    let e = postgres::plan(&cat, &policy("15m", 1), "s", minutes(40), DEFAULT_GRACE)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("base backup b is unreadable") && e.contains("nothing is deleted"),
        "{e}"
    );
}

#[test]
fn invariants_refuse_plans_that_break_restorability() {
    let cat = four();
    let p = policy("15m", 1);
    let mut plan = postgres::plan(&cat, &p, "s", minutes(40), DEFAULT_GRACE).unwrap();
    // Also delete segment 33 (a new gap) ...
    let mut bad = plan.clone();
    bad.deletions.push(super::Deletion {
        what: What::Wal,
        name: "x".into(),
        reason: String::new(),
        keys: vec![crate::barman::testkit::seg_key(1, 33)].into(),
        bytes: 1,
    });
    let v = invariants::check_postgres(&cat, &bad, &p, minutes(40)).unwrap_err();
    assert!(
        matches!(v, Violation::Window { .. } | Violation::NewGap { .. }),
        "{v}"
    );
    // ... or the backup that is the window's base.
    plan.deletions.push(super::Deletion {
        what: What::BarmanBackup,
        name: "c".into(),
        reason: String::new(),
        keys: vec!["srv/base/c/backup.info".to_string()].into(),
        bytes: 1,
    });
    let v = invariants::check_postgres(&cat, &plan, &p, minutes(40)).unwrap_err();
    assert!(matches!(v, Violation::Window { .. }), "{v}");
}

/// The executor removes every backup's descriptor before any data or WAL key, and each key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_deletes_descriptors_before_any_data() {
    use crate::store::testkit::Recording;
    use crate::store::{FsStore, StorageUrl};
    let cat = four();
    let p = policy("15m", 1);
    let mut plan = postgres::plan(&cat, &p, "s", minutes(40), DEFAULT_GRACE).unwrap();
    // Give each backup some data keys beyond its descriptor.
    for d in plan.deletions.iter_mut().filter(|d| d.what != What::Wal) {
        for i in 0..3 {
            d.keys.push(format!("srv/base/{}/data_{i}.tar", d.name));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
    let store = Recording::new(FsStore::new(url));
    let summary = super::execute::execute(&store, &plan, 4, &crate::report::Silent)
        .await
        .unwrap();
    let calls = store.deletes.lock().unwrap().clone();
    let descriptors: Vec<String> = plan
        .deletions
        .iter()
        .filter(|d| d.what != What::Wal)
        .filter_map(|d| d.keys.first())
        .collect();
    assert_eq!(
        descriptors,
        ["srv/base/a/backup.info", "srv/base/b/backup.info"]
    );
    assert_eq!(calls[0], descriptors, "one first batch of every descriptor");
    assert!(
        calls[1..]
            .iter()
            .flatten()
            .all(|k| !k.ends_with("backup.info")),
        "{calls:?}"
    );
    assert_eq!(
        calls.len(),
        2,
        "the data of every backup and the WAL packed in one batch after the descriptors: {calls:?}"
    );
    let mut all: Vec<&String> = calls.iter().flatten().collect();
    let want: Vec<String> = plan
        .deletions
        .iter()
        .flat_map(|d| d.keys.to_vec())
        .collect();
    let mut want: Vec<&String> = want.iter().collect();
    all.sort();
    want.sort();
    assert_eq!(all, want, "every planned key exactly once");
    assert_eq!(summary.backups, 2);
    assert_eq!(summary.objects, want.len());
}

/// `.backup` and `.partial` files among the WAL that goes are named in key order, position first,
/// and the deletion is named from its first position to its last.
#[test]
fn wal_deletions_interleave_odd_files_in_key_order() {
    use crate::barman::testkit::{SIZE, seg_key};
    let mut cat = four();
    let odd = [
        "srv/wals/0000000100000000/000000010000000000000005.partial",
        "srv/wals/0000000100000000/000000010000000000000005.00000028.backup",
        "srv/wals/0000000100000000/000000010000000000000003.partial",
    ];
    for k in odd {
        cat.other_wal_files.push(crate::store::ObjectMeta {
            key: k.into(),
            size: 7,
            last_modified: None,
        });
    }
    cat.other_wal_files.sort_by(|a, b| a.key.cmp(&b.key));
    let plan = postgres::plan(&cat, &policy("15m", 1), "s", minutes(40), DEFAULT_GRACE).unwrap();
    let wal: Vec<_> = plan
        .deletions
        .iter()
        .filter(|d| d.what == What::Wal)
        .collect();
    assert_eq!(wal.len(), 1);
    assert_eq!(
        wal[0].name,
        "000000010000000000000002 .. 000000010000000000000013"
    );
    let mut want: Vec<(u64, String)> = (2..=19).map(|p| (p, seg_key(1, p))).collect();
    want.extend([(5, odd[0].into()), (5, odd[1].into()), (3, odd[2].into())]);
    want.sort();
    let want: Vec<String> = want.into_iter().map(|(_, k)| k).collect();
    assert_eq!(wal[0].keys.to_vec(), want);
    assert_eq!(wal[0].bytes, 18 * SIZE + 3 * 7);
}
