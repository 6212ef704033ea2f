//! ha-manager: a standalone high-availability cluster manager.
//!
//! `domain` and `config` hold the data model and its text formats, `crm`
//! and `lrm` the sans-IO state machines, `sim` the deterministic simulator
//! that drives them, `cli` the command line.

pub mod agents;
#[cfg(feature = "node")]
pub mod api;
pub mod cli;
pub mod config;
pub mod crm;
#[cfg(feature = "node")]
pub mod daemon;
pub mod domain;
pub mod host_packages;
#[cfg(feature = "node")]
pub mod local_cluster;
pub mod lrm;
#[cfg(feature = "node")]
pub mod node_cli;
pub mod notify;
pub mod sim;
#[cfg(feature = "node")]
pub mod sim_web;
#[cfg(feature = "node")]
pub mod web;
