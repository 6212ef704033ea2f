//! The manager status document (spec sections 2.6, 3.4, 3.6), JSON
//! compatible with Proxmox's `ha/manager_status`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{NodeName, Sid};

/// The HA state of a node as tracked by the CRM (spec section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Member and online.
    Online,
    /// Online but in maintenance: services are moved away.
    Maintenance,
    /// Not seen online (recently).
    Unknown,
    /// Being fenced: its services wait for the agent lock.
    Fence,
    /// No longer a cluster member.
    Gone,
}

impl NodeState {
    /// The state name as written in the manager status.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Maintenance => "maintenance",
            NodeState::Unknown => "unknown",
            NodeState::Fence => "fence",
            NodeState::Gone => "gone",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CRM state of one service (spec section 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Transient: about to become `started`.
    RequestStart,
    /// Transient: start on another node chosen by rebalance-on-start.
    RequestStartBalance,
    /// Should run on its node.
    Started,
    /// Should be stopped on its node.
    RequestStop,
    /// Stopped (the LRM keeps it stopped).
    Stopped,
    /// Live migration to `target`.
    Migrate,
    /// Offline move (stop, move, start) to `target`.
    Relocate,
    /// Its node is being fenced.
    Fence,
    /// Its node was fenced; waiting for a recovery node.
    Recovery,
    /// Left alone (LRM restart or disarm).
    Freeze,
    /// Needs manual intervention.
    Error,
}

impl ServiceState {
    /// The state name as written in the manager status.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::RequestStart => "request_start",
            ServiceState::RequestStartBalance => "request_start_balance",
            ServiceState::Started => "started",
            ServiceState::RequestStop => "request_stop",
            ServiceState::Stopped => "stopped",
            ServiceState::Migrate => "migrate",
            ServiceState::Relocate => "relocate",
            ServiceState::Fence => "fence",
            ServiceState::Recovery => "recovery",
            ServiceState::Freeze => "freeze",
            ServiceState::Error => "error",
        }
    }

    /// Parses a state name (used for LRM results and commands).
    pub fn parse(text: &str) -> Option<ServiceState> {
        ALL_SERVICE_STATES.into_iter().find(|s| s.as_str() == text)
    }
}

const ALL_SERVICE_STATES: [ServiceState; 11] = [
    ServiceState::RequestStart,
    ServiceState::RequestStartBalance,
    ServiceState::Started,
    ServiceState::RequestStop,
    ServiceState::Stopped,
    ServiceState::Migrate,
    ServiceState::Relocate,
    ServiceState::Fence,
    ServiceState::Recovery,
    ServiceState::Freeze,
    ServiceState::Error,
];

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts `1`/`0`, `true`/`false` (Proxmox writes integers for flags).
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        serde_json::Value::String(s) => s == "1",
        _ => false,
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn ser_flag<S: serde::Serializer>(b: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(u8::from(*b))
}

/// One service record of the manager status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct ServiceRecord {
    /// The CRM state.
    pub state: ServiceState,
    /// The node the service is on (the source while moving).
    pub node: NodeName,
    /// The command uid the LRM answers to (new on every state change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Target of migrate/relocate/request_start_balance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<NodeName>,
    /// Stop timeout of a `stop` command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Set after a confirmed successful start (only in `started`).
    #[serde(
        default,
        deserialize_with = "flag",
        serialize_with = "ser_flag",
        skip_serializing_if = "is_false"
    )]
    #[cfg_attr(feature = "node", schema(value_type = u8, minimum = 0, maximum = 1))]
    pub running: bool,
    /// Nodes where starting failed (start-failure policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_nodes: Option<Vec<NodeName>>,
    /// Node to move back to when it leaves maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_node: Option<NodeName>,
    /// A pending CRM command `[task, param]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
}

impl ServiceRecord {
    /// A fresh record in `state` on `node` without uid.
    pub fn new(state: ServiceState, node: NodeName) -> Self {
        ServiceRecord {
            state,
            node,
            uid: None,
            target: None,
            timeout: None,
            running: false,
            failed_nodes: None,
            maintenance_node: None,
            cmd: None,
        }
    }
}

/// A per-node request stored by the master (`node_request`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct NodeRequest {
    /// Manual maintenance requested.
    #[serde(
        default,
        deserialize_with = "flag",
        serialize_with = "ser_flag",
        skip_serializing_if = "is_false"
    )]
    #[cfg_attr(feature = "node", schema(value_type = u8, minimum = 0, maximum = 1))]
    pub maintenance: bool,
}

/// How services are treated while HA is disarmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisarmMode {
    /// Services are frozen in place.
    Freeze,
    /// Services are not tracked at all.
    Ignore,
}

impl DisarmMode {
    /// The mode name.
    pub fn as_str(self) -> &'static str {
        match self {
            DisarmMode::Freeze => "freeze",
            DisarmMode::Ignore => "ignore",
        }
    }
}

/// Progress of a disarm request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisarmState {
    /// Waiting for services and LRMs.
    Disarming,
    /// Every online LRM released its watchdog.
    Disarmed,
}

impl DisarmState {
    /// The state name.
    pub fn as_str(self) -> &'static str {
        match self {
            DisarmState::Disarming => "disarming",
            DisarmState::Disarmed => "disarmed",
        }
    }
}

/// The cluster-wide disarm record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct Disarm {
    /// Freeze or ignore.
    pub mode: DisarmMode,
    /// Disarming or disarmed.
    pub state: DisarmState,
}

/// The manager status, written by the master every round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct ManagerStatus {
    /// The node whose CRM wrote this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_node: Option<NodeName>,
    /// CRM clock at write (seconds).
    #[serde(default)]
    pub timestamp: u64,
    /// Node -> HA node state.
    #[serde(default)]
    pub node_status: BTreeMap<NodeName, NodeState>,
    /// SID -> service record.
    #[serde(default)]
    pub service_status: BTreeMap<Sid, ServiceRecord>,
    /// Node -> pending request (manual maintenance).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_request: BTreeMap<NodeName, NodeRequest>,
    /// The disarm record, while HA is disarmed or disarming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disarm: Option<Disarm>,
    /// Counter behind the deterministic command uids (not in Proxmox's
    /// format; absent means 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid_seq: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ManagerStatus {
    /// True if a maintenance request is set for `node`.
    pub fn maintenance_requested(&self, node: &NodeName) -> bool {
        self.node_request.get(node).is_some_and(|r| r.maintenance)
    }

    /// Whether the CRM is fencing `node`: its node state is `fence`, or a
    /// service on it is (the LRM's *fence-requested*, spec 4.1). While it
    /// is, the node must not take its lease back.
    pub fn fencing(&self, node: &NodeName) -> bool {
        self.node_status.get(node) == Some(&NodeState::Fence)
            || self
                .service_status
                .values()
                .any(|sd| &sd.node == node && sd.state == ServiceState::Fence)
    }
}

/// LRM exit codes (spec section 4.6).
pub mod exit_code {
    /// Done.
    pub const SUCCESS: i32 = 0;
    /// Failed.
    pub const ERROR: i32 = 1;
    /// Never reported: retry next round.
    pub const ETRY_AGAIN: i32 = 2;
    /// The service is not on this node.
    pub const EWRONG_NODE: i32 = 3;
    /// No agent for the type.
    pub const EUNKNOWN_SERVICE_TYPE: i32 = 4;
    /// Unknown command.
    pub const EUNKNOWN_COMMAND: i32 = 5;
    /// Bad parameter.
    pub const EINVALID_PARAMETER: i32 = 6;
    /// No config for the service.
    pub const EUNKNOWN_SERVICE: i32 = 7;
    /// Rebalance-on-start skipped.
    pub const IGNORED: i32 = 8;
}

/// One LRM result, keyed by uid in the LRM status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct LrmResult {
    /// The service.
    pub sid: Sid,
    /// The command (service state) executed.
    pub state: ServiceState,
    /// The exit code (section 4.6).
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_manager_status_loads() {
        let text = r#"{"master_node":"node1","node_status":{"node1":"online","node2":"fence"},
            "service_status":{"vm:101":{"node":"node2","state":"fence","uid":"abc","running":1}},
            "timestamp":1000,"node_request":{"node1":{"maintenance":1}}}"#;
        let ms: ManagerStatus = serde_json::from_str(text).unwrap();
        let sid: Sid = "vm:101".parse().unwrap();
        assert_eq!(ms.service_status[&sid].state, ServiceState::Fence);
        assert!(ms.service_status[&sid].running);
        assert!(ms.maintenance_requested(&"node1".parse().unwrap()));
        let back = serde_json::to_string(&ms).unwrap();
        assert!(back.contains("\"running\":1"));
        let empty: ManagerStatus = serde_json::from_str("{}").unwrap();
        assert!(empty.service_status.is_empty());
    }
}
