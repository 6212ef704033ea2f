//! Deterministic simulator (design.md section 9, spec section 8): virtual
//! time, simulated nodes, the lease core (leader-side table and each
//! node's lease client), watchdogs and resources driving the real CRM and
//! LRM state machines. See README.md.

pub mod harness;
pub mod leases;
pub mod scenario;
pub mod world;

use std::path::Path;

pub use harness::{run, FinalState, SimResult};
pub use scenario::{Scenario, ScenarioError};
pub use world::{SimTiming, World};

/// Picks the timing for a profile name.
pub fn timing_for(profile: &str) -> Option<SimTiming> {
    match profile {
        "pve" => Some(SimTiming::PVE),
        "default" => Some(SimTiming::DEFAULT),
        "fast" => Some(SimTiming::FAST),
        _ => None,
    }
}

/// Loads and runs a scenario directory. `profile` overrides the
/// scenario's own `profile` file; without either, `pve` is used.
pub fn run_dir(dir: &Path, profile: Option<&str>) -> Result<SimResult, ScenarioError> {
    let sc = Scenario::load(dir)?;
    let name = profile
        .map(str::to_string)
        .or_else(|| sc.profile.clone())
        .unwrap_or_else(|| "pve".to_string());
    let timing = timing_for(&name).ok_or_else(|| ScenarioError {
        file: "profile".into(),
        line: 0,
        token: name.clone(),
        message: "unknown profile (expected pve, default or fast)".into(),
    })?;
    Ok(run(&sc, timing))
}
