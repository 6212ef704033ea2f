//! Rule compilation for the scheduler (spec section 2.4): the feasibility
//! checks that drop contradicting rules, the transforms (merge of positive
//! resource-affinity rules that share a resource, implicit negatives, node
//! affinity spreading to a positive group) and the compiled form.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Affinity, NodeAffinityRule, NodeName, ResourceAffinityRule, Sid};

/// Why a node-affinity rule is dropped by feasibility check 1 (Proxmox's
/// wording).
pub const SHARED_RESOURCE_REASON: &str =
    "at least one resource is already used in another node affinity rule";
/// Check 2: a resource-affinity rule needs two resources.
pub const TOO_FEW_RESOURCES_REASON: &str = "rule must specify at least two resources";
/// Check 3: a negative rule cannot separate more resources than nodes.
pub const MORE_RESOURCES_THAN_NODES_REASON: &str =
    "rule defines more resources than available nodes";
/// Check 5, on the resource-affinity rule.
pub const MULTI_PRIORITY_RESOURCE_REASON: &str =
    "resources are in node affinity rules with multiple priorities";
/// Check 5, on the node-affinity rule.
pub const MULTI_PRIORITY_NODE_REASON: &str =
    "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities";
/// Check 6, on a positive rule.
pub const POSITIVE_MULTI_NODE_RULES_REASON: &str =
    "resources are in more than one node affinity rule";
/// Check 6, on a node-affinity rule.
pub const NODE_RULE_IN_SPLIT_POSITIVE_REASON: &str =
    "resources are in a positive resource affinity rule together with resources of another node affinity rule";
/// Check 7, on the negative rule.
pub const NEGATIVE_TOO_FEW_NODES_REASON: &str =
    "resources are restricted by node affinity rules to fewer nodes than resources";
/// Check 7, on a node-affinity rule.
pub const NODE_RULE_TOO_FEW_NODES_REASON: &str =
    "resources are in a negative resource affinity rule and would be restricted to fewer nodes than resources";

/// The node preferences of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledNodeAffinity {
    /// Node -> priority (higher wins). For a non-strict rule every cluster
    /// node not listed in the rule is present with priority -1.
    pub nodes: BTreeMap<NodeName, i64>,
    /// The resource may run only on the listed nodes.
    pub strict: bool,
}

/// The resource affinity of every resource that has some: its partners.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledResourceAffinity {
    /// SID -> the resources that must run on the same node.
    pub positive: BTreeMap<Sid, BTreeSet<Sid>>,
    /// SID -> the resources that must run on other nodes.
    pub negative: BTreeMap<Sid, BTreeSet<Sid>>,
}

impl CompiledResourceAffinity {
    /// No resource has a partner.
    pub fn is_empty(&self) -> bool {
        self.positive.is_empty() && self.negative.is_empty()
    }

    /// `sid` has at least one partner.
    pub fn contains(&self, sid: &Sid) -> bool {
        self.positive.contains_key(sid) || self.negative.contains_key(sid)
    }
}

/// What the scheduler consumes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledRules {
    /// SID -> its node preferences; resources without an entry may run on
    /// every online node.
    pub node_affinity: BTreeMap<Sid, CompiledNodeAffinity>,
    /// Positive and negative partners.
    pub resource_affinity: CompiledResourceAffinity,
}

/// The rules left after the feasibility checks and transforms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CanonicalRules {
    /// Node-affinity rules, with the members of a positive group they
    /// touch added.
    pub node_affinity: Vec<NodeAffinityRule>,
    /// Resource-affinity rules: merged positive groups (`_merged-...`),
    /// the negative rules and the implicit negatives
    /// (`_implicit-negative-...`).
    pub resource_affinity: Vec<ResourceAffinityRule>,
    /// One `Drop rule '<id>', because <reason>.` per reason, sorted by id.
    pub messages: Vec<String>,
}

/// Groups positive rules into connected components (rules that share a
/// resource, transitively). Returns lists of indices into `positive`,
/// each sorted, ordered by their first index.
fn positive_components(positive: &[&ResourceAffinityRule]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..positive.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: BTreeMap<&Sid, usize> = BTreeMap::new();
    for (i, rule) in positive.iter().enumerate() {
        for sid in &rule.resources {
            if let Some(&j) = owner.get(sid) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            } else {
                owner.insert(sid, i);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..positive.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

#[derive(Default)]
struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    fn add(&mut self, id: &str, reason: impl Into<String>) {
        let reason = reason.into();
        let list = self.0.entry(id.to_string()).or_default();
        if !list.contains(&reason) {
            list.push(reason);
        }
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }

    fn messages(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(id, reasons)| {
                reasons
                    .iter()
                    .map(move |r| format!("Drop rule '{id}', because {r}."))
            })
            .collect()
    }
}

fn distinct_priorities(rule: &NodeAffinityRule) -> usize {
    rule.nodes.values().collect::<BTreeSet<_>>().len()
}

fn check_node_affinity(node: &[&NodeAffinityRule], errors: &mut Errors) {
    let mut users: BTreeMap<&Sid, usize> = BTreeMap::new();
    for rule in node {
        for sid in &rule.resources {
            *users.entry(sid).or_default() += 1;
        }
    }
    for rule in node {
        if rule
            .resources
            .iter()
            .any(|sid| users.get(sid).is_some_and(|n| *n > 1))
        {
            errors.add(&rule.id, SHARED_RESOURCE_REASON);
        }
    }
}

fn check_resource_affinity(
    positive: &[&ResourceAffinityRule],
    components: &[Vec<usize>],
    negative: &[&ResourceAffinityRule],
    node_count: usize,
    errors: &mut Errors,
) {
    for rule in positive.iter().chain(negative) {
        if rule.resources.len() < 2 {
            errors.add(&rule.id, TOO_FEW_RESOURCES_REASON);
        }
    }
    for rule in negative {
        if rule.resources.len() > node_count {
            errors.add(&rule.id, MORE_RESOURCES_THAN_NODES_REASON);
        }
    }
    for component in components {
        let members: BTreeSet<&Sid> = component
            .iter()
            .flat_map(|i| positive[*i].resources.iter())
            .collect();
        for neg in negative {
            let shared = neg.resources.iter().filter(|s| members.contains(s)).count();
            if shared < 2 {
                continue;
            }
            for i in component {
                let pos = positive[*i];
                errors.add(
                    &pos.id,
                    format!("rule shares two or more resources with '{}'", neg.id),
                );
                errors.add(
                    &neg.id,
                    format!("rule shares two or more resources with '{}'", pos.id),
                );
            }
        }
    }
}

fn check_global(
    node: &[&NodeAffinityRule],
    positive: &[&ResourceAffinityRule],
    components: &[Vec<usize>],
    negative: &[&ResourceAffinityRule],
    errors: &mut Errors,
) {
    let intersects = |a: &BTreeSet<Sid>, b: &BTreeSet<Sid>| a.iter().any(|s| b.contains(s));
    // 5: resource affinity meets a node-affinity rule with several
    // priority classes.
    for rule in positive.iter().chain(negative) {
        for na in node {
            if distinct_priorities(na) > 1 && intersects(&rule.resources, &na.resources) {
                errors.add(&rule.id, MULTI_PRIORITY_RESOURCE_REASON);
                errors.add(&na.id, MULTI_PRIORITY_NODE_REASON);
            }
        }
    }
    // 6: a positive group spread over several node-affinity rules.
    for component in components {
        let members: BTreeSet<Sid> = component
            .iter()
            .flat_map(|i| positive[*i].resources.iter().cloned())
            .collect();
        let touched: Vec<&&NodeAffinityRule> = node
            .iter()
            .filter(|na| intersects(&members, &na.resources))
            .collect();
        if touched.len() > 1 {
            for i in component {
                errors.add(&positive[*i].id, POSITIVE_MULTI_NODE_RULES_REASON);
            }
            for na in touched {
                errors.add(&na.id, NODE_RULE_IN_SPLIT_POSITIVE_REASON);
            }
        }
    }
    // 7: a negative rule whose restricted resources have fewer nodes
    // than resources.
    for neg in negative {
        let touched: Vec<&&NodeAffinityRule> = node
            .iter()
            .filter(|na| intersects(&neg.resources, &na.resources))
            .collect();
        if touched.is_empty() {
            continue;
        }
        let restricted = neg
            .resources
            .iter()
            .filter(|s| touched.iter().any(|na| na.resources.contains(*s)))
            .count();
        let nodes: BTreeSet<&NodeName> = touched.iter().flat_map(|na| na.nodes.keys()).collect();
        if nodes.len() < restricted {
            errors.add(&neg.id, NEGATIVE_TOO_FEW_NODES_REASON);
            for na in touched {
                errors.add(&na.id, NODE_RULE_TOO_FEW_NODES_REASON);
            }
        }
    }
}

/// The feasibility checks alone: rule id -> why the CRM drops it (the
/// reasons of the `Drop rule ...` lines). The API uses this to refuse a
/// rule and to show the verdict on each rule, so it judges rules exactly
/// as the CRM does.
pub fn feasibility_errors(
    node_rules: &[NodeAffinityRule],
    resource_rules: &[ResourceAffinityRule],
    cluster_nodes: &[NodeName],
) -> BTreeMap<String, Vec<String>> {
    run_checks(node_rules, resource_rules, cluster_nodes).0
}

/// The enabled rules, resource affinity split by its kind.
struct Enabled<'a> {
    node: Vec<&'a NodeAffinityRule>,
    positive: Vec<&'a ResourceAffinityRule>,
    negative: Vec<&'a ResourceAffinityRule>,
}

impl<'a> Enabled<'a> {
    fn of(node_rules: &'a [NodeAffinityRule], resource_rules: &'a [ResourceAffinityRule]) -> Self {
        let enabled = || resource_rules.iter().filter(|r| !r.disable);
        Enabled {
            node: node_rules.iter().filter(|r| !r.disable).collect(),
            positive: enabled()
                .filter(|r| r.affinity == Affinity::Positive)
                .collect(),
            negative: enabled()
                .filter(|r| r.affinity == Affinity::Negative)
                .collect(),
        }
    }
}

/// Runs every feasibility check on the enabled rules, all against the same
/// input.
fn run_checks(
    node_rules: &[NodeAffinityRule],
    resource_rules: &[ResourceAffinityRule],
    cluster_nodes: &[NodeName],
) -> Errors {
    let Enabled {
        node,
        positive,
        negative,
    } = Enabled::of(node_rules, resource_rules);
    let components = positive_components(&positive);
    let mut errors = Errors::default();
    check_node_affinity(&node, &mut errors);
    check_resource_affinity(
        &positive,
        &components,
        &negative,
        cluster_nodes.len(),
        &mut errors,
    );
    check_global(&node, &positive, &components, &negative, &mut errors);
    errors
}

/// Runs the feasibility checks on the enabled rules (all against the same
/// input), drops every rule with an error, then applies the transforms.
pub fn canonicalize_rules(
    node_rules: &[NodeAffinityRule],
    resource_rules: &[ResourceAffinityRule],
    cluster_nodes: &[NodeName],
) -> CanonicalRules {
    let Enabled {
        node,
        positive,
        negative,
    } = Enabled::of(node_rules, resource_rules);
    let errors = run_checks(node_rules, resource_rules, cluster_nodes);

    let mut node_out: Vec<NodeAffinityRule> = node
        .into_iter()
        .filter(|r| !errors.has(&r.id))
        .cloned()
        .collect();
    let positive: Vec<&ResourceAffinityRule> = positive
        .into_iter()
        .filter(|r| !errors.has(&r.id))
        .collect();
    let negative: Vec<ResourceAffinityRule> = negative
        .into_iter()
        .filter(|r| !errors.has(&r.id))
        .cloned()
        .collect();

    // 1: merge each connected component of the surviving positive rules.
    let mut merged: Vec<ResourceAffinityRule> = Vec::new();
    for component in positive_components(&positive) {
        if component.len() == 1 {
            merged.push(positive[component[0]].clone());
            continue;
        }
        let mut rules: Vec<&ResourceAffinityRule> =
            component.iter().map(|i| positive[*i]).collect();
        rules.sort_by(|a, b| a.resources.first().cmp(&b.resources.first()));
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        merged.push(ResourceAffinityRule {
            id: format!("_merged-{}", ids.join("-")),
            resources: rules
                .iter()
                .flat_map(|r| r.resources.iter().cloned())
                .collect(),
            affinity: Affinity::Positive,
            disable: false,
            comment: None,
        });
    }

    // 2: implicit negatives between a positive group and the negative
    // partners of any of its members.
    let mut implicit: Vec<ResourceAffinityRule> = Vec::new();
    let mut separated: BTreeSet<(Sid, Sid)> = BTreeSet::new();
    for neg in &negative {
        for a in &neg.resources {
            for b in &neg.resources {
                if a != b {
                    separated.insert((a.clone(), b.clone()));
                }
            }
        }
    }
    for group in &merged {
        for neg in &negative {
            for member in group
                .resources
                .iter()
                .filter(|m| neg.resources.contains(*m))
            {
                for x in neg.resources.iter().filter(|x| *x != member) {
                    for other in group.resources.iter().filter(|o| *o != member) {
                        if separated.contains(&(x.clone(), other.clone())) {
                            continue;
                        }
                        separated.insert((x.clone(), other.clone()));
                        separated.insert((other.clone(), x.clone()));
                        implicit.push(ResourceAffinityRule {
                            id: format!("_implicit-negative-{}-{other}-{x}", group.id),
                            resources: [x.clone(), other.clone()].into_iter().collect(),
                            affinity: Affinity::Negative,
                            disable: false,
                            comment: None,
                        });
                    }
                }
            }
        }
    }

    // 3: a positive group shares the node affinity of any member.
    for group in &merged {
        for na in node_out.iter_mut() {
            if group.resources.iter().any(|s| na.resources.contains(s)) {
                na.resources.extend(group.resources.iter().cloned());
            }
        }
    }

    let mut resource_out = merged;
    resource_out.extend(negative);
    resource_out.extend(implicit);
    CanonicalRules {
        node_affinity: node_out,
        resource_affinity: resource_out,
        messages: errors.messages(),
    }
}

/// Compiles rules against the cluster's node list (all known nodes, online
/// or not): [`canonicalize_rules`], then per SID its node preferences and
/// its positive and negative partners. Returns the compiled rules and the
/// `Drop rule ...` log messages.
pub fn compile_rules(
    node_rules: &[NodeAffinityRule],
    resource_rules: &[ResourceAffinityRule],
    cluster_nodes: &[NodeName],
) -> (CompiledRules, Vec<String>) {
    let canonical = canonicalize_rules(node_rules, resource_rules, cluster_nodes);
    let mut compiled = CompiledRules::default();
    for rule in &canonical.node_affinity {
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
    for rule in &canonical.resource_affinity {
        let map = match rule.affinity {
            Affinity::Positive => &mut compiled.resource_affinity.positive,
            Affinity::Negative => &mut compiled.resource_affinity.negative,
        };
        for sid in &rule.resources {
            let partners = map.entry(sid.clone()).or_default();
            partners.extend(rule.resources.iter().filter(|p| *p != sid).cloned());
        }
    }
    (compiled, canonical.messages)
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
            compile_rules(&rules, &[], &nodes(&["node1", "node2", "node3", "node4"]));
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
        let (compiled, messages) = compile_rules(&rules, &[], &nodes(&["node1", "node2", "node3"]));
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

    fn compile_text(text: &str, cluster: &[&str]) -> (CompiledRules, Vec<String>) {
        let (node, resource) =
            crate::domain::split_rules(crate::config::parse_rules(text, "rules.cfg").unwrap());
        compile_rules(&node, &resource, &nodes(cluster))
    }

    fn canonical_text(text: &str, cluster: &[&str]) -> CanonicalRules {
        let (node, resource) =
            crate::domain::split_rules(crate::config::parse_rules(text, "rules.cfg").unwrap());
        canonicalize_rules(&node, &resource, &nodes(cluster))
    }

    fn partners(map: &BTreeMap<Sid, BTreeSet<Sid>>, sid: &str) -> Vec<String> {
        let sid: Sid = sid.parse().unwrap();
        map.get(&sid)
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    }

    const THREE: [&str; 3] = ["node1", "node2", "node3"];

    #[test]
    fn positive_and_negative_partners() {
        let (compiled, messages) = compile_text(
            "resource-affinity: together\n\taffinity positive\n\tresources vm:101,vm:102\n\nresource-affinity: apart\n\taffinity negative\n\tresources vm:103,vm:104\n\nresource-affinity: off\n\tdisable\n\taffinity negative\n\tresources vm:101,vm:102\n",
            &THREE,
        );
        assert!(messages.is_empty(), "{messages:?}");
        let ra = &compiled.resource_affinity;
        assert_eq!(partners(&ra.positive, "vm:101"), ["vm:102"]);
        assert_eq!(partners(&ra.positive, "vm:102"), ["vm:101"]);
        assert_eq!(partners(&ra.negative, "vm:103"), ["vm:104"]);
        assert_eq!(partners(&ra.negative, "vm:104"), ["vm:103"]);
        // The disabled rule neither applies nor conflicts with 'together'.
        assert!(partners(&ra.negative, "vm:101").is_empty());
    }

    #[test]
    fn check_2_fewer_than_two_resources() {
        let (compiled, messages) = compile_text(
            "resource-affinity: lonely\n\taffinity positive\n\tresources vm:101\n",
            &THREE,
        );
        assert_eq!(
            messages,
            ["Drop rule 'lonely', because rule must specify at least two resources."]
        );
        assert!(compiled.resource_affinity.is_empty());
    }

    #[test]
    fn check_3_negative_with_more_resources_than_nodes() {
        let text = "resource-affinity: spread\n\taffinity negative\n\tresources vm:101,vm:102,vm:103,vm:104\n";
        let (compiled, messages) = compile_text(text, &THREE);
        assert_eq!(
            messages,
            ["Drop rule 'spread', because rule defines more resources than available nodes."]
        );
        assert!(compiled.resource_affinity.is_empty());
        // Four nodes (online or not) are enough.
        let (compiled, messages) = compile_text(text, &["node1", "node2", "node3", "node4"]);
        assert!(messages.is_empty());
        assert_eq!(
            partners(&compiled.resource_affinity.negative, "vm:101"),
            ["vm:102", "vm:103", "vm:104"]
        );
    }

    #[test]
    fn check_4_negative_sharing_two_resources_with_a_positive_component() {
        // p1 and p2 form one component {101, 102, 103}; 'nn' shares 101 and
        // 103 with it (one with each rule): all three go. 'ok' shares one.
        let (compiled, messages) = compile_text(
            "resource-affinity: p1\n\taffinity positive\n\tresources vm:101,vm:102\n\nresource-affinity: p2\n\taffinity positive\n\tresources vm:102,vm:103\n\nresource-affinity: nn\n\taffinity negative\n\tresources vm:101,vm:103\n\nresource-affinity: ok\n\taffinity negative\n\tresources vm:101,vm:104\n",
            &THREE,
        );
        assert_eq!(
            messages,
            [
                "Drop rule 'nn', because rule shares two or more resources with 'p1'.",
                "Drop rule 'nn', because rule shares two or more resources with 'p2'.",
                "Drop rule 'p1', because rule shares two or more resources with 'nn'.",
                "Drop rule 'p2', because rule shares two or more resources with 'nn'.",
            ]
        );
        let ra = &compiled.resource_affinity;
        assert!(ra.positive.is_empty());
        assert_eq!(partners(&ra.negative, "vm:101"), ["vm:104"]);
    }

    #[test]
    fn check_5_resource_affinity_with_multi_priority_node_affinity() {
        let (compiled, messages) = compile_text(
            "node-affinity: prio\n\tnodes node1:2,node2\n\tresources vm:101\n\nnode-affinity: flat\n\tnodes node1,node2\n\tresources vm:103\n\nresource-affinity: pair\n\taffinity negative\n\tresources vm:101,vm:102\n\nresource-affinity: pair2\n\taffinity positive\n\tresources vm:103,vm:104\n",
            &THREE,
        );
        assert_eq!(
            messages,
            [
                "Drop rule 'pair', because resources are in node affinity rules with multiple priorities.",
                "Drop rule 'prio', because resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities.",
            ]
        );
        assert!(!compiled
            .node_affinity
            .contains_key(&"vm:101".parse::<Sid>().unwrap()));
        assert!(compiled.resource_affinity.negative.is_empty());
        // A single priority class is fine, and spreads to the group (transform 3).
        assert_eq!(
            partners(&compiled.resource_affinity.positive, "vm:104"),
            ["vm:103"]
        );
        assert!(compiled
            .node_affinity
            .contains_key(&"vm:104".parse::<Sid>().unwrap()));
    }

    #[test]
    fn check_6_positive_group_in_two_node_affinity_rules() {
        let (compiled, messages) = compile_text(
            "node-affinity: na\n\tnodes node1\n\tresources vm:101\n\nnode-affinity: nb\n\tnodes node2\n\tresources vm:103\n\nresource-affinity: p1\n\taffinity positive\n\tresources vm:101,vm:102\n\nresource-affinity: p2\n\taffinity positive\n\tresources vm:102,vm:103\n",
            &THREE,
        );
        assert_eq!(
            messages,
            [
                "Drop rule 'na', because resources are in a positive resource affinity rule together with resources of another node affinity rule.",
                "Drop rule 'nb', because resources are in a positive resource affinity rule together with resources of another node affinity rule.",
                "Drop rule 'p1', because resources are in more than one node affinity rule.",
                "Drop rule 'p2', because resources are in more than one node affinity rule.",
            ]
        );
        assert_eq!(compiled, CompiledRules::default());
    }

    #[test]
    fn check_7_negative_rule_restricted_to_fewer_nodes() {
        let text = "node-affinity: only1\n\tnodes node1\n\tresources vm:101,vm:102\n\tstrict 1\n\nresource-affinity: apart\n\taffinity negative\n\tresources vm:101,vm:102,vm:103\n";
        let (compiled, messages) = compile_text(text, &THREE);
        assert_eq!(
            messages,
            [
                "Drop rule 'apart', because resources are restricted by node affinity rules to fewer nodes than resources.",
                "Drop rule 'only1', because resources are in a negative resource affinity rule and would be restricted to fewer nodes than resources.",
            ]
        );
        assert_eq!(compiled, CompiledRules::default());
        // Two nodes for two restricted resources: both rules stay.
        let (compiled, messages) =
            compile_text(&text.replace("nodes node1", "nodes node1,node2"), &THREE);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(
            partners(&compiled.resource_affinity.negative, "vm:103"),
            ["vm:101", "vm:102"]
        );
    }

    #[test]
    fn transitive_merge_implicit_negatives_and_spread() {
        // b-c and c-d merge with a-b (transitively); 'nn' separates vm:101
        // from vm:105, so vm:105 is kept apart from every group member.
        let canonical = canonical_text(
            "resource-affinity: zz\n\taffinity positive\n\tresources vm:103,vm:104\n\nresource-affinity: mm\n\taffinity positive\n\tresources vm:102,vm:103\n\nresource-affinity: aa\n\taffinity positive\n\tresources vm:101,vm:102\n\nresource-affinity: nn\n\taffinity negative\n\tresources vm:101,vm:105\n\nnode-affinity: pin\n\tnodes node2\n\tresources vm:104\n",
            &THREE,
        );
        assert!(canonical.messages.is_empty(), "{:?}", canonical.messages);
        let ids: Vec<&str> = canonical
            .resource_affinity
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "_merged-aa-mm-zz",
                "nn",
                "_implicit-negative-_merged-aa-mm-zz-vm:102-vm:105",
                "_implicit-negative-_merged-aa-mm-zz-vm:103-vm:105",
                "_implicit-negative-_merged-aa-mm-zz-vm:104-vm:105",
            ]
        );
        let pin = &canonical.node_affinity[0];
        let sids: Vec<&str> = pin.resources.iter().map(Sid::as_str).collect();
        assert_eq!(sids, ["vm:101", "vm:102", "vm:103", "vm:104"]);

        let (node, resource) = (
            canonical.node_affinity.clone(),
            canonical.resource_affinity.clone(),
        );
        let (compiled, _) = compile_rules(&node, &resource, &nodes(&THREE));
        let ra = &compiled.resource_affinity;
        assert_eq!(
            partners(&ra.positive, "vm:101"),
            ["vm:102", "vm:103", "vm:104"]
        );
        assert_eq!(
            partners(&ra.negative, "vm:105"),
            ["vm:101", "vm:102", "vm:103", "vm:104"]
        );
        assert_eq!(partners(&ra.negative, "vm:103"), ["vm:105"]);
        // Internal rules are never written.
        let written = crate::config::write_rules(
            &resource
                .into_iter()
                .map(crate::domain::Rule::ResourceAffinity)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            written,
            "resource-affinity: nn\n\taffinity negative\n\tresources vm:101,vm:105\n\n"
        );
    }
}
