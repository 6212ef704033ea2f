//! ha-manager: a standalone high-availability cluster manager.
//!
//! The crate is split as in ARCHITECTURE.md: `domain` and `config` hold the
//! data model and its text formats, `crm` and `lrm` the sans-IO state
//! machines, `sim` the deterministic simulator that drives them.

pub mod config;
pub mod crm;
pub mod domain;
pub mod lrm;
pub mod sim;
