//! The LRM state machine (spec sections 4.1-4.8): agent lock, watchdog,
//! mode, workers and results. Commands are carried out by an
//! [`Executor`] (resource-agent glue) supplied by the shell.

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

    /// Asks the LRM to stop (daemon stop/restart or node shutdown/reboot,
    /// spec sections 3.17 and 4.7).
    pub fn shutdown_request(
        &mut self,
        input: &LrmInput<'_>,
        node_shutdown: NodeShutdown,
        policy: ShutdownPolicy,
    ) -> LrmOutput {
        let mut ctx = Ctx {
            input,
            steps: Vec::new(),
            status: None,
        };
        if self.shutdown_request.is_some() {
            return LrmOutput::default();
        }
        let shutdown = node_shutdown != NodeShutdown::None;
        let reboot = node_shutdown == NodeShutdown::Reboot;
        if shutdown {
            ctx.log(
                Level::Info,
                format!("got shutdown request with shutdown policy '{policy}'"),
            );
        }
        let (freeze_all, maintenance) = match policy {
            ShutdownPolicy::Conditional => (reboot, false),
            ShutdownPolicy::Freeze => (true, false),
            ShutdownPolicy::Failover => (false, false),
            ShutdownPolicy::Migrate => (false, true),
        };
        if shutdown && !maintenance {
            let local: Vec<Sid> = self
                .service_status
                .iter()
                .filter(|(_, sd)| sd.node == self.node)
                .map(|(sid, _)| sid.clone())
                .collect();
            for sid in local {
                self.queue(
                    sid.clone(),
                    None,
                    CommandRequest {
                        sid,
                        command: ServiceState::RequestStop,
                        target: None,
                        timeout: None,
                    },
                );
            }
        }
        if shutdown {
            let kind = if reboot { "reboot" } else { "shutdown" };
            if self.maintenance_requested {
                if maintenance {
                    ctx.log(
                        Level::Info,
                        format!(
                            "{kind} LRM, ignore maintenance policy, already in maintenance mode"
                        ),
                    );
                } else {
                    ctx.log(
                        Level::Info,
                        format!("{kind} LRM, ignore {policy} policy as manual maintenance mode is enabled"),
                    );
                }
            } else if maintenance {
                ctx.log(
                    Level::Info,
                    format!("{kind} LRM, doing maintenance, removing this node from active list"),
                );
                self.mode = LrmMode::Maintenance;
            } else if freeze_all {
                ctx.log(
                    Level::Info,
                    format!("{kind} LRM, stop and freeze all services"),
                );
                self.mode = LrmMode::Restart;
            } else {
                ctx.log(Level::Info, "shutdown LRM, stop all services");
                self.mode = LrmMode::Shutdown;
            }
        } else if self.maintenance_requested {
            ctx.log(
                Level::Info,
                "Restarting LRM in maintenance mode may be delayed until all services are moved",
            );
        } else {
            ctx.log(Level::Info, "restart LRM, freeze all services");
            self.mode = LrmMode::Restart;
        }
        self.shutdown_request = Some(input.now_ms);
        if !self.update_lrm_status(&mut ctx) && input.cfs_rw_ok {
            ctx.log(
                Level::Err,
                "unable to update lrm status file - not quorate?",
            );
        }
        if let Some(status) = ctx.status.as_mut() {
            status.results = self.results.clone();
        }
        LrmOutput {
            steps: ctx.steps,
            status: ctx.status,
            exit: false,
        }
    }

    /// Runs one iteration.
    pub fn iterate(
        &mut self,
        input: &LrmInput<'_>,
        exec: &mut dyn Executor,
        lock: &mut dyn LockPort,
    ) -> LrmOutput {
        let mut ctx = Ctx {
            input,
            steps: Vec::new(),
            status: None,
        };
        let exit = self.work(&mut ctx, exec, lock);
        self.prune_results();
        if let Some(status) = ctx.status.as_mut() {
            status.results = self.results.clone();
        }
        LrmOutput {
            steps: ctx.steps,
            status: ctx.status,
            exit,
        }
    }

    fn work(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        exec: &mut dyn Executor,
        lock: &mut dyn LockPort,
    ) -> bool {
        for (sid, code) in ctx.input.finished.clone() {
            self.command_finished(ctx, &sid, code);
        }
        if !self.wrote_status {
            if self.update_lrm_status(ctx) {
                self.wrote_status = true;
            } else {
                return self.shutdown_request.is_some();
            }
        }
        self.update_service_status(ctx);
        let fence = self.fence_requested();

        match self.state {
            LrmState::WaitForAgentLock => {
                if !fence
                    && self.mode != LrmMode::Disarm
                    && (self.active_service_count() > 0 || self.has_frozen_service())
                    && ctx.input.quorate
                    && self.take_lock(ctx, lock)
                {
                    self.set_state(ctx, LrmState::Active);
                }
            }
            LrmState::LostAgentLock => {
                if fence {
                    ctx.act(LrmAction::AbandonAgentLock);
                } else if ctx.input.quorate && self.take_lock(ctx, lock) {
                    self.set_state(ctx, LrmState::Active);
                }
            }
            LrmState::Active => {
                if fence {
                    ctx.log(Level::Err, "node needs to be fenced - releasing agent_lock");
                    ctx.act(LrmAction::AbandonAgentLock);
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if !self.take_lock(ctx, lock) {
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if self.mode == LrmMode::Maintenance {
                    self.set_state(ctx, LrmState::Maintenance);
                } else if self.mode == LrmMode::Disarm && self.workers.is_empty() {
                    ctx.log(
                        Level::Info,
                        "HA disarm requested, releasing agent lock and watchdog",
                    );
                    self.release_lock(ctx);
                    self.give_up_watchdog(ctx);
                    self.set_state(ctx, LrmState::WaitForAgentLock);
                } else if !self.has_configured_service_on_local_node()
                    && self.run_workers(ctx, exec) == 0
                {
                    self.active_idle_rounds += 1;
                    if self.active_idle_rounds > MAX_ACTIVE_IDLE_ROUNDS {
                        ctx.log(
                            Level::Info,
                            format!("node had no service configured for {MAX_ACTIVE_IDLE_ROUNDS} rounds, going idle."),
                        );
                        self.release_lock(ctx);
                        self.give_up_watchdog(ctx);
                        self.set_state(ctx, LrmState::WaitForAgentLock);
                        self.active_idle_rounds = 0;
                    }
                } else {
                    self.active_idle_rounds = 0;
                }
            }
            LrmState::Maintenance => {
                if fence {
                    ctx.log(
                        Level::Err,
                        "node needs to be fenced during maintenance mode - releasing agent_lock",
                    );
                    ctx.act(LrmAction::AbandonAgentLock);
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if self.mode == LrmMode::Disarm
                    && self.active_service_count() == 0
                    && self.workers.is_empty()
                {
                    ctx.log(
                        Level::Info,
                        "HA disarm requested during maintenance, releasing agent lock and watchdog",
                    );
                    self.release_lock(ctx);
                    self.give_up_watchdog(ctx);
                    self.set_state(ctx, LrmState::WaitForAgentLock);
                } else if self.active_service_count() > 0 || self.run_workers(ctx, exec) > 0 {
                    if !self.take_lock(ctx, lock) {
                        self.set_state(ctx, LrmState::LostAgentLock);
                    }
                } else if !self.maintenance_requested && self.mode != LrmMode::Maintenance {
                    if self.take_lock(ctx, lock) {
                        self.set_state(ctx, LrmState::Active);
                    } else {
                        self.set_state(ctx, LrmState::LostAgentLock);
                    }
                }
            }
            LrmState::Startup => self.set_state(ctx, LrmState::WaitForAgentLock),
        }

        match self.state {
            LrmState::WaitForAgentLock | LrmState::Startup => {
                if self.shutdown_request.is_some() {
                    return true;
                }
                self.update_lrm_status(ctx);
            }
            LrmState::Active => {
                let mut shutdown = false;
                if self.update_service_status_quiet(ctx) {
                    if self.shutdown_request.is_some() {
                        if self.mode == LrmMode::Restart {
                            let workers = self.run_workers(ctx, exec);
                            if self.active_service_count() == 0 && workers == 0 {
                                self.give_up_watchdog(ctx);
                                shutdown = true;
                                self.release_lock(ctx);
                            }
                        } else if self.run_workers(ctx, exec) == 0 {
                            if self.shutdown_errors == 0 {
                                self.give_up_watchdog(ctx);
                                self.release_lock(ctx);
                            }
                            shutdown = true;
                        }
                    } else if !ctx.input.cluster_state_ok {
                        ctx.log(
                            Level::Notice,
                            "temporary inconsistent cluster state (cfs restart?), skip round",
                        );
                    } else {
                        self.manage_resources(ctx, exec);
                    }
                }
                self.update_lrm_status(ctx);
                if shutdown {
                    return true;
                }
            }
            LrmState::LostAgentLock => {
                if ctx.input.watchdog_problem.is_some() {
                    // Proxmox writes nothing in this state; but a node that
                    // cannot arm its watchdog never gets out of it, and the
                    // CRM must learn why to move its services (the shell
                    // writes only what changed).
                    self.update_lrm_status(ctx);
                }
                if self.shutdown_request.is_some() {
                    let count = self.active_service_count();
                    if count > 0 {
                        ctx.log(
                            Level::Err,
                            format!("got shutdown request in state 'lost_agent_lock' - detected {count} running services"),
                        );
                        if self.mode == LrmMode::Restart
                            && ctx.input.now_ms.saturating_sub(self.state_change_ms)
                                > LOST_LOCK_RESTART_GIVE_UP_MS
                        {
                            ctx.log(
                                Level::Err,
                                "lost lock while restarting, exit and leave services",
                            );
                            return true;
                        }
                    } else {
                        // Nothing runs here: let the lease go (if it is
                        // still ours) so the watchdog can close cleanly.
                        self.release_lock(ctx);
                        self.give_up_watchdog(ctx);
                        return true;
                    }
                }
            }
            LrmState::Maintenance => {
                if !self.update_service_status_quiet(ctx) {
                    return true;
                }
                let mut exit = false;
                if self.active_service_count() == 0 && self.run_workers(ctx, exec) == 0 {
                    self.give_up_watchdog(ctx);
                    self.release_lock(ctx);
                    exit = self.shutdown_request.is_some();
                }
                if !exit {
                    self.manage_resources(ctx, exec);
                }
                self.update_lrm_status(ctx);
                if exit {
                    return true;
                }
            }
        }
        false
    }

    /// The second manager-status read of an iteration (the snapshot is the
    /// same; only a cfs failure matters).
    fn update_service_status_quiet(&mut self, ctx: &mut Ctx<'_, '_>) -> bool {
        // the snapshot is the same as at the start of the iteration
        ctx.input.cfs_rw_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceConfig;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }
    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    /// Records requests; answers with a fixed code or runs asynchronously.
    /// vm:101..103 started with uids a, b, c.
    fn three_started() -> (ManagerStatus, BTreeMap<Sid, ConfiguredResource>) {
        let ms = status_with(&[
            ("vm:101", ServiceState::Started, "a"),
            ("vm:102", ServiceState::Started, "b"),
            ("vm:103", ServiceState::Started, "c"),
        ]);
        (ms, resources(&["vm:101", "vm:102", "vm:103"], 1))
    }

    #[derive(Default)]
    struct Recorder {
        calls: Vec<CommandRequest>,
        answer: Option<i32>,
    }

    impl Executor for Recorder {
        fn execute(&mut self, request: &CommandRequest, _log: &mut Vec<LrmStep>) -> Option<i32> {
            self.calls.push(request.clone());
            self.answer
        }
    }

    /// A lock that stands as told, counting the takes.
    struct Lock(AgentLock, u32);

    impl LockPort for Lock {
        fn take(&mut self) -> AgentLock {
            self.1 += 1;
            self.0
        }
    }

    fn valid() -> Lock {
        Lock(AgentLock::Valid, 0)
    }

    fn status_with(services: &[(&str, ServiceState, &str)]) -> ManagerStatus {
        let mut ms = ManagerStatus::default();
        ms.node_status
            .insert(n("node1"), crate::crm::NodeState::Online);
        for (s, st, uid) in services {
            let mut sd = ServiceRecord::new(*st, n("node1"));
            sd.uid = Some(uid.to_string());
            ms.service_status.insert(sid(s), sd);
        }
        ms
    }

    fn resources(names: &[&str], max_restart: u32) -> BTreeMap<Sid, ConfiguredResource> {
        names
            .iter()
            .map(|s| {
                let mut config = ResourceConfig::with_defaults(sid(s));
                config.max_restart = max_restart;
                (
                    sid(s),
                    ConfiguredResource {
                        config,
                        node: n("node1"),
                    },
                )
            })
            .collect()
    }

    fn input<'a>(
        ms: &'a ManagerStatus,
        res: &'a BTreeMap<Sid, ConfiguredResource>,
        workers: usize,
    ) -> LrmInput<'a> {
        LrmInput {
            now_ms: 0,
            quorate: true,
            cluster_state_ok: true,
            cfs_rw_ok: true,
            manager_status: ms,
            resources: res,
            max_workers: workers,
            monitor_interval_ms: 10_000,
            finished: Vec::new(),
            watchdog_problem: None,
        }
    }

    #[test]
    fn takes_lock_arms_watchdog_and_reports_results_by_uid_once() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(exit_code::SUCCESS),
        };
        let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        assert_eq!(lrm.state(), LrmState::Active);
        assert!(out.steps.contains(&LrmStep::Do(LrmAction::WatchdogOpen)));
        let status = out.status.expect("status written");
        assert_eq!(status.results["u1"].exit_code, exit_code::SUCCESS);
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        assert_eq!(exec.calls.len(), 1, "same uid is executed at most once");
    }

    #[test]
    fn workers_are_limited_and_one_command_per_service() {
        let (ms, res) = three_started();
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder::default();
        lrm.iterate(&input(&ms, &res, 2), &mut exec, &mut valid());
        assert_eq!(exec.calls.len(), 2);
        lrm.iterate(&input(&ms, &res, 2), &mut exec, &mut valid());
        assert_eq!(exec.calls.len(), 2, "still running: nothing new starts");
        let mut inp = input(&ms, &res, 2);
        inp.finished = vec![(sid("vm:101"), exit_code::SUCCESS)];
        let out = lrm.iterate(&inp, &mut exec, &mut valid());
        assert_eq!(exec.calls.len(), 3);
        assert_eq!(exec.calls[2].sid, sid("vm:103"));
        assert!(out.status.unwrap().results.contains_key("a"));
    }

    #[test]
    fn restart_policy_retries_before_reporting_error() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(exit_code::ERROR),
        };
        let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        assert!(
            out.status.unwrap().results.is_empty(),
            "first failure is retried silently"
        );
        let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        assert_eq!(
            out.status.unwrap().results["u1"].exit_code,
            exit_code::ERROR
        );
        assert_eq!(exec.calls.len(), 2);
    }

    #[test]
    fn fence_request_loses_the_lock_without_closing_the_watchdog() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(0),
        };
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        let ms2 = status_with(&[("vm:101", ServiceState::Fence, "u2")]);
        let out = lrm.iterate(&input(&ms2, &res, 0), &mut exec, &mut valid());
        assert_eq!(lrm.state(), LrmState::LostAgentLock);
        assert!(lrm.watchdog_open());
        assert!(!out.steps.contains(&LrmStep::Do(LrmAction::WatchdogClose)));
        assert!(
            out.steps
                .contains(&LrmStep::Do(LrmAction::AbandonAgentLock)),
            "a fence request stops renewals and feeding"
        );
        // Still fenced next round: the lock is not taken again.
        let mut lock = valid();
        lrm.iterate(&input(&ms2, &res, 0), &mut exec, &mut lock);
        assert_eq!(lock.1, 0);
        assert_eq!(lrm.state(), LrmState::LostAgentLock);
    }

    #[test]
    fn a_stopped_service_costs_nothing_once_its_stop_succeeded() {
        let ms = status_with(&[("vm:101", ServiceState::Stopped, "s1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(exit_code::SUCCESS),
        };
        let mut lock = valid();
        // An LRM with only a stopped service stays idle; make it active.
        lrm.state = LrmState::Active;
        for _ in 0..5 {
            lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        }
        assert_eq!(exec.calls.len(), 1, "enforced once per uid");
        // A stop that fails is enforced again every round.
        let ms = status_with(&[("vm:101", ServiceState::Stopped, "s2")]);
        exec.answer = Some(exit_code::ERROR);
        for _ in 0..3 {
            lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        }
        assert_eq!(exec.calls.len(), 4);
    }

    #[test]
    fn a_started_service_is_checked_again_only_every_monitor_interval() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(exit_code::SUCCESS),
        };
        let mut lock = valid();
        let at = |t: u64| {
            let mut i = input(&ms, &res, 0);
            i.now_ms = t;
            i
        };
        let first = lrm.iterate(&at(0), &mut exec, &mut lock);
        let status = first.status.expect("status");
        for t in [1_000, 5_000, 9_999] {
            let out = lrm.iterate(&at(t), &mut exec, &mut lock);
            assert_eq!(out.status.unwrap().results, status.results);
        }
        assert_eq!(exec.calls.len(), 1);
        let out = lrm.iterate(&at(10_000), &mut exec, &mut lock);
        assert_eq!(exec.calls.len(), 2, "re-checked after the interval");
        assert_eq!(
            out.status.unwrap().results,
            status.results,
            "a healthy check changes nothing"
        );
    }

    #[test]
    fn a_queued_command_keeps_its_place_while_workers_are_busy() {
        let (ms, res) = three_started();
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder::default();
        let mut lock = valid();
        lrm.iterate(&input(&ms, &res, 1), &mut exec, &mut lock);
        lrm.iterate(&input(&ms, &res, 1), &mut exec, &mut lock);
        assert_eq!(lrm.workers[&sid("vm:103")].start_tries, 2);
    }

    #[test]
    fn a_pending_lock_keeps_being_asked_for_but_is_not_used() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(0),
        };
        let mut lock = Lock(AgentLock::Pending, 0);
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        assert_eq!(lrm.state(), LrmState::WaitForAgentLock);
        assert_eq!(lock.1, 1, "asked for");
        assert!(exec.calls.is_empty());
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        assert_eq!(lrm.state(), LrmState::Active);
        // The renewal falls behind: lost, but still asked for (no abandon).
        let mut lock = Lock(AgentLock::Pending, 0);
        let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        assert_eq!(lrm.state(), LrmState::LostAgentLock);
        assert!(!out
            .steps
            .contains(&LrmStep::Do(LrmAction::AbandonAgentLock)));
        let mut lock = Lock(AgentLock::Pending, 0);
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        assert_eq!(lock.1, 1, "lost_agent_lock keeps trying to regain it");
    }

    #[test]
    fn frozen_services_make_a_restarted_lrm_take_its_lock_before_the_crm_unfreezes() {
        let ms = status_with(&[("vm:101", ServiceState::Freeze, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(0),
        };
        let mut lock = valid();
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
        assert_eq!(lock.1, 1);
        assert_eq!(lrm.state(), LrmState::Active);
        assert!(exec.calls.is_empty(), "frozen services are left alone");
    }

    #[test]
    fn a_restart_releases_the_lock_unguarded_when_frozen_services_keep_running() {
        let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
        let res = resources(&["vm:101"], 1);
        let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
        let mut exec = Recorder {
            calls: Vec::new(),
            answer: Some(0),
        };
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
        lrm.shutdown_request(
            &input(&ms, &res, 0),
            NodeShutdown::None,
            ShutdownPolicy::Conditional,
        );
        let frozen = status_with(&[("vm:101", ServiceState::Freeze, "u2")]);
        let out = lrm.iterate(&input(&frozen, &res, 0), &mut exec, &mut valid());
        assert!(out.exit);
        let release = out
            .steps
            .iter()
            .position(|s| {
                *s == LrmStep::Do(LrmAction::ReleaseAgentLock {
                    leave_unguarded: true,
                })
            })
            .expect("released, left unguarded");
        // The shell closes the watchdog only once the release committed
        // (lease core): asked for in either order here.
        assert!(release < out.steps.len());
        assert!(out.steps.contains(&LrmStep::Do(LrmAction::WatchdogClose)));
    }
}
