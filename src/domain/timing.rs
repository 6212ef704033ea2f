//! Timing profiles shared by the daemon and the simulator (design.md
//! section 5). Durations are plain values: nothing here reads a clock.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::DomainError;

/// One set of timing constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingProfile {
    /// The profile's name (`pve`, `default`, `fast`).
    pub name: &'static str,
    /// CRM and LRM round interval.
    pub round_interval: Duration,
    /// Lease renewal interval.
    pub lease_renew_interval: Duration,
    /// How long a node must be offline before it is fenced.
    pub fence_delay: Duration,
    /// The per-client timeout of watchdog-mux.
    pub mux_client_timeout: Duration,
    /// The watchdog device timeout.
    pub device_timeout: Duration,
    /// The lease time-to-live.
    pub lease_ttl: Duration,
    /// Extra safety margin in the lease rule.
    pub margin: Duration,
}

impl TimingProfile {
    /// Proxmox's constants (spec section 10).
    pub const PVE: TimingProfile = TimingProfile {
        name: "pve",
        round_interval: Duration::from_secs(10),
        lease_renew_interval: Duration::from_secs(10),
        fence_delay: Duration::from_secs(60),
        mux_client_timeout: Duration::from_secs(60),
        device_timeout: Duration::from_secs(10),
        lease_ttl: Duration::from_secs(120),
        margin: Duration::from_secs(0),
    };

    /// The project's default profile.
    pub const DEFAULT: TimingProfile = TimingProfile {
        name: "default",
        round_interval: Duration::from_secs(1),
        lease_renew_interval: Duration::from_secs(1),
        fence_delay: Duration::from_secs(2),
        mux_client_timeout: Duration::from_secs(5),
        device_timeout: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(13),
        margin: Duration::from_secs(1),
    };

    /// A fast profile for small, well-connected clusters and the demo.
    pub const FAST: TimingProfile = TimingProfile {
        name: "fast",
        round_interval: Duration::from_millis(500),
        lease_renew_interval: Duration::from_millis(500),
        fence_delay: Duration::from_secs(1),
        mux_client_timeout: Duration::from_millis(1500),
        device_timeout: Duration::from_secs(1),
        lease_ttl: Duration::from_millis(4500),
        margin: Duration::from_millis(500),
    };

    /// All built-in profiles.
    pub const ALL: [TimingProfile; 3] = [Self::PVE, Self::DEFAULT, Self::FAST];

    /// Checks the lease safety rule:
    /// `ttl > mux_client_timeout + device_timeout + renew_interval + margin`.
    /// A node that stops renewing is then reset by its watchdog strictly
    /// before the leader can see its lease expire.
    pub fn check_lease_rule(&self) -> Result<(), DomainError> {
        let needed =
            self.mux_client_timeout + self.device_timeout + self.lease_renew_interval + self.margin;
        if self.lease_ttl > needed {
            Ok(())
        } else {
            Err(DomainError::InvalidValue {
                field: "lease_ttl".into(),
                value: format!("{:?}", self.lease_ttl),
                reason: format!(
                    "must exceed mux_client_timeout + device_timeout + lease_renew_interval + margin = {needed:?}"
                ),
            })
        }
    }
}

impl FromStr for TimingProfile {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name == s)
            .ok_or_else(|| DomainError::InvalidValue {
                field: "profile".into(),
                value: s.into(),
                reason: "expected one of pve, default, fast".into(),
            })
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
    fn every_profile_satisfies_the_lease_rule() {
        for profile in TimingProfile::ALL {
            profile.check_lease_rule().unwrap();
        }
    }

    #[test]
    fn unsafe_profile_is_refused() {
        let mut p = TimingProfile::DEFAULT;
        p.lease_ttl = Duration::from_secs(12);
        assert!(p.check_lease_rule().is_err());
    }
}
