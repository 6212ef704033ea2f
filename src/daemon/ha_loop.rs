//! The HA loop of a node: the lease keeper (agent lease + watchdog), the
//! CRM (active only on the Raft leader) and the LRM, as three tasks so a
//! slow store call in one never delays the lease renewals of another.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::ApiState;

use super::config::NodeConfig;
use super::lease_keeper::{self, LeaseState, Wakers};
use super::{crm_task, lrm_task};

/// Aborts the tasks when dropped (the loop itself may be aborted).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Runs the CRM, LRM and lease tasks. Returns once a stop was requested
/// through `shutdown`, the LRM has finished (services frozen, stopped or
/// moved as the shutdown policy says) and the keeper has released the
/// agent lease and the watchdog cleanly, so the node is not reset.
pub async fn run(
    config: NodeConfig,
    state: ApiState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let lease = Arc::new(Mutex::new(LeaseState::default()));
    let wake = Arc::new(Wakers::default());
    let keeper = tokio::spawn(lease_keeper::run(
        state.store.clone(),
        config.node.clone(),
        config.timing,
        config.watchdog_socket.clone(),
        lease.clone(),
        wake.clone(),
    ));
    let crm = tokio::spawn(crm_task::run(config.clone(), state.clone()));
    let watcher = tokio::spawn(lrm_task::wake_on_manager_status(
        state.store.clone(),
        wake.clone(),
    ));
    let lrm = tokio::spawn(lrm_task::run(
        config.clone(),
        state.store.clone(),
        lease.clone(),
        wake.clone(),
        shutdown,
    ));
    let _guard = AbortOnDrop(vec![keeper, crm, watcher]);
    if lrm.await.is_err() {
        return;
    }
    // The LRM asked for the lease and the watchdog to be released; wait
    // for the keeper to do it (a few renewal intervals at most).
    wake.keeper.notify_one();
    let limit = config.timing.lease_renew_interval * 5 + Duration::from_secs(1);
    let end = tokio::time::Instant::now() + limit;
    loop {
        let released = {
            let s = match lease.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            s.held.is_none() && !s.watchdog_armed
        };
        if released {
            tracing::info!("agent lease and watchdog released");
            return;
        }
        if tokio::time::Instant::now() >= end {
            tracing::error!("the agent lease or the watchdog was not released in time");
            return;
        }
        wake.keeper.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
