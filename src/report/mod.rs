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
        // A spinner and the message: without a style the bar would draw `{wide_bar} {pos}/{len}`,
        // which never shows the message.
        bar.set_style(indicatif::ProgressStyle::default_spinner());
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
/// kube's client logs a failed connection as an error before returning it; openova reports it itself.
const DEFAULT_LOG: &str =
    "warn,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error,kube_client=off";

/// What stays quiet whatever level `OPENOVA_LOG` asks for, unless it names the target
/// (`OPENOVA_LOG=debug,aws_smithy_runtime=debug`; the more specific directive wins): at debug the SDK and the HTTP stack below it
/// log every step of every request, which buries openova's own `store` events (they already say
/// what was asked and how long it took), and the SDK's request traces carry the access key id.
const QUIET: &[(&str, &str)] = &[
    // Every `aws_*` crate (a target matches by prefix), at `error` as in the default.
    ("aws", "error"),
    ("hyper", "warn"),
    ("h2", "warn"),
    ("rustls", "warn"),
    ("kube_client", "off"),
];

/// The filter for an `OPENOVA_LOG` value (`None`: unset): its directives, then [`QUIET`]'s for
/// the targets it does not name. An invalid value falls back to the default.
fn filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let Some(spec) = spec.filter(|s| !s.trim().is_empty()) else {
        return tracing_subscriber::EnvFilter::new(DEFAULT_LOG);
    };
    let named = |target: &str| {
        spec.split(',')
            .any(|d| d.split(['=', '[']).next().unwrap_or_default().trim() == target)
    };
    let quiet = QUIET
        .iter()
        .filter(|(target, _)| !named(target))
        .map(|(target, level)| format!(",{target}={level}"));
    let directives = std::iter::once(spec.to_string())
        .chain(quiet)
        .collect::<String>();
    tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG))
}

/// Logs to stderr: readable on a terminal, JSON lines otherwise (a CronJob's log collector).
/// Level from `OPENOVA_LOG` (default `warn`): `info` adds the catalog loads and restore phases
/// with their durations, `debug` every store request.
pub fn init_logging() {
    let filter = filter(std::env::var("OPENOVA_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn the_sdk_stays_quiet_unless_named() {
        let f = filter(Some("debug")).to_string();
        assert!(f.contains("aws=error") && f.contains("hyper=warn"), "{f}");
        let f = filter(Some("debug,aws=debug")).to_string();
        assert!(!f.contains("aws=error"), "{f}");
        let default = filter(None).to_string();
        assert!(default.contains("aws_sdk_s3=error"), "{default}");
        // Not a filter: the default, not a panic or nothing.
        assert_eq!(filter(Some("debug,[")).to_string(), default);
    }
}
