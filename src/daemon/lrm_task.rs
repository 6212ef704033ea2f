//! The LRM shell: runs [`Lrm`] rounds on every node, with resource-agent
//! workers on blocking threads. It acts on the manager status of its local
//! replica only at or after the index of its last acknowledged renewal
//! (read-your-writes), and starts services only while its lease is valid.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::{ClusterStore, DocKey};

use super::config::NodeConfig;
use super::crm_task::{log_event, unix_ms};
use super::lease_keeper::{agent_lease_name, LeaseState, SharedLease, Wakers};
use super::shutdown::node_shutdown_kind;
use super::snapshot::{self, placement_key};
use crate::agents::{agent_for, FencingToken};
use crate::crm::{exit_code, ConfiguredResource, ServiceState};
use crate::domain::{NodeName, Sid};
use crate::lrm::{CommandRequest, Executor, Lrm, LrmAction, LrmInput, LrmStep};

/// Concurrent agent workers per node.
pub const MAX_WORKERS: usize = 4;

type Finished = Arc<Mutex<Vec<(Sid, i32)>>>;

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
        let needs_lease = matches!(req.command, ServiceState::Started);
        let token = match self.token {
            Some(t) => t,
            None if needs_lease => return Some(exit_code::ETRY_AGAIN),
            None => FencingToken::new(0, 0),
        };
        let agent = match agent_for(
            sid.kind(),
            sid.name(),
            &res.config.params,
            &self.runtime_dir,
        ) {
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

/// Runs LRM rounds until the LRM exits after a shutdown request (a
/// change of `shutdown` to true), or until aborted.
pub async fn run(
    config: NodeConfig,
    store: ClusterStore,
    lease: SharedLease,
    wake: Arc<Wakers>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let source = format!("{}/lrm", config.node);
    let mut steps = Vec::new();
    let mut lrm = Lrm::new(config.node.clone(), unix_ms(), &mut steps);
    apply_steps(&source, &lease, &wake, steps);
    let finished: Finished = Arc::new(Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(config.timing.round_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let handle = tokio::runtime::Handle::current();
    let mut shutdown_sent = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.lrm.notified() => {}
            _ = shutdown.changed(), if !shutdown_sent => {}
        }
        // Read-your-writes: act only on a replica that has applied our
        // last acknowledged renewal.
        let renewed = guard(&lease).renewed_index;
        if store.read_at_least(renewed, |_| ()).await.is_err() {
            continue;
        }
        let snap = snapshot::read(&store);
        let lease_name = agent_lease_name(config.node.as_str());
        let (valid, available, token) = {
            let s = guard(&lease);
            let valid = s.valid(Instant::now());
            // What the LRM calls "the agent lock is available": ours and
            // valid; or, while we hold nothing, free (or a stale record of
            // ours) in the replica, so the LRM may ask the keeper to take
            // it. Only the LRM decides to want the lease: a node that must
            // be fenced never asks, so the CRM can take the lease over.
            let available = if s.held.is_some() {
                valid
            } else {
                !s.watchdog_failed
                    && snap
                        .leases
                        .get(&lease_name)
                        .is_none_or(|l| l.holder == config.node.as_str())
            };
            // The fencing token doubles as the permission to start
            // services: only while the lease is valid AND the watchdog is
            // armed (an unprotected node must not start anything).
            let token = s
                .held
                .as_ref()
                .filter(|_| s.watchdog_armed)
                .map(|(l, term)| FencingToken::new(*term, l.seq));
            (valid, available, token)
        };
        let status = store.status();
        let quorate = status.leader.is_some();
        let done: Vec<(Sid, i32)> = std::mem::take(&mut *guard(&finished));
        let input = LrmInput {
            now_ms: unix_ms(),
            quorate,
            cluster_state_ok: true,
            cfs_rw_ok: true,
            manager_status: &snap.manager_status,
            agent_lock_available: available,
            resources: &snap.resources,
            max_workers: MAX_WORKERS,
            finished: done,
        };
        if *shutdown.borrow() && !shutdown_sent {
            shutdown_sent = true;
            let kind = node_shutdown_kind();
            tracing::info!(
                "{source}: stop requested ({kind:?}), shutdown policy {}",
                config.shutdown_policy
            );
            let output = lrm.shutdown_request(&input, kind, config.shutdown_policy);
            apply_steps(&source, &lease, &wake, output.steps);
            write_status(&store, &config.node, &source, output.status).await;
        }
        let mut exec = AgentExecutor {
            node: config.node.clone(),
            resources: snap.resources.clone(),
            runtime_dir: config.agent_runtime_dir.clone(),
            token: if valid { token } else { None },
            finished: finished.clone(),
            store: store.clone(),
            handle: handle.clone(),
            wake: wake.clone(),
        };
        let output = lrm.iterate(&input, &mut exec);
        apply_steps(&source, &lease, &wake, output.steps);
        write_status(&store, &config.node, &source, output.status).await;
        if output.exit {
            tracing::info!("{source}: LRM finished");
            return;
        }
    }
}

async fn write_status(
    store: &ClusterStore,
    node: &NodeName,
    source: &str,
    status: Option<crate::lrm::LrmStatus>,
) {
    let Some(status) = status else { return };
    match serde_json::to_string(&status) {
        Ok(text) => {
            if let Err(e) = store
                .put_doc(DocKey::LrmStatus(node.to_string()), None, text)
                .await
            {
                tracing::warn!("{source}: writing lrm status failed: {e}");
            }
        }
        Err(e) => tracing::error!("{source}: encoding lrm status: {e}"),
    }
}

fn apply_steps(source: &str, lease: &SharedLease, wake: &Wakers, steps: Vec<LrmStep>) {
    for step in steps {
        match step {
            LrmStep::Log(ev) => log_event(source, &ev),
            LrmStep::Do(action) => {
                let mut s: std::sync::MutexGuard<'_, LeaseState> = guard(lease);
                let before = (s.want, s.watchdog_wanted);
                match action {
                    LrmAction::TakeAgentLock => s.want = true,
                    LrmAction::ReleaseAgentLock => s.want = false,
                    LrmAction::WatchdogOpen | LrmAction::WatchdogUpdate => s.watchdog_wanted = true,
                    LrmAction::WatchdogClose => s.watchdog_wanted = false,
                }
                if before != (s.want, s.watchdog_wanted) {
                    wake.keeper.notify_one();
                }
            }
        }
    }
}
