//! The node-side lease (design.md section 5): when to send what, and
//! whether the node may act and feed its watchdog.
//!
//! A shell drives it: it sets the [`LeaseIntent`] the LRM decided, calls
//! [`NodeLease::poll`] to get the request to send now (at most one is in
//! flight), sends it to the current leader with a per-attempt timeout of
//! [`TimingProfile::renew_attempt_timeout`], and reports the answer with
//! [`NodeLease::on_reply`]. A separate timer asks [`NodeLease::may_feed`]
//! before every watchdog keepalive. Time is always passed in.
//!
//! The rules:
//! - After a grant acknowledged for a request sent at `t_sent`, the node
//!   may act and feed until `t_sent + feed_window`, never longer.
//! - A lost lock (`Abandon`) is neither renewed nor fed: the watchdog stays
//!   armed and the node resets, unless it gets the lease back first.
//! - A watchdog that does not answer stops renewals: the node cannot be
//!   protected, so the cluster must be able to take its lease over.
//! - A lease held by an earlier run of this node (or by a fencing hold of
//!   the CRM) is never renewed or re-acquired under a new sequence: it is
//!   taken over only once the leader judges it expired, and only while the
//!   CRM is not fencing this node, checked against the manager status the
//!   decision was based on.
//! - A lease this node left *unguarded* (its services kept running without
//!   protection) is taken back only once the watchdog is armed (when the
//!   shell reports its watchdog, [`NodeLease::set_watchdog_armed`]): the
//!   take-back turns the record into a held lease whose expiry the CRM
//!   takes as proof that those services stopped, so the watchdog must
//!   protect them from the moment it may commit, answered or not. Until the
//!   answer comes, the armed watchdog is fed no longer than one feed window
//!   after the first take-back was sent, and never released while a grant
//!   may be outstanding.
//! - A grant to this run that the node missed (the answer was lost or came
//!   after it gave up) is adopted as soon as the replica shows it, valid
//!   from the earliest time the request can have been sent.

use std::time::Duration;

use crate::command::{Expected, LeaseCommand, LeaseMode, LeaseOutcome, LeaseRecord};
use crate::timing::TimingProfile;
use crate::Mono;

/// What the LRM wants of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseIntent {
    /// Acquire it if needed and keep renewing it.
    Hold,
    /// Release it (if held). `leave_unguarded`: services keep running
    /// without protection (LRM restart with frozen services, disarm).
    Release {
        /// Services keep running unprotected.
        leave_unguarded: bool,
    },
    /// Lost lock: neither renew nor feed, do not release. The armed
    /// watchdog resets the node unless the lease is regained first.
    Abandon,
}

/// The node's view of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeLeaseState {
    /// Not held by this run.
    Free,
    /// Held by this run at `seq`; the node may act until `valid_until`.
    Held {
        /// The sequence (fencing token) of the last grant.
        seq: u64,
        /// End of the feed window of the last acknowledged grant.
        valid_until: Mono,
    },
}

/// What the node reads from its local replica before deciding.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaView<'a> {
    /// The lease record as the replica has it.
    pub record: Option<&'a LeaseRecord>,
    /// The CRM has this node (or one of its services) in `fence`.
    pub crm_fencing_me: bool,
    /// Version of the manager status the previous field was read from.
    pub manager_status_version: u64,
}

/// A request for the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The command to commit.
    pub command: LeaseCommand,
    /// Commit only if the manager status still has this version (the
    /// take-back of a lease of an earlier run checks that the CRM did not
    /// start fencing the node meanwhile).
    pub manager_status_guard: Option<u64>,
}

/// Why a request did not get an answer from the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFailure {
    /// No answer within the attempt timeout (it may still commit later).
    Timeout,
    /// No leader, transport error, or the leader refused to propose (for
    /// instance a take-over of a lease that has not expired yet, or a
    /// manager-status guard that no longer holds).
    Unavailable(String),
}

/// Something a shell may want to log or react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The lease was taken (not a renewal).
    Acquired {
        /// The fencing token.
        seq: u64,
    },
    /// The leader says this run no longer holds the lease.
    Lost {
        /// The lease as it is now.
        current: Option<LeaseRecord>,
    },
    /// Released as asked.
    Released,
}

/// What to do with the node's watchdog-mux client now
/// ([`NodeLease::watchdog_action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    /// Connect (arm) and feed: the LRM wants it and the lease is valid.
    Arm,
    /// Feed the armed client.
    Feed,
    /// Close it cleanly (magic close): not wanted, and the lease is no
    /// longer held, so nothing it protected can outlive a lease.
    Release,
    /// Nothing: wait for the lease, or starve an armed client whose lease
    /// is not valid (it then resets the node).
    Nothing,
}

/// The watchdog-related answer of [`NodeLease::may_feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedDecision {
    /// Feed the watchdog now.
    Feed,
    /// Do not feed: the lease is not valid (or abandoned), so an armed
    /// watchdog must run out.
    Starve,
}

#[derive(Debug, Clone)]
struct InFlight {
    t_sent: Mono,
    command: LeaseCommand,
}

/// The node side of one agent lease.
#[derive(Debug, Clone)]
pub struct NodeLease {
    name: String,
    holder: String,
    incarnation: u64,
    ttl_ms: u64,
    window: Duration,
    renew_interval: Duration,
    attempt_timeout: Duration,
    retry_backoff: Duration,
    state: NodeLeaseState,
    intent: LeaseIntent,
    in_flight: Option<InFlight>,
    last_sent: Option<Mono>,
    last_failed: bool,
    /// Send time of the oldest request of this run that got no answer
    /// since the last grant: a late commit of it is adopted with this
    /// (earliest possible) send time.
    oldest_unanswered: Option<Mono>,
    watchdog_failed: bool,
    /// When the replica last declined a wish to hold the lease.
    declined_at: Option<Mono>,
    /// What the shell reports of its watchdog client: `None` until it
    /// reports (the take-back is then not gated), else whether it is armed.
    watchdog_armed: Option<bool>,
    /// The replica showed this holder's unguarded record while the lease
    /// was free and wanted: a take-back of services running unprotected.
    taking_back: bool,
}

impl NodeLease {
    /// The lease `name` of `holder` (run `incarnation`), timed by `timing`.
    /// A profile without a feed window (refused by [`TimingProfile::check`]
    /// anyway) gives a lease that is never valid: safe, and useless.
    pub fn new(name: &str, holder: &str, incarnation: u64, timing: &TimingProfile) -> Self {
        let window = timing.feed_window().unwrap_or(Duration::ZERO);
        NodeLease {
            name: name.to_string(),
            holder: holder.to_string(),
            incarnation,
            ttl_ms: crate::millis(timing.lease_ttl),
            window,
            renew_interval: timing.lease_renew_interval,
            attempt_timeout: timing.renew_attempt_timeout,
            retry_backoff: (timing.lease_renew_interval / 5).max(Duration::from_millis(1)),
            state: NodeLeaseState::Free,
            intent: LeaseIntent::Release {
                leave_unguarded: false,
            },
            in_flight: None,
            last_sent: None,
            last_failed: false,
            oldest_unanswered: None,
            watchdog_failed: false,
            declined_at: None,
            watchdog_armed: None,
            taking_back: false,
        }
    }

    /// The lease name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// This run's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The current state.
    pub fn state(&self) -> NodeLeaseState {
        self.state
    }

    /// The current intent.
    pub fn intent(&self) -> LeaseIntent {
        self.intent
    }

    /// Sets what the LRM wants.
    pub fn set_intent(&mut self, intent: LeaseIntent) {
        if intent != self.intent {
            // A new wish is acted on at once, not one interval later.
            self.last_sent = None;
            self.declined_at = None;
        }
        self.intent = intent;
    }

    /// The watchdog stopped answering (or came back). While it does not
    /// answer the node renews nothing: it cannot be protected, so the
    /// cluster must be able to take its lease over one ttl later.
    pub fn set_watchdog_failed(&mut self, failed: bool) {
        if self.watchdog_failed != failed {
            self.declined_at = None;
        }
        self.watchdog_failed = failed;
    }

    /// The shell's watchdog client is connected (armed) or not. A shell
    /// that reports this gets the take-back of an unguarded lease gated on
    /// an armed watchdog (see the module documentation); every shell
    /// should report it after each arm, release or drop of its client.
    pub fn set_watchdog_armed(&mut self, armed: bool) {
        if self.watchdog_armed != Some(armed) {
            // What a declined take-back waited for may be there now.
            self.declined_at = None;
        }
        self.watchdog_armed = Some(armed);
    }

    /// Whether a take-back of this holder's unguarded lease is under way
    /// (the watchdog is armed for it before it is sent).
    pub fn taking_back(&self) -> bool {
        self.taking_back
            && self.intent == LeaseIntent::Hold
            && self.state == NodeLeaseState::Free
            && !self.watchdog_failed
    }

    /// Whether an armed watchdog may be fed for a take-back without a
    /// valid lease: until it was sent, and then for one feed window from
    /// the first unanswered request (its grant, if it commits, is valid no
    /// longer).
    fn takeback_feedable(&self, now: Mono) -> bool {
        self.taking_back()
            && self
                .oldest_unanswered
                .is_none_or(|sent| now < sent.after(self.window))
    }

    /// Whether the watchdog is known broken.
    pub fn watchdog_failed(&self) -> bool {
        self.watchdog_failed
    }

    /// Whether this run holds the lease and may act on its services now.
    pub fn valid(&self, now: Mono) -> bool {
        match self.state {
            NodeLeaseState::Held { valid_until, .. } => {
                now < valid_until && self.intent != LeaseIntent::Abandon && !self.watchdog_failed
            }
            NodeLeaseState::Free => false,
        }
    }

    /// The fencing token (the grant's sequence) while the lease is valid.
    pub fn fencing_token(&self, now: Mono) -> Option<u64> {
        match self.state {
            NodeLeaseState::Held { seq, .. } if self.valid(now) => Some(seq),
            _ => None,
        }
    }

    /// Whether an armed watchdog may be fed now.
    pub fn may_feed(&self, now: Mono) -> FeedDecision {
        if self.valid(now) {
            FeedDecision::Feed
        } else {
            FeedDecision::Starve
        }
    }

    /// What to do with the watchdog now. `wanted`: the LRM wants it open;
    /// `armed`: the client is connected. An unwanted client is closed only
    /// once the lease is released: services left running when the lease
    /// goes keep their protection until the release committed, so the
    /// lease can never expire under an unprotected service.
    ///
    /// A take-back of this holder's unguarded lease arms the watchdog before
    /// it is sent, and feeds it only within the feed window of the first
    /// unanswered request; a client is never released while a grant to
    /// this run may be outstanding (an unanswered request).
    pub fn watchdog_action(&self, now: Mono, wanted: bool, armed: bool) -> WatchdogAction {
        let valid = self.valid(now);
        match (armed, wanted) {
            (false, true) if valid || self.taking_back() => WatchdogAction::Arm,
            (false, _) => WatchdogAction::Nothing,
            (true, false)
                if self.state == NodeLeaseState::Free && self.oldest_unanswered.is_none() =>
            {
                WatchdogAction::Release
            }
            (true, _) if valid || self.takeback_feedable(now) => WatchdogAction::Feed,
            (true, _) => WatchdogAction::Nothing,
        }
    }

    /// Whether a request is waiting for its answer.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When [`NodeLease::poll`] has something to do next (a renewal due, a
    /// retry, an attempt timing out).
    pub fn next_wakeup(&self, now: Mono) -> Mono {
        if let Some(f) = &self.in_flight {
            return f.t_sent.after(self.attempt_timeout);
        }
        match self.intent {
            LeaseIntent::Abandon => Mono(u64::MAX),
            LeaseIntent::Release { .. } => match self.state {
                // Nothing to release: nothing to do until the intent
                // changes.
                NodeLeaseState::Free => Mono(u64::MAX),
                NodeLeaseState::Held { .. } => match self.last_sent {
                    Some(t) if self.last_failed => t.after(self.retry_backoff),
                    _ => now,
                },
            },
            LeaseIntent::Hold if self.watchdog_failed => Mono(u64::MAX),
            LeaseIntent::Hold => {
                let due = match self.last_sent {
                    None => now,
                    Some(t) => t.after(if self.last_failed {
                        self.retry_backoff
                    } else {
                        self.renew_interval
                    }),
                };
                // A wish the replica declined (the CRM is fencing this
                // node, the take-back waits for the watchdog, the lease is
                // someone else's): looked at again after the backoff.
                match self.declined_at {
                    Some(t) => due.max(t.after(self.retry_backoff)),
                    None => due,
                }
            }
        }
    }

    /// The request to send now, if any; the shell sends it to the current
    /// leader and reports the answer with [`NodeLease::on_reply`]. A
    /// request still in flight past its attempt timeout counts as failed.
    pub fn poll(&mut self, now: Mono, view: &ReplicaView<'_>) -> Option<LeaseRequest> {
        if let Some(f) = &self.in_flight {
            if now < f.t_sent.after(self.attempt_timeout) {
                return None;
            }
            self.on_reply(now, Err(RequestFailure::Timeout));
        }
        if self.state == NodeLeaseState::Free {
            if let Some(r) = view.record.filter(|r| self.is_mine(r)) {
                // A grant to this run whose answer we missed.
                self.adopt(r.clone());
            }
        }
        self.taking_back = self.intent == LeaseIntent::Hold
            && self.state == NodeLeaseState::Free
            && view
                .record
                .is_some_and(|r| r.mode == LeaseMode::Unguarded && r.holder == self.holder);
        if now < self.next_wakeup(now) {
            return None;
        }
        let request = match self.intent {
            LeaseIntent::Abandon => None,
            LeaseIntent::Release { leave_unguarded } => match self.state {
                NodeLeaseState::Held { seq, .. } => Some(LeaseRequest {
                    command: LeaseCommand::Release {
                        name: self.name.clone(),
                        holder: self.holder.clone(),
                        seq,
                        leave_unguarded,
                    },
                    manager_status_guard: None,
                }),
                NodeLeaseState::Free => None,
            },
            LeaseIntent::Hold => {
                let request = self.hold_request(view);
                self.declined_at = request.is_none().then_some(now);
                request
            }
        };
        if let Some(r) = &request {
            self.in_flight = Some(InFlight {
                t_sent: now,
                command: r.command.clone(),
            });
            self.last_sent = Some(now);
            if self.oldest_unanswered.is_none() {
                self.oldest_unanswered = Some(now);
            }
        }
        request
    }

    fn hold_request(&self, view: &ReplicaView<'_>) -> Option<LeaseRequest> {
        let plain = |command| {
            Some(LeaseRequest {
                command,
                manager_status_guard: None,
            })
        };
        if let NodeLeaseState::Held { seq, .. } = self.state {
            return plain(LeaseCommand::Renew {
                name: self.name.clone(),
                holder: self.holder.clone(),
                seq,
            });
        }
        match view.record {
            None => plain(self.acquire()),
            // Services of this holder run unprotected: take the lease back
            // only once the watchdog protects them.
            Some(r) if r.mode == LeaseMode::Unguarded && r.holder == self.holder => {
                if self.watchdog_armed == Some(false) {
                    None
                } else {
                    plain(self.acquire())
                }
            }
            // Unguarded by someone else: not ours to take.
            Some(r) if r.mode == LeaseMode::Unguarded => None,
            // Held by an earlier run of this node or by a fencing hold of
            // the CRM: take it back once it expired, unless the CRM is
            // fencing this node (then it takes the lease itself).
            Some(_) if view.crm_fencing_me => None,
            Some(r) => Some(LeaseRequest {
                command: LeaseCommand::Takeover {
                    name: self.name.clone(),
                    new_holder: self.holder.clone(),
                    new_incarnation: self.incarnation,
                    expected: Some(Expected {
                        holder: r.holder.clone(),
                        seq: r.seq,
                    }),
                    ttl_ms: self.ttl_ms,
                },
                manager_status_guard: Some(view.manager_status_version),
            }),
        }
    }

    fn acquire(&self) -> LeaseCommand {
        LeaseCommand::Acquire {
            name: self.name.clone(),
            holder: self.holder.clone(),
            incarnation: self.incarnation,
            ttl_ms: self.ttl_ms,
        }
    }

    fn is_mine(&self, r: &LeaseRecord) -> bool {
        r.mode == LeaseMode::Held && r.holder == self.holder && r.incarnation == self.incarnation
    }

    /// Reports the answer to the request in flight. Answers that come
    /// without a request in flight (after a timeout) are ignored: the next
    /// request learns the outcome from the state machine.
    pub fn on_reply(
        &mut self,
        _now: Mono,
        result: Result<LeaseOutcome, RequestFailure>,
    ) -> Option<LeaseEvent> {
        let flight = self.in_flight.take()?;
        let was_held = matches!(self.state, NodeLeaseState::Held { .. });
        match result {
            Err(_) => {
                self.last_failed = true;
                None
            }
            Ok(LeaseOutcome::Granted(r)) => {
                self.last_failed = false;
                self.oldest_unanswered = None;
                self.state = NodeLeaseState::Held {
                    seq: r.seq,
                    valid_until: flight.t_sent.after(self.window),
                };
                (!was_held).then_some(LeaseEvent::Acquired { seq: r.seq })
            }
            Ok(LeaseOutcome::Released(_)) => {
                self.last_failed = false;
                self.oldest_unanswered = None;
                self.state = NodeLeaseState::Free;
                Some(LeaseEvent::Released)
            }
            Ok(
                LeaseOutcome::Busy { current }
                | LeaseOutcome::TakeoverRejected {
                    current: Some(current),
                },
            ) if self.is_mine(&current) => self.adopt(current),
            // Our own earlier renewal committed after we stopped waiting
            // (the sequence moved on): hold what is there; a pending
            // release is sent again with it on the next poll.
            Ok(LeaseOutcome::NotHolder {
                current: Some(current),
            }) if self.is_mine(&current) => self.adopt(current),
            Ok(LeaseOutcome::Busy { .. } | LeaseOutcome::TakeoverRejected { .. }) => {
                self.last_failed = true;
                None
            }
            Ok(LeaseOutcome::NotHolder { current }) => {
                self.last_failed = true;
                self.oldest_unanswered = None;
                let released = matches!(flight.command, LeaseCommand::Release { .. });
                self.state = NodeLeaseState::Free;
                if released {
                    Some(LeaseEvent::Released)
                } else if was_held {
                    Some(LeaseEvent::Lost { current })
                } else {
                    None
                }
            }
        }
    }

    /// A request of this run that we stopped waiting for committed after
    /// all: take its grant, valid from the earliest time it can have been
    /// sent.
    fn adopt(&mut self, current: LeaseRecord) -> Option<LeaseEvent> {
        let was_held = matches!(self.state, NodeLeaseState::Held { .. });
        let sent = self.oldest_unanswered.unwrap_or(Mono(0));
        self.oldest_unanswered = None;
        self.last_failed = false;
        self.state = NodeLeaseState::Held {
            seq: current.seq,
            valid_until: sent.after(self.window),
        };
        // Renew right away: the adopted window may be short.
        self.last_sent = None;
        (!was_held).then_some(LeaseEvent::Acquired { seq: current.seq })
    }
}

#[cfg(test)]
mod tests;
