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
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
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
    /// CPUs the service may use, for the `static`/`dynamic` schedulers
    /// (`None`: not configured; 0 = unlimited, counted as the whole node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxcpu: Option<CpuLimit>,
    /// Memory the service may use, in MiB, for the `static`/`dynamic`
    /// schedulers (`None`: not configured, nothing counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmem: Option<u64>,
}

/// Largest accepted `maxcpu` (cores).
pub const MAXCPU_LIMIT: u32 = 8192;
/// Largest accepted `maxmem` (MiB): 1 PiB.
pub const MAXMEM_LIMIT_MIB: u64 = 1 << 30;

/// A CPU limit in thousandths of a core (`maxcpu 1.5` = 1500), so that a
/// resource configuration stays `Eq`; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "f64", try_from = "f64")]
pub struct CpuLimit(u32);

impl CpuLimit {
    /// The limit of `cores` (rounded to a thousandth), if it is finite
    /// and within `0..=MAXCPU_LIMIT`.
    pub fn from_cores(cores: f64) -> Option<CpuLimit> {
        if !cores.is_finite() || !(0.0..=f64::from(MAXCPU_LIMIT)).contains(&cores) {
            return None;
        }
        // In range: at most 8,192,000, which fits a u32.
        Some(CpuLimit((cores * 1000.0).round() as u32))
    }

    /// The limit in cores.
    pub fn cores(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl From<CpuLimit> for f64 {
    fn from(limit: CpuLimit) -> f64 {
        limit.cores()
    }
}

impl TryFrom<f64> for CpuLimit {
    type Error = String;

    fn try_from(cores: f64) -> Result<Self, Self::Error> {
        CpuLimit::from_cores(cores)
            .ok_or_else(|| format!("maxcpu {cores} is not a number of cores in 0..={MAXCPU_LIMIT}"))
    }
}

impl std::fmt::Display for CpuLimit {
    /// The shortest decimal form: `2`, `0.5`, `1.125`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
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
            maxcpu: None,
            maxmem: None,
        }
    }
}
