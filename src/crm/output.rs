//! What a CRM round produces besides the new manager status: ordered steps
//! (log events interleaved with actions the shell must carry out).

use super::history::HaEvent;
use crate::domain::{NodeName, RequestedState, Sid};

/// Severity of a log event (spec section 8.4 levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal progress.
    Info,
    /// Worth noticing.
    Notice,
    /// Something went wrong but is handled.
    Warning,
    /// An error.
    Err,
    /// A notification (fencing mail).
    Email,
}

impl Level {
    /// The level tag cut to four characters, as in the simulator log.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Notice => "noti",
            Level::Warning => "warn",
            Level::Err => "err",
            Level::Email => "emai",
        }
    }
}

/// One structured log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Severity.
    pub level: Level,
    /// The message text (no trailing newline).
    pub message: String,
}

/// Something the shell must do for the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmAction {
    /// Acquire or renew the manager lock (the CRM decided on the lock
    /// state given in its input; if the shell cannot commit it, it must
    /// discard the rest of this output).
    TakeManagerLock,
    /// Release the manager lock.
    ReleaseManagerLock,
    /// Open the CRM watchdog (pve profile only; ignored otherwise).
    WatchdogOpen,
    /// Feed the CRM watchdog.
    WatchdogUpdate,
    /// Close the CRM watchdog cleanly.
    WatchdogClose,
    /// Take the agent lock of a node over (it expired on the leader, or
    /// the node has none): the fencing acknowledgement. The shell names
    /// the holder and sequence it saw, so a renewal committed meanwhile
    /// makes the take-over fail. Must be committed before the manager
    /// status that moves the node's services from `fence` to `recovery`;
    /// if it fails, the rest of the output is dropped.
    TakeAgentLock(NodeName),
    /// Rewrite the requested state of a resource (the `stop` command).
    SetRequestedState(Sid, RequestedState),
    /// Move the resource's configuration to another node (recovery
    /// "steal").
    MoveResourceNode {
        /// The resource.
        sid: Sid,
        /// The fenced node.
        from: NodeName,
        /// The recovery node.
        to: NodeName,
    },
    /// Place a resource that is on no node yet (just added).
    PlaceResource {
        /// The resource.
        sid: Sid,
        /// Where it goes.
        node: NodeName,
    },
    /// Remove a leftover guest lock of a recovered resource.
    RemoveGuestLock(Sid),
    /// The CRM command queue given in the input was consumed: clear it.
    ConsumeCrmCommands,
    /// Persist the group migration (spec 3.20) over the groups and
    /// resources the shell gave in this round's input: write the rules of
    /// `config::migrate_groups` to rules.cfg, rewrite the resources without
    /// `group` (with `failback 0` where the group had `nofailback`), delete
    /// groups.cfg.
    MigrateGroups,
}

/// One ordered output step.
#[derive(Debug, Clone, PartialEq)]
pub enum CrmStep {
    /// Log this event.
    Log(LogEvent),
    /// Carry out this action.
    Do(CrmAction),
    /// Record this event in the history (with the round's writes).
    Event(Box<HaEvent>),
}

/// Collects ordered steps.
#[derive(Debug, Default)]
pub struct Steps(pub Vec<CrmStep>);

impl Steps {
    /// Logs a message.
    pub fn log(&mut self, level: Level, message: impl Into<String>) {
        self.0.push(CrmStep::Log(LogEvent {
            level,
            message: message.into(),
        }));
    }

    /// Logs at info level.
    pub fn info(&mut self, message: impl Into<String>) {
        self.log(Level::Info, message);
    }

    /// Records an event for the history.
    pub fn event(&mut self, event: HaEvent) {
        self.0.push(CrmStep::Event(Box::new(event)));
    }

    /// Adds an action.
    pub fn act(&mut self, action: CrmAction) {
        self.0.push(CrmStep::Do(action));
    }
}
