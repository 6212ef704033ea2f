//! The simulated cluster: hardware, the cluster store (locks, manager
//! status, LRM status, command queue, service config), watchdogs and the
//! simulated resources (spec sections 5.4, 8.2, 8.5).

use std::collections::{BTreeMap, BTreeSet};

use crate::crm::Level;
use crate::crm::{
    exit_code, ConfiguredResource, CrmAction, CrmDaemon, CrmStep, LogEvent, ManagerStatus,
    NodeAffinity, ServiceState,
};
use crate::domain::{NodeName, RequestedState, ResourceConfig, ShutdownPolicy, Sid};
use crate::lrm::{
    log_step, CommandRequest, Executor, Lrm, LrmAction, LrmStatus, LrmStep, NodeShutdown,
};

use super::scenario::{Scenario, ServiceEntry};

/// The pve-manager version of a node whose `hardware_status` entry has
/// none (spec 8.2). It is older than the group migration minimum, so
/// groups are only migrated in scenarios that set versions.
pub const DEFAULT_PVE_MANAGER_VERSION: &str = "9.0.0~2";

/// Timing of one simulator profile (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTiming {
    /// `pve` or `default`.
    pub name: &'static str,
    /// Time one daemon iteration takes.
    pub step_ms: u64,
    /// Minimum round length.
    pub looptime_ms: u64,
    /// Lock expiry.
    pub lock_timeout_ms: u64,
    /// Watchdog expiry.
    pub watchdog_timeout_ms: u64,
    /// Offline time before fencing.
    pub fence_delay_ms: u64,
    /// Quiet time after the last command before the run ends.
    pub end_quiet_ms: u64,
    /// Hard limit of simulated time.
    pub max_time_ms: u64,
    /// Multiplier for `delay` seconds.
    pub delay_scale_ms: u64,
    /// The CRM master holds a watchdog (pve behaviour).
    pub crm_watchdog: bool,
    /// The daemon round interval of the modelled profile (10 s in pve,
    /// 1 s in ours); only used in log texts that quote a duration in
    /// rounds ("retry ha groups migration in 6 rounds (~ 60 seconds)").
    pub nominal_round_ms: u64,
}

impl SimTiming {
    /// Proxmox's simulator timing (spec sections 8.3 and 10).
    pub const PVE: SimTiming = SimTiming {
        name: "pve",
        step_ms: 1000,
        looptime_ms: 20_000,
        lock_timeout_ms: 120_000,
        watchdog_timeout_ms: 60_000,
        fence_delay_ms: 60_000,
        end_quiet_ms: 500_000,
        max_time_ms: 10_000_000,
        delay_scale_ms: 1000,
        crm_watchdog: true,
        nominal_round_ms: 10_000,
    };

    /// Our default profile (TimingProfile::DEFAULT): 1 s daemon rounds,
    /// so every harness interval is a tenth of pve's; lease ttl 13 s,
    /// watchdog = mux client timeout + device timeout = 10 s, fence delay
    /// 2 s; the CRM holds no watchdog (it acts only through committed
    /// writes).
    pub const DEFAULT: SimTiming = SimTiming {
        name: "default",
        step_ms: 100,
        looptime_ms: 2000,
        lock_timeout_ms: 13_000,
        watchdog_timeout_ms: 10_000,
        fence_delay_ms: 2000,
        end_quiet_ms: 50_000,
        max_time_ms: 1_000_000,
        delay_scale_ms: 100,
        crm_watchdog: false,
        nominal_round_ms: 1000,
    };
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
}

#[derive(Debug, Clone)]
struct LockEntry {
    node: NodeName,
    time: u64,
}

/// Which daemon owns a watchdog handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchdogOwner {
    /// The CRM.
    Crm,
    /// The LRM.
    Lrm,
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
    locks: BTreeMap<String, LockEntry>,
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
                    },
                )
            })
            .collect();
        World {
            timing,
            now: 0,
            nodes,
            locks: BTreeMap::new(),
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

    fn lock_available(&self, name: &str, me: &NodeName, time: u64) -> bool {
        if !self.quorate_for(me) {
            return false;
        }
        match self.locks.get(name) {
            None => true,
            Some(l) => &l.node == me || time.saturating_sub(l.time) > self.timing.lock_timeout_ms,
        }
    }

    fn take_lock(&mut self, name: &str, me: &NodeName, time: u64, source: &str) {
        let fresh = match self.locks.get(name) {
            None => true,
            Some(l) => &l.node != me || time.saturating_sub(l.time) > self.timing.lock_timeout_ms,
        };
        if fresh {
            self.log_line("info", time, source, &format!("got lock '{name}'"));
        }
        self.locks.insert(
            name.to_string(),
            LockEntry {
                node: me.clone(),
                time,
            },
        );
    }

    fn release_lock(&mut self, name: &str, me: &NodeName) {
        if self.locks.get(name).is_some_and(|l| &l.node == me) {
            self.locks.remove(name);
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
        let takeable: BTreeSet<NodeName> = self
            .nodes
            .keys()
            .filter(|m| self.lock_available(&format!("ha_agent_{m}_lock"), node, time))
            .cloned()
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
                manager_lock_available: self.lock_available("ha_manager_lock", node, time),
                manager: crate::crm::ManagerInput {
                    now_ms: time,
                    membership: &membership,
                    resources: &self.services,
                    node_affinity: &affinity,
                    lrm_status: &self.lrm_status,
                    crm_commands: &self.crm_commands,
                    takeable_agent_locks: &takeable,
                    guest_locks: &self.guest_locks,
                    fence_delay_ms: self.timing.fence_delay_ms,
                    group_migration: crate::crm::GroupMigrationInput {
                        groups: &self.groups,
                        node_versions: &self.node_versions,
                        round_interval_ms: self.timing.nominal_round_ms,
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
        self.apply_crm_steps(node, time, &source, output.steps);
        if let Some(ms) = output.manager_status {
            self.manager_status = ms;
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

    /// Applies CRM steps in order.
    pub fn apply_crm_steps(
        &mut self,
        node: &NodeName,
        time: u64,
        source: &str,
        steps: Vec<CrmStep>,
    ) {
        for step in steps {
            match step {
                CrmStep::Log(ev) => self.log_event(time, source, &ev),
                CrmStep::Do(action) => self.apply_crm_action(node, time, source, action),
            }
        }
    }

    fn log_event(&mut self, time: u64, source: &str, ev: &LogEvent) {
        self.log_line(ev.level.tag(), time, source, &ev.message);
    }

    fn apply_crm_action(&mut self, node: &NodeName, time: u64, source: &str, action: CrmAction) {
        match action {
            CrmAction::TakeManagerLock => self.take_lock("ha_manager_lock", node, time, source),
            CrmAction::ReleaseManagerLock => self.release_lock("ha_manager_lock", node),
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
                let name = format!("ha_agent_{target}_lock");
                let holder = self.locks.get(&name).map(|l| l.node.clone());
                if holder.as_ref() == Some(&target)
                    && self
                        .watchdogs
                        .contains_key(&(target.clone(), WatchdogOwner::Lrm))
                    && self.nodes.get(&target).is_some_and(|n| n.power)
                {
                    self.violation(format!(
                        "lease '{name}' taken over while the watchdog of '{target}' had not fired"
                    ));
                }
                self.take_lock(&name, node, time, source);
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
            CrmAction::ConsumeCrmCommands => self.crm_commands.clear(),
            CrmAction::MigrateGroups => self.migrate_groups(time, source),
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
        let lock_ok = self.lock_available(&format!("ha_agent_{node}_lock"), node, time);
        let now_label = self.fmt_time(time).trim().to_string();
        let (output, moves) = {
            let World {
                nodes,
                services,
                guest_locks,
                fa_tries,
                violations,
                manager_status,
                ..
            } = self;
            let input = crate::lrm::LrmInput {
                now_ms: time,
                quorate,
                cluster_state_ok: cfs_update,
                cfs_rw_ok: cfs_rw,
                manager_status,
                agent_lock_available: lock_ok,
                resources: services,
                max_workers: 0,
                finished: Vec::new(),
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
            let out = lrm.iterate(&input, &mut exec);
            (out, exec.sim.moves)
        };
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
                    let lock = format!("ha_agent_{node}_lock");
                    match action {
                        LrmAction::TakeAgentLock => self.take_lock(&lock, node, time, source),
                        LrmAction::ReleaseAgentLock => self.release_lock(&lock, node),
                        LrmAction::WatchdogOpen | LrmAction::WatchdogUpdate => {
                            self.watchdogs
                                .insert((node.clone(), WatchdogOwner::Lrm), time);
                        }
                        LrmAction::WatchdogClose => {
                            self.watchdogs.remove(&(node.clone(), WatchdogOwner::Lrm));
                        }
                    }
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
            agent_lock_available: false,
            resources: &self.services,
            max_workers: 0,
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
        let timeout = self.timing.watchdog_timeout_ms;
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
