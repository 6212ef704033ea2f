//! The HA loop of a node: the lease keeper (agent lease + watchdog), the
//! CRM (active only on the Raft leader) and the LRM, as three tasks so a
//! slow store call in one never delays the lease renewals of another.

use std::sync::{Arc, Mutex};

use crate::api::ApiState;

use super::config::NodeConfig;
use super::lease_keeper::{self, LeaseState};
use super::{crm_task, lrm_task};

/// Runs the CRM, LRM and lease tasks until aborted.
pub async fn run(config: NodeConfig, state: ApiState) {
    let lease = Arc::new(Mutex::new(LeaseState::default()));
    let keeper = tokio::spawn(lease_keeper::run(
        state.store.clone(),
        config.node.clone(),
        config.timing,
        config.watchdog_socket.clone(),
        lease.clone(),
    ));
    let crm = tokio::spawn(crm_task::run(config.clone(), state.clone()));
    let lrm = tokio::spawn(lrm_task::run(config.clone(), state.store.clone(), lease));
    // Aborting this task must stop the three children too.
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for h in &self.0 {
                h.abort();
            }
        }
    }
    let guard = AbortOnDrop(vec![keeper, crm, lrm]);
    std::future::pending::<()>().await;
    drop(guard);
}
