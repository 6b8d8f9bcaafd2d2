//! `drill history --html` renders in a real browser: headless Chromium (Debian's, installed by
//! scripts/setup) loads the page with no network and no JavaScript, and the PNG it takes shows
//! both charts: the RTO/RPO series (dark blue), the budget lines and the point over budget (red).

use openova::drill::history::{Run, html};
use openova::drill::report::{Budgets, Report, SCHEMA};
use std::process::Command;

fn run(minutes_ago: i64, rto: f64, rpo: f64) -> Run {
    let started = chrono::Utc::now() - chrono::TimeDelta::minutes(minutes_ago);
    Run {
        folder: format!("openova/drills/{}-window", started.format("%Y%m%dT%H%M%SZ")),
        report: Some(Report {
            schema: SCHEMA.into(),
            drill: "window".into(),
            started,
            finished: started + chrono::TimeDelta::seconds(40),
            seed: 1,
            passed: rto <= 30.0,
            budgets: Budgets {
                rto_seconds: Some(30.0),
                rpo_seconds: Some(10.0),
            },
            rto_seconds: Some(rto),
            rpo_seconds: Some(rpo),
            postgres: vec![],
            velero: vec![],
        }),
        unreadable: None,
    }
}

#[test]
fn the_history_page_renders_in_headless_chromium_with_its_charts() {
    let chromium = "/usr/bin/chromium";
    assert!(
        std::path::Path::new(chromium).is_file(),
        "{chromium} is missing: scripts/setup installs Debian's chromium"
    );
    let mut runs = vec![run(30, 12.0, 2.0), run(20, 18.0, 4.0), run(10, 41.0, 3.0)];
    runs.push(Run {
        folder: "openova/drills/20261203T000000Z-window".into(),
        report: None,
        unreadable: Some("not a drill report".into()),
    });
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("history.html");
    std::fs::write(&page, html(&runs)).unwrap();
    let png = dir.path().join("history.png");
    let profile = dir.path().join("profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=800,700",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && png.is_file(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let count = |want: (u8, u8, u8)| {
        buf[..info.buffer_size()]
            .chunks(px)
            .filter(|p| {
                let d = |a: u8, b: u8| a.abs_diff(b) <= 12;
                d(p[0], want.0) && d(p[1], want.1) && d(p[2], want.2)
            })
            .count()
    };
    let series = count((0x00, 0x33, 0x66));
    let red = count((0xcc, 0x00, 0x00));
    eprintln!(
        "{}x{}: {series} series pixels, {red} red pixels",
        info.width, info.height
    );
    assert!(
        series > 400,
        "the RTO/RPO lines and points are drawn ({series} pixels)"
    );
    assert!(
        red > 40,
        "the budget lines and the run over budget are drawn in red ({red} pixels)"
    );
}
