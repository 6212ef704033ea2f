//! What runs between daemon iterations, each at its exact time: every
//! node's lease task (renewals every `lease_renew_interval`, attempts
//! timed out after `renew_attempt_timeout`) and watchdog thread (feeding
//! every `feed_interval`, as the lease core says), watchdog resets, lease
//! messages, Raft elections and heartbeats.

use lease::Mono;

use crate::domain::NodeName;

use super::events::{Event, LeaseReply};
use super::mux::{MuxFailure, WatchdogOwner};
use super::world::World;

/// How long the watchdog thread waits before it probes a watchdog-mux
/// that did not answer (the daemon's `RETRY_AFTER`).
pub const WATCHDOG_RETRY_MS: u64 = 2000;

impl World {
    /// Runs every event due at or before `until`, each at its own time,
    /// then sets the clock to `until` (never backwards).
    pub fn advance_to(&mut self, until: u64) {
        let resume = self.now.max(until);
        while let Some((at, event)) = self.cluster.events.pop_due(until) {
            self.now = at;
            self.handle_event(at, event);
            self.net_changed();
        }
        self.now = resume;
    }

    fn handle_event(&mut self, at: u64, event: Event) {
        match event {
            Event::LeaseTask { node, epoch } => {
                let due = self.nodes.get_mut(&node).is_some_and(|n| {
                    let due = n.timer_epoch == epoch && n.agent.task_at == Some(at);
                    if due {
                        n.agent.task_at = None;
                    }
                    due
                });
                if due {
                    self.lease_task(&node, at);
                }
            }
            Event::Feed { node, epoch } => {
                let live = self
                    .nodes
                    .get(&node)
                    .is_some_and(|n| n.timer_epoch == epoch && n.running_daemon());
                if live {
                    self.watchdog_task(&node, at);
                    self.cluster.events.push(
                        at + self.timing.feed_interval_ms(),
                        Event::Feed { node, epoch },
                    );
                }
            }
            Event::WatchdogCheck { node } => self.watchdog_check(&node, at),
            Event::LeaseArrive { at: target, msg } => {
                let topo = self.topology();
                let version = self.manager_status_version;
                if let Some(reply) = self.cluster.arrive(&topo, at, &target, msg, version) {
                    self.deliver_reply(reply, at);
                }
            }
            Event::LeaseCommit { leader, term, msg } => {
                let topo = self.topology();
                let version = self.manager_status_version;
                if let Some(reply) = self.cluster.commit(&topo, at, &leader, term, msg, version) {
                    self.deliver_reply(reply, at);
                }
            }
            Event::LeaseReply(reply) => self.deliver_reply(reply, at),
            Event::Election { round } => {
                let topo = self.topology();
                if let Some(line) = self.cluster.on_election(&topo, at, round, true) {
                    self.log_line("info", at, "raft", &line);
                }
            }
            Event::TermStart { term } => self.cluster.start_term(at, term),
            Event::Heartbeat { to, leader, term } => {
                let topo = self.topology();
                self.cluster.on_heartbeat(&topo, &to, &leader, term);
            }
        }
    }

    /// Raft, and every node's standing, after anything changed (nothing
    /// to do when nothing they depend on did).
    pub fn net_changed(&mut self) {
        let key = self.net_key();
        if key.is_some() && key == self.refreshed_for {
            return;
        }
        let topo = self.topology();
        let now = self.now;
        for line in self.cluster.refresh_raft(&topo, now) {
            self.log_line("info", now, "raft", &line);
        }
        self.refresh_standing();
        self.refreshed_for = self.net_key();
    }

    /// An answer reaches its node: the lease core takes it if it is the
    /// one its request in flight waits for.
    fn deliver_reply(&mut self, reply: LeaseReply, at: u64) {
        let node = reply.to.clone();
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        if !n.running_daemon() {
            return;
        }
        let (accepted, event) = n.agent.accept(at, reply);
        if !accepted {
            return;
        }
        if let Some(ev) = &event {
            self.log_lease_event(&node, at, ev);
        }
        // The daemon wakes its watchdog thread and LRM on every change.
        self.watchdog_task(&node, at);
        self.schedule_lease_after_poll(&node, at);
        self.check_drain(&node, at);
    }

    /// One run of `node`'s lease task: what the lease core wants to send
    /// goes out now.
    pub(crate) fn lease_task(&mut self, node: &NodeName, time: u64) {
        if !self.nodes.get(node).is_some_and(|n| n.running_daemon()) {
            return;
        }
        let topo = self.topology();
        let fencing = self.manager_status.fencing(node);
        let version = self.manager_status_version;
        let event = {
            let World { cluster, nodes, .. } = self;
            let Some(n) = nodes.get_mut(node) else {
                return;
            };
            cluster.lease_poll(&topo, node, &mut n.agent, time, fencing, version)
        };
        if let Some(ev) = &event {
            self.log_lease_event(node, time, ev);
            self.watchdog_task(node, time);
        }
        self.schedule_lease_after_poll(node, time);
        self.check_drain(node, time);
    }

    /// Schedules `node`'s lease task at `at` (unless it is due earlier).
    pub(crate) fn schedule_lease_task(&mut self, node: &NodeName, at: u64) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.running_daemon() || n.agent.task_at.is_some_and(|t| t <= at) {
            return;
        }
        n.agent.task_at = Some(at);
        let epoch = n.timer_epoch;
        self.cluster.events.push(
            at,
            Event::LeaseTask {
                node: node.clone(),
                epoch,
            },
        );
    }

    /// After a poll: the lease task wakes when the lease core has
    /// something to do, and at least every renew interval to re-read the
    /// replica (as the daemon's task).
    pub(crate) fn schedule_lease_after_poll(&mut self, node: &NodeName, time: u64) {
        let renew = self.timing.renew_interval_ms();
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        let next = n.agent.lease.next_wakeup(Mono(time)).0;
        let at = if next > time {
            next.min(time + renew)
        } else {
            time + renew
        };
        self.schedule_lease_task(node, at);
    }

    /// The node's watchdog thread: arms, feeds or releases its client as
    /// the lease core says, probes a watchdog-mux that did not answer, and
    /// stops renewals while it does not.
    pub(crate) fn watchdog_task(&mut self, node: &NodeName, time: u64) {
        let mux_timeout = self.timing.mux_client_timeout_ms();
        let mut wake_lease = false;
        {
            let Some(n) = self.nodes.get_mut(node) else {
                return;
            };
            if !n.running_daemon() {
                return;
            }
            let armed = n.mux.armed(WatchdogOwner::Lrm);
            let probe_due = n.agent.lease.watchdog_failed()
                && n.agent.watchdog_wanted
                && !armed
                && n.agent.probe_at.is_none_or(|p| time >= p);
            if probe_due {
                if n.mux.answers() {
                    n.agent.lease.set_watchdog_failed(false);
                    n.agent.probe_at = None;
                    wake_lease = true;
                } else {
                    n.agent.probe_at = Some(time + WATCHDOG_RETRY_MS);
                }
            }
            let action = n
                .agent
                .lease
                .watchdog_action(Mono(time), n.agent.watchdog_wanted, armed);
            let failed = match action {
                lease::WatchdogAction::Arm => n.mux.arm(WatchdogOwner::Lrm, time).is_err(),
                lease::WatchdogAction::Feed => {
                    let bad = n.mux.feed(WatchdogOwner::Lrm, time, mux_timeout).is_err();
                    if bad {
                        // The client is broken: dropped (uncleanly).
                        n.mux.disconnect(WatchdogOwner::Lrm, time, mux_timeout);
                    }
                    bad
                }
                lease::WatchdogAction::Release => {
                    if n.mux
                        .release(WatchdogOwner::Lrm, time, mux_timeout)
                        .is_err()
                    {
                        n.mux.disconnect(WatchdogOwner::Lrm, time, mux_timeout);
                    }
                    false
                }
                lease::WatchdogAction::Nothing => false,
            };
            if failed {
                n.agent.lease.set_watchdog_failed(true);
                n.agent.probe_at = Some(time + WATCHDOG_RETRY_MS);
            }
            // The lease core gates a take-back on an armed watchdog.
            let now_armed = n.mux.armed(WatchdogOwner::Lrm);
            n.agent.lease.set_watchdog_armed(now_armed);
            if now_armed && !armed {
                wake_lease = true;
            }
            // A problem with no wish to arm clears itself.
            if !n.agent.watchdog_wanted
                && !n.mux.armed(WatchdogOwner::Lrm)
                && n.agent.lease.watchdog_failed()
            {
                n.agent.lease.set_watchdog_failed(false);
                n.agent.probe_at = None;
                wake_lease = true;
            }
        }
        if wake_lease {
            self.schedule_lease_task(node, time);
        }
        self.schedule_watchdog_check(node);
    }

    /// Makes sure a watchdog check is pending for the next possible
    /// reset of `node`.
    pub(crate) fn schedule_watchdog_check(&mut self, node: &NodeName) {
        let (mux_t, dev_t) = (
            self.timing.mux_client_timeout_ms(),
            self.timing.device_timeout_ms(),
        );
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let Some((at, _)) = n.mux.reset_at(mux_t, dev_t) else {
            return;
        };
        if n.watchdog_check_at.is_some_and(|c| c <= at) {
            return;
        }
        n.watchdog_check_at = Some(at);
        self.cluster
            .events
            .push(at, Event::WatchdogCheck { node: node.clone() });
    }

    /// The watchdog device of `node` runs out if nothing fed the mux in
    /// time: the node is powered off.
    fn watchdog_check(&mut self, node: &NodeName, at: u64) {
        let (mux_t, dev_t) = (
            self.timing.mux_client_timeout_ms(),
            self.timing.device_timeout_ms(),
        );
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.watchdog_check_at != Some(at) {
            return;
        }
        n.watchdog_check_at = None;
        if !n.power {
            return;
        }
        match n.mux.reset_at(mux_t, dev_t) {
            Some((reset, why)) if reset <= at => {
                self.check_liveness_at_reset(node, at, why);
                self.power(node, false, "watchdog");
                self.hw_log(
                    "hardware",
                    &format!("server '{node}' stopped by poweroff (watchdog)"),
                );
            }
            Some(_) => self.schedule_watchdog_check(node),
            None => {}
        }
    }

    /// Starts a node's timers (daemon start, resume).
    pub(crate) fn start_timers(&mut self, node: &NodeName) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        n.timer_epoch += 1;
        n.agent.task_at = None;
        let epoch = n.timer_epoch;
        self.cluster.events.push(
            now,
            Event::Feed {
                node: node.clone(),
                epoch,
            },
        );
        self.schedule_lease_task(node, now);
    }

    /// Stops a node's timers (pause, daemon stop, power-off).
    pub(crate) fn stop_timers(&mut self, node: &NodeName) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.timer_epoch += 1;
            n.agent.task_at = None;
        }
    }

    /// Whether `why` was a CRM watchdog (pve) that starved while CRM
    /// rounds were skipped: the CRM daemon was not running its loop.
    pub(crate) fn crm_skip_excuses(&self, why: MuxFailure, at: u64) -> bool {
        let crm = matches!(
            why,
            MuxFailure::Starved(WatchdogOwner::Crm) | MuxFailure::Disconnected(WatchdogOwner::Crm)
        );
        let window = self.timing.watchdog_timeout_ms();
        crm && self
            .crm_skipped_at
            .is_some_and(|s| at.saturating_sub(s) <= window)
    }
}
