//! Timing of one simulator run: the daemon's [`TimingProfile`] from the
//! one timing table, plus the harness's own pacing (Proxmox's simulator
//! loop, spec 8.3, scaled per profile).

use lease::TimingProfile;

/// Timing of one simulator profile: the profile from the one timing
/// table, plus the harness's own pacing (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTiming {
    /// `pve`, `default` or `fast`.
    pub name: &'static str,
    /// The timing profile the daemons would run (lease ttl, watchdog,
    /// fence delay, renewals, feeding, Raft election timeouts).
    pub profile: TimingProfile,
    /// Time one daemon iteration takes.
    pub step_ms: u64,
    /// Minimum round length.
    pub looptime_ms: u64,
    /// Quiet time after the last command before the run ends.
    pub end_quiet_ms: u64,
    /// Hard limit of simulated time.
    pub max_time_ms: u64,
    /// Multiplier for `delay` seconds.
    pub delay_scale_ms: u64,
    /// The CRM master holds a watchdog and Proxmox's manager lock (pve
    /// behaviour); otherwise the manager lock is Raft leadership.
    pub crm_watchdog: bool,
}

impl SimTiming {
    /// Proxmox's simulator harness (spec sections 8.3 and 10) with the
    /// `pve` profile.
    pub const PVE: SimTiming = SimTiming {
        name: "pve",
        profile: TimingProfile::PVE,
        step_ms: 1000,
        looptime_ms: 20_000,
        end_quiet_ms: 500_000,
        max_time_ms: 10_000_000,
        delay_scale_ms: 1000,
        crm_watchdog: true,
    };

    /// The `default` profile: 1 s daemon rounds, so every harness interval
    /// is a tenth of pve's; the CRM holds no watchdog (it acts only
    /// through committed writes, on the Raft leader).
    pub const DEFAULT: SimTiming = SimTiming {
        name: "default",
        profile: TimingProfile::DEFAULT,
        step_ms: 100,
        looptime_ms: 2000,
        end_quiet_ms: 50_000,
        max_time_ms: 1_000_000,
        delay_scale_ms: 100,
        crm_watchdog: false,
    };

    /// The `fast` profile: 0.5 s daemon rounds, a twentieth of pve's.
    pub const FAST: SimTiming = SimTiming {
        name: "fast",
        profile: TimingProfile::FAST,
        step_ms: 50,
        looptime_ms: 1000,
        end_quiet_ms: 25_000,
        max_time_ms: 500_000,
        delay_scale_ms: 50,
        crm_watchdog: false,
    };

    /// All simulator profiles.
    pub const ALL: [SimTiming; 3] = [Self::PVE, Self::DEFAULT, Self::FAST];

    /// The simulator timing of a profile name.
    pub fn by_name(name: &str) -> Option<SimTiming> {
        Self::ALL.into_iter().find(|t| t.name == name)
    }

    /// Offline time before fencing (ms).
    pub fn fence_delay_ms(&self) -> u64 {
        lease::millis(self.profile.fence_delay)
    }

    /// A watchdog fires this long after its last feed: the mux notices
    /// the missed deadline, then the device runs out (ms).
    pub fn watchdog_timeout_ms(&self) -> u64 {
        lease::millis(self.profile.reset_after_last_feed())
    }

    /// The mux's per-client timeout (ms).
    pub fn mux_client_timeout_ms(&self) -> u64 {
        lease::millis(self.profile.mux_client_timeout)
    }

    /// The watchdog device timeout (ms).
    pub fn device_timeout_ms(&self) -> u64 {
        lease::millis(self.profile.device_timeout)
    }

    /// The lease ttl (ms).
    pub fn lease_ttl_ms(&self) -> u64 {
        lease::millis(self.profile.lease_ttl)
    }

    /// How often the lease task re-reads the replica without a wish, and
    /// the renewal interval (ms).
    pub fn renew_interval_ms(&self) -> u64 {
        lease::millis(self.profile.lease_renew_interval)
    }

    /// How often a node feeds its watchdog-mux client (ms).
    pub fn feed_interval_ms(&self) -> u64 {
        lease::millis(self.profile.feed_interval).max(1)
    }

    /// Raft heartbeat interval (ms).
    pub fn heartbeat_ms(&self) -> u64 {
        lease::millis(self.profile.raft_heartbeat).max(1)
    }

    /// The daemon round interval of the modelled profile; only used in log
    /// texts that quote a duration in rounds.
    pub fn nominal_round_ms(&self) -> u64 {
        lease::millis(self.profile.round_interval)
    }

    /// How long a node must have been able to reach the quorum before a
    /// watchdog reset counts as a liveness violation: a whole lease ttl
    /// plus two rounds, so a reset that follows from an earlier outage
    /// (a lease that lapsed, a fence decision taken while the node was
    /// cut off) is never blamed on the time after it came back.
    pub fn liveness_window_ms(&self) -> u64 {
        self.lease_ttl_ms() + 2 * self.looptime_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sim_profile_uses_a_valid_timing_profile() {
        for t in SimTiming::ALL {
            t.profile.check().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(SimTiming::by_name(t.name), Some(t));
        }
        assert!(SimTiming::by_name("slow").is_none());
    }
}
