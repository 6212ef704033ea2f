//! Rule compilation for the scheduler (spec section 2.4, "Feasibility
//! checks" and "Compiled form"), node-affinity only.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{NodeAffinityRule, NodeName, Sid};

/// Why a node-affinity rule is dropped by feasibility check 1 (Proxmox's
/// wording).
pub const SHARED_RESOURCE_REASON: &str =
    "at least one resource is already used in another node affinity rule";

/// The node preferences of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledNodeAffinity {
    /// Node -> priority (higher wins). For a non-strict rule every cluster
    /// node not listed in the rule is present with priority -1.
    pub nodes: BTreeMap<NodeName, i64>,
    /// The resource may run only on the listed nodes.
    pub strict: bool,
}

/// What the scheduler consumes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledRules {
    /// SID -> its node preferences; resources without an entry may run on
    /// every online node.
    pub node_affinity: BTreeMap<Sid, CompiledNodeAffinity>,
}

/// Compiles rules against the cluster's node list (all known nodes, online
/// or not). Disabled rules are skipped. Feasibility check 1: a resource in
/// two or more enabled node-affinity rules makes *all* of those rules
/// dropped. Returns the compiled rules and one log message
/// `Drop rule '<id>', because <reason>.` per dropped rule, sorted by rule
/// id.
pub fn compile_rules(
    rules: &[NodeAffinityRule],
    cluster_nodes: &[NodeName],
) -> (CompiledRules, Vec<String>) {
    let enabled: Vec<&NodeAffinityRule> = rules.iter().filter(|r| !r.disable).collect();

    let mut users: BTreeMap<&Sid, usize> = BTreeMap::new();
    for rule in &enabled {
        for sid in &rule.resources {
            *users.entry(sid).or_default() += 1;
        }
    }
    let conflicting = |rule: &NodeAffinityRule| {
        rule.resources
            .iter()
            .any(|sid| users.get(sid).is_some_and(|n| *n > 1))
    };

    let mut dropped: BTreeSet<&str> = BTreeSet::new();
    let mut compiled = CompiledRules::default();
    for rule in enabled {
        if conflicting(rule) {
            dropped.insert(&rule.id);
            continue;
        }
        let mut nodes: BTreeMap<NodeName, i64> = rule
            .nodes
            .iter()
            .map(|(node, priority)| (node.clone(), i64::from(*priority)))
            .collect();
        if !rule.strict {
            for node in cluster_nodes {
                nodes.entry(node.clone()).or_insert(-1);
            }
        }
        for sid in &rule.resources {
            compiled.node_affinity.insert(
                sid.clone(),
                CompiledNodeAffinity {
                    nodes: nodes.clone(),
                    strict: rule.strict,
                },
            );
        }
    }
    let messages = dropped
        .into_iter()
        .map(|id| format!("Drop rule '{id}', because {SHARED_RESOURCE_REASON}."))
        .collect();
    (compiled, messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_rules_cfg;

    fn nodes(names: &[&str]) -> Vec<NodeName> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn prefs(compiled: &CompiledRules, sid: &str) -> Option<(Vec<(String, i64)>, bool)> {
        let sid: Sid = sid.parse().unwrap();
        compiled.node_affinity.get(&sid).map(|entry| {
            (
                entry
                    .nodes
                    .iter()
                    .map(|(n, p)| (n.to_string(), *p))
                    .collect(),
                entry.strict,
            )
        })
    }

    #[test]
    fn strict_and_non_strict() {
        let rules = parse_rules_cfg(
            "node-affinity: soft\n\tnodes node1:2,node2\n\tresources vm:101\n\nnode-affinity: hard\n\tnodes node3\n\tresources vm:102,vm:103\n\tstrict 1\n",
            "rules.cfg",
        )
        .unwrap();
        let (compiled, messages) =
            compile_rules(&rules, &nodes(&["node1", "node2", "node3", "node4"]));
        assert!(messages.is_empty());
        assert_eq!(
            prefs(&compiled, "vm:101"),
            Some((
                vec![
                    ("node1".into(), 2),
                    ("node2".into(), 0),
                    ("node3".into(), -1),
                    ("node4".into(), -1)
                ],
                false
            ))
        );
        let hard = Some((vec![("node3".to_string(), 0)], true));
        assert_eq!(prefs(&compiled, "vm:102"), hard);
        assert_eq!(prefs(&compiled, "vm:103"), hard);
        assert_eq!(prefs(&compiled, "vm:104"), None);
    }

    #[test]
    fn shared_resources_drop_every_rule_involved() {
        let rules = parse_rules_cfg(
            "node-affinity: zeta\n\tnodes node1\n\tresources vm:101,vm:102\n\nnode-affinity: alpha\n\tnodes node2\n\tresources vm:102\n\nnode-affinity: ok\n\tnodes node3\n\tresources vm:103\n\nnode-affinity: off\n\tdisable\n\tnodes node1\n\tresources vm:103\n",
            "rules.cfg",
        )
        .unwrap();
        let (compiled, messages) = compile_rules(&rules, &nodes(&["node1", "node2", "node3"]));
        assert_eq!(
            messages,
            [
                "Drop rule 'alpha', because at least one resource is already used in another node affinity rule.",
                "Drop rule 'zeta', because at least one resource is already used in another node affinity rule.",
            ]
        );
        assert_eq!(prefs(&compiled, "vm:101"), None);
        assert_eq!(prefs(&compiled, "vm:102"), None);
        // The disabled rule neither applies nor conflicts.
        assert_eq!(
            prefs(&compiled, "vm:103"),
            Some((
                vec![
                    ("node1".into(), -1),
                    ("node2".into(), -1),
                    ("node3".into(), 0)
                ],
                false
            ))
        );
    }
}
