//! What a drill found, as data (`openova.drill/v1`, the JSON report) and rendered for people
//! (Markdown) and for CI (JUnit XML: one testcase per point, per check and per Velero backup).

use super::check;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

pub const SCHEMA: &str = "openova.drill/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub drill: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// The seed `random` points were drawn with (`--seed` repeats the run).
    pub seed: u64,
    pub passed: bool,
    pub budgets: Budgets,
    /// The worst RTO and RPO over the points that restored.
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub postgres: Vec<PointReport>,
    pub velero: Vec<VeleroReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Budgets {
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PointReport {
    pub policy: String,
    pub server: String,
    /// `oldest`, `random`, `latest` or the time the drill names.
    pub point: String,
    /// The time restored to (`None` for `latest`).
    pub target: Option<DateTime<Utc>>,
    pub backup_id: Option<String>,
    pub passed: bool,
    /// Why the point failed, when it did not get as far as its checks (or over a budget).
    pub error: Option<String>,
    /// The point could not be tried at all (a policy, the store or its catalog could not be
    /// read): an error of the drill (exit 2), not a finding about the backups (exit 1).
    #[serde(default)]
    pub errored: bool,
    /// The last transaction recovery replayed, as PostgreSQL reports it.
    pub achieved: Option<String>,
    pub phases: Phases,
    /// From the start of the point to its checks passed.
    pub rto_seconds: Option<f64>,
    /// `latest`: now − the last replayed transaction; a fixed point: target − the last replayed.
    pub rpo_seconds: Option<f64>,
    pub checks: Vec<check::Outcome>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    pub download_seconds: f64,
    pub extract_seconds: f64,
    pub replay_seconds: f64,
    pub checks_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VeleroReport {
    pub policy: String,
    pub backup: Option<String>,
    pub passed: bool,
    pub error: Option<String>,
    /// The policy, the store or its catalog could not be read (exit 2).
    #[serde(default)]
    pub errored: bool,
    /// Items read from the tarball (each once).
    pub items: usize,
    /// What `expect` lists and the tarball lacks.
    pub missing: Vec<String>,
    /// With `--into-cluster`: the backup restored for real into scratch namespaces and checked there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<super::in_cluster::InClusterReport>,
}

/// `1.2 s`, `3 min 4 s`.
fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) => format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0),
    }
}

impl Report {
    /// Whether something could not be tried at all (then the drill exits 2, not 1).
    #[must_use]
    pub fn errored(&self) -> bool {
        self.postgres.iter().any(|p| p.errored) || self.velero.iter().any(|v| v.errored)
    }

    /// A human summary.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(m, "# Drill {}: {verdict}\n", self.drill);
        let _ = writeln!(
            m,
            "Started {}, finished {}, seed {}. Worst RTO {} (budget {}), worst RPO {} (budget {}).\n",
            crate::report::time(self.started),
            crate::report::time(self.finished),
            self.seed,
            secs(self.rto_seconds),
            secs(self.budgets.rto_seconds),
            secs(self.rpo_seconds),
            secs(self.budgets.rpo_seconds)
        );
        if !self.postgres.is_empty() {
            m.push_str("## PostgreSQL\n\n| policy | point | target | backup | result | RTO | RPO | download | extract | replay | checks |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
            for p in &self.postgres {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.policy,
                    p.point,
                    p.target.map_or("latest".into(), crate::report::time),
                    p.backup_id.as_deref().unwrap_or("-"),
                    if p.passed { "passed" } else { "**failed**" },
                    secs(p.rto_seconds),
                    secs(p.rpo_seconds),
                    secs(Some(p.phases.download_seconds)),
                    secs(Some(p.phases.extract_seconds)),
                    secs(Some(p.phases.replay_seconds)),
                    secs(Some(p.phases.checks_seconds)),
                );
            }
            m.push('\n');
            for p in self.postgres.iter().filter(|p| !p.passed) {
                let _ = writeln!(
                    m,
                    "- {} `{}`: {}",
                    p.policy,
                    p.point,
                    p.error.as_deref().unwrap_or("a check failed")
                );
                for c in p.checks.iter().filter(|c| !c.passed) {
                    let _ = writeln!(
                        m,
                        "  - check \"{}\": expected {}, saw {} (`{}`)",
                        c.name,
                        c.expected,
                        c.error
                            .as_deref()
                            .or(c.seen.as_deref())
                            .unwrap_or("nothing"),
                        c.sql
                    );
                }
            }
        }
        if !self.velero.is_empty() {
            m.push_str("\n## Velero\n\n| policy | backup | result | items | missing |\n|---|---|---|---|---|\n");
            for v in &self.velero {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} |",
                    v.policy,
                    v.backup.as_deref().unwrap_or("-"),
                    if v.passed { "passed" } else { "**failed**" },
                    v.items,
                    if v.missing.is_empty() {
                        v.error.clone().unwrap_or_default()
                    } else {
                        v.missing.join(", ")
                    }
                );
            }
            for v in &self.velero {
                let Some(c) = &v.in_cluster else { continue };
                let _ = writeln!(
                    m,
                    "\n{}: restored into the cluster by Velero ({}) as {}: {} expected objects found{}{}{}",
                    v.policy,
                    c.phase.as_deref().unwrap_or("not restored"),
                    c.namespaces.join(", "),
                    c.found,
                    if c.missing.is_empty() {
                        String::new()
                    } else {
                        format!("; **missing** {}", c.missing.join(", "))
                    },
                    c.error
                        .as_ref()
                        .map(|e| format!("; **error** {e}"))
                        .unwrap_or_default(),
                    if c.left_behind.is_empty() {
                        "; everything it created is deleted".to_string()
                    } else {
                        format!("; **left behind** {}", c.left_behind.join(", "))
                    }
                );
            }
        }
        m
    }

    /// JUnit XML: a testsuite per drill, a testcase per point, per check and per Velero backup.
    #[must_use]
    pub fn junit(&self) -> String {
        let mut cases = String::new();
        let mut tests = 0;
        let mut failures = 0;
        let mut case = |class: &str, name: &str, seconds: f64, failure: Option<String>| {
            tests += 1;
            let _ = write!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.3}\"",
                xml(class),
                xml(name)
            );
            match failure {
                None => cases.push_str("/>\n"),
                Some(f) => {
                    failures += 1;
                    let _ = write!(
                        cases,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml(f.lines().next().unwrap_or_default()),
                        xml(&f)
                    );
                }
            }
        };
        for p in &self.postgres {
            let class = format!("{}.postgres.{}", self.drill, p.policy);
            let point_failure =
                (!p.passed).then(|| p.error.clone().unwrap_or_else(|| "a check failed".into()));
            case(
                &class,
                &format!("point {}", p.point),
                p.rto_seconds.unwrap_or(0.0),
                point_failure,
            );
            for c in &p.checks {
                let failure = (!c.passed).then(|| match &c.error {
                    Some(e) => format!("check \"{}\" could not run: {e}\nquery: {}", c.name, c.sql),
                    None => format!(
                        "check \"{}\": expected {}, saw {}\nquery: {}",
                        c.name,
                        c.expected,
                        c.seen.as_deref().unwrap_or("nothing"),
                        c.sql
                    ),
                });
                case(
                    &class,
                    &format!("point {} check {}", p.point, c.name),
                    c.seconds,
                    failure,
                );
            }
        }
        for v in &self.velero {
            let failure = (!v.passed).then(|| {
                v.error
                    .clone()
                    .unwrap_or_else(|| format!("missing from the backup: {}", v.missing.join(", ")))
            });
            case(
                &format!("{}.velero.{}", self.drill, v.policy),
                &format!("backup {}", v.backup.as_deref().unwrap_or("latest")),
                0.0,
                failure,
            );
        }
        let seconds = (self.finished - self.started).num_milliseconds() as f64 / 1000.0;
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"openova drill\" tests=\"{tests}\" failures=\"{failures}\" time=\"{seconds:.3}\">\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\" timestamp=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
            xml(&self.drill),
            self.started.format("%Y-%m-%dT%H:%M:%S")
        )
    }
}

/// Escapes text for an XML attribute or element.
fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let t: DateTime<Utc> = "2026-12-03T01:00:00Z".parse().unwrap();
        Report {
            schema: SCHEMA.into(),
            drill: "d".into(),
            started: t,
            finished: t + chrono::TimeDelta::seconds(30),
            seed: 7,
            passed: false,
            budgets: Budgets::default(),
            rto_seconds: Some(12.0),
            rpo_seconds: Some(1.0),
            postgres: vec![PointReport {
                policy: "db".into(),
                point: "oldest".into(),
                passed: false,
                checks: vec![check::Outcome {
                    name: "rows <ok>".into(),
                    sql: "select count(*) from t where x < 3".into(),
                    passed: false,
                    expected: "at least 5".into(),
                    seen: Some("2".into()),
                    error: None,
                    seconds: 0.1,
                }],
                ..PointReport::default()
            }],
            velero: vec![],
        }
    }

    #[test]
    fn junit_names_the_query_and_the_value_seen() {
        let x = report().junit();
        assert!(x.contains("tests=\"2\" failures=\"2\""), "{x}");
        assert!(
            x.contains("name=\"point oldest check rows &lt;ok&gt;\""),
            "{x}"
        );
        assert!(
            x.contains("check &quot;rows &lt;ok&gt;&quot;: expected at least 5, saw 2\nquery: select count(*) from t where x &lt; 3"),
            "{x}"
        );
    }

    #[test]
    fn markdown_says_what_failed() {
        let m = report().markdown();
        assert!(m.starts_with("# Drill d: FAILED"), "{m}");
        assert!(
            m.contains("check \"rows <ok>\": expected at least 5, saw 2"),
            "{m}"
        );
    }
}
