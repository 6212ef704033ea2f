//! The one table of timing profiles and the one rule they must satisfy.
//!
//! The daemon, the watchdog-mux check and the simulator all take their
//! timing from [`TimingProfile`]; nothing hand-copies these constants.
//!
//! Two promises rest on the rule:
//!
//! - **Safety** (a service never runs on two nodes): a node that cannot
//!   renew is reset by its watchdog strictly before the leader can see its
//!   lease expire. After an acknowledged renewal sent at `t_sent` the node
//!   feeds its watchdog only while `now < t_sent + feed_window`, with
//!   `feed_window = ttl - (mux_client_timeout + device_timeout) - margin`.
//!   The mux then fires at most `mux_client_timeout` after the last feed,
//!   the device resets at most `device_timeout` later: the reset happens
//!   before `t_sent + ttl - margin`, while the leader (which applied the
//!   renewal after it was sent) keeps the lease until at least
//!   `t_sent + ttl`.
//! - **Liveness** (a node that can reach a quorum is never reset): when
//!   the leader dies or hangs right after a renewal, the followers elect a
//!   new one within `election_timeout_max`; the node's pending attempt at
//!   the old leader gives up after `renew_attempt_timeout`, and its next
//!   attempt goes to whoever leads then. All of it must fit inside the
//!   feed window, together with one renew interval:
//!   `election_timeout_max + renew_attempt_timeout + lease_renew_interval
//!   < feed_window`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One set of timing constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingProfile {
    /// The profile's name (`pve`, `default`, `fast`).
    pub name: &'static str,
    /// CRM and LRM round interval.
    pub round_interval: Duration,
    /// How often a node renews its agent lease.
    pub lease_renew_interval: Duration,
    /// Upper bound on one renewal attempt (sent to the current leader,
    /// committed and answered); a slower attempt is abandoned and the next
    /// one asks whoever leads then.
    pub renew_attempt_timeout: Duration,
    /// How often a node feeds its watchdog-mux client while its lease is
    /// valid (its own timer, independent of renewals).
    pub feed_interval: Duration,
    /// How long a node must be offline before it is fenced.
    pub fence_delay: Duration,
    /// The per-client timeout of watchdog-mux.
    pub mux_client_timeout: Duration,
    /// The watchdog device timeout (the most a mux may be configured with).
    pub device_timeout: Duration,
    /// The lease time-to-live.
    pub lease_ttl: Duration,
    /// Extra safety margin in the lease rule.
    pub margin: Duration,
    /// Raft leader heartbeat interval.
    pub raft_heartbeat: Duration,
    /// Raft election timeout, lower bound.
    pub election_timeout_min: Duration,
    /// Raft election timeout, upper bound.
    pub election_timeout_max: Duration,
}

const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Why a timing profile (or a watchdog-mux setting) is refused; every
/// message carries the numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A duration that must be positive is zero.
    #[error("timing profile '{profile}': {field} must be greater than zero")]
    Zero {
        /// Profile name.
        profile: String,
        /// The field.
        field: &'static str,
    },
    /// The safety inequality does not hold: the node could outlive its
    /// lease.
    #[error(
        "timing profile '{profile}' is unsafe: need lease_ttl > mux_client_timeout + device_timeout + margin, \
         but {ttl:?} <= {mux:?} + {device:?} + {margin:?}"
    )]
    NoFeedWindow {
        /// Profile name.
        profile: String,
        /// Lease ttl.
        ttl: Duration,
        /// Mux client timeout.
        mux: Duration,
        /// Device timeout.
        device: Duration,
        /// Margin.
        margin: Duration,
    },
    /// The liveness inequality does not hold: a node that can reach a
    /// quorum could be reset when the leader dies or hangs.
    #[error(
        "timing profile '{profile}' can reset healthy nodes: need election_timeout_max + renew_attempt_timeout + \
         lease_renew_interval < feed window (lease_ttl - mux_client_timeout - device_timeout - margin), \
         but {election:?} + {attempt:?} + {renew:?} = {needed:?} >= {window:?}"
    )]
    LeaderLoss {
        /// Profile name.
        profile: String,
        /// Election timeout (upper bound).
        election: Duration,
        /// Renewal attempt timeout.
        attempt: Duration,
        /// Renew interval.
        renew: Duration,
        /// Their sum.
        needed: Duration,
        /// The feed window.
        window: Duration,
    },
    /// The node would not feed its mux client often enough.
    #[error(
        "timing profile '{profile}': need 2 x feed_interval <= mux_client_timeout, but 2 x {feed:?} > {mux:?}"
    )]
    FeedTooRare {
        /// Profile name.
        profile: String,
        /// Feed interval.
        feed: Duration,
        /// Mux client timeout.
        mux: Duration,
    },
    /// Raft would elect leaders while the current one is healthy.
    #[error(
        "timing profile '{profile}': need 3 x raft_heartbeat <= election_timeout_min < election_timeout_max, \
         got heartbeat {heartbeat:?}, election {min:?}..{max:?}"
    )]
    Election {
        /// Profile name.
        profile: String,
        /// Heartbeat interval.
        heartbeat: Duration,
        /// Election timeout, lower bound.
        min: Duration,
        /// Election timeout, upper bound.
        max: Duration,
    },
    /// A watchdog-mux's device timeout exceeds what the profile allows.
    #[error(
        "watchdog-mux device timeout {mux_device:?} exceeds the timing profile '{profile}' (device_timeout {device:?}): \
         a node could outlive its lease; start watchdog-mux with --device-timeout {device:?} or less"
    )]
    MuxDeviceTimeout {
        /// Profile name.
        profile: String,
        /// What the mux reports.
        mux_device: Duration,
        /// What the profile allows.
        device: Duration,
    },
    /// A profile name that does not exist.
    #[error("unknown timing profile '{0}': expected one of pve, default, fast")]
    UnknownProfile(String),
}

impl TimingProfile {
    /// Proxmox's constants (spec section 10), with a Raft tuned for them.
    pub const PVE: TimingProfile = TimingProfile {
        name: "pve",
        round_interval: ms(10_000),
        lease_renew_interval: ms(10_000),
        renew_attempt_timeout: ms(5_000),
        feed_interval: ms(1_000),
        fence_delay: ms(60_000),
        mux_client_timeout: ms(60_000),
        device_timeout: ms(10_000),
        lease_ttl: ms(120_000),
        margin: ms(0),
        raft_heartbeat: ms(200),
        election_timeout_min: ms(1_000),
        election_timeout_max: ms(2_000),
    };

    /// The project's default profile: a fenced failover in about 15 s.
    pub const DEFAULT: TimingProfile = TimingProfile {
        name: "default",
        round_interval: ms(1_000),
        lease_renew_interval: ms(1_000),
        renew_attempt_timeout: ms(1_000),
        feed_interval: ms(250),
        fence_delay: ms(2_000),
        mux_client_timeout: ms(4_000),
        device_timeout: ms(4_000),
        lease_ttl: ms(13_000),
        margin: ms(1_000),
        raft_heartbeat: ms(100),
        election_timeout_min: ms(500),
        election_timeout_max: ms(1_000),
    };

    /// A fast profile for small, well-connected clusters, the demo and the
    /// tests: a fenced failover in about 6 s.
    pub const FAST: TimingProfile = TimingProfile {
        name: "fast",
        round_interval: ms(500),
        lease_renew_interval: ms(500),
        renew_attempt_timeout: ms(500),
        feed_interval: ms(200),
        fence_delay: ms(1_000),
        mux_client_timeout: ms(1_500),
        device_timeout: ms(1_000),
        lease_ttl: ms(5_000),
        margin: ms(500),
        raft_heartbeat: ms(50),
        election_timeout_min: ms(250),
        election_timeout_max: ms(500),
    };

    /// All built-in profiles.
    pub const ALL: [TimingProfile; 3] = [Self::PVE, Self::DEFAULT, Self::FAST];

    /// How long after sending an acknowledged renewal the node may act
    /// and feed its watchdog: `ttl - (mux_client_timeout + device_timeout)
    /// - margin`; `None` when that is not positive.
    pub fn feed_window(&self) -> Option<Duration> {
        let reserved = self
            .mux_client_timeout
            .checked_add(self.device_timeout)?
            .checked_add(self.margin)?;
        self.lease_ttl
            .checked_sub(reserved)
            .filter(|w| !w.is_zero())
    }

    /// The latest a node is reset after its last feed: the mux notices the
    /// missed deadline, then the device runs out.
    pub fn reset_after_last_feed(&self) -> Duration {
        self.mux_client_timeout.saturating_add(self.device_timeout)
    }

    /// Checks the whole rule (see the module documentation).
    pub fn check(&self) -> Result<(), TimingError> {
        let profile = || self.name.to_string();
        for (field, value) in [
            ("round_interval", self.round_interval),
            ("lease_renew_interval", self.lease_renew_interval),
            ("renew_attempt_timeout", self.renew_attempt_timeout),
            ("feed_interval", self.feed_interval),
            ("mux_client_timeout", self.mux_client_timeout),
            ("device_timeout", self.device_timeout),
            ("lease_ttl", self.lease_ttl),
            ("raft_heartbeat", self.raft_heartbeat),
            ("election_timeout_min", self.election_timeout_min),
        ] {
            if value.is_zero() {
                return Err(TimingError::Zero {
                    profile: profile(),
                    field,
                });
            }
        }
        let Some(window) = self.feed_window() else {
            return Err(TimingError::NoFeedWindow {
                profile: profile(),
                ttl: self.lease_ttl,
                mux: self.mux_client_timeout,
                device: self.device_timeout,
                margin: self.margin,
            });
        };
        let needed = self
            .election_timeout_max
            .saturating_add(self.renew_attempt_timeout)
            .saturating_add(self.lease_renew_interval);
        if needed >= window {
            return Err(TimingError::LeaderLoss {
                profile: profile(),
                election: self.election_timeout_max,
                attempt: self.renew_attempt_timeout,
                renew: self.lease_renew_interval,
                needed,
                window,
            });
        }
        if self.feed_interval.saturating_mul(2) > self.mux_client_timeout {
            return Err(TimingError::FeedTooRare {
                profile: profile(),
                feed: self.feed_interval,
                mux: self.mux_client_timeout,
            });
        }
        if self.raft_heartbeat.saturating_mul(3) > self.election_timeout_min
            || self.election_timeout_min >= self.election_timeout_max
        {
            return Err(TimingError::Election {
                profile: profile(),
                heartbeat: self.raft_heartbeat,
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        Ok(())
    }

    /// Checks a watchdog-mux's device timeout against the profile: a mux
    /// whose device runs longer than the profile's `device_timeout` would
    /// let the node outlive its lease.
    pub fn check_mux_device_timeout(&self, mux_device: Duration) -> Result<(), TimingError> {
        if mux_device > self.device_timeout {
            return Err(TimingError::MuxDeviceTimeout {
                profile: self.name.to_string(),
                mux_device,
                device: self.device_timeout,
            });
        }
        Ok(())
    }
}

impl FromStr for TimingProfile {
    type Err = TimingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name == s)
            .ok_or_else(|| TimingError::UnknownProfile(s.to_string()))
    }
}

impl fmt::Display for TimingProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_satisfies_the_rule() {
        for p in TimingProfile::ALL {
            p.check().unwrap_or_else(|e| panic!("{e}"));
            assert!(p.feed_window().unwrap() > p.lease_renew_interval);
        }
    }

    #[test]
    fn the_old_default_breaks_the_leader_loss_rule_with_numbers() {
        // The profile before issue 9: 2 s of feed window could not cover an
        // election plus a renewal attempt.
        let mut p = TimingProfile::DEFAULT;
        p.mux_client_timeout = ms(5_000);
        p.device_timeout = ms(5_000);
        let e = p.check().unwrap_err();
        assert!(matches!(e, TimingError::LeaderLoss { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("3s >= 2s"), "{text}");
    }

    #[test]
    fn no_feed_window_is_refused() {
        let mut p = TimingProfile::FAST;
        p.lease_ttl = ms(3_000);
        let e = p.check().unwrap_err();
        assert!(matches!(e, TimingError::NoFeedWindow { .. }), "{e}");
        assert!(e.to_string().contains("3s <= 1.5s + 1s + 500ms"), "{e}");
    }

    #[test]
    fn each_liveness_term_counts() {
        let base = TimingProfile::DEFAULT;
        let window = base.feed_window().unwrap();
        let needed =
            base.election_timeout_max + base.renew_attempt_timeout + base.lease_renew_interval;
        let slack = window - needed;
        for which in 0..3 {
            let mut p = base;
            match which {
                0 => p.election_timeout_max += slack,
                1 => p.renew_attempt_timeout += slack,
                _ => p.lease_renew_interval += slack,
            }
            assert!(
                matches!(p.check(), Err(TimingError::LeaderLoss { .. })),
                "term {which}"
            );
        }
    }

    #[test]
    fn zero_and_feed_and_election_errors_name_the_field() {
        let mut p = TimingProfile::FAST;
        p.renew_attempt_timeout = Duration::ZERO;
        assert!(p
            .check()
            .unwrap_err()
            .to_string()
            .contains("renew_attempt_timeout"));
        let mut p = TimingProfile::FAST;
        p.feed_interval = ms(1_000);
        assert!(matches!(p.check(), Err(TimingError::FeedTooRare { .. })));
        let mut p = TimingProfile::FAST;
        p.raft_heartbeat = ms(200);
        assert!(matches!(p.check(), Err(TimingError::Election { .. })));
    }

    #[test]
    fn mux_device_timeout_is_checked_against_the_profile() {
        let p = TimingProfile::DEFAULT;
        assert!(p.check_mux_device_timeout(ms(4_000)).is_ok());
        let e = p.check_mux_device_timeout(ms(10_000)).unwrap_err();
        assert!(e.to_string().contains("10s"), "{e}");
        assert!(e.to_string().contains("--device-timeout 4s"), "{e}");
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            "fast".parse::<TimingProfile>().unwrap(),
            TimingProfile::FAST
        );
        assert!("slow".parse::<TimingProfile>().is_err());
    }
}
