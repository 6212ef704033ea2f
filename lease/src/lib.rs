//! The lease core of ha-manager (design.md section 5), sans-IO.
//!
//! Every decision about *when a node may act* on its services lives here,
//! so that the daemon and the simulator run the same code:
//!
//! - [`timing`]: the one table of timing profiles and the one rule that
//!   ties the lease ttl to the watchdog and to leader loss;
//! - [`table`]: the leader-side lease table kept in the replicated state
//!   machine (grant, renew, release, take-over with expected holder and
//!   sequence, expiry judged on the leader, extend on leader change);
//! - [`node`]: the node-side lease (`t_sent`, valid-until, "renew now?",
//!   "feed now?", lost lock = neither renewed nor fed).
//!
//! Nothing here reads a clock: time is a [`Mono`] value passed in by the
//! caller (the daemon's monotonic clock, or the simulator's virtual time).

pub mod command;
pub mod node;
pub mod table;
pub mod timing;

pub use command::{Expected, LeaseCommand, LeaseMode, LeaseOutcome, LeaseRecord};
pub use node::{
    FeedDecision, LeaseEvent, LeaseIntent, LeaseRequest, NodeLease, NodeLeaseState, ReplicaView,
    RequestFailure, WatchdogAction,
};
pub use table::{LeaseTable, TakeoverRefusal};
pub use timing::{TimingError, TimingProfile};

use std::time::Duration;

/// A point in monotonic time, in milliseconds since an origin chosen by
/// the caller (process start in the daemon, 0 in the simulator). Only
/// differences between values of the same clock mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(pub u64);

impl Mono {
    /// `self + d`, saturating (an absurd ttl must never wrap around).
    pub fn after(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(millis(d)))
    }

    /// `self + ms`, saturating.
    pub fn after_ms(self, ms: u64) -> Mono {
        Mono(self.0.saturating_add(ms))
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Mono) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
