//! The watchdog-mux client on a thread of its own.
//!
//! Every call to the mux blocks (connect, keepalive, release), and a hung
//! mux would block it for the client's reply timeout: it must never run on
//! the async runtime, where it would starve Raft. This thread asks the
//! lease core what to do ([`lease::NodeLease::watchdog_action`]) every
//! `feed_interval`, or when rung, and does it. A mux that does not answer,
//! refuses, or whose device timeout does not fit the profile makes the
//! node stop renewing its lease (`set_watchdog_failed`): it cannot be
//! protected, so the cluster must be able to take its services over one
//! ttl later, and it starts nothing meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lease::WatchdogAction;
use watchdog::WatchdogClient;

use super::agent_lease::{lock, Clock, SharedAgent, Wakers};
use crate::domain::TimingProfile;

/// How long a refused or broken watchdog waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Handle of the running thread.
pub struct WatchdogThread {
    stop: Arc<AtomicBool>,
    wake: Arc<Wakers>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WatchdogThread {
    /// Starts the thread.
    pub fn start(
        socket: PathBuf,
        timing: TimingProfile,
        agent: SharedAgent,
        clock: Clock,
        wake: Arc<Wakers>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, wake2) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || run(socket, timing, agent, clock, wake2, stop2))?;
        Ok(WatchdogThread {
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// Stops the thread. An armed client is dropped without the magic
    /// close: the mux then resets the node. The daemon stops this thread
    /// only after the LRM released the watchdog.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.watchdog.ring();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Records whether the client is connected, here and in the lease core
/// (which takes an unguarded lease back only under an armed watchdog).
fn set_armed(agent: &SharedAgent, armed: bool) {
    let mut a = lock(agent);
    a.watchdog_armed = armed;
    a.lease.set_watchdog_armed(armed);
}

fn set_problem(agent: &SharedAgent, problem: Option<String>) {
    let mut a = lock(agent);
    a.lease.set_watchdog_failed(problem.is_some());
    a.watchdog_problem = problem;
}

fn run(
    socket: PathBuf,
    timing: TimingProfile,
    agent: SharedAgent,
    clock: Clock,
    wake: Arc<Wakers>,
    stop: Arc<AtomicBool>,
) {
    let mut client: Option<WatchdogClient> = None;
    let mut retry_at: Option<Instant> = None;
    set_armed(&agent, false);
    while !stop.load(Ordering::Relaxed) {
        let action = {
            let a = lock(&agent);
            a.lease
                .watchdog_action(clock.now(), a.watchdog_wanted, client.is_some())
        };
        // A broken watchdog is probed (connect, check, clean release) now
        // and then; only a good probe lets the lease be renewed again, and
        // only a valid lease lets it be armed for real.
        let probe_due = {
            let a = lock(&agent);
            a.watchdog_problem.is_some()
                && a.watchdog_wanted
                && client.is_none()
                && retry_at.is_none_or(|t| Instant::now() >= t)
        };
        if probe_due {
            match arm(&socket, &timing).and_then(|c| c.release().map_err(|e| e.to_string())) {
                Ok(()) => {
                    tracing::info!(socket = %socket.display(), "watchdog-mux answers again");
                    set_problem(&agent, None);
                    retry_at = None;
                    wake.lease.notify_one();
                }
                Err(problem) => {
                    set_problem(&agent, Some(problem));
                    retry_at = Some(Instant::now() + RETRY_AFTER);
                }
            }
        }
        match action {
            WatchdogAction::Arm => match arm(&socket, &timing) {
                Ok(c) => {
                    tracing::info!(socket = %socket.display(), id = c.id(), "watchdog armed");
                    client = Some(c);
                    retry_at = None;
                    set_problem(&agent, None);
                    set_armed(&agent, true);
                    wake.lrm.notify_one();
                    wake.lease.notify_one();
                }
                Err(problem) => {
                    tracing::error!(socket = %socket.display(), "cannot arm the watchdog: {problem}; not running services");
                    retry_at = Some(Instant::now() + RETRY_AFTER);
                    set_problem(&agent, Some(problem));
                    wake.lease.notify_one();
                }
            },
            WatchdogAction::Feed => {
                if let Some(c) = client.as_mut() {
                    if let Err(e) = c.keepalive() {
                        // The client is broken: drop it (the mux counts
                        // that as a failure and the node resets) and stop
                        // renewing, so the cluster can take over.
                        tracing::error!(error = %e, "watchdog keepalive failed: not renewing the lease any more");
                        client = None;
                        set_armed(&agent, false);
                        set_problem(&agent, Some(format!("keepalive failed: {e}")));
                        retry_at = Some(Instant::now() + RETRY_AFTER);
                        wake.lease.notify_one();
                        wake.lrm.notify_one();
                    }
                }
            }
            WatchdogAction::Release => {
                if let Some(c) = client.take() {
                    match c.release() {
                        Ok(()) => tracing::info!("watchdog released"),
                        Err(e) => tracing::warn!(error = %e, "watchdog release failed"),
                    }
                }
                set_armed(&agent, false);
                wake.lrm.notify_one();
            }
            WatchdogAction::Nothing => {}
        }
        // A problem with no wish to arm clears itself (nothing to protect).
        {
            let a = lock(&agent);
            let idle = !a.watchdog_wanted && client.is_none() && a.watchdog_problem.is_some();
            drop(a);
            if idle {
                set_problem(&agent, None);
                retry_at = None;
            }
        }
        wake.watchdog.wait(timing.feed_interval);
    }
    if client.is_some() {
        tracing::error!("watchdog thread stopped while armed: the node will be reset");
    }
}

/// Connects (arms) and checks the mux's device timeout against the profile.
fn arm(socket: &std::path::Path, timing: &TimingProfile) -> Result<WatchdogClient, String> {
    let client =
        WatchdogClient::connect(socket, timing.mux_client_timeout).map_err(|e| e.to_string())?;
    if let Err(e) = timing.check_mux_device_timeout(client.device_timeout()) {
        // Never used: release it cleanly, nothing ran under it.
        let _ = client.release();
        return Err(e.to_string());
    }
    Ok(client)
}
