//! Durations as policies write them: `30d`, `26h`, `5m`, `90s`, `1w`, or combinations (`1h30m`).

use chrono::TimeDelta;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub TimeDelta);

impl Duration {
    /// Parses `30d`, `1h30m`, ...; the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hint = "write a number with a unit: s, m, h, d or w (e.g. 30d, 26h, 5m, 1h30m)";
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} has no unit: {hint}"));
        }
        let (mut total, mut num) = (0i64, String::new());
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(format!("{s:?} is not a duration: {hint}")),
            };
            let n: i64 = num
                .parse()
                .map_err(|_| format!("{s:?} is not a duration: {hint}"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or(format!("{s:?} is too long"))?;
            num.clear();
        }
        if s.is_empty() || !num.is_empty() {
            return Err(format!("{s:?} is not a duration: {hint}"));
        }
        Ok(Self(TimeDelta::seconds(total)))
    }

    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

/// Human form of a time span, coarse on purpose: `34d 2h`, `3h 5m`, `42s`.
#[must_use]
pub fn human(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.num_seconds();
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s != 0 && s % len == 0 {
                return write!(f, "{}{unit}", s / len);
            }
        }
        write!(f, "{s}s")
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept a bare YAML number too, only to reject it with the "no unit" message.
        let v = serde_norway::Value::deserialize(d)?;
        let text = match &v {
            serde_norway::Value::String(s) => s.clone(),
            serde_norway::Value::Number(n) => n.to_string(),
            _ => return Err(serde::de::Error::custom("expected a duration like 30d")),
        };
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_bare_numbers() {
        assert_eq!(Duration::parse("30d").unwrap().0, TimeDelta::days(30));
        assert_eq!(Duration::parse("1h30m").unwrap().0, TimeDelta::minutes(90));
        assert_eq!(Duration::parse("5m").unwrap().to_string(), "5m");
        assert!(Duration::parse("30").unwrap_err().contains("has no unit"));
        for bad in ["", "d", "30x", "3d5"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_spans() {
        assert_eq!(human(TimeDelta::hours(50)), "2d 2h");
        assert_eq!(human(TimeDelta::seconds(42)), "42s");
    }
}
