//! The test backend: a software watchdog that SIGKILLs protected processes.
//!
//! For machines without a watchdog device (CI, laptops, the local demo).
//! It has the device's semantics — armed from creation, fires when not fed
//! for its timeout — but "firing" kills a process group and/or the members
//! of a cgroup with SIGKILL instead of resetting the machine. It is NOT
//! safe for production: if the mux process itself dies, nothing fires.

use crate::backend::{Backend, BackendError};
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgrp, Pid};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What the test backend kills when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectTarget {
    /// Every process in this process group.
    ProcessGroup(i32),
    /// Every process in this cgroup (v2: via `cgroup.kill` when present).
    Cgroup(PathBuf),
}

impl std::fmt::Display for ProtectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtectTarget::ProcessGroup(pgid) => write!(f, "process group {pgid}"),
            ProtectTarget::Cgroup(path) => write!(f, "cgroup {}", path.display()),
        }
    }
}

/// Errors of the test backend.
#[derive(Debug, Error)]
pub enum TestBackendError {
    /// No protect target was configured.
    #[error("test backend needs at least one target (--protect-pgid or --protect-cgroup)")]
    NoTarget,
    /// A process group id that would hit unrelated processes.
    #[error("test backend: refusing process group {0}: must be greater than 1")]
    InvalidProcessGroup(i32),
    /// The process group does not exist.
    #[error("test backend: process group {pgid} does not exist: {errno}")]
    NoSuchProcessGroup {
        /// The group.
        pgid: i32,
        /// The errno of `kill(-pgid, 0)`.
        errno: Errno,
    },
    /// The cgroup directory is not usable.
    #[error("test backend: {path} is not a cgroup directory (no cgroup.procs)")]
    NotACgroup {
        /// The path.
        path: PathBuf,
    },
    /// The timer thread could not be started.
    #[error("test backend: cannot start the timer thread: {0}")]
    SpawnTimer(std::io::Error),
    /// The backend already fired; the node counts as reset.
    #[error("test backend already fired: the protected processes were killed")]
    AlreadyFired,
}

#[derive(Debug)]
struct TimerState {
    deadline: Instant,
    disarmed: bool,
    fire_now: bool,
    fired: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<TimerState>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, TimerState> {
        // A panic elsewhere must not stop the timer from firing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The software watchdog backend. See the module docs.
#[derive(Debug)]
pub struct TestBackend {
    shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    timeout: Duration,
    targets: Vec<ProtectTarget>,
}

impl TestBackend {
    /// Validates the targets and starts the software timer (armed now).
    pub fn start(timeout: Duration, targets: Vec<ProtectTarget>) -> Result<Self, TestBackendError> {
        if targets.is_empty() {
            return Err(TestBackendError::NoTarget);
        }
        for target in &targets {
            validate(target)?;
        }
        tracing::error!(
            "TEST BACKEND: NOT SAFE FOR PRODUCTION. No watchdog device is used; on expiry the \
             protected processes ({}) are SIGKILLed, the machine is NOT reset, and nothing \
             fires if watchdog-mux itself dies.",
            describe_targets(&targets)
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(TimerState {
                deadline: Instant::now() + timeout,
                disarmed: false,
                fire_now: false,
                fired: false,
            }),
            wake: Condvar::new(),
        });
        let timer = {
            let shared = Arc::clone(&shared);
            let targets = targets.clone();
            std::thread::Builder::new()
                .name("test-watchdog".into())
                .spawn(move || run_timer(&shared, &targets))
                .map_err(TestBackendError::SpawnTimer)?
        };
        Ok(TestBackend {
            shared,
            timer: Some(timer),
            timeout,
            targets,
        })
    }

    fn stop_timer(&mut self, fire: bool) {
        {
            let mut state = self.shared.lock();
            if fire {
                state.fire_now = true;
            } else {
                state.disarmed = true;
            }
        }
        self.shared.wake.notify_all();
        if let Some(timer) = self.timer.take() {
            if timer.join().is_err() {
                tracing::error!("test backend timer thread panicked");
            }
        }
    }
}

fn validate(target: &ProtectTarget) -> Result<(), TestBackendError> {
    match target {
        ProtectTarget::ProcessGroup(pgid) => {
            // kill(-1) would signal every process we may signal.
            if *pgid <= 1 {
                return Err(TestBackendError::InvalidProcessGroup(*pgid));
            }
            killpg(Pid::from_raw(*pgid), None)
                .map_err(|errno| TestBackendError::NoSuchProcessGroup { pgid: *pgid, errno })?;
            if getpgrp().as_raw() == *pgid {
                tracing::warn!(
                    pgid,
                    "watchdog-mux is itself in the protected process group: it dies with it when \
                     the test backend fires"
                );
            }
            Ok(())
        }
        ProtectTarget::Cgroup(path) => {
            if path.join("cgroup.procs").is_file() {
                Ok(())
            } else {
                Err(TestBackendError::NotACgroup { path: path.clone() })
            }
        }
    }
}

fn describe_targets(targets: &[ProtectTarget]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_timer(shared: &Shared, targets: &[ProtectTarget]) {
    let mut state = shared.lock();
    loop {
        if state.disarmed {
            return;
        }
        let now = Instant::now();
        if state.fire_now || now >= state.deadline {
            state.fired = true;
            drop(state);
            fire(targets);
            return;
        }
        let wait = state.deadline - now;
        state = shared
            .wake
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Kills every target with SIGKILL, logging loudly.
fn fire(targets: &[ProtectTarget]) {
    tracing::error!(
        "TEST BACKEND FIRED: watchdog not fed, killing {} with SIGKILL",
        describe_targets(targets)
    );
    for target in targets {
        match target {
            ProtectTarget::ProcessGroup(pgid) => kill_process_group(*pgid),
            ProtectTarget::Cgroup(path) => kill_cgroup(path),
        }
    }
}

fn kill_process_group(pgid: i32) {
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) => tracing::error!(pgid, "test backend: SIGKILL sent to process group"),
        Err(Errno::ESRCH) => tracing::warn!(pgid, "test backend: process group already gone"),
        Err(errno) => tracing::error!(pgid, %errno, "test backend: cannot kill process group"),
    }
}

fn kill_cgroup(path: &Path) {
    let kill_file = path.join("cgroup.kill");
    if kill_file.is_file() {
        match std::fs::write(&kill_file, "1") {
            Ok(()) => {
                tracing::error!(cgroup = %path.display(), "test backend: cgroup.kill written");
                return;
            }
            Err(err) => tracing::error!(
                cgroup = %path.display(),
                %err,
                "test backend: cgroup.kill failed; killing members one by one"
            ),
        }
    }
    // Without cgroup.kill, members may fork while we kill: repeat until the
    // cgroup is empty, a bounded number of times.
    for _ in 0..50 {
        let procs = match std::fs::read_to_string(path.join("cgroup.procs")) {
            Ok(procs) => procs,
            Err(err) => {
                tracing::error!(cgroup = %path.display(), %err, "test backend: cannot read cgroup.procs");
                return;
            }
        };
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            tracing::error!(cgroup = %path.display(), "test backend: cgroup members killed");
            return;
        }
        for pid in pids {
            if pid == std::process::id() as i32 {
                continue;
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::error!(cgroup = %path.display(), "test backend: cgroup still has members after repeated SIGKILL");
}

impl Backend for TestBackend {
    fn describe(&self) -> String {
        format!(
            "TEST backend (NOT SAFE FOR PRODUCTION): software watchdog, timeout {:?}, kills {}",
            self.timeout,
            describe_targets(&self.targets)
        )
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn keepalive(&mut self) -> Result<(), BackendError> {
        let mut state = self.shared.lock();
        if state.fired || state.fire_now {
            return Err(TestBackendError::AlreadyFired.into());
        }
        state.deadline = Instant::now() + self.timeout;
        Ok(())
    }

    fn disarm(mut self: Box<Self>) -> Result<(), BackendError> {
        self.stop_timer(false);
        if self.shared.lock().fired {
            return Err(TestBackendError::AlreadyFired.into());
        }
        Ok(())
    }

    fn abandon(mut self: Box<Self>) {
        // The software timer dies with this process, so fire now: that is
        // what the hardware would do after its timeout.
        self.stop_timer(true);
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if self.timer.is_some() {
            // Dropped without disarm(): like closing a device without the
            // magic byte, which resets the node.
            self.stop_timer(true);
        }
    }
}
