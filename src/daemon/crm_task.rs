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
    node_affinity_from_config, select_service_node, CrmAction, CrmDaemon, CrmInput, CrmStep,
    GroupMigrationInput, Level, LogEvent, ManagerInput, ManagerStatus, NodeAffinity, NodeState,
    Preference, ServiceRecord, ServiceState, Usage,
};
use crate::domain::{NodeName, Sid};

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
/// progress or wrote its LRM status; a node with neither for
/// `offline_after` is offline. The LRM status write makes a restarted node
/// online in the same round its LRM reports, before replication to it has
/// resumed.
struct Liveness {
    progress: HashMap<u64, (u64, Instant)>,
    lrm_writes: HashMap<NodeName, (u64, Instant)>,
    offline_after: Duration,
}

impl Liveness {
    /// Names of the nodes whose LRM wrote its status recently.
    fn recent_lrm_writers(&mut self, snap: &Snapshot) -> BTreeSet<NodeName> {
        let now = Instant::now();
        let mut recent = BTreeSet::new();
        for (node, version) in &snap.lrm_versions {
            match self.lrm_writes.get_mut(node) {
                Some(seen) if seen.0 == *version => {
                    if now.duration_since(seen.1) < self.offline_after {
                        recent.insert(node.clone());
                    }
                }
                Some(seen) => {
                    *seen = (*version, now);
                    recent.insert(node.clone());
                }
                // First sight (e.g. a new leader): not proof of a recent write.
                None => {
                    let long_ago = now.checked_sub(self.offline_after).unwrap_or(now);
                    self.lrm_writes.insert(node.clone(), (*version, long_ago));
                }
            }
        }
        recent
    }

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

/// The pve-manager version the group migration's gate asks for (spec
/// 3.20), which every ha-manager daemon meets: they all read rules.cfg.
pub const RULES_CAPABLE_VERSION: &str = "9.0.0~16";

/// The persistent group migration (spec 3.20): rules first, then the
/// resources without `group`, then groups.cfg emptied, each with CAS. A
/// crash between the writes leaves a state the next attempt completes
/// (rules are replaced by id; groups no resource uses make no rule).
async fn migrate_groups(store: &ClusterStore) -> Result<(), crate::api::error::ApiError> {
    let groups = docs::groups(store).await?;
    let resources = docs::resources(store).await?;
    let rules = docs::rules(store).await?;
    let (new_rules, migrated) = crate::config::migrate_groups(&groups.value, &resources.value);
    let mut all = rules.value;
    for rule in new_rules {
        match all.iter_mut().find(|r| r.id == rule.id) {
            Some(old) => *old = rule,
            None => all.push(rule),
        }
    }
    docs::put_rules(store, &all, rules.version).await?;
    docs::put_resources(store, &migrated, resources.version).await?;
    docs::put_groups(store, &[], groups.version).await?;
    tracing::info!("ha groups migrated to node-affinity rules; groups.cfg is now empty");
    Ok(())
}

/// Runs CRM rounds until aborted.
pub async fn run(config: NodeConfig, state: ApiState) {
    let store = state.store.clone();
    let source = format!("{}/crm", config.node);
    let mut crm: Option<CrmDaemon> = None;
    let mut liveness = Liveness {
        progress: HashMap::new(),
        lrm_writes: HashMap::new(),
        offline_after: (config.timing.lease_renew_interval * 3).max(Duration::from_millis(1500)),
    };
    let mut next_round = config.timing.round_interval;
    loop {
        tokio::time::sleep(next_round).await;
        let started = tokio::time::Instant::now();
        next_round = config.timing.round_interval;
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
        let fencing = match round(&config, &state, daemon, &expired, &mut liveness, &source).await {
            Ok(fencing) => fencing,
            Err(e) => {
                tracing::warn!("{source}: round aborted: {e}");
                Vec::new()
            }
        };
        // Keep the round period, but run the next round right when the
        // lease of a node being fenced expires: recovery starts then.
        let period = config.timing.round_interval;
        next_round = period
            .saturating_sub(started.elapsed())
            .min(until_lease_expires(&store, &fencing, period));
    }
}

/// Time until the first agent lease of the `fencing` nodes expires on
/// this leader (plus a little slack), capped at `cap`.
fn until_lease_expires(store: &ClusterStore, fencing: &[NodeName], cap: Duration) -> Duration {
    fencing
        .iter()
        .filter_map(|n| store.lease_time_left(&agent_lease_name(n.as_str())))
        // Never faster than a tenth of a round, even if the take-over keeps
        // failing on an expired lease.
        .map(|left| (left + Duration::from_millis(20)).max(cap / 10))
        .fold(cap, Duration::min)
}

fn log_steps(source: &str, steps: &[CrmStep]) {
    for s in steps {
        if let CrmStep::Log(ev) = s {
            log_event(source, ev);
        }
    }
}

/// Places services that have no node yet (just added): on the best node
/// that their node affinity allows among the online nodes, least loaded
/// first, as a recovery would choose.
async fn place_new(
    store: &ClusterStore,
    snap: &Snapshot,
    membership: &BTreeMap<NodeName, bool>,
    affinity: &BTreeMap<Sid, NodeAffinity>,
    me: &NodeName,
) -> Result<(), StoreError> {
    let mut usage: Usage = membership
        .iter()
        .filter(|(_, online)| **online)
        .map(|(n, _)| (n.clone(), 0))
        .collect();
    for r in snap.resources.values() {
        if let Some(u) = usage.get_mut(&r.node) {
            *u += 1;
        }
    }
    for sid in &snap.unplaced {
        let failback = snap
            .configs
            .iter()
            .find(|c| &c.sid == sid)
            .is_none_or(|c| c.failback);
        let probe = ServiceRecord::new(ServiceState::RequestStart, me.clone());
        let Some(node) = select_service_node(
            &usage,
            affinity.get(sid),
            failback,
            &probe,
            Preference::BestScore,
        ) else {
            tracing::warn!(%sid, "no allowed node is online: the new service waits for one");
            continue;
        };
        store
            .put_doc(placement_key(sid), Some(0), node.to_string())
            .await?;
        *usage.entry(node).or_default() += 1;
    }
    Ok(())
}

/// One CRM round; returns the nodes left in state `fence`.
async fn round(
    config: &NodeConfig,
    state: &ApiState,
    daemon: &mut CrmDaemon,
    expired: &[(String, Lease)],
    liveness: &mut Liveness,
    source: &str,
) -> Result<Vec<NodeName>, StoreError> {
    let store = &state.store;
    let mut snap = snapshot::read(store);
    let online_ids = liveness.online(store);
    let lrm_writers = liveness.recent_lrm_writers(&snap);
    let membership: BTreeMap<NodeName, bool> = snap
        .nodes
        .nodes
        .iter()
        .filter_map(|(name, e)| {
            name.parse::<NodeName>().ok().map(|n| {
                let online = online_ids.contains(&e.id) || lrm_writers.contains(&n);
                (n, online)
            })
        })
        .collect();
    let node_names: Vec<NodeName> = membership.keys().cloned().collect();
    let (affinity, dropped) =
        node_affinity_from_config(&snap.rules, &snap.groups, &snap.configs, &node_names);
    for message in dropped {
        tracing::warn!("{source}: {message}");
    }
    if !snap.unplaced.is_empty() {
        place_new(store, &snap, &membership, &affinity, &config.node).await?;
        snap = snapshot::read(store);
    }
    let expired_names: BTreeSet<&str> = expired.iter().map(|(n, _)| n.as_str()).collect();
    let takeable: BTreeSet<NodeName> = membership
        .keys()
        .filter(|n| {
            let lease = agent_lease_name(n.as_str());
            !snap.leases.contains_key(&lease) || expired_names.contains(lease.as_str())
        })
        .cloned()
        .collect();
    let guest_locks = BTreeMap::new();
    // Every ha-manager daemon reads rules.cfg, so a node that runs one (it
    // has written an LRM status) passes the version gate of the group
    // migration; a member that never reported does not.
    let node_versions: BTreeMap<NodeName, String> = membership
        .keys()
        .filter(|n| snap.lrm_status.contains_key(*n))
        .map(|n| (n.clone(), RULES_CAPABLE_VERSION.to_string()))
        .collect();
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
            node_affinity: &affinity,
            lrm_status: &snap.lrm_status,
            crm_commands: &snap.crm_commands,
            takeable_agent_locks: &takeable,
            guest_locks: &guest_locks,
            fence_delay_ms: u64::try_from(config.timing.fence_delay.as_millis())
                .unwrap_or(u64::MAX),
            group_migration: GroupMigrationInput {
                groups: &snap.groups,
                node_versions: &node_versions,
                round_interval_ms: u64::try_from(config.timing.round_interval.as_millis())
                    .unwrap_or(u64::MAX),
            },
        },
    });
    for step in output.steps {
        match step {
            CrmStep::Log(ev) => log_event(source, &ev),
            CrmStep::Do(action) => apply(config, state, &snap, expired, action).await?,
        }
    }
    let fence_nodes = |ms: &ManagerStatus| -> Vec<NodeName> {
        ms.node_status
            .iter()
            .filter(|(_, state)| **state == NodeState::Fence)
            .map(|(node, _)| node.clone())
            .collect()
    };
    match output.manager_status {
        Some(mut ms) => {
            ms.master_node = Some(config.node.clone());
            ms.timestamp = now_ms / 1000;
            let text = serde_json::to_string(&ms).map_err(|e| StoreError::Raft(e.to_string()))?;
            store.put_doc(DocKey::ManagerStatus, None, text).await?;
            Ok(fence_nodes(&ms))
        }
        None => Ok(fence_nodes(&snap.manager_status)),
    }
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
        CrmAction::MigrateGroups => migrate_groups(store)
            .await
            .map_err(|e| StoreError::Raft(format!("group migration: {}", e.body.error)))?,
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
