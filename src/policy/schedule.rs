//! 5-field cron schedules (minute hour day-of-month month day-of-week), in UTC.
//!
//! The `cron` crate wants a seconds field and numbers weekdays 1-7 from Sunday, where cron(8)
//! numbers them 0-7 with 0 and 7 for Sunday; we translate numeric weekdays to names so that
//! `0 3 * * 1` means Monday, as everyone who writes cron expects.

use chrono::{DateTime, Utc};
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    inner: cron::Schedule,
}

const DAYS: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{expr:?} has {} fields; write 5: minute hour day-of-month month day-of-week (UTC), e.g. \"0 3 * * *\"",
                fields.len()
            ));
        }
        let weekday = weekday_names(fields[4]);
        let six = format!(
            "0 {} {} {} {} {weekday}",
            fields[0], fields[1], fields[2], fields[3]
        );
        let inner = cron::Schedule::from_str(&six)
            .map_err(|e| format!("{expr:?} is not a valid cron schedule: {e}"))?;
        Ok(Self {
            expr: expr.to_string(),
            inner,
        })
    }

    /// The latest fire time at or before `t`.
    #[must_use]
    pub fn previous(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let just_after = t + chrono::TimeDelta::seconds(1);
        self.inner.after(&just_after).next_back()
    }

    /// The first fire time after `t`.
    #[must_use]
    pub fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.after(&t).next()
    }

    #[must_use]
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The 5-field form for robfig/cron's standard parser (Velero's `Schedule.spec.schedule`): the
    /// same fields with numeric weekdays as names, because robfig/cron numbers them 0-6 and refuses 7,
    /// which cron(8) (and this module) read as Sunday.
    #[must_use]
    pub fn five_fields(&self) -> String {
        let f: Vec<&str> = self.expr.split_whitespace().collect();
        format!(
            "{} {} {} {} {}",
            f[0],
            f[1],
            f[2],
            f[3],
            weekday_names(f[4])
        )
    }

    /// The 6-field form, seconds first, that CNPG's `ScheduledBackup.spec.schedule` wants:
    /// `"0 2 * * *"` becomes `"0 0 2 * * *"`. A 5-field string passed through would be read with its
    /// minute as the seconds field and run at the wrong times.
    #[must_use]
    pub fn six_fields(&self) -> String {
        format!("0 {}", self.five_fields())
    }
}

/// `1-5` -> `MON-FRI`; steps (`*/2`) keep their numbers.
fn weekday_names(field: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let mut after_slash = false;
    let flush = |out: &mut String, digits: &mut String, after_slash: bool| {
        if !digits.is_empty() {
            match digits.parse::<usize>() {
                Ok(n) if n < DAYS.len() && !after_slash => out.push_str(DAYS[n]),
                _ => out.push_str(digits),
            }
            digits.clear();
        }
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut out, &mut digits, after_slash);
            after_slash = c == '/';
            out.push(c);
        }
    }
    flush(&mut out, &mut digits, after_slash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn previous_and_next_fire_times() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            s.previous(at("2026-11-25T02:00:00Z")),
            Some(at("2026-11-24T03:00:00Z"))
        );
        assert_eq!(
            s.previous(at("2026-11-25T03:00:00Z")),
            Some(at("2026-11-25T03:00:00Z"))
        );
        assert_eq!(
            s.next(at("2026-11-25T03:00:00Z")),
            Some(at("2026-11-26T03:00:00Z"))
        );
    }

    #[test]
    fn weekdays_count_from_sunday_zero() {
        // 2026-11-23 is a Monday.
        let s = Schedule::parse("0 3 * * 1").unwrap();
        assert_eq!(
            s.previous(at("2026-11-25T00:00:00Z")),
            Some(at("2026-11-23T03:00:00Z"))
        );
        assert_eq!(weekday_names("1-5"), "MON-FRI");
        assert_eq!(weekday_names("*/2"), "*/2");
    }

    #[test]
    fn five_and_six_field_forms() {
        let s = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(s.five_fields(), "0 2 * * *");
        assert_eq!(s.six_fields(), "0 0 2 * * *");
        let s = Schedule::parse("30 4 * * 7").unwrap();
        assert_eq!(s.five_fields(), "30 4 * * SUN");
        assert_eq!(s.six_fields(), "0 30 4 * * SUN");
        let s = Schedule::parse("*/15 * * * 1-5").unwrap();
        assert_eq!(s.six_fields(), "0 */15 * * * MON-FRI");
        assert_eq!(weekday_names("0,7"), "SUN,SUN");
    }

    #[test]
    fn rejects_wrong_field_counts_and_garbage() {
        assert!(
            Schedule::parse("0 0 3 * * *")
                .unwrap_err()
                .contains("has 6 fields")
        );
        assert!(
            Schedule::parse("61 3 * * *")
                .unwrap_err()
                .contains("not a valid cron")
        );
    }
}
