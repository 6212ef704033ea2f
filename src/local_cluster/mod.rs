//! A cluster of real `ha-manager daemon` processes, each with its own
//! `watchdog-mux` (test backend) and cgroup: the engine of the
//! `local-cluster` demo, the failover benchmark and the multi-node tests.
//!
//! The nodes run on loopback (one port each), or, with
//! [`LocalClusterOptions::netns`], each in a network namespace of its own
//! (see [`netns`]), which the fault primitives ([`LocalCluster::partition`]
//! and friends) need.
//!
//! Every process it starts is ended by PID when the cluster is dropped,
//! each node's cgroup is emptied and removed, and the namespaces and the
//! bridge are deleted. Needs root (cgroups, namespaces).

pub mod cgroup;
pub mod failover;
pub mod heartbeat;
pub mod netns;
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
    /// Setting up or changing the nodes' network failed.
    #[error("network: {0}")]
    Net(String),
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
    /// Run each node (mux, daemon, services) in a network namespace of its
    /// own, with its own address on a bridge, instead of on loopback.
    /// Needed by the network faults; needs `ip` and `iptables`.
    pub netns: bool,
    /// Watchdog-mux device timeouts that differ from the profile's, by
    /// node index (to test a mux that does not fit the profile).
    pub mux_device_timeout: std::collections::BTreeMap<usize, Duration>,
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
            netns: false,
            mux_device_timeout: std::collections::BTreeMap::new(),
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
    daemon_paused: bool,
    mux_paused: bool,
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

    /// PID of the running watchdog-mux, if started.
    pub fn mux_pid(&self) -> Option<u32> {
        self.mux.as_ref().map(Child::id)
    }
}

/// The cluster; dropping it ends every process it started.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, index 0 = node1.
    pub nodes: Vec<LocalNode>,
    options: LocalClusterOptions,
    profile: TimingProfile,
    // Dropped after the nodes (whose processes are gone by then).
    net: Option<netns::ClusterNet>,
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
        for bin in ["ha-manager", "watchdog-mux"] {
            if !options.bin_dir.join(bin).is_file() {
                return Err(LocalClusterError::Failed(format!(
                    "{} is missing: build it first (cargo build -p ha-manager -p watchdog --bins)",
                    options.bin_dir.join(bin).display()
                )));
            }
        }
        let mut cluster = Self::prepare(options)?;
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i)?;
        }
        cluster.form()?;
        Ok(cluster)
    }

    /// Makes each node's directory, config file (`node.toml`) and cgroup,
    /// and starts nothing: for callers that boot the nodes and form the
    /// cluster themselves (the deploy guide's test follows the guide's
    /// steps, with [`LocalCluster::start_mux`] and
    /// [`LocalCluster::start_daemon`]).
    pub fn prepare(options: LocalClusterOptions) -> Result<Self, LocalClusterError> {
        let profile: TimingProfile = options.timing.parse().map_err(|_| {
            LocalClusterError::Failed(format!("unknown timing profile '{}'", options.timing))
        })?;
        std::fs::create_dir_all(&options.base_dir)
            .map_err(io(format!("creating {}", options.base_dir.display())))?;
        // Unique among the clusters of this process (tests run several).
        let tag = CLUSTER_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let net = if options.netns {
            Some(netns::ClusterNet::create(tag, options.nodes)?)
        } else {
            None
        };
        let mut nodes = Vec::new();
        for k in 1..=options.nodes {
            let name = format!("node{k}");
            let dir = options.base_dir.join(&name);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            let addr = match &net {
                Some(net) => format!("{}:{}", net.node(k - 1).ip, netns::NODE_PORT),
                None => format!("127.0.0.1:{}", free_port()?),
            };
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
                daemon_paused: false,
                mux_paused: false,
            });
        }
        Ok(LocalCluster {
            nodes,
            options,
            profile,
            net,
        })
    }

    /// `cluster init` on node1, `cluster join` on the others, then waits
    /// until every node is a voter and has an LRM status.
    fn form(&self) -> Result<(), LocalClusterError> {
        let init = self.cli(0, &["cluster", "init"])?;
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
        let first = self.nodes[0].addr.clone();
        for i in 1..self.nodes.len() {
            wait_until(FORMATION_LIMIT, "cluster join", || {
                let out = self
                    .cli(i, &["cluster", "join", &first, "--token", &token])
                    .ok()?;
                (out.code == 0).then_some(())
            })
            .map_err(|e| LocalClusterError::Failed(format!("{e}\n{}", self.log_tails(30))))?;
        }
        let n = self.nodes.len();
        wait_until(FORMATION_LIMIT, "all nodes voting with an LRM", || {
            let cs = self.cluster_status(0).ok()?;
            let voters = cs.members.iter().filter(|m| m.voter).count();
            let st = self.status(0).ok()?;
            let lrms = st.iter().filter(|e| e.kind == "lrm").count();
            (voters == n && lrms == n).then_some(())
        })
        .map_err(|e| LocalClusterError::Failed(format!("{e}\n{}", self.log_tails(30))))?;
        Ok(())
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
        self.start_mux(i)?;
        self.start_daemon(i)
    }

    /// Starts node `i`'s mux alone (test backend protecting the node's
    /// cgroup) and waits for its socket; node `i` must have no mux running.
    pub fn start_mux(&mut self, i: usize) -> Result<(), LocalClusterError> {
        let mux_bin = self.bin("watchdog-mux");
        let device_timeout = self
            .options
            .mux_device_timeout
            .get(&i)
            .copied()
            .unwrap_or(self.profile.device_timeout);
        let device_timeout = format!("{}ms", device_timeout.as_millis());
        let mut mux = self.command_on_node(i, &mux_bin);
        let node = &mut self.nodes[i];
        let _ = std::fs::remove_dir_all(node.dir.join("mux.active"));
        let _ = std::fs::remove_file(node.dir.join("mux.sock"));
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
        // Its own process group: the mux and its test watchdog device
        // process, which a power cut (stop_processes) kills together.
        std::os::unix::process::CommandExt::process_group(&mut mux, 0);
        node.mux = Some(mux.spawn().map_err(io("starting watchdog-mux"))?);
        node.mux_paused = false;
        let sock = node.dir.join("mux.sock");
        wait_until(Duration::from_secs(10), "the watchdog-mux socket", || {
            sock.exists().then_some(())
        })?;
        Ok(())
    }

    /// Starts node `i`'s daemon alone, in the node's cgroup (after a clean
    /// stop, when the mux and the services are still there).
    pub fn start_daemon(&mut self, i: usize) -> Result<(), LocalClusterError> {
        let daemon_bin = self.bin("ha-manager");
        let env = self.options.daemon_env.clone();
        let mut daemon = self.command_on_node(i, &daemon_bin);
        let node = &mut self.nodes[i];
        if let Some(mut old) = node.daemon.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        node.daemon_paused = false;
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

    /// Ends node `i`'s daemon, its mux (with the mux's process group: its
    /// test watchdog device process) and everything in its cgroup (a power
    /// cut), reaping the children.
    pub fn stop_processes(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut mux) = node.mux.take() {
            // The mux leads its own process group (see start_node).
            if let Ok(pgid) = i32::try_from(mux.id()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = mux.kill();
            let _ = mux.wait();
        }
        if let Some(mut daemon) = node.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        node.daemon_paused = false;
        node.mux_paused = false;
        node.cgroup.kill_members();
    }

    /// A command that runs `program` on node `i`: in the node's network
    /// namespace when the cluster has them (`nsenter` execs the program,
    /// so the child's pid is the program's), else as is.
    fn command_on_node(&self, i: usize, program: &Path) -> Command {
        match &self.net {
            Some(net) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", net.node(i).ns_path().display()))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The nodes' network, when they run in namespaces.
    pub fn net(&self) -> Option<&netns::ClusterNet> {
        self.net.as_ref()
    }

    fn net_or_err(&self) -> Result<&netns::ClusterNet, LocalClusterError> {
        self.net.as_ref().ok_or_else(|| {
            LocalClusterError::Net("network faults need LocalClusterOptions::netns".into())
        })
    }

    /// Node `i` can neither send to nor receive from any other node, until
    /// [`LocalCluster::heal`]. The test process still reaches its API.
    pub fn partition(&self, i: usize) -> Result<(), LocalClusterError> {
        self.net_or_err()?.partition(i)
    }

    /// Packets from node `from` to node `to` are dropped; the other
    /// direction flows (until [`LocalCluster::heal`]).
    pub fn partition_one_way(&self, from: usize, to: usize) -> Result<(), LocalClusterError> {
        self.net_or_err()?.partition_one_way(from, to)
    }

    /// Undoes every fault: removes every packet filter (netns mode) and
    /// resumes every paused daemon and mux.
    pub fn heal(&mut self) -> Result<(), LocalClusterError> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].daemon_paused {
                self.resume_daemon(i)?;
            }
            if self.nodes[i].mux_paused {
                self.resume_mux(i)?;
            }
        }
        match &self.net {
            Some(net) => net.heal(),
            None => Ok(()),
        }
    }

    fn signal_pid(pid: Option<u32>, what: &str, signal: Signal) -> Result<(), LocalClusterError> {
        let pid = pid.ok_or_else(|| LocalClusterError::Failed(format!("{what} is not running")))?;
        let pid =
            i32::try_from(pid).map_err(|_| LocalClusterError::Failed("pid out of range".into()))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .map_err(|e| LocalClusterError::Failed(format!("kill -{signal} {pid} ({what}): {e}")))
    }

    /// Freezes node `i`'s daemon (SIGSTOP; its services and mux go on).
    pub fn pause_daemon(&mut self, i: usize) -> Result<(), LocalClusterError> {
        self.signal_daemon(i, Signal::SIGSTOP)?;
        self.nodes[i].daemon_paused = true;
        Ok(())
    }

    /// Resumes node `i`'s daemon (SIGCONT; a no-op if it was reset).
    pub fn resume_daemon(&mut self, i: usize) -> Result<(), LocalClusterError> {
        self.nodes[i].daemon_paused = false;
        if self.daemon_exited(i) {
            return Ok(());
        }
        self.signal_daemon(i, Signal::SIGCONT)
    }

    /// Freezes node `i`'s watchdog-mux (SIGSTOP of the mux process only:
    /// the test watchdog device it feeds keeps counting).
    pub fn pause_mux(&mut self, i: usize) -> Result<(), LocalClusterError> {
        let what = format!("{}'s watchdog-mux", self.nodes[i].name);
        Self::signal_pid(self.nodes[i].mux_pid(), &what, Signal::SIGSTOP)?;
        self.nodes[i].mux_paused = true;
        Ok(())
    }

    /// Resumes node `i`'s watchdog-mux (SIGCONT).
    pub fn resume_mux(&mut self, i: usize) -> Result<(), LocalClusterError> {
        self.nodes[i].mux_paused = false;
        let exited = match self.nodes[i].mux.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        };
        if exited {
            return Ok(());
        }
        let what = format!("{}'s watchdog-mux", self.nodes[i].name);
        Self::signal_pid(self.nodes[i].mux_pid(), &what, Signal::SIGCONT)
    }

    /// SIGKILLs node `i`'s daemon only (its mux and services stay).
    pub fn kill_daemon(&mut self, i: usize) -> Result<(), LocalClusterError> {
        self.signal_daemon(i, Signal::SIGKILL)?;
        self.nodes[i].daemon_paused = false;
        // Reap it: the exit is immediate.
        let _ = self.wait_daemon_exit(i, Duration::from_secs(10));
        Ok(())
    }

    /// A power cut of node `i`: SIGKILL of its daemon, its mux with the
    /// test watchdog device, and every service in its cgroup.
    pub fn kill_node(&mut self, i: usize) {
        self.stop_processes(i);
    }

    /// A clean stop of node `i`'s daemon: SIGTERM, then waits up to
    /// `limit` for it to exit. Its exit code (an error if it did not exit
    /// in time or died of a signal).
    pub fn stop_daemon_clean(
        &mut self,
        i: usize,
        limit: Duration,
    ) -> Result<i32, LocalClusterError> {
        self.signal_daemon(i, Signal::SIGTERM)?;
        let end = Instant::now() + limit;
        loop {
            let status = match self.nodes[i].daemon.as_mut() {
                None => return Err(LocalClusterError::Failed("no daemon".into())),
                Some(c) => c.try_wait().map_err(io("waiting for the daemon"))?,
            };
            if let Some(status) = status {
                return status.code().ok_or_else(|| {
                    LocalClusterError::Failed(format!(
                        "{}'s daemon died of a signal after SIGTERM: {status}",
                        self.nodes[i].name
                    ))
                });
            }
            if Instant::now() >= end {
                return Err(LocalClusterError::Failed(format!(
                    "{}'s daemon did not exit within {limit:?} of SIGTERM",
                    self.nodes[i].name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How often node `i`'s test watchdog has fired (reset the node) so
    /// far, from its mux log (kept across restarts).
    pub fn resets(&self, i: usize) -> usize {
        std::fs::read_to_string(self.nodes[i].dir.join("mux.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("TEST BACKEND FIRED"))
            .count()
    }

    /// Whether node `i`'s mux process has ended (reaping it if so).
    pub fn mux_exited(&mut self, i: usize) -> bool {
        match self.nodes[i].mux.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }

    /// The heartbeat file of heartbeat service `name`.
    pub fn heartbeat_path(&self, name: &str) -> PathBuf {
        self.options.base_dir.join(format!("heartbeat-{name}.log"))
    }

    /// Adds `exec:<name>`, a heartbeat service (see [`heartbeat`]) writing
    /// to [`LocalCluster::heartbeat_path`], through node `via`'s CLI, with
    /// `extra` arguments for `ha-manager add`. Returns the SID.
    pub fn add_heartbeat_service(
        &self,
        via: usize,
        name: &str,
        extra: &[&str],
    ) -> Result<String, LocalClusterError> {
        let sid = format!("exec:{name}");
        let cmd = format!("cmd={}", heartbeat::command(&self.heartbeat_path(name)));
        let mut args = vec!["add", sid.as_str(), "--param", cmd.as_str()];
        args.extend_from_slice(extra);
        let out = self.cli(via, &args)?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "ha-manager add {sid}: exit {}: {}",
                out.code,
                out.stderr.trim()
            )));
        }
        Ok(sid)
    }

    /// What heartbeat service `name` wrote so far.
    pub fn heartbeats(&self, name: &str) -> Result<heartbeat::Heartbeats, LocalClusterError> {
        let path = self.heartbeat_path(name);
        heartbeat::Heartbeats::read(&path).map_err(io(format!("reading {}", path.display())))
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

    /// Runs the CLI against node `i` like [`LocalCluster::cli`], but kills
    /// it (by pid) if it has not finished within `limit` (a paused or cut
    /// off node answers nothing).
    pub fn cli_within(
        &self,
        i: usize,
        args: &[&str],
        limit: Duration,
    ) -> Result<CliOutput, LocalClusterError> {
        let child = Command::new(self.bin("ha-manager"))
            .args(args)
            .env("HA_MANAGER_CONFIG", self.nodes[i].config_path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("running the ha-manager CLI"))?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(limit) {
            Ok(out) => out.map_err(io("running the ha-manager CLI"))?,
            Err(_) => {
                Self::signal_pid(Some(pid), "the ha-manager CLI", Signal::SIGKILL)?;
                let _ = waiter.join();
                return Err(LocalClusterError::Failed(format!(
                    "ha-manager {} on {} took longer than {limit:?}",
                    args.join(" "),
                    self.nodes[i].name
                )));
            }
        };
        let _ = waiter.join();
        Ok(CliOutput::from(out))
    }

    /// `status` of node `i`, given at most `limit`.
    pub fn status_within(
        &self,
        i: usize,
        limit: Duration,
    ) -> Result<Vec<StatusEntry>, LocalClusterError> {
        let out = self.cli_within(i, &["status", "--output-format", "json"], limit)?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "ha-manager status on {}: exit {}: {}",
                self.nodes[i].name,
                out.code,
                out.stderr.trim()
            )));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| LocalClusterError::Failed(format!("ha-manager status: bad JSON: {e}")))
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
