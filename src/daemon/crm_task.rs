//! The CRM shell: runs [`CrmDaemon`] rounds while this node is the Raft
//! leader, has applied its term's first entry and hears from a quorum
//! (checked each round by `expired_leases`, which confirms leadership).
//! It acts only through committed writes, in the order the round gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raft::{ClusterStore, DocKey, Lease, StoreError};

use super::config::NodeConfig;
use super::lease_keeper::agent_lease_name;
use super::snapshot::{self, placement_key, Snapshot};
use crate::api::docs;
use crate::api::ApiState;
use crate::crm::{
    CrmAction, CrmDaemon, CrmInput, CrmStep, Level, LogEvent, ManagerInput, ServiceState,
};
use crate::domain::NodeName;

/// Wall-clock milliseconds (manager status timestamps are wall-clock, as
/// in Proxmox; lease expiry never uses them).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Logs a CRM or LRM event through tracing.
pub fn log_event(source: &str, ev: &LogEvent) {
    match ev.level {
        Level::Err => tracing::error!(target: "ha", "{source}: {}", ev.message),
        Level::Warning => tracing::warn!(target: "ha", "{source}: {}", ev.message),
        _ => tracing::info!(target: "ha", "{source}: {}", ev.message),
    }
}

/// Tracks, on the leader, when each follower last made replication
/// progress; a node without progress for `offline_after` is offline.
struct Liveness {
    progress: HashMap<u64, (u64, Instant)>,
    offline_after: Duration,
}

impl Liveness {
    fn online(&mut self, store: &ClusterStore) -> BTreeSet<u64> {
        let m = store.raft().metrics().borrow().clone();
        let last = m.last_log_index.unwrap_or(0);
        let now = Instant::now();
        let mut online = BTreeSet::from([m.id]);
        if let Some(rep) = &m.replication {
            for (id, matched) in rep {
                let idx = matched.map_or(0, |l| l.index);
                let entry = self.progress.entry(*id).or_insert((idx, now));
                if idx != entry.0 || idx >= last {
                    *entry = (idx, now);
                }
                if now.duration_since(entry.1) < self.offline_after {
                    online.insert(*id);
                }
            }
        }
        online
    }
}

/// Runs CRM rounds until aborted.
pub async fn run(config: NodeConfig, state: ApiState) {
    let store = state.store.clone();
    let source = format!("{}/crm", config.node);
    let mut crm: Option<CrmDaemon> = None;
    let mut liveness = Liveness {
        progress: HashMap::new(),
        offline_after: (config.timing.lease_renew_interval * 3).max(Duration::from_millis(1500)),
    };
    let mut tick = tokio::time::interval(config.timing.round_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !store.is_leader() {
            if crm.take().is_some() {
                tracing::info!("{source}: no longer raft leader, CRM stopped");
            }
            continue;
        }
        let expired = match store.expired_leases().await {
            Ok(e) => e,
            Err(e) => {
                if crm.take().is_some() {
                    tracing::warn!("{source}: leadership not confirmed ({e}), CRM stopped");
                }
                continue;
            }
        };
        let daemon = crm.get_or_insert_with(|| {
            let mut steps = Vec::new();
            let d = CrmDaemon::new(config.node.clone(), &mut steps);
            log_steps(&source, &steps);
            d
        });
        if let Err(e) = round(&config, &state, daemon, &expired, &mut liveness, &source).await {
            tracing::warn!("{source}: round aborted: {e}");
        }
    }
}

fn log_steps(source: &str, steps: &[CrmStep]) {
    for s in steps {
        if let CrmStep::Log(ev) = s {
            log_event(source, ev);
        }
    }
}

async fn place_new(store: &ClusterStore, snap: &Snapshot, me: &NodeName) -> Result<(), StoreError> {
    for sid in &snap.unplaced {
        store
            .put_doc(placement_key(sid), Some(0), me.to_string())
            .await?;
    }
    Ok(())
}

async fn round(
    config: &NodeConfig,
    state: &ApiState,
    daemon: &mut CrmDaemon,
    expired: &[(String, Lease)],
    liveness: &mut Liveness,
    source: &str,
) -> Result<(), StoreError> {
    let store = &state.store;
    let mut snap = snapshot::read(store);
    if !snap.unplaced.is_empty() {
        place_new(store, &snap, &config.node).await?;
        snap = snapshot::read(store);
    }
    let online_ids = liveness.online(store);
    let membership: BTreeMap<NodeName, bool> = snap
        .nodes
        .nodes
        .iter()
        .filter_map(|(name, e)| {
            name.parse::<NodeName>()
                .ok()
                .map(|n| (n, online_ids.contains(&e.id)))
        })
        .collect();
    let expired_names: BTreeSet<&str> = expired.iter().map(|(n, _)| n.as_str()).collect();
    let takeable: BTreeSet<NodeName> = membership
        .keys()
        .filter(|n| {
            let lease = agent_lease_name(n.as_str());
            !snap.leases.contains_key(&lease) || expired_names.contains(lease.as_str())
        })
        .cloned()
        .collect();
    let empty_affinity = BTreeMap::new();
    let guest_locks = BTreeMap::new();
    let now_ms = unix_ms();
    let output = daemon.iterate(&CrmInput {
        quorate: true,
        cluster_state_ok: true,
        cfs_rw_ok: true,
        stored_status: &snap.manager_status,
        manager_lock_available: true,
        manager: ManagerInput {
            now_ms,
            membership: &membership,
            resources: &snap.resources,
            node_affinity: &empty_affinity,
            lrm_status: &snap.lrm_status,
            crm_commands: &snap.crm_commands,
            takeable_agent_locks: &takeable,
            guest_locks: &guest_locks,
            fence_delay_ms: u64::try_from(config.timing.fence_delay.as_millis())
                .unwrap_or(u64::MAX),
        },
    });
    for step in output.steps {
        match step {
            CrmStep::Log(ev) => log_event(source, &ev),
            CrmStep::Do(action) => apply(config, state, &snap, expired, action).await?,
        }
    }
    if let Some(mut ms) = output.manager_status {
        ms.master_node = Some(config.node.clone());
        ms.timestamp = now_ms / 1000;
        let text = serde_json::to_string(&ms).map_err(|e| StoreError::Raft(e.to_string()))?;
        store.put_doc(DocKey::ManagerStatus, None, text).await?;
    }
    Ok(())
}

async fn apply(
    config: &NodeConfig,
    state: &ApiState,
    snap: &Snapshot,
    expired: &[(String, Lease)],
    action: CrmAction,
) -> Result<(), StoreError> {
    let store = &state.store;
    match action {
        // The manager "lock" is Raft leadership itself, confirmed by a
        // quorum every round; the CRM watchdog is not needed outside the
        // pve profile because a deposed leader cannot commit anything.
        CrmAction::TakeManagerLock
        | CrmAction::ReleaseManagerLock
        | CrmAction::WatchdogOpen
        | CrmAction::WatchdogUpdate
        | CrmAction::WatchdogClose
        | CrmAction::RemoveGuestLock(_) => {}
        CrmAction::TakeAgentLock(node) => {
            let name = agent_lease_name(node.as_str());
            let me = format!("crm:{}", config.node);
            if let Some((_, lease)) = expired.iter().find(|(n, _)| *n == name) {
                store
                    .lease_takeover(
                        &name,
                        &me,
                        &lease.holder,
                        lease.seq,
                        config.timing.lease_ttl,
                    )
                    .await?;
                // The committed take-over is the fencing acknowledgement;
                // releasing it lets the node take its lease again once it
                // has restarted.
                store.lease_release(&name, &me).await?;
                tracing::warn!(node = %node, lease = %name, "fenced: took over the expired agent lease");
            } else if snap.leases.contains_key(&name) {
                return Err(StoreError::LeaseNotExpired { name });
            }
            let fenced = snap
                .manager_status
                .service_status
                .values()
                .filter(|r| r.node == node && r.state == ServiceState::Fence)
                .count();
            state
                .failovers
                .fetch_add(u64::try_from(fenced).unwrap_or(0), Ordering::Relaxed);
        }
        CrmAction::SetRequestedState(sid, requested) => {
            let mut res = docs::resources(store)
                .await
                .map_err(|e| StoreError::Raft(e.body.error))?;
            if let Some(r) = res.value.iter_mut().find(|r| r.sid == sid) {
                r.state = requested;
                docs::put_resources(store, &res.value, res.version)
                    .await
                    .map_err(|e| StoreError::Raft(e.body.error))?;
            }
        }
        CrmAction::MoveResourceNode { sid, to, .. } => {
            store
                .put_doc(placement_key(&sid), None, to.to_string())
                .await?;
        }
        CrmAction::ConsumeCrmCommands => {
            let taken = store.take_crm_commands().await?;
            // Commands appended after this round's read were not seen by
            // the CRM: queue them again instead of dropping them.
            for late in taken.iter().skip(snap.crm_commands.len()) {
                store.append_crm_command(late.clone()).await?;
            }
        }
    }
    Ok(())
}
