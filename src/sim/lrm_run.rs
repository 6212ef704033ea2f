//! The LRM in the simulator: one iteration of the real [`Lrm`] per node
//! and round, with the lease core behind its [`LockPort`] and the
//! simulated resources behind its [`Executor`](crate::lrm::Executor).
//!
//! When an LRM exits while its lease is still being released, the node
//! first lets the release commit and the watchdog close (as the daemon
//! does before it goes down), then carries on with what the exit was for.

use std::cell::Cell;

use lease::{LeaseEvent, LeaseIntent, Mono, NodeLeaseState, ReplicaView};

use crate::crm::agent_lease_name;
use crate::domain::NodeName;
use crate::lrm::{agent_lock, AgentLock, LockPort, Lrm, LrmAction, LrmStep, NodeShutdown};

use super::cluster::{AgentClient, Cluster};
use super::mux::WatchdogOwner;
use super::node::AfterDrain;
use super::raft::Topology;
use super::resources::{ResourceSim, SimExecutor};
use super::world::World;

/// The LRM's [`LockPort`] in the simulator: a take sets the intent and
/// polls the lease client at once (its request goes out now; with no
/// delay the answer is back before the LRM goes on).
struct SimLockPort<'a> {
    cluster: &'a mut Cluster,
    topo: &'a Topology,
    node: &'a NodeName,
    client: &'a mut AgentClient,
    now: u64,
    quorate: bool,
    fencing_me: bool,
    version: u64,
    mux_answers: bool,
    token: &'a Cell<bool>,
    events: Vec<LeaseEvent>,
}

impl LockPort for SimLockPort<'_> {
    fn take(&mut self) -> AgentLock {
        self.client.lease.set_intent(LeaseIntent::Hold);
        if let Some(ev) = self.cluster.lease_poll(
            self.topo,
            self.node,
            self.client,
            self.now,
            self.fencing_me,
            self.version,
        ) {
            self.events.push(ev);
        }
        let record = self.cluster.table.record(self.client.lease.name()).cloned();
        let view = ReplicaView {
            record: record.as_ref(),
            crm_fencing_me: self.fencing_me,
            manager_status_version: self.version,
        };
        let now = Mono(self.now);
        self.token
            .set(self.client.lease.fencing_token(now).is_some() && self.mux_answers);
        agent_lock(&self.client.lease, now, &view, self.quorate)
    }
}

impl World {
    /// Logs what the lease core reported.
    pub(crate) fn log_lease_event(&mut self, node: &NodeName, time: u64, event: &LeaseEvent) {
        if let LeaseEvent::Acquired { .. } = event {
            let name = agent_lease_name(node.as_str());
            self.log_line(
                "info",
                time,
                &format!("{node}/lrm"),
                &format!("got lock '{name}'"),
            );
        }
    }

    /// Runs one LRM iteration of `node` (if it has an LRM and its daemon
    /// is not hung). Returns true if the LRM exited.
    pub fn run_lrm(&mut self, node: &NodeName) -> bool {
        if self.nodes.get(node).is_none_or(|n| n.paused) {
            return false;
        }
        let Some(mut lrm) = self.nodes.get_mut(node).and_then(|n| n.lrm.take()) else {
            return false;
        };
        let time = self.now;
        if let Some(n) = self.nodes.get_mut(node) {
            n.lrm_time = time;
        }
        let source = format!("{node}/lrm");
        let (cfs_rw, cfs_update) = self
            .nodes
            .get(node)
            .map_or((true, true), |n| (n.cfs_rw, n.cfs_update));
        let topo = self.topology();
        let quorate = self.cluster.quorate(&topo, node);
        let now_label = self.fmt_time(time).trim().to_string();
        let fencing_me = self.manager_status.fencing(node);
        let version = self.manager_status_version;
        let Some((mut client, mux_answers)) = self
            .nodes
            .get(node)
            .map(|n| (n.agent.clone(), n.mux.answers()))
        else {
            return false;
        };
        let token = Cell::new(client.lease.fencing_token(Mono(time)).is_some() && mux_answers);
        let watchdog_problem = self.watchdog_problem(node);
        let (output, moves, lease_events) = {
            let World {
                nodes,
                services,
                guest_locks,
                fa_tries,
                violations,
                manager_status,
                cluster,
                ..
            } = self;
            let input = crate::lrm::LrmInput {
                now_ms: time,
                quorate,
                cluster_state_ok: cfs_update,
                cfs_rw_ok: cfs_rw,
                manager_status,
                resources: services,
                max_workers: 0,
                // Every round, as Proxmox's uid protocol re-runs `started`.
                monitor_interval_ms: 0,
                finished: Vec::new(),
                watchdog_problem,
            };
            let mut port = SimLockPort {
                cluster,
                topo: &topo,
                node,
                client: &mut client,
                now: time,
                quorate,
                fencing_me,
                version,
                mux_answers,
                token: &token,
                events: Vec::new(),
            };
            let mut exec = SimExecutor {
                sim: ResourceSim {
                    nodes,
                    services,
                    guest_locks,
                    fa_tries,
                    violations,
                    now_label,
                    moves: Vec::new(),
                },
                node: node.clone(),
                token: &token,
            };
            let out = lrm.iterate(&input, &mut exec, &mut port);
            (out, exec.sim.moves, port.events)
        };
        if let Some(n) = self.nodes.get_mut(node) {
            n.agent = client;
        }
        for event in &lease_events {
            self.log_lease_event(node, time, event);
        }
        for (sid, to) in moves {
            if let Some(e) = self.services.get_mut(&sid) {
                e.node = to;
            }
        }
        self.apply_lrm_steps(node, time, &source, output.steps);
        if let Some(status) = output.status {
            self.write_lrm_status(node, status);
        }
        if !lease_events.is_empty() {
            self.watchdog_task(node, time);
        }
        self.schedule_lease_after_poll(node, time);
        let end = time + self.timing.step_ms;
        if let Some(n) = self.nodes.get_mut(node) {
            n.lrm_time = end;
            if !output.exit {
                n.lrm = Some(lrm);
            }
        }
        self.now = self.now.max(end);
        output.exit
    }

    /// What the daemon's watchdog thread would report for `node`.
    fn watchdog_problem(&self, node: &NodeName) -> Option<&'static str> {
        self.nodes
            .get(node)
            .filter(|n| n.agent.lease.watchdog_failed())
            .map(|_| "watchdog-mux does not answer")
    }

    /// Writes an LRM status through the leader (lost if `node` cannot
    /// commit now).
    fn write_lrm_status(&mut self, node: &NodeName, status: crate::lrm::LrmStatus) {
        if !self.can_commit(node) {
            return;
        }
        self.lrm_status.insert(node.clone(), status);
    }

    /// Applies LRM steps in order.
    pub fn apply_lrm_steps(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        steps: Vec<LrmStep>,
    ) {
        for step in steps {
            match step {
                LrmStep::Log(ev) => self.log_event(time, source, &ev),
                LrmStep::Do(action) => {
                    let Some(n) = self.nodes.get_mut(node) else {
                        continue;
                    };
                    match action {
                        LrmAction::ReleaseAgentLock { leave_unguarded } => {
                            n.agent
                                .lease
                                .set_intent(LeaseIntent::Release { leave_unguarded });
                            self.lease_task(node, time);
                        }
                        LrmAction::AbandonAgentLock => {
                            n.agent.lease.set_intent(LeaseIntent::Abandon);
                        }
                        LrmAction::WatchdogOpen | LrmAction::WatchdogUpdate => {
                            n.agent.watchdog_wanted = true;
                        }
                        LrmAction::WatchdogClose => n.agent.watchdog_wanted = false,
                    }
                    self.watchdog_task(node, time);
                }
            }
        }
    }

    /// Sends a stop request to the LRM of `node`.
    pub fn lrm_shutdown_request(&mut self, node: &NodeName) {
        let Some(mut lrm) = self.nodes.get_mut(node).and_then(|n| n.lrm.take()) else {
            return;
        };
        let (kind, cfs_rw, cfs_update, time) = self
            .nodes
            .get(node)
            .map_or((NodeShutdown::None, true, true, self.now), |n| {
                (n.shutdown, n.cfs_rw, n.cfs_update, n.lrm_time)
            });
        let watchdog_problem = self.watchdog_problem(node);
        let input = crate::lrm::LrmInput {
            now_ms: time,
            quorate: self.quorate_for(node),
            cluster_state_ok: cfs_update,
            cfs_rw_ok: cfs_rw,
            manager_status: &self.manager_status,
            resources: &self.services,
            max_workers: 0,
            monitor_interval_ms: 0,
            finished: Vec::new(),
            watchdog_problem,
        };
        let out = lrm.shutdown_request(&input, kind, self.shutdown_policy);
        let source = format!("{node}/lrm");
        self.apply_lrm_steps(node, time, &source, out.steps);
        if let Some(status) = out.status {
            self.write_lrm_status(node, status);
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.lrm = Some(lrm);
        }
    }

    /// Creates the LRM of a node that has none (a new run: a new lease
    /// incarnation).
    pub fn start_lrm(&mut self, node: &NodeName) {
        let timing = self.timing;
        self.incarnations += 1;
        self.epochs += 1;
        let (incarnation, epoch) = (self.incarnations, self.epochs);
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.lrm.is_some() || !n.daemon_up || n.draining.is_some() {
            return;
        }
        let mut steps = Vec::new();
        let lrm = Lrm::new(node.clone(), n.lrm_time, &mut steps);
        n.lrm = Some(lrm);
        n.agent = AgentClient::new(node, incarnation, epoch, &timing);
        n.agent
            .lease
            .set_watchdog_armed(n.mux.armed(WatchdogOwner::Lrm));
        let time = n.lrm_time;
        self.apply_lrm_steps(node, time, &format!("{node}/lrm"), steps);
    }

    /// Handles an exited LRM: a lease still being released is released
    /// first (the watchdog stays armed meanwhile).
    pub fn lrm_exited(&mut self, node: &NodeName) {
        let time = self.nodes.get(node).map_or(self.now, |n| n.lrm_time);
        self.log_line("info", time, &format!("{node}/lrm"), "exit (loop end)");
        let releasing = self.nodes.get(node).is_some_and(|n| {
            n.mux.armed(WatchdogOwner::Lrm)
                && matches!(n.agent.lease.intent(), LeaseIntent::Release { .. })
        });
        if releasing {
            if let Some(n) = self.nodes.get_mut(node) {
                n.draining = Some(AfterDrain::FinishExit);
            }
            self.schedule_lease_task(node, time);
            return;
        }
        self.finish_lrm_exit(node, time);
    }

    /// After an LRM exit (and the release of its lease, if any): a client
    /// still armed goes away uncleanly (the node resets), then the restart,
    /// shutdown or daemon stop the exit was for goes on.
    pub(crate) fn finish_lrm_exit(&mut self, node: &NodeName, time: u64) {
        let mux_timeout = self.timing.mux_client_timeout_ms();
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        n.draining = None;
        // A drain may end after the iteration that exited.
        n.lrm_time = n.lrm_time.max(time);
        n.agent.watchdog_wanted = false;
        if n.mux.armed(WatchdogOwner::Lrm) {
            n.mux.disconnect(WatchdogOwner::Lrm, time, mux_timeout);
        }
        self.schedule_watchdog_check(node);
        let (restart, shutdown, has_crm, daemon_stop) = self
            .nodes
            .get(node)
            .map_or((false, NodeShutdown::None, false, false), |n| {
                (n.lrm_restart, n.shutdown, n.crm.is_some(), n.daemon_stop)
            });
        if restart && !daemon_stop {
            if let Some(n) = self.nodes.get_mut(node) {
                n.lrm_restart = false;
            }
            self.start_lrm(node);
            return;
        }
        let kind = match shutdown {
            NodeShutdown::Reboot => "reboot",
            NodeShutdown::Shutdown => "shutdown",
            NodeShutdown::None if daemon_stop => {
                if has_crm {
                    self.crm_stop(node);
                } else {
                    self.daemon_down(node);
                }
                return;
            }
            NodeShutdown::None => return,
        };
        if has_crm {
            self.hw_log(kind, &format!("execute crm {node} stop"));
            self.crm_stop(node);
        } else if shutdown == NodeShutdown::Reboot {
            self.power(node, false, kind);
            self.power(node, true, kind);
        } else {
            self.power(node, false, kind);
        }
    }

    /// Ends a drain that is done (lease released, watchdog closed) or
    /// cannot finish (the lease is not being released). A release that
    /// cannot commit in time does not end it: the lease core starves the
    /// watchdog, which resets the node, unless the release (or a renewal
    /// adopted meanwhile) gets through first.
    pub(crate) fn check_drain(&mut self, node: &NodeName, time: u64) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if n.draining.is_none() {
            return;
        }
        let lease = &n.agent.lease;
        let free = lease.state() == NodeLeaseState::Free;
        let stuck = !matches!(lease.intent(), LeaseIntent::Release { .. });
        if free {
            // The lease core now lets the watchdog close cleanly.
            self.watchdog_task(node, time);
        }
        let armed = self
            .nodes
            .get(node)
            .is_some_and(|n| n.mux.armed(WatchdogOwner::Lrm));
        if !armed || stuck {
            self.finish_lrm_exit(node, time);
        }
    }
}
