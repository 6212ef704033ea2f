//! The HA loop of a node: the lease task (agent lease renewals), the
//! watchdog thread, the CRM and the notification sender (both active only
//! on the Raft leader), the LRM and the usage reporter, each on its own, so a slow store call or a hung watchdog-mux in one
//! never delays the others.

use std::sync::Arc;
use std::time::Duration;

use crate::api::ApiState;

use super::agent_lease::{self, lock, Clock, Wakers};
use super::config::NodeConfig;
use super::lrm_task::LrmTask;
use super::watchdog_thread::WatchdogThread;
use super::{crm_task, lrm_task, usage_task};

/// Aborts the tasks when dropped (the loop itself may be aborted).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Runs the CRM, LRM, lease task and watchdog thread. Returns once a stop
/// was requested through `shutdown`, the LRM has finished (services
/// frozen, stopped or moved as the shutdown policy says) and the lease and
/// the watchdog are released, so the node is not reset. The HTTP server
/// and Raft keep running meanwhile: the caller stops them only after this
/// returns.
pub async fn run(
    config: NodeConfig,
    state: ApiState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let agent = agent_lease::new_agent(&config.node, &config.timing);
    let wake = Arc::new(Wakers::default());
    let watchdog = WatchdogThread::start(
        config.watchdog_socket.clone(),
        config.timing,
        agent.clone(),
        clock,
        wake.clone(),
    )?;
    let lease_task = tokio::spawn(agent_lease::run(
        state.store.clone(),
        config.node.clone(),
        config.timing,
        agent.clone(),
        clock,
        wake.clone(),
    ));
    let crm = tokio::spawn(crm_task::run(config.clone(), state.clone()));
    let usage = tokio::spawn(usage_task::run(config.clone(), state.store.clone()));
    let ca = tokio::spawn(super::ca_task::run(state.clone()));
    // Sends only while this node leads, like the CRM.
    let notify = tokio::spawn(super::notify_task::run(
        state.store.clone(),
        config.node.clone(),
    ));
    let watcher = tokio::spawn(lrm_task::wake_on_manager_status(
        state.store.clone(),
        wake.clone(),
    ));
    let lrm = tokio::spawn(lrm_task::run(
        LrmTask {
            config: config.clone(),
            store: state.store.clone(),
            agent: agent.clone(),
            clock,
            wake: wake.clone(),
        },
        shutdown,
    ));
    let _guard = AbortOnDrop(vec![lease_task, crm, watcher, usage, ca, notify]);
    if lrm.await.is_err() {
        return Ok(());
    }
    // The LRM asked for the lease and the watchdog to be released (or, on
    // purpose, left the watchdog armed); wait for the lease task and the
    // watchdog thread to do it: a few renewal attempts at most.
    let limit = config.timing.renew_attempt_timeout * 4 + config.timing.feed_interval * 4;
    let end = tokio::time::Instant::now() + limit;
    loop {
        let (released, armed) = {
            let a = lock(&agent);
            (
                matches!(a.lease.state(), lease::NodeLeaseState::Free),
                a.watchdog_armed,
            )
        };
        if released && !armed {
            tracing::info!("agent lease and watchdog released");
            break;
        }
        if tokio::time::Instant::now() >= end {
            tracing::error!(
                "the agent lease or the watchdog was not released in time (released: {released}, watchdog armed: {armed})"
            );
            break;
        }
        wake.lease.notify_one();
        wake.watchdog.ring();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watchdog.stop();
    Ok(())
}
