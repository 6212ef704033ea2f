//! The CRM shell: runs [`CrmDaemon`] rounds while this node is the Raft
//! leader, has applied its term's first entry and hears from a quorum
//! (checked each round by `expired_leases`, which confirms leadership).
//! It acts only through committed writes made here (never forwarded), in
//! the order the round gives, with compare-and-set on the manager status
//! and the placement; a round whose writes do not all commit is dropped
//! and the CRM continues from the stored status. Decisions (liveness,
//! placement of new services, fencing evidence) are the core's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft::{ClusterStore, Command, DocKey, LeaseCommand, LeaseRecord, Outcome, StoreError};

use super::config::NodeConfig;
use super::history;
use super::snapshot::{self, placement_key, Snapshot};
use super::STATUS_REFRESH;
use crate::api::docs;
use crate::api::ApiState;
use crate::crm::{
    agent_lease_name, crm_holder, AgentLease, CrmAction, CrmDaemon, CrmInput, CrmStep,
    GroupMigrationInput, Level, Liveness, LogEvent, ManagerInput, ManagerStatus, NodeState,
    ServiceState,
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

/// Feeds the core's [`Liveness`] with what this leader observes: its own
/// life, each follower's replication progress (caught up = alive), each
/// node's lease renewals and LRM status writes.
fn observe_liveness(
    liveness: &mut Liveness,
    store: &ClusterStore,
    snap: &Snapshot,
    names: &BTreeMap<u64, NodeName>,
    me: &NodeName,
    now_ms: u64,
) {
    liveness.alive(me, now_ms);
    let m = store.raft().metrics().borrow().clone();
    let last = m.last_log_index.unwrap_or(0);
    if let Some(rep) = &m.replication {
        for (id, matched) in rep {
            let Some(node) = names.get(id) else { continue };
            let idx = matched.as_ref().map_or(0, |l| l.index);
            if idx >= last {
                liveness.alive(node, now_ms);
            } else {
                liveness.progress(node, "replication", idx, now_ms);
            }
        }
    }
    for node in names.values() {
        if let Some(l) = snap.leases.get(&agent_lease_name(node.as_str())) {
            if l.holder == node.as_str() {
                liveness.progress(node, "lease", l.seq, now_ms);
            }
        }
    }
    for (node, version) in &snap.lrm_versions {
        liveness.progress(node, "lrm_status", *version, now_ms);
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
    // Resource-affinity rules are kept as they are, in place.
    for rule in new_rules {
        match all.iter_mut().find(|r| r.id() == rule.id) {
            Some(old) => *old = crate::domain::Rule::NodeAffinity(rule),
            None => all.push(crate::domain::Rule::NodeAffinity(rule)),
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
    let mut crm: Option<CrmRun> = None;
    let offline_after = (config.timing.lease_renew_interval * 3).max(Duration::from_millis(1500));
    let incarnation = unix_ms().max(1);
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
        // Confirms leadership with a quorum and that this term's first
        // entry is applied (lease deadlines reset), every round.
        let expired = match store.expired_leases().await {
            Ok(e) => e,
            Err(e) => {
                if crm.take().is_some() {
                    tracing::warn!("{source}: leadership not confirmed ({e}), CRM stopped");
                }
                continue;
            }
        };
        let run = crm.get_or_insert_with(|| {
            let mut steps = Vec::new();
            let mut daemon = CrmDaemon::new(config.node.clone(), &mut steps);
            // The manager "lock" is Raft leadership: no other node can be
            // master while this one leads, so it must manage (and fence
            // its own node) even with its own node in fence.
            daemon.set_leader_only(true);
            log_steps(&source, &steps);
            CrmRun {
                daemon,
                liveness: Liveness::new(
                    u64::try_from(offline_after.as_millis()).unwrap_or(u64::MAX),
                    unix_ms(),
                ),
                last_write: None,
            }
        });
        let fencing = match round(&config, &state, run, &expired, incarnation, &source).await {
            Ok(fencing) => fencing,
            Err(e) => {
                tracing::warn!("{source}: round aborted: {e}; continuing from the stored status");
                let stored = snapshot::read(&store).manager_status;
                run.daemon.resync(&stored);
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

/// The CRM of this leader term.
struct CrmRun {
    daemon: CrmDaemon,
    liveness: Liveness,
    /// The manager status last written (timestamp aside) and when.
    last_write: Option<(ManagerStatus, std::time::Instant)>,
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

/// Whether two manager statuses say the same, the write time aside.
fn same_content(a: &ManagerStatus, b: &ManagerStatus) -> bool {
    let mut a = a.clone();
    a.timestamp = b.timestamp;
    a == *b
}

/// One CRM round; returns the nodes left in state `fence`. Any write that
/// does not commit aborts the round (the caller resyncs from the store).
async fn round(
    config: &NodeConfig,
    state: &ApiState,
    run: &mut CrmRun,
    expired: &[(String, LeaseRecord)],
    incarnation: u64,
    source: &str,
) -> Result<Vec<NodeName>, StoreError> {
    let store = &state.store;
    let snap = snapshot::read(store);
    if let Some(e) = &snap.manager_status_error {
        // Fail closed: never start from an empty status over a real one.
        return Err(StoreError::Raft(e.clone()));
    }
    let now_ms = unix_ms();
    let names: BTreeMap<u64, NodeName> = snap
        .nodes
        .nodes
        .iter()
        .filter_map(|(name, e)| name.parse::<NodeName>().ok().map(|n| (e.id, n)))
        .collect();
    observe_liveness(
        &mut run.liveness,
        store,
        &snap,
        &names,
        &config.node,
        now_ms,
    );
    let membership: BTreeMap<NodeName, bool> = names
        .values()
        .map(|n| (n.clone(), run.liveness.online(n, now_ms)))
        .collect();
    let expired_names: BTreeSet<&str> = expired.iter().map(|(n, _)| n.as_str()).collect();
    let agent_leases: BTreeMap<NodeName, AgentLease> = membership
        .keys()
        .map(|n| {
            let name = agent_lease_name(n.as_str());
            let lease = AgentLease::of(
                n,
                snap.leases.get(&name),
                expired_names.contains(name.as_str()),
            );
            (n.clone(), lease)
        })
        .collect();
    let node_names: Vec<NodeName> = membership.keys().cloned().collect();
    let placement = snap.placement_rules(&node_names);
    for message in &placement.messages {
        tracing::warn!("{source}: {message}");
    }
    let guest_locks = BTreeMap::new();
    // Every ha-manager daemon reads rules.cfg, so a node that runs one (it
    // has written an LRM status) passes the version gate of the group
    // migration; a member that never reported does not.
    let node_versions: BTreeMap<NodeName, String> = membership
        .keys()
        .filter(|n| snap.lrm_status.contains_key(*n))
        .map(|n| (n.clone(), RULES_CAPABLE_VERSION.to_string()))
        .collect();
    let scheduling = snap.scheduling();
    let output = run.daemon.iterate(&CrmInput {
        quorate: true,
        cluster_state_ok: true,
        cfs_rw_ok: true,
        stored_status: &snap.manager_status,
        manager_lock_available: true,
        manager: ManagerInput {
            now_ms,
            membership: &membership,
            resources: &snap.resources,
            node_affinity: &placement.node_affinity,
            resource_affinity: &placement.resource_affinity,
            lrm_status: &snap.lrm_status,
            crm_commands: &snap.crm_commands,
            agent_leases: &agent_leases,
            unplaced: &snap.unplaced,
            guest_locks: &guest_locks,
            fence_delay_ms: u64::try_from(config.timing.fence_delay.as_millis())
                .unwrap_or(u64::MAX),
            group_migration: GroupMigrationInput {
                groups: &snap.groups,
                node_versions: &node_versions,
                round_interval_ms: u64::try_from(config.timing.round_interval.as_millis())
                    .unwrap_or(u64::MAX),
            },
            // The `crs` options and the nodes' usage reports from the
            // store; an online node without a report makes `static` and
            // `dynamic` fall back to `basic` with the CRM's warning (spec
            // 3.11.1).
            scheduling: &scheduling,
        },
    });
    let mut events = Vec::new();
    for step in output.steps {
        match step {
            CrmStep::Log(ev) => log_event(source, &ev),
            CrmStep::Event(ev) => events.push(*ev),
            CrmStep::Do(action) => apply(config, state, &snap, incarnation, action).await?,
        }
    }
    // The round's events go with its manager status, in one entry: they
    // exist exactly when the round committed.
    let history = store
        .read_local(|s| history::append_commands(s, events))
        .value;
    let fence_nodes = |ms: &ManagerStatus| -> Vec<NodeName> {
        ms.node_status
            .iter()
            .filter(|(_, state)| **state == NodeState::Fence)
            .map(|(node, _)| node.clone())
            .collect()
    };
    let Some(mut ms) = output.manager_status else {
        write_history(store, history).await?;
        return Ok(fence_nodes(&snap.manager_status));
    };
    ms.master_node = Some(config.node.clone());
    ms.timestamp = now_ms / 1000;
    let unchanged = same_content(&ms, &snap.manager_status)
        && run
            .last_write
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < STATUS_REFRESH);
    if unchanged {
        write_history(store, history).await?;
    } else {
        let text = serde_json::to_string(&ms).map_err(|e| StoreError::Raft(e.to_string()))?;
        // Only here (never forwarded), and only over the status this
        // round started from.
        let status = Command::PutDoc {
            key: DocKey::ManagerStatus,
            expected_version: Some(snap.manager_status_version),
            value: text,
        };
        let command = if history.is_empty() {
            status
        } else {
            Command::Batch(std::iter::once(status).chain(history).collect())
        };
        let response = store.write_here(command).await?;
        committed(response.outcome, "manager status")?;
        run.last_write = Some((ms.clone(), std::time::Instant::now()));
    }
    Ok(fence_nodes(&ms))
}

/// Writes a round's history alone (its manager status needed no write).
async fn write_history(store: &ClusterStore, history: Vec<Command>) -> Result<(), StoreError> {
    if history.is_empty() {
        return Ok(());
    }
    let response = store.write_here(Command::Batch(history)).await?;
    committed(response.outcome, "history").map(|_| ())
}

/// An outcome that did not take effect is an error.
fn committed(outcome: Outcome, what: &str) -> Result<Outcome, StoreError> {
    if outcome.is_success() {
        Ok(outcome)
    } else {
        Err(StoreError::Raft(format!("{what} not written: {outcome:?}")))
    }
}

async fn apply(
    config: &NodeConfig,
    state: &ApiState,
    snap: &Snapshot,
    incarnation: u64,
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
            let current = snap.leases.get(&name);
            let expected = match current {
                None => None,
                Some(r) if r.holder == node.as_str() => Some(lease::Expected {
                    holder: r.holder.clone(),
                    seq: r.seq,
                }),
                // A fencing hold: the take-over committed already.
                Some(_) => return Ok(()),
            };
            let evidence = if expected.is_some() {
                "took over the expired agent lease"
            } else {
                "took over the free agent lease (the node held none)"
            };
            let command = Command::Lease(LeaseCommand::Takeover {
                name: name.clone(),
                new_holder: crm_holder(config.node.as_str()),
                new_incarnation: incarnation,
                expected,
                ttl_ms: u64::try_from(config.timing.lease_ttl.as_millis()).unwrap_or(u64::MAX),
            });
            // The leader checks the expiry before proposing; the apply
            // checks that no renewal committed since.
            let response = store.write_here(command).await?;
            committed(response.outcome, "fencing take-over")?;
            tracing::warn!(node = %node, lease = %name, "fenced: {evidence}");
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
            let version = snap.placement_versions.get(&sid).copied().unwrap_or(0);
            let response = store
                .write_here(Command::PutDoc {
                    key: placement_key(&sid),
                    expected_version: Some(version),
                    value: to.to_string(),
                })
                .await?;
            committed(response.outcome, "placement")?;
        }
        CrmAction::PlaceResource { sid, node } => {
            let response = store
                .write_here(Command::PutDoc {
                    key: placement_key(&sid),
                    expected_version: Some(0),
                    value: node.to_string(),
                })
                .await?;
            committed(response.outcome, "placement")?;
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
