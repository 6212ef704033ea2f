//! The CRM in the simulator: one iteration of the real [`CrmDaemon`] per
//! node and round, its actions committed to the simulated store.
//!
//! In the `pve` profile the master takes Proxmox's manager lock (a lock
//! with the lease table's semantics, renewed by each master round, judged
//! by its own timeout: a Raft leader change does not extend it) and
//! holds a CRM watchdog. In `default` and `fast` the manager lock is Raft leadership:
//! only the leader's CRM can be master, once its term started, as the
//! daemon's CRM task runs only on a leader confirmed by a quorum. Every
//! write commits through the leader; a round whose lock action or write
//! does not commit is dropped and the master continues from the stored
//! status.

use std::collections::BTreeMap;

use lease::{Expected, LeaseCommand, LeaseMode, LeaseRequest, Mono};

use crate::crm::{
    agent_lease_name, crm_holder, AgentLease, CrmAction, CrmDaemon, CrmStep, LogEvent,
};
use crate::crm::{ConfiguredResource, Level};
use crate::domain::{NodeName, ResourceConfig, Sid};
use crate::lrm::NodeShutdown;

use super::mux::WatchdogOwner;
use super::world::{World, MANAGER_LOCK};

impl World {
    /// Whether `me` could take the manager lock now.
    fn manager_lock_available(&self, me: &NodeName, time: u64) -> bool {
        if !self.timing.crm_watchdog {
            // Raft leadership, confirmed by a quorum.
            return self.cluster.raft.leads(me) && self.topology().reaches_majority(me);
        }
        if !self.can_commit(me) {
            return false;
        }
        match self.cluster.manager_lock.record(MANAGER_LOCK) {
            None => true,
            Some(r) if r.holder == me.as_str() => true,
            Some(_) => self
                .cluster
                .manager_lock
                .deadline(MANAGER_LOCK)
                .is_some_and(|d| d < Mono(time)),
        }
    }

    /// The CRM takes or renews the manager lock; false if that did not
    /// commit (or, outside pve, `me` no longer leads).
    fn take_manager_lock(&mut self, me: &NodeName, time: u64, source: &str) -> bool {
        if !self.manager_lock_available(me, time) {
            return false;
        }
        if !self.timing.crm_watchdog {
            return true;
        }
        let ttl_ms = self.timing.lease_ttl_ms();
        let command = match self.cluster.manager_lock.record(MANAGER_LOCK) {
            None => LeaseCommand::Acquire {
                name: MANAGER_LOCK.into(),
                holder: me.to_string(),
                incarnation: 0,
                ttl_ms,
            },
            Some(r) if r.holder == me.as_str() => LeaseCommand::Renew {
                name: MANAGER_LOCK.into(),
                holder: me.to_string(),
                seq: r.seq,
            },
            Some(r) => LeaseCommand::Takeover {
                name: MANAGER_LOCK.into(),
                new_holder: me.to_string(),
                new_incarnation: 0,
                expected: Some(Expected {
                    holder: r.holder.clone(),
                    seq: r.seq,
                }),
                ttl_ms,
            },
        };
        let fresh = !matches!(command, LeaseCommand::Renew { .. });
        let topo = self.topology();
        match self.cluster.commit_manager_lock(&topo, me, time, &command) {
            Ok(outcome) if outcome.is_success() => {
                if fresh {
                    self.log_line("info", time, source, &format!("got lock '{MANAGER_LOCK}'"));
                }
                true
            }
            _ => false,
        }
    }

    fn release_manager_lock(&mut self, me: &NodeName, time: u64) {
        if !self.timing.crm_watchdog {
            return;
        }
        if let Some(r) = self.cluster.manager_lock.record(MANAGER_LOCK) {
            if r.holder == me.as_str() {
                let command = LeaseCommand::Release {
                    name: MANAGER_LOCK.into(),
                    holder: me.to_string(),
                    seq: r.seq,
                    leave_unguarded: false,
                };
                let topo = self.topology();
                // A release that cannot commit leaves the lock to expire.
                let _ = self.cluster.commit_manager_lock(&topo, me, time, &command);
            }
        }
    }

    fn placement_rules(
        &self,
        resources: &BTreeMap<Sid, ConfiguredResource>,
    ) -> crate::crm::PlacementRules {
        let nodes: Vec<NodeName> = self.nodes.keys().cloned().collect();
        crate::crm::placement_rules_from_config(
            &self.rules,
            &self.resource_rules,
            &self.groups,
            resources.values().map(|r| &r.config),
            &nodes,
        )
    }

    /// Runs one CRM iteration of `node` (if it has a CRM and its daemon
    /// is not hung). Returns true if the CRM exited.
    pub fn run_crm(&mut self, node: &NodeName) -> bool {
        if self.nodes.get(node).is_none_or(|n| n.paused) {
            return false;
        }
        let Some(mut crm) = self.nodes.get_mut(node).and_then(|n| n.crm.take()) else {
            return false;
        };
        let time = self.now;
        if let Some(n) = self.nodes.get_mut(node) {
            n.crm_time = time;
        }
        let source = format!("{node}/crm");
        let rules = self.placement_rules(&self.services);
        let scheduling = self.scheduling();
        let membership = self.membership();
        let agent_leases: BTreeMap<NodeName, AgentLease> = self
            .nodes
            .keys()
            .map(|m| (m.clone(), self.cluster.agent_lease(m, time)))
            .collect();
        let (cfs_rw, cfs_update) = self
            .nodes
            .get(node)
            .map_or((true, true), |n| (n.cfs_rw, n.cfs_update));
        let output = {
            let input = crate::crm::CrmInput {
                quorate: self.quorate_for(node),
                cluster_state_ok: cfs_update,
                cfs_rw_ok: cfs_rw,
                stored_status: &self.manager_status,
                manager_lock_available: self.manager_lock_available(node, time),
                manager: crate::crm::ManagerInput {
                    now_ms: time,
                    membership: &membership,
                    resources: &self.services,
                    node_affinity: &rules.node_affinity,
                    resource_affinity: &rules.resource_affinity,
                    lrm_status: &self.lrm_status,
                    crm_commands: &self.crm_commands,
                    agent_leases: &agent_leases,
                    unplaced: &[],
                    guest_locks: &self.guest_locks,
                    fence_delay_ms: self.timing.fence_delay_ms(),
                    group_migration: crate::crm::GroupMigrationInput {
                        groups: &self.groups,
                        node_versions: &self.node_versions,
                        round_interval_ms: self.timing.nominal_round_ms(),
                    },
                    scheduling: &scheduling,
                },
            };
            crm.iterate(&input)
        };
        let is_master = crm.state() == crate::crm::CrmDaemonState::Master;
        let logged = self
            .nodes
            .get(node)
            .and_then(|n| n.logged_rule_drops.clone());
        if is_master && logged.as_ref() != Some(&rules.messages) {
            for m in &rules.messages {
                self.log_line("info", time, &source, m);
            }
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.logged_rule_drops = is_master.then_some(rules.messages);
        }
        let committed = self.apply_crm_steps(node, time, &source, output.steps);
        match output.manager_status {
            Some(ms) if committed && self.can_commit(node) => {
                self.manager_status = ms;
                self.manager_status_version += 1;
            }
            // A lock action or a write did not commit: the rest of the
            // round is dropped and the master continues from the stored
            // status, as the daemon does.
            Some(_) => crm.resync(&self.manager_status),
            None => {}
        }
        let end = time + self.timing.step_ms;
        if let Some(n) = self.nodes.get_mut(node) {
            n.crm_time = end;
            if !output.exit {
                n.crm = Some(crm);
            }
        }
        self.now = self.now.max(end);
        output.exit
    }

    /// Applies CRM steps in order; false (and the rest dropped) when a
    /// lock action or a write could not be committed.
    pub fn apply_crm_steps(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        steps: Vec<CrmStep>,
    ) -> bool {
        let mut events = Vec::new();
        for step in steps {
            match step {
                CrmStep::Log(ev) => self.log_event(time, source, &ev),
                CrmStep::Event(ev) => events.push(*ev),
                CrmStep::Do(action) => {
                    if !self.apply_crm_action(node, time, source, action) {
                        return false;
                    }
                }
            }
        }
        // The history is written with the round's manager status, so an
        // event exists exactly when its round committed (as in the
        // daemon).
        if !events.is_empty() && self.can_commit(node) {
            self.history.append(events);
        }
        true
    }

    pub(crate) fn log_event(&mut self, time: u64, source: &str, ev: &LogEvent) {
        self.log_line(ev.level.tag(), time, source, &ev.message);
    }

    /// The CRM's watchdog (pve only): open or feed; false if the mux
    /// does not answer.
    fn crm_watchdog(&mut self, node: &NodeName, time: u64, open: bool) -> bool {
        if !self.timing.crm_watchdog {
            return true;
        }
        let mux_timeout = self.timing.mux_client_timeout_ms();
        let Some(n) = self.nodes.get_mut(node) else {
            return false;
        };
        let ok = if open || !n.mux.armed(WatchdogOwner::Crm) {
            n.mux.arm(WatchdogOwner::Crm, time).is_ok()
        } else {
            n.mux.feed(WatchdogOwner::Crm, time, mux_timeout).is_ok()
        };
        self.schedule_watchdog_check(node);
        ok
    }

    fn apply_crm_action(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        action: CrmAction,
    ) -> bool {
        let writes = !matches!(
            action,
            CrmAction::TakeManagerLock
                | CrmAction::ReleaseManagerLock
                | CrmAction::WatchdogOpen
                | CrmAction::WatchdogUpdate
                | CrmAction::WatchdogClose
        );
        if writes && !self.can_commit(node) {
            return false;
        }
        match action {
            CrmAction::TakeManagerLock => return self.take_manager_lock(node, time, source),
            CrmAction::ReleaseManagerLock => self.release_manager_lock(node, time),
            CrmAction::WatchdogOpen => return self.crm_watchdog(node, time, true),
            CrmAction::WatchdogUpdate => return self.crm_watchdog(node, time, false),
            CrmAction::WatchdogClose => {
                let mux_timeout = self.timing.mux_client_timeout_ms();
                if let Some(n) = self.nodes.get_mut(node) {
                    if n.mux.armed(WatchdogOwner::Crm)
                        && n.mux
                            .release(WatchdogOwner::Crm, time, mux_timeout)
                            .is_err()
                    {
                        n.mux.disconnect(WatchdogOwner::Crm, time, mux_timeout);
                    }
                }
                self.schedule_watchdog_check(node);
            }
            CrmAction::TakeAgentLock(target) => {
                return self.take_agent_lock(node, time, source, &target)
            }
            CrmAction::SetRequestedState(sid, state) => {
                if let Some(e) = self.services.get_mut(&sid) {
                    e.config.state = state;
                }
            }
            CrmAction::MoveResourceNode { sid, to, .. } => {
                if let Some(e) = self.services.get_mut(&sid) {
                    e.node = to;
                }
            }
            CrmAction::RemoveGuestLock(sid) => {
                self.guest_locks.remove(&sid);
            }
            CrmAction::PlaceResource { sid, node } => {
                if let Some(e) = self.services.get_mut(&sid) {
                    e.node = node;
                }
            }
            CrmAction::ConsumeCrmCommands => self.crm_commands.clear(),
            CrmAction::MigrateGroups => self.migrate_groups(time, source),
        }
        true
    }

    /// The fencing take-over of `target`'s agent lease, naming the holder
    /// and sequence the CRM saw.
    fn take_agent_lock(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        target: &NodeName,
    ) -> bool {
        let name = agent_lease_name(target.as_str());
        let current = self.cluster.table.record(&name).cloned();
        let expected = match &current {
            None => None,
            Some(r) if r.mode == LeaseMode::Held && r.holder == target.as_str() => Some(Expected {
                holder: r.holder.clone(),
                seq: r.seq,
            }),
            // A fencing hold of a CRM: already taken over.
            Some(r) if r.mode == LeaseMode::Held => return true,
            Some(_) => None,
        };
        let request = LeaseRequest {
            command: LeaseCommand::Takeover {
                name: name.clone(),
                new_holder: crm_holder(node.as_str()),
                new_incarnation: self.incarnations,
                expected: expected.clone(),
                ttl_ms: self.timing.lease_ttl_ms(),
            },
            manager_status_guard: None,
        };
        let topo = self.topology();
        let version = self.manager_status_version;
        match self
            .cluster
            .commit_from(&topo, node, time, &request, version)
        {
            Ok(outcome) if outcome.is_success() => {
                if expected.is_some() {
                    self.check_takeover_safe(&name, target);
                }
                self.log_line("info", time, source, &format!("got lock '{name}'"));
                true
            }
            other => {
                let other = other.map_err(lease::RequestFailure::Unavailable);
                self.log_line(
                    "err",
                    time,
                    source,
                    &format!("fencing take-over of '{name}' failed: {other:?}"),
                );
                false
            }
        }
    }

    /// Persists the group migration: generated rules appended to the rules
    /// (replacing a rule of the same id), resources rewritten without
    /// `group`, groups deleted. The rules are the same the in-memory
    /// conversion produced every round, so placement does not change.
    fn migrate_groups(&mut self, time: u64, source: &str) {
        let configs: Vec<ResourceConfig> =
            self.services.values().map(|r| r.config.clone()).collect();
        let (rules, migrated) = crate::config::migrate_groups(&self.groups, &configs);
        let regrouped = configs.iter().filter(|c| c.group.is_some()).count();
        let rule_count = rules.len();
        for rule in rules {
            self.rules.retain(|r| r.id != rule.id);
            self.rules.push(rule);
        }
        for config in migrated {
            if let Some(entry) = self.services.get_mut(&config.sid) {
                entry.config = config;
            }
        }
        self.groups.clear();
        self.log_line(
            Level::Notice.tag(),
            time,
            source,
            &format!(
                "ha groups migration: wrote {rule_count} rule(s), removed the group from {regrouped} resource(s), deleted the groups"
            ),
        );
    }

    /// Asks the CRM of `node` to stop.
    pub fn crm_stop(&mut self, node: &NodeName) {
        let time = self.nodes.get(node).map_or(self.now, |n| n.crm_time);
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let Some(crm) = n.crm.as_mut() else { return };
        n.crm_stop = true;
        let mut steps = Vec::new();
        crm.shutdown_request(&mut steps);
        self.apply_crm_steps(node, time, &format!("{node}/crm"), steps);
    }

    /// Creates the CRM of a node that has none.
    pub fn start_crm(&mut self, node: &NodeName) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.crm.is_some() || !n.daemon_up {
            return;
        }
        let mut steps = Vec::new();
        let mut crm = CrmDaemon::new(node.clone(), &mut steps);
        // Outside pve the manager lock is Raft leadership: no other node
        // can take over from a leader whose own services are in fence.
        crm.set_leader_only(!self.timing.crm_watchdog);
        n.crm = Some(crm);
        let time = n.crm_time;
        self.apply_crm_steps(node, time, &format!("{node}/crm"), steps);
    }

    /// Handles an exited CRM.
    pub fn crm_exited(&mut self, node: &NodeName) {
        let time = self.nodes.get(node).map_or(self.now, |n| n.crm_time);
        self.log_line("info", time, &format!("{node}/crm"), "exit (loop end)");
        let (shutdown, daemon_stop, has_lrm) =
            self.nodes
                .get(node)
                .map_or((NodeShutdown::None, false, false), |n| {
                    (
                        n.shutdown,
                        n.daemon_stop,
                        n.lrm.is_some() || n.draining.is_some(),
                    )
                });
        let stopped = self.nodes.get_mut(node).is_some_and(|n| {
            let stopped = n.crm_stop;
            n.crm_stop = false;
            stopped
        });
        if stopped && !self.timing.crm_watchdog {
            // The manager lock is leadership: a stopped CRM hands it over.
            let topo = self.topology();
            if let Some(line) = self.cluster.transfer_leadership(&topo, time, node) {
                self.log_line("info", time, "raft", &line);
            }
        }
        match shutdown {
            NodeShutdown::Reboot => {
                self.power(node, false, "reboot");
                self.power(node, true, "reboot");
            }
            NodeShutdown::Shutdown => self.power(node, false, "shutdown"),
            NodeShutdown::None if daemon_stop && !has_lrm => self.daemon_down(node),
            NodeShutdown::None => {}
        }
    }
}
