//! Durations written the way Go writes them: `500ms`, `30s`, `1m30s`, `1h`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration read from and written as a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

/// A string that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {text:?}: {reason}; write a number with a unit: ns, us, ms, s, m or h (e.g. 500ms, 30s, 1m30s)"
)]
pub struct DurationError {
    /// The rejected text.
    pub text: String,
    /// Reason the text is rejected.
    pub reason: &'static str,
}

impl GoDuration {
    /// Builds a duration from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    /// Builds a duration from milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        GoDuration(Duration::from_millis(millis))
    }

    /// Returns true for a zero duration.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<GoDuration> for Duration {
    fn from(value: GoDuration) -> Self {
        value.0
    }
}

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl FromStr for GoDuration {
    type Err = DurationError;

    /// Parses a Go duration. A bare `0` is accepted, as in Go; other bare numbers are not.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            text: text.to_string(),
            reason,
        };
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        if rest.starts_with('-') {
            return Err(fail("negative durations are not allowed"));
        }
        if rest == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if rest.is_empty() {
            return Err(fail("empty"));
        }
        let mut total_nanos: u128 = 0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..number_len];
            if number.is_empty() || number == "." || number.matches('.').count() > 1 {
                return Err(fail("expected a number"));
            }
            rest = &rest[number_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| {
                    fail(if unit.is_empty() {
                        "missing unit"
                    } else {
                        "unknown unit"
                    })
                })?;
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| fail("number out of range"))?
            };
            let mut nanos = whole
                .checked_mul(scale)
                .ok_or(fail("number out of range"))?;
            let mut divisor = 1u128;
            for digit in fraction.chars().take(18) {
                divisor *= 10;
                let value = u128::from(digit.to_digit(10).unwrap_or(0));
                nanos += value * scale / divisor;
            }
            total_nanos = total_nanos
                .checked_add(nanos)
                .ok_or(fail("number out of range"))?;
        }
        let secs =
            u64::try_from(total_nanos / 1_000_000_000).map_err(|_| fail("number out of range"))?;
        let nanos = (total_nanos % 1_000_000_000) as u32;
        Ok(GoDuration(Duration::new(secs, nanos)))
    }
}

impl fmt::Display for GoDuration {
    /// Formats like Go's `time.Duration.String`: `1h2m3s`, `1m30s`, `500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            let (value, unit, scale) = if total < 1_000 {
                (total, "ns", 1)
            } else if total < 1_000_000 {
                (total, "µs", 1_000)
            } else {
                (total, "ms", 1_000_000)
            };
            return write!(f, "{}{unit}", fraction(value, scale));
        }
        let hours = total / 3_600_000_000_000;
        let minutes = (total / 60_000_000_000) % 60;
        let seconds_nanos = total % 60_000_000_000;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write!(f, "{}s", fraction(seconds_nanos, 1_000_000_000))
    }
}

/// Formats `value / scale` with the shortest exact decimal fraction.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let mut rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let mut digits = String::new();
    let mut place = scale / 10;
    while rest > 0 && place > 0 {
        digits.push(char::from(b'0' + (rest / place) as u8));
        rest %= place;
        place /= 10;
    }
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("100us", Duration::from_micros(100)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<GoDuration>().unwrap().0, expected, "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms_with_reason() {
        let cases = [
            ("30", "missing unit"),
            ("", "empty"),
            ("-5s", "negative durations are not allowed"),
            ("5 s", "unknown unit"),
            ("5d", "unknown unit"),
            ("s", "expected a number"),
            ("1..5s", "expected a number"),
        ];
        for (text, reason) in cases {
            let error = text.parse::<GoDuration>().unwrap_err();
            assert_eq!(error.reason, reason, "{text}");
            assert_eq!(error.text, text);
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
        ];
        for (duration, text) in cases {
            assert_eq!(GoDuration(duration).to_string(), text);
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "45s", "2m", "1h30m", "1.25s"] {
            let parsed: GoDuration = text.parse().unwrap();
            let again: GoDuration = parsed.to_string().parse().unwrap();
            assert_eq!(parsed, again);
        }
    }
}
