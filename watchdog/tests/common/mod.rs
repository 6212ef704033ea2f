//! Helpers for the integration tests: a real watchdog-mux subprocess and a
//! real process group for the test backend to kill.
#![allow(dead_code)]

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for "it eventually happened"; never a speed claim.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// Polls `check` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Whether a pid is gone or a zombie (dead, not yet reaped).
pub fn pid_is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z') | Some('X'))
        }
    }
}

/// A shell in its own process group with two `sleep` children.
pub struct ProtectedGroup {
    leader: Child,
    /// The `sleep` children's pids.
    pub children: Vec<i32>,
}

impl ProtectedGroup {
    /// Starts the group and waits until both children exist.
    pub fn spawn() -> Self {
        Self::spawn_script("sleep 1000 & echo $!; sleep 1000 & echo $!; wait")
    }

    /// Like `spawn`, but the shell first moves itself into `cgroup`.
    pub fn spawn_in_cgroup(cgroup: &Path) -> Self {
        Self::spawn_script(&format!(
            "echo $$ > '{}/cgroup.procs' || exit 1; sleep 1000 & echo $!; sleep 1000 & echo $!; wait",
            cgroup.display()
        ))
    }

    fn spawn_script(script: &str) -> Self {
        let mut leader = Command::new("sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let mut lines = BufReader::new(leader.stdout.take().expect("stdout"));
        let mut children = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            lines.read_line(&mut line).expect("read child pid");
            children.push(line.trim().parse().expect("child pid"));
        }
        ProtectedGroup { leader, children }
    }

    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.leader.id() as i32
    }

    /// Whether the leader and all children are dead.
    pub fn all_dead(&mut self) -> bool {
        let leader_dead = matches!(self.leader.try_wait(), Ok(Some(_)));
        leader_dead && self.children.iter().all(|pid| pid_is_dead(*pid))
    }

    /// Whether the leader and all children are alive.
    pub fn all_alive(&mut self) -> bool {
        let leader_alive = matches!(self.leader.try_wait(), Ok(None));
        leader_alive && self.children.iter().all(|pid| !pid_is_dead(*pid))
    }

    /// The leader's exit status, once it is dead.
    pub fn leader_status(&mut self) -> Option<ExitStatus> {
        self.leader.try_wait().ok().flatten()
    }
}

impl Drop for ProtectedGroup {
    fn drop(&mut self) {
        // Our own group: clean up whatever is left of it.
        let _ = killpg(Pid::from_raw(self.pgid()), Signal::SIGKILL);
        let _ = self.leader.wait();
    }
}

/// A running watchdog-mux subprocess with its stderr captured.
pub struct MuxProcess {
    child: Child,
    /// Temp dir holding the socket and the marker.
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Default test timings: device timeout 1 s, fed every 100 ms.
pub const DEVICE_TIMEOUT: &str = "1s";

impl MuxProcess {
    /// Starts the mux with the test backend protecting `pgid`.
    pub fn start_test_backend(pgid: i32) -> Self {
        Self::start(&[
            "--backend",
            "test",
            "--protect-pgid",
            &pgid.to_string(),
            "--device-timeout",
            DEVICE_TIMEOUT,
            "--feed-interval",
            "100ms",
        ])
    }

    /// Starts the mux with extra arguments and waits for its socket.
    pub fn start(extra: &[&str]) -> Self {
        let mux = Self::spawn(tempfile::tempdir().expect("tempdir"), extra);
        assert!(
            wait_until(EVENTUALLY, || mux.socket().exists()),
            "mux did not create its socket; log:\n{}",
            mux.log_text()
        );
        mux
    }

    /// Spawns the mux without waiting for anything.
    pub fn spawn(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_watchdog-mux"));
        if !extra.contains(&"--socket") {
            command.arg("--socket").arg(dir.path().join("mux.sock"));
        }
        let mut child = command
            .arg("--active-marker")
            .arg(dir.path().join("active"))
            .arg("--verbose")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watchdog-mux");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            })
        };
        MuxProcess {
            child,
            dir,
            log,
            reader: Some(reader),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mux.sock")
    }

    /// The marker path.
    pub fn marker(&self) -> PathBuf {
        self.dir.path().join("active")
    }

    /// Everything the mux logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Lines of the log containing every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .cloned()
            .collect()
    }

    /// Waits until a log line contains all `needles`.
    pub fn wait_log(&self, needles: &[&str]) -> bool {
        wait_until(EVENTUALLY, || !self.log_lines_with(needles).is_empty())
    }

    /// The mux's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The test backend's device process pid, from the mux's log.
    pub fn device_pid(&self) -> Option<i32> {
        self.log_lines_with(&["test watchdog device process", "running"])
            .first()
            .and_then(|line| {
                line.split("test watchdog device process ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
    }

    /// Whether the mux process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the mux to exit on its own.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(EVENTUALLY, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            // Everything the mux wrote is in the log once stderr hit EOF.
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
        status
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for MuxProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A path that must not exist (for negative tests).
pub fn missing(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
