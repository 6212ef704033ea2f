//! Per-resource configuration (one section of resources.cfg).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RequestedState, Sid};

/// Default for `max_restart`: restarts on the same node after a failed start.
pub const DEFAULT_MAX_RESTART: u32 = 1;
/// Default for `max_relocate`: relocations after restarts are exhausted.
pub const DEFAULT_MAX_RELOCATE: u32 = 1;

/// Largest accepted `max_restart`. Proxmox sets no maximum; a start is
/// tried `max_restart + 1` times per node, and more than 100 restarts of
/// a service that keeps failing is no longer recovery.
pub const MAX_RESTART_LIMIT: u32 = 100;
/// Largest accepted `max_relocate` (as [`MAX_RESTART_LIMIT`]; more than a
/// cluster has nodes is never useful).
pub const MAX_RELOCATE_LIMIT: u32 = 100;
/// Largest accepted stop timeout in seconds (`crm-command stop`): one day.
/// Proxmox sets no maximum; a bound keeps deadline arithmetic in range.
pub const STOP_TIMEOUT_MAX: u64 = 86_400;

/// The configuration of one HA resource, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceConfig {
    /// The resource identifier.
    pub sid: Sid,
    /// The requested state.
    pub state: RequestedState,
    /// Move back to the highest-priority node when it returns.
    pub failback: bool,
    /// Restarts on the same node after a failed start.
    pub max_restart: u32,
    /// Relocations to other nodes once restarts are exhausted.
    pub max_relocate: u32,
    /// Legacy group reference (converted to a node-affinity rule).
    pub group: Option<String>,
    /// Free text, stored verbatim.
    pub comment: Option<String>,
    /// Agent parameters (e.g. `cmd` for exec, `unit` for systemd, OCF
    /// `OCF_RESKEY_*` values for ocf), in key order.
    pub params: BTreeMap<String, String>,
}

impl ResourceConfig {
    /// A resource with every option at its default.
    pub fn with_defaults(sid: Sid) -> Self {
        ResourceConfig {
            sid,
            state: RequestedState::Started,
            failback: true,
            max_restart: DEFAULT_MAX_RESTART,
            max_relocate: DEFAULT_MAX_RELOCATE,
            group: None,
            comment: None,
            params: BTreeMap::new(),
        }
    }
}
