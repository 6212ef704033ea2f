//! Cluster resource manager: a sans-IO state machine (design.md section 4).
//!
//! * [`Manager`] runs one manager round (spec section 3.4) over a
//!   [`ManagerInput`] snapshot and keeps the [`ManagerStatus`].
//! * [`CrmDaemon`] is the daemon state machine around it (spec section
//!   3.1): quorum, manager lock, watchdog, idle handling, shutdown.
//!
//! Nothing here reads a clock, a file or a socket. See README.md.

pub mod affinity;
pub mod daemon;
pub mod explain;
pub mod fencing;
pub mod group_migration;
pub mod history;
pub mod liveness;
pub mod manager;
pub mod node_removal;
pub mod output;
pub mod pve_version;
pub mod select;
pub mod status;
pub mod status_view;
pub mod usage;
pub mod usage_report;

pub use affinity::{node_affinity_from_config, placement_rules_from_config, PlacementRules};
pub use daemon::{CrmDaemon, CrmDaemonState, CrmInput, CrmOutput};
pub use explain::{Candidate, Decision, DecisionReason};
pub use fencing::{agent_lease_name, crm_holder, AgentLease, FenceEvidence};
pub use group_migration::GroupMigrationInput;
pub use history::{EventKind, HaEvent};
pub use liveness::Liveness;
pub use manager::{ConfiguredResource, Manager, ManagerInput};
pub use output::{CrmAction, CrmStep, Level, LogEvent, Steps};
pub use select::{select_service_node, NodeAffinity, PartnerNodes, Preference, ResourceAffinity};
pub use status::{
    exit_code, Disarm, DisarmMode, DisarmState, LrmResult, ManagerStatus, NodeRequest, NodeState,
    ServiceRecord, ServiceState,
};
pub use usage::{Load, NodeStats, NodeUsage, Scheduling, ServiceStats, Usage};
pub use usage_report::{NodeUsageReport, ServiceUsageReport};
