//! One measured failover: a demo service runs on some node, a fault hits
//! that node (SIGKILL of its daemon, a hang longer than the lease, or a
//! network partition; its watchdog then kills the node's cgroup, the local
//! stand-in for a reset), and the time until the service's process runs on
//! another node is taken from the processes themselves. Also the other
//! side: a fault of the leader while the service runs on a follower, where
//! the service must run on without interruption.

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

/// What happens to the faulted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of its daemon.
    Kill,
    /// SIGSTOP of its daemon, for longer than the lease ttl, then SIGCONT.
    Hang,
    /// Its network is cut off (two-way), healed after twice the ttl. Needs
    /// a cluster in network namespaces.
    Partition,
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
    run_fault_trial(cluster, name, marker, victim, Fault::Kill)
}

/// Adds `exec:<name>` and moves it to a node of the `victim` kind;
/// returns the node it runs on.
fn place_service(
    cluster: &LocalCluster,
    name: &str,
    marker: u64,
    victim: Victim,
) -> Result<usize, LocalClusterError> {
    let sid = format!("exec:{name}");
    let cmd = format!("cmd={}", marker_command(marker));
    let out = cluster.cli(0, &["add", &sid, "--param", &cmd])?;
    if out.code != 0 {
        return Err(LocalClusterError::Failed(format!(
            "add: {}",
            out.stderr.trim()
        )));
    }
    let locate = cluster.pid_locator();
    let on = wait_until(LIMIT, "the demo service to start", || {
        let pids = marker_pids(marker);
        (pids.len() == 1).then(|| locate(pids[0])).flatten()
    })?;
    let leader = wait_until(LIMIT, "a leader", || cluster.leader())?;
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
        wait_until(LIMIT, "the service on the chosen node", || {
            let pids = marker_pids(marker);
            (pids.len() == 1 && locate(pids[0]) == Some(wanted)).then_some(())
        })?;
    }
    // Let the status settle (started) before the fault.
    let via = (wanted + 1) % cluster.nodes.len();
    wait_until(LIMIT, "the service started", || {
        let e = cluster.service_status(via, &sid)?;
        (e.crm_state.as_deref() == Some("started")).then_some(())
    })?;
    Ok(wanted)
}

/// Upper bound on every wait of a trial.
const LIMIT: Duration = Duration::from_secs(120);

fn inject(cluster: &mut LocalCluster, node: usize, fault: Fault) -> Result<(), LocalClusterError> {
    match fault {
        Fault::Kill => cluster.signal_daemon(node, Signal::SIGKILL),
        Fault::Hang => cluster.pause_daemon(node),
        Fault::Partition => cluster.partition(node),
    }
}

/// How long a hang or a partition lasts: past the lease, so the node's
/// watchdog fires and its lease expires on the new leader.
fn hold(cluster: &LocalCluster) -> Duration {
    cluster.profile().lease_ttl * 2
}

/// Like [`run_trial`], with any [`Fault`] of the service's node.
pub fn run_fault_trial(
    cluster: &mut LocalCluster,
    name: &str,
    marker: u64,
    victim: Victim,
    fault: Fault,
) -> Result<FailoverTrial, LocalClusterError> {
    let on = place_service(cluster, name, marker, victim)?;
    let leader_killed = cluster.leader() == Some(on);
    let watch = ServiceWatch::start(marker, cluster.pid_locator());
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    inject(cluster, on, fault)?;
    let found = wait_until(LIMIT, "the service on another node", || {
        watch.first_elsewhere(killed_at, on)
    });
    if fault != Fault::Kill {
        let left = hold(cluster).saturating_sub(killed_at.elapsed());
        std::thread::sleep(left);
        cluster.heal()?;
    }
    let (back_at, to) = found?;
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

/// What a fault of the leader did to a service running on a follower.
#[derive(Debug, Clone)]
pub struct LeaderFaultTrial {
    /// The follower running the service.
    pub follower: usize,
    /// How long no copy of the service ran while the fault lasted (the
    /// sampling interval of the watch bounds the resolution).
    pub interruption: Duration,
    /// Whether the follower's watchdog reset it.
    pub follower_reset: bool,
    /// Most copies of the service ever seen at once (must be 1).
    pub max_copies: usize,
}

/// Adds `exec:<name>` on a follower, hangs or partitions the leader for
/// twice the lease ttl, and reports whether the follower's service ran on.
pub fn run_leader_fault_trial(
    cluster: &mut LocalCluster,
    name: &str,
    marker: u64,
    fault: Fault,
) -> Result<LeaderFaultTrial, LocalClusterError> {
    let follower = place_service(cluster, name, marker, Victim::Follower)?;
    let leader = wait_until(LIMIT, "a leader", || cluster.leader())?;
    let resets_before = cluster.resets(follower);
    let watch = ServiceWatch::start(marker, cluster.pid_locator());
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    inject(cluster, leader, fault)?;
    std::thread::sleep(hold(cluster));
    cluster.heal()?;
    let ended = Instant::now();
    // Idle time: while no copy ran, between the fault and the heal.
    let obs = watch.observations();
    let mut interruption = Duration::ZERO;
    let mut down_since: Option<Instant> = None;
    for o in &obs {
        let at = o.at.max(started);
        if o.copies.is_empty() {
            down_since.get_or_insert(at);
        } else if let Some(since) = down_since.take() {
            if at > started {
                interruption += at.saturating_duration_since(since);
            }
        }
    }
    if let Some(since) = down_since {
        interruption += ended.saturating_duration_since(since);
    }
    Ok(LeaderFaultTrial {
        follower,
        interruption,
        follower_reset: cluster.resets(follower) > resets_before,
        max_copies: watch.max_copies(),
    })
}

/// Locates the `ha-manager` and `watchdog-mux` binaries next to the running
/// example (target/<profile>/examples/..), building them with cargo first
/// (a no-op when they are current; with the same features as the running
/// example, so it never recompiles what that build made).
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
    // Name the running example too: building an example turns on the
    // dev-dependencies' features (cargo's feature resolver 2), so without it
    // this build would resolve other features for shared crates (nix,
    // bitflags, regex, ...) and recompile most of the tree a second time.
    // With it, everything the `cargo run --example` already built is fresh
    // and only the two binaries are compiled.
    if let Some(name) = exe.file_stem().and_then(|n| n.to_str()) {
        if examples.file_name().and_then(|n| n.to_str()) == Some("examples") {
            cmd.args(["--example", name]);
        }
    }
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
