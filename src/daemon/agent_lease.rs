//! The node's agent lease in the daemon: the lease core's [`NodeLease`]
//! behind a mutex, driven by its own task (renewals) and by the watchdog
//! thread (feeding), and read by the LRM through [`DaemonLockPort`].
//!
//! The shell decides nothing here: when to send what, whether the node may
//! act, whether the watchdog may be fed or closed, all come from the lease
//! core, as in the simulator. The shell sends each request to whoever
//! leads now, bounded by the profile's `renew_attempt_timeout`, and hands
//! the answer back.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lease::{LeaseEvent, LeaseIntent, Mono, NodeLease, ReplicaView, RequestFailure};
use raft::{ClusterStore, DocKey, StoreError};

use crate::crm::{agent_lease_name, ManagerStatus};
use crate::domain::{NodeName, TimingProfile};
use crate::lrm::{agent_lock, AgentLock, LockPort};

/// What the lease task, the watchdog thread and the LRM share.
#[derive(Debug)]
pub struct AgentState {
    /// The lease core's node side.
    pub lease: NodeLease,
    /// The LRM wants the watchdog open.
    pub watchdog_wanted: bool,
    /// A watchdog-mux client is connected (armed).
    pub watchdog_armed: bool,
    /// Why the watchdog cannot protect this node (mux unreachable, hung,
    /// or its device timeout does not fit the profile); `None` when fine.
    pub watchdog_problem: Option<String>,
    /// Log index of the last grant: the LRM acts only on a replica that
    /// has applied it (read-your-writes).
    pub granted_index: u64,
}

/// Shared handle.
pub type SharedAgent = Arc<Mutex<AgentState>>;

/// Locks the shared state; a poisoned lock is taken over (the state is
/// plain data, always consistent between statements).
pub fn lock(s: &SharedAgent) -> MutexGuard<'_, AgentState> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The daemon's monotonic clock for the lease core.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Now, as the lease core counts.
    pub fn now(&self) -> Mono {
        Mono(lease::millis(self.origin.elapsed()))
    }

    /// How long from now until `at` (zero if past).
    pub fn until(&self, at: Mono) -> Duration {
        at.since(self.now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Wake-ups between the tasks, so a hand-off does not wait for the next
/// tick (LRM wants the lease -> lease task takes it -> watchdog thread
/// arms -> LRM starts the service -> worker done -> LRM reports).
#[derive(Debug, Default)]
pub struct Wakers {
    /// Wakes the lease task (the intent changed).
    pub lease: tokio::sync::Notify,
    /// Wakes the LRM (lease taken or lost, watchdog armed, a worker
    /// finished, a new manager status).
    pub lrm: tokio::sync::Notify,
    /// Wakes the watchdog thread (the wish or the lease changed).
    pub watchdog: WatchdogBell,
}

/// A wake-up for the watchdog thread (a std thread, so no tokio Notify).
#[derive(Debug, Default)]
pub struct WatchdogBell {
    rung: Mutex<bool>,
    cond: std::sync::Condvar,
}

impl WatchdogBell {
    /// Wakes the thread.
    pub fn ring(&self) {
        let mut rung = match self.rung.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *rung = true;
        self.cond.notify_one();
    }

    /// Waits until rung or `timeout` passed.
    pub fn wait(&self, timeout: Duration) {
        let rung = match self.rung.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (mut rung, _) = match self.cond.wait_timeout_while(rung, timeout, |r| !*r) {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        *rung = false;
    }
}

/// The shared state for a fresh run of this node's LRM.
pub fn new_agent(node: &NodeName, timing: &TimingProfile) -> SharedAgent {
    // A new run must tell its own grants from those of earlier runs: the
    // start time in ms is unique enough per node (one daemon at a time).
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| lease::millis(d).max(1));
    Arc::new(Mutex::new(AgentState {
        lease: NodeLease::new(
            &agent_lease_name(node.as_str()),
            node.as_str(),
            incarnation,
            timing,
        ),
        watchdog_wanted: false,
        watchdog_armed: false,
        watchdog_problem: None,
        granted_index: 0,
    }))
}

/// What the local replica says of this node's lease, for the lease core.
pub struct ReplicaFacts {
    record: Option<lease::LeaseRecord>,
    fencing_me: bool,
    manager_status_version: u64,
}

impl ReplicaFacts {
    /// Reads them. An unreadable manager status counts as "the CRM is
    /// fencing this node": the node then takes nothing back (fail closed).
    pub fn read(store: &ClusterStore, node: &NodeName, name: &str) -> Self {
        store
            .read_local(|s| {
                let (fencing_me, version) = match s.doc(&DocKey::ManagerStatus) {
                    None => (false, 0),
                    Some(d) => match serde_json::from_str::<ManagerStatus>(&d.value) {
                        Ok(ms) => (ms.fencing(node), d.version),
                        Err(_) => (true, d.version),
                    },
                };
                ReplicaFacts {
                    record: s.lease(name).cloned(),
                    fencing_me,
                    manager_status_version: version,
                }
            })
            .value
    }

    /// The lease core's view.
    pub fn view(&self) -> ReplicaView<'_> {
        ReplicaView {
            record: self.record.as_ref(),
            crm_fencing_me: self.fencing_me,
            manager_status_version: self.manager_status_version,
        }
    }
}

fn failure(e: StoreError) -> RequestFailure {
    match e {
        StoreError::Timeout { .. } => RequestFailure::Timeout,
        other => RequestFailure::Unavailable(other.to_string()),
    }
}

/// Runs the lease task until aborted: sends what the lease core wants,
/// each attempt bounded and addressed to the current leader.
pub async fn run(
    store: ClusterStore,
    node: NodeName,
    timing: TimingProfile,
    agent: SharedAgent,
    clock: Clock,
    wake: Arc<Wakers>,
) {
    let name = agent_lease_name(node.as_str());
    loop {
        let facts = ReplicaFacts::read(&store, &node, &name);
        let (request, wait) = {
            let mut a = lock(&agent);
            let now = clock.now();
            let request = a.lease.poll(now, &facts.view());
            let wait = clock.until(a.lease.next_wakeup(now));
            (request, wait)
        };
        let Some(request) = request else {
            // Re-read the replica now and then even without a wish: a
            // take-back waits for the leader to call the old lease expired.
            let wait = wait.min(timing.lease_renew_interval);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.lease.notified() => {}
            }
            continue;
        };
        let kind = request.command.kind();
        let result = store
            .lease(
                request.command,
                request.manager_status_guard,
                timing.renew_attempt_timeout,
            )
            .await
            .map_err(failure);
        if let Err(e) = &result {
            tracing::debug!(lease = %name, %kind, error = ?e, "lease request failed");
        }
        let event = {
            let mut a = lock(&agent);
            let event = a.lease.on_reply(clock.now(), result);
            // Read-your-writes point of the LRM: the grant it holds now
            // (answered, or adopted from a late commit).
            if let lease::NodeLeaseState::Held { seq, .. } = a.lease.state() {
                a.granted_index = a.granted_index.max(seq);
            }
            event
        };
        match event {
            Some(LeaseEvent::Acquired { seq }) => {
                tracing::info!(target: "ha", "{node}/lrm: got lock '{name}' (fencing token {seq})");
                wake.lrm.notify_one();
                wake.watchdog.ring();
            }
            Some(LeaseEvent::Lost { current }) => {
                tracing::error!(target: "ha", "{node}/lrm: lost lock '{name}' (now {current:?})");
                wake.lrm.notify_one();
                wake.watchdog.ring();
            }
            Some(LeaseEvent::Released) => {
                tracing::info!(target: "ha", "{node}/lrm: released lock '{name}'");
                wake.lrm.notify_one();
                wake.watchdog.ring();
            }
            None => {}
        }
    }
}

/// The LRM's [`LockPort`] in the daemon: a take sets the intent and wakes
/// the lease task (which acquires asynchronously); the answer is how the
/// lease stands now.
pub struct DaemonLockPort<'a> {
    /// The shared state.
    pub agent: &'a SharedAgent,
    /// What the replica says.
    pub facts: &'a ReplicaFacts,
    /// The clock.
    pub clock: Clock,
    /// The node reaches a quorum.
    pub quorate: bool,
    /// Wake-ups.
    pub wake: &'a Wakers,
}

impl LockPort for DaemonLockPort<'_> {
    fn take(&mut self) -> AgentLock {
        let mut a = lock(self.agent);
        if a.lease.intent() != LeaseIntent::Hold {
            a.lease.set_intent(LeaseIntent::Hold);
            self.wake.lease.notify_one();
        }
        agent_lock(&a.lease, self.clock.now(), &self.facts.view(), self.quorate)
    }
}
