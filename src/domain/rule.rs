//! Placement rules (rules.cfg). Only node affinity for now; resource
//! affinity is a later issue.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{NodeName, Sid};

/// A node-affinity rule: binds resources to nodes with priorities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
