//! One consistent read of the local replica, in the shapes the CRM and the
//! LRM take as input.

use std::collections::BTreeMap;

use raft::{ClusterStore, DocKey, LeaseRecord};

use crate::api::docs::{self, NodeDirectory};
use crate::config::{effective_failback, parse_groups_cfg, parse_resources_cfg, parse_rules};
use crate::crm::usage_report::scheduling_from_reports;
use crate::crm::{
    placement_rules_from_config, ConfiguredResource, ManagerStatus, NodeUsageReport,
    PlacementRules, Scheduling,
};
use crate::domain::{
    split_rules, GroupConfig, NodeAffinityRule, NodeName, ResourceAffinityRule, ResourceConfig, Sid,
};
use crate::lrm::LrmStatus;

/// Prefix of the per-service placement documents (`placement/<sid>` ->
/// node name): where the service's configuration "lives".
pub const PLACEMENT_PREFIX: &str = "placement/";

/// The placement document key of a service.
pub fn placement_key(sid: &Sid) -> DocKey {
    DocKey::Config(format!("{PLACEMENT_PREFIX}{sid}"))
}

/// What a round reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Applied index it reflects.
    pub applied_index: u64,
    /// Manager status (default if none).
    pub manager_status: ManagerStatus,
    /// Version of the manager status document (0 = none): the CRM writes
    /// the next one with compare-and-set on it.
    pub manager_status_version: u64,
    /// The stored manager status could not be decoded. Nobody may act on
    /// it as if it were empty (an LRM would go idle and let its lease go
    /// with services running): rounds are skipped while this is set.
    pub manager_status_error: Option<String>,
    /// Version of each placement document (for compare-and-set).
    pub placement_versions: BTreeMap<Sid, u64>,
    /// LRM status per node.
    pub lrm_status: BTreeMap<NodeName, LrmStatus>,
    /// Version of each node's LRM status document (a new version is a
    /// write by that node: proof that it is alive).
    pub lrm_versions: BTreeMap<NodeName, u64>,
    /// Resources with their placement (unplaced ones are absent here and
    /// listed in `unplaced`).
    pub resources: BTreeMap<Sid, ConfiguredResource>,
    /// Configured resources without placement yet.
    pub unplaced: Vec<ResourceConfig>,
    /// Node directory.
    pub nodes: NodeDirectory,
    /// Pending CRM commands.
    pub crm_commands: Vec<String>,
    /// Leases by name.
    pub leases: BTreeMap<String, LeaseRecord>,
    /// Groups.
    pub groups: Vec<GroupConfig>,
    /// Node-affinity rules (rules.cfg).
    pub rules: Vec<NodeAffinityRule>,
    /// Resource-affinity rules (rules.cfg).
    pub resource_rules: Vec<ResourceAffinityRule>,
    /// Every configured resource, placed or not, in file order.
    pub configs: Vec<ResourceConfig>,
    /// The cluster resource scheduling options (`crs` document; the
    /// defaults if absent or unreadable, logged).
    pub crs: crate::domain::CrsOptions,
    /// Each node's last usage report (`node-usage/<node>`; an unreadable
    /// one is left out, so the node has no statistics).
    pub node_usage: BTreeMap<NodeName, NodeUsageReport>,
}

/// Reads the local replica.
pub fn read(store: &ClusterStore) -> Snapshot {
    let applied = store.read_local(|s| {
        let (ms, ms_version, ms_error) = match s.doc(&DocKey::ManagerStatus) {
            None => (ManagerStatus::default(), 0, None),
            Some(d) => match serde_json::from_str::<ManagerStatus>(&d.value) {
                Ok(ms) => (ms, d.version, None),
                Err(e) => (
                    ManagerStatus::default(),
                    d.version,
                    Some(format!("stored manager status is unreadable: {e}")),
                ),
            },
        };
        let lrm: BTreeMap<NodeName, (LrmStatus, u64)> = s
            .lrm_statuses()
            .filter_map(|(n, d)| {
                let node: NodeName = n.parse().ok()?;
                serde_json::from_str(&d.value)
                    .ok()
                    .map(|v| (node, (v, d.version)))
            })
            .collect();
        let node_usage: BTreeMap<NodeName, NodeUsageReport> = s
            .docs()
            .filter_map(|(k, d)| match k {
                DocKey::Config(name) => {
                    let node = name.strip_prefix(docs::NODE_USAGE_PREFIX)?.parse().ok()?;
                    serde_json::from_str(&d.value).ok().map(|r| (node, r))
                }
                _ => None,
            })
            .collect();
        let placement: BTreeMap<String, (String, u64)> = s
            .docs()
            .filter_map(|(k, d)| match k {
                DocKey::Config(name) => name
                    .strip_prefix(PLACEMENT_PREFIX)
                    .map(|sid| (sid.to_string(), (d.value.clone(), d.version))),
                _ => None,
            })
            .collect();
        let text = |name: &str| {
            s.doc(&DocKey::Config(name.to_string()))
                .map(|d| d.value.clone())
                .unwrap_or_default()
        };
        let leases = s
            .leases()
            .map(|(n, l)| (n.to_string(), l.clone()))
            .collect();
        (
            (ms, ms_version, ms_error),
            lrm,
            placement,
            text(docs::RESOURCES_DOC),
            text(docs::GROUPS_DOC),
            text(docs::RULES_DOC),
            text(docs::NODES_DOC),
            text(docs::CRS_DOC),
            s.crm_commands().to_vec(),
            leases,
            node_usage,
        )
    });
    let (
        (ms, ms_version, ms_error),
        lrm,
        placement,
        res_text,
        groups_text,
        rules_text,
        nodes_text,
        crs_text,
        crm_commands,
        leases,
        node_usage,
    ) = applied.value;
    let configs = parse_resources_cfg(&res_text, "resources.cfg").unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored resources.cfg is invalid");
        Vec::new()
    });
    let groups = parse_groups_cfg(&groups_text, "groups.cfg").unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored groups.cfg is invalid");
        Vec::new()
    });
    let (rules, resource_rules) = read_rules(&rules_text);
    let crs = docs::parse_crs(&crs_text).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored crs options are invalid; scheduling with the defaults");
        crate::domain::CrsOptions::default()
    });
    let mut resources = BTreeMap::new();
    let mut unplaced = Vec::new();
    let mut placement_versions = BTreeMap::new();
    let mut all_configs = Vec::with_capacity(configs.len());
    for mut config in configs {
        config.failback = effective_failback(&config, &groups);
        all_configs.push(config.clone());
        let placed = placement.get(config.sid.as_str());
        if let Some((_, version)) = placed {
            placement_versions.insert(config.sid.clone(), *version);
        }
        match placed.and_then(|(n, _)| n.parse::<NodeName>().ok()) {
            Some(node) => {
                resources.insert(config.sid.clone(), ConfiguredResource { config, node });
            }
            None => unplaced.push(config),
        }
    }
    Snapshot {
        applied_index: applied.applied_index,
        manager_status: ms,
        manager_status_version: ms_version,
        manager_status_error: ms_error,
        placement_versions,
        lrm_versions: lrm.iter().map(|(n, (_, v))| (n.clone(), *v)).collect(),
        lrm_status: lrm.into_iter().map(|(n, (l, _))| (n, l)).collect(),
        resources,
        unplaced,
        nodes: docs::parse_nodes(&nodes_text).unwrap_or_default(),
        crm_commands,
        leases,
        groups,
        rules,
        resource_rules,
        configs: all_configs,
        crs,
        node_usage,
    }
}

/// Both rule types of rules.cfg; a file that does not parse counts as no
/// rules (logged), as the simulator's CRM treats it.
fn read_rules(text: &str) -> (Vec<NodeAffinityRule>, Vec<ResourceAffinityRule>) {
    split_rules(parse_rules(text, "rules.cfg").unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored rules.cfg is invalid");
        Vec::new()
    }))
}

impl Snapshot {
    /// The compiled placement rules for the CRM (node affinity, groups
    /// and resource affinity against `nodes`): the same compilation the
    /// simulator's CRM uses.
    pub fn placement_rules(&self, nodes: &[NodeName]) -> PlacementRules {
        placement_rules_from_config(
            &self.rules,
            &self.resource_rules,
            &self.groups,
            &self.configs,
            nodes,
        )
    }

    /// The scheduler input of a CRM round: the `crs` options, the nodes'
    /// usage reports and every resource's limits and measured usage
    /// (`crm::usage_report::scheduling_from_reports`).
    pub fn scheduling(&self) -> Scheduling {
        scheduling_from_reports(
            self.crs,
            &self.node_usage,
            self.configs
                .iter()
                .map(|c| (c, self.resources.get(&c.sid).map(|r| &r.node))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{
        AgentLease, CrmAction, CrmStep, GroupMigrationInput, Manager, ManagerInput, NodeState,
        Steps,
    };

    fn node(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    /// The daemon's CRM input, built from stored rules.cfg text as
    /// `crm_task` builds it, honours both rule types.
    #[test]
    fn stored_negative_rule_reaches_the_crm() {
        let rules = "resource-affinity: apart\n\taffinity negative\n\tresources exec:a,exec:c\n\n\
                     resource-affinity: together\n\taffinity positive\n\tresources exec:a,exec:b\n\n\
                     node-affinity: pin\n\tnodes node3\n\tresources exec:d\n";
        let (rules, resource_rules) = read_rules(rules);
        assert_eq!((rules.len(), resource_rules.len()), (1, 2));
        let configs = parse_resources_cfg(
            "exec: a\n\tcmd x\n\nexec: b\n\tcmd y\n\nexec: c\n\tcmd z\n\nexec: d\n\tcmd w\n",
            "resources.cfg",
        )
        .unwrap();
        let snap = Snapshot {
            rules,
            resource_rules,
            unplaced: configs.clone(),
            configs,
            ..Snapshot::default()
        };
        let names = [node("node1"), node("node2"), node("node3")];
        let placement = snap.placement_rules(&names);
        assert!(placement.messages.is_empty(), "{:?}", placement.messages);
        let membership: BTreeMap<NodeName, bool> =
            names.iter().map(|n| (n.clone(), true)).collect();
        let leases: BTreeMap<NodeName, AgentLease> = names
            .iter()
            .map(|n| (n.clone(), AgentLease::Held { expired: false }))
            .collect();
        let mut old = ManagerStatus::default();
        for n in &names {
            old.node_status.insert(n.clone(), NodeState::Online);
        }
        let mut manager = Manager::new(node("node1"), &old);
        let input = ManagerInput {
            now_ms: 10_000,
            membership: &membership,
            resources: &snap.resources,
            node_affinity: &placement.node_affinity,
            resource_affinity: &placement.resource_affinity,
            lrm_status: &snap.lrm_status,
            crm_commands: &[],
            agent_leases: &leases,
            unplaced: &snap.unplaced,
            guest_locks: &BTreeMap::new(),
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput::no_groups(1_000),
            scheduling: &crate::crm::Scheduling::default(),
        };
        let mut out = Steps::default();
        assert!(manager.manage(&input, &mut out));
        let placed: BTreeMap<String, String> = out
            .0
            .iter()
            .filter_map(|s| match s {
                CrmStep::Do(CrmAction::PlaceResource { sid, node }) => {
                    Some((sid.to_string(), node.to_string()))
                }
                _ => None,
            })
            .collect();
        // Without the rules, least-loaded placement would spread a, b, c
        // over node1..node3 and put d on node1.
        assert_eq!(placed.len(), 4, "{placed:?}");
        assert_eq!(placed["exec:a"], placed["exec:b"], "{placed:?}");
        assert_ne!(placed["exec:a"], placed["exec:c"], "{placed:?}");
        assert_eq!(placed["exec:d"], "node3", "{placed:?}");
    }

    /// Where the CRM places a new heavy service when three nodes carry a
    /// heavy and two light services (as `tests/cluster_crs.rs` sets up),
    /// from the scheduler input `Snapshot::scheduling` builds.
    fn place_heavy2(mode: crate::domain::CrsMode) -> String {
        use crate::crm::{NodeUsageReport, ServiceRecord, ServiceState};
        use crate::domain::resource::CpuLimit;
        let text = "exec: heavy1\n\tcmd a\n\tmaxcpu 2\n\tmaxmem 8192\n\n\
                    exec: light1\n\tcmd b\n\tmaxcpu 0.1\n\tmaxmem 64\n\n\
                    exec: light2\n\tcmd c\n\tmaxcpu 0.1\n\tmaxmem 64\n\n\
                    exec: heavy2\n\tcmd d\n\tmaxcpu 2\n\tmaxmem 8192\n";
        let configs = parse_resources_cfg(text, "resources.cfg").unwrap();
        assert_eq!(configs[0].maxcpu, CpuLimit::from_cores(2.0));
        let names = [node("node1"), node("node2"), node("node3")];
        let mut snap = Snapshot {
            configs: configs.clone(),
            unplaced: vec![configs[3].clone()],
            ..Snapshot::default()
        };
        snap.crs.mode = mode;
        let mut old = ManagerStatus::default();
        for (config, on) in configs.iter().take(3).zip(&names) {
            let resource = ConfiguredResource {
                config: config.clone(),
                node: on.clone(),
            };
            snap.resources.insert(config.sid.clone(), resource);
            let mut record = ServiceRecord::new(ServiceState::Started, on.clone());
            record.running = true;
            old.service_status.insert(config.sid.clone(), record);
        }
        for n in &names {
            old.node_status.insert(n.clone(), NodeState::Online);
            let report = NodeUsageReport {
                maxcpu: 8.0,
                maxmem: 32 << 30,
                ..NodeUsageReport::default()
            };
            snap.node_usage.insert(n.clone(), report);
        }
        let membership: BTreeMap<NodeName, bool> =
            names.iter().map(|n| (n.clone(), true)).collect();
        let leases: BTreeMap<NodeName, AgentLease> = names
            .iter()
            .map(|n| (n.clone(), AgentLease::Held { expired: false }))
            .collect();
        let placement = snap.placement_rules(&names);
        let scheduling = snap.scheduling();
        let mut manager = Manager::new(node("node1"), &old);
        let input = ManagerInput {
            now_ms: 10_000,
            membership: &membership,
            resources: &snap.resources,
            node_affinity: &placement.node_affinity,
            resource_affinity: &placement.resource_affinity,
            lrm_status: &snap.lrm_status,
            crm_commands: &[],
            agent_leases: &leases,
            unplaced: &snap.unplaced,
            guest_locks: &BTreeMap::new(),
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput::no_groups(1_000),
            scheduling: &scheduling,
        };
        let mut out = Steps::default();
        assert!(manager.manage(&input, &mut out));
        out.0
            .iter()
            .find_map(|s| match s {
                CrmStep::Do(CrmAction::PlaceResource { node, .. }) => Some(node.to_string()),
                _ => None,
            })
            .expect("heavy2 placed")
    }

    #[test]
    fn static_places_by_the_limits_where_basic_counts_services() {
        use crate::domain::CrsMode;
        // One service on every node: basic takes the first by name.
        assert_eq!(place_heavy2(CrsMode::Basic), "node1");
        // node1 carries heavy1's 2 CPUs and 8 GiB; node2 and node3 tie.
        assert_eq!(place_heavy2(CrsMode::Static), "node2");
    }
}
