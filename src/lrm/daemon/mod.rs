//! The LRM state machine (spec sections 4.1-4.8): agent lock, watchdog,
//! mode, workers and results. Commands are carried out by an
//! [`Executor`] (resource-agent glue) supplied by the shell.

mod rounds;

use std::collections::BTreeMap;

use crate::crm::{
    exit_code, ConfiguredResource, Level, LogEvent, LrmResult, ManagerStatus, ServiceRecord,
    ServiceState,
};
use crate::domain::{NodeName, ShutdownPolicy, Sid};

use super::status::{LrmMode, LrmState, LrmStatus};

/// Active rounds without any service on the node before the LRM goes idle.
pub const MAX_ACTIVE_IDLE_ROUNDS: u32 = 60;
/// Seconds in `lost_agent_lock` after which a restarting LRM gives up.
pub const LOST_LOCK_RESTART_GIVE_UP_MS: u64 = 90_000;

const CFS_ERROR: &str = "cfs connection refused - not mounted?";

/// Something the shell must do for the LRM. Taking the agent lock is not
/// an action: it goes through [`LockPort::take`] during the round, as
/// Proxmox's LRM takes its lock before it decides anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LrmAction {
    /// Release the agent lock. `leave_unguarded`: services of this node
    /// keep running without watchdog protection (frozen by an LRM
    /// restart, or the cluster is disarmed), so the lease must never let
    /// the node count as fenced.
    ReleaseAgentLock {
        /// Services keep running unprotected.
        leave_unguarded: bool,
    },
    /// Lost lock on a fence request (spec 4.1, 4.8): stop renewing the
    /// lease and stop feeding the watchdog, but release neither; the armed
    /// watchdog resets the node unless the lock is regained first.
    AbandonAgentLock,
    /// Open the watchdog.
    WatchdogOpen,
    /// Feed the watchdog.
    WatchdogUpdate,
    /// Close the watchdog cleanly.
    WatchdogClose,
}

/// One ordered output step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LrmStep {
    /// Log this event.
    Log(LogEvent),
    /// Carry out this action.
    Do(LrmAction),
}

/// Pushes a log step.
pub fn log_step(steps: &mut Vec<LrmStep>, level: Level, message: impl Into<String>) {
    steps.push(LrmStep::Log(LogEvent {
        level,
        message: message.into(),
    }));
}

/// A command for the resource-agent glue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// The service.
    pub sid: Sid,
    /// The command = the service state to reach (`started`, `request_stop`,
    /// `stopped`, `migrate`, `relocate`, `error`, ...).
    pub command: ServiceState,
    /// Target node for moves.
    pub target: Option<NodeName>,
    /// Stop timeout.
    pub timeout: Option<u64>,
}

/// How the node's agent lease stands, as the LRM needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLock {
    /// Held by this run and valid now: the node may act.
    Valid,
    /// Free (or left unguarded by this node): taking it succeeds unless
    /// somebody takes it first, so the LRM proceeds as if it had it; the
    /// services start only once it is valid and the watchdog armed.
    Acquirable,
    /// Wanted but not usable yet: held by this run with its renewal
    /// overdue, or held by an earlier run of this node (or a fencing hold
    /// of the CRM) that can be taken back once it expired.
    Pending,
    /// Cannot be had (the CRM is fencing this node, the watchdog does not
    /// answer, or no quorum).
    Unavailable,
}

/// The node's agent lease during an LRM round.
pub trait LockPort {
    /// Asks for the lock to be held (acquired, or kept renewed) and tells
    /// how it stands after the attempt.
    fn take(&mut self) -> AgentLock;
}

/// Executes resource commands (spec section 4.5).
pub trait Executor {
    /// Runs `request`. Returns `Some(exit code)` when it finished inline, or
    /// `None` when it runs asynchronously; the shell then reports the end
    /// through [`LrmInput::finished`].
    fn execute(&mut self, request: &CommandRequest, log: &mut Vec<LrmStep>) -> Option<i32>;
}

/// Whether the node itself goes down (spec section 3.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeShutdown {
    /// Only the LRM daemon stops or restarts.
    None,
    /// The node powers off.
    Shutdown,
    /// The node reboots.
    Reboot,
}

/// Everything one LRM iteration reads.
#[derive(Debug, Clone)]
pub struct LrmInput<'a> {
    /// The time (ms).
    pub now_ms: u64,
    /// This node is in a quorate partition.
    pub quorate: bool,
    /// The cluster-state refresh worked.
    pub cluster_state_ok: bool,
    /// Shared state can be read and written.
    pub cfs_rw_ok: bool,
    /// The stored manager status.
    pub manager_status: &'a ManagerStatus,
    /// Configured resources (for `max_restart`).
    pub resources: &'a BTreeMap<Sid, ConfiguredResource>,
    /// Worker limit; 0 = run inline.
    pub max_workers: usize,
    /// How often a started service whose start was reported is checked
    /// again (the agent's status; a service found down is started again
    /// under the restart policy). Results only change when something
    /// happened, so a healthy service costs no log entries.
    pub monitor_interval_ms: u64,
    /// Asynchronous workers that ended since the last iteration.
    pub finished: Vec<(Sid, i32)>,
    /// Why this node's watchdog cannot protect it (mux unreachable, hung,
    /// or its device timeout does not fit the timing profile), as the
    /// shell observed it. Goes into every status written, and is written
    /// even in `lost_agent_lock`: the CRM counts such a node as offline,
    /// so its services go elsewhere.
    pub watchdog_problem: Option<&'a str>,
}

/// What one LRM iteration produces.
#[derive(Debug, Default)]
pub struct LrmOutput {
    /// Ordered log events and actions.
    pub steps: Vec<LrmStep>,
    /// The LRM status to write, if any.
    pub status: Option<LrmStatus>,
    /// The daemon exits.
    pub exit: bool,
}

#[derive(Debug, Clone)]
struct Worker {
    uid: Option<String>,
    request: CommandRequest,
    start_tries: u32,
    running: bool,
}

/// The LRM of one node.
#[derive(Debug)]
pub struct Lrm {
    node: NodeName,
    state: LrmState,
    mode: LrmMode,
    state_change_ms: u64,
    results: BTreeMap<String, LrmResult>,
    restart_tries: BTreeMap<Sid, u32>,
    /// When each started service was last checked (its `started` command
    /// finished), for the periodic re-check.
    last_checked: BTreeMap<Sid, u64>,
    workers: BTreeMap<Sid, Worker>,
    /// Shutdown stop jobs for services whose worker was still busy (e.g. a
    /// start in flight) when the request came: queued once it ends. Unlike
    /// CRM commands they are never re-issued, and dropping one would let
    /// the LRM exit and release its lease with the service still running.
    deferred_stops: BTreeMap<Sid, CommandRequest>,
    service_status: BTreeMap<Sid, ServiceRecord>,
    /// The manager status last read has this node, or a service on it,
    /// in `fence` (spec 4.1).
    fence_requested: bool,
    maintenance_requested: bool,
    watchdog_open: bool,
    shutdown_request: Option<u64>,
    shutdown_errors: u32,
    active_idle_rounds: u32,
    wrote_status: bool,
    results_dirty: bool,
}

struct Ctx<'a, 'b> {
    input: &'a LrmInput<'b>,
    steps: Vec<LrmStep>,
    status: Option<LrmStatus>,
}

impl Ctx<'_, '_> {
    fn log(&mut self, level: Level, message: impl Into<String>) {
        log_step(&mut self.steps, level, message);
    }
    fn act(&mut self, action: LrmAction) {
        self.steps.push(LrmStep::Do(action));
    }
}

impl Lrm {
    /// Creates the LRM; logs `status change startup => wait_for_agent_lock`.
    pub fn new(node: NodeName, now_ms: u64, steps: &mut Vec<LrmStep>) -> Self {
        let lrm = Lrm {
            node,
            state: LrmState::WaitForAgentLock,
            mode: LrmMode::Active,
            state_change_ms: now_ms,
            results: BTreeMap::new(),
            restart_tries: BTreeMap::new(),
            last_checked: BTreeMap::new(),
            workers: BTreeMap::new(),
            deferred_stops: BTreeMap::new(),
            service_status: BTreeMap::new(),
            fence_requested: false,
            maintenance_requested: false,
            watchdog_open: false,
            shutdown_request: None,
            shutdown_errors: 0,
            active_idle_rounds: 0,
            wrote_status: false,
            results_dirty: false,
        };
        log_step(
            steps,
            Level::Info,
            "status change startup => wait_for_agent_lock",
        );
        lrm
    }

    /// The current state.
    pub fn state(&self) -> LrmState {
        self.state
    }

    /// The current mode.
    pub fn mode(&self) -> LrmMode {
        self.mode
    }

    /// True while the watchdog is open.
    pub fn watchdog_open(&self) -> bool {
        self.watchdog_open
    }

    fn set_state(&mut self, ctx: &mut Ctx<'_, '_>, new: LrmState) {
        if self.state == new {
            return;
        }
        ctx.log(
            Level::Info,
            format!("status change {} => {}", self.state, new),
        );
        self.state = new;
        self.state_change_ms = ctx.input.now_ms;
    }

    fn status_doc(&self, input: &LrmInput<'_>) -> LrmStatus {
        LrmStatus {
            state: Some(self.state),
            mode: Some(self.mode),
            // filled in at the end of the iteration, after pruning
            results: BTreeMap::new(),
            timestamp: input.now_ms / 1000,
            watchdog_problem: input.watchdog_problem.map(str::to_string),
        }
    }

    fn update_lrm_status(&mut self, ctx: &mut Ctx<'_, '_>) -> bool {
        if !ctx.input.quorate {
            return false;
        }
        if !ctx.input.cfs_rw_ok {
            ctx.log(
                Level::Err,
                format!("unable to write lrm status file - {CFS_ERROR}"),
            );
            return false;
        }
        ctx.status = Some(self.status_doc(ctx.input));
        true
    }

    fn update_service_status(&mut self, ctx: &mut Ctx<'_, '_>) -> bool {
        if !ctx.input.cfs_rw_ok {
            ctx.log(
                Level::Err,
                format!("updating service status from manager failed: {CFS_ERROR}"),
            );
            return false;
        }
        let ms = ctx.input.manager_status;
        // comparing is much cheaper than copying, and rounds mostly see
        // an unchanged service table
        if self.service_status != ms.service_status {
            self.service_status = ms.service_status.clone();
        }
        self.fence_requested = ms.fencing(&self.node);
        self.maintenance_requested = ms.maintenance_requested(&self.node);
        if self.shutdown_request.is_none() {
            if self.maintenance_requested {
                self.mode = LrmMode::Maintenance;
            } else if ms.disarm.is_some() {
                self.mode = LrmMode::Disarm;
            } else if matches!(self.mode, LrmMode::Maintenance | LrmMode::Disarm) {
                self.mode = LrmMode::Active;
            }
        }
        true
    }

    fn fence_requested(&self) -> bool {
        self.fence_requested
    }

    /// Services on (or moving to) this node that are not stopped, frozen,
    /// errored or request_start.
    pub fn active_service_count(&self) -> usize {
        self.service_status
            .values()
            .filter(|sd| sd.node == self.node || sd.target.as_ref() == Some(&self.node))
            .filter(|sd| {
                !matches!(
                    sd.state,
                    ServiceState::Stopped
                        | ServiceState::Freeze
                        | ServiceState::Error
                        | ServiceState::RequestStart
                )
            })
            .count()
    }

    fn has_configured_service_on_local_node(&self) -> bool {
        self.service_status.values().any(|sd| sd.node == self.node)
    }

    fn take_lock(&mut self, ctx: &mut Ctx<'_, '_>, lock: &mut dyn LockPort) -> bool {
        match lock.take() {
            AgentLock::Valid | AgentLock::Acquirable => {
                if self.watchdog_open {
                    ctx.act(LrmAction::WatchdogUpdate);
                } else {
                    ctx.act(LrmAction::WatchdogOpen);
                    self.watchdog_open = true;
                }
                true
            }
            AgentLock::Pending | AgentLock::Unavailable => false,
        }
    }

    /// Whether services of this node keep running when it lets its lock
    /// go: frozen ones (LRM restart) and, while disarmed, all of them.
    fn leaves_services_running(&self) -> bool {
        self.mode == LrmMode::Disarm
            || self
                .service_status
                .values()
                .any(|sd| sd.node == self.node && sd.state == ServiceState::Freeze)
    }

    fn release_lock(&mut self, ctx: &mut Ctx<'_, '_>) {
        let leave_unguarded = self.leaves_services_running();
        ctx.act(LrmAction::ReleaseAgentLock { leave_unguarded });
    }

    /// Frozen services on this node while the LRM is active again: the
    /// LRM takes its lock first, so the CRM unfreezes them only while
    /// the node is protected.
    fn has_frozen_service(&self) -> bool {
        self.mode == LrmMode::Active
            && self
                .service_status
                .values()
                .any(|sd| sd.node == self.node && sd.state == ServiceState::Freeze)
    }

    fn give_up_watchdog(&mut self, ctx: &mut Ctx<'_, '_>) {
        if self.watchdog_open {
            ctx.act(LrmAction::WatchdogClose);
            self.watchdog_open = false;
        }
    }

    /// Whether the command of `uid` needs no (further) run: its result is
    /// reported. A `stopped` command is enforced again every round only
    /// while it fails (spec 4.5: the LRM keeps a stopped service stopped);
    /// once it succeeded, a stopped service costs nothing in steady state
    /// (no agent call, no status change) until the CRM sends a new uid.
    fn done(&self, uid: &str, command: ServiceState) -> bool {
        match self.results.get(uid) {
            None => false,
            Some(r) => command != ServiceState::Stopped || r.exit_code == exit_code::SUCCESS,
        }
    }

    fn queue(&mut self, sid: Sid, uid: Option<String>, request: CommandRequest) {
        self.queue_command(sid, uid, request, false);
    }

    /// Queues a command; `recheck` runs a reported `started` again (the
    /// periodic monitor).
    fn queue_command(
        &mut self,
        sid: Sid,
        uid: Option<String>,
        request: CommandRequest,
        recheck: bool,
    ) {
        if !recheck && uid.as_ref().is_some_and(|u| self.done(u, request.command)) {
            return;
        }
        if let Some(w) = self.workers.get(&sid) {
            if w.running {
                if uid.is_none() && request.command == ServiceState::RequestStop {
                    self.deferred_stops.insert(sid, request);
                }
                return;
            }
            // Already queued, waiting for a free worker: keep its place
            // (its start_tries), or a busy node would starve it.
            if w.uid == uid && w.request == request {
                return;
            }
        }
        self.workers.insert(
            sid,
            Worker {
                uid,
                request,
                start_tries: 0,
                running: false,
            },
        );
    }

    fn handle_exit_code(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        sid: &Sid,
        cmd: ServiceState,
        code: i32,
    ) -> i32 {
        if cmd != ServiceState::Started {
            return code;
        }
        if code == exit_code::SUCCESS {
            self.restart_tries.insert(sid.clone(), 0);
            return code;
        }
        if code != exit_code::ERROR {
            return code;
        }
        let max_restart = ctx
            .input
            .resources
            .get(sid)
            .map_or(0, |r| r.config.max_restart);
        let tries = self.restart_tries.entry(sid.clone()).or_insert(0);
        if *tries >= max_restart {
            let n = *tries;
            *tries = 0;
            ctx.log(
                Level::Err,
                format!("unable to start service {sid} on local node after {n} retries"),
            );
            return exit_code::ERROR;
        }
        *tries += 1;
        let n = *tries;
        ctx.log(
            Level::Warning,
            format!("restart policy: retry number {n} for service '{sid}'"),
        );
        exit_code::ETRY_AGAIN
    }

    fn command_finished(&mut self, ctx: &mut Ctx<'_, '_>, sid: &Sid, code: i32) {
        let Some(w) = self.workers.remove(sid) else {
            return;
        };
        if w.request.command == ServiceState::Started {
            self.last_checked.insert(sid.clone(), ctx.input.now_ms);
        }
        let Some(uid) = w.uid else {
            if code != exit_code::SUCCESS {
                self.shutdown_errors += 1;
            }
            return;
        };
        let code = self.handle_exit_code(ctx, sid, w.request.command, code);
        if code == exit_code::ETRY_AGAIN {
            return;
        }
        self.results.insert(
            uid,
            LrmResult {
                sid: sid.clone(),
                state: w.request.command,
                exit_code: code,
            },
        );
        self.results_dirty = true;
    }

    /// Drops results whose uid is no longer in the manager status. Done
    /// once per iteration (the snapshot does not change within one).
    fn prune_results(&mut self) {
        if !self.results_dirty {
            return;
        }
        self.results_dirty = false;
        let valid: std::collections::BTreeSet<&str> = self
            .service_status
            .values()
            .filter_map(|sd| sd.uid.as_deref())
            .collect();
        self.results.retain(|uid, _| valid.contains(uid.as_str()));
    }

    /// Starts queued workers; returns queued + running workers.
    fn run_workers(&mut self, ctx: &mut Ctx<'_, '_>, exec: &mut dyn Executor) -> usize {
        let ready: Vec<Sid> = self
            .deferred_stops
            .keys()
            .filter(|sid| !self.workers.contains_key(*sid))
            .cloned()
            .collect();
        for sid in ready {
            if let Some(request) = self.deferred_stops.remove(&sid) {
                self.queue(sid, None, request);
            }
        }
        let max = ctx.input.max_workers;
        let mut running = self.workers.values().filter(|w| w.running).count();
        let mut queued: Vec<(u32, Sid)> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.running)
            .map(|(sid, w)| (w.start_tries, sid.clone()))
            .collect();
        queued.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (_, sid) in queued {
            let Some(w) = self.workers.get_mut(&sid) else {
                continue;
            };
            w.start_tries += 1;
            if max > 0 && running >= max {
                continue;
            }
            let request = w.request.clone();
            match exec.execute(&request, &mut ctx.steps) {
                Some(code) => self.command_finished(ctx, &sid, code),
                None => {
                    if let Some(w) = self.workers.get_mut(&sid) {
                        w.running = true;
                    }
                    running += 1;
                }
            }
        }
        self.workers.len() + self.deferred_stops.len()
    }

    fn manage_resources(&mut self, ctx: &mut Ctx<'_, '_>, exec: &mut dyn Executor) -> usize {
        let ss = &self.service_status;
        self.restart_tries.retain(|sid, _| ss.contains_key(sid));
        self.last_checked.retain(|sid, _| ss.contains_key(sid));
        let now = ctx.input.now_ms;
        let interval = ctx.input.monitor_interval_ms;
        let todo: Vec<(Sid, Option<String>, CommandRequest, bool)> = self
            .service_status
            .iter()
            .filter(|(_, sd)| sd.node == self.node && sd.uid.is_some())
            .filter(|(_, sd)| {
                !matches!(
                    sd.state,
                    ServiceState::Recovery | ServiceState::Freeze | ServiceState::RequestStart
                )
            })
            // what `queue` would skip anyway, filtered before copying
            .filter_map(|(sid, sd)| {
                let done = sd.uid.as_ref().is_some_and(|u| self.done(u, sd.state));
                let busy = self.workers.get(sid).is_some_and(|w| w.running);
                let recheck = done
                    && sd.state == ServiceState::Started
                    && self
                        .last_checked
                        .get(sid)
                        .is_none_or(|t| now.saturating_sub(*t) >= interval);
                ((!done || recheck) && !busy).then(|| {
                    (
                        sid.clone(),
                        sd.uid.clone(),
                        CommandRequest {
                            sid: sid.clone(),
                            command: sd.state,
                            target: sd.target.clone(),
                            timeout: sd.timeout,
                        },
                        recheck,
                    )
                })
            })
            .collect();
        for (sid, uid, req, recheck) in todo {
            self.queue_command(sid, uid, req, recheck);
        }
        self.run_workers(ctx, exec)
    }
}

#[cfg(test)]
mod tests;
