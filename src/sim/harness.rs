//! The run loop (spec section 8.3): rounds, command batches, the end of
//! the run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scenario::Scenario;
use super::timing::SimTiming;
use super::world::World;

/// Final state of one service.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FinalService {
    /// CRM state (or `ignored`/`unmanaged` when not tracked).
    pub state: String,
    /// The node (config node).
    pub node: String,
    /// The CRM's node of a tracked service (its record in the manager
    /// status); absent for an untracked one. It differs from `node` while
    /// a move is in flight (the guest's config has moved, the CRM has not
    /// yet taken in the result) or after a manual move while disarmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_node: Option<String>,
    /// Nodes where it runs.
    pub running_on: Vec<String>,
    /// Legacy group reference (absent once the groups are migrated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The resource's failback flag.
    pub failback: bool,
}

/// Final state of one node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FinalNode {
    /// `on` or `off`.
    pub power: String,
    /// `on` or `off`.
    pub network: String,
    /// HA node state in the manager status.
    pub node_state: String,
    /// CRM daemon state (`none` without daemon).
    pub crm_state: String,
    /// LRM daemon state (`none` without daemon).
    pub lrm_state: String,
}

/// The `--final-state` document (design.md section 9).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FinalState {
    /// Simulated time at the end (seconds).
    pub time: u64,
    /// Services.
    pub services: BTreeMap<String, FinalService>,
    /// Nodes.
    pub nodes: BTreeMap<String, FinalNode>,
    /// Ids of the legacy groups left (empty after the group migration).
    pub groups: Vec<String>,
    /// Ids of the node-affinity rules in the configuration.
    pub rules: Vec<String>,
    /// Safety violations.
    pub violations: Vec<String>,
    /// Liveness violations: nodes reset by their watchdog although they
    /// reached the quorum (see `checks.rs`).
    pub liveness_violations: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct SimResult {
    /// The event log, one line per event.
    pub log: Vec<String>,
    /// The final state.
    pub final_state: FinalState,
    /// Set when the run aborted.
    pub error: Option<String>,
    /// The CRM's event history as the store would keep it.
    pub history: Vec<crate::crm::HaEvent>,
}

/// Runs a scenario to its end with seed 0 (sorted node order, no message
/// delay or loss).
pub fn run(sc: &Scenario, timing: SimTiming) -> SimResult {
    run_seeded(sc, timing, 0)
}

/// Runs a scenario to its end with `seed`.
pub fn run_seeded(sc: &Scenario, timing: SimTiming, seed: u64) -> SimResult {
    let mut world = World::new(sc, timing, seed);
    let error = run_world(&mut world, sc.cmdlist.clone());
    let final_state = final_state(&world);
    SimResult {
        log: std::mem::take(&mut world.log),
        final_state,
        error,
        history: world.history.events().cloned().collect(),
    }
}

/// Runs the loop on a prepared world.
pub fn run_world(world: &mut World, cmdlist: Vec<Vec<String>>) -> Option<String> {
    let timing = world.timing;
    world.hw_log("hardware", "starting simulation");
    let mut batches = cmdlist.into_iter();
    let mut last_command = 0u64;
    let mut next_cmd_at = 0u64;
    let mut loop_count = 0u64;
    let mut skip_crm = 0u32;
    let mut skip_lrm = 0u32;
    let node_count = world.nodes.len() as u64;
    let looptime = timing.looptime_ms.max(2 * timing.step_ms * node_count);
    loop {
        let start = world.now;
        let crm_skipped = skip_crm > 0;
        let lrm_skipped = skip_lrm > 0;
        if crm_skipped {
            skip_crm -= 1;
            world.crm_skipped_at = Some(world.now);
            world.hw_log("run-loop", "skipping CRM round");
        }
        if lrm_skipped {
            skip_lrm -= 1;
            world.hw_log("run-loop", "skipping LRM round");
        }
        for node in world.round_order() {
            world.advance_to(world.now);
            if !crm_skipped && world.run_crm(&node) {
                world.crm_exited(&node);
            }
            world.net_changed();
            world.advance_to(world.now);
            if !lrm_skipped && world.run_lrm(&node) {
                world.lrm_exited(&node);
            }
            world.net_changed();
        }
        world.advance_to(world.now);
        // starts on a second node are caught when they happen; this
        // catches the rest (e.g. guests added as running) once per round
        world.check_double_running();
        if world.now - start < looptime {
            world.advance_to(start + looptime);
        }
        if world.now > timing.max_time_ms {
            let msg = "simulation time limit exceeded".to_string();
            world.hw_log("hardware", &format!("exit simulation - {msg}"));
            return Some(msg);
        }
        let now = world.now;
        for n in world.nodes.values_mut() {
            n.crm_time = now;
            n.lrm_time = now;
        }
        if world.now < next_cmd_at {
            continue;
        }
        if loop_count.is_multiple_of(5) {
            match batches.next() {
                None => {
                    if world.now - last_command > timing.end_quiet_ms {
                        world.hw_log("hardware", "exit simulation - done");
                        return None;
                    }
                }
                Some(list) => {
                    for cmd in list {
                        last_command = world.now;
                        let words: Vec<&str> = cmd.split_whitespace().collect();
                        match words.as_slice() {
                            ["delay", n] => {
                                world.hw_log("cmdlist", &format!("execute {cmd}"));
                                let secs: u64 = n.parse().unwrap_or(0);
                                next_cmd_at = world.now + secs * timing.delay_scale_ms;
                            }
                            ["skip-round", what, rest @ ..] => {
                                world.hw_log("cmdlist", &format!("execute {cmd}"));
                                let count: u32 =
                                    rest.first().and_then(|c| c.parse().ok()).unwrap_or(1);
                                if *what == "crm" {
                                    skip_crm = count;
                                } else {
                                    skip_lrm = count;
                                }
                            }
                            _ => world.execute_command(&cmd, "cmdlist"),
                        }
                    }
                    // The commands of a batch happen at once.
                    world.net_changed();
                }
            }
        }
        loop_count += 1;
    }
}

/// Builds the final-state document.
pub fn final_state(world: &World) -> FinalState {
    let ms = &world.manager_status;
    let mut services = BTreeMap::new();
    for (sid, e) in &world.services {
        let state = match ms.service_status.get(sid) {
            Some(sd) => sd.state.as_str().to_string(),
            None if e.config.state == crate::domain::RequestedState::Ignored => "ignored".into(),
            None => "unmanaged".into(),
        };
        services.insert(
            sid.to_string(),
            FinalService {
                state,
                node: e.node.to_string(),
                crm_node: ms.service_status.get(sid).map(|sd| sd.node.to_string()),
                running_on: world
                    .running_on(sid)
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                group: e.config.group.clone(),
                failback: e.config.failback,
            },
        );
    }
    let onoff = |b: bool| {
        if b {
            "on".to_string()
        } else {
            "off".to_string()
        }
    };
    let nodes = world
        .nodes
        .iter()
        .map(|(name, n)| {
            (
                name.to_string(),
                FinalNode {
                    power: onoff(n.power),
                    network: onoff(n.network),
                    node_state: ms
                        .node_status
                        .get(name)
                        .map_or("unknown".to_string(), |s| s.as_str().to_string()),
                    crm_state: n
                        .crm
                        .as_ref()
                        .map_or("none".into(), |c| c.state().as_str().to_string()),
                    lrm_state: n
                        .lrm
                        .as_ref()
                        .map_or("none".into(), |l| l.state().as_str().to_string()),
                },
            )
        })
        .collect();
    FinalState {
        time: world.now / 1000,
        services,
        nodes,
        groups: world.groups.iter().map(|g| g.id.clone()).collect(),
        rules: world.rules.iter().map(|r| r.id.clone()).collect(),
        violations: world.violations.clone(),
        liveness_violations: world.liveness_violations.clone(),
    }
}
