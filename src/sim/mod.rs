//! Deterministic simulator (design.md section 9, spec section 8): virtual
//! time, simulated nodes, a Raft model and a network with seeded faults,
//! the lease core (leader-side table and each node's lease client),
//! watchdog-muxes and resources driving the real CRM and LRM state
//! machines. See README.md.

pub mod checks;
pub mod cluster;
pub mod commands;
pub mod crm_run;
pub mod events;
pub mod harness;
pub mod lrm_run;
pub mod mux;
pub mod net;
pub mod node;
pub mod raft;
pub mod resources;
pub mod rng;
pub mod scenario;
pub mod stats;
pub mod tasks;
pub mod timing;
pub mod world;

use std::path::Path;

pub use harness::{run, run_seeded, FinalState, SimResult};
pub use scenario::{Scenario, ScenarioError};
pub use timing::SimTiming;
pub use world::World;

/// Picks the timing for a profile name.
pub fn timing_for(profile: &str) -> Option<SimTiming> {
    SimTiming::by_name(profile)
}

/// Loads and runs a scenario directory. `profile` and `seed` override the
/// scenario's own `profile` and `seed` files; without either, `pve` and
/// seed 0 are used.
pub fn run_dir(
    dir: &Path,
    profile: Option<&str>,
    seed: Option<u64>,
) -> Result<SimResult, ScenarioError> {
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
    sc.validate_for(&timing)?;
    Ok(run_seeded(&sc, timing, seed.or(sc.seed).unwrap_or(0)))
}
