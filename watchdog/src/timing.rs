//! The self-fencing timing rule (design.md section 5).
//!
//! A node that can no longer renew its lease must be reset by its watchdog
//! strictly before the leader can see the lease expire. After the last
//! acknowledged renewal (sent at `t_sent`) the node resets at the latest at
//! `t_sent + renew_interval + mux_client_timeout + device_timeout`, so the
//! lease ttl must exceed that sum plus a safety margin.

use std::time::Duration;
use thiserror::Error;

/// A timing configuration that would let a failed node keep running after
/// its lease could be taken over.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimingError {
    /// The central inequality does not hold.
    #[error(
        "unsafe timing: need ttl > mux_client_timeout + device_timeout + renew_interval + margin, \
         but {ttl:?} <= {mux_client_timeout:?} + {device_timeout:?} + {renew_interval:?} + {margin:?} \
         (= {sum:?})"
    )]
    TtlTooShort {
        /// Lease ttl.
        ttl: Duration,
        /// Per-client timeout of the watchdog mux.
        mux_client_timeout: Duration,
        /// Watchdog device timeout.
        device_timeout: Duration,
        /// Lease renewal interval.
        renew_interval: Duration,
        /// Safety margin.
        margin: Duration,
        /// The right-hand side of the inequality.
        sum: Duration,
    },
    /// A duration that must be positive is zero.
    #[error("unsafe timing: {name} must be greater than zero")]
    Zero {
        /// The name of the zero duration.
        name: &'static str,
    },
    /// The right-hand side overflows.
    #[error(
        "unsafe timing: mux_client_timeout + device_timeout + renew_interval + margin overflows"
    )]
    Overflow,
}

/// Checks `ttl > mux_client_timeout + device_timeout + renew_interval + margin`.
///
/// The daemon calls this at start-up and refuses to run when it fails. The
/// timeouts and the renew interval must be non-zero; the margin may be zero
/// (the inequality is strict), although a real deployment should not do so.
pub fn check_timing(
    ttl: Duration,
    mux_client_timeout: Duration,
    device_timeout: Duration,
    renew_interval: Duration,
    margin: Duration,
) -> Result<(), TimingError> {
    for (name, value) in [
        ("ttl", ttl),
        ("mux_client_timeout", mux_client_timeout),
        ("device_timeout", device_timeout),
        ("renew_interval", renew_interval),
    ] {
        if value.is_zero() {
            return Err(TimingError::Zero { name });
        }
    }
    let sum = mux_client_timeout
        .checked_add(device_timeout)
        .and_then(|s| s.checked_add(renew_interval))
        .and_then(|s| s.checked_add(margin))
        .ok_or(TimingError::Overflow)?;
    if ttl > sum {
        Ok(())
    } else {
        Err(TimingError::TtlTooShort {
            ttl,
            mux_client_timeout,
            device_timeout,
            renew_interval,
            margin,
            sum,
        })
    }
}

/// How long after sending an acknowledged renewal (`t_sent`) the node may
/// still feed its watchdog client: `ttl - (mux_client_timeout +
/// device_timeout) - margin`.
///
/// Returns `None` when that is not positive, i.e. the node may never feed.
pub fn feed_window(
    ttl: Duration,
    mux_client_timeout: Duration,
    device_timeout: Duration,
    margin: Duration,
) -> Option<Duration> {
    let reserved = mux_client_timeout
        .checked_add(device_timeout)?
        .checked_add(margin)?;
    ttl.checked_sub(reserved).filter(|window| !window.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn design_profiles_are_safe() {
        // pve, default and fast rows of the design.md table.
        check_timing(secs(120.0), secs(60.0), secs(10.0), secs(10.0), secs(0.0)).unwrap();
        check_timing(secs(13.0), secs(5.0), secs(5.0), secs(1.0), secs(1.0)).unwrap();
        check_timing(secs(4.5), secs(1.5), secs(1.0), secs(0.5), secs(0.5)).unwrap();
    }

    #[test]
    fn equality_is_unsafe_and_names_the_inequality() {
        let err = check_timing(secs(12.0), secs(5.0), secs(5.0), secs(1.0), secs(1.0)).unwrap_err();
        assert!(matches!(err, TimingError::TtlTooShort { .. }));
        let message = err.to_string();
        assert!(
            message.contains("ttl > mux_client_timeout + device_timeout + renew_interval + margin"),
            "{message}"
        );
        assert!(message.contains("12s"), "{message}");
    }

    #[test]
    fn each_term_counts() {
        let base = [secs(10.0), secs(2.0), secs(2.0), secs(2.0), secs(2.0)];
        check_timing(base[0], base[1], base[2], base[3], base[4]).unwrap();
        // Growing any single right-hand term by 2.5 s breaks the rule.
        for term in 1..5 {
            let mut t = base;
            t[term] += secs(2.5);
            assert!(
                check_timing(t[0], t[1], t[2], t[3], t[4]).is_err(),
                "term {term}"
            );
        }
    }

    #[test]
    fn zero_durations_are_named() {
        let err = check_timing(secs(10.0), secs(0.0), secs(1.0), secs(1.0), secs(1.0)).unwrap_err();
        assert_eq!(
            err,
            TimingError::Zero {
                name: "mux_client_timeout"
            }
        );
        assert!(err.to_string().contains("mux_client_timeout"));
        let err = check_timing(secs(10.0), secs(1.0), secs(1.0), secs(0.0), secs(1.0)).unwrap_err();
        assert_eq!(
            err,
            TimingError::Zero {
                name: "renew_interval"
            }
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let err = check_timing(
            Duration::MAX,
            Duration::MAX,
            secs(1.0),
            secs(1.0),
            secs(1.0),
        )
        .unwrap_err();
        assert_eq!(err, TimingError::Overflow);
    }

    #[test]
    fn feed_window_matches_the_rule() {
        assert_eq!(
            feed_window(secs(13.0), secs(5.0), secs(5.0), secs(1.0)),
            Some(secs(2.0))
        );
        assert_eq!(
            feed_window(secs(11.0), secs(5.0), secs(5.0), secs(1.0)),
            None
        );
        assert_eq!(
            feed_window(secs(1.0), secs(5.0), secs(5.0), secs(1.0)),
            None
        );
        // Whenever the rule holds, the window is longer than one renew interval,
        // so a renewing node always has a valid window.
        let (ttl, mux, dev, renew, margin) =
            (secs(4.5), secs(1.5), secs(1.0), secs(0.5), secs(0.5));
        check_timing(ttl, mux, dev, renew, margin).unwrap();
        assert!(feed_window(ttl, mux, dev, margin).unwrap() > renew);
    }
}
