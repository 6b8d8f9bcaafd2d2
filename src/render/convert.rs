//! Conversions from policy values to the forms Velero and CNPG read.

use crate::policy::Duration;

/// A duration as Go's `time.Duration.String()` writes it, which is how Velero writes `spec.ttl`:
/// 30 days → `720h0m0s`, 90 minutes → `1h30m0s`, 5 minutes → `5m0s`, 42 seconds → `42s`.
#[must_use]
pub fn go_duration(d: Duration) -> String {
    let s = d.0.num_seconds();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// CNPG's `retentionPolicy` (`^[1-9][0-9]*[dwm]$`, read by Barman as `RECOVERY WINDOW OF N DAYS`):
/// a recovery window of 7 days → `7d`. `None` when the window is not a whole number of days.
#[must_use]
pub fn retention_days(window: Duration) -> Option<String> {
    let s = window.0.num_seconds();
    (s > 0 && s % 86_400 == 0).then(|| format!("{}d", s / 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        Duration::parse(s).unwrap()
    }

    #[test]
    fn ttl_is_written_as_go_writes_durations() {
        assert_eq!(go_duration(d("30d")), "720h0m0s");
        assert_eq!(go_duration(d("1h30m")), "1h30m0s");
        assert_eq!(go_duration(d("26h")), "26h0m0s");
        assert_eq!(go_duration(d("5m")), "5m0s");
        assert_eq!(go_duration(d("90s")), "1m30s");
        assert_eq!(go_duration(d("42s")), "42s");
        assert_eq!(go_duration(d("1w")), "168h0m0s");
    }

    #[test]
    fn retention_policy_counts_whole_days() {
        assert_eq!(retention_days(d("7d")).as_deref(), Some("7d"));
        assert_eq!(retention_days(d("2w")).as_deref(), Some("14d"));
        assert_eq!(retention_days(d("48h")).as_deref(), Some("2d"));
        assert_eq!(retention_days(d("36h")), None);
    }
}
