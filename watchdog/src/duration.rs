//! Parsing durations given on the command line: `500ms`, `1.5s`, `10s`,
//! or a bare number of seconds.

use std::time::Duration;
use thiserror::Error;

/// A duration string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration '{0}': expected e.g. 500ms, 1.5s, 10s or 10 (seconds)")]
pub struct DurationError(pub String);

/// Parses `500ms`, `1.5s`, `10s` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError(text.to_string());
    let trimmed = text.trim();
    let (number, scale) = if let Some(ms) = trimmed.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = trimmed.strip_suffix('s') {
        (s, 1.0)
    } else {
        (trimmed, 1.0)
    };
    // Whole numbers are converted exactly; fractions go through f64.
    if let Ok(whole) = number.trim().parse::<u64>() {
        return Ok(if scale < 1.0 {
            Duration::from_millis(whole)
        } else {
            Duration::from_secs(whole)
        });
    }
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    if !value.is_finite() || value < 0.0 {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "ms", "-1s", "abc", "1h", "NaN", "inf", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
