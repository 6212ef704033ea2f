//! One node's watchdog-mux and watchdog device, as `watchdog/` implements
//! them (design.md section 6):
//!
//! - each armed client must be fed within `mux_client_timeout`; once one
//!   misses its deadline, disconnects uncleanly or the mux restarts with a
//!   client armed, the mux never feeds the device again and the device
//!   resets the node `device_timeout` later ("failed");
//! - a clean release (magic close) removes a client;
//! - with no armed client the device is quiet: a restart or a hang of the
//!   mux changes nothing;
//! - a hung mux answers nobody (arming, feeding and releasing fail) and,
//!   with a client armed, stops feeding the device at once.

use std::collections::BTreeMap;

/// Which daemon owns a watchdog-mux client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchdogOwner {
    /// The CRM (pve profile: the master holds one).
    Crm,
    /// The LRM (through the lease core).
    Lrm,
}

/// Why the mux stopped feeding the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxFailure {
    /// A client missed its deadline (it was not fed in time).
    Starved(WatchdogOwner),
    /// A client went away without the magic close (its daemon exited or
    /// dropped it).
    Disconnected(WatchdogOwner),
    /// The mux was restarted with a client armed.
    Restarted,
    /// The mux hung with a client armed.
    Hung,
}

impl MuxFailure {
    /// Whether an operator fault (mux restart or hang) caused it, rather
    /// than the node's own daemons.
    pub fn is_mux_fault(self) -> bool {
        matches!(self, MuxFailure::Restarted | MuxFailure::Hung)
    }
}

/// A mux call that did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxError {
    /// The mux does not answer (hung).
    NoAnswer,
    /// The client is not connected (never armed, or dropped by a restart).
    NotConnected,
}

/// The watchdog-mux and device of one node.
#[derive(Debug, Clone, Default)]
pub struct Mux {
    /// Armed clients and their last feed (ms).
    clients: BTreeMap<WatchdogOwner, u64>,
    /// When the mux stopped feeding the device, and why.
    failed: Option<(u64, MuxFailure)>,
    /// The mux process is hung.
    hung: bool,
}

impl Mux {
    /// Whether the mux answers calls.
    pub fn answers(&self) -> bool {
        !self.hung
    }

    /// Whether the mux is hung.
    pub fn hung(&self) -> bool {
        self.hung
    }

    /// Whether `owner` has an armed client.
    pub fn armed(&self, owner: WatchdogOwner) -> bool {
        self.clients.contains_key(&owner)
    }

    /// Whether any client is armed.
    pub fn any_armed(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The explicit failure, if the mux stopped feeding the device.
    pub fn failure(&self) -> Option<(u64, MuxFailure)> {
        self.failed
    }

    fn fail(&mut self, at: u64, why: MuxFailure) {
        match self.failed {
            Some((t, _)) if t <= at => {}
            _ => self.failed = Some((at, why)),
        }
    }

    /// Notes every client whose deadline passed before `now`.
    fn notice_deadlines(&mut self, now: u64, mux_timeout: u64) {
        let missed: Vec<(WatchdogOwner, u64)> = self
            .clients
            .iter()
            .filter(|(_, last)| now > **last + mux_timeout)
            .map(|(o, last)| (*o, *last + mux_timeout))
            .collect();
        for (owner, deadline) in missed {
            self.fail(deadline, MuxFailure::Starved(owner));
        }
    }

    /// A request reaching the mux at `now`: a hung mux does not answer; a
    /// running one first notes the clients it already starved.
    fn answer(&mut self, now: u64, mux_timeout: u64) -> Result<(), MuxError> {
        if self.hung {
            return Err(MuxError::NoAnswer);
        }
        self.notice_deadlines(now, mux_timeout);
        Ok(())
    }

    /// Connects (arms) `owner`'s client at `now`.
    pub fn arm(&mut self, owner: WatchdogOwner, now: u64) -> Result<(), MuxError> {
        if self.hung {
            return Err(MuxError::NoAnswer);
        }
        self.clients.insert(owner, now);
        Ok(())
    }

    /// Feeds `owner`'s client at `now`. A client whose deadline already
    /// passed counts as failed: the feed comes too late.
    pub fn feed(
        &mut self,
        owner: WatchdogOwner,
        now: u64,
        mux_timeout: u64,
    ) -> Result<(), MuxError> {
        self.answer(now, mux_timeout)?;
        match self.clients.get_mut(&owner) {
            Some(last) => {
                *last = now;
                Ok(())
            }
            None => Err(MuxError::NotConnected),
        }
    }

    /// Releases `owner`'s client cleanly (magic close).
    pub fn release(
        &mut self,
        owner: WatchdogOwner,
        now: u64,
        mux_timeout: u64,
    ) -> Result<(), MuxError> {
        self.answer(now, mux_timeout)?;
        self.clients.remove(&owner);
        Ok(())
    }

    /// `owner`'s client goes away without the magic close (its daemon
    /// exited, or dropped a client it could not feed): the mux stops
    /// feeding the device, at once or at the client's earlier deadline.
    pub fn disconnect(&mut self, owner: WatchdogOwner, now: u64, mux_timeout: u64) {
        if let Some(last) = self.clients.remove(&owner) {
            self.fail(now.min(last + mux_timeout), MuxFailure::Disconnected(owner));
        }
    }

    /// The mux restarts: with a client armed the device is no longer fed
    /// (the node resets); without one nothing happens. Clients are dropped
    /// either way (the daemon's connection breaks).
    pub fn restart(&mut self, now: u64, mux_timeout: u64) {
        self.notice_deadlines(now, mux_timeout);
        if !self.clients.is_empty() {
            self.fail(now, MuxFailure::Restarted);
        }
        self.clients.clear();
        self.hung = false;
    }

    /// The mux hangs: with a client armed the device is no longer fed.
    pub fn hang(&mut self, now: u64, mux_timeout: u64) {
        self.notice_deadlines(now, mux_timeout);
        if !self.clients.is_empty() {
            self.fail(now, MuxFailure::Hung);
        }
        self.hung = true;
    }

    /// A hung mux runs again.
    pub fn resume(&mut self) {
        self.hung = false;
    }

    /// When the device resets the node, if it will (strictly after the
    /// device timeout since the mux stopped feeding it), and why.
    pub fn reset_at(&self, mux_timeout: u64, device_timeout: u64) -> Option<(u64, MuxFailure)> {
        let starve = self
            .clients
            .iter()
            .map(|(o, last)| (*last + mux_timeout, MuxFailure::Starved(*o)))
            .min_by_key(|(t, _)| *t);
        let first = match (self.failed, starve) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        first.map(|(t, why)| (t + device_timeout + 1, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUX: u64 = 60;
    const DEV: u64 = 10;

    #[test]
    fn a_fed_client_keeps_the_node_and_a_starved_one_resets_it() {
        let mut m = Mux::default();
        assert_eq!(m.reset_at(MUX, DEV), None, "quiet without clients");
        m.arm(WatchdogOwner::Lrm, 0).unwrap();
        assert_eq!(m.reset_at(MUX, DEV).map(|r| r.0), Some(71));
        m.feed(WatchdogOwner::Lrm, 60, MUX).unwrap();
        assert_eq!(m.reset_at(MUX, DEV).map(|r| r.0), Some(131));
        // Too late: the deadline (120) passed, the mux failed for good.
        m.feed(WatchdogOwner::Lrm, 121, MUX).unwrap();
        assert_eq!(
            m.reset_at(MUX, DEV),
            Some((131, MuxFailure::Starved(WatchdogOwner::Lrm)))
        );
        m.release(WatchdogOwner::Lrm, 122, MUX).unwrap();
        assert_eq!(m.reset_at(MUX, DEV).map(|r| r.0), Some(131), "no way back");
    }

    #[test]
    fn clean_release_ends_protection_and_unclean_disconnect_resets() {
        let mut m = Mux::default();
        m.arm(WatchdogOwner::Lrm, 0).unwrap();
        m.release(WatchdogOwner::Lrm, 5, MUX).unwrap();
        assert_eq!(m.reset_at(MUX, DEV), None);
        m.arm(WatchdogOwner::Lrm, 10).unwrap();
        m.disconnect(WatchdogOwner::Lrm, 20, MUX);
        assert_eq!(
            m.reset_at(MUX, DEV),
            Some((31, MuxFailure::Disconnected(WatchdogOwner::Lrm)))
        );
    }

    #[test]
    fn restart_and_hang_reset_only_an_armed_node() {
        let mut idle = Mux::default();
        idle.restart(5, MUX);
        idle.hang(6, MUX);
        assert_eq!(idle.reset_at(MUX, DEV), None);
        assert_eq!(idle.arm(WatchdogOwner::Lrm, 7), Err(MuxError::NoAnswer));
        idle.resume();
        assert!(idle.arm(WatchdogOwner::Lrm, 8).is_ok());

        let mut armed = Mux::default();
        armed.arm(WatchdogOwner::Lrm, 0).unwrap();
        armed.restart(30, MUX);
        assert_eq!(armed.reset_at(MUX, DEV), Some((41, MuxFailure::Restarted)));
        assert!(!armed.any_armed(), "the daemon's client is gone");
        assert_eq!(
            armed.feed(WatchdogOwner::Lrm, 31, MUX),
            Err(MuxError::NotConnected)
        );

        let mut hung = Mux::default();
        hung.arm(WatchdogOwner::Crm, 0).unwrap();
        hung.hang(20, MUX);
        assert_eq!(hung.reset_at(MUX, DEV), Some((31, MuxFailure::Hung)));
        assert!(MuxFailure::Hung.is_mux_fault());
        assert_eq!(
            hung.feed(WatchdogOwner::Crm, 21, MUX),
            Err(MuxError::NoAnswer)
        );
    }
}
