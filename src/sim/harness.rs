//! The run loop (spec section 8.3): rounds, command batches, the end of
//! the run.

use std::collections::{BTreeMap, VecDeque};

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
    let world = World::new(sc, timing, seed);
    let (mut world, error) = run_world(world, sc.cmdlist.clone());
    let final_state = final_state(&world);
    SimResult {
        log: std::mem::take(&mut world.log),
        final_state,
        error,
        history: world.history.events().cloned().collect(),
    }
}

/// Runs the loop on a prepared world to its end; returns the world and
/// the reason the run aborted, if it did.
pub fn run_world(world: World, cmdlist: Vec<Vec<String>>) -> (World, Option<String>) {
    let mut runner = Runner::new(world, cmdlist);
    let error = runner.run_to_end();
    (runner.into_world(), error)
}

/// What one round of a [`Runner`] ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// The run goes on.
    Running,
    /// Every command ran and the quiet time after the last one passed:
    /// `sim run` stops here (logged `exit simulation - done` once).
    Done,
    /// The simulated time limit was exceeded; no further round runs.
    Aborted(String),
}

/// The run loop of spec 8.3, one round at a time: it owns the world and
/// the commands still to come, so the same loop serves `sim run` (which
/// steps until [`RoundOutcome::Done`]) and `sim serve` (which steps when
/// asked and queues commands given interactively).
#[derive(Debug)]
pub struct Runner {
    world: World,
    /// Batches not yet executed, the next first.
    batches: VecDeque<Vec<String>>,
    /// One entry per command slot reached so far: the batch executed
    /// there, empty when none was left. Replaying them (plus the batches
    /// still pending) as a cmdlist reproduces this run.
    executed: Vec<Vec<String>>,
    last_command: u64,
    next_cmd_at: u64,
    loop_count: u64,
    skip_crm: u32,
    skip_lrm: u32,
    looptime: u64,
    rounds: u64,
    /// Set once the end was logged; cleared when commands arrive again.
    end_logged: bool,
    aborted: Option<String>,
}

impl Runner {
    /// Starts a run of `world` with the command batches of a cmdlist
    /// (logs `starting simulation`).
    pub fn new(mut world: World, cmdlist: Vec<Vec<String>>) -> Runner {
        world.hw_log("hardware", "starting simulation");
        let node_count = world.nodes.len() as u64;
        let timing = world.timing;
        Runner {
            looptime: timing.looptime_ms.max(2 * timing.step_ms * node_count),
            world,
            batches: cmdlist.into(),
            executed: Vec::new(),
            last_command: 0,
            next_cmd_at: 0,
            loop_count: 0,
            skip_crm: 0,
            skip_lrm: 0,
            rounds: 0,
            end_logged: false,
            aborted: None,
        }
    }

    /// The simulated world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Gives the world back (its log, its final state).
    pub fn into_world(self) -> World {
        self.world
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Why the run aborted, once it did.
    pub fn aborted(&self) -> Option<&str> {
        self.aborted.as_deref()
    }

    /// Batches still to execute, the next first.
    pub fn pending(&self) -> impl Iterator<Item = &Vec<String>> {
        self.batches.iter()
    }

    /// Adds a command to the batch the next command slot executes (a new
    /// batch when none is pending). The caller validates it first.
    pub fn queue_command(&mut self, cmd: String) {
        match self.batches.front_mut() {
            Some(batch) => batch.push(cmd),
            None => self.batches.push_back(vec![cmd]),
        }
    }

    /// The cmdlist that replays this run with `sim run`: one batch per
    /// command slot reached so far (empty where the slot had none, so the
    /// later batches land in the same rounds), then the pending batches.
    /// Empty batches at the end are left out: they change nothing.
    pub fn cmdlist(&self) -> Vec<Vec<String>> {
        let mut list: Vec<Vec<String>> = self
            .executed
            .iter()
            .chain(self.batches.iter())
            .cloned()
            .collect();
        while list.last().is_some_and(Vec::is_empty) {
            list.pop();
        }
        list
    }

    /// Steps until the run is done or aborts; returns the abort reason.
    pub fn run_to_end(&mut self) -> Option<String> {
        loop {
            match self.step_round() {
                RoundOutcome::Running => {}
                RoundOutcome::Done => return None,
                RoundOutcome::Aborted(msg) => return Some(msg),
            }
        }
    }

    /// Runs one round: each node's CRM then LRM (in the round's order),
    /// the events in between, the round's minimum length, and at a command
    /// slot (every 5th round, not before a `delay` ran out) the next batch.
    /// After an abort nothing runs and the abort is returned again.
    pub fn step_round(&mut self) -> RoundOutcome {
        if let Some(msg) = &self.aborted {
            return RoundOutcome::Aborted(msg.clone());
        }
        self.rounds += 1;
        let world = &mut self.world;
        let timing = world.timing;
        let start = world.now;
        let crm_skipped = self.skip_crm > 0;
        let lrm_skipped = self.skip_lrm > 0;
        if crm_skipped {
            self.skip_crm -= 1;
            world.crm_skipped_at = Some(world.now);
            world.hw_log("run-loop", "skipping CRM round");
        }
        if lrm_skipped {
            self.skip_lrm -= 1;
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
        if world.now - start < self.looptime {
            world.advance_to(start + self.looptime);
        }
        if world.now > timing.max_time_ms {
            let msg = "simulation time limit exceeded".to_string();
            world.hw_log("hardware", &format!("exit simulation - {msg}"));
            self.aborted = Some(msg.clone());
            return RoundOutcome::Aborted(msg);
        }
        let now = world.now;
        for n in world.nodes.values_mut() {
            n.crm_time = now;
            n.lrm_time = now;
        }
        if now < self.next_cmd_at {
            return self.outcome_between_slots();
        }
        let mut outcome = RoundOutcome::Running;
        if self.loop_count.is_multiple_of(5) {
            match self.batches.pop_front() {
                None => {
                    self.executed.push(Vec::new());
                    if now - self.last_command > timing.end_quiet_ms {
                        if !self.end_logged {
                            self.world.hw_log("hardware", "exit simulation - done");
                            self.end_logged = true;
                        }
                        outcome = RoundOutcome::Done;
                    }
                }
                Some(list) => {
                    self.end_logged = false;
                    self.execute_batch(&list);
                    self.executed.push(list);
                }
            }
        } else {
            outcome = self.outcome_between_slots();
        }
        self.loop_count += 1;
        outcome
    }

    /// Between command slots a run that already ended stays ended until a
    /// command is queued.
    fn outcome_between_slots(&self) -> RoundOutcome {
        if self.end_logged && self.batches.is_empty() {
            RoundOutcome::Done
        } else {
            RoundOutcome::Running
        }
    }

    fn execute_batch(&mut self, list: &[String]) {
        let world = &mut self.world;
        let timing = world.timing;
        for cmd in list {
            self.last_command = world.now;
            let words: Vec<&str> = cmd.split_whitespace().collect();
            match words.as_slice() {
                ["delay", n] => {
                    world.hw_log("cmdlist", &format!("execute {cmd}"));
                    let secs: u64 = n.parse().unwrap_or(0);
                    self.next_cmd_at = world.now + secs * timing.delay_scale_ms;
                }
                ["skip-round", what, rest @ ..] => {
                    world.hw_log("cmdlist", &format!("execute {cmd}"));
                    let count: u32 = rest.first().and_then(|c| c.parse().ok()).unwrap_or(1);
                    if *what == "crm" {
                        self.skip_crm = count;
                    } else {
                        self.skip_lrm = count;
                    }
                }
                _ => world.execute_command(cmd, "cmdlist"),
            }
        }
        // The commands of a batch happen at once.
        world.net_changed();
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
