//! Results of agent calls and their mapping onto the LRM exit codes (spec §4.6).

use std::fmt;
use std::time::Duration;

/// What a status check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStatus {
    /// The service runs on this node.
    Running,
    /// The service is cleanly stopped on this node.
    Stopped,
    /// The check ran but could not say running or stopped (a failed OCF
    /// resource, a systemd unit in transition, leftover processes of an exec
    /// service whose main process died). The LRM must not start a second copy
    /// on top of it: it stops the service first (every agent's stop makes
    /// this state safe) and then starts it again.
    Unknown(String),
}

impl ServiceStatus {
    /// True only for [`ServiceStatus::Running`].
    pub fn is_running(&self) -> bool {
        matches!(self, ServiceStatus::Running)
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceStatus::Running => f.write_str("running"),
            ServiceStatus::Stopped => f.write_str("stopped"),
            ServiceStatus::Unknown(reason) => write!(f, "unknown ({reason})"),
        }
    }
}

/// A successful start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The service was started by this call.
    Started,
    /// The service was already running; nothing was started (idempotent start).
    AlreadyRunning,
}

/// A successful stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The service stopped within the timeout after the graceful request.
    Stopped,
    /// The service ignored the graceful request until the timeout (or the
    /// timeout was zero) and was killed.
    Killed,
    /// The service was not running; nothing was done.
    AlreadyStopped,
}

/// The LRM's command exit codes (spec §4.6), with their numeric values.
///
/// Agents only ever produce `Success`, `Error`, `TryAgain` and
/// `InvalidParameter` (through [`AgentError::exit_code`] or a successful
/// call). `WrongNode`, `UnknownCommand`, `UnknownService` and `Ignored` are
/// decided by the LRM glue before an agent is called (spec §4.5);
/// `UnknownServiceType` comes from the factory ([`AgentError::UnknownType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LrmExitCode {
    /// 0: done.
    Success = 0,
    /// 1: start → restart/relocate policy; stop → error state; migrate → back to source.
    Error = 1,
    /// 2: never reported to the CRM; the LRM retries the command next round.
    TryAgain = 2,
    /// 3: the resource's config is on another node.
    WrongNode = 3,
    /// 4: no agent for the SID type → error state.
    UnknownServiceType = 4,
    /// 5: unknown command → error state.
    UnknownCommand = 5,
    /// 6: the resource's parameters are invalid everywhere → error state.
    InvalidParameter = 6,
    /// 7: no config for the SID → error state.
    UnknownService = 7,
    /// 8: rebalance-on-start skipped, stay put.
    Ignored = 8,
}

impl LrmExitCode {
    /// The numeric code as published in the LRM status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Why an agent call failed. Every variant names the resource (`type:name`)
/// and, where it applies, the parameter or operation at fault.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent implements this SID type.
    #[error("{resource}: no resource agent for type '{kind}'")]
    UnknownType {
        /// The SID, e.g. `foo:web`.
        resource: String,
        /// The SID type that has no agent.
        kind: String,
    },
    /// A required parameter is absent.
    #[error("{resource}: missing parameter '{param}'")]
    MissingParameter {
        /// The SID.
        resource: String,
        /// The parameter that is required.
        param: String,
    },
    /// A parameter has a bad value, is unknown to the agent, or (for OCF) the
    /// agent reported invalid or missing configuration (OCF 2 or 6).
    #[error("{resource}: invalid parameter '{param}': {reason}")]
    InvalidParameter {
        /// The SID.
        resource: String,
        /// The parameter at fault (`*` when the agent does not say which).
        param: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent cannot perform this operation (e.g. live migration for exec
    /// and systemd, or an OCF agent answering OCF_ERR_UNIMPLEMENTED).
    #[error("{resource}: operation '{operation}' is not supported by this agent")]
    Unsupported {
        /// The SID.
        resource: String,
        /// The operation that is not supported.
        operation: String,
    },
    /// The software the agent drives is not installed on this node (OCF 5, a
    /// missing OCF script). Node-local: another node may have it.
    #[error("{resource}: not installed on this node: {what}")]
    NotInstalled {
        /// The SID.
        resource: String,
        /// What is missing.
        what: String,
    },
    /// The operation ran and failed.
    #[error("{resource}: {operation} failed: {reason}")]
    Failed {
        /// The SID.
        resource: String,
        /// The operation (start, stop, monitor, migrate_to, ...).
        operation: String,
        /// Why, including the tail of the command's output where there is one.
        reason: String,
    },
    /// The operation did not finish in time; its process group was killed.
    #[error("{resource}: {operation} timed out after {after:?}")]
    Timeout {
        /// The SID.
        resource: String,
        /// The operation that timed out.
        operation: String,
        /// How long it was given.
        after: Duration,
    },
    /// Another operation on the same resource is in progress in this agent.
    #[error("{resource}: another operation is in progress")]
    Busy {
        /// The SID.
        resource: String,
    },
    /// A local I/O failure (pid file, log file, spawning a process).
    #[error("{resource}: {context}: {source}")]
    Io {
        /// The SID.
        resource: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// The LRM exit code this error stands for (spec §4.6):
    ///
    /// | error | code |
    /// |---|---|
    /// | `UnknownType` | `EUNKNOWN_SERVICE_TYPE` (4) |
    /// | `MissingParameter`, `InvalidParameter` | `EINVALID_PARAMETER` (6) |
    /// | `Busy` | `ETRY_AGAIN` (2) |
    /// | `Unsupported`, `NotInstalled`, `Failed`, `Timeout`, `Io` | `ERROR` (1) |
    ///
    /// `NotInstalled` is `ERROR`, not an error state, because it is local to
    /// this node: the restart/relocate policy can move the service to a node
    /// that has the software.
    pub fn exit_code(&self) -> LrmExitCode {
        match self {
            AgentError::UnknownType { .. } => LrmExitCode::UnknownServiceType,
            AgentError::MissingParameter { .. } | AgentError::InvalidParameter { .. } => {
                LrmExitCode::InvalidParameter
            }
            AgentError::Busy { .. } => LrmExitCode::TryAgain,
            AgentError::Unsupported { .. }
            | AgentError::NotInstalled { .. }
            | AgentError::Failed { .. }
            | AgentError::Timeout { .. }
            | AgentError::Io { .. } => LrmExitCode::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_follow_the_spec_table() {
        let r = || "exec:web".to_string();
        let missing = AgentError::MissingParameter {
            resource: r(),
            param: "cmd".into(),
        };
        assert_eq!(missing.to_string(), "exec:web: missing parameter 'cmd'");
        assert_eq!(missing.exit_code().code(), 6);
        let busy = AgentError::Busy { resource: r() };
        assert_eq!(busy.exit_code().code(), 2);
        let unknown = AgentError::UnknownType {
            resource: "foo:x".into(),
            kind: "foo".into(),
        };
        assert_eq!(unknown.exit_code().code(), 4);
        let failed = AgentError::Failed {
            resource: r(),
            operation: "start".into(),
            reason: "exit 1".into(),
        };
        assert_eq!(failed.exit_code(), LrmExitCode::Error);
        assert_eq!(LrmExitCode::Ignored.code(), 8);
        assert_eq!(LrmExitCode::WrongNode.code(), 3);
    }
}
