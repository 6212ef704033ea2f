//! The persistent group migration (spec section 3.20): while groups.cfg
//! has groups, the master checks on its 3rd round, then every 6 rounds,
//! whether the whole cluster is ready, and if so asks the shell to replace
//! the groups by node-affinity rules ([`CrmAction::MigrateGroups`]).
//!
//! The CRM only decides; the shell writes rules.cfg, rewrites the
//! resources and deletes groups.cfg (with `config::migrate_groups`). Until
//! then the shell keeps converting the groups in memory every round, so the
//! placement does not change when the migration lands.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::group_conversion::{group_rule_id, rules_from_groups};
use crate::domain::{GroupConfig, NodeAffinityRule, NodeName, ResourceConfig, Sid};
use crate::lrm::{LrmMode, LrmState, LrmStatus};

use super::output::{CrmAction, Level, Steps};
use super::pve_version::{PveVersion, GROUP_MIGRATION_MIN_VERSION};
use super::status::{ManagerStatus, NodeState, ServiceState};
use super::ConfiguredResource;

/// The master round (counted from 1) of the first attempt.
pub const FIRST_ATTEMPT_ROUND: u32 = 3;

/// Rounds between two attempts after a failed one.
pub const RETRY_ROUNDS: u32 = 6;

static NO_VERSIONS: BTreeMap<NodeName, String> = BTreeMap::new();

/// What the migration decision reads besides the rest of the round input.
#[derive(Debug, Clone, Copy)]
pub struct GroupMigrationInput<'a> {
    /// The groups of groups.cfg (empty: nothing to migrate, no attempt).
    pub groups: &'a [GroupConfig],
    /// pve-manager version reported by each node; a node missing here has
    /// an unknown version, which blocks the migration.
    pub node_versions: &'a BTreeMap<NodeName, String>,
    /// The nominal CRM round interval (ms), only for the "~ N seconds" in
    /// the retry message.
    pub round_interval_ms: u64,
}

impl GroupMigrationInput<'static> {
    /// No groups: the migration is never attempted.
    pub fn no_groups(round_interval_ms: u64) -> Self {
        GroupMigrationInput {
            groups: &[],
            node_versions: &NO_VERSIONS,
            round_interval_ms,
        }
    }
}

/// Why the cluster is not ready for the migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// This partition has no quorum.
    NotQuorate,
    /// No cluster members.
    NoNodes,
    /// A member's node state is not `online`.
    NodeNotOnline(NodeName, NodeState),
    /// A member has no readable LRM status.
    LrmStatusUnknown(NodeName),
    /// A member's LRM is neither `active` nor idle in `wait_for_agent_lock`.
    LrmNotReady(NodeName, Option<LrmState>),
    /// A member's LRM mode is not `active`.
    LrmMode(NodeName, LrmMode),
    /// A member's pve-manager version is unknown.
    VersionUnknown(NodeName),
    /// A member reports a version that does not parse.
    VersionMalformed(NodeName, String),
    /// A member runs a pve-manager older than the minimum.
    VersionTooOld(NodeName, String),
}

impl Blocker {
    /// The short reason given in the "abort ha groups migration" line.
    pub fn abort_reason(&self) -> String {
        match self {
            Blocker::NotQuorate => "cluster is not quorate".into(),
            Blocker::NoNodes => "empty node list".into(),
            Blocker::NodeNotOnline(..) => "not all nodes are online".into(),
            Blocker::LrmStatusUnknown(_) | Blocker::LrmNotReady(..) | Blocker::LrmMode(..) => {
                "not all LRMs are active or idle in mode 'active'".into()
            }
            Blocker::VersionUnknown(_)
            | Blocker::VersionMalformed(..)
            | Blocker::VersionTooOld(..) => {
                format!("not all nodes run pve-manager {GROUP_MIGRATION_MIN_VERSION} or newer")
            }
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::NotQuorate => f.write_str("cluster is not quorate"),
            Blocker::NoNodes => f.write_str("node list is empty"),
            Blocker::NodeNotOnline(node, state) => {
                write!(f, "node '{node}' is in state '{state}', not 'online'")
            }
            Blocker::LrmStatusUnknown(node) => {
                write!(f, "cannot read the lrm status of node '{node}'")
            }
            Blocker::LrmNotReady(node, Some(LrmState::WaitForAgentLock)) => write!(
                f,
                "lrm of node '{node}' is in state 'wait_for_agent_lock' with active services"
            ),
            Blocker::LrmNotReady(node, state) => write!(
                f,
                "lrm of node '{node}' is in state '{}'",
                state.map_or("unknown", LrmState::as_str)
            ),
            Blocker::LrmMode(node, mode) => {
                write!(f, "lrm of node '{node}' is in mode '{mode}', not 'active'")
            }
            Blocker::VersionUnknown(node) => {
                write!(f, "pve-manager version of node '{node}' is unknown")
            }
            Blocker::VersionMalformed(node, version) => write!(
                f,
                "node '{node}' reports a malformed pve-manager version '{version}'"
            ),
            Blocker::VersionTooOld(node, version) => write!(
                f,
                "node '{node}' has pve-manager version '{version}', needs at least '{GROUP_MIGRATION_MIN_VERSION}'"
            ),
        }
    }
}

/// `node-affinity rule 'ID' (resources A,B; nodes n1:2,n2; strict 0)`,
/// nodes with priority 0 written without it (as in rules.cfg).
fn describe_rule(rule: &NodeAffinityRule) -> String {
    let resources: Vec<String> = rule.resources.iter().map(Sid::to_string).collect();
    format!(
        "node-affinity rule '{}' (resources {}; nodes {}; strict {})",
        rule.id,
        resources.join(","),
        rule.nodes_text(),
        u8::from(rule.strict)
    )
}

/// True if `node` has a service the LRM must work on (the same services
/// an LRM counts as active: on or moving to the node, not stopped, frozen,
/// errored or waiting to start).
fn has_active_services(ms: &ManagerStatus, node: &NodeName) -> bool {
    ms.service_status.values().any(|sd| {
        (sd.node == *node || sd.target.as_ref() == Some(node))
            && !matches!(
                sd.state,
                ServiceState::Stopped
                    | ServiceState::Freeze
                    | ServiceState::Error
                    | ServiceState::RequestStart
            )
    })
}

/// Every reason the cluster is not ready (empty = ready). `membership`
/// is already all-offline without quorum, so a partition is quorate iff
/// some member is online.
pub fn blockers(
    ms: &ManagerStatus,
    membership: &BTreeMap<NodeName, bool>,
    lrm_status: &BTreeMap<NodeName, LrmStatus>,
    node_versions: &BTreeMap<NodeName, String>,
) -> Vec<Blocker> {
    if membership.is_empty() {
        return vec![Blocker::NoNodes];
    }
    if !membership.values().any(|online| *online) {
        return vec![Blocker::NotQuorate];
    }
    // grouped by precondition, in the order of spec 3.20, so the abort
    // reason names the most basic one that fails
    let mut offline = Vec::new();
    let mut lrms = Vec::new();
    let mut versions = Vec::new();
    for node in membership.keys() {
        let state = ms
            .node_status
            .get(node)
            .copied()
            .unwrap_or(NodeState::Unknown);
        if state != NodeState::Online {
            offline.push(Blocker::NodeNotOnline(node.clone(), state));
        }
        match lrm_status.get(node) {
            None => lrms.push(Blocker::LrmStatusUnknown(node.clone())),
            Some(lrm) => {
                let ready = match lrm.state {
                    Some(LrmState::Active) => true,
                    Some(LrmState::WaitForAgentLock) => !has_active_services(ms, node),
                    _ => false,
                };
                if !ready {
                    lrms.push(Blocker::LrmNotReady(node.clone(), lrm.state));
                }
                let mode = lrm.mode_or_active();
                if mode != LrmMode::Active {
                    lrms.push(Blocker::LrmMode(node.clone(), mode));
                }
            }
        }
        match node_versions.get(node) {
            None => versions.push(Blocker::VersionUnknown(node.clone())),
            Some(text) => match text.parse::<PveVersion>() {
                Err(_) => versions.push(Blocker::VersionMalformed(node.clone(), text.clone())),
                Ok(v) if v < GROUP_MIGRATION_MIN_VERSION => {
                    versions.push(Blocker::VersionTooOld(node.clone(), text.clone()))
                }
                Ok(_) => {}
            },
        }
    }
    let mut found = offline;
    found.append(&mut lrms);
    found.append(&mut versions);
    found
}

/// The master's migration schedule: counts down the rounds to the next
/// attempt.
#[derive(Debug, Clone)]
pub struct GroupMigration {
    rounds_left: u32,
}

impl Default for GroupMigration {
    fn default() -> Self {
        GroupMigration {
            rounds_left: FIRST_ATTEMPT_ROUND,
        }
    }
}

impl GroupMigration {
    /// One manager round (spec 3.4 step 6): counts the round while groups
    /// exist and, when an attempt is due, checks the preconditions and
    /// either emits [`CrmAction::MigrateGroups`] or logs why not.
    ///
    /// After an emitted migration the schedule restarts as after a failure:
    /// if the shell could not write it, groups remain and the next attempt
    /// follows in [`RETRY_ROUNDS`] rounds.
    pub fn round(
        &mut self,
        input: &GroupMigrationInput<'_>,
        ms: &ManagerStatus,
        membership: &BTreeMap<NodeName, bool>,
        lrm_status: &BTreeMap<NodeName, LrmStatus>,
        resources: &BTreeMap<Sid, ConfiguredResource>,
        out: &mut Steps,
    ) {
        if input.groups.is_empty() {
            return;
        }
        self.rounds_left = self.rounds_left.saturating_sub(1);
        if self.rounds_left > 0 {
            return;
        }
        self.rounds_left = RETRY_ROUNDS;
        let found = blockers(ms, membership, lrm_status, input.node_versions);
        if let Some(first) = found.first() {
            for blocker in &found {
                out.log(Level::Notice, format!("ha groups migration: {blocker}"));
            }
            out.log(
                Level::Err,
                format!("abort ha groups migration: {}", first.abort_reason()),
            );
            let seconds = (u64::from(RETRY_ROUNDS) * input.round_interval_ms + 500) / 1000;
            out.log(
                Level::Notice,
                format!("retry ha groups migration in {RETRY_ROUNDS} rounds (~ {seconds} seconds)"),
            );
            return;
        }
        let configs: Vec<ResourceConfig> = resources.values().map(|r| r.config.clone()).collect();
        let rules = rules_from_groups(input.groups, &configs);
        for group in input.groups {
            let id = group_rule_id(&group.id);
            if let Some(rule) = rules.iter().find(|r| r.id == id) {
                let failback = if group.nofailback {
                    ", its resources get failback 0"
                } else {
                    ""
                };
                out.log(
                    Level::Notice,
                    format!(
                        "ha groups migration: group '{}' becomes {}{failback}",
                        group.id,
                        describe_rule(rule)
                    ),
                );
            } else {
                out.log(
                    Level::Notice,
                    format!(
                        "ha groups migration: group '{}' is used by no resource, dropped",
                        group.id
                    ),
                );
            }
        }
        out.act(CrmAction::MigrateGroups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CrmStep, ServiceRecord};
    use crate::domain::GroupNode;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    struct Cluster {
        ms: ManagerStatus,
        membership: BTreeMap<NodeName, bool>,
        lrm: BTreeMap<NodeName, LrmStatus>,
        versions: BTreeMap<NodeName, String>,
        groups: Vec<GroupConfig>,
        resources: BTreeMap<Sid, ConfiguredResource>,
    }

    impl Cluster {
        /// Three online nodes, active LRMs, new enough versions, group
        /// 'g' used by vm:101 and group 'spare' used by nobody.
        fn ready() -> Self {
            let nodes = [n("node1"), n("node2"), n("node3")];
            let mut ms = ManagerStatus::default();
            let active = LrmStatus {
                state: Some(LrmState::Active),
                ..LrmStatus::default()
            };
            let mut c = Cluster {
                ms: ManagerStatus::default(),
                membership: BTreeMap::new(),
                lrm: BTreeMap::new(),
                versions: BTreeMap::new(),
                groups: ["g", "spare"]
                    .iter()
                    .map(|id| GroupConfig {
                        id: id.to_string(),
                        nodes: vec![GroupNode {
                            node: n("node1"),
                            priority: None,
                        }],
                        restricted: false,
                        nofailback: false,
                        comment: None,
                    })
                    .collect(),
                resources: BTreeMap::new(),
            };
            for node in nodes {
                ms.node_status.insert(node.clone(), NodeState::Online);
                c.membership.insert(node.clone(), true);
                c.lrm.insert(node.clone(), active.clone());
                c.versions.insert(node, "9.0.0~16".into());
            }
            c.ms = ms;
            let sid: Sid = "vm:101".parse().unwrap();
            let mut config = ResourceConfig::with_defaults(sid.clone());
            config.group = Some("g".into());
            c.resources.insert(
                sid.clone(),
                ConfiguredResource {
                    config,
                    node: n("node1"),
                },
            );
            c.ms.service_status
                .insert(sid, ServiceRecord::new(ServiceState::Started, n("node1")));
            c
        }

        fn blockers(&self) -> Vec<Blocker> {
            blockers(&self.ms, &self.membership, &self.lrm, &self.versions)
        }

        fn round(&self, gm: &mut GroupMigration) -> Vec<CrmStep> {
            let input = GroupMigrationInput {
                groups: &self.groups,
                node_versions: &self.versions,
                round_interval_ms: 10_000,
            };
            let mut out = Steps::default();
            gm.round(
                &input,
                &self.ms,
                &self.membership,
                &self.lrm,
                &self.resources,
                &mut out,
            );
            out.0
        }
    }

    fn messages(steps: &[CrmStep]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                CrmStep::Log(e) => Some(e.message.clone()),
                CrmStep::Do(a) => Some(format!("{a:?}")),
                CrmStep::Event(_) => None,
            })
            .collect()
    }

    #[test]
    fn ready_cluster_migrates_on_the_third_round_only() {
        let c = Cluster::ready();
        let mut gm = GroupMigration::default();
        assert!(c.round(&mut gm).is_empty());
        assert!(c.round(&mut gm).is_empty());
        assert_eq!(
            messages(&c.round(&mut gm)),
            [
                "ha groups migration: group 'g' becomes node-affinity rule 'ha-group-g' (resources vm:101; nodes node1; strict 0)",
                "ha groups migration: group 'spare' is used by no resource, dropped",
                "MigrateGroups",
            ]
        );
        for _ in 1..RETRY_ROUNDS {
            assert!(c.round(&mut gm).is_empty());
        }
    }

    #[test]
    fn old_version_aborts_and_retries_every_six_rounds() {
        let mut c = Cluster::ready();
        c.versions.insert(n("node3"), "9.0.0~2".into());
        let mut gm = GroupMigration::default();
        let mut attempts = Vec::new();
        for round in 1..=15u32 {
            let steps = c.round(&mut gm);
            if !steps.is_empty() {
                attempts.push(round);
                assert_eq!(
                    messages(&steps),
                    [
                        "ha groups migration: node 'node3' has pve-manager version '9.0.0~2', needs at least '9.0.0~16'",
                        "abort ha groups migration: not all nodes run pve-manager 9.0.0~16 or newer",
                        "retry ha groups migration in 6 rounds (~ 60 seconds)",
                    ]
                );
            }
        }
        assert_eq!(attempts, [3, 9, 15]);
    }

    #[test]
    fn no_groups_no_attempt_and_no_counting() {
        let mut c = Cluster::ready();
        let groups = std::mem::take(&mut c.groups);
        let mut gm = GroupMigration::default();
        for _ in 0..10 {
            assert!(c.round(&mut gm).is_empty());
        }
        c.groups = groups;
        c.round(&mut gm);
        c.round(&mut gm);
        assert!(!c.round(&mut gm).is_empty(), "third round with groups");
    }

    #[test]
    fn every_precondition_is_checked() {
        assert!(Cluster::ready().blockers().is_empty());

        let mut c = Cluster::ready();
        c.membership.values_mut().for_each(|o| *o = false);
        assert_eq!(c.blockers(), [Blocker::NotQuorate]);

        let mut c = Cluster::ready();
        c.membership.clear();
        assert_eq!(c.blockers(), [Blocker::NoNodes]);

        let mut c = Cluster::ready();
        c.ms.node_status.insert(n("node2"), NodeState::Maintenance);
        assert_eq!(
            c.blockers(),
            [Blocker::NodeNotOnline(n("node2"), NodeState::Maintenance)]
        );

        let mut c = Cluster::ready();
        c.lrm.remove(&n("node2"));
        c.versions.remove(&n("node3"));
        assert_eq!(
            c.blockers(),
            [
                Blocker::LrmStatusUnknown(n("node2")),
                Blocker::VersionUnknown(n("node3"))
            ]
        );

        let mut c = Cluster::ready();
        c.versions.insert(n("node1"), "nine".into());
        assert_eq!(
            c.blockers(),
            [Blocker::VersionMalformed(n("node1"), "nine".into())]
        );

        let mut c = Cluster::ready();
        if let Some(l) = c.lrm.get_mut(&n("node2")) {
            l.mode = Some(LrmMode::Restart);
        }
        assert_eq!(
            c.blockers(),
            [Blocker::LrmMode(n("node2"), LrmMode::Restart)]
        );
    }

    #[test]
    fn waiting_lrm_counts_as_idle_only_without_active_services() {
        let mut c = Cluster::ready();
        let waiting = LrmStatus {
            state: Some(LrmState::WaitForAgentLock),
            ..LrmStatus::default()
        };
        c.lrm.insert(n("node2"), waiting.clone());
        assert!(c.blockers().is_empty(), "node2 has no services");
        c.lrm.insert(n("node1"), waiting);
        assert_eq!(
            c.blockers(),
            [Blocker::LrmNotReady(
                n("node1"),
                Some(LrmState::WaitForAgentLock)
            )]
        );
        assert_eq!(
            c.blockers()[0].to_string(),
            "lrm of node 'node1' is in state 'wait_for_agent_lock' with active services"
        );
        if let Some(sd) = c.ms.service_status.values_mut().next() {
            sd.state = ServiceState::Stopped;
        }
        assert!(c.blockers().is_empty(), "stopped services do not count");
    }
}
