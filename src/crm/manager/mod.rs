//! The manager round (spec section 3.4): node states, the service state
//! machine, the CRM command queue, fencing and recovery. Sans-IO: the round
//! reads an input snapshot and returns ordered steps; the new manager
//! status is [`Manager::status`].

mod commands;
mod rebalance;
mod services;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::{CrsMode, NodeName, RequestedState, ResourceConfig, Sid};
use crate::lrm::{LrmMode, LrmStatus};

use super::explain::{Decision, DecisionReason, DecisionTrace};
use super::fencing::{AgentLease, FenceEvidence};
use super::group_migration::{GroupMigration, GroupMigrationInput};
use super::history::{EventKind, HaEvent};
use super::output::{CrmAction, Level, Steps};
use super::select::{
    select_service_node, select_traced, NodeAffinity, PartnerNodes, Preference, ResourceAffinity,
};
use super::status::{
    exit_code, Disarm, DisarmMode, DisarmState, LrmResult, ManagerStatus, NodeState, ServiceRecord,
    ServiceState,
};
use super::usage::{Load, Scheduling, Usage};

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
    /// Compiled resource-affinity rules (positive and negative partners).
    pub resource_affinity: &'a ResourceAffinity,
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
    /// The `crs` options and the node and service statistics.
    pub scheduling: &'a Scheduling,
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
    /// Services whose failed recovery is in the history (once until
    /// they are recovered).
    reported_unrecoverable: BTreeSet<Sid>,
    /// Runs only on the Raft leader: manages while its own node is in
    /// `fence`.
    leader_only: bool,
    /// The scheduler mode last configured (`None` before the first round).
    configured_mode: Option<CrsMode>,
    /// The mode this round schedules with (`basic` when the configured one
    /// could not be initialised).
    mode: CrsMode,
    /// Consecutive rounds the imbalance stayed above the threshold.
    rebalance_hold: u32,
    /// This round's time (the history's event time).
    now_ms: u64,
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
            reported_unrecoverable: BTreeSet::new(),
            leader_only: false,
            configured_mode: None,
            mode: CrsMode::Basic,
            rebalance_hold: 0,
            now_ms: 0,
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
        let message = format!("node '{node}': state changed from '{old}' => '{state}'");
        out.event(
            HaEvent::new(self.now_ms, EventKind::NodeState, message.clone())
                .node(node)
                .change(old, state),
        );
        out.info(message);
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

    fn online_nodes(&self) -> impl Iterator<Item = &NodeName> {
        self.ms
            .node_status
            .iter()
            .filter(|(_, s)| **s == NodeState::Online)
            .map(|(n, _)| n)
    }

    /// Logs the scheduler mode when it is first set or changes, and picks
    /// the mode of this round: `basic` if the configured one cannot be
    /// initialised (spec 3.11.1).
    fn update_scheduler_mode(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        let configured = input.scheduling.crs.mode;
        match self.configured_mode {
            None if configured != CrsMode::Basic => {
                out.info(format!("using scheduler mode '{configured}'"))
            }
            Some(old) if old != configured => out.info(format!(
                "switching scheduler mode from '{old}' to '{configured}'"
            )),
            _ => {}
        }
        self.configured_mode = Some(configured);
        self.mode = configured;
        if configured != CrsMode::Basic {
            if let Err(e) = Usage::init(configured, self.online_nodes(), input.scheduling) {
                out.log(
                    Level::Warning,
                    format!(
                        "fallback to 'basic' scheduler mode, init for '{configured}' failed - {e}"
                    ),
                );
                self.mode = CrsMode::Basic;
            }
        }
    }

    /// What `sid` adds to a node in this round's mode; `None` when
    /// `static`/`dynamic` have no statistics for it.
    fn service_load(&self, input: &ManagerInput<'_>, sid: &Sid, running: bool) -> Option<Load> {
        super::usage_report::service_load(self.mode, input.scheduling, sid, running)
    }

    /// [`Self::service_load`] for a placement decision; a service without
    /// statistics is logged (all nodes then score the same).
    fn load_for_selection(
        &self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        running: bool,
        out: &mut Steps,
    ) -> Option<Load> {
        let load = self.service_load(input, sid, running);
        if load.is_none() {
            out.log(
                Level::Err,
                format!(
                    "unable to get {} service stats for '{sid}' - scoring all nodes equally",
                    self.mode
                ),
            );
        }
        load
    }

    fn recompute_usage(&mut self, input: &ManagerInput<'_>) {
        let online: Vec<NodeName> = self.online_nodes().cloned().collect();
        self.usage = super::usage_report::usage_model(
            self.mode,
            &online,
            &self.ms.service_status,
            input.scheduling,
        );
    }

    fn add_usage(&mut self, node: &NodeName, load: Option<&Load>) {
        self.usage.add(node, &load.copied().unwrap_or_default());
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
        let message = format!("service '{sid}': state changed from '{old}' to '{new}'{text}");
        let kind = if new == ServiceState::Error {
            EventKind::Error
        } else {
            EventKind::ServiceState
        };
        let node = &self.ms.service_status[sid].node;
        out.event(
            HaEvent::new(self.now_ms, kind, message.clone())
                .sid(sid)
                .node(node)
                .change(old, new),
        );
        out.info(message);
    }

    /// [`select_service_node`] for a choice worth recording: returns the
    /// node and the [`Decision`] the selection itself traced, over every
    /// member and its node state.
    #[allow(clippy::too_many_arguments)]
    fn select_recorded(
        &self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        load: Option<&Load>,
        partners: &PartnerNodes,
        failback: bool,
        sd: &ServiceRecord,
        preference: Preference,
        reason: DecisionReason,
    ) -> (Option<NodeName>, Decision) {
        let mut trace = DecisionTrace::default();
        let selected = select_traced(
            &self.usage,
            load,
            input.node_affinity.get(sid),
            partners,
            failback,
            sd,
            preference,
            &mut trace,
        );
        let members: BTreeMap<NodeName, String> = input
            .membership
            .keys()
            .chain(self.ms.node_status.keys())
            .map(|n| (n.clone(), self.node_state(n).to_string()))
            .collect();
        let decision = trace.into_decision(
            sid.as_str(),
            reason,
            self.usage.mode().as_str(),
            Some(&sd.node),
            selected.as_ref(),
            &members,
            |n| self.usage.contains_key(n),
        );
        debug_assert_eq!(
            decision.winner(),
            selected.as_ref().map(ToString::to_string),
            "the decision's table names the node the selection chose"
        );
        (selected, decision)
    }

    /// Where the resource-affinity partners of `sid` are, on online nodes.
    fn partners(&self, input: &ManagerInput<'_>, sid: &Sid) -> PartnerNodes {
        if !input.resource_affinity.contains(sid) {
            return PartnerNodes::default();
        }
        PartnerNodes::of(input.resource_affinity, sid, &self.ms.service_status, |n| {
            self.usage.contains_key(n)
        })
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
        self.now_ms = input.now_ms;
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

        self.update_scheduler_mode(input, out);

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

        if self.ms.disarm.is_none() {
            self.auto_rebalance(input, out);
        }

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
        self.recompute_usage(input);
        // Services placed earlier in this round count as started on their
        // node, so partners added together land together (or apart).
        let mut placed: BTreeMap<Sid, ServiceRecord> = BTreeMap::new();
        for config in input.unplaced {
            let sid = &config.sid;
            let probe = ServiceRecord::new(ServiceState::RequestStart, self.node.clone());
            let mut partners = self.partners(input, sid);
            if input.resource_affinity.contains(sid) && !placed.is_empty() {
                let fresh = PartnerNodes::of(input.resource_affinity, sid, &placed, |n| {
                    self.usage.contains_key(n)
                });
                for (node, count) in fresh.together {
                    *partners.together.entry(node).or_default() += count;
                }
                partners.separate.extend(fresh.separate);
            }
            let load = self.load_for_selection(input, sid, false, out);
            let (selected, mut decision) = self.select_recorded(
                input,
                sid,
                load.as_ref(),
                &partners,
                config.failback,
                &probe,
                Preference::BestScore,
                DecisionReason::Placement,
            );
            // A new service was on no node: the probe's node is only the
            // selection's starting point.
            decision.current = None;
            match selected {
                Some(node) => {
                    self.reported_unplaceable.remove(sid);
                    let message = format!("placing new service '{sid}' on node '{node}'");
                    out.event(
                        HaEvent::new(self.now_ms, EventKind::Placement, message.clone())
                            .sid(sid)
                            .to(&node)
                            .decision(decision),
                    );
                    out.info(message);
                    self.add_usage(&node, load.as_ref());
                    placed.insert(
                        sid.clone(),
                        ServiceRecord::new(ServiceState::Started, node.clone()),
                    );
                    out.act(CrmAction::PlaceResource {
                        sid: sid.clone(),
                        node,
                    });
                }
                None => {
                    if self.reported_unplaceable.insert(sid.clone()) {
                        let message = format!(
                            "no allowed node is online for new service '{sid}': it waits for one"
                        );
                        out.event(
                            HaEvent::new(self.now_ms, EventKind::Error, message.clone())
                                .sid(sid)
                                .decision(decision),
                        );
                        out.log(Level::Warning, message);
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
mod tests;
