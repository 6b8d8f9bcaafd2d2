//! "Same answer as Barman": catalogs built in a real S3 server (versitygw; on s3s-fs barman cannot see
//! keep annotations, see DESIGN.md), `backup.info` files derived from real barman-cloud output with
//! backdated times, WAL on two timelines; openova's retention plan is compared object for object
//! with what `barman-cloud-backup-delete --retention-policy "RECOVERY WINDOW OF 7 DAYS" --dry-run`
//! says it would delete on the same store. Every difference that is on purpose is named below and
//! checked to be really there, so the test fails if openova stops doing it.

use crate::cli::{openova, postgres_policy};
use crate::support::barman::{self, backup_info, py_time, wal_name, xlog};
use crate::support::{S3Kind, S3Server};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeSet;

const PLAIN: &str = include_str!("../fixtures/barman/done-plain.backup.info");
const FAILED: &str = include_str!("../fixtures/barman/failed.backup.info");
const PREFIX: &str = "cnpg";
/// WAL segments written between two consecutive base backups (half a "log" of 16 MiB segments, so
/// the WAL spans several `wals/TTTTTTTTLLLLLLLL/` folders and Barman deletes whole folders).
const STEP: u64 = 128;
/// Position of the oldest backup's `begin_wal`; segment 1 (older than every backup) is archived too.
const P0: u64 = 2;
/// Days before now at which the DONE backups begin, oldest first.
const DAYS: [i64; 11] = [40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 1];
/// The DONE backup (index in [`DAYS`]) carrying a `keep:full` annotation: older than the window.
const KEPT: usize = 3;

fn wal_key(server: &str, name: &str) -> String {
    format!("{PREFIX}/{server}/wals/{}/{name}", &name[..16])
}

#[derive(Debug, Clone)]
struct Backup {
    id: String,
    done: bool,
    begin: DateTime<Utc>,
    timeline: u32,
}

/// Where timeline 2 branches off, by index in [`DAYS`] of the first DONE backup on timeline 2.
#[derive(Debug, Clone, Copy)]
enum Switch {
    /// Half-way between that backup and the one before (archived WAL on timeline 2 before the
    /// first backup on it).
    Between(usize),
    /// In the segment where that backup begins (the backup right after the promotion).
    At(usize),
}

/// A catalog under `cnpg/SERVER/`: eleven DONE backups every 4 days from 40 days ago to yesterday
/// (the one 28 days old keep:full), a FAILED backup 30 days old and one 2 days old, WAL from
/// segment 1 to past the newest backup, timeline 2 branching off at `switch`.
struct Scenario {
    server: String,
    backups: Vec<Backup>,
    objects: Vec<(String, String)>,
    switch: u64,
}

impl Scenario {
    fn build(now: DateTime<Utc>, server: &str, switch: Switch) -> Scenario {
        let switch = match switch {
            Switch::Between(i) => P0 + STEP * (i as u64 - 1) + STEP / 2,
            Switch::At(i) => P0 + STEP * i as u64,
        };
        let tl_of = |p: u64| if p >= switch { 2 } else { 1 };
        let mut s = Scenario {
            server: server.to_string(),
            backups: vec![],
            objects: vec![],
            switch,
        };
        // (days ago, begin position, DONE?)
        let mut plan: Vec<(TimeDelta, u64, bool)> = DAYS
            .iter()
            .enumerate()
            .map(|(i, d)| (TimeDelta::days(*d), P0 + STEP * i as u64, true))
            .collect();
        // FAILED 30 days ago (between the backups 32 and 28 days old), and 2 days ago.
        plan.push((TimeDelta::days(30), P0 + STEP * 2 + STEP / 2, false));
        plan.push((TimeDelta::days(2), P0 + STEP * 9 + STEP * 3 / 4, false));
        plan.sort_by_key(|(_, p, _)| *p);
        for (age, p, done) in plan {
            // Off the full second, with microseconds, as a real clock gives.
            let begin = now - age + TimeDelta::microseconds(618_023);
            let end = begin + TimeDelta::seconds(65) + TimeDelta::microseconds(552_801);
            let id = begin.format("%Y%m%dT%H%M%S").to_string();
            let tl = tl_of(p);
            let (begin_wal, end_wal) = (wal_name(tl, p), wal_name(tl, p + 1));
            let label = format!(
                "'START WAL LOCATION: {} (file {begin_wal})\\nCHECKPOINT LOCATION: {}\\n\
                 BACKUP METHOD: streamed\\nBACKUP FROM: primary\\nSTART TIME: {} UTC\\n\
                 LABEL: Barman backup {server} {id}\\nSTART TIMELINE: {tl}\\n'",
                xlog(p, 0x28),
                xlog(p, 0x60),
                begin.format("%Y-%m-%d %H:%M:%S"),
            );
            let mut fields = vec![
                ("backup_label", label),
                ("begin_time", py_time(begin)),
                ("begin_wal", begin_wal.clone()),
                ("begin_xlog", xlog(p, 0x28)),
                ("server_name", server.to_string()),
                ("timeline", tl.to_string()),
            ];
            if done {
                fields.extend([
                    ("end_time", py_time(end)),
                    ("end_wal", end_wal),
                    ("end_xlog", xlog(p + 1, 0x100)),
                ]);
                // barman-cloud-wal-archive archives the backup history file too.
                let name = format!("{begin_wal}.00000028.backup");
                s.objects.push((
                    wal_key(server, &name),
                    format!("START WAL LOCATION: {}\n", xlog(p, 0x28)),
                ));
            }
            let base = format!("{PREFIX}/{server}/base/{id}");
            let info = backup_info(if done { PLAIN } else { FAILED }, &fields);
            s.objects.push((format!("{base}/backup.info"), info));
            s.objects
                .push((format!("{base}/data.tar"), format!("tar of {id}")));
            s.backups.push(Backup {
                id,
                done,
                begin,
                timeline: tl,
            });
        }
        // WAL: contiguous from segment 1 (older than every backup) to past the newest backup.
        let last = P0 + STEP * (DAYS.len() as u64 - 1) + 20;
        for p in 1..=last {
            let name = wal_name(tl_of(p), p);
            s.objects
                .push((wal_key(server, &name), format!("wal {name}")));
        }
        // The promotion: timeline 1's last segment archived as .partial, and the history file.
        let partial = format!("{}.partial", wal_name(1, switch));
        s.objects
            .push((wal_key(server, &partial), "partial".to_string()));
        s.objects.push((
            format!("{PREFIX}/{server}/wals/00000002.history"),
            format!("1\t{}\tno recovery target specified\n", xlog(switch, 0x20)),
        ));
        s
    }

    fn kept(&self) -> &Backup {
        self.done()[KEPT]
    }

    fn done(&self) -> Vec<&Backup> {
        self.backups.iter().filter(|b| b.done).collect()
    }

    fn base_key(&self, id: &str, file: &str) -> String {
        format!("{PREFIX}/{}/base/{id}/{file}", self.server)
    }
}

/// Uploads every object (see [`barman::put_all`]).
fn upload(s3: &S3Server, objects: &[(String, String)]) {
    let items: Vec<(&str, &str)> = objects
        .iter()
        .map(|(k, b)| (k.as_str(), b.as_str()))
        .collect();
    barman::put_all(s3, &items);
}

/// The full keys `barman-cloud-backup-delete --dry-run` says it would delete: the objects it lists
/// and everything under the prefixes it would delete whole.
fn barman_would_delete(s3: &S3Server, server: &str) -> (BTreeSet<String>, String) {
    let out = barman::run(
        s3,
        "barman-cloud-backup-delete",
        &[
            "--retention-policy",
            "RECOVERY WINDOW OF 7 DAYS",
            "--minimum-redundancy",
            "1",
            "--dry-run",
            &s3.url(PREFIX),
            server,
        ],
    );
    let mut keys = BTreeSet::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Skipping deletion of objects [") {
            let list = rest
                .split_once("] due to --dry-run option")
                .unwrap_or_else(|| panic!("unexpected barman line: {line}"))
                .0;
            keys.extend(
                list.split(", ")
                    .filter(|k| !k.is_empty())
                    .map(|k| k.trim_matches('\'').to_string()),
            );
        } else if let Some(rest) =
            line.strip_prefix("Skipping deletion of all objects under prefix ")
        {
            let prefix = rest
                .strip_suffix(" due to --dry-run option")
                .unwrap_or_else(|| panic!("unexpected barman line: {line}"));
            let under = s3.list_keys(prefix);
            assert!(!under.is_empty(), "barman names an empty prefix {prefix}");
            keys.extend(under);
        } else if !line.trim().is_empty() {
            panic!("unexpected barman-cloud-backup-delete output line: {line}\n{out}");
        }
    }
    (keys, out)
}

/// `openova retention --output json` for the policy; the plan's keys made full bucket keys.
/// `Err` holds the refusal.
fn openova_plan(
    s3: &S3Server,
    policy: &str,
    apply: bool,
) -> Result<(BTreeSet<String>, serde_json::Value), String> {
    let mut args = vec!["retention", "--output", "json", "--policies", policy];
    if apply {
        // versitygw honours If-None-Match, so the lease does its work here too.
        args.push("--apply");
    }
    let run = openova(Some(s3), &args);
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let v = run.json();
    assert_eq!(v["schema"], "openova.retention/v1", "{run:?}");
    let p = &v["policies"][0];
    if let Some(why) = p["refused"].as_str() {
        assert_eq!(run.code, 1, "a refusal exits 1: {run:?}");
        return Err(why.to_string());
    }
    assert_eq!(run.code, 0, "{run:?}");
    let mut keys = BTreeSet::new();
    for d in p["plan"]["deletions"].as_array().unwrap() {
        for k in d["keys"].as_array().unwrap() {
            let k = k.as_str().unwrap();
            assert!(
                keys.insert(format!("{PREFIX}/{k}")),
                "key {k} in two deletions"
            );
        }
    }
    Ok((keys, p.clone()))
}

fn listing(title: &str, keys: &BTreeSet<String>) -> String {
    let mut s = format!("{title} ({}):", keys.len());
    for k in keys {
        s.push_str("\n  ");
        s.push_str(k);
    }
    s
}

/// Deliberate difference 1 (module doc of `retention::postgres`): openova deletes FAILED backups
/// begun before the window; Barman never deletes a FAILED backup, so they pile up.
const FAILED_BEFORE_WINDOW: &str = "FAILED backups begun before the window";
/// Deliberate difference 2, a consequence of the first: Barman protects every WAL on a timeline
/// other than that of the backup it deletes up to, as long as *any* backup listed is on that
/// timeline (`BackupManager.get_timelines_to_protect` counts FAILED backups too). With the FAILED
/// backup on timeline 1 still listed, Barman keeps timeline 1's WAL from the last timeline-1
/// backup's begin_wal up to the promotion; openova deletes the FAILED backup, and with it the
/// last reason to keep a timeline older than every kept backup.
const OLD_TIMELINE_OF_A_FAILED_BACKUP: &str =
    "WAL on a timeline Barman protects only for a FAILED backup";

struct Comparison {
    scenario: Scenario,
    s3: S3Server,
    policy: String,
    _dir: tempfile::TempDir,
    barman: BTreeSet<String>,
    openova: BTreeSet<String>,
    /// The on-purpose differences, by name: keys openova deletes and Barman keeps.
    named: Vec<(&'static str, BTreeSet<String>)>,
}

/// Builds the scenario in a fresh versitygw, asks both tools, names the on-purpose differences.
fn compare(switch: Switch, keep: bool) -> Comparison {
    let s3 = S3Server::start(S3Kind::Versitygw);
    let server = crate::support::unique_name("pg");
    let now = Utc::now();
    let scenario = Scenario::build(now, &server, switch);
    upload(&s3, &scenario.objects);
    if keep {
        barman::run(
            &s3,
            "barman-cloud-backup-keep",
            &[
                "--target",
                "full",
                &s3.url(PREFIX),
                &server,
                &scenario.kept().id,
            ],
        );
        let keep_key = scenario.base_key(&scenario.kept().id, "annotations/keep");
        assert_eq!(s3.get(&keep_key), b"full", "barman's keep annotation");
    }
    // Barman sees the catalog as built: 11 DONE, 2 FAILED.
    let listed = barman::backup_list(&s3, PREFIX, &server);
    assert_eq!(listed.len(), scenario.backups.len(), "{listed:?}");

    let dir = tempfile::tempdir().unwrap();
    let policy = postgres_policy(dir.path(), &s3, &server, "7d", "5m");
    let (barman_keys, barman_out) = barman_would_delete(&s3, &server);
    eprintln!("--- barman-cloud-backup-delete --dry-run (lines cut at 160 characters)");
    for line in barman_out.lines() {
        eprintln!("{}", line.chars().take(160).collect::<String>());
    }
    let (openova_keys, plan) = openova_plan(&s3, &policy, false).unwrap_or_else(|why| {
        panic!(
            "openova refuses to plan where Barman deletes {} objects ({why}); timeline 2 \
             starts at {}",
            barman_keys.len(),
            wal_name(2, scenario.switch)
        )
    });
    eprintln!(
        "--- openova plan\n{}",
        serde_json::to_string_pretty(&plan["plan"]["kept"]).unwrap()
    );
    for d in plan["plan"]["deletions"].as_array().unwrap() {
        eprintln!(
            "  {} {}: {} ({} keys)",
            d["what"],
            d["name"],
            d["reason"],
            d["keys"].as_array().unwrap().len()
        );
    }

    let por = now - TimeDelta::days(7);
    let failed_before_window: BTreeSet<String> = scenario
        .backups
        .iter()
        .filter(|b| !b.done && b.begin < por)
        .flat_map(|b| {
            [
                scenario.base_key(&b.id, "backup.info"),
                scenario.base_key(&b.id, "data.tar"),
            ]
        })
        .collect();
    assert_eq!(
        failed_before_window.len(),
        2,
        "one FAILED backup before the window"
    );
    Comparison {
        scenario,
        s3,
        policy,
        _dir: dir,
        barman: barman_keys,
        openova: openova_keys,
        named: vec![(FAILED_BEFORE_WINDOW, failed_before_window)],
    }
}

impl Comparison {
    /// Asserts the named differences are there, then that both tools agree on everything else.
    fn assert_same_answer(&self) {
        let mut openova = self.openova.clone();
        for (name, keys) in &self.named {
            assert!(!keys.is_empty(), "{name}: nothing named");
            for k in keys {
                assert!(self.openova.contains(k), "{name}: openova deletes {k}");
                assert!(!self.barman.contains(k), "{name}: Barman keeps {k}");
                openova.remove(k);
            }
        }
        let only_openova: BTreeSet<String> = openova.difference(&self.barman).cloned().collect();
        let only_barman: BTreeSet<String> = self.barman.difference(&openova).cloned().collect();
        assert!(
            only_openova.is_empty() && only_barman.is_empty(),
            "openova and Barman disagree (timeline 2 starts at {}):\n{}\n{}",
            wal_name(2, self.scenario.switch),
            listing("only openova would delete", &only_openova),
            listing("only Barman would delete", &only_barman),
        );
        // Sanity: the comparison is not vacuous.
        assert!(self.barman.len() > 300, "{}", self.barman.len());
    }

    /// `--apply`, then: nothing left to delete, status reads the store, the DONE backups Barman
    /// keeps are still there, and Barman itself finds nothing more to delete.
    fn apply_and_recheck(&self) {
        let (applied, report) = openova_plan(&self.s3, &self.policy, true).expect("apply");
        assert_eq!(applied, self.openova, "applied what was planned");
        assert!(!report["applied"].is_null(), "{report:#}");
        let present: BTreeSet<String> = self.s3.list_keys(PREFIX).into_iter().collect();
        let still: Vec<&String> = self.openova.intersection(&present).collect();
        assert!(still.is_empty(), "not deleted: {still:?}");
        let (again, report) = openova_plan(&self.s3, &self.policy, false).expect("replan");
        assert!(
            again.is_empty(),
            "a second plan deletes nothing: {report:#}"
        );

        let status = openova(Some(&self.s3), &["status", "--policies", &self.policy]);
        assert!(
            status.code == 0 || status.code == 1,
            "status reads the store: {status:?}"
        );
        assert!(!status.stderr.contains("panicked"), "{status:?}");

        let left: BTreeSet<String> = barman::backup_list(&self.s3, PREFIX, &self.scenario.server)
            .into_iter()
            .map(|b| b.backup_id)
            .collect();
        for b in self.scenario.done() {
            let info = self.scenario.base_key(&b.id, "backup.info");
            if !self.barman.contains(&info) {
                assert!(
                    left.contains(&b.id),
                    "DONE backup {} kept by Barman is gone",
                    b.id
                );
                assert!(present.contains(&info), "{info}");
                assert!(present.contains(&self.scenario.base_key(&b.id, "data.tar")));
            }
        }
        let (more, out) = barman_would_delete(&self.s3, &self.scenario.server);
        assert!(
            more.is_empty(),
            "Barman would delete more after openova: {out}"
        );
    }
}

/// Timeline 2 begins right where the window's base backup (8 days old) begins: the base and
/// the two newer DONE backups are on timeline 2, the keep:full backup (28 days old) and every
/// obsolete backup on timeline 1.
#[test]
fn same_answer_as_barman_promotion_then_backup() {
    let c = compare(Switch::At(8), true);
    let done = c.scenario.done();
    assert_eq!((done[7].timeline, done[8].timeline), (1, 2));
    c.assert_same_answer();
    c.apply_and_recheck();
}

/// Timeline 2 begins 10 days ago, between the backups 12 and 8 days old: WAL on timeline 2 before
/// the base backup. Barman keeps it (the keep:full backup on timeline 1 recovers through it).
#[test]
fn same_answer_as_barman_promotion_before_the_base() {
    let c = compare(Switch::Between(8), true);
    let done = c.scenario.done();
    assert_eq!((done[7].timeline, done[8].timeline), (1, 2));
    c.assert_same_answer();
    c.apply_and_recheck();
}

/// Timeline 2 begins 6 days ago, between the base backup (8 days old, timeline 1) and the next
/// one: WAL on timeline 2 before its first backup, needed to recover from the base.
#[test]
fn same_answer_as_barman_promotion_inside_the_window() {
    let c = compare(Switch::Between(9), true);
    let done = c.scenario.done();
    assert_eq!((done[8].timeline, done[9].timeline), (1, 2));
    c.assert_same_answer();
    c.apply_and_recheck();
}

/// As [`same_answer_as_barman_promotion_then_backup`] without the keep:full backup: every backup on
/// timeline 1 is obsolete, but the FAILED backup 30 days old is on timeline 1 too.
#[test]
fn same_answer_as_barman_old_timeline_all_obsolete() {
    let mut c = compare(Switch::At(8), false);
    let done = c.scenario.done();
    let last_tl1 = done[7];
    assert_eq!((last_tl1.timeline, done[8].timeline), (1, 2));
    let from = format!("{PREFIX}/{}/wals/", c.scenario.server);
    let first = wal_name(1, P0 + STEP * 7);
    let tl1_tail: BTreeSet<String> = c
        .scenario
        .objects
        .iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.strip_prefix(&from)
                .and_then(|r| r.split('/').nth(1))
                .is_some_and(|n| n.starts_with("00000001") && n[..24] >= *first)
        })
        .cloned()
        .collect();
    // Segments from the last timeline-1 backup to the promotion, its .backup file, the .partial.
    assert_eq!(tl1_tail.len(), (STEP + 2) as usize, "{tl1_tail:?}");
    c.named.push((OLD_TIMELINE_OF_A_FAILED_BACKUP, tl1_tail));
    c.assert_same_answer();
    c.apply_and_recheck();
}
