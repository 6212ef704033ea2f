//! One measured failover: a demo service runs on some node, that node's
//! daemon is SIGKILLed (its watchdog then kills the node's cgroup, the
//! local stand-in for a reset), and the time until the service's process
//! runs on another node is taken from the processes themselves.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::procs::{marker_command, marker_pids, ServiceWatch};
use super::{wait_until, LocalCluster, LocalClusterError};

/// Which node to kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The service's node while it is also the Raft leader.
    Leader,
    /// The service's node while it is a follower.
    Follower,
}

/// What one failover took.
#[derive(Debug, Clone)]
pub struct FailoverTrial {
    /// Index of the killed node.
    pub from: usize,
    /// Index of the node the service came back on.
    pub to: usize,
    /// Whether the killed node was the Raft leader.
    pub leader_killed: bool,
    /// SIGKILL to the old copy's end (the node's watchdog firing).
    pub old_copy_gone: Duration,
    /// SIGKILL to the new copy running.
    pub recovered: Duration,
    /// Most copies of the service ever seen at once (must be 1).
    pub max_copies: usize,
}

/// Adds `exec:<name>` (a `sleep <marker>` process), moves it to a node of
/// the `victim` kind, kills that node and measures the failover.
pub fn run_trial(
    cluster: &mut LocalCluster,
    name: &str,
    marker: u64,
    victim: Victim,
) -> Result<FailoverTrial, LocalClusterError> {
    let sid = format!("exec:{name}");
    let cmd = format!("cmd={}", marker_command(marker));
    let out = cluster.cli(0, &["add", &sid, "--param", &cmd])?;
    if out.code != 0 {
        return Err(LocalClusterError::Failed(format!(
            "add: {}",
            out.stderr.trim()
        )));
    }
    let limit = Duration::from_secs(120);
    let locate = cluster.pid_locator();
    let running_on = |what: &str| {
        wait_until(limit, what, || {
            let pids = marker_pids(marker);
            (pids.len() == 1).then(|| locate(pids[0])).flatten()
        })
    };
    let mut on = running_on("the demo service to start")?;
    let leader = wait_until(limit, "a leader", || cluster.leader())?;
    let wanted = match victim {
        Victim::Leader => leader,
        Victim::Follower => (0..cluster.nodes.len())
            .find(|i| *i != leader)
            .unwrap_or(leader),
    };
    if on != wanted {
        let target = cluster.nodes[wanted].name.clone();
        let out = cluster.cli(0, &["migrate", &sid, &target])?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "migrate: {}",
                out.stderr.trim()
            )));
        }
        wait_until(limit, "the service on the chosen node", || {
            let pids = marker_pids(marker);
            (pids.len() == 1 && locate(pids[0]) == Some(wanted)).then_some(())
        })?;
        // Let the status settle (started) before the cut.
        let via = (wanted + 1) % cluster.nodes.len();
        wait_until(limit, "the service started", || {
            let e = cluster.service_status(via, &sid)?;
            (e.crm_state.as_deref() == Some("started")).then_some(())
        })?;
        on = wanted;
    }
    let leader_killed = cluster.leader() == Some(on);
    let watch = ServiceWatch::start(marker, cluster.pid_locator());
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    cluster.signal_daemon(on, Signal::SIGKILL)?;
    let (back_at, to) = wait_until(limit, "the service on another node", || {
        watch.first_elsewhere(killed_at, on)
    })?;
    let gone_at = watch.first_gone_from(killed_at, on).unwrap_or(back_at);
    Ok(FailoverTrial {
        from: on,
        to,
        leader_killed,
        old_copy_gone: gone_at.saturating_duration_since(killed_at),
        recovered: back_at.saturating_duration_since(killed_at),
        max_copies: watch.max_copies(),
    })
}

/// Locates the `ha-manager` and `watchdog-mux` binaries next to the running
/// example (target/<profile>/examples/..), building them with cargo first
/// (a no-op when they are current).
pub fn built_binaries() -> Result<std::path::PathBuf, LocalClusterError> {
    let exe = std::env::current_exe().map_err(|e| LocalClusterError::Io {
        what: "locating the running program".into(),
        source: e,
    })?;
    let examples = exe
        .parent()
        .ok_or_else(|| LocalClusterError::Failed("no parent directory".into()))?;
    let profile_dir = examples
        .parent()
        .ok_or_else(|| LocalClusterError::Failed("no target directory".into()))?
        .to_path_buf();
    let release = profile_dir.file_name().and_then(|n| n.to_str()) == Some("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "ha-manager", "-p", "watchdog", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd.status().map_err(|e| LocalClusterError::Io {
        what: "running cargo build".into(),
        source: e,
    })?;
    if !status.success() {
        return Err(LocalClusterError::Failed(
            "cargo build of the binaries failed".into(),
        ));
    }
    Ok(profile_dir)
}
