//! The node's agent lease and its watchdog client (design.md section 5,
//! node side).
//!
//! Every renewal interval: note `t_sent`, renew (or acquire) the lease
//! `ha_agent_<node>_lock`; after an acknowledged renewal the node may act
//! and feed its watchdog only while `now < t_sent + feed_window`, where
//! `feed_window = ttl - (mux_client_timeout + device_timeout) - margin`.
//! A node that cannot renew thus stops feeding and is reset by its
//! watchdog strictly before the leader sees its lease expire.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::{ClusterStore, Lease, StoreError};

use crate::domain::{NodeName, TimingProfile};

/// Name of a node's agent lease.
pub fn agent_lease_name(node: &str) -> String {
    format!("ha_agent_{node}_lock")
}

/// What the LRM and the keeper share.
#[derive(Debug, Default)]
pub struct LeaseState {
    /// The LRM (or pending work for this node) wants the lease held.
    pub want: bool,
    /// The LRM wants the watchdog armed.
    pub watchdog_wanted: bool,
    /// The lease as last acknowledged, with the Raft term of the grant.
    pub held: Option<(Lease, u64)>,
    /// Until when the node may act on its services (monotonic).
    pub valid_until: Option<Instant>,
    /// Log index of the last acknowledged renewal (read-your-writes).
    pub renewed_index: u64,
    /// The watchdog could not be armed: the node must not run services.
    pub watchdog_failed: bool,
    /// A watchdog-mux client is armed and being fed. Services may only be
    /// started while this holds: a node must never run a service that its
    /// watchdog does not protect.
    pub watchdog_armed: bool,
}

impl LeaseState {
    /// Whether the lease is held and still inside its feed window.
    pub fn valid(&self, now: Instant) -> bool {
        self.held.is_some() && self.valid_until.is_some_and(|v| now < v) && !self.watchdog_failed
    }
}

/// Shared handle.
pub type SharedLease = Arc<Mutex<LeaseState>>;

/// Wake-ups between the LRM and the keeper, so a failover does not wait
/// for the next tick at each hand-off (LRM wants the lease -> keeper takes
/// it -> LRM starts the service -> worker done -> LRM reports).
#[derive(Debug, Default)]
pub struct Wakers {
    /// Wakes the keeper (the wanted lease or watchdog state changed).
    pub keeper: tokio::sync::Notify,
    /// Wakes the LRM (lease taken, watchdog armed, a worker finished).
    pub lrm: tokio::sync::Notify,
}

fn lock(s: &SharedLease) -> std::sync::MutexGuard<'_, LeaseState> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs the keeper until aborted.
pub async fn run(
    store: ClusterStore,
    node: NodeName,
    timing: TimingProfile,
    watchdog_socket: std::path::PathBuf,
    shared: SharedLease,
    wake: Arc<Wakers>,
) {
    let name = agent_lease_name(node.as_str());
    let window = watchdog::feed_window(
        timing.lease_ttl,
        timing.mux_client_timeout,
        timing.device_timeout,
        timing.margin,
    )
    .unwrap_or(Duration::ZERO);
    let mut client: Option<watchdog::WatchdogClient> = None;
    let mut tick = tokio::time::interval(timing.lease_renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.keeper.notified() => {}
        }
        let (want, held) = {
            let s = lock(&shared);
            (s.want, s.held.is_some())
        };
        if want {
            let t_sent = Instant::now();
            let result = if held {
                store.lease_renew(&name, node.as_str()).await
            } else {
                store
                    .lease_acquire(&name, node.as_str(), timing.lease_ttl)
                    .await
            };
            let term = store.status().term;
            let mut s = lock(&shared);
            match result {
                Ok(lease) => {
                    if !held {
                        tracing::info!(lease = %name, seq = lease.seq, "got agent lease");
                        wake.lrm.notify_one();
                    }
                    s.renewed_index = lease.seq;
                    s.held = Some((lease, term));
                    s.valid_until = Some(t_sent + window);
                }
                Err(StoreError::LeaseNotHolder { .. } | StoreError::LeaseBusy { .. }) => {
                    if held {
                        tracing::error!(lease = %name, "lost the agent lease");
                    }
                    s.held = None;
                    s.valid_until = None;
                }
                Err(e) => tracing::warn!(lease = %name, error = %e, "lease renewal failed"),
            }
        } else if held {
            match store.lease_release(&name, node.as_str()).await {
                Ok(_) | Err(StoreError::LeaseNotHolder { .. }) => {
                    let mut s = lock(&shared);
                    s.held = None;
                    s.valid_until = None;
                    tracing::info!(lease = %name, "released agent lease");
                }
                Err(e) => tracing::warn!(lease = %name, error = %e, "lease release failed"),
            }
        }
        if feed_watchdog(&shared, &mut client, &watchdog_socket, &timing) {
            wake.lrm.notify_one();
        }
    }
}

/// Arms, feeds or releases the watchdog client; true when it was armed
/// just now (the LRM may start services).
fn feed_watchdog(
    shared: &SharedLease,
    client: &mut Option<watchdog::WatchdogClient>,
    socket: &std::path::Path,
    timing: &TimingProfile,
) -> bool {
    let now = Instant::now();
    let (wanted, valid) = {
        let s = lock(shared);
        (
            s.watchdog_wanted,
            s.held.is_some() && s.valid_until.is_some_and(|v| now < v),
        )
    };
    let mut armed_now = false;
    if wanted && client.is_none() {
        match watchdog::WatchdogClient::connect(socket, timing.mux_client_timeout) {
            Ok(c) => {
                if c.device_timeout() > timing.device_timeout {
                    tracing::error!(
                        mux = ?c.device_timeout(),
                        profile = ?timing.device_timeout,
                        "watchdog-mux device timeout exceeds the timing profile: refusing to run services"
                    );
                    let _ = c.release();
                    lock(shared).watchdog_failed = true;
                    return false;
                }
                tracing::info!(socket = %socket.display(), "watchdog armed");
                *client = Some(c);
                let mut s = lock(shared);
                s.watchdog_failed = false;
                s.watchdog_armed = true;
                armed_now = true;
            }
            Err(e) => {
                tracing::error!(socket = %socket.display(), error = %e, "cannot arm the watchdog: not running services");
                lock(shared).watchdog_failed = true;
                return false;
            }
        }
    }
    if !wanted {
        if let Some(c) = client.take() {
            lock(shared).watchdog_armed = false;
            match c.release() {
                Ok(()) => tracing::info!("watchdog released"),
                Err(e) => tracing::warn!(error = %e, "watchdog release failed"),
            }
        }
        return false;
    }
    if valid {
        if let Some(c) = client.as_mut() {
            if let Err(e) = c.keepalive() {
                tracing::error!(error = %e, "watchdog keepalive failed: not starting services");
                lock(shared).watchdog_armed = false;
            }
        }
    }
    // Outside the feed window the client is deliberately not fed: the mux
    // resets this node before the leader can see the lease expire.
    armed_now
}
