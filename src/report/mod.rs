//! Output: text or JSON results on stdout, progress and logs on stderr (so `--output json | jq`
//! always works). Progress sits behind the [`Progress`] trait: a spinner on a terminal, nothing
//! when stderr is a pipe (logs then go out as JSON lines through `tracing`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Something that shows long work is moving.
pub trait Progress: Send + Sync {
    fn message(&self, msg: &str);
    fn finish(&self);
}

/// No progress at all (stderr is not a terminal, or `--quiet`).
pub struct Silent;

impl Progress for Silent {
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

/// A spinner on stderr that only appears once work has taken longer than a moment, so quick
/// commands stay clean.
pub struct Spinner {
    bar: indicatif::ProgressBar,
}

/// How long work may take before a spinner shows.
const SHOW_AFTER: Duration = Duration::from_millis(400);

impl Spinner {
    #[must_use]
    pub fn start(msg: &str) -> Arc<Self> {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        bar.set_message(msg.to_string());
        let shown = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(SHOW_AFTER);
            if !shown.is_finished() {
                shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Arc::new(Self { bar })
    }
}

impl Progress for Spinner {
    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A time as people read it in a log line: `2026-11-25T14:37:27Z` (UTC, whole seconds).
#[must_use]
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A spinner when stderr is a terminal, otherwise nothing.
#[must_use]
pub fn progress(msg: &str) -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Spinner::start(msg)
    } else {
        Arc::new(Silent)
    }
}

/// The AWS SDK warns about every credential provider it tries and skips (IMDS on a laptop, ...);
/// openova reports the failure that matters itself, so the SDK's own warnings stay off.
const DEFAULT_LOG: &str = "warn,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error";

/// Logs to stderr: readable on a terminal, JSON lines otherwise (a CronJob's log collector).
/// Level from `OPENOVA_LOG` (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPENOVA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}
