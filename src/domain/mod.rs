//! Domain types shared by the configuration parser, the CRM, the LRM, the
//! simulator and the daemon: resource identifiers, node names, requested
//! states, resource/group/rule configuration, datacenter options and the
//! timing profiles.

pub mod datacenter;
pub mod error;
pub mod group;
pub mod node;
pub mod requested_state;
pub mod resource;
pub mod rule;
#[cfg(feature = "node")]
mod schema;
pub mod sid;

pub use datacenter::{CrsMode, CrsOptions, DatacenterOptions, RebalanceMethod, ShutdownPolicy};
pub use error::DomainError;
pub use group::{GroupConfig, GroupNode};
/// The one timing table (lease core): daemon, simulator and the
/// watchdog-mux check use it.
pub use lease::{TimingError, TimingProfile};
pub use node::NodeName;
pub use requested_state::RequestedState;
pub use resource::ResourceConfig;
pub use rule::{split_rules, Affinity, NodeAffinityRule, ResourceAffinityRule, Rule};
pub use sid::Sid;
