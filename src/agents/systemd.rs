//! The `systemd` agent: a unit driven through `systemctl`.
//!
//! `start`, `stop` and `is-active` are the whole interface. systemd does the
//! supervision; a stop that outlives its timeout is forced with
//! `systemctl kill --signal=SIGKILL`. The fencing token reaches the service
//! through an environment file the unit can read with
//! `EnvironmentFile=-<runtime_dir>/systemd/<unit>.env`, rewritten before each
//! start; systemctl itself also gets the variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::busy::OperationLock;
use super::command::{run, Finished, RunError};
use super::files::{file_stem, write_atomically};
use super::params::ParamReader;
use super::{
    AgentError, FencingToken, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome,
    DEFAULT_STOP_TIMEOUT,
};

/// The SID type served by this agent.
pub const KIND: &str = "systemd";

/// How long the forced stop after `systemctl kill` may take.
const KILL_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A systemd unit. See the module documentation.
#[derive(Debug)]
pub struct SystemdAgent {
    resource: String,
    unit: String,
    systemctl: PathBuf,
    env_path: PathBuf,
    start_timeout: Duration,
    status_timeout: Duration,
    node: Option<String>,
    busy: OperationLock,
}

impl SystemdAgent {
    /// Builds the agent for `systemd:<name>`. Parameter `unit` defaults to
    /// the name, with `.service` appended when the name has no dot.
    /// `systemctl` is the program to run (a bare name is looked up in PATH).
    pub fn from_params(
        name: &str,
        params: &BTreeMap<String, String>,
        runtime_dir: &Path,
        systemctl: &Path,
    ) -> Result<Self, AgentError> {
        let resource = format!("{KIND}:{name}");
        let mut reader = ParamReader::new(&resource, params);
        let unit = match reader.optional("unit")? {
            Some(unit) => unit.to_string(),
            None if name.contains('.') => name.to_string(),
            None => format!("{name}.service"),
        };
        if let Err(why) = validate_unit(&unit) {
            return Err(reader.invalid("unit", format!("'{unit}' {why}")));
        }
        reader.reject_unknown()?;
        Ok(SystemdAgent {
            env_path: runtime_dir
                .join(KIND)
                .join(format!("{}.env", file_stem(&unit))),
            resource,
            unit,
            systemctl: systemctl.to_path_buf(),
            start_timeout: Duration::from_secs(120),
            status_timeout: Duration::from_secs(30),
            node: None,
            busy: OperationLock::default(),
        })
    }

    /// Names the node that runs the unit (`HA_NODE`).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// Changes the time limits for `systemctl start` and `is-active`.
    pub fn with_timeouts(mut self, start: Duration, status: Duration) -> Self {
        self.start_timeout = start;
        self.status_timeout = status;
        self
    }

    /// The unit name, e.g. `nginx.service`.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// The environment file holding the fencing token of the latest start.
    pub fn env_file(&self) -> &Path {
        &self.env_path
    }

    fn systemctl(
        &self,
        args: &[&str],
        timeout: Duration,
        token: FencingToken,
    ) -> Result<Finished, RunError> {
        let mut command = Command::new(&self.systemctl);
        command
            .args(args)
            .arg(&self.unit)
            .envs(super::service_env(&self.resource, self.node.as_deref()))
            .envs(token.env_vars());
        run(command, timeout)
    }

    /// `systemctl show -p ControlGroup,CPUQuotaPerSecUSec,MemoryMax
    /// <unit>`: the unit's cgroup and limits, as `Key=Value` lines.
    pub fn show_cgroup_and_limits(&self, timeout: Duration) -> Result<String, AgentError> {
        let mut command = Command::new(&self.systemctl);
        command
            .args(["show", "-p", "ControlGroup,CPUQuotaPerSecUSec,MemoryMax"])
            .arg(&self.unit);
        let finished = run(command, timeout).map_err(|e| self.run_error("show", timeout, e))?;
        if finished.code() != 0 {
            return Err(self.failed("show", &finished));
        }
        Ok(finished.stdout)
    }

    fn run_error(&self, operation: &str, timeout: Duration, error: RunError) -> AgentError {
        match error {
            RunError::Spawn(source) => AgentError::Io {
                resource: self.resource.clone(),
                context: format!("running {}", self.systemctl.display()),
                source,
            },
            RunError::Wait(source) => AgentError::Io {
                resource: self.resource.clone(),
                context: format!("waiting for {}", self.systemctl.display()),
                source,
            },
            RunError::Timeout { .. } => AgentError::Timeout {
                resource: self.resource.clone(),
                operation: operation.to_string(),
                after: timeout,
            },
        }
    }

    fn failed(&self, operation: &str, finished: &Finished) -> AgentError {
        AgentError::Failed {
            resource: self.resource.clone(),
            operation: operation.to_string(),
            reason: format!(
                "systemctl {operation} {}: {}",
                self.unit,
                finished.describe()
            ),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, AgentError> {
        self.busy.try_acquire(&self.resource)
    }

    fn write_env_file(&self, token: FencingToken) -> Result<(), AgentError> {
        let text: String = super::service_env(&self.resource, self.node.as_deref())
            .into_iter()
            .chain(token.env_vars())
            .map(|(key, value)| format!("{key}={value}\n"))
            .collect();
        write_atomically(&self.env_path, text.as_bytes()).map_err(|source| AgentError::Io {
            resource: self.resource.clone(),
            context: format!("writing {}", self.env_path.display()),
            source,
        })
    }

    fn force_stop(&self, token: FencingToken) -> Result<StopOutcome, AgentError> {
        let killed = self
            .systemctl(&["kill", "--signal=SIGKILL"], KILL_STOP_TIMEOUT, token)
            .map_err(|e| self.run_error("kill", KILL_STOP_TIMEOUT, e))?;
        // A unit whose processes are already gone makes `kill` fail; the
        // following stop is what counts.
        if killed.code() != 0 {
            tracing::debug!(resource = %self.resource, output = %killed.describe(), "systemctl kill");
        }
        let stopped = self
            .systemctl(&["stop"], KILL_STOP_TIMEOUT, token)
            .map_err(|e| self.run_error("stop", KILL_STOP_TIMEOUT, e))?;
        if stopped.code() == 0 {
            Ok(StopOutcome::Killed)
        } else {
            Err(self.failed("stop", &stopped))
        }
    }
}

/// systemd unit names: `[A-Za-z0-9:_.\\@-]`, with a type suffix, and (here)
/// not starting with `-` so the name can never be read as an option.
fn validate_unit(unit: &str) -> Result<(), &'static str> {
    if unit.starts_with('-') {
        return Err("must not start with '-'");
    }
    if !unit
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c))
    {
        return Err("contains characters not allowed in a unit name");
    }
    match unit.rsplit_once('.') {
        Some((stem, suffix)) if !stem.is_empty() && !suffix.is_empty() => Ok(()),
        _ => Err("lacks a unit type suffix such as '.service'"),
    }
}

/// Maps `systemctl is-active` output to a status. `failed` is a stopped
/// unit: systemd has already cleaned up its processes.
fn parse_is_active(finished: &Finished) -> ServiceStatus {
    let state = finished.stdout.lines().next().unwrap_or("").trim();
    match state {
        "active" | "reloading" | "refreshing" => ServiceStatus::Running,
        "inactive" | "failed" => ServiceStatus::Stopped,
        "" => ServiceStatus::Unknown(format!(
            "systemctl is-active gave no state ({})",
            finished.describe()
        )),
        other => ServiceStatus::Unknown(format!("unit is {other}")),
    }
}

impl ResourceAgent for SystemdAgent {
    fn resource(&self) -> &str {
        &self.resource
    }

    fn start(&self, token: FencingToken) -> Result<StartOutcome, AgentError> {
        let _guard = self.lock()?;
        if self.status(token)?.is_running() {
            return Ok(StartOutcome::AlreadyRunning);
        }
        self.write_env_file(token)?;
        let finished = self
            .systemctl(&["start"], self.start_timeout, token)
            .map_err(|e| self.run_error("start", self.start_timeout, e))?;
        if finished.code() == 0 {
            Ok(StartOutcome::Started)
        } else {
            Err(self.failed("start", &finished))
        }
    }

    fn stop(
        &self,
        timeout: Option<Duration>,
        token: FencingToken,
    ) -> Result<StopOutcome, AgentError> {
        let _guard = self.lock()?;
        if self.status(token)? == ServiceStatus::Stopped {
            return Ok(StopOutcome::AlreadyStopped);
        }
        let timeout = timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
        if timeout.is_zero() {
            return self.force_stop(token);
        }
        match self.systemctl(&["stop"], timeout, token) {
            Ok(finished) if finished.code() == 0 => Ok(StopOutcome::Stopped),
            Ok(finished) => Err(self.failed("stop", &finished)),
            Err(RunError::Timeout { .. }) => {
                tracing::info!(resource = %self.resource, ?timeout, "stop timed out; killing the unit");
                self.force_stop(token)
            }
            Err(e) => Err(self.run_error("stop", timeout, e)),
        }
    }

    fn status(&self, token: FencingToken) -> Result<ServiceStatus, AgentError> {
        let finished = self
            .systemctl(&["is-active"], self.status_timeout, token)
            .map_err(|e| self.run_error("is-active", self.status_timeout, e))?;
        Ok(parse_is_active(&finished))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_checked() {
        assert!(validate_unit("nginx.service").is_ok());
        assert!(validate_unit("getty@tty1.service").is_ok());
        assert!(validate_unit("-x.service").is_err());
        assert!(validate_unit("nginx").is_err());
        assert!(validate_unit("a b.service").is_err());
        assert!(validate_unit("a/b.service").is_err());
    }
}
