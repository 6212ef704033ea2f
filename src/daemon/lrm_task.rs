//! The LRM shell: runs [`Lrm`] rounds on every node, with resource-agent
//! workers on blocking threads. It acts on the manager status of its local
//! replica only at or after the index of its last lease grant
//! (read-your-writes), and starts services only with a fencing token,
//! which the lease core hands out only while the lease is valid and the
//! watchdog is armed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lease::LeaseIntent;
use raft::{ClusterStore, DocKey};

use super::agent_lease::{lock, Clock, DaemonLockPort, ReplicaFacts, SharedAgent, Wakers};
use super::config::NodeConfig;
use super::crm_task::{log_event, unix_ms};
use super::shutdown::node_shutdown_kind;
use super::snapshot::{self, placement_key};
use super::STATUS_REFRESH;
use crate::agents::{AgentSettings, FencingToken};
use crate::crm::{agent_lease_name, exit_code, ConfiguredResource, ServiceState};
use crate::domain::{NodeName, Sid};
use crate::lrm::{
    CommandRequest, Executor, Lrm, LrmAction, LrmInput, LrmStatus, LrmStep, NodeShutdown,
};

/// Concurrent agent workers per node.
pub const MAX_WORKERS: usize = 4;

type Finished = Arc<Mutex<Vec<(Sid, i32)>>>;

/// Started services are checked again every five rounds (5 s in the
/// default profile); a check that finds nothing wrong writes nothing.
fn monitor_interval_ms(config: &NodeConfig) -> u64 {
    lease::millis(config.timing.round_interval * 5)
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

struct AgentExecutor {
    node: NodeName,
    resources: BTreeMap<Sid, ConfiguredResource>,
    runtime_dir: PathBuf,
    token: Option<FencingToken>,
    finished: Finished,
    store: ClusterStore,
    handle: tokio::runtime::Handle,
    wake: Arc<Wakers>,
}

impl Executor for AgentExecutor {
    fn execute(&mut self, req: &CommandRequest, log: &mut Vec<LrmStep>) -> Option<i32> {
        let sid = req.sid.clone();
        let Some(res) = self.resources.get(&sid) else {
            crate::lrm::log_step(
                log,
                crate::crm::Level::Err,
                format!("missing resource configuration for '{sid}'"),
            );
            return Some(exit_code::EUNKNOWN_SERVICE);
        };
        if req.command == ServiceState::Error {
            crate::lrm::log_step(
                log,
                crate::crm::Level::Err,
                format!("service {sid} is in an error state and needs manual intervention"),
            );
            return Some(exit_code::SUCCESS);
        }
        if res.node != self.node {
            return Some(exit_code::EWRONG_NODE);
        }
        // Starting needs the fencing token: a valid lease and an armed
        // watchdog. Without one, try again next round.
        let needs_lease = matches!(req.command, ServiceState::Started);
        let token = match self.token {
            Some(t) => t,
            None if needs_lease => return Some(exit_code::ETRY_AGAIN),
            None => FencingToken::new(0, 0),
        };
        // The services learn which node runs them (`HA_NODE`).
        let agent = match AgentSettings::new(&self.runtime_dir)
            .with_node(self.node.as_str())
            .agent_for(sid.kind(), sid.name(), &res.config.params)
        {
            Ok(a) => a,
            Err(e) => {
                crate::lrm::log_step(log, crate::crm::Level::Err, format!("{sid}: {e}"));
                return Some(i32::from(e.exit_code().code()));
            }
        };
        let req = req.clone();
        let finished = self.finished.clone();
        let store = self.store.clone();
        let handle = self.handle.clone();
        let node = self.node.clone();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            let code = run_command(agent.as_ref(), &req, token, &store, &handle, &node);
            guard(&finished).push((req.sid.clone(), code));
            // Report the result now rather than at the next round.
            wake.lrm.notify_one();
        });
        None
    }
}

fn code_of(e: &crate::agents::AgentError) -> i32 {
    i32::from(e.exit_code().code())
}

fn run_command(
    agent: &dyn crate::agents::ResourceAgent,
    req: &CommandRequest,
    token: FencingToken,
    store: &ClusterStore,
    handle: &tokio::runtime::Handle,
    node: &NodeName,
) -> i32 {
    let sid = &req.sid;
    match req.command {
        ServiceState::Started => match agent.status(token) {
            Ok(s) if s.is_running() => exit_code::SUCCESS,
            _ => match agent.start(token) {
                Ok(_) => {
                    tracing::info!(target: "ha", "{node}/lrm: service status {sid} started");
                    exit_code::SUCCESS
                }
                Err(e) => {
                    tracing::warn!(target: "ha", "{node}/lrm: unable to start service {sid}: {e}");
                    code_of(&e)
                }
            },
        },
        ServiceState::RequestStop | ServiceState::Stopped => {
            match agent.stop(req.timeout.map(Duration::from_secs), token) {
                Ok(_) => exit_code::SUCCESS,
                Err(e) => {
                    tracing::warn!(target: "ha", "{node}/lrm: unable to stop service {sid}: {e}");
                    code_of(&e)
                }
            }
        }
        ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => {
            let Some(target) = &req.target else {
                return exit_code::EINVALID_PARAMETER;
            };
            if target == node {
                return exit_code::SUCCESS;
            }
            // Rebalance on start only chooses where a stopped service
            // starts: one already running stays (spec 3.11.5), as the
            // simulator's LRM answers.
            if req.command == ServiceState::RequestStartBalance
                && agent.status(token).is_ok_and(|s| s.is_running())
            {
                tracing::info!(
                    target: "ha",
                    "{node}/lrm: ignoring rebalance-on-start for service {sid} - already running"
                );
                return exit_code::IGNORED;
            }
            // Offline move: stop here, then hand the configuration over.
            if let Err(e) = agent.stop(None, token) {
                tracing::warn!(target: "ha", "{node}/lrm: service {sid} not moved: {e}");
                return code_of(&e);
            }
            let write =
                handle.block_on(store.put_doc(placement_key(sid), None, target.to_string()));
            match write {
                Ok(_) => exit_code::SUCCESS,
                Err(e) => {
                    tracing::warn!(target: "ha", "{node}/lrm: service {sid} not moved: {e}");
                    exit_code::ERROR
                }
            }
        }
        _ => exit_code::EUNKNOWN_COMMAND,
    }
}

/// Wakes the LRM as soon as a new manager status is applied locally, so a
/// command of the CRM (e.g. a recovery onto this node) does not wait for
/// the next round tick. Runs until aborted.
pub async fn wake_on_manager_status(store: ClusterStore, wake: Arc<Wakers>) {
    let mut metrics = store.raft().metrics();
    let mut last = None;
    while metrics.changed().await.is_ok() {
        let version = store
            .read_local(|s| s.doc(&DocKey::ManagerStatus).map(|d| d.version))
            .value;
        if version != last {
            last = version;
            wake.lrm.notify_one();
        }
    }
}

/// The LRM status last written, to write only what changed.
#[derive(Default)]
struct StatusWriter {
    last: Option<(LrmStatus, Instant)>,
}

impl StatusWriter {
    async fn write(
        &mut self,
        store: &ClusterStore,
        node: &NodeName,
        source: &str,
        status: LrmStatus,
    ) {
        let fresh = self
            .last
            .as_ref()
            .is_some_and(|(s, at)| s.same_content(&status) && at.elapsed() < STATUS_REFRESH);
        if fresh {
            return;
        }
        let text = match serde_json::to_string(&status) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{source}: encoding lrm status: {e}");
                return;
            }
        };
        match store
            .put_doc(DocKey::LrmStatus(node.to_string()), None, text)
            .await
        {
            Ok(_) => self.last = Some((status, Instant::now())),
            Err(e) => tracing::warn!("{source}: writing lrm status failed: {e}"),
        }
    }
}

/// Everything the LRM task needs.
pub struct LrmTask {
    /// Node configuration.
    pub config: NodeConfig,
    /// The store.
    pub store: ClusterStore,
    /// The shared lease and watchdog state.
    pub agent: SharedAgent,
    /// The lease core's clock.
    pub clock: Clock,
    /// Wake-ups.
    pub wake: Arc<Wakers>,
}

/// Runs LRM rounds until the LRM exits after a shutdown request (a
/// change of `shutdown` to true), or until aborted.
pub async fn run(task: LrmTask, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let LrmTask {
        config,
        store,
        agent,
        clock,
        wake,
    } = task;
    let source = format!("{}/lrm", config.node);
    let lease_name = agent_lease_name(config.node.as_str());
    let mut steps = Vec::new();
    let mut lrm = Lrm::new(config.node.clone(), unix_ms(), &mut steps);
    apply_steps(&source, &agent, &wake, steps);
    let finished: Finished = Arc::new(Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(config.timing.round_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let handle = tokio::runtime::Handle::current();
    let mut writer = StatusWriter::default();
    let mut shutdown_sent = false;
    let mut reported_unreadable = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.lrm.notified() => {}
            _ = shutdown.changed(), if !shutdown_sent => {}
        }
        // Read-your-writes: act only on a replica that has applied our
        // last lease grant.
        let granted = lock(&agent).granted_index;
        if store.read_at_least(granted, |_| ()).await.is_err() {
            continue;
        }
        let snap = snapshot::read(&store);
        if let Some(e) = &snap.manager_status_error {
            // Fail closed: an unreadable status is not an empty one.
            if !reported_unreadable {
                tracing::error!("{source}: {e}; not acting until it is readable");
                reported_unreadable = true;
            }
            continue;
        }
        reported_unreadable = false;
        let facts = ReplicaFacts::read(&store, &config.node, &lease_name);
        let (token, watchdog_problem) = {
            let a = lock(&agent);
            let token = a
                .lease
                .fencing_token(clock.now())
                .filter(|_| a.watchdog_armed && a.watchdog_problem.is_none())
                .map(|seq| FencingToken::new(store.status().term, seq));
            (token, a.watchdog_problem.clone())
        };
        let quorate = store.status().leader.is_some();
        let done: Vec<(Sid, i32)> = std::mem::take(&mut *guard(&finished));
        let input = LrmInput {
            now_ms: unix_ms(),
            quorate,
            cluster_state_ok: true,
            cfs_rw_ok: true,
            manager_status: &snap.manager_status,
            resources: &snap.resources,
            max_workers: MAX_WORKERS,
            monitor_interval_ms: monitor_interval_ms(&config),
            finished: done,
            watchdog_problem: watchdog_problem.as_deref(),
        };
        if *shutdown.borrow() && !shutdown_sent {
            shutdown_sent = true;
            // systemctl blocks: never on the runtime.
            let kind = tokio::task::spawn_blocking(node_shutdown_kind)
                .await
                .unwrap_or(NodeShutdown::None);
            tracing::info!(
                "{source}: stop requested ({kind:?}), shutdown policy {}",
                config.shutdown_policy
            );
            let output = lrm.shutdown_request(&input, kind, config.shutdown_policy);
            apply_steps(&source, &agent, &wake, output.steps);
            if let Some(status) = output.status {
                writer.write(&store, &config.node, &source, status).await;
            }
        }
        let mut exec = AgentExecutor {
            node: config.node.clone(),
            resources: snap.resources.clone(),
            runtime_dir: config.agent_runtime_dir.clone(),
            token,
            finished: finished.clone(),
            store: store.clone(),
            handle: handle.clone(),
            wake: wake.clone(),
        };
        let mut port = DaemonLockPort {
            agent: &agent,
            facts: &facts,
            clock,
            quorate,
            wake: &wake,
        };
        let output = lrm.iterate(&input, &mut exec, &mut port);
        apply_steps(&source, &agent, &wake, output.steps);
        if let Some(status) = output.status {
            writer.write(&store, &config.node, &source, status).await;
        }
        if output.exit {
            tracing::info!("{source}: LRM finished");
            return;
        }
    }
}

fn apply_steps(source: &str, agent: &SharedAgent, wake: &Wakers, steps: Vec<LrmStep>) {
    for step in steps {
        match step {
            LrmStep::Log(ev) => log_event(source, &ev),
            LrmStep::Do(action) => {
                let mut a = lock(agent);
                match action {
                    LrmAction::ReleaseAgentLock { leave_unguarded } => {
                        a.lease.set_intent(LeaseIntent::Release { leave_unguarded });
                    }
                    LrmAction::AbandonAgentLock => a.lease.set_intent(LeaseIntent::Abandon),
                    LrmAction::WatchdogOpen | LrmAction::WatchdogUpdate => a.watchdog_wanted = true,
                    LrmAction::WatchdogClose => a.watchdog_wanted = false,
                }
                drop(a);
                wake.lease.notify_one();
                wake.watchdog.ring();
            }
        }
    }
}
