//! The `ocf` agent: Open Cluster Framework resource agents, as shipped by the
//! resource-agents package (`/usr/lib/ocf/resource.d/<provider>/<type>`).
//!
//! Parameter `agent` = `provider/type` picks the script; every other
//! parameter `key=value` is passed as `OCF_RESKEY_key=value`. Each action runs
//! the script with the action name as its argument, in its own process group,
//! with a time limit.
//!
//! OCF exit codes and what they become:
//!
//! | code | OCF name | monitor (status) | start / stop / migrate |
//! |---|---|---|---|
//! | 0 | SUCCESS | Running | success |
//! | 1 | ERR_GENERIC | Unknown (failed) | `Failed` → ERROR |
//! | 2 | ERR_ARGS | `InvalidParameter` → EINVALID_PARAMETER | same |
//! | 3 | ERR_UNIMPLEMENTED | `Unsupported` → ERROR | same |
//! | 4 | ERR_PERM | `Failed` → ERROR | same |
//! | 5 | ERR_INSTALLED | Stopped (cannot run here) | start: `NotInstalled` → ERROR; stop: success |
//! | 6 | ERR_CONFIGURED | `InvalidParameter` → EINVALID_PARAMETER | same |
//! | 7 | NOT_RUNNING | Stopped | stop: success; others `Failed` → ERROR |
//! | 8 | RUNNING_MASTER | Running | `Failed` → ERROR |
//! | 9 | FAILED_MASTER | Unknown (failed) | `Failed` → ERROR |
//! | other, signal | — | Unknown | `Failed` → ERROR |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::busy::OperationLock;
use super::command::{run, tail, Finished, RunError};
use super::params::ParamReader;
use super::{
    AgentError, FencingToken, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome,
    DEFAULT_STOP_TIMEOUT,
};

/// The SID type served by this agent.
pub const KIND: &str = "ocf";
/// Where resource-agents installs OCF scripts and their shell library.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// OCF_SUCCESS.
pub const OCF_SUCCESS: i32 = 0;
/// OCF_ERR_GENERIC.
pub const OCF_ERR_GENERIC: i32 = 1;
/// OCF_ERR_ARGS.
pub const OCF_ERR_ARGS: i32 = 2;
/// OCF_ERR_UNIMPLEMENTED.
pub const OCF_ERR_UNIMPLEMENTED: i32 = 3;
/// OCF_ERR_PERM.
pub const OCF_ERR_PERM: i32 = 4;
/// OCF_ERR_INSTALLED.
pub const OCF_ERR_INSTALLED: i32 = 5;
/// OCF_ERR_CONFIGURED.
pub const OCF_ERR_CONFIGURED: i32 = 6;
/// OCF_NOT_RUNNING.
pub const OCF_NOT_RUNNING: i32 = 7;
/// OCF_RUNNING_MASTER.
pub const OCF_RUNNING_MASTER: i32 = 8;
/// OCF_FAILED_MASTER.
pub const OCF_FAILED_MASTER: i32 = 9;

/// An OCF resource. See the module documentation.
#[derive(Debug)]
pub struct OcfAgent {
    resource: String,
    name: String,
    provider: String,
    agent_type: String,
    ocf_root: PathBuf,
    reskeys: Vec<(String, String)>,
    operation_timeout: Duration,
    status_timeout: Duration,
    live_migration: OnceLock<bool>,
    node: Option<String>,
    busy: OperationLock,
}

/// A script run that did not produce an exit code to interpret.
enum ActionError {
    Agent(AgentError),
    NotInstalled(PathBuf),
}

impl OcfAgent {
    /// Builds the agent for `ocf:<name>`: parameter `agent` (`provider/type`,
    /// required) selects `<ocf_root>/resource.d/<provider>/<type>`; every
    /// other parameter must be a valid variable name part
    /// (`[A-Za-z0-9_]+`, not starting with `CRM_meta_`) and becomes
    /// `OCF_RESKEY_<key>`.
    pub fn from_params(
        name: &str,
        params: &BTreeMap<String, String>,
        ocf_root: &Path,
    ) -> Result<Self, AgentError> {
        let resource = format!("{KIND}:{name}");
        let mut reader = ParamReader::new(&resource, params);
        let agent = reader.required("agent")?;
        let (provider, agent_type) = agent
            .split_once('/')
            .filter(|(p, t)| is_path_part(p) && is_path_part(t))
            .ok_or_else(|| {
                reader.invalid(
                    "agent",
                    format!("'{agent}' is not of the form provider/type (e.g. heartbeat/IPaddr2)"),
                )
            })?;
        let mut reskeys = Vec::new();
        for (key, value) in params {
            if key == "agent" {
                continue;
            }
            let valid_name =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(reader.invalid(
                    key,
                    "OCF parameter names may only contain letters, digits and '_'",
                ));
            }
            if key.starts_with("CRM_meta_") {
                return Err(
                    reader.invalid(key, "CRM_meta_* names are reserved for the cluster manager")
                );
            }
            reskeys.push((format!("OCF_RESKEY_{key}"), value.clone()));
        }
        Ok(OcfAgent {
            name: name.to_string(),
            provider: provider.to_string(),
            agent_type: agent_type.to_string(),
            ocf_root: ocf_root.to_path_buf(),
            reskeys,
            operation_timeout: Duration::from_secs(120),
            status_timeout: Duration::from_secs(30),
            live_migration: OnceLock::new(),
            node: None,
            busy: OperationLock::default(),
            resource,
        })
    }

    /// Names the node that runs the resource (`HA_NODE`).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// Changes the time limits for start/migrate and for monitor.
    pub fn with_timeouts(mut self, operation: Duration, status: Duration) -> Self {
        self.operation_timeout = operation;
        self.status_timeout = status;
        self
    }

    /// The script this agent runs.
    pub fn script(&self) -> PathBuf {
        self.ocf_root
            .join("resource.d")
            .join(&self.provider)
            .join(&self.agent_type)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, AgentError> {
        self.busy.try_acquire(&self.resource)
    }

    /// Runs one action of the script with the full OCF environment.
    fn action(
        &self,
        action: &str,
        timeout: Duration,
        token: FencingToken,
        extra_env: &[(&str, &str)],
    ) -> Result<Finished, ActionError> {
        let script = self.script();
        if !script.is_file() {
            return Err(ActionError::NotInstalled(script));
        }
        let mut command = Command::new(&script);
        command
            .arg(action)
            .env("OCF_ROOT", &self.ocf_root)
            .env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", "0")
            .env("OCF_RESOURCE_INSTANCE", &self.name)
            .env("OCF_RESOURCE_TYPE", &self.agent_type)
            .env("OCF_RESOURCE_PROVIDER", &self.provider)
            .env(
                "OCF_RESKEY_CRM_meta_timeout",
                timeout.as_millis().to_string(),
            )
            .envs(self.reskeys.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().copied())
            .envs(super::service_env(&self.resource, self.node.as_deref()))
            .envs(token.env_vars());
        let finished = run(command, timeout).map_err(|e| {
            ActionError::Agent(match e {
                RunError::Spawn(source) | RunError::Wait(source) => AgentError::Io {
                    resource: self.resource.clone(),
                    context: format!("running {} {action}", script.display()),
                    source,
                },
                RunError::Timeout { output } => {
                    tracing::warn!(resource = %self.resource, action, output = %tail(&output, 400), "OCF action timed out");
                    AgentError::Timeout {
                        resource: self.resource.clone(),
                        operation: action.to_string(),
                        after: timeout,
                    }
                }
            })
        })?;
        tracing::debug!(resource = %self.resource, action, code = finished.code(), stderr = %tail(&finished.stderr, 400), "OCF action finished");
        Ok(finished)
    }

    /// The error for a non-success exit code of `operation`.
    fn error_for(&self, operation: &str, finished: &Finished) -> AgentError {
        let resource = self.resource.clone();
        let detail = finished.describe();
        match finished.code() {
            OCF_ERR_ARGS | OCF_ERR_CONFIGURED => AgentError::InvalidParameter {
                resource,
                param: "*".to_string(),
                reason: format!(
                    "OCF agent {} rejected its configuration in {operation}: {detail}",
                    self.agent_name()
                ),
            },
            OCF_ERR_UNIMPLEMENTED => AgentError::Unsupported {
                resource,
                operation: operation.to_string(),
            },
            OCF_ERR_INSTALLED => AgentError::NotInstalled {
                resource,
                what: format!(
                    "OCF agent {} reports missing software: {detail}",
                    self.agent_name()
                ),
            },
            code => AgentError::Failed {
                resource,
                operation: operation.to_string(),
                reason: format!("{} ({detail})", ocf_code_name(code)),
            },
        }
    }

    fn agent_name(&self) -> String {
        format!("ocf:{}:{}", self.provider, self.agent_type)
    }

    fn not_installed(&self, script: &Path) -> AgentError {
        AgentError::NotInstalled {
            resource: self.resource.clone(),
            what: format!(
                "{} (install the package that ships {})",
                script.display(),
                self.agent_name()
            ),
        }
    }

    fn monitor(&self, token: FencingToken) -> Result<ServiceStatus, AgentError> {
        let finished = match self.action("monitor", self.status_timeout, token, &[]) {
            Ok(finished) => finished,
            // Without the agent the resource cannot be running here.
            Err(ActionError::NotInstalled(_)) => return Ok(ServiceStatus::Stopped),
            Err(ActionError::Agent(e)) => return Err(e),
        };
        match finished.code() {
            OCF_SUCCESS | OCF_RUNNING_MASTER => Ok(ServiceStatus::Running),
            OCF_NOT_RUNNING | OCF_ERR_INSTALLED => Ok(ServiceStatus::Stopped),
            OCF_ERR_ARGS | OCF_ERR_CONFIGURED | OCF_ERR_UNIMPLEMENTED | OCF_ERR_PERM => {
                Err(self.error_for("monitor", &finished))
            }
            code => Ok(ServiceStatus::Unknown(format!(
                "monitor: {} ({})",
                ocf_code_name(code),
                finished.describe()
            ))),
        }
    }

    fn migrate(
        &self,
        action: &str,
        source: &str,
        target: &str,
        token: FencingToken,
    ) -> Result<(), AgentError> {
        let _guard = self.lock()?;
        let env = [
            ("OCF_RESKEY_CRM_meta_migrate_source", source),
            ("OCF_RESKEY_CRM_meta_migrate_target", target),
        ];
        match self.action(action, self.operation_timeout, token, &env) {
            Ok(finished) if finished.code() == OCF_SUCCESS => Ok(()),
            Ok(finished) => Err(self.error_for(action, &finished)),
            Err(ActionError::NotInstalled(script)) => Err(self.not_installed(&script)),
            Err(ActionError::Agent(e)) => Err(e),
        }
    }
}

/// A provider or type name: no path separators, not `.`/`..`.
fn is_path_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The OCF name of an exit code, for messages.
pub fn ocf_code_name(code: i32) -> String {
    let name = match code {
        OCF_SUCCESS => "OCF_SUCCESS",
        OCF_ERR_GENERIC => "OCF_ERR_GENERIC",
        OCF_ERR_ARGS => "OCF_ERR_ARGS",
        OCF_ERR_UNIMPLEMENTED => "OCF_ERR_UNIMPLEMENTED",
        OCF_ERR_PERM => "OCF_ERR_PERM",
        OCF_ERR_INSTALLED => "OCF_ERR_INSTALLED",
        OCF_ERR_CONFIGURED => "OCF_ERR_CONFIGURED",
        OCF_NOT_RUNNING => "OCF_NOT_RUNNING",
        OCF_RUNNING_MASTER => "OCF_RUNNING_MASTER",
        OCF_FAILED_MASTER => "OCF_FAILED_MASTER",
        -1 => return "killed by a signal".to_string(),
        other => return format!("unexpected exit code {other}"),
    };
    format!("{name} ({code})")
}

impl ResourceAgent for OcfAgent {
    fn resource(&self) -> &str {
        &self.resource
    }

    fn start(&self, token: FencingToken) -> Result<StartOutcome, AgentError> {
        let _guard = self.lock()?;
        if self.monitor(token)?.is_running() {
            return Ok(StartOutcome::AlreadyRunning);
        }
        match self.action("start", self.operation_timeout, token, &[]) {
            Ok(finished) if finished.code() == OCF_SUCCESS => Ok(StartOutcome::Started),
            Ok(finished) => Err(self.error_for("start", &finished)),
            Err(ActionError::NotInstalled(script)) => Err(self.not_installed(&script)),
            Err(ActionError::Agent(e)) => Err(e),
        }
    }

    fn stop(
        &self,
        timeout: Option<Duration>,
        token: FencingToken,
    ) -> Result<StopOutcome, AgentError> {
        let _guard = self.lock()?;
        if self.monitor(token)? == ServiceStatus::Stopped {
            return Ok(StopOutcome::AlreadyStopped);
        }
        // OCF has no hard stop: a zero timeout still gives the agent the
        // default time, since killing the script would leave the resource in
        // an unknown state.
        let timeout = match timeout {
            Some(t) if !t.is_zero() => t,
            _ => DEFAULT_STOP_TIMEOUT,
        };
        match self.action("stop", timeout, token, &[]) {
            // Not installed: nothing of it can be running here either.
            Ok(finished)
                if matches!(
                    finished.code(),
                    OCF_SUCCESS | OCF_NOT_RUNNING | OCF_ERR_INSTALLED
                ) =>
            {
                Ok(StopOutcome::Stopped)
            }
            Ok(finished) => Err(self.error_for("stop", &finished)),
            // Nothing can be running without its agent.
            Err(ActionError::NotInstalled(_)) => Ok(StopOutcome::AlreadyStopped),
            Err(ActionError::Agent(e)) => Err(e),
        }
    }

    fn status(&self, token: FencingToken) -> Result<ServiceStatus, AgentError> {
        self.monitor(token)
    }

    /// True when the agent's meta-data lists a `migrate_to` action (asked
    /// once, then remembered).
    fn supports_live_migration(&self) -> bool {
        *self.live_migration.get_or_init(|| {
            match self.action(
                "meta-data",
                self.status_timeout,
                FencingToken::default(),
                &[],
            ) {
                Ok(finished) if finished.code() == OCF_SUCCESS => {
                    finished.stdout.contains("name=\"migrate_to\"")
                        && finished.stdout.contains("name=\"migrate_from\"")
                }
                _ => false,
            }
        })
    }

    fn migrate_to(
        &self,
        source: &str,
        target: &str,
        token: FencingToken,
    ) -> Result<(), AgentError> {
        self.migrate("migrate_to", source, target, token)
    }

    fn migrate_from(
        &self,
        source: &str,
        target: &str,
        token: FencingToken,
    ) -> Result<(), AgentError> {
        self.migrate("migrate_from", source, target, token)
    }
}
