//! The manager round (spec section 3.4): node states, the service state
//! machine, the CRM command queue, fencing and recovery. Sans-IO: the round
//! reads an input snapshot and returns ordered steps; the new manager
//! status is [`Manager::status`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::{NodeName, RequestedState, ResourceConfig, Sid};
use crate::lrm::{LrmMode, LrmStatus};

use super::fencing::{AgentLease, FenceEvidence};
use super::group_migration::{GroupMigration, GroupMigrationInput};
use super::output::{CrmAction, Level, Steps};
use super::select::{select_service_node, NodeAffinity, Preference, Usage};
use super::status::{
    exit_code, Disarm, DisarmMode, DisarmState, LrmResult, ManagerStatus, NodeState, ServiceRecord,
    ServiceState,
};

/// Locks removed from a recovered guest before it is started (spec 6).
pub const REMOVABLE_LOCKS: [&str; 9] = [
    "backup",
    "mounted",
    "migrate",
    "clone",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];

/// How long a `gone` node stays in the table (ms).
pub const GONE_NODE_DELETE_MS: u64 = 3_600_000;

/// A configured resource with its current node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredResource {
    /// The resource options (with the effective failback of its group).
    pub config: ResourceConfig,
    /// The node the guest currently lives on.
    pub node: NodeName,
}

/// Everything one manager round reads.
#[derive(Debug, Clone, Copy)]
pub struct ManagerInput<'a> {
    /// The time (ms).
    pub now_ms: u64,
    /// Cluster members -> online (already false for everyone without quorum).
    pub membership: &'a BTreeMap<NodeName, bool>,
    /// Configured resources.
    pub resources: &'a BTreeMap<Sid, ConfiguredResource>,
    /// Compiled node-affinity rules.
    pub node_affinity: &'a BTreeMap<Sid, NodeAffinity>,
    /// LRM status per node (missing node = empty document).
    pub lrm_status: &'a BTreeMap<NodeName, LrmStatus>,
    /// Pending CRM command lines (the shell clears them on
    /// [`CrmAction::ConsumeCrmCommands`]).
    pub crm_commands: &'a [String],
    /// Every member's agent lease as the leader sees it (a node missing
    /// here has none): the fencing evidence.
    pub agent_leases: &'a BTreeMap<NodeName, AgentLease>,
    /// Configured resources that are on no node yet (just added; the CRM
    /// places them with [`CrmAction::PlaceResource`]).
    pub unplaced: &'a [ResourceConfig],
    /// Guest config locks (`backup`, ...).
    pub guest_locks: &'a BTreeMap<Sid, String>,
    /// Offline time before a node is fenced (ms).
    pub fence_delay_ms: u64,
    /// Groups and node versions for the persistent group migration.
    pub group_migration: GroupMigrationInput<'a>,
}

/// The master's in-memory state.
#[derive(Debug, Clone)]
pub struct Manager {
    node: NodeName,
    ms: ManagerStatus,
    last_online: BTreeMap<NodeName, u64>,
    usage: Usage,
    moved: BTreeMap<Sid, NodeName>,
    group_migration: GroupMigration,
    /// Nodes whose unguarded lease was reported (once per fence).
    reported_unguarded: BTreeSet<NodeName>,
    /// New services reported as having no allowed online node.
    reported_unplaceable: BTreeSet<Sid>,
    /// Runs only on the Raft leader: manages while its own node is in
    /// `fence`.
    leader_only: bool,
}

/// A node whose LRM reports that its watchdog cannot protect it counts as
/// offline: it takes no services, and those it has are fenced (its lease
/// runs out, as it renews nothing) and recovered elsewhere.
fn watchdog_broken(input: &ManagerInput<'_>, node: &NodeName) -> bool {
    input
        .lrm_status
        .get(node)
        .is_some_and(|l| l.watchdog_problem.is_some())
}

fn requested(input: &ManagerInput<'_>, sid: &Sid) -> RequestedState {
    input
        .resources
        .get(sid)
        .map_or(RequestedState::Disabled, |r| r.config.state)
}

impl Manager {
    /// A new master taking over from `old` (spec section 3.3).
    pub fn new(node: NodeName, old: &ManagerStatus) -> Self {
        let ms = ManagerStatus {
            master_node: Some(node.clone()),
            timestamp: old.timestamp,
            node_status: old.node_status.clone(),
            service_status: old.service_status.clone(),
            node_request: old.node_request.clone(),
            disarm: old.disarm,
            uid_seq: old.uid_seq,
        };
        Manager {
            node,
            ms,
            last_online: BTreeMap::new(),
            usage: Usage::new(),
            moved: BTreeMap::new(),
            group_migration: GroupMigration::default(),
            reported_unguarded: BTreeSet::new(),
            reported_unplaceable: BTreeSet::new(),
            leader_only: false,
        }
    }

    /// This master runs only on the Raft leader (see
    /// [`CrmDaemon::set_leader_only`](super::CrmDaemon::set_leader_only)):
    /// it keeps managing while its own node is in `fence`, and fences it
    /// itself once its lease expired.
    pub fn set_leader_only(&mut self, leader_only: bool) {
        self.leader_only = leader_only;
    }

    /// Forgets the decisions of a round whose writes did not all commit
    /// (a lock action or the status write failed): the manager status is
    /// taken again from the store. Offline timers are kept.
    pub fn resync(&mut self, stored: &ManagerStatus) {
        let fresh = Manager::new(self.node.clone(), stored);
        self.ms = fresh.ms;
        self.moved.clear();
    }

    /// The current manager status (what the last round wrote).
    pub fn status(&self) -> &ManagerStatus {
        &self.ms
    }

    fn node_state(&self, node: &NodeName) -> NodeState {
        self.ms
            .node_status
            .get(node)
            .copied()
            .unwrap_or(NodeState::Unknown)
    }

    fn set_node_state(&mut self, out: &mut Steps, node: &NodeName, state: NodeState) {
        let old = self.node_state(node);
        if old == state {
            return;
        }
        self.ms.node_status.insert(node.clone(), state);
        out.info(format!(
            "node '{node}': state changed from '{old}' => '{state}'"
        ));
    }

    fn node_is_online(&self, node: &NodeName) -> bool {
        self.node_state(node) == NodeState::Online
    }

    fn agent_lease(input: &ManagerInput<'_>, node: &NodeName) -> AgentLease {
        input
            .agent_leases
            .get(node)
            .copied()
            .unwrap_or(AgentLease::Free)
    }

    fn offline_delayed(&mut self, node: &NodeName, now: u64, delay: u64) -> bool {
        if self.node_is_online(node) {
            return false;
        }
        match self.last_online.get(node) {
            None => {
                self.last_online.insert(node.clone(), now);
                false
            }
            Some(last) => now.saturating_sub(*last) >= delay,
        }
    }

    fn new_uid(&mut self) -> String {
        self.ms.uid_seq += 1;
        format!("{:x}", self.ms.uid_seq)
    }

    fn update_nodes(
        &mut self,
        input: &ManagerInput<'_>,
        modes: &BTreeMap<NodeName, LrmMode>,
        out: &mut Steps,
    ) {
        for (node, online) in input.membership {
            if !online || watchdog_broken(input, node) {
                continue;
            }
            self.last_online.insert(node.clone(), input.now_ms);
            let mode = modes.get(node).copied().unwrap_or(LrmMode::Active);
            match self.node_state(node) {
                NodeState::Online => {
                    if mode == LrmMode::Maintenance {
                        self.set_node_state(out, node, NodeState::Maintenance);
                    }
                }
                NodeState::Maintenance => {
                    if mode != LrmMode::Maintenance {
                        self.set_node_state(out, node, NodeState::Online);
                    }
                }
                NodeState::Unknown | NodeState::Gone => {
                    self.set_node_state(out, node, NodeState::Online)
                }
                NodeState::Fence => {}
            }
        }
        let known: Vec<NodeName> = self.ms.node_status.keys().cloned().collect();
        for node in known {
            let member = input.membership.get(&node);
            if member == Some(&true) && !watchdog_broken(input, &node) {
                continue;
            }
            match self.node_state(&node) {
                NodeState::Online => self.set_node_state(out, &node, NodeState::Unknown),
                NodeState::Maintenance => {
                    if modes.get(&node) != Some(&LrmMode::Maintenance) {
                        self.set_node_state(out, &node, NodeState::Unknown);
                    }
                }
                NodeState::Unknown => {
                    if member.is_none() {
                        self.set_node_state(out, &node, NodeState::Gone);
                    }
                }
                NodeState::Fence => {}
                NodeState::Gone => {
                    if self.offline_delayed(&node, input.now_ms, GONE_NODE_DELETE_MS) {
                        out.info(format!(
                            "deleting gone node '{node}', not a cluster member anymore."
                        ));
                        self.ms.node_status.remove(&node);
                    }
                }
            }
        }
    }

    fn recompute_usage(&mut self) {
        let mut usage: Usage = self
            .ms
            .node_status
            .iter()
            .filter(|(_, s)| **s == NodeState::Online)
            .map(|(n, _)| (n.clone(), 0))
            .collect();
        for sd in self.ms.service_status.values() {
            if usage.contains_key(&sd.node) {
                match sd.state {
                    ServiceState::Started
                    | ServiceState::RequestStop
                    | ServiceState::Fence
                    | ServiceState::Freeze
                    | ServiceState::Error
                    | ServiceState::Recovery => {
                        if let Some(c) = usage.get_mut(&sd.node) {
                            *c += 1;
                        }
                    }
                    ServiceState::Migrate
                    | ServiceState::Relocate
                    | ServiceState::RequestStartBalance => {
                        if sd.state != ServiceState::RequestStartBalance {
                            if let Some(c) = usage.get_mut(&sd.node) {
                                *c += 1;
                            }
                        }
                        if let Some(t) = &sd.target {
                            if let Some(c) = usage.get_mut(t) {
                                *c += 1;
                            }
                        }
                    }
                    ServiceState::Stopped | ServiceState::RequestStart => {}
                }
            } else if let Some(t) = &sd.target {
                if matches!(sd.state, ServiceState::Migrate | ServiceState::Relocate) {
                    if let Some(c) = usage.get_mut(t) {
                        *c += 1;
                    }
                }
            }
        }
        self.usage = usage;
    }

    fn add_usage(&mut self, node: &NodeName) {
        if let Some(c) = self.usage.get_mut(node) {
            *c += 1;
        }
    }

    /// The state change primitive (spec section 3.6).
    fn change_state(
        &mut self,
        out: &mut Steps,
        sid: &Sid,
        new: ServiceState,
        node: Option<NodeName>,
        target: Option<NodeName>,
        timeout: Option<u64>,
    ) {
        let uid = self.new_uid();
        let Some(sd) = self.ms.service_status.get_mut(sid) else {
            return;
        };
        let old = sd.state;
        let mut fresh = ServiceRecord::new(new, node.clone().unwrap_or_else(|| sd.node.clone()));
        fresh.failed_nodes = sd.failed_nodes.take();
        fresh.maintenance_node = sd.maintenance_node.take();
        fresh.target = target.clone();
        fresh.timeout = timeout;
        fresh.uid = Some(uid);
        *sd = fresh;
        let mut params = Vec::new();
        if let Some(n) = &node {
            params.push(format!("node = {n}"));
        }
        if let Some(t) = &target {
            params.push(format!("target = {t}"));
        }
        if let Some(t) = timeout {
            params.push(format!("timeout = {t}"));
        }
        let text = if params.is_empty() {
            String::new()
        } else {
            format!("  ({})", params.join(", "))
        };
        out.info(format!(
            "service '{sid}': state changed from '{old}' to '{new}'{text}"
        ));
    }

    fn config_node(&self, input: &ManagerInput<'_>, sid: &Sid) -> Option<NodeName> {
        self.moved
            .get(sid)
            .cloned()
            .or_else(|| input.resources.get(sid).map(|r| r.node.clone()))
    }

    /// Runs one manager round. Returns true if the status must be written
    /// (false when this node sees itself offline).
    pub fn manage(&mut self, input: &ManagerInput<'_>, out: &mut Steps) -> bool {
        self.moved.clear();
        let mut results: HashMap<&str, &LrmResult> = HashMap::new();
        let mut modes: BTreeMap<NodeName, LrmMode> = BTreeMap::new();
        for node in self.ms.node_status.keys() {
            let status = input.lrm_status.get(node);
            modes.insert(
                node.clone(),
                status.map_or(LrmMode::Active, LrmStatus::mode_or_active),
            );
            if let Some(st) = status {
                for (uid, res) in &st.results {
                    results.entry(uid.as_str()).or_insert(res);
                }
            }
        }
        self.update_nodes(input, &modes, out);
        let me = self.node.clone();
        let my_state = self.node_state(&me);
        let fencing_me = my_state == NodeState::Fence && self.leader_only;
        if my_state != NodeState::Online && my_state != NodeState::Maintenance && !fencing_me {
            out.info("master seems offline");
            return false;
        }

        self.group_migration.round(
            &input.group_migration,
            &self.ms,
            input.membership,
            input.lrm_status,
            input.resources,
            out,
        );

        if self.ms.disarm.is_none() {
            self.place_new(input, out);
            self.sync_services_with_config(input, out);
        }

        self.apply_crm_commands(input, out);

        let mut only: Option<BTreeSet<Sid>> = None;
        if let Some(disarm) = self.ms.disarm {
            match self.disarm_round(input, &modes, disarm, out) {
                DisarmOutcome::Done => {
                    self.ms.timestamp = input.now_ms / 1000;
                    return true;
                }
                DisarmOutcome::Deferred(sids) => only = Some(sids),
            }
        }

        self.state_machine_loop(input, &results, &modes, only.as_ref(), out);
        self.ms.timestamp = input.now_ms / 1000;
        true
    }

    /// Places configured resources that are on no node yet (just added) on
    /// the best online node their node affinity allows, least loaded
    /// first, as a recovery would choose. They are tracked from the round
    /// after the shell carried out the placement.
    fn place_new(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        if input.unplaced.is_empty() {
            self.reported_unplaceable.clear();
            return;
        }
        self.recompute_usage();
        for config in input.unplaced {
            let sid = &config.sid;
            let probe = ServiceRecord::new(ServiceState::RequestStart, self.node.clone());
            let selected = select_service_node(
                &self.usage,
                input.node_affinity.get(sid),
                config.failback,
                &probe,
                Preference::BestScore,
            );
            match selected {
                Some(node) => {
                    self.reported_unplaceable.remove(sid);
                    out.info(format!("placing new service '{sid}' on node '{node}'"));
                    self.add_usage(&node);
                    out.act(CrmAction::PlaceResource {
                        sid: sid.clone(),
                        node,
                    });
                }
                None => {
                    if self.reported_unplaceable.insert(sid.clone()) {
                        out.log(
                            Level::Warning,
                            format!("no allowed node is online for new service '{sid}': it waits for one"),
                        );
                    }
                }
            }
        }
    }

    /// Adds configured services that are not tracked yet and removes
    /// tracked ones that are gone from the config or ignored (spec 3.4
    /// step 8). Both maps are sorted by SID, so one merge finds both.
    fn sync_services_with_config(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        use std::cmp::Ordering;
        let mut add: Vec<&Sid> = Vec::new();
        let mut stale: Vec<(Sid, &str)> = Vec::new();
        let mut confs = input.resources.iter().peekable();
        let mut tracked = self.ms.service_status.keys().peekable();
        loop {
            match (confs.peek(), tracked.peek()) {
                (Some((c, r)), Some(t)) => match (*c).cmp(*t) {
                    Ordering::Less => {
                        if r.config.state != RequestedState::Ignored {
                            add.push(c);
                        }
                        confs.next();
                    }
                    Ordering::Greater => {
                        stale.push(((*t).clone(), "no config"));
                        tracked.next();
                    }
                    Ordering::Equal => {
                        if r.config.state == RequestedState::Ignored {
                            stale.push(((*t).clone(), "ignored state requested"));
                        }
                        confs.next();
                        tracked.next();
                    }
                },
                (Some((c, r)), None) => {
                    if r.config.state != RequestedState::Ignored {
                        add.push(c);
                    }
                    confs.next();
                }
                (None, Some(t)) => {
                    stale.push(((*t).clone(), "no config"));
                    tracked.next();
                }
                (None, None) => break,
            }
        }
        for sid in add {
            let Some(res) = input.resources.get(sid) else {
                continue;
            };
            out.info(format!("adding new service '{sid}' on node '{}'", res.node));
            let state = if res.config.state == RequestedState::Started {
                ServiceState::RequestStart
            } else {
                ServiceState::RequestStop
            };
            let mut sd = ServiceRecord::new(state, res.node.clone());
            sd.uid = Some(self.new_uid());
            self.ms.service_status.insert(sid.clone(), sd);
        }
        for (sid, reason) in stale {
            out.info(format!("removing stale service '{sid}' ({reason})"));
            self.ms.service_status.remove(&sid);
        }
    }

    fn apply_crm_commands(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        if input.crm_commands.is_empty() {
            return;
        }
        out.act(CrmAction::ConsumeCrmCommands);
        for line in input.crm_commands {
            let cmd = line.trim_end();
            let words: Vec<&str> = cmd.split_whitespace().collect();
            match words.as_slice() {
                [task @ ("migrate" | "relocate"), sid, node] => {
                    let (Ok(sid), Ok(node)) = (sid.parse::<Sid>(), node.parse::<NodeName>()) else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    match self.ms.service_status.get_mut(&sid) {
                        None => out.log(
                            Level::Err,
                            format!("crm command error - no such service: {cmd}"),
                        ),
                        Some(sd) => {
                            if self.ms.node_status.get(&node) != Some(&NodeState::Online) {
                                out.log(
                                    Level::Err,
                                    format!("crm command error - node not online: {cmd}"),
                                );
                            } else if sd.node == node {
                                out.info(format!(
                                    "ignore crm command - service already on target node: {cmd}"
                                ));
                            } else {
                                out.info(format!("got crm command: {cmd}"));
                                sd.cmd = Some(vec![task.to_string(), node.to_string()]);
                            }
                        }
                    }
                }
                ["stop", sid, timeout] => {
                    let parsed = sid.parse::<Sid>().ok();
                    match parsed.and_then(|s| self.ms.service_status.get_mut(&s)) {
                        Some(sd) => {
                            out.info(format!("got crm command: {cmd}"));
                            sd.cmd = Some(vec!["stop".into(), timeout.to_string()]);
                        }
                        None => out.log(
                            Level::Err,
                            format!("crm command error - no such service: {cmd}"),
                        ),
                    }
                }
                ["enable-node-maintenance", node] => {
                    let Ok(node) = node.parse::<NodeName>() else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    if self.ms.disarm.is_some() {
                        out.log(
                            Level::Warning,
                            format!("ignoring crm command - HA is disarmed: {cmd}"),
                        );
                        continue;
                    }
                    match self.node_state(&node) {
                        NodeState::Online => {
                            self.ms.node_request.entry(node).or_default().maintenance = true;
                        }
                        NodeState::Maintenance => out.info(format!(
                            "ignoring crm command - node {node} is already in maintenance state"
                        )),
                        _ => out.log(
                            Level::Err,
                            format!("crm command error - node not online: {cmd}"),
                        ),
                    }
                }
                ["disable-node-maintenance", node] => {
                    let Ok(node) = node.parse::<NodeName>() else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    let state = self.node_state(&node);
                    if state != NodeState::Maintenance {
                        out.log(
                            Level::Warning,
                            format!(
                                "clearing maintenance of node {node} requested, but it's in state {state}"
                            ),
                        );
                    }
                    if let Some(req) = self.ms.node_request.get_mut(&node) {
                        req.maintenance = false;
                    }
                    self.ms.node_request.retain(|_, r| r.maintenance);
                }
                ["disarm-ha", mode @ ("freeze" | "ignore")] => {
                    if let Some(d) = self.ms.disarm {
                        out.log(
                            Level::Notice,
                            format!(
                                "ignoring disarm-ha command - already in disarm state ({})",
                                d.state.as_str()
                            ),
                        );
                        continue;
                    }
                    let mode = if *mode == "freeze" {
                        DisarmMode::Freeze
                    } else {
                        DisarmMode::Ignore
                    };
                    out.info(format!("got crm command: {cmd}"));
                    if mode == DisarmMode::Ignore {
                        for sid in self.ms.service_status.keys() {
                            out.info(format!(
                                "disarm: suspending HA tracking for service '{sid}'"
                            ));
                        }
                    }
                    self.ms.disarm = Some(Disarm {
                        mode,
                        state: DisarmState::Disarming,
                    });
                }
                ["arm-ha"] => {
                    let Some(disarm) = self.ms.disarm else {
                        out.log(
                            Level::Notice,
                            "ignoring arm-ha command - HA is not disarmed".to_string(),
                        );
                        continue;
                    };
                    out.info(format!("got crm command: {cmd}"));
                    if disarm.mode == DisarmMode::Ignore {
                        let sids: Vec<Sid> = self.ms.service_status.keys().cloned().collect();
                        for sid in sids {
                            let Some(cfg_node) = input.resources.get(&sid).map(|r| r.node.clone())
                            else {
                                continue;
                            };
                            if let Some(sd) = self.ms.service_status.get_mut(&sid) {
                                if sd.node != cfg_node {
                                    out.info(format!(
                                        "updating node of service '{sid}' from '{}' to '{cfg_node}' (changed while disarmed)",
                                        sd.node
                                    ));
                                    sd.node = cfg_node;
                                }
                            }
                        }
                    }
                    out.info("re-arming HA stack");
                    self.ms.disarm = None;
                }
                _ => out.log(Level::Err, format!("unable to parse crm command: {cmd}")),
            }
        }
    }

    fn disarm_round(
        &mut self,
        input: &ManagerInput<'_>,
        modes: &BTreeMap<NodeName, LrmMode>,
        disarm: Disarm,
        out: &mut Steps,
    ) -> DisarmOutcome {
        let mut deferred = BTreeSet::new();
        for (sid, sd) in &self.ms.service_status {
            let level = match sd.state {
                ServiceState::Fence | ServiceState::Recovery => Level::Warning,
                ServiceState::Migrate | ServiceState::Relocate => Level::Info,
                _ => continue,
            };
            out.log(
                level,
                format!(
                    "deferring disarm - service '{sid}' is in '{}' state",
                    sd.state
                ),
            );
            deferred.insert(sid.clone());
        }
        if !deferred.is_empty() {
            return DisarmOutcome::Deferred(deferred);
        }
        let sids: Vec<Sid> = self.ms.service_status.keys().cloned().collect();
        for sid in sids {
            let uid = self.new_uid();
            let Some(sd) = self.ms.service_status.get_mut(&sid) else {
                continue;
            };
            match disarm.mode {
                DisarmMode::Freeze => {
                    if matches!(
                        sd.state,
                        ServiceState::Started
                            | ServiceState::Stopped
                            | ServiceState::RequestStop
                            | ServiceState::RequestStart
                            | ServiceState::RequestStartBalance
                    ) {
                        out.info(format!(
                            "disarm: freezing service '{sid}' (was '{}')",
                            sd.state
                        ));
                        let mut fresh = ServiceRecord::new(ServiceState::Freeze, sd.node.clone());
                        fresh.maintenance_node = sd.maintenance_node.take();
                        fresh.uid = Some(uid);
                        *sd = fresh;
                    }
                }
                DisarmMode::Ignore => {
                    sd.target = None;
                    sd.timeout = None;
                    sd.running = false;
                    sd.cmd = None;
                }
            }
        }
        if disarm.state == DisarmState::Disarming {
            let all = self
                .ms
                .node_status
                .iter()
                .filter(|(_, s)| **s == NodeState::Online)
                .all(|(n, _)| modes.get(n) == Some(&LrmMode::Disarm));
            if all {
                out.info("all LRMs disarmed, HA stack is now fully disarmed");
                self.ms.disarm = Some(Disarm {
                    mode: disarm.mode,
                    state: DisarmState::Disarmed,
                });
            }
        }
        let _ = input;
        DisarmOutcome::Done
    }

    fn state_machine_loop(
        &mut self,
        input: &ManagerInput<'_>,
        results: &HashMap<&str, &LrmResult>,
        modes: &BTreeMap<NodeName, LrmMode>,
        only: Option<&BTreeSet<Sid>>,
        out: &mut Steps,
    ) {
        loop {
            let mut repeat = false;
            self.recompute_usage();
            let todo = self.pass_todo(input, results, modes, only);
            for sid in &todo {
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                let last = sd.state;
                let res = sd.uid.as_deref().and_then(|uid| results.get(uid).copied());
                match last {
                    ServiceState::Stopped => self.next_stopped(input, sid, out),
                    ServiceState::Started => self.next_started(input, sid, res, out),
                    ServiceState::RequestStart => {
                        let node = self.ms.service_status[sid].node.clone();
                        self.change_state(out, sid, ServiceState::Started, Some(node), None, None);
                    }
                    ServiceState::Migrate
                    | ServiceState::Relocate
                    | ServiceState::RequestStartBalance => {
                        self.next_migrate_relocate(input, sid, res, out)
                    }
                    ServiceState::Fence => {}
                    ServiceState::Recovery => self.next_recovery(input, sid, out),
                    ServiceState::RequestStop => self.next_request_stop(input, sid, res, out),
                    ServiceState::Freeze => {
                        let node = self.ms.service_status[sid].node.clone();
                        // Unfreeze only on an online node that holds its
                        // lease: frozen services run unprotected, and a
                        // node seen offline may run them still.
                        if modes.get(&node) == Some(&LrmMode::Active)
                            && self.node_is_online(&node)
                            && Self::agent_lease(input, &node).protects()
                        {
                            let new = if requested(input, sid) == RequestedState::Started {
                                ServiceState::Started
                            } else {
                                ServiceState::RequestStop
                            };
                            self.change_state(out, sid, new, None, None, None);
                        }
                    }
                    ServiceState::Error => {
                        if requested(input, sid) == RequestedState::Disabled {
                            if let Some(sd) = self.ms.service_status.get_mut(sid) {
                                sd.failed_nodes = None;
                            }
                            self.change_state(out, sid, ServiceState::Stopped, None, None, None);
                        }
                    }
                }
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                if modes.get(&sd.node) == Some(&LrmMode::Restart)
                    && matches!(
                        sd.state,
                        ServiceState::Started | ServiceState::Stopped | ServiceState::RequestStop
                    )
                {
                    self.change_state(out, sid, ServiceState::Freeze, None, None, None);
                }
                if self.ms.service_status[sid].state != last {
                    repeat = true;
                }
            }
            // fencing
            let mut fenced: BTreeMap<NodeName, bool> = BTreeMap::new();
            let fence_sids: Vec<Sid> = self
                .ms
                .service_status
                .iter()
                .filter(|(sid, sd)| {
                    sd.state == ServiceState::Fence && only.is_none_or(|o| o.contains(*sid))
                })
                .map(|(sid, _)| sid.clone())
                .collect();
            for sid in &fence_sids {
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                if sd.state != ServiceState::Fence {
                    continue;
                }
                let node = sd.node.clone();
                if !fenced.contains_key(&node) {
                    let ok = self.fence_node(input, &node, out);
                    fenced.insert(node.clone(), ok);
                }
                if fenced[&node] {
                    self.change_state(out, sid, ServiceState::Recovery, None, None, None);
                    repeat = true;
                }
            }
            let fence_nodes: Vec<NodeName> = self
                .ms
                .node_status
                .iter()
                .filter(|(n, s)| **s == NodeState::Fence && !fenced.contains_key(*n))
                .map(|(n, _)| n.clone())
                .collect();
            for node in fence_nodes {
                out.log(
                    Level::Notice,
                    format!("node '{node}' in fence state but no services to-fence! admin interference?!"),
                );
                if self.fence_node(input, &node, out) {
                    repeat = true;
                }
            }
            if !repeat {
                break;
            }
        }
    }

    /// The services of one state-machine pass, in SID order. A `started`
    /// service whose `next_started` would change nothing (running on an
    /// online node, no command, no result, no rule, no maintenance
    /// fallback, requested started, node not restarting) is left out, so a
    /// steady cluster costs one merge of two sorted maps per pass.
    fn pass_todo(
        &self,
        input: &ManagerInput<'_>,
        results: &HashMap<&str, &LrmResult>,
        modes: &BTreeMap<NodeName, LrmMode>,
        only: Option<&BTreeSet<Sid>>,
    ) -> Vec<Sid> {
        let mut confs = input.resources.iter().peekable();
        let mut todo = Vec::new();
        for (sid, sd) in &self.ms.service_status {
            if only.is_some_and(|o| !o.contains(sid)) {
                continue;
            }
            if sd.state == ServiceState::Started {
                while confs.peek().is_some_and(|(k, _)| *k < sid) {
                    confs.next();
                }
                let requested_started = confs
                    .peek()
                    .is_some_and(|(k, c)| *k == sid && c.config.state == RequestedState::Started);
                // No news: no result, or the success already taken in.
                let settled = sd
                    .uid
                    .as_deref()
                    .and_then(|u| results.get(u))
                    .is_none_or(|r| r.exit_code == exit_code::SUCCESS && sd.running);
                let steady = requested_started
                    && settled
                    && sd.cmd.is_none()
                    && sd.maintenance_node.is_none()
                    && self.usage.contains_key(&sd.node)
                    && modes.get(&sd.node) != Some(&LrmMode::Restart)
                    && !input.node_affinity.contains_key(sid);
                if steady {
                    continue;
                }
            }
            todo.push(sid.clone());
        }
        todo
    }

    fn fence_node(&mut self, input: &ManagerInput<'_>, node: &NodeName, out: &mut Steps) -> bool {
        if self.node_state(node) != NodeState::Fence {
            self.set_node_state(out, node, NodeState::Fence);
            out.log(Level::Email, format!("FENCE: Try to fence node '{node}'"));
        }
        match Self::agent_lease(input, node).fence_evidence() {
            FenceEvidence::TakeOver => out.act(CrmAction::TakeAgentLock(node.clone())),
            // Our own take-over committed but the status that followed it
            // did not: the node is fenced already.
            FenceEvidence::AlreadyFenced => {}
            FenceEvidence::Wait => return false,
            FenceEvidence::Never => {
                if self.reported_unguarded.insert(node.clone()) {
                    out.log(
                        Level::Warning,
                        format!("cannot fence node '{node}': it let its agent lock go while its services keep running without watchdog protection (LRM restart or disarm); they stay until the node returns"),
                    );
                }
                return false;
            }
        }
        self.reported_unguarded.remove(node);
        let msg = format!("fencing: acknowledged - got agent lock for node '{node}'");
        out.info(msg.clone());
        self.set_node_state(out, node, NodeState::Unknown);
        out.log(Level::Email, format!("SUCCEED: {msg}"));
        true
    }

    fn next_stopped(&mut self, input: &ManagerInput<'_>, sid: &Sid, out: &mut Steps) {
        let cfg_node = self.config_node(input, sid);
        let Some(sd) = self.ms.service_status.get_mut(sid) else {
            return;
        };
        if let Some(cfg_node) = cfg_node {
            if sd.node != cfg_node {
                out.info(format!(
                    "fixup service '{sid}' location ({} => {cfg_node})",
                    sd.node
                ));
                sd.node = cfg_node;
            }
        }
        if let Some(cmd) = sd.cmd.take() {
            let node = sd.node.clone();
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    let target: Option<NodeName> = cmd.get(1).and_then(|t| t.parse().ok());
                    let state = if task == "migrate" {
                        ServiceState::Migrate
                    } else {
                        ServiceState::Relocate
                    };
                    match target {
                        Some(t) if !self.node_is_online(&t) => out.log(
                            Level::Err,
                            format!(
                                "ignore service '{sid}' {task} request - node '{t}' not online"
                            ),
                        ),
                        Some(t) if t == node => out.info(format!(
                            "ignore service '{sid}' {task} request - service already on node '{t}'"
                        )),
                        Some(t) => {
                            self.change_state(out, sid, state, Some(node), Some(t), None);
                            return;
                        }
                        None => out.log(
                            Level::Err,
                            format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                        ),
                    }
                }
                Some("stop") => out.info(format!(
                    "ignore service '{sid}' stop request - service already stopped"
                )),
                _ => out.log(
                    Level::Err,
                    format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                ),
            }
        }
        let req = requested(input, sid);
        if req == RequestedState::Disabled {
            return;
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms)
            && self.node_state(&node) != NodeState::Maintenance
        {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
            return;
        }
        if req == RequestedState::Started {
            self.change_state(out, sid, ServiceState::RequestStart, Some(node), None, None);
        }
    }

    fn next_started(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        let node = self.ms.service_status[sid].node.clone();
        if !self.node_is_online(&node) {
            if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
                self.change_state(out, sid, ServiceState::Fence, None, None, None);
            }
            if self.node_state(&node) != NodeState::Maintenance {
                return;
            }
            if let Some(sd) = self.ms.service_status.get_mut(sid) {
                sd.maintenance_node = Some(node.clone());
            }
        }
        let req = requested(input, sid);
        if matches!(req, RequestedState::Disabled | RequestedState::Stopped) {
            self.change_state(out, sid, ServiceState::RequestStop, None, None, None);
            return;
        }
        if req != RequestedState::Started {
            out.log(
                Level::Err,
                format!("service '{sid}' - unknown state '{req}' in service configuration"),
            );
            return;
        }
        let cmd = self
            .ms
            .service_status
            .get_mut(sid)
            .and_then(|sd| sd.cmd.take());
        if let Some(cmd) = cmd {
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    let state = if task == "migrate" {
                        ServiceState::Migrate
                    } else {
                        ServiceState::Relocate
                    };
                    match cmd.get(1).and_then(|t| t.parse::<NodeName>().ok()) {
                        Some(t) if !self.node_is_online(&t) => out.log(
                            Level::Err,
                            format!(
                                "ignore service '{sid}' {task} request - node '{t}' not online"
                            ),
                        ),
                        Some(t) if t == node => out.info(format!(
                            "ignore service '{sid}' {task} request - service already on node '{t}'"
                        )),
                        Some(t) => {
                            out.info(format!("{task} service '{sid}' to node '{t}'"));
                            self.change_state(out, sid, state, Some(node), Some(t), None);
                        }
                        None => out.log(
                            Level::Err,
                            format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                        ),
                    }
                }
                Some("stop") => {
                    let timeout: u64 = cmd.get(1).and_then(|t| t.parse().ok()).unwrap_or(0);
                    if timeout == 0 {
                        out.info(format!(
                            "request immediate service hard-stop for service '{sid}'"
                        ));
                    } else {
                        out.info(format!(
                            "request graceful stop with timeout '{timeout}' for service '{sid}'"
                        ));
                    }
                    self.change_state(
                        out,
                        sid,
                        ServiceState::RequestStop,
                        None,
                        None,
                        Some(timeout),
                    );
                    out.act(CrmAction::SetRequestedState(
                        sid.clone(),
                        RequestedState::Stopped,
                    ));
                }
                _ => out.log(
                    Level::Err,
                    format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                ),
            }
            return;
        }
        let Some(conf) = input.resources.get(sid) else {
            return;
        };
        let mut try_next = false;
        if let Some(res) = res {
            let Some(sd) = self.ms.service_status.get_mut(sid) else {
                return;
            };
            match res.exit_code {
                exit_code::SUCCESS => {
                    if let Some(failed) = sd.failed_nodes.take() {
                        out.info(format!(
                            "relocation policy successful for '{sid}' on node '{node}', failed nodes: {}",
                            join_nodes(&failed)
                        ));
                    }
                    sd.running = true;
                }
                exit_code::ERROR | exit_code::EWRONG_NODE => {
                    sd.running = false;
                    let failed = sd.failed_nodes.get_or_insert_with(Vec::new);
                    failed.push(node.clone());
                    if failed.len() <= conf.config.max_relocate as usize {
                        try_next = true;
                        out.log(
                            Level::Warning,
                            format!("starting service {sid} on node '{node}' failed, relocating service."),
                        );
                    } else {
                        out.log(
                            Level::Err,
                            format!(
                                "recovery policy for service {sid} failed, entering error state. Failed nodes: {}",
                                join_nodes(failed)
                            ),
                        );
                        self.change_state(out, sid, ServiceState::Error, None, None, None);
                        return;
                    }
                }
                code => {
                    sd.failed_nodes
                        .get_or_insert_with(Vec::new)
                        .push(node.clone());
                    out.log(
                        Level::Err,
                        format!("service '{sid}' got unrecoverable error (exit code {code}))"),
                    );
                    self.change_state(out, sid, ServiceState::Error, None, None, None);
                    return;
                }
            }
        }
        let pref = if try_next {
            Preference::TryNext
        } else {
            Preference::None
        };
        let selected = select_service_node(
            &self.usage,
            input.node_affinity.get(sid),
            conf.config.failback,
            &self.ms.service_status[sid],
            pref,
        );
        match selected {
            Some(target) if target != node => {
                self.add_usage(&target);
                if let Some(sd) = self.ms.service_status.get_mut(sid) {
                    if let Some(fallback) = sd.maintenance_node.clone() {
                        if target == fallback {
                            out.info(format!(
                                "moving service '{sid}' back to '{fallback}', node came back from maintenance."
                            ));
                            sd.maintenance_node = None;
                        } else if node != fallback {
                            out.info(format!(
                                "dropping maintenance fallback node '{fallback}' for '{sid}'"
                            ));
                            sd.maintenance_node = None;
                        }
                    }
                }
                if sid.kind() == "vm" {
                    out.info(format!(
                        "migrate service '{sid}' to node '{target}' (running)"
                    ));
                    self.change_state(
                        out,
                        sid,
                        ServiceState::Migrate,
                        Some(node),
                        Some(target),
                        None,
                    );
                } else {
                    out.info(format!("relocate service '{sid}' to node '{target}'"));
                    self.change_state(
                        out,
                        sid,
                        ServiceState::Relocate,
                        Some(node),
                        Some(target),
                        None,
                    );
                }
            }
            other => {
                let online = self.node_is_online(&node);
                // A new uid only when the LRM must run the command again
                // (a start to retry); a reported success stays as it is,
                // so a healthy service costs no writes. The LRM re-checks
                // started services on its own (monitor interval).
                let uid = res
                    .filter(|r| r.exit_code != exit_code::SUCCESS)
                    .map(|_| self.new_uid());
                let Some(sd) = self.ms.service_status.get_mut(sid) else {
                    return;
                };
                if try_next && other.is_none() {
                    out.log(
                        Level::Warning,
                        format!(
                            "Start Error Recovery: Tried all available nodes for service '{sid}', retry start on current node. Tried nodes: {}",
                            join_nodes(sd.failed_nodes.as_deref().unwrap_or(&[]))
                        ),
                    );
                }
                if sd.maintenance_node.as_ref() == Some(&node) && online {
                    out.info(format!(
                        "service '{sid}': clearing stale maintenance node '{node}' setting (is current node)"
                    ));
                    sd.maintenance_node = None;
                }
                if let Some(uid) = uid {
                    sd.uid = Some(uid);
                }
            }
        }
    }

    fn next_migrate_relocate(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        let sd = &self.ms.service_status[sid];
        let node = sd.node.clone();
        let target = sd.target.clone();
        if let Some(res) = res {
            let req = if requested(input, sid) == RequestedState::Started {
                ServiceState::Started
            } else {
                ServiceState::RequestStop
            };
            match res.exit_code {
                exit_code::SUCCESS => {
                    let to = target.unwrap_or_else(|| node.clone());
                    self.change_state(out, sid, req, Some(to), None, None);
                    return;
                }
                exit_code::EWRONG_NODE => {
                    out.log(
                        Level::Err,
                        format!(
                            "service '{sid}' - migration failed: service registered on wrong node!"
                        ),
                    );
                    self.change_state(out, sid, ServiceState::Error, None, None, None);
                }
                exit_code::IGNORED => {
                    out.info(format!(
                        "service {sid}: rebalance-on-start request ignored - service already running"
                    ));
                    self.change_state(out, sid, req, Some(node), None, None);
                    return;
                }
                code => {
                    out.log(
                        Level::Err,
                        format!("service '{sid}' - migration failed (exit code {code})"),
                    );
                    self.change_state(out, sid, req, Some(node), None, None);
                    return;
                }
            }
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
        }
    }

    fn next_request_stop(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        if let Some(res) = res {
            if res.exit_code == exit_code::SUCCESS {
                self.change_state(out, sid, ServiceState::Stopped, None, None, None);
            } else {
                out.log(
                    Level::Err,
                    format!("service '{sid}' stop failed (exit code {})", res.exit_code),
                );
                self.change_state(out, sid, ServiceState::Error, None, None, None);
            }
            return;
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
        }
    }

    fn next_recovery(&mut self, input: &ManagerInput<'_>, sid: &Sid, out: &mut Steps) {
        self.recompute_usage();
        let fenced = self.ms.service_status[sid].node.clone();
        let failback = input.resources.get(sid).is_none_or(|r| r.config.failback);
        let selected = select_service_node(
            &self.usage,
            input.node_affinity.get(sid),
            failback,
            &self.ms.service_status[sid],
            Preference::BestScore,
        );
        let req = requested(input, sid);
        match selected {
            Some(to) => {
                if to == fenced {
                    out.info(format!(
                        "recover service '{sid}' to previous failed and fenced node '{fenced}' again"
                    ));
                } else {
                    out.info(format!(
                        "recover service '{sid}' from fenced node '{fenced}' to node '{to}'"
                    ));
                }
                if let Some(lock) = input.guest_locks.get(sid) {
                    if REMOVABLE_LOCKS.contains(&lock.as_str()) {
                        out.act(CrmAction::RemoveGuestLock(sid.clone()));
                        out.log(
                            Level::Warning,
                            format!("removed leftover lock '{lock}' from recovered service '{sid}' to allow its start."),
                        );
                    }
                }
                out.act(CrmAction::MoveResourceNode {
                    sid: sid.clone(),
                    from: fenced.clone(),
                    to: to.clone(),
                });
                self.add_usage(&to);
                self.moved.insert(sid.clone(), to.clone());
                if let Some(sd) = self.ms.service_status.get_mut(sid) {
                    sd.node = to.clone();
                }
                let new = if req == RequestedState::Started {
                    ServiceState::Started
                } else {
                    ServiceState::RequestStop
                };
                self.change_state(out, sid, new, Some(to), None, None);
            }
            None => {
                out.log(
                    Level::Err,
                    format!("recovering service '{sid}' from fenced node '{fenced}' failed, no recovery node found"),
                );
                if req == RequestedState::Disabled {
                    if let Some(sd) = self.ms.service_status.get_mut(sid) {
                        sd.failed_nodes = None;
                    }
                    self.change_state(out, sid, ServiceState::Stopped, None, None, None);
                }
            }
        }
    }
}

enum DisarmOutcome {
    Done,
    Deferred(BTreeSet<Sid>),
}

fn join_nodes(nodes: &[NodeName]) -> String {
    nodes
        .iter()
        .map(NodeName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::CrmStep;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }
    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    struct Fixture {
        membership: BTreeMap<NodeName, bool>,
        resources: BTreeMap<Sid, ConfiguredResource>,
        affinity: BTreeMap<Sid, NodeAffinity>,
        lrm: BTreeMap<NodeName, LrmStatus>,
        commands: Vec<String>,
        leases: BTreeMap<NodeName, AgentLease>,
        locks: BTreeMap<Sid, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let membership = ["node1", "node2", "node3"]
                .iter()
                .map(|x| (n(x), true))
                .collect();
            let mut resources = BTreeMap::new();
            for (s, node) in [("vm:101", "node1"), ("vm:102", "node2")] {
                resources.insert(
                    sid(s),
                    ConfiguredResource {
                        config: ResourceConfig::with_defaults(sid(s)),
                        node: n(node),
                    },
                );
            }
            let leases = ["node1", "node2", "node3"]
                .iter()
                .map(|x| (n(x), AgentLease::Held { expired: false }))
                .collect();
            Fixture {
                membership,
                resources,
                affinity: BTreeMap::new(),
                lrm: BTreeMap::new(),
                commands: Vec::new(),
                leases,
                locks: BTreeMap::new(),
            }
        }
        fn round(&self, m: &mut Manager, now_s: u64) -> Vec<CrmStep> {
            let input = ManagerInput {
                now_ms: now_s * 1000,
                membership: &self.membership,
                resources: &self.resources,
                node_affinity: &self.affinity,
                lrm_status: &self.lrm,
                crm_commands: &self.commands,
                agent_leases: &self.leases,
                unplaced: &[],
                guest_locks: &self.locks,
                fence_delay_ms: 60_000,
                group_migration: GroupMigrationInput::no_groups(10_000),
            };
            let mut out = Steps::default();
            assert!(m.manage(&input, &mut out));
            out.0
        }
    }

    #[test]
    fn group_migration_is_decided_on_the_third_round_that_gets_past_the_offline_check() {
        use crate::domain::{GroupConfig, GroupNode};
        use crate::lrm::LrmState;
        let mut f = Fixture::new();
        if let Some(r) = f.resources.get_mut(&sid("vm:101")) {
            r.config.group = Some("g".into());
        }
        for node in ["node1", "node2", "node3"] {
            let st = LrmStatus {
                state: Some(LrmState::Active),
                ..LrmStatus::default()
            };
            f.lrm.insert(n(node), st);
        }
        let groups = vec![GroupConfig {
            id: "g".into(),
            nodes: vec![GroupNode {
                node: n("node1"),
                priority: Some(2),
            }],
            restricted: false,
            nofailback: true,
            comment: None,
        }];
        let versions: BTreeMap<NodeName, String> = ["node1", "node2", "node3"]
            .iter()
            .map(|x| (n(x), "9.0.1".to_string()))
            .collect();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        let mut decided = Vec::new();
        for round in 0..4u64 {
            // round 0: the master sees itself offline and ends the round
            // early; it does not count
            let mut membership = f.membership.clone();
            membership.insert(n("node1"), round != 0);
            let input = ManagerInput {
                now_ms: round * 10_000,
                membership: &membership,
                resources: &f.resources,
                node_affinity: &f.affinity,
                lrm_status: &f.lrm,
                crm_commands: &f.commands,
                agent_leases: &f.leases,
                unplaced: &[],
                guest_locks: &f.locks,
                fence_delay_ms: 60_000,
                group_migration: GroupMigrationInput {
                    groups: &groups,
                    node_versions: &versions,
                    round_interval_ms: 10_000,
                },
            };
            let mut out = Steps::default();
            m.manage(&input, &mut out);
            if out.0.contains(&CrmStep::Do(CrmAction::MigrateGroups)) {
                decided.push(round);
            }
        }
        assert_eq!(decided, [3]);
    }

    fn state(m: &Manager, s: &str) -> ServiceState {
        m.status().service_status[&sid(s)].state
    }

    #[test]
    fn new_services_start_and_uids_change_on_every_transition() {
        let f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        assert_eq!(state(&m, "vm:101"), ServiceState::Started);
        let uid1 = m.status().service_status[&sid("vm:101")]
            .uid
            .clone()
            .unwrap();
        let uid2 = m.status().service_status[&sid("vm:102")]
            .uid
            .clone()
            .unwrap();
        assert_ne!(uid1, uid2);
        // a stale result (wrong uid) is ignored, the current one consumed
        let mut f = f;
        let mut st = LrmStatus::default();
        st.results.insert(
            "stale".into(),
            LrmResult {
                sid: sid("vm:101"),
                state: ServiceState::Started,
                exit_code: 0,
            },
        );
        f.lrm.insert(n("node1"), st.clone());
        f.round(&mut m, 10);
        assert_eq!(
            m.status().service_status[&sid("vm:101")].uid.as_deref(),
            Some(uid1.as_str())
        );
        assert!(!m.status().service_status[&sid("vm:101")].running);
        st.results.insert(
            uid1.clone(),
            LrmResult {
                sid: sid("vm:101"),
                state: ServiceState::Started,
                exit_code: 0,
            },
        );
        f.lrm.insert(n("node1"), st);
        f.round(&mut m, 20);
        let sd = &m.status().service_status[&sid("vm:101")];
        assert!(sd.running);
        assert_eq!(
            sd.uid.as_deref(),
            Some(uid1.as_str()),
            "a reported success keeps its uid: a healthy service costs no writes"
        );
        let before = m.status().clone();
        f.round(&mut m, 30);
        let mut after = m.status().clone();
        after.timestamp = before.timestamp;
        assert_eq!(after, before, "steady: nothing changes");
        // A failed start gets a fresh uid (the LRM must run it again).
        let mut st = LrmStatus::default();
        st.results.insert(
            uid1.clone(),
            LrmResult {
                sid: sid("vm:101"),
                state: ServiceState::Started,
                exit_code: exit_code::ERROR,
            },
        );
        f.lrm.insert(n("node1"), st);
        f.round(&mut m, 40);
        assert_ne!(
            m.status().service_status[&sid("vm:101")].uid.as_deref(),
            Some(uid1.as_str())
        );
    }

    #[test]
    fn offline_node_is_fenced_after_the_delay_and_recovered_after_the_lock() {
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.membership.insert(n("node2"), false);
        f.round(&mut m, 20);
        assert_eq!(m.status().node_status[&n("node2")], NodeState::Unknown);
        assert_eq!(state(&m, "vm:102"), ServiceState::Started);
        f.round(&mut m, 59);
        assert_eq!(state(&m, "vm:102"), ServiceState::Started);
        f.round(&mut m, 60);
        assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
        assert_eq!(m.status().node_status[&n("node2")], NodeState::Fence);
        f.leases
            .insert(n("node2"), AgentLease::Held { expired: true });
        let steps = f.round(&mut m, 140);
        let lock_pos = steps
            .iter()
            .position(|s| *s == CrmStep::Do(CrmAction::TakeAgentLock(n("node2"))))
            .expect("lock taken");
        let move_pos = steps
            .iter()
            .position(|s| matches!(s, CrmStep::Do(CrmAction::MoveResourceNode { .. })))
            .expect("moved");
        assert!(lock_pos < move_pos, "fencing acknowledged before the steal");
        assert_eq!(state(&m, "vm:102"), ServiceState::Started);
        assert_eq!(m.status().service_status[&sid("vm:102")].node, n("node3"));
    }

    #[test]
    fn a_node_that_left_services_unguarded_is_never_fenced() {
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.membership.insert(n("node2"), false);
        f.leases.insert(n("node2"), AgentLease::Unguarded);
        f.round(&mut m, 20);
        f.round(&mut m, 60);
        assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
        for t in [80, 200, 2000] {
            let steps = f.round(&mut m, t);
            assert!(!steps
                .iter()
                .any(|s| matches!(s, CrmStep::Do(CrmAction::TakeAgentLock(_)))));
        }
        assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
        // A lease that is not there at all is evidence.
        f.leases.remove(&n("node2"));
        f.round(&mut m, 2010);
        assert_eq!(m.status().service_status[&sid("vm:102")].node, n("node3"));
    }

    #[test]
    fn frozen_services_thaw_only_on_an_online_node_that_holds_its_lease() {
        use crate::lrm::LrmState;
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        let lrm = |mode| LrmStatus {
            state: Some(LrmState::Active),
            mode: Some(mode),
            ..LrmStatus::default()
        };
        f.lrm.insert(n("node2"), lrm(LrmMode::Restart));
        f.round(&mut m, 10);
        assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
        // The restarted LRM reports mode active, but has no lease yet.
        f.lrm.insert(n("node2"), lrm(LrmMode::Active));
        f.leases.insert(n("node2"), AgentLease::Unguarded);
        f.round(&mut m, 20);
        assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
        // Offline, even with the stale LRM status saying active: frozen.
        f.leases
            .insert(n("node2"), AgentLease::Held { expired: false });
        f.membership.insert(n("node2"), false);
        f.round(&mut m, 30);
        assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
        f.membership.insert(n("node2"), true);
        f.round(&mut m, 40);
        assert_eq!(state(&m, "vm:102"), ServiceState::Started);
    }

    #[test]
    fn new_services_are_placed_on_the_least_loaded_online_node() {
        let f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        let new = vec![ResourceConfig::with_defaults(sid("vm:103"))];
        let input = ManagerInput {
            now_ms: 1000,
            membership: &f.membership,
            resources: &f.resources,
            node_affinity: &f.affinity,
            lrm_status: &f.lrm,
            crm_commands: &f.commands,
            agent_leases: &f.leases,
            unplaced: &new,
            guest_locks: &f.locks,
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput::no_groups(10_000),
        };
        let mut out = Steps::default();
        m.manage(&input, &mut out);
        assert!(out.0.contains(&CrmStep::Do(CrmAction::PlaceResource {
            sid: sid("vm:103"),
            node: n("node3"),
        })));
    }

    #[test]
    fn stop_command_requests_stop_and_rewrites_the_config() {
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.commands = vec![
            "stop vm:101 30".into(),
            "migrate vm:999 node2".into(),
            "bogus".into(),
        ];
        let steps = f.round(&mut m, 10);
        let sd = &m.status().service_status[&sid("vm:101")];
        assert_eq!(sd.state, ServiceState::RequestStop);
        assert_eq!(sd.timeout, Some(30));
        assert!(steps.contains(&CrmStep::Do(CrmAction::SetRequestedState(
            sid("vm:101"),
            RequestedState::Stopped
        ))));
        assert!(steps.contains(&CrmStep::Do(CrmAction::ConsumeCrmCommands)));
        let logs: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                CrmStep::Log(e) => Some(e.message.clone()),
                _ => None,
            })
            .collect();
        assert!(
            logs.contains(&"crm command error - no such service: migrate vm:999 node2".to_string())
        );
        assert!(logs.contains(&"unable to parse crm command: bogus".to_string()));
    }

    #[test]
    fn migrate_command_moves_and_completes_on_success() {
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.commands = vec!["migrate vm:101 node3".into()];
        f.round(&mut m, 10);
        let sd = m.status().service_status[&sid("vm:101")].clone();
        assert_eq!(sd.state, ServiceState::Migrate);
        assert_eq!(sd.target, Some(n("node3")));
        f.commands.clear();
        let mut st = LrmStatus::default();
        st.results.insert(
            sd.uid.unwrap(),
            LrmResult {
                sid: sid("vm:101"),
                state: ServiceState::Migrate,
                exit_code: 0,
            },
        );
        f.lrm.insert(n("node1"), st);
        f.round(&mut m, 20);
        let sd = &m.status().service_status[&sid("vm:101")];
        assert_eq!(
            (sd.state, sd.node.clone()),
            (ServiceState::Started, n("node3"))
        );
    }

    #[test]
    fn maintenance_moves_services_away_and_back() {
        let mut f = Fixture::new();
        let mut m = Manager::new(n("node2"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.commands = vec!["enable-node-maintenance node1".into()];
        f.round(&mut m, 10);
        f.commands.clear();
        assert!(m.status().maintenance_requested(&n("node1")));
        let st = LrmStatus {
            mode: Some(LrmMode::Maintenance),
            ..LrmStatus::default()
        };
        f.lrm.insert(n("node1"), st);
        f.round(&mut m, 20);
        assert_eq!(m.status().node_status[&n("node1")], NodeState::Maintenance);
        let sd = m.status().service_status[&sid("vm:101")].clone();
        assert_eq!(sd.state, ServiceState::Migrate);
        assert_eq!(sd.maintenance_node, Some(n("node1")));
        assert_eq!(sd.target, Some(n("node3")), "least loaded online node");
        // migration done, maintenance ends: the service moves back
        let mut st = LrmStatus::default();
        st.results.insert(
            sd.uid.clone().unwrap(),
            LrmResult {
                sid: sid("vm:101"),
                state: ServiceState::Migrate,
                exit_code: 0,
            },
        );
        f.lrm.insert(n("node1"), st);
        f.commands = vec!["disable-node-maintenance node1".into()];
        f.round(&mut m, 30);
        f.commands.clear();
        f.round(&mut m, 40);
        let sd = &m.status().service_status[&sid("vm:101")];
        assert_eq!(m.status().node_status[&n("node1")], NodeState::Online);
        assert_eq!(
            (sd.state, sd.target.clone()),
            (ServiceState::Migrate, Some(n("node1")))
        );
        assert_eq!(sd.maintenance_node, None);
    }
}
