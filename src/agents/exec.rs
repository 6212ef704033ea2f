//! The `exec` agent: a command line supervised through a pid file.
//!
//! The command runs as `/bin/sh -c CMD` in its own process group (the main
//! process is the group leader, so its pid is the group id). The pid file
//! records `(pid, start time, boot id)`; a process is only taken for the
//! service when all three match, so a recycled pid or a file from an earlier
//! boot is never mistaken for it. Because the record lives on disk, a
//! restarted daemon finds the running copy and does not start a second one.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::busy::OperationLock;
use super::command::{deadline_after, tail, wait_until};
use super::files::{file_stem, read_tail};
use super::params::ParamReader;
use super::pid_file::{self, PidFileState, PidRecord};
use super::proc_info::{boot_id, live_group_members, read_stat};
use super::{
    AgentError, FencingToken, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome,
    DEFAULT_STOP_TIMEOUT,
};

/// The SID type served by this agent.
pub const KIND: &str = "exec";
pub use super::ENV_RESOURCE;

/// How long a fresh process must survive for the start to count; a command
/// that fails at once (not found, bad syntax) is reported as a failed start.
pub const DEFAULT_START_CHECK: Duration = Duration::from_millis(200);
/// How long to wait for the group to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A supervised command line. See the module documentation.
#[derive(Debug)]
pub struct ExecAgent {
    resource: String,
    cmd: String,
    cwd: Option<PathBuf>,
    stop_signal: Signal,
    pid_path: PathBuf,
    log_path: PathBuf,
    start_check: Duration,
    node: Option<String>,
    busy: OperationLock,
}

/// What the pid file and /proc say about the service.
#[derive(Debug)]
enum Inspection {
    /// No pid file, or a stale one (dead pid, recycled pid, earlier boot,
    /// unparsable): nothing of the service runs.
    NotRunning,
    /// The recorded main process runs.
    Alive(PidRecord),
    /// The main process is gone but members of its process group remain.
    Orphans { pgid: i32, members: Vec<i32> },
}

impl ExecAgent {
    /// Builds the agent for `exec:<name>` from its parameters: `cmd`
    /// (required), `cwd` (absolute path), `stop_signal` (default `TERM`).
    /// Files go to `<runtime_dir>/exec/<name>.pid` and `.log`.
    pub fn from_params(
        name: &str,
        params: &BTreeMap<String, String>,
        runtime_dir: &Path,
    ) -> Result<Self, AgentError> {
        let resource = format!("{KIND}:{name}");
        let mut reader = ParamReader::new(&resource, params);
        let cmd = reader.required("cmd")?.to_string();
        let cwd = match reader.optional("cwd")? {
            Some(dir) if !Path::new(dir).is_absolute() => {
                return Err(reader.invalid("cwd", format!("'{dir}' is not an absolute path")))
            }
            dir => dir.map(PathBuf::from),
        };
        let stop_signal = match reader.optional("stop_signal")? {
            Some(text) => parse_signal(text)
                .ok_or_else(|| reader.invalid("stop_signal", format!("unknown signal '{text}'")))?,
            None => Signal::SIGTERM,
        };
        if params.contains_key("user") {
            return Err(reader.invalid(
                "user",
                "not supported by the exec agent; wrap the command in runuser or setpriv",
            ));
        }
        reader.reject_unknown()?;
        let dir = runtime_dir.join(KIND);
        let stem = file_stem(name);
        Ok(ExecAgent {
            cmd,
            cwd,
            stop_signal,
            pid_path: dir.join(format!("{stem}.pid")),
            log_path: dir.join(format!("{stem}.log")),
            start_check: DEFAULT_START_CHECK,
            node: None,
            busy: OperationLock::default(),
            resource,
        })
    }

    /// Names the node that runs the command (`HA_NODE`).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// Changes how long a started command must keep running for the start to
    /// succeed (default [`DEFAULT_START_CHECK`]). Longer catches more early
    /// failures on a loaded machine; every start waits this long.
    pub fn with_start_check(mut self, start_check: Duration) -> Self {
        self.start_check = start_check;
        self
    }

    /// The pid file (`pid=`, `start_time=`, `boot_id=` lines).
    pub fn pid_file(&self) -> &Path {
        &self.pid_path
    }

    /// The file that receives the command's stdout and stderr.
    pub fn log_file(&self) -> &Path {
        &self.log_path
    }

    fn io_error(&self, context: impl Into<String>, source: io::Error) -> AgentError {
        AgentError::Io {
            resource: self.resource.clone(),
            context: context.into(),
            source,
        }
    }

    fn failed(&self, operation: &str, reason: impl Into<String>) -> AgentError {
        AgentError::Failed {
            resource: self.resource.clone(),
            operation: operation.to_string(),
            reason: reason.into(),
        }
    }

    /// The process group an exec agent's pid file (see
    /// [`Self::pid_file`]) records for this boot, with its leader's start
    /// time (`None`: no valid record). Callers compare the start time
    /// with `/proc` before trusting the pid.
    pub fn recorded_group_at(pid_path: &Path) -> Option<(i32, u64)> {
        match pid_file::read(pid_path).ok()? {
            PidFileState::Present(r) if boot_id().is_ok_and(|b| b == r.boot_id) => {
                Some((r.pid, r.start_time))
            }
            _ => None,
        }
    }

    fn inspect(&self) -> Result<Inspection, AgentError> {
        let record = match pid_file::read(&self.pid_path)
            .map_err(|e| self.io_error(format!("reading {}", self.pid_path.display()), e))?
        {
            PidFileState::Absent => return Ok(Inspection::NotRunning),
            PidFileState::Corrupt(why) => {
                // Written atomically by us, so this is outside tampering; there
                // is no trustworthy pid to act on.
                tracing::warn!(resource = %self.resource, file = %self.pid_path.display(), %why, "ignoring corrupt pid file");
                return Ok(Inspection::NotRunning);
            }
            PidFileState::Present(record) => record,
        };
        let current_boot = boot_id().map_err(|e| self.io_error("reading boot id", e))?;
        if record.boot_id != current_boot {
            return Ok(Inspection::NotRunning);
        }
        let stat = read_stat(record.pid)
            .map_err(|e| self.io_error(format!("reading /proc/{}/stat", record.pid), e))?;
        match stat {
            Some(s) if s.start_time != record.start_time => {
                // The pid was recycled. While any member of our group lived the
                // kernel could not have reused the pid, so the group is gone.
                Ok(Inspection::NotRunning)
            }
            Some(s) if !s.has_exited() => Ok(Inspection::Alive(record)),
            _ => {
                let members = live_group_members(record.pid)
                    .map_err(|e| self.io_error("scanning /proc", e))?;
                if members.is_empty() {
                    Ok(Inspection::NotRunning)
                } else {
                    Ok(Inspection::Orphans {
                        pgid: record.pid,
                        members,
                    })
                }
            }
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, AgentError> {
        self.busy.try_acquire(&self.resource)
    }

    fn remove_pid_file(&self) -> Result<(), AgentError> {
        pid_file::remove(&self.pid_path)
            .map_err(|e| self.io_error(format!("removing {}", self.pid_path.display()), e))
    }

    /// Sends `signal` to the group and waits until no live member remains or
    /// the deadline passes. Returns true when the group is gone.
    fn signal_and_wait(
        &self,
        pgid: i32,
        signal: Signal,
        deadline: Instant,
    ) -> Result<bool, AgentError> {
        match killpg(Pid::from_raw(pgid), signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                return Err(self.io_error(format!("sending {signal} to group {pgid}"), e.into()))
            }
        }
        let mut pause = Duration::from_millis(5);
        loop {
            let members =
                live_group_members(pgid).map_err(|e| self.io_error("scanning /proc", e))?;
            if members.is_empty() {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Graceful stop with escalation: `stop_signal`, wait `timeout`, SIGKILL.
    fn terminate_group(&self, pgid: i32, timeout: Duration) -> Result<StopOutcome, AgentError> {
        if !timeout.is_zero()
            && self.signal_and_wait(pgid, self.stop_signal, deadline_after(timeout))?
        {
            return Ok(StopOutcome::Stopped);
        }
        tracing::info!(resource = %self.resource, pgid, "stop timeout reached; sending SIGKILL to the process group");
        if self.signal_and_wait(pgid, Signal::SIGKILL, Instant::now() + KILL_WAIT)? {
            Ok(StopOutcome::Killed)
        } else {
            Err(self.failed(
                "stop",
                format!("process group {pgid} still alive after SIGKILL"),
            ))
        }
    }

    fn open_log(&self, token: FencingToken) -> Result<fs::File, AgentError> {
        if let Some(dir) = self.log_path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| self.io_error(format!("creating {}", dir.display()), e))?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| self.io_error(format!("opening {}", self.log_path.display()), e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // A marker between runs; a failure to write it is not worth failing for.
        let _ = writeln!(
            log,
            "--- ha-manager: starting {} at unix time {now}, fencing token {token}",
            self.resource
        );
        Ok(log)
    }

    fn spawn(&self, token: FencingToken) -> Result<StartOutcome, AgentError> {
        if let Some(dir) = &self.cwd {
            if !dir.is_dir() {
                return Err(self.failed(
                    "start",
                    format!("cwd '{}' is not a directory on this node", dir.display()),
                ));
            }
        }
        let log = self.open_log(token)?;
        let log_err = log
            .try_clone()
            .map_err(|e| self.io_error("duplicating the log file handle", e))?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&self.cmd)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .envs(super::service_env(&self.resource, self.node.as_deref()))
            .envs(token.env_vars());
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| self.io_error("spawning /bin/sh", e))?;
        let pid =
            i32::try_from(child.id()).map_err(|_| self.failed("start", "pid out of range"))?;
        let kill_child = |child: &mut std::process::Child| {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = child.wait();
        };
        // The child is ours and not yet reaped, so its stat entry exists.
        let record = match (read_stat(pid), boot_id()) {
            (Ok(Some(stat)), Ok(boot)) => PidRecord {
                pid,
                start_time: stat.start_time,
                boot_id: boot,
            },
            (Err(e), _) | (_, Err(e)) => {
                kill_child(&mut child);
                return Err(self.io_error("identifying the started process", e));
            }
            (Ok(None), _) => {
                kill_child(&mut child);
                return Err(self.failed("start", "started process vanished before it was recorded"));
            }
        };
        if let Err(e) = pid_file::write(&self.pid_path, &record) {
            // Without a pid file the process could not be found again: undo.
            kill_child(&mut child);
            return Err(self.io_error(format!("writing {}", self.pid_path.display()), e));
        }
        match wait_until(&mut child, Instant::now() + self.start_check) {
            Ok(None) => {}
            Ok(Some(status)) => {
                // The main process is reaped now; its pid stays reserved only
                // while members of its group live, so signal only then.
                if live_group_members(pid).is_ok_and(|m| !m.is_empty()) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                self.remove_pid_file()?;
                let log_tail = read_tail(&self.log_path, 1024).unwrap_or_default();
                return Err(self.failed(
                    "start",
                    format!(
                        "command exited at once ({status}); log tail: {}",
                        tail(log_tail.trim(), 300)
                    ),
                ));
            }
            Err(e) => return Err(self.io_error("waiting for the started process", e)),
        }
        // Reap the main process when it exits so it does not linger as a
        // zombie; status reads /proc and does not need the handle.
        let reaper = thread::Builder::new()
            .name(format!("reap-{pid}"))
            .spawn(move || {
                let _ = child.wait();
            });
        if let Err(e) = reaper {
            tracing::warn!(resource = %self.resource, error = %e, "no reaper thread; the process becomes a zombie when it exits");
        }
        tracing::info!(resource = %self.resource, pid, "started");
        Ok(StartOutcome::Started)
    }
}

/// Parses `TERM`, `SIGTERM`, `term` or a signal number.
fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

impl ResourceAgent for ExecAgent {
    fn resource(&self) -> &str {
        &self.resource
    }

    fn start(&self, token: FencingToken) -> Result<StartOutcome, AgentError> {
        let _guard = self.lock()?;
        match self.inspect()? {
            Inspection::Alive(_) => return Ok(StartOutcome::AlreadyRunning),
            Inspection::Orphans { pgid, members } => {
                tracing::warn!(resource = %self.resource, pgid, ?members, "killing leftover processes of a dead main process before starting");
                self.terminate_group(pgid, Duration::ZERO)?;
            }
            Inspection::NotRunning => {}
        }
        self.remove_pid_file()?;
        self.spawn(token)
    }

    fn stop(
        &self,
        timeout: Option<Duration>,
        _token: FencingToken,
    ) -> Result<StopOutcome, AgentError> {
        let _guard = self.lock()?;
        let timeout = timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let outcome = match self.inspect()? {
            Inspection::NotRunning => StopOutcome::AlreadyStopped,
            Inspection::Alive(record) => self.terminate_group(record.pid, timeout)?,
            Inspection::Orphans { pgid, .. } => self.terminate_group(pgid, timeout)?,
        };
        self.remove_pid_file()?;
        Ok(outcome)
    }

    fn status(&self, _token: FencingToken) -> Result<ServiceStatus, AgentError> {
        Ok(match self.inspect()? {
            Inspection::NotRunning => ServiceStatus::Stopped,
            Inspection::Alive(_) => ServiceStatus::Running,
            Inspection::Orphans { pgid, members } => ServiceStatus::Unknown(format!(
                "main process {pgid} exited but {} process(es) of its group remain",
                members.len()
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_spellings() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigint"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
