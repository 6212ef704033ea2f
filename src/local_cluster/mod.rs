//! A cluster of real `ha-manager daemon` processes on loopback, each with
//! its own `watchdog-mux` (test backend) and cgroup: the engine of the
//! `local-cluster` demo, the failover benchmark and the multi-node tests.
//!
//! Every process it starts is ended by PID when the cluster is dropped,
//! and each node's cgroup is emptied and removed. Needs root (cgroups).

pub mod cgroup;
pub mod failover;
pub mod procs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::api::cluster::ClusterStatus;
use crate::api::status::StatusEntry;
use crate::domain::TimingProfile;
use cgroup::NodeCgroup;

/// What can go wrong while running a local cluster.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// A cgroup could not be made or used.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command failed or the cluster did not reach a state in time.
    #[error("{0}")]
    Failed(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalClusterError {
    let what = what.into();
    move |source| LocalClusterError::Io { what, source }
}

/// How to build the cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterOptions {
    /// Number of nodes (node1 .. nodeN).
    pub nodes: usize,
    /// Timing profile name: `fast` or `default`.
    pub timing: &'static str,
    /// Directory for node configs, data and logs (made if missing).
    pub base_dir: PathBuf,
    /// Directory holding the `ha-manager` and `watchdog-mux` binaries.
    pub bin_dir: PathBuf,
    /// Extra TOML lines for every node config (e.g. `shutdown_policy`).
    pub extra_config: String,
    /// Extra environment for every daemon.
    pub daemon_env: Vec<(String, String)>,
}

impl LocalClusterOptions {
    /// `nodes` nodes with profile `timing`, files under `base_dir`,
    /// binaries from `bin_dir`, nothing extra.
    pub fn new(nodes: usize, timing: &'static str, base_dir: PathBuf, bin_dir: PathBuf) -> Self {
        LocalClusterOptions {
            nodes,
            timing,
            base_dir,
            bin_dir,
            extra_config: String::new(),
            daemon_env: Vec::new(),
        }
    }
}

/// One node: its files, its processes and its cgroup.
#[derive(Debug)]
pub struct LocalNode {
    /// `node<k>`.
    pub name: String,
    /// Its directory (config, data, logs, mux socket).
    pub dir: PathBuf,
    /// `host:port` of its HTTP API.
    pub addr: String,
    daemon: Option<Child>,
    mux: Option<Child>,
    cgroup: NodeCgroup,
}

impl LocalNode {
    /// The node config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    /// PID of the running daemon process, if started.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// The node's cgroup.
    pub fn cgroup(&self) -> &NodeCgroup {
        &self.cgroup
    }
}

/// The cluster; dropping it ends every process it started.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, index 0 = node1.
    pub nodes: Vec<LocalNode>,
    options: LocalClusterOptions,
    profile: TimingProfile,
}

/// A CLI run's result.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    fn from(o: Output) -> Self {
        CliOutput {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// How long cluster formation (init, joins, every LRM reporting) may
/// take: generous, test machines are slow and busy.
const FORMATION_LIMIT: Duration = Duration::from_secs(120);

static CLUSTER_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn free_port() -> Result<u16, LocalClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `limit`.
pub fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, LocalClusterError> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(LocalClusterError::Failed(format!(
                "timed out after {limit:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl LocalCluster {
    /// Writes the node configs, starts every mux and daemon, runs
    /// `cluster init` on node1 and `cluster join` on the others, and waits
    /// until every node is a voter and has an LRM status.
    pub fn start(options: LocalClusterOptions) -> Result<Self, LocalClusterError> {
        let profile: TimingProfile = options.timing.parse().map_err(|_| {
            LocalClusterError::Failed(format!("unknown timing profile '{}'", options.timing))
        })?;
        for bin in ["ha-manager", "watchdog-mux"] {
            if !options.bin_dir.join(bin).is_file() {
                return Err(LocalClusterError::Failed(format!(
                    "{} is missing: build it first (cargo build -p ha-manager -p watchdog --bins)",
                    options.bin_dir.join(bin).display()
                )));
            }
        }
        std::fs::create_dir_all(&options.base_dir)
            .map_err(io(format!("creating {}", options.base_dir.display())))?;
        // Unique among the clusters of this process (tests run several).
        let tag = CLUSTER_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nodes = Vec::new();
        for k in 1..=options.nodes {
            let name = format!("node{k}");
            let dir = options.base_dir.join(&name);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            let addr = format!("127.0.0.1:{}", free_port()?);
            let config = format!(
                "node = \"{name}\"\nlisten = \"{addr}\"\ndata_dir = \"{}\"\nwatchdog_socket = \"{}\"\ntiming = \"{}\"\n{}",
                dir.join("data").display(),
                dir.join("mux.sock").display(),
                options.timing,
                options.extra_config
            );
            std::fs::write(dir.join("node.toml"), config)
                .map_err(io(format!("writing {}/node.toml", dir.display())))?;
            let cgroup = NodeCgroup::create(&format!("ha-{tag}-{}-{name}", std::process::id()))?;
            nodes.push(LocalNode {
                name,
                dir,
                addr,
                daemon: None,
                mux: None,
                cgroup,
            });
        }
        let mut cluster = LocalCluster {
            nodes,
            options,
            profile,
        };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i)?;
        }
        let init = cluster.cli(0, &["cluster", "init"])?;
        if init.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "cluster init failed: {}",
                init.stderr
            )));
        }
        let token = init
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("join token: "))
            .ok_or_else(|| LocalClusterError::Failed("cluster init printed no join token".into()))?
            .trim()
            .to_string();
        let first = cluster.nodes[0].addr.clone();
        for i in 1..cluster.nodes.len() {
            wait_until(FORMATION_LIMIT, "cluster join", || {
                let out = cluster
                    .cli(i, &["cluster", "join", &first, "--token", &token])
                    .ok()?;
                (out.code == 0).then_some(())
            })
            .map_err(|e| LocalClusterError::Failed(format!("{e}\n{}", cluster.log_tails(30))))?;
        }
        let n = cluster.nodes.len();
        wait_until(FORMATION_LIMIT, "all nodes voting with an LRM", || {
            let cs = cluster.cluster_status(0).ok()?;
            let voters = cs.members.iter().filter(|m| m.voter).count();
            let st = cluster.status(0).ok()?;
            let lrms = st.iter().filter(|e| e.kind == "lrm").count();
            (voters == n && lrms == n).then_some(())
        })
        .map_err(|e| LocalClusterError::Failed(format!("{e}\n{}", cluster.log_tails(30))))?;
        Ok(cluster)
    }

    /// The timing profile the nodes run.
    pub fn profile(&self) -> TimingProfile {
        self.profile
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.options.bin_dir.join(name)
    }

    fn log_file(path: &Path) -> Result<Stdio, LocalClusterError> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(format!("opening {}", path.display())))?;
        Ok(Stdio::from(f))
    }

    /// Starts node `i`'s mux and daemon (a "boot"): a fresh mux (the marker
    /// of a fired watchdog is cleared, as a reset clears /run) and the
    /// daemon in the node's cgroup.
    pub fn start_node(&mut self, i: usize) -> Result<(), LocalClusterError> {
        self.stop_processes(i);
        let mux_bin = self.bin("watchdog-mux");
        let device_timeout = format!("{}ms", self.profile.device_timeout.as_millis());
        let node = &mut self.nodes[i];
        let _ = std::fs::remove_dir_all(node.dir.join("mux.active"));
        let _ = std::fs::remove_file(node.dir.join("mux.sock"));
        let mut mux = Command::new(mux_bin);
        mux.args(["--backend", "test", "--protect-cgroup"])
            .arg(node.cgroup.path())
            .arg("--socket")
            .arg(node.dir.join("mux.sock"))
            .arg("--active-marker")
            .arg(node.dir.join("mux.active"))
            .args(["--device-timeout", &device_timeout])
            .stdin(Stdio::null())
            .stdout(Self::log_file(&node.dir.join("mux.log"))?)
            .stderr(Self::log_file(&node.dir.join("mux.log"))?);
        std::os::unix::process::CommandExt::process_group(&mut mux, 0);
        node.mux = Some(mux.spawn().map_err(io("starting watchdog-mux"))?);
        let sock = node.dir.join("mux.sock");
        wait_until(Duration::from_secs(10), "the watchdog-mux socket", || {
            sock.exists().then_some(())
        })?;
        self.start_daemon(i)
    }

    /// Starts node `i`'s daemon alone, in the node's cgroup (after a clean
    /// stop, when the mux and the services are still there).
    pub fn start_daemon(&mut self, i: usize) -> Result<(), LocalClusterError> {
        let daemon_bin = self.bin("ha-manager");
        let env = self.options.daemon_env.clone();
        let node = &mut self.nodes[i];
        if let Some(mut old) = node.daemon.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let mut daemon = Command::new(daemon_bin);
        daemon
            .arg("daemon")
            .arg("--config")
            .arg(node.config_path())
            .env("RUST_LOG", "info,openraft=warn")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Self::log_file(&node.dir.join("daemon.log"))?)
            .stderr(Self::log_file(&node.dir.join("daemon.log"))?);
        std::os::unix::process::CommandExt::process_group(&mut daemon, 0);
        let child = daemon.spawn().map_err(io("starting the daemon"))?;
        let pid = child.id();
        node.daemon = Some(child);
        node.cgroup.add(pid)?;
        Ok(())
    }

    /// Waits up to `limit` for node `i`'s daemon to exit; its exit code
    /// (None if it is still running or was killed by a signal).
    pub fn wait_daemon_exit(&mut self, i: usize, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        loop {
            if let Some(c) = self.nodes[i].daemon.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return status.code();
                }
            } else {
                return None;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to node `i`'s daemon.
    pub fn signal_daemon(&self, i: usize, signal: Signal) -> Result<(), LocalClusterError> {
        let pid = self.nodes[i].daemon_pid().ok_or_else(|| {
            LocalClusterError::Failed(format!("{} has no daemon", self.nodes[i].name))
        })?;
        let pid =
            i32::try_from(pid).map_err(|_| LocalClusterError::Failed("pid out of range".into()))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .map_err(|e| LocalClusterError::Failed(format!("kill {pid}: {e}")))
    }

    /// Whether node `i`'s daemon process has ended (reaping it if so).
    pub fn daemon_exited(&mut self, i: usize) -> bool {
        match self.nodes[i].daemon.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }

    /// Ends node `i`'s daemon, its mux and everything in its cgroup (a
    /// power cut), reaping the children.
    pub fn stop_processes(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        for child in [node.daemon.take(), node.mux.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        node.cgroup.kill_members();
    }

    /// The node whose cgroup holds `pid`.
    pub fn node_of_pid(&self, pid: u32) -> Option<usize> {
        self.nodes.iter().position(|n| n.cgroup.contains(pid))
    }

    /// A closure mapping a pid to its node, for [`procs::ServiceWatch`].
    pub fn pid_locator(&self) -> impl Fn(u32) -> Option<usize> + Send + 'static {
        let paths: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|n| n.cgroup.path().join("cgroup.procs"))
            .collect();
        move |pid| {
            paths.iter().position(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.trim().parse::<u32>().ok() == Some(pid))
            })
        }
    }

    /// Runs the `ha-manager` CLI against node `i` (its config file).
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<CliOutput, LocalClusterError> {
        let out = Command::new(self.bin("ha-manager"))
            .args(args)
            .env("HA_MANAGER_CONFIG", self.nodes[i].config_path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(io("running the ha-manager CLI"))?;
        Ok(CliOutput::from(out))
    }

    /// Runs the CLI and parses its JSON output (`--output-format json` is
    /// appended).
    pub fn cli_json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        args: &[&str],
    ) -> Result<T, LocalClusterError> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output-format", "json"]);
        let out = self.cli(i, &all)?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "ha-manager {}: exit {}: {}",
                args.join(" "),
                out.code,
                out.stderr.trim()
            )));
        }
        serde_json::from_str(&out.stdout).map_err(|e| {
            LocalClusterError::Failed(format!("ha-manager {}: bad JSON: {e}", args.join(" ")))
        })
    }

    /// `cluster status` of node `i`.
    pub fn cluster_status(&self, i: usize) -> Result<ClusterStatus, LocalClusterError> {
        self.cli_json(i, &["cluster", "status"])
    }

    /// `status` of node `i`: quorum, master, lrm and service entries.
    pub fn status(&self, i: usize) -> Result<Vec<StatusEntry>, LocalClusterError> {
        self.cli_json(i, &["status"])
    }

    /// The status entry of service `sid` as node `i` reports it.
    pub fn service_status(&self, i: usize, sid: &str) -> Option<StatusEntry> {
        self.status(i)
            .ok()?
            .into_iter()
            .find(|e| e.sid.as_deref() == Some(sid))
    }

    /// The index of the Raft leader as seen by any live node.
    pub fn leader(&self) -> Option<usize> {
        self.nodes.iter().enumerate().find_map(|(i, n)| {
            n.daemon.as_ref()?;
            let cs = self.cluster_status(i).ok()?;
            let leader = cs.leader?;
            self.nodes.iter().position(|m| m.name == leader)
        })
    }

    /// The last `lines` lines of every node's daemon log (for errors).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            for file in ["daemon.log", "mux.log"] {
                let log = std::fs::read_to_string(n.dir.join(file)).unwrap_or_default();
                let all: Vec<&str> = log.lines().collect();
                out.push_str(&format!("----- {} {file} -----\n", n.name));
                for l in &all[all.len().saturating_sub(lines)..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_processes(i);
        }
    }
}
