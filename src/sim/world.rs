//! The simulated cluster: hardware, the cluster store (locks, manager
//! status, LRM status, command queue, service config), watchdogs and the
//! simulated resources (spec sections 5.4, 8.2, 8.5).

use std::collections::{BTreeMap, BTreeSet};

use lease::{
    Expected, LeaseCommand, LeaseEvent, LeaseIntent, LeaseMode, Mono, NodeLease, ReplicaView,
    TimingProfile, WatchdogAction,
};

use crate::crm::Level;
use crate::crm::{
    agent_lease_name, crm_holder, exit_code, AgentLease, ConfiguredResource, CrmAction, CrmDaemon,
    CrmStep, LogEvent, ManagerStatus, NodeAffinity, ServiceState,
};
use crate::domain::{NodeName, RequestedState, ResourceConfig, ShutdownPolicy, Sid};
use crate::lrm::{
    log_step, CommandRequest, Executor, Lrm, LrmAction, LrmStatus, LrmStep, NodeShutdown,
};

use super::leases::{SimLeases, SimLockPort};
use super::scenario::{Scenario, ServiceEntry};

/// Name of the manager lock (pve profile: Proxmox's CRM lock; default
/// and fast: stands for Raft leadership).
pub const MANAGER_LOCK: &str = "ha_manager_lock";

/// The pve-manager version of a node whose `hardware_status` entry has
/// none (spec 8.2). It is older than the group migration minimum, so
/// groups are only migrated in scenarios that set versions.
pub const DEFAULT_PVE_MANAGER_VERSION: &str = "9.0.0~2";

/// Timing of one simulator profile: the profile from the one timing
/// table, plus the harness's own pacing (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTiming {
    /// `pve`, `default` or `fast`.
    pub name: &'static str,
    /// The timing profile the daemons would run (lease ttl, watchdog,
    /// fence delay, renewals, feeding).
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
    /// The CRM master holds a watchdog (pve behaviour).
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
    /// through committed writes).
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

    /// Offline time before fencing (ms).
    pub fn fence_delay_ms(&self) -> u64 {
        lease::millis(self.profile.fence_delay)
    }

    /// A watchdog fires this long after its last feed: the mux notices
    /// the missed deadline, then the device runs out (ms).
    pub fn watchdog_timeout_ms(&self) -> u64 {
        lease::millis(self.profile.reset_after_last_feed())
    }

    /// The daemon round interval of the modelled profile; only used in log
    /// texts that quote a duration in rounds.
    pub fn nominal_round_ms(&self) -> u64 {
        lease::millis(self.profile.round_interval)
    }
}

/// Power/network/cfs state and daemons of one node.
#[derive(Debug)]
pub struct SimNode {
    /// Powered on.
    pub power: bool,
    /// Network up.
    pub network: bool,
    /// Pending shutdown/reboot.
    pub shutdown: NodeShutdown,
    /// Shared state readable/writable.
    pub cfs_rw: bool,
    /// Cluster-state refresh works.
    pub cfs_update: bool,
    /// The CRM daemon, if running.
    pub crm: Option<CrmDaemon>,
    /// The LRM daemon, if running.
    pub lrm: Option<Lrm>,
    /// CRM env clock.
    pub crm_time: u64,
    /// LRM env clock.
    pub lrm_time: u64,
    /// The LRM is restarting (restart-lrm).
    pub lrm_restart: bool,
    /// The CRM was asked to stop.
    pub crm_stop: bool,
    /// Services running on this node.
    pub running: BTreeSet<Sid>,
    /// The LRM's agent lease client (lease core, node side).
    pub agent_lease: NodeLease,
    /// The LRM wants its watchdog open.
    pub watchdog_wanted: bool,
}

/// Which daemon owns a watchdog handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchdogOwner {
    /// The CRM.
    Crm,
    /// The LRM.
    Lrm,
    /// An LRM that exited without closing its watchdog: the mux saw an
    /// unclean disconnect and stopped feeding the device, which resets
    /// the node one device timeout later. No later run can feed it.
    Abandoned,
}

/// The whole simulated cluster.
#[derive(Debug)]
pub struct World {
    /// Timing in use.
    pub timing: SimTiming,
    /// Global clock (ms).
    pub now: u64,
    /// Nodes by name.
    pub nodes: BTreeMap<NodeName, SimNode>,
    /// The cluster store's leases.
    pub leases: SimLeases,
    /// Version of the stored manager status (bumped on every write).
    pub manager_status_version: u64,
    /// Runs of the daemons so far (a new run, a new lease incarnation).
    incarnations: u64,
    /// Watchdog handles: (node, owner) -> last update.
    pub watchdogs: BTreeMap<(NodeName, WatchdogOwner), u64>,
    /// Stored manager status.
    pub manager_status: ManagerStatus,
    /// Stored LRM status documents.
    pub lrm_status: BTreeMap<NodeName, LrmStatus>,
    /// Pending CRM command lines.
    pub crm_commands: Vec<String>,
    /// Service configuration with the current node (the shape the CRM
    /// and LRM read, so no per-iteration conversion is needed).
    pub services: BTreeMap<Sid, ConfiguredResource>,
    /// Guest locks.
    pub guest_locks: BTreeMap<Sid, String>,
    /// Node affinity rules (compiled per iteration).
    pub rules: Vec<crate::domain::NodeAffinityRule>,
    /// Legacy groups (emptied by the group migration).
    pub groups: Vec<crate::domain::GroupConfig>,
    /// pve-manager version reported by each node.
    pub node_versions: BTreeMap<NodeName, String>,
    /// Shutdown policy.
    pub shutdown_policy: ShutdownPolicy,
    fa_tries: BTreeMap<(Sid, &'static str), u32>,
    /// Log lines.
    pub log: Vec<String>,
    /// Safety violations seen.
    pub violations: Vec<String>,
}

impl World {
    /// Builds the world from a scenario.
    pub fn new(sc: &Scenario, timing: SimTiming) -> World {
        let nodes = sc
            .hardware
            .iter()
            .map(|(n, hw)| {
                (
                    n.clone(),
                    SimNode {
                        power: hw.power,
                        network: hw.network,
                        shutdown: NodeShutdown::None,
                        cfs_rw: true,
                        cfs_update: true,
                        crm: None,
                        lrm: None,
                        crm_time: 0,
                        lrm_time: 0,
                        lrm_restart: false,
                        crm_stop: false,
                        running: BTreeSet::new(),
                        agent_lease: node_lease(&agent_lease_name(n.as_str()), n, 0, &timing),
                        watchdog_wanted: false,
                    },
                )
            })
            .collect();
        World {
            timing,
            now: 0,
            nodes,
            leases: SimLeases::default(),
            manager_status_version: 0,
            incarnations: 0,
            watchdogs: BTreeMap::new(),
            manager_status: sc.manager_status.clone(),
            lrm_status: BTreeMap::new(),
            crm_commands: Vec::new(),
            services: sc
                .services
                .iter()
                .map(|(sid, e)| (sid.clone(), configured(sid, e, &sc.groups)))
                .collect(),
            guest_locks: BTreeMap::new(),
            rules: sc.rules.clone(),
            groups: sc.groups.clone(),
            node_versions: sc
                .hardware
                .iter()
                .map(|(n, hw)| {
                    let version = hw
                        .pve_manager_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PVE_MANAGER_VERSION.to_string());
                    (n.clone(), version)
                })
                .collect(),
            shutdown_policy: sc.shutdown_policy,
            fa_tries: BTreeMap::new(),
            log: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Formats a time for the log.
    pub fn fmt_time(&self, ms: u64) -> String {
        if self.timing.name == "pve" {
            format!("{:>5}", ms / 1000)
        } else {
            format!("{:>5}.{:03}", ms / 1000, ms % 1000)
        }
    }

    /// Appends a log line.
    pub fn log_line(&mut self, level: &str, time: u64, source: &str, msg: &str) {
        let line = format!(
            "{:<5} {} {:>12}: {}",
            level,
            self.fmt_time(time),
            source,
            msg
        );
        self.log.push(line);
    }

    /// Logs a harness line at the global time.
    pub fn hw_log(&mut self, source: &str, msg: &str) {
        self.log_line("info", self.now, source, msg);
    }

    fn violation(&mut self, msg: String) {
        let t = self.fmt_time(self.now);
        self.violations.push(format!("{}: {msg}", t.trim()));
    }

    /// Online count > half of all nodes.
    fn cluster_quorate(&self) -> bool {
        let online = self.nodes.values().filter(|n| n.power && n.network).count();
        online > self.nodes.len() / 2
    }

    /// Quorum as seen from `node`.
    pub fn quorate_for(&self, node: &NodeName) -> bool {
        let Some(n) = self.nodes.get(node) else {
            return false;
        };
        n.network && n.power && self.cluster_quorate()
    }

    /// Membership: node -> online (everyone offline without quorum).
    pub fn membership(&self) -> BTreeMap<NodeName, bool> {
        let quorate = self.cluster_quorate();
        self.nodes
            .iter()
            .map(|(name, n)| (name.clone(), quorate && n.power && n.network))
            .collect()
    }

    /// Whether `me` could take the manager lock now: it holds it (as
    /// Proxmox's lock, it belongs to the node name), it is free, or its
    /// holder let it expire.
    fn manager_lock_available(&self, me: &NodeName, time: u64) -> bool {
        if !self.quorate_for(me) {
            return false;
        }
        match self.leases.table.record(MANAGER_LOCK) {
            None => true,
            Some(r) if r.holder == me.as_str() => true,
            Some(_) => self
                .leases
                .table
                .deadline(MANAGER_LOCK)
                .is_some_and(|d| d < Mono(time)),
        }
    }

    /// The CRM takes or renews the manager lock (pve: Proxmox's CRM lock,
    /// renewed by each master round; default and fast: it stands for Raft
    /// leadership). Committed to the same lease table as the agent leases.
    fn take_manager_lock(&mut self, me: &NodeName, time: u64, source: &str) {
        if !self.manager_lock_available(me, time) {
            return;
        }
        let ttl_ms = lease::millis(self.timing.profile.lease_ttl);
        let command = match self.leases.table.record(MANAGER_LOCK) {
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
        if self.leases.commit(time, &command).is_success() && fresh {
            self.log_line("info", time, source, &format!("got lock '{MANAGER_LOCK}'"));
        }
    }

    fn release_manager_lock(&mut self, me: &NodeName, time: u64) {
        if let Some(r) = self.leases.table.record(MANAGER_LOCK) {
            if r.holder == me.as_str() {
                let command = LeaseCommand::Release {
                    name: MANAGER_LOCK.into(),
                    holder: me.to_string(),
                    seq: r.seq,
                    leave_unguarded: false,
                };
                self.leases.commit(time, &command);
            }
        }
    }

    /// Runs one poll of `node`'s agent lease client (its lease task).
    fn lease_task(&mut self, node: &NodeName, time: u64, source: &str) {
        let quorate = self.quorate_for(node);
        let version = self.manager_status_version;
        let fencing = self.manager_status.fencing(node);
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let lease = &mut n.agent_lease;
        let record = self.leases.table.record(lease.name()).cloned();
        let view = ReplicaView {
            record: record.as_ref(),
            crm_fencing_me: fencing,
            manager_status_version: version,
        };
        let name = lease.name().to_string();
        let event = self.leases.exchange(lease, time, quorate, &view);
        if let Some(LeaseEvent::Acquired { .. }) = event {
            self.log_line("info", time, source, &format!("got lock '{name}'"));
        }
    }

    /// Every powered node's lease tasks run, and its watchdog is armed,
    /// fed or released as the lease core says (design.md section 5: the
    /// watchdog is fed on its own timer while the lease is valid).
    pub fn lease_and_watchdog_tasks(&mut self) {
        let now = self.now;
        let nodes: Vec<NodeName> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.power)
            .map(|(k, _)| k.clone())
            .collect();
        for node in &nodes {
            self.lease_task(node, now, &format!("{node}/lrm"));
            self.watchdog_task(node, now);
        }
    }

    /// Arms, feeds or releases `node`'s LRM watchdog as its lease says.
    fn watchdog_task(&mut self, node: &NodeName, now: u64) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if !n.power {
            return;
        }
        let key = (node.clone(), WatchdogOwner::Lrm);
        let armed = self.watchdogs.contains_key(&key);
        match n
            .agent_lease
            .watchdog_action(Mono(now), n.watchdog_wanted, armed)
        {
            WatchdogAction::Arm | WatchdogAction::Feed => {
                self.watchdogs.insert(key, now);
            }
            WatchdogAction::Release => {
                self.watchdogs.remove(&key);
            }
            WatchdogAction::Nothing => {}
        }
    }

    fn node_affinity(
        &self,
        resources: &BTreeMap<Sid, ConfiguredResource>,
        out: &mut Vec<String>,
    ) -> BTreeMap<Sid, NodeAffinity> {
        let nodes: Vec<NodeName> = self.nodes.keys().cloned().collect();
        let (affinity, messages) = crate::crm::node_affinity_from_config(
            &self.rules,
            &self.groups,
            resources.values().map(|r| &r.config),
            &nodes,
        );
        out.extend(messages);
        affinity
    }

    /// Runs one CRM iteration of `node` (if it has a CRM). Returns true if
    /// the CRM exited.
    pub fn run_crm(&mut self, node: &NodeName) -> bool {
        let Some(mut crm) = self.nodes.get_mut(node).and_then(|n| n.crm.take()) else {
            return false;
        };
        let time = self.now;
        if let Some(n) = self.nodes.get_mut(node) {
            n.crm_time = time;
        }
        let source = format!("{node}/crm");
        let mut drop_msgs = Vec::new();
        let affinity = self.node_affinity(&self.services, &mut drop_msgs);
        let membership = self.membership();
        let agent_leases: BTreeMap<NodeName, AgentLease> = self
            .nodes
            .keys()
            .map(|m| (m.clone(), self.leases.agent_lease(m, time)))
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
                    node_affinity: &affinity,
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
                },
            };
            crm.iterate(&input)
        };
        let is_master = crm.state() == crate::crm::CrmDaemonState::Master;
        if is_master {
            for m in drop_msgs {
                self.log_line("info", time, &source, &m);
            }
        }
        let committed = self.apply_crm_steps(node, time, &source, output.steps);
        match output.manager_status {
            Some(ms) if committed => {
                self.manager_status = ms;
                self.manager_status_version += 1;
            }
            // A lock action did not commit: the rest of the round is
            // dropped and the master continues from the stored status,
            // as the daemon does.
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
    /// lock action could not be committed.
    pub fn apply_crm_steps(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        steps: Vec<CrmStep>,
    ) -> bool {
        for step in steps {
            match step {
                CrmStep::Log(ev) => self.log_event(time, source, &ev),
                CrmStep::Do(action) => {
                    if !self.apply_crm_action(node, time, source, action) {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn log_event(&mut self, time: u64, source: &str, ev: &LogEvent) {
        self.log_line(ev.level.tag(), time, source, &ev.message);
    }

    fn apply_crm_action(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        action: CrmAction,
    ) -> bool {
        match action {
            CrmAction::TakeManagerLock => self.take_manager_lock(node, time, source),
            CrmAction::ReleaseManagerLock => self.release_manager_lock(node, time),
            CrmAction::WatchdogOpen | CrmAction::WatchdogUpdate => {
                if self.timing.crm_watchdog {
                    self.watchdogs
                        .insert((node.clone(), WatchdogOwner::Crm), time);
                }
            }
            CrmAction::WatchdogClose => {
                self.watchdogs.remove(&(node.clone(), WatchdogOwner::Crm));
            }
            CrmAction::TakeAgentLock(target) => {
                let name = agent_lease_name(target.as_str());
                let current = self.leases.table.record(&name).cloned();
                let expected = match &current {
                    None => None,
                    Some(r) if r.mode == LeaseMode::Held && r.holder == target.as_str() => {
                        Some(Expected {
                            holder: r.holder.clone(),
                            seq: r.seq,
                        })
                    }
                    // A fencing hold of a CRM: already taken over.
                    Some(r) if r.mode == LeaseMode::Held => return true,
                    Some(_) => None,
                };
                if expected.is_some()
                    && self
                        .watchdogs
                        .contains_key(&(target.clone(), WatchdogOwner::Lrm))
                    && self.nodes.get(&target).is_some_and(|n| n.power)
                {
                    self.violation(format!(
                        "lease '{name}' taken over while the watchdog of '{target}' had not fired"
                    ));
                }
                let request = lease::LeaseRequest {
                    command: LeaseCommand::Takeover {
                        name: name.clone(),
                        new_holder: crm_holder(node.as_str()),
                        new_incarnation: self.incarnations,
                        expected,
                        ttl_ms: lease::millis(self.timing.profile.lease_ttl),
                    },
                    manager_status_guard: None,
                };
                let quorate = self.quorate_for(node);
                let version = self.manager_status_version;
                match self.leases.deliver(time, quorate, version, &request) {
                    Ok(outcome) if outcome.is_success() => {
                        self.log_line("info", time, source, &format!("got lock '{name}'"));
                    }
                    other => {
                        self.log_line(
                            "err",
                            time,
                            source,
                            &format!("fencing take-over of '{name}' failed: {other:?}"),
                        );
                        return false;
                    }
                }
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

    /// Runs one LRM iteration of `node`. Returns true if the LRM exited.
    pub fn run_lrm(&mut self, node: &NodeName) -> bool {
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
        let quorate = self.quorate_for(node);
        let now_label = self.fmt_time(time).trim().to_string();
        let fencing_me = self.manager_status.fencing(node);
        let manager_status_version = self.manager_status_version;
        let Some(mut agent_lease) = self.nodes.get(node).map(|n| n.agent_lease.clone()) else {
            return false;
        };
        let (output, moves, lease_events) = {
            let World {
                nodes,
                services,
                guest_locks,
                fa_tries,
                violations,
                manager_status,
                leases,
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
            };
            let mut port = SimLockPort {
                leases,
                lease: &mut agent_lease,
                now: time,
                quorate,
                fencing_me,
                manager_status_version,
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
            };
            let out = lrm.iterate(&input, &mut exec, &mut port);
            (out, exec.sim.moves, port.events)
        };
        if let Some(n) = self.nodes.get_mut(node) {
            n.agent_lease = agent_lease;
        }
        for event in lease_events {
            if let LeaseEvent::Acquired { .. } = event {
                let name = agent_lease_name(node.as_str());
                self.log_line("info", time, &source, &format!("got lock '{name}'"));
            }
        }
        for (sid, to) in moves {
            if let Some(e) = self.services.get_mut(&sid) {
                e.node = to;
            }
        }
        self.apply_lrm_steps(node, time, &source, output.steps);
        if let Some(status) = output.status {
            self.lrm_status.insert(node.clone(), status);
        }
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
                            n.agent_lease
                                .set_intent(LeaseIntent::Release { leave_unguarded });
                            self.lease_task(node, time, source);
                        }
                        LrmAction::AbandonAgentLock => {
                            n.agent_lease.set_intent(LeaseIntent::Abandon);
                        }
                        LrmAction::WatchdogOpen | LrmAction::WatchdogUpdate => {
                            n.watchdog_wanted = true;
                        }
                        LrmAction::WatchdogClose => n.watchdog_wanted = false,
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
        };
        let out = lrm.shutdown_request(&input, kind, self.shutdown_policy);
        let source = format!("{node}/lrm");
        self.apply_lrm_steps(node, time, &source, out.steps);
        if let Some(status) = out.status {
            self.lrm_status.insert(node.clone(), status);
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.lrm = Some(lrm);
        }
    }

    /// Checks the watchdogs of `node`; false if one expired (the handles
    /// are dropped).
    pub fn watchdog_check(&mut self, node: &NodeName) -> bool {
        let timeout = self.timing.watchdog_timeout_ms();
        let now = self.now;
        let expired: Vec<(NodeName, WatchdogOwner)> = self
            .watchdogs
            .iter()
            .filter(|((n, _), t)| n == node && now.saturating_sub(**t) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.watchdogs.remove(k);
        }
        expired.is_empty()
    }

    /// Creates the daemons of a node that has none.
    pub fn start_crm(&mut self, node: &NodeName) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.crm.is_some() {
            return;
        }
        let mut steps = Vec::new();
        let crm = CrmDaemon::new(node.clone(), &mut steps);
        n.crm = Some(crm);

        let time = n.crm_time;
        self.apply_crm_steps(node, time, &format!("{node}/crm"), steps);
    }

    /// Creates the LRM of a node that has none.
    pub fn start_lrm(&mut self, node: &NodeName) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.lrm.is_some() {
            return;
        }
        let mut steps = Vec::new();
        let lrm = Lrm::new(node.clone(), n.lrm_time, &mut steps);
        n.lrm = Some(lrm);
        self.incarnations += 1;
        n.agent_lease = node_lease(
            &agent_lease_name(node.as_str()),
            node,
            self.incarnations,
            &self.timing,
        );
        n.watchdog_wanted = false;
        let time = n.lrm_time;
        self.apply_lrm_steps(node, time, &format!("{node}/lrm"), steps);
    }

    /// `power <node> on|off`.
    pub fn power(&mut self, node: &NodeName, on: bool, source: &str) {
        self.hw_log(
            source,
            &format!("execute power {node} {}", if on { "on" } else { "off" }),
        );
        self.power_silent(node, on);
    }

    fn power_silent(&mut self, node: &NodeName, on: bool) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        let was_on = n.power;
        if on && !was_on {
            self.start_crm(node);
            self.start_lrm(node);
            if let Some(n) = self.nodes.get_mut(node) {
                n.lrm_restart = false;
                n.cfs_rw = true;
                n.cfs_update = true;
            }
        } else if !on && was_on {
            let (crm_t, lrm_t, had_crm, had_lrm) = {
                let n = &self.nodes[node];
                (n.crm_time, n.lrm_time, n.crm.is_some(), n.lrm.is_some())
            };
            if had_crm {
                self.log_line("info", crm_t, &format!("{node}/crm"), "killed by poweroff");
            }
            if had_lrm {
                self.log_line("info", lrm_t, &format!("{node}/lrm"), "killed by poweroff");
            }
            self.watchdogs.retain(|(n, _), _| n != node);
            if let Some(n) = self.nodes.get_mut(node) {
                n.crm = None;
                n.lrm = None;
                n.running.clear();
            }
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.power = on;
            n.network = on;
            n.shutdown = NodeShutdown::None;
        }
    }

    /// Requested state of a service.
    fn set_service_state(&mut self, sid: &Sid, state: RequestedState) {
        if let Some(e) = self.services.get_mut(sid) {
            e.config.state = state;
        }
    }

    /// Executes one cmdlist command (already validated).
    pub fn execute_command(&mut self, cmd: &str, source: &str) {
        self.hw_log(source, &format!("execute {cmd}"));
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let node_of = |s: &str| s.parse::<NodeName>().ok();
        match w.as_slice() {
            ["power", n, action] => {
                if let Some(n) = node_of(n) {
                    self.power_silent(&n, *action == "on");
                }
            }
            ["network", n, action] => {
                if let Some(node) = node_of(n).and_then(|n| self.nodes.get_mut(&n)) {
                    node.network = *action == "on";
                }
            }
            ["cfs", n, what, action] => {
                if let Some(node) = node_of(n).and_then(|n| self.nodes.get_mut(&n)) {
                    let ok = *action == "work";
                    if *what == "rw" {
                        node.cfs_rw = ok;
                    } else {
                        node.cfs_update = ok;
                    }
                }
            }
            [kind @ ("reboot" | "shutdown"), n] => {
                if let Some(n) = node_of(n) {
                    if let Some(node) = self.nodes.get_mut(&n) {
                        node.shutdown = if *kind == "reboot" {
                            NodeShutdown::Reboot
                        } else {
                            NodeShutdown::Shutdown
                        };
                    }
                    self.lrm_shutdown_request(&n);
                }
            }
            ["restart-lrm", n] => {
                if let Some(n) = node_of(n) {
                    if self.nodes.get(&n).is_some_and(|x| x.lrm.is_some()) {
                        if let Some(node) = self.nodes.get_mut(&n) {
                            node.lrm_restart = true;
                        }
                        self.lrm_shutdown_request(&n);
                    }
                }
            }
            ["pve-manager-version", n, "set", version] => {
                if let Some(n) = node_of(n) {
                    self.node_versions.insert(n, version.to_string());
                }
            }
            ["crm", n, rest @ ..] => {
                let Some(n) = node_of(n) else { return };
                match rest {
                    ["stop"] => self.crm_stop(&n),
                    ["start"] => self.start_crm(&n),
                    ["enable-node-maintenance"] => self
                        .crm_commands
                        .push(format!("enable-node-maintenance {n}")),
                    ["disable-node-maintenance"] => self
                        .crm_commands
                        .push(format!("disable-node-maintenance {n}")),
                    ["disarm-ha", mode] => self.crm_commands.push(format!("disarm-ha {mode}")),
                    ["arm-ha"] => self.crm_commands.push("arm-ha".to_string()),
                    _ => {}
                }
            }
            ["service", sid, action, params @ ..] => {
                let Some(sid) = super::scenario::parse_sim_sid(sid) else {
                    return;
                };
                match (*action, params) {
                    (st @ ("started" | "stopped" | "disabled" | "ignored" | "enabled"), _) => {
                        if let Ok(state) = st.parse() {
                            self.set_service_state(&sid, state);
                        }
                    }
                    (task @ ("migrate" | "relocate"), [n]) => {
                        self.crm_commands.push(format!("{task} {sid} {n}"))
                    }
                    ("stop", [t]) => self.crm_commands.push(format!("stop {sid} {t}")),
                    ("add", [n, rest @ ..]) => {
                        let Some(node) = node_of(n) else { return };
                        let state = rest
                            .first()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(RequestedState::Started);
                        let running = rest.get(1).is_some_and(|r| *r == "1");
                        let entry = ServiceEntry {
                            node: node.clone(),
                            state,
                            failback: true,
                            max_restart: 1,
                            max_relocate: 1,
                            group: None,
                        };
                        let conf = configured(&sid, &entry, &self.groups);
                        self.services.insert(sid.clone(), conf);
                        if running {
                            if let Some(x) = self.nodes.get_mut(&node) {
                                x.running.insert(sid);
                            }
                        }
                    }
                    ("delete", _) => {
                        self.services.remove(&sid);
                    }
                    ("lock", rest) => {
                        let name = rest.first().copied().unwrap_or("backup").to_string();
                        self.guest_locks.insert(sid, name);
                    }
                    ("unlock", rest) => {
                        let matches = rest.first().is_none_or(|n| {
                            self.guest_locks.get(&sid).map(String::as_str) == Some(*n)
                        });
                        if matches {
                            self.guest_locks.remove(&sid);
                        }
                    }
                    ("manual-migrate", [n]) => {
                        let Some(target) = node_of(n) else { return };
                        let ignored = self
                            .services
                            .get(&sid)
                            .is_some_and(|e| e.config.state == RequestedState::Ignored);
                        let disarm_ignore = self
                            .manager_status
                            .disarm
                            .is_some_and(|d| d.mode == crate::crm::DisarmMode::Ignore);
                        if !(ignored || disarm_ignore) {
                            self.log_line(
                                "err",
                                self.now,
                                "hardware",
                                &format!(
                                    "manual-migrate of '{sid}' refused - service is managed by HA"
                                ),
                            );
                            return;
                        }
                        let Some(from) = self.services.get(&sid).map(|e| e.node.clone()) else {
                            return;
                        };
                        let was_running = self
                            .nodes
                            .get_mut(&from)
                            .is_some_and(|x| x.running.remove(&sid));
                        if let Some(e) = self.services.get_mut(&sid) {
                            e.node = target.clone();
                        }
                        if was_running {
                            if let Some(x) = self.nodes.get_mut(&target) {
                                x.running.insert(sid);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn crm_stop(&mut self, node: &NodeName) {
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

    /// Handles an exited CRM.
    pub fn crm_exited(&mut self, node: &NodeName) {
        let time = self.nodes.get(node).map_or(self.now, |n| n.crm_time);
        self.log_line("info", time, &format!("{node}/crm"), "exit (loop end)");
        let shutdown = self
            .nodes
            .get(node)
            .map_or(NodeShutdown::None, |n| n.shutdown);
        if let Some(n) = self.nodes.get_mut(node) {
            n.crm_stop = false;
        }
        match shutdown {
            NodeShutdown::Reboot => {
                self.power(node, false, "reboot");
                self.power(node, true, "reboot");
            }
            NodeShutdown::Shutdown => self.power(node, false, "shutdown"),
            NodeShutdown::None => {}
        }
    }

    /// Handles an exited LRM.
    pub fn lrm_exited(&mut self, node: &NodeName) {
        let time = self.nodes.get(node).map_or(self.now, |n| n.lrm_time);
        self.log_line("info", time, &format!("{node}/lrm"), "exit (loop end)");
        if let Some(last_feed) = self.watchdogs.remove(&(node.clone(), WatchdogOwner::Lrm)) {
            // The mux fails the client at once: the device runs out one
            // device timeout from now, or earlier if the client's own
            // deadline was nearer.
            let mux = lease::millis(self.timing.profile.mux_client_timeout);
            self.watchdogs.insert(
                (node.clone(), WatchdogOwner::Abandoned),
                last_feed.min(time.saturating_sub(mux)),
            );
        }
        let (restart, shutdown, has_crm) = self
            .nodes
            .get(node)
            .map_or((false, NodeShutdown::None, false), |n| {
                (n.lrm_restart, n.shutdown, n.crm.is_some())
            });
        if restart {
            if let Some(n) = self.nodes.get_mut(node) {
                n.lrm_restart = false;
            }
            self.start_lrm(node);
            return;
        }
        let kind = match shutdown {
            NodeShutdown::Reboot => "reboot",
            NodeShutdown::Shutdown => "shutdown",
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

    /// All nodes a service is running on.
    pub fn running_on(&self, sid: &Sid) -> Vec<NodeName> {
        self.nodes
            .iter()
            .filter(|(_, x)| x.running.contains(sid))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Records a violation for every service running on two nodes.
    pub fn check_double_running(&mut self) {
        let mut seen: BTreeMap<&Sid, Vec<&NodeName>> = BTreeMap::new();
        for (name, n) in &self.nodes {
            for sid in &n.running {
                seen.entry(sid).or_default().push(name);
            }
        }
        let bad: Vec<String> = seen
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(sid, v)| {
                let list: Vec<&str> = v.iter().map(|n| n.as_str()).collect();
                format!(
                    "service '{sid}' running on two nodes at once ({})",
                    list.join(", ")
                )
            })
            .collect();
        for b in bad {
            if !self.violations.iter().any(|v| v.ends_with(&b)) {
                self.violation(b);
            }
        }
    }
}

/// The simulated resources (spec section 8.5) as seen during one LRM
/// iteration: disjoint borrows of the world. Config moves are applied
/// after the iteration (one command per service per iteration, so nothing
/// reads them earlier).
struct ResourceSim<'a> {
    nodes: &'a mut BTreeMap<NodeName, SimNode>,
    services: &'a BTreeMap<Sid, ConfiguredResource>,
    guest_locks: &'a BTreeMap<Sid, String>,
    fa_tries: &'a mut BTreeMap<(Sid, &'static str), u32>,
    violations: &'a mut Vec<String>,
    now_label: String,
    moves: Vec<(Sid, NodeName)>,
}

impl ResourceSim<'_> {
    fn violation(&mut self, msg: String) {
        self.violations.push(format!("{}: {msg}", self.now_label));
    }

    fn fa_params(sid: &Sid) -> (u32, u32, u32, u32) {
        let digits: Vec<u32> = sid.name().chars().filter_map(|c| c.to_digit(10)).collect();
        let get = |i: usize, d: u32| digits.get(i).copied().unwrap_or(d);
        (get(1, 0), get(2, 0), get(3, 0), get(5, 0))
    }

    fn fa_fails(&mut self, sid: &Sid, node: &NodeName, what: &'static str) -> bool {
        if sid.kind() != "fa" {
            return false;
        }
        let (start, migrate, _, limit) = Self::fa_params(sid);
        let count = if what == "start" { start } else { migrate };
        if limit == 0 || node.as_str() == format!("node{limit}") {
            let tries = self.fa_tries.entry((sid.clone(), what)).or_insert(0);
            *tries += 1;
            if count >= *tries {
                return true;
            }
        }
        self.fa_tries.insert((sid.clone(), what), 0);
        false
    }

    fn sim_start(&mut self, sid: &Sid, node: &NodeName, log: &mut Vec<LrmStep>) {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to start!"),
            );
            return;
        }
        if self.fa_fails(sid, node, "start") {
            return;
        }
        let others: Vec<NodeName> = self
            .nodes
            .iter()
            .filter(|(n, x)| *n != node && x.power && x.running.contains(sid))
            .map(|(n, _)| n.clone())
            .collect();
        for other in others {
            self.violation(format!(
                "service '{sid}' started on '{node}' while still running on '{other}' (running on two nodes)"
            ));
        }
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.insert(sid.clone());
        }
    }

    fn sim_shutdown(&mut self, sid: &Sid, node: &NodeName, log: &mut Vec<LrmStep>) {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to shutdown!"),
            );
            return;
        }
        if sid.kind() == "fa" && Self::fa_params(sid).2 != 0 {
            return;
        }
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.remove(sid);
        }
    }

    fn sim_migrate(
        &mut self,
        sid: &Sid,
        node: &NodeName,
        target: &NodeName,
        mut online: bool,
        log: &mut Vec<LrmStep>,
    ) -> bool {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to migrate!"),
            );
            return false;
        }
        if self.fa_fails(sid, node, "migrate") {
            return false;
        }
        let running = self.is_running(sid, node);
        if online && sid.kind() == "ct" && running {
            log_step(
                log,
                Level::Info,
                "unable to live migrate running container, fallback to relocate",
            );
            online = false;
        }
        let cmd = if online { "migrate" } else { "relocate" };
        log_step(
            log,
            Level::Info,
            format!("service {sid} - start {cmd} to node '{target}'"),
        );
        if !online && running {
            log_step(
                log,
                Level::Info,
                format!("stopping service {sid} (relocate)"),
            );
            self.sim_shutdown(sid, node, log);
            log_step(log, Level::Info, format!("service status {sid} stopped"));
        }
        self.moves.push((sid.clone(), target.clone()));
        log_step(
            log,
            Level::Info,
            format!("service {sid} - end {cmd} to node '{target}'"),
        );
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.remove(sid);
        }
        true
    }

    fn is_running(&self, sid: &Sid, node: &NodeName) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|x| x.running.contains(sid))
    }
}

struct SimExecutor<'a> {
    sim: ResourceSim<'a>,
    node: NodeName,
}

impl Executor for SimExecutor<'_> {
    fn execute(&mut self, req: &CommandRequest, log: &mut Vec<LrmStep>) -> Option<i32> {
        let sid = &req.sid;
        let w = &mut self.sim;
        let node = self.node.clone();
        if !matches!(sid.kind(), "vm" | "ct" | "fa") {
            log_step(
                log,
                Level::Err,
                format!("service type '{}' not implemented", sid.kind()),
            );
            return Some(exit_code::EUNKNOWN_SERVICE_TYPE);
        }
        let Some(cfg_node) = w.services.get(sid).map(|e| e.node.clone()) else {
            log_step(
                log,
                Level::Err,
                format!("missing resource configuration for '{sid}'"),
            );
            return Some(exit_code::EUNKNOWN_SERVICE);
        };
        if req.command == ServiceState::Error {
            log_step(
                log,
                Level::Err,
                format!("service {sid} is in an error state and needs manual intervention. Look up 'ERROR RECOVERY' in the documentation."),
            );
            return Some(exit_code::SUCCESS);
        }
        if cfg_node != node {
            log_step(log, Level::Err, format!("service '{sid}' not on this node"));
            return Some(exit_code::EWRONG_NODE);
        }
        let running = w.is_running(sid, &node);
        let code = match req.command {
            ServiceState::Started => {
                if running {
                    exit_code::SUCCESS
                } else {
                    log_step(log, Level::Info, format!("starting service {sid}"));
                    w.sim_start(sid, &node, log);
                    if w.is_running(sid, &node) {
                        log_step(log, Level::Info, format!("service status {sid} started"));
                        exit_code::SUCCESS
                    } else {
                        log_step(
                            log,
                            Level::Warning,
                            format!("unable to start service {sid}"),
                        );
                        exit_code::ERROR
                    }
                }
            }
            ServiceState::RequestStop | ServiceState::Stopped => {
                if !running {
                    exit_code::SUCCESS
                } else {
                    match req.timeout {
                        Some(t) => log_step(
                            log,
                            Level::Info,
                            format!("stopping service {sid} (timeout={t})"),
                        ),
                        None => log_step(log, Level::Info, format!("stopping service {sid}")),
                    }
                    w.sim_shutdown(sid, &node, log);
                    if w.is_running(sid, &node) {
                        log_step(
                            log,
                            Level::Info,
                            format!("unable to stop service {sid} (still running)"),
                        );
                        exit_code::ERROR
                    } else {
                        log_step(log, Level::Info, format!("service status {sid} stopped"));
                        exit_code::SUCCESS
                    }
                }
            }
            ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => {
                match &req.target {
                    None => exit_code::EINVALID_PARAMETER,
                    Some(t) if *t == cfg_node => exit_code::SUCCESS,
                    Some(_) if req.command == ServiceState::RequestStartBalance && running => {
                        exit_code::IGNORED
                    }
                    Some(t) => {
                        let online = req.command == ServiceState::Migrate;
                        if w.sim_migrate(sid, &node, t, online, log) {
                            exit_code::SUCCESS
                        } else {
                            log_step(
                                log,
                                Level::Err,
                                format!("service {sid} not moved (migration error)"),
                            );
                            exit_code::ERROR
                        }
                    }
                }
            }
            other => {
                log_step(log, Level::Err, format!("implement me (cmd '{other}')"));
                exit_code::EUNKNOWN_COMMAND
            }
        };
        Some(code)
    }
}

/// A lease client of a daemon run.
fn node_lease(name: &str, node: &NodeName, incarnation: u64, timing: &SimTiming) -> NodeLease {
    NodeLease::new(name, node.as_str(), incarnation, &timing.profile)
}

/// Converts a scenario service entry to what the CRM reads.
pub fn configured(
    sid: &Sid,
    e: &ServiceEntry,
    groups: &[crate::domain::GroupConfig],
) -> ConfiguredResource {
    let mut config = ResourceConfig::with_defaults(sid.clone());
    config.state = e.state;
    config.failback = e.failback;
    config.max_restart = e.max_restart;
    config.max_relocate = e.max_relocate;
    config.group = e.group.clone();
    config.failback = crate::config::effective_failback(&config, groups);
    ConfiguredResource {
        config,
        node: e.node.clone(),
    }
}
