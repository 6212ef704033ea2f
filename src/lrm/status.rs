//! The LRM status document (spec section 4.9), JSON compatible with
//! Proxmox's `nodes/<node>/lrm_status`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crm::LrmResult;

/// The LRM daemon state (spec section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LrmState {
    /// Before the first transition.
    Startup,
    /// Idle: no lock, no watchdog.
    WaitForAgentLock,
    /// Holds the agent lock and manages services.
    Active,
    /// Lock renewal failed or fencing requested; watchdog unfed.
    LostAgentLock,
    /// Node maintenance: services are moved away.
    Maintenance,
}

impl LrmState {
    /// The state name.
    pub fn as_str(self) -> &'static str {
        match self {
            LrmState::Startup => "startup",
            LrmState::WaitForAgentLock => "wait_for_agent_lock",
            LrmState::Active => "active",
            LrmState::LostAgentLock => "lost_agent_lock",
            LrmState::Maintenance => "maintenance",
        }
    }
}

impl fmt::Display for LrmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The LRM mode published to the CRM (spec section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LrmMode {
    /// Normal operation.
    Active,
    /// LRM restarting: the CRM freezes its services.
    Restart,
    /// Node shutting down: services fail over.
    Shutdown,
    /// Node maintenance: services move away.
    Maintenance,
    /// HA disarmed.
    Disarm,
}

impl LrmMode {
    /// The mode name.
    pub fn as_str(self) -> &'static str {
        match self {
            LrmMode::Active => "active",
            LrmMode::Restart => "restart",
            LrmMode::Shutdown => "shutdown",
            LrmMode::Maintenance => "maintenance",
            LrmMode::Disarm => "disarm",
        }
    }
}

impl fmt::Display for LrmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an LRM publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct LrmStatus {
    /// The LRM state (absent in an empty document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LrmState>,
    /// The mode (absent = `active`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<LrmMode>,
    /// uid -> result, only for uids still in the manager status.
    #[serde(default)]
    pub results: BTreeMap<String, LrmResult>,
    /// LRM clock at write (seconds).
    #[serde(default)]
    pub timestamp: u64,
    /// Why this node's watchdog cannot protect it (mux unreachable, hung,
    /// or a device timeout that does not fit the timing profile). An
    /// extension of Proxmox's format: such a node takes no services and
    /// the CRM treats it as offline, so its services go elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_problem: Option<String>,
}

impl LrmStatus {
    /// The mode, with a missing one read as `active`.
    pub fn mode_or_active(&self) -> LrmMode {
        self.mode.unwrap_or(LrmMode::Active)
    }

    /// Whether this document says the same as `other`, the write time
    /// aside: a shell writes only what changed.
    pub fn same_content(&self, other: &LrmStatus) -> bool {
        self.state == other.state
            && self.mode == other.mode
            && self.results == other.results
            && self.watchdog_problem == other.watchdog_problem
    }
}
