//! `drill history`: the drill records in the bucket, read back. A record whose report cannot be
//! read is named with the reason, never fatal. Also a self-contained HTML page (inline SVG, no
//! JavaScript, no network) for reviews and audits.

use super::record::PREFIX;
use super::report::Report;
use crate::store::{self, ObjectStore};
use serde::Serialize;
use std::fmt::Write as _;

/// One stored run, read or not.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `openova/drills/TIMESTAMP-NAME`.
    pub folder: String,
    pub report: Option<Report>,
    /// Why the report could not be read.
    pub unreadable: Option<String>,
}

impl Run {
    /// Whether the run went over a budget (or failed because of one).
    #[must_use]
    pub fn over_budget(&self) -> bool {
        self.report.as_ref().is_some_and(|r| {
            let over =
                |v: Option<f64>, b: Option<f64>| matches!((v, b), (Some(v), Some(b)) if v > b);
            over(r.rto_seconds, r.budgets.rto_seconds) || over(r.rpo_seconds, r.budgets.rpo_seconds)
        })
    }
}

/// Every run stored on `store` (the location above the storage prefix), oldest first; only
/// drill `name`'s when given.
pub async fn load(store: &dyn ObjectStore, name: Option<&str>) -> Result<Vec<Run>, store::Error> {
    let objects = store.list(&format!("{PREFIX}/")).await?;
    let mut runs = Vec::new();
    for o in objects.iter().filter(|o| o.key.ends_with("/report.json")) {
        let folder = o.key.trim_end_matches("/report.json").to_string();
        let drill_of_folder = folder
            .rsplit('/')
            .next()
            .and_then(|f| f.split_once('-'))
            .map(|(_, n)| n);
        if name.is_some_and(|n| drill_of_folder != Some(n)) {
            continue;
        }
        let run = match store.get(&o.key).await {
            Ok(body) => match serde_json::from_slice::<Report>(&body) {
                Ok(r) if r.schema == super::report::SCHEMA => Run {
                    folder,
                    report: Some(r),
                    unreadable: None,
                },
                Ok(r) => Run {
                    folder,
                    report: None,
                    unreadable: Some(format!(
                        "schema {:?}, not {}",
                        r.schema,
                        super::report::SCHEMA
                    )),
                },
                Err(e) => Run {
                    folder,
                    report: None,
                    unreadable: Some(format!("{} is not a drill report: {e}", o.key)),
                },
            },
            Err(e) if !e.is_not_found() => return Err(e),
            Err(e) => Run {
                folder,
                report: None,
                unreadable: Some(e.to_string()),
            },
        };
        runs.push(run);
    }
    runs.sort_by(|a, b| {
        a.folder
            .rsplit('/')
            .next()
            .cmp(&b.folder.rsplit('/').next())
    });
    Ok(runs)
}

/// Median and worst of the values.
#[must_use]
pub fn median_and_worst(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    };
    Some((median, v[n - 1]))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG line chart of `values` (seconds) over the runs, with the budget as a dashed line.
fn chart(title: &str, values: &[Option<f64>], budget: Option<f64>) -> String {
    let (w, h, pad) = (640.0, 220.0, 40.0);
    let top = values
        .iter()
        .flatten()
        .copied()
        .chain(budget)
        .fold(1.0_f64, f64::max)
        * 1.15;
    let n = values.len().max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * (i as f64) / (n - 1.0);
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / top;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\" stroke=\"#ccc\"/>\
         <text x=\"{pad}\" y=\"20\" font-size=\"14\" font-family=\"sans-serif\">{t} (seconds; max {top:.1})</text>\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>",
        t = esc(title),
        b = h - pad,
        r = w - pad
    );
    if let Some(b) = budget {
        let _ = write!(
            svg,
            "<line class=\"budget\" x1=\"{pad}\" y1=\"{yb:.1}\" x2=\"{r}\" y2=\"{yb:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{r}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#c00\" font-family=\"sans-serif\">budget {b} s</text>",
            yb = y(b),
            ty = y(b) - 4.0,
            r = w - pad
        );
    }
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    if !points.is_empty() {
        let _ = write!(
            svg,
            "<polyline class=\"series\" fill=\"none\" stroke=\"#036\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let over = budget.is_some_and(|b| *v > b);
            let _ = write!(
                svg,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"><title>{v:.1} s</title></circle>",
                x(i),
                y(*v),
                if over { "#c00" } else { "#036" }
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One self-contained page: RTO and RPO charts with budgets, and the table of runs.
#[must_use]
pub fn html(runs: &[Run]) -> String {
    let read: Vec<&Report> = runs.iter().filter_map(|r| r.report.as_ref()).collect();
    let rto: Vec<Option<f64>> = read.iter().map(|r| r.rto_seconds).collect();
    let rpo: Vec<Option<f64>> = read.iter().map(|r| r.rpo_seconds).collect();
    let budget = |f: fn(&Report) -> Option<f64>| read.iter().rev().find_map(|r| f(r));
    let mut rows = String::new();
    for run in runs {
        match &run.report {
            Some(r) => {
                let _ = write!(
                    rows,
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if r.passed { "passed" } else { "failed" },
                    esc(&r.drill),
                    crate::report::time(r.started),
                    if r.passed { "passed" } else { "FAILED" },
                    r.rto_seconds.map_or("-".into(), |v| format!("{v:.1} s")),
                    r.rpo_seconds.map_or("-".into(), |v| format!("{v:.1} s")),
                    if run.over_budget() { "over budget" } else { "" }
                );
            }
            None => {
                let _ = write!(
                    rows,
                    "<tr class=\"unreadable\"><td colspan=\"6\">{}: unreadable: {}</td></tr>",
                    esc(&run.folder),
                    esc(run.unreadable.as_deref().unwrap_or("?"))
                );
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>openova drill history</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px}}tr.failed td{{background:#fee}}tr.unreadable td{{background:#ffd}}\
         .chart{{display:block;margin:1em 0}}</style></head><body>\
         <h1>openova drill history</h1><p>{} runs ({} readable).</p>{}{}\
         <table><thead><tr><th>drill</th><th>started</th><th>result</th><th>RTO</th><th>RPO</th><th>budget</th></tr></thead>\
         <tbody>{rows}</tbody></table></body></html>\n",
        runs.len(),
        read.len(),
        chart("RTO per run", &rto, budget(|r| r.budgets.rto_seconds)),
        chart("RPO per run", &rpo, budget(|r| r.budgets.rpo_seconds)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_worst_of_runs() {
        assert_eq!(median_and_worst(&[3.0, 1.0, 2.0]), Some((2.0, 3.0)));
        assert_eq!(median_and_worst(&[4.0, 1.0]), Some((2.5, 4.0)));
        assert_eq!(median_and_worst(&[]), None);
    }

    #[test]
    fn the_chart_draws_points_and_the_budget() {
        let svg = chart("RTO <x>", &[Some(1.0), None, Some(5.0)], Some(3.0));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("class=\"budget\""));
        assert!(svg.contains("RTO &lt;x&gt;"));
        assert!(
            svg.contains("fill=\"#c00\""),
            "the point over budget is red"
        );
    }
}
