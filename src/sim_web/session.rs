//! One simulator session of `sim serve`: the scenario it was loaded from,
//! the run in progress (a [`Runner`], the same loop `sim run` uses), and
//! what the page and the API ask of it. Nothing here does I/O except
//! loading and saving scenario directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::sim::harness::{final_state, FinalNode, RoundOutcome, Runner};
use crate::sim::scenario::{check_command_timing, CommandCheck, CommandError, SCENARIO_FILES};
use crate::sim::{Scenario, ScenarioError, SimTiming, World};

/// Most rounds one `run` request may ask for: a request stays bounded even
/// when the run never ends (every profile's time limit is reached well
/// before: 500 rounds in `pve`).
pub const MAX_RUN_ROUNDS: u64 = 100_000;

/// The scenario `sim serve` starts with when no directory is given: three
/// powered nodes, one started service on each and one stopped.
const BUILTIN_HARDWARE: &str = r#"{
  "node1": {"power": "on", "network": "on"},
  "node2": {"power": "on", "network": "on"},
  "node3": {"power": "on", "network": "on"}
}
"#;
const BUILTIN_SERVICES: &str = r#"{
  "vm:101": {"node": "node1", "state": "started"},
  "vm:102": {"node": "node2", "state": "started"},
  "vm:103": {"node": "node3", "state": "started"},
  "ct:104": {"node": "node1", "state": "stopped"}
}
"#;

/// Hands out [`Session::generation`]s: every load and reset takes a new
/// one, so a page notices that the log started over.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// More rounds may change something (commands pending or not quiet
    /// yet).
    Running,
    /// Every command ran and the quiet time passed: where `sim run` ends.
    /// Stepping on is allowed; a new command makes the run go on.
    Done,
    /// The simulated time limit was exceeded; only reset or load help.
    Aborted,
}

/// A node as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// The final-state fields (`power`, `network`, `node_state`,
    /// `crm_state`, `lrm_state`).
    #[serde(flatten)]
    pub node: FinalNode,
    /// This node leads Raft.
    pub leader: bool,
    /// This node's CRM wrote the manager status last (the master).
    pub master: bool,
}

/// A service as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// CRM state (`ignored`/`unmanaged` when not tracked).
    pub state: String,
    /// The configured node.
    pub node: String,
    /// The CRM's node, for a tracked service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_node: Option<String>,
    /// Nodes where it runs.
    pub running_on: Vec<String>,
    /// The requested state in the service configuration.
    pub requested: String,
}

/// The answer of `GET /api/state`.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    /// Simulated time (seconds).
    pub time: u64,
    /// Simulated time (milliseconds).
    pub time_ms: u64,
    /// Changes on every load and reset: the log started over.
    pub generation: u64,
    /// Rounds run.
    pub round: u64,
    /// Where the run stands.
    pub status: RunStatus,
    /// Why the run aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Timing profile.
    pub profile: &'static str,
    /// Seed.
    pub seed: u64,
    /// The scenario directory loaded last (none for the built-in one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeView>,
    /// Services by SID.
    pub services: BTreeMap<String, ServiceView>,
    /// Safety violations.
    pub violations: Vec<String>,
    /// Liveness violations.
    pub liveness_violations: Vec<String>,
    /// Command batches still to execute, the next first (the next command
    /// slot runs the first).
    pub pending: Vec<Vec<String>>,
    /// Index of the first log line in `log`.
    pub log_from: usize,
    /// Log lines so far in total.
    pub log_total: usize,
    /// Log lines from `log_from` on.
    pub log: Vec<String>,
}

/// Why a save did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The directory holds a scenario file this scenario does not have:
    /// loading the directory would give another scenario.
    #[error("{path} exists and is not part of this scenario; remove it or save elsewhere")]
    ForeignFile {
        /// The file.
        path: String,
    },
    /// Creating the directory or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One simulator session.
#[derive(Debug)]
pub struct Session {
    /// The scenario files as loaded (file name -> text).
    files: BTreeMap<String, String>,
    dir: Option<PathBuf>,
    scenario: Scenario,
    timing: SimTiming,
    seed: u64,
    runner: Runner,
    status: RunStatus,
    generation: u64,
}

fn profile_error(name: &str) -> ScenarioError {
    ScenarioError {
        file: "profile".into(),
        line: 0,
        token: name.to_string(),
        message: "unknown profile (expected pve, default or fast)".into(),
    }
}

impl Session {
    /// Loads a scenario directory. `profile` and `seed` override the
    /// scenario's own files; without either, `pve` and 0 (as `sim run`).
    pub fn from_dir(
        dir: &Path,
        profile: Option<&str>,
        seed: Option<u64>,
    ) -> Result<Session, ScenarioError> {
        let files = Scenario::read_files(dir)?;
        Session::from_files(files, Some(dir.to_path_buf()), profile, seed)
    }

    /// The built-in scenario (three powered nodes, four services).
    pub fn builtin(profile: Option<&str>, seed: Option<u64>) -> Result<Session, ScenarioError> {
        let files = BTreeMap::from([
            ("cmdlist".to_string(), "[]\n".to_string()),
            ("hardware_status".to_string(), BUILTIN_HARDWARE.to_string()),
            ("service_config".to_string(), BUILTIN_SERVICES.to_string()),
        ]);
        Session::from_files(files, None, profile, seed)
    }

    /// A session of a scenario given as its files' texts.
    pub fn from_files(
        files: BTreeMap<String, String>,
        dir: Option<PathBuf>,
        profile: Option<&str>,
        seed: Option<u64>,
    ) -> Result<Session, ScenarioError> {
        let scenario = Scenario::from_files(&files)?;
        let name = profile
            .map(str::to_string)
            .or_else(|| scenario.profile.clone())
            .unwrap_or_else(|| "pve".to_string());
        let timing = SimTiming::by_name(&name).ok_or_else(|| profile_error(&name))?;
        scenario.validate_for(&timing)?;
        let seed = seed.or(scenario.seed).unwrap_or(0);
        let runner = Runner::new(
            World::new(&scenario, timing, seed),
            scenario.cmdlist.clone(),
        );
        Ok(Session {
            files,
            dir,
            scenario,
            timing,
            seed,
            runner,
            status: RunStatus::Running,
            generation: next_generation(),
        })
    }

    /// Starts the scenario over (same profile and seed): the commands
    /// given interactively are dropped.
    pub fn reset(&mut self) {
        let world = World::new(&self.scenario, self.timing, self.seed);
        self.runner = Runner::new(world, self.scenario.cmdlist.clone());
        self.status = RunStatus::Running;
        self.generation = next_generation();
    }

    /// The world as it is now.
    pub fn world(&self) -> &World {
        self.runner.world()
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Runs one round.
    pub fn step(&mut self) -> RunStatus {
        self.status = match self.runner.step_round() {
            RoundOutcome::Running => RunStatus::Running,
            RoundOutcome::Done => RunStatus::Done,
            RoundOutcome::Aborted(_) => RunStatus::Aborted,
        };
        self.status
    }

    /// Runs up to `rounds` rounds (at most [`MAX_RUN_ROUNDS`]), stopping
    /// early on an abort and, with `until_done`, once the run is done.
    /// Without `rounds`, runs until done (bounded the same way). Returns
    /// the rounds run.
    pub fn run(&mut self, rounds: Option<u64>, until_done: bool) -> u64 {
        let limit = rounds.unwrap_or(MAX_RUN_ROUNDS).min(MAX_RUN_ROUNDS);
        let until_done = until_done || rounds.is_none();
        let mut ran = 0;
        while ran < limit && self.status != RunStatus::Aborted {
            let status = self.step();
            ran += 1;
            if until_done && status == RunStatus::Done {
                break;
            }
        }
        ran
    }

    /// Checks one cmdlist line with the parser `sim run` uses, against the
    /// nodes and the services as they will be when it runs (after the
    /// commands still pending); nothing changes when it is refused.
    pub fn check_command(&self, cmd: &str) -> Result<(), CommandError> {
        let world = self.world();
        let mut check =
            CommandCheck::new(world.nodes.keys().cloned(), world.services.keys().cloned());
        for pending in self.runner.pending().flatten() {
            // Pending commands passed this check when they were given;
            // running them through it again tracks their adds and deletes.
            let _ = check.check(pending);
        }
        check.check(cmd)?;
        check_command_timing(cmd, &self.timing)
    }

    /// Queues a valid command for the next command slot (every 5th round,
    /// as in `sim run`, so a saved scenario replays the same). With
    /// `advance`, runs rounds until that slot executed it (or the run
    /// aborts). Returns the rounds run.
    pub fn command(&mut self, cmd: &str, advance: bool) -> Result<u64, CommandError> {
        if self.status == RunStatus::Aborted {
            return Err(CommandError {
                token: cmd.to_string(),
                message:
                    "the run aborted (simulation time limit exceeded); reset or load a scenario"
                        .to_string(),
            });
        }
        self.check_command(cmd)?;
        let cmd = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
        self.runner.queue_command(cmd);
        if self.status == RunStatus::Done {
            self.status = RunStatus::Running;
        }
        let mut ran = 0;
        if advance {
            let before = self.runner.pending().count();
            while self.runner.pending().count() >= before
                && ran < MAX_RUN_ROUNDS
                && self.status != RunStatus::Aborted
            {
                self.step();
                ran += 1;
            }
        }
        Ok(ran)
    }

    /// The state for the page: everything, with the log lines from
    /// `since` on.
    pub fn state(&self, since: usize) -> StateView {
        let world = self.world();
        let fs = final_state(world);
        let leader = world.cluster.raft.leader().map(|n| n.to_string());
        let master = world
            .manager_status
            .master_node
            .as_ref()
            .map(|n| n.to_string());
        let nodes = fs
            .nodes
            .into_iter()
            .map(|(name, node)| {
                let view = NodeView {
                    node,
                    leader: leader.as_deref() == Some(name.as_str()),
                    master: master.as_deref() == Some(name.as_str()),
                };
                (name, view)
            })
            .collect();
        let requested: BTreeMap<String, &'static str> = world
            .services
            .iter()
            .map(|(sid, e)| (sid.to_string(), e.config.state.as_str()))
            .collect();
        let services = fs
            .services
            .into_iter()
            .map(|(sid, s)| {
                let requested = requested
                    .get(&sid)
                    .copied()
                    .unwrap_or("unknown")
                    .to_string();
                let view = ServiceView {
                    state: s.state,
                    node: s.node,
                    crm_node: s.crm_node,
                    running_on: s.running_on,
                    requested,
                };
                (sid, view)
            })
            .collect();
        let from = since.min(world.log.len());
        StateView {
            time: world.now / 1000,
            time_ms: world.now,
            generation: self.generation,
            round: self.runner.rounds(),
            status: self.status,
            error: self.runner.aborted().map(str::to_string),
            profile: self.timing.name,
            seed: self.seed,
            dir: self.dir.as_ref().map(|d| d.display().to_string()),
            nodes,
            services,
            violations: fs.violations,
            liveness_violations: fs.liveness_violations,
            pending: self.runner.pending().cloned().collect(),
            log_from: from,
            log_total: world.log.len(),
            log: world.log[from..].to_vec(),
        }
    }

    /// The scenario as files that `sim run` replays: the files it was
    /// loaded from, `cmdlist` replaced by the batches run so far (one per
    /// command slot, empty where a slot had none) and those still
    /// pending, `profile` and `seed` set to the ones in use, and
    /// `hardware_status`, `service_config` and `manager_status` always
    /// present.
    pub fn save_files(&self) -> BTreeMap<String, String> {
        let mut files = self.files.clone();
        files.insert("cmdlist".into(), cmdlist_text(&self.runner.cmdlist()));
        files.insert("profile".into(), format!("{}\n", self.timing.name));
        files.insert("seed".into(), format!("{}\n", self.seed));
        if !files.contains_key("hardware_status") {
            files.insert("hardware_status".into(), hardware_text(&self.scenario));
        }
        if !files.contains_key("service_config") {
            files.insert("service_config".into(), services_text(&self.scenario));
        }
        files
            .entry("manager_status".into())
            .or_insert_with(|| "{}\n".into());
        files
    }

    /// Writes [`Session::save_files`] into `dir` (created if missing;
    /// files of the same name are replaced). Refused, writing nothing,
    /// when `dir` holds another scenario file this one lacks. Returns the
    /// names written.
    pub fn save_to(&self, dir: &Path) -> Result<Vec<String>, SaveError> {
        let files = self.save_files();
        for name in SCENARIO_FILES {
            let path = dir.join(name);
            if !files.contains_key(name) && path.exists() {
                return Err(SaveError::ForeignFile {
                    path: path.display().to_string(),
                });
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| SaveError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| SaveError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(files.into_keys().collect())
    }
}

/// A cmdlist in the layout of the scenarios: one batch per line group.
fn cmdlist_text(batches: &[Vec<String>]) -> String {
    if batches.is_empty() {
        return "[]\n".into();
    }
    let quote = |s: &String| serde_json::Value::String(s.clone()).to_string();
    let mut out = String::from("[\n");
    for (i, batch) in batches.iter().enumerate() {
        if batch.is_empty() {
            out.push_str("  []");
        } else {
            out.push_str("  [\n");
            let cmds: Vec<String> = batch.iter().map(|c| format!("    {}", quote(c))).collect();
            out.push_str(&cmds.join(",\n"));
            out.push_str("\n  ]");
        }
        out.push_str(if i + 1 < batches.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

/// `hardware_status` of a scenario that had none (its defaults).
fn hardware_text(sc: &Scenario) -> String {
    let onoff = |b: bool| if b { "on" } else { "off" };
    let map: serde_json::Map<String, serde_json::Value> = sc
        .hardware
        .iter()
        .map(|(n, hw)| {
            (
                n.to_string(),
                serde_json::json!({"power": onoff(hw.power), "network": onoff(hw.network)}),
            )
        })
        .collect();
    pretty(&serde_json::Value::Object(map))
}

/// `service_config` of a scenario that had none (its defaults).
fn services_text(sc: &Scenario) -> String {
    let map: serde_json::Map<String, serde_json::Value> = sc
        .services
        .iter()
        .map(|(sid, e)| {
            (
                sid.to_string(),
                serde_json::json!({
                    "node": e.node.to_string(),
                    "state": e.state.as_str(),
                    "failback": u32::from(e.failback),
                    "max_restart": e.max_restart,
                    "max_relocate": e.max_relocate,
                }),
            )
        })
        .collect();
    pretty(&serde_json::Value::Object(map))
}

fn pretty(v: &serde_json::Value) -> String {
    // Serializing a Value cannot fail; fall back to the compact form.
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdlist_text_reads_back_as_the_same_batches() {
        let batches = vec![
            vec!["power node1 on".to_string(), "power node2 on".to_string()],
            vec![],
            vec!["service vm:101 migrate node2".to_string()],
        ];
        let text = cmdlist_text(&batches);
        let back: Vec<Vec<String>> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, batches);
        assert_eq!(cmdlist_text(&[]), "[]\n");
    }

    #[test]
    fn a_refused_command_changes_nothing_and_a_good_one_waits_for_its_slot() {
        let mut s = Session::builtin(None, None).unwrap();
        s.run(Some(3), false);
        let before = s.state(0);
        let e = s.command("service vm:101 migrate node4", true).unwrap_err();
        assert_eq!(e.token, "node4");
        assert_eq!(
            s.command("service vm:999 stopped", true).unwrap_err().token,
            "vm:999"
        );
        let after = s.state(0);
        assert_eq!(before.log, after.log);
        assert_eq!(before.round, after.round);
        // a service added by a pending command is known to the next one
        assert_eq!(s.command("service vm:110 add node2", false).unwrap(), 0);
        s.command("service vm:110 migrate node3", false).unwrap();
        assert_eq!(
            s.state(0).pending,
            vec![vec![
                "service vm:110 add node2".to_string(),
                "service vm:110 migrate node3".to_string()
            ]]
        );
        // the next slot is at round 6 (rounds 1, 6, 11, ...)
        assert_eq!(s.command("network node1 off", true).unwrap(), 3);
        assert!(s.state(0).pending.is_empty());
        assert_eq!(s.world().nodes.values().filter(|n| !n.network).count(), 1);
    }
}
