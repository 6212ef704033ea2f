//! Placement rules (rules.cfg, spec 1.5 and 2.4): node affinity binds
//! resources to nodes, resource affinity keeps resources together or apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{NodeName, Sid};

/// A node-affinity rule: binds resources to nodes with priorities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct NodeAffinityRule {
    /// The rule id (a config id; ids starting with `_` are internal).
    pub id: String,
    /// The resources the rule applies to.
    pub resources: BTreeSet<Sid>,
    /// Node -> priority (missing priority = 0; higher wins).
    pub nodes: BTreeMap<NodeName, u32>,
    /// Resources may run only on the listed nodes.
    pub strict: bool,
    /// The rule is kept in the file but ignored (the mere presence of the
    /// key disables it).
    pub disable: bool,
    /// Free text.
    pub comment: Option<String>,
}

impl NodeAffinityRule {
    /// The `nodes` value as rules.cfg writes it: `node1:2,node2`, a
    /// priority of 0 left out.
    pub fn nodes_text(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(node, priority)| match priority {
                0 => node.to_string(),
                p => format!("{node}:{p}"),
            })
            .collect();
        nodes.join(",")
    }
}

/// Whether a resource-affinity rule keeps its resources together or apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    /// All resources on the same node.
    Positive,
    /// The resources on pairwise different nodes.
    Negative,
}

impl Affinity {
    /// The word used in rules.cfg.
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::Positive => "positive",
            Affinity::Negative => "negative",
        }
    }
}

impl fmt::Display for Affinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource-affinity rule. Both kinds are always enforced: there is no
/// non-strict variant (spec 1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct ResourceAffinityRule {
    /// The rule id (a config id; ids starting with `_` are internal).
    pub id: String,
    /// The resources kept together or apart.
    pub resources: BTreeSet<Sid>,
    /// Together (`positive`) or apart (`negative`).
    pub affinity: Affinity,
    /// The rule is kept in the file but ignored (the mere presence of the
    /// key disables it).
    pub disable: bool,
    /// Free text.
    pub comment: Option<String>,
}

/// One section of rules.cfg, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Rule {
    /// `node-affinity: <id>`.
    NodeAffinity(NodeAffinityRule),
    /// `resource-affinity: <id>`.
    ResourceAffinity(ResourceAffinityRule),
}

impl Rule {
    /// The rule id.
    pub fn id(&self) -> &str {
        match self {
            Rule::NodeAffinity(r) => &r.id,
            Rule::ResourceAffinity(r) => &r.id,
        }
    }

    /// The resources the rule names.
    pub fn resources(&self) -> &BTreeSet<Sid> {
        match self {
            Rule::NodeAffinity(r) => &r.resources,
            Rule::ResourceAffinity(r) => &r.resources,
        }
    }
}

/// Splits rules in file order into the node-affinity and the
/// resource-affinity rules, each kind keeping its order.
pub fn split_rules(rules: Vec<Rule>) -> (Vec<NodeAffinityRule>, Vec<ResourceAffinityRule>) {
    let mut node = Vec::new();
    let mut resource = Vec::new();
    for rule in rules {
        match rule {
            Rule::NodeAffinity(r) => node.push(r),
            Rule::ResourceAffinity(r) => resource.push(r),
        }
    }
    (node, resource)
}
