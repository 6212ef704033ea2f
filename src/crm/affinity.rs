//! The CRM's placement rules from the configuration: node-affinity rules
//! plus the rules that HA groups stand for (spec 1.4, converted in memory
//! until the groups are migrated) and resource-affinity rules, compiled
//! against the cluster's nodes. The simulator and the daemon both feed the
//! CRM through it.

use std::collections::BTreeMap;

use crate::config::{compile_rules, rules_from_groups};
use crate::domain::{
    GroupConfig, NodeAffinityRule, NodeName, ResourceAffinityRule, ResourceConfig, Sid,
};

use super::select::{NodeAffinity, ResourceAffinity};

/// The compiled rules the CRM reads, and the `Drop rule ...` messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementRules {
    /// SID -> node preferences.
    pub node_affinity: BTreeMap<Sid, NodeAffinity>,
    /// SID -> positive and negative partners.
    pub resource_affinity: ResourceAffinity,
    /// One log message per reason a rule was dropped.
    pub messages: Vec<String>,
}

/// Compiles `rules` and `groups` for `resources` on `nodes` (node affinity
/// only). Returns the affinity per SID and one log message per dropped
/// rule.
pub fn node_affinity_from_config<'a>(
    rules: &[NodeAffinityRule],
    groups: &[GroupConfig],
    resources: impl IntoIterator<Item = &'a ResourceConfig>,
    nodes: &[NodeName],
) -> (BTreeMap<Sid, NodeAffinity>, Vec<String>) {
    let compiled = placement_rules_from_config(rules, &[], groups, resources, nodes);
    (compiled.node_affinity, compiled.messages)
}

/// Compiles node-affinity rules, resource-affinity rules and `groups` for
/// `resources` on `nodes` (all known nodes, online or not).
pub fn placement_rules_from_config<'a>(
    rules: &[NodeAffinityRule],
    resource_rules: &[ResourceAffinityRule],
    groups: &[GroupConfig],
    resources: impl IntoIterator<Item = &'a ResourceConfig>,
    nodes: &[NodeName],
) -> PlacementRules {
    if rules.is_empty() && groups.is_empty() && resource_rules.is_empty() {
        return PlacementRules::default();
    }
    let configs: Vec<ResourceConfig> = resources.into_iter().cloned().collect();
    let mut all = rules.to_vec();
    all.extend(rules_from_groups(groups, &configs));
    let (compiled, messages) = compile_rules(&all, resource_rules, nodes);
    let node_affinity = compiled
        .node_affinity
        .into_iter()
        .map(|(sid, c)| {
            (
                sid,
                NodeAffinity {
                    nodes: c.nodes,
                    strict: c.strict,
                },
            )
        })
        .collect();
    PlacementRules {
        node_affinity,
        resource_affinity: compiled.resource_affinity,
        messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_groups_cfg, parse_resources_cfg};

    #[test]
    fn a_group_becomes_the_affinity_of_its_members() {
        let groups = parse_groups_cfg(
            "group: pref\n\tnodes node2:2,node3\n\trestricted 1\n",
            "groups.cfg",
        )
        .unwrap();
        let res = parse_resources_cfg(
            "exec: a\n\tgroup pref\n\tcmd x\n\nexec: b\n\tcmd y\n",
            "resources.cfg",
        )
        .unwrap();
        let nodes: Vec<NodeName> = ["node1", "node2", "node3"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let (aff, msgs) = node_affinity_from_config(&[], &groups, &res, &nodes);
        assert!(msgs.is_empty());
        let a: Sid = "exec:a".parse().unwrap();
        let rule = &aff[&a];
        assert!(rule.strict);
        assert_eq!(rule.nodes[&nodes[1]], 2);
        assert_eq!(rule.nodes[&nodes[2]], 0);
        assert!(!rule.nodes.contains_key(&nodes[0]));
        assert!(!aff.contains_key(&"exec:b".parse::<Sid>().unwrap()));
    }
}
