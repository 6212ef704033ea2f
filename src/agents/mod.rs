//! Resource agents: start, stop and check the services the LRM manages.
//!
//! The SID type names the agent (`exec:web`, `systemd:nginx`, `ocf:vip`);
//! [`agent_for`] builds one from a resource's parameters. Every call carries
//! the [`FencingToken`] of the lease it is made under and hands it to the
//! service as `HA_FENCING_TERM`, `HA_FENCING_SEQ` and `HA_FENCING_TOKEN`,
//! beside `HA_RESOURCE` (the SID) and `HA_NODE` (the node running it).
//! The calls block; the LRM runs them on worker threads. See README.md in
//! this directory for the contract, each agent's parameters and the exit code
//! mapping.

mod busy;
mod command;
pub mod exec;
mod factory;
mod files;
pub mod ocf;
mod outcome;
mod params;
mod pid_file;
pub mod proc_info;
pub mod systemd;
mod token;

use std::fmt::Debug;
use std::time::Duration;

pub use exec::ExecAgent;
pub use factory::{agent_for, AgentSettings, AGENT_KINDS};
pub use ocf::OcfAgent;
pub use outcome::{AgentError, LrmExitCode, ServiceStatus, StartOutcome, StopOutcome};
pub use systemd::SystemdAgent;
pub use token::{FencingToken, ENV_FENCING_SEQ, ENV_FENCING_TERM, ENV_FENCING_TOKEN};

/// Environment variable with the SID (`exec:web`) given to every service.
pub const ENV_RESOURCE: &str = "HA_RESOURCE";
/// Environment variable with the name of the node that runs the service,
/// as the cluster knows it (the node config's `node`).
pub const ENV_NODE: &str = "HA_NODE";

/// The variables naming the service and its node, handed to every process
/// an agent starts (`HA_NODE` only when the node is known: agents built
/// outside a daemon, as in validation, have none).
fn service_env(resource: &str, node: Option<&str>) -> Vec<(&'static str, String)> {
    let mut vars = vec![(ENV_RESOURCE, resource.to_string())];
    vars.extend(node.map(|n| (ENV_NODE, n.to_string())));
    vars
}

/// The stop timeout when the caller gives none (spec §6: "timeout undefined →
/// 60 s").
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One managed service on this node.
///
/// Implementations are `Send + Sync` so an LRM worker thread can own or share
/// them. Operations on one agent object are serialised: a call made while
/// another start/stop/migrate runs returns [`AgentError::Busy`]
/// (`ETRY_AGAIN`). How results map onto the LRM's exit codes (spec §4.6):
/// `Ok(_)` is `SUCCESS`; `Err(e)` is [`AgentError::exit_code`].
pub trait ResourceAgent: Send + Sync + Debug {
    /// The SID this agent manages, e.g. `exec:web`.
    fn resource(&self) -> &str;

    /// Starts the service and waits until the start has finished. Starting a
    /// running service does nothing and returns
    /// [`StartOutcome::AlreadyRunning`]; it never starts a second copy.
    fn start(&self, token: FencingToken) -> Result<StartOutcome, AgentError>;

    /// Stops the service. `None` means [`DEFAULT_STOP_TIMEOUT`]; a positive
    /// timeout is a graceful stop that is forced when it expires; zero is an
    /// immediate hard stop (where the agent has one). Stopping a stopped
    /// service succeeds with [`StopOutcome::AlreadyStopped`].
    fn stop(
        &self,
        timeout: Option<Duration>,
        token: FencingToken,
    ) -> Result<StopOutcome, AgentError>;

    /// Checks whether the service runs on this node. `Err` means the check
    /// itself could not be made (the tool is missing, the parameters are
    /// invalid); a check that ran but was inconclusive is
    /// [`ServiceStatus::Unknown`].
    fn status(&self, token: FencingToken) -> Result<ServiceStatus, AgentError>;

    /// Whether [`ResourceAgent::migrate_to`] can move the running service
    /// without a stop. When false the LRM migrates offline: stop here, start
    /// on the target.
    fn supports_live_migration(&self) -> bool {
        false
    }

    /// Source side of a live migration from node `source` (this node) to
    /// `target`. After it succeeds the service no longer runs here.
    fn migrate_to(
        &self,
        source: &str,
        target: &str,
        token: FencingToken,
    ) -> Result<(), AgentError> {
        let _ = (source, target, token);
        Err(AgentError::Unsupported {
            resource: self.resource().to_string(),
            operation: "migrate_to".to_string(),
        })
    }

    /// Target side of a live migration, run on `target` (this node) after
    /// `migrate_to` succeeded on `source`. After it succeeds the service runs
    /// here.
    fn migrate_from(
        &self,
        source: &str,
        target: &str,
        token: FencingToken,
    ) -> Result<(), AgentError> {
        let _ = (source, target, token);
        Err(AgentError::Unsupported {
            resource: self.resource().to_string(),
            operation: "migrate_from".to_string(),
        })
    }
}

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod ocf_tests;
#[cfg(test)]
mod systemd_tests;
#[cfg(test)]
mod test_support;
