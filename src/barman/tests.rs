//! Unit tests on real barman-cloud output (tests/fixtures/barman) and on the window analysis.

use super::info::{BackupInfo, BackupStatus};
use super::wal::HistoryEntry;
use super::window::analyse;

const PLAIN: &str = include_str!("../../tests/fixtures/barman/done-plain.backup.info");
const NAMED: &str = include_str!("../../tests/fixtures/barman/done-named-gzip.backup.info");
const FAILED: &str = include_str!("../../tests/fixtures/barman/failed.backup.info");
const TRUNCATED: &str = include_str!("../../tests/fixtures/barman/truncated.backup.info");

#[test]
fn real_backup_info_files_parse() {
    let p = BackupInfo::parse(PLAIN).unwrap();
    assert_eq!(p.status, BackupStatus::Done);
    assert_eq!(p.timeline, Some(1));
    assert_eq!(p.xlog_segment_size, 16 * 1024 * 1024);
    assert!(p.begin_time.unwrap() < p.end_time.unwrap());
    assert_eq!(p.begin_wal.as_deref().map(str::len), Some(24));
    assert!(
        p.other.contains_key("copy_stats"),
        "unknown-to-us keys are kept"
    );
    let n = BackupInfo::parse(NAMED).unwrap();
    assert_eq!(n.backup_name.as_deref(), Some("before-upgrade"));
}

#[test]
fn failed_and_truncated_files() {
    let f = BackupInfo::parse(FAILED).unwrap();
    assert_eq!(f.status, BackupStatus::Failed);
    assert_eq!(f.end_time, None);
    assert!(f.error.unwrap().contains("connection closed"));
    let e = BackupInfo::parse(TRUNCATED).unwrap_err().to_string();
    assert!(
        e.starts_with("field 'begin_time'") || e.contains("status"),
        "{e}"
    );
}

// ---- window and gaps on hand-built catalogs ----

use super::testkit::{SIZE, backup, catalog, minutes};

#[test]
fn contiguous_wal_gives_one_window_from_the_first_backup_end() {
    let cat = catalog(
        vec![backup("a", 1, 2, 3), backup("b", 1, 10, 10)],
        vec![(1, (2..=20).collect(), vec![])],
    );
    let w = analyse(&cat);
    assert!(w.gaps.is_empty());
    assert_eq!(
        (w.earliest, w.latest),
        (Some(minutes(3)), Some(minutes(20)))
    );
    assert!(w.covers(minutes(3), minutes(20)));
    assert!(
        !w.covers(minutes(2), minutes(20)),
        "nothing before the first backup ended"
    );
}

#[test]
fn a_missing_segment_is_named_and_splits_the_window() {
    let nos: Vec<u64> = (2..=20).filter(|n| *n != 7).collect();
    let cat = catalog(
        vec![backup("a", 1, 2, 3), backup("b", 1, 10, 10)],
        vec![(1, nos, vec![])],
    );
    let w = analyse(&cat);
    assert_eq!(w.gaps.len(), 1);
    assert_eq!(w.gaps[0].first_missing, "000000010000000000000007");
    assert_eq!((w.gaps[0].count, w.gaps[0].since), (1, Some(minutes(6))));
    assert!(w.covers(minutes(3), minutes(6)));
    assert!(w.covers(minutes(10), minutes(20)));
    assert!(
        !w.covers(minutes(5), minutes(12)),
        "the gap breaks the window"
    );
}

#[test]
fn a_backup_without_its_own_wal_is_unrestorable() {
    let cat = catalog(
        vec![backup("a", 1, 2, 4)],
        vec![(1, vec![2, 3, 5, 6], vec![])],
    );
    let w = analyse(&cat);
    assert_eq!(w.unrestorable.len(), 1);
    assert!(
        w.unrestorable[0]
            .reason
            .contains("000000010000000000000004"),
        "{:?}",
        w.unrestorable
    );
    assert_eq!(w.earliest, None);
}

#[test]
fn the_window_follows_a_timeline_switch() {
    // Timeline 2 branched off timeline 1 in segment 6 (LSN 0/6000100).
    let history = vec![HistoryEntry {
        parent: 1,
        switch_lsn: "0/6000100".into(),
        reason: "promote".into(),
    }];
    let cat = catalog(
        vec![backup("a", 1, 2, 3)],
        vec![
            (1, (2..=6).collect(), vec![]),
            (2, (6..=9).collect(), history),
        ],
    );
    let w = analyse(&cat);
    assert!(w.gaps.is_empty(), "{:?}", w.gaps);
    assert_eq!(w.ranges[0].timeline, 2);
    assert_eq!(w.latest, Some(minutes(9)));
    // A hole on the child timeline is a gap there.
    let history = vec![HistoryEntry {
        parent: 1,
        switch_lsn: "0/6000100".into(),
        reason: String::new(),
    }];
    let cat = catalog(
        vec![backup("a", 1, 2, 3)],
        vec![(1, (2..=6).collect(), vec![]), (2, vec![6, 8], history)],
    );
    let g = analyse(&cat).gaps;
    assert_eq!(
        (g.len(), g[0].timeline, g[0].first_missing.as_str()),
        (1, 2, "000000020000000000000007")
    );
}

#[test]
fn gaps_across_log_boundaries_and_ranges() {
    let cat = catalog(
        vec![backup("a", 1, 250, 250)],
        vec![(1, vec![250, 251, 255, 256, 300], vec![])],
    );
    let g = analyse(&cat).gaps;
    assert_eq!(g.len(), 2);
    assert_eq!(
        (
            g[0].first_missing.as_str(),
            g[0].last_missing.as_str(),
            g[0].count
        ),
        ("0000000100000000000000FC", "0000000100000000000000FE", 3)
    );
    assert_eq!(g[1].first_missing, "000000010000000100000001");
    assert_eq!(g[1].count, 43);
}

// ---- listing shape: one listing per WAL folder, never the whole prefix ----

mod listing {
    use crate::store::testkit::Recording;
    use crate::store::{FsStore, ObjectStore, StorageUrl};
    use bytes::Bytes;
    use std::sync::atomic::Ordering;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_is_listed_folder_by_folder_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
        let fs = FsStore::new(url);
        for no in 0..(8 * 256) {
            let name = crate::barman::wal::name_of(1, no, super::SIZE);
            fs.put(
                &format!("srv/wals/{}/{name}", &name[..16]),
                Bytes::from_static(b"w"),
            )
            .await
            .unwrap();
        }
        fs.put(
            "srv/wals/00000002.history",
            Bytes::from_static(b"1\t0/7FF000000\tx\n"),
        )
        .await
        .unwrap();
        let store = Recording::new(fs);
        let cat = crate::barman::load(&store, "srv", 4).await.unwrap();
        assert_eq!(cat.segment_count(), 8 * 256);
        assert_eq!(
            cat.timelines[&2].history.len(),
            1,
            "history files at the top of wals/ are read"
        );
        let calls = store.calls.lock().unwrap().clone();
        let folder_lists: Vec<_> = calls
            .iter()
            .filter(|c| c.starts_with("dir srv/wals/0000000100000"))
            .collect();
        assert_eq!(
            folder_lists.len(),
            8,
            "one listing per WAL folder: {calls:?}"
        );
        assert!(
            !calls.contains(&"list srv/wals/".to_string()),
            "never one listing of the whole prefix: {calls:?}"
        );
        let peak = store.peak.load(Ordering::SeqCst);
        // Base-backup folders and WAL folders are two streams, each bounded by `concurrency`.
        assert!(
            (2..=8).contains(&peak),
            "bounded parallel listing, peak {peak}"
        );
    }

    /// Folder listings start on the first page of the top listing of `wals/`, which is small;
    /// later pages are as large as stores allow (s3s-fs pays a walk of all of `wals/` for every
    /// page, issue 14); each folder asks for a page the size of a folder.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folders_are_listed_as_the_top_listing_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
        let fs = FsStore::new(url);
        // 130 folders of one segment each: two pages at the top (64, 66).
        for log in 0..130u64 {
            let name = crate::barman::wal::name_of(1, log * 256, super::SIZE);
            fs.put(
                &format!("srv/wals/{}/{name}", &name[..16]),
                Bytes::from_static(b"w"),
            )
            .await
            .unwrap();
        }
        let store = Recording::new(fs);
        let cat = crate::barman::load(&store, "srv", 4).await.unwrap();
        assert_eq!(cat.segment_count(), 130);
        let calls = store.calls.lock().unwrap().clone();
        let top: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.starts_with("dir srv/wals/ "))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            top.len(),
            2,
            "the top of wals/ in a page of 64, then pages of 1,000: {:?}",
            top.iter().map(|&i| &calls[i]).collect::<Vec<_>>()
        );
        assert!(calls[top[0]].ends_with("max 64"), "{}", calls[top[0]]);
        assert!(calls[top[1]].contains("max 1000"), "{}", calls[top[1]]);
        let folders: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.starts_with("dir srv/wals/0000000100000"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(folders.len(), 130, "one listing per folder: {calls:?}");
        assert!(
            folders[0] < top[1],
            "folders are listed before the top listing ends: {calls:?}"
        );
        assert!(
            folders.iter().all(|&i| calls[i].ends_with("max 320")),
            "a folder is listed in one page sized to a folder: {calls:?}"
        );
    }
}
