//! Legacy HA groups (groups.cfg).

use serde::{Deserialize, Serialize};

use super::NodeName;

/// One member of a group's node list: `node[:priority]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct GroupNode {
    /// The member node.
    pub node: NodeName,
    /// Its priority (higher wins); `None` when written without `:prio`
    /// (counts as 0).
    pub priority: Option<u32>,
}

/// A legacy group: a named node list with priorities and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct GroupConfig {
    /// The group id (a config id).
    pub id: String,
    /// Member nodes in the order written.
    pub nodes: Vec<GroupNode>,
    /// Resources may run only on member nodes.
    pub restricted: bool,
    /// Do not move resources back to a higher-priority node.
    pub nofailback: bool,
    /// Free text.
    pub comment: Option<String>,
}
