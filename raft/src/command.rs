//! Commands written through the log and their responses.
//!
//! These are part of the log format: changing them requires bumping
//! [`crate::state::STATE_FORMAT_VERSION`] and the wire version.

use std::fmt;

use lease::{Expected, LeaseCommand, LeaseOutcome};
use serde::{Deserialize, Serialize};

/// Key of a versioned document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DocKey {
    /// A configuration document by name (e.g. `resources`, `groups`,
    /// `rules`, `datacenter`); the contents are opaque to the store.
    Config(String),
    /// The manager status written by the CRM.
    ManagerStatus,
    /// The LRM status of one node, by node name.
    LrmStatus(String),
}

impl fmt::Display for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocKey::Config(name) => write!(f, "config/{name}"),
            DocKey::ManagerStatus => write!(f, "manager_status"),
            DocKey::LrmStatus(node) => write!(f, "lrm_status/{node}"),
        }
    }
}

/// A stored document. `version` is the log index of the write that produced
/// it, so versions never repeat even across delete and re-create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Log index of the last write.
    pub version: u64,
    /// Opaque contents (text: section-config, JSON, ...).
    pub value: String,
}

/// A state-machine command, applied identically on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Writes a document. `expected_version`: `None` writes
    /// unconditionally, `Some(0)` requires the document to be absent,
    /// `Some(v)` requires the current version to be `v`.
    PutDoc {
        /// Which document.
        key: DocKey,
        /// Compare-and-set condition.
        expected_version: Option<u64>,
        /// New contents.
        value: String,
    },
    /// Deletes a document, with the same CAS condition as `PutDoc`.
    DeleteDoc {
        /// Which document.
        key: DocKey,
        /// Compare-and-set condition.
        expected_version: Option<u64>,
    },
    /// Appends one command to the CRM command queue.
    CrmCommandAppend {
        /// The command text (e.g. `migrate vm:100 node2`).
        command: String,
    },
    /// Returns the whole CRM command queue and clears it, in one entry.
    CrmCommandTake,
    /// A change to a lease (see the `lease` crate for the rules).
    Lease(LeaseCommand),
    /// Succeeds only if the document has exactly this version (0 =
    /// absent); changes nothing. In a batch it makes the rest conditional
    /// on a document the writer read (a node takes its lease back only if
    /// the manager status it checked is still current).
    AssertVersion {
        /// Which document.
        key: DocKey,
        /// The version that must be current.
        version: u64,
    },
    /// Several commands in one log entry, applied all-or-nothing: if any
    /// fails, none takes effect and the response carries the failure.
    Batch(Vec<Command>),
}

impl Command {
    /// Every take-over in this command, including inside batches, as
    /// `(name, expected)`: the leader checks each before proposing.
    pub fn takeovers(&self) -> Vec<(&str, Option<&Expected>)> {
        match self {
            Command::Lease(LeaseCommand::Takeover { name, expected, .. }) => {
                vec![(name.as_str(), expected.as_ref())]
            }
            Command::Batch(commands) => commands.iter().flat_map(Command::takeovers).collect(),
            _ => Vec::new(),
        }
    }

    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutDoc { .. } => "put-doc",
            Command::DeleteDoc { .. } => "delete-doc",
            Command::CrmCommandAppend { .. } => "crm-command-append",
            Command::CrmCommandTake => "crm-command-take",
            Command::Lease(c) => c.kind(),
            Command::AssertVersion { .. } => "assert-version",
            Command::Batch(_) => "batch",
        }
    }
}

/// Result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A blank or membership entry, or a successful delete/append/release.
    Done,
    /// A document was written; its new version.
    Written {
        /// The new version.
        version: u64,
    },
    /// A CAS condition failed; nothing changed.
    VersionConflict {
        /// Which document.
        key: DocKey,
        /// Version the writer expected.
        expected: u64,
        /// Actual current version (0 = absent).
        current: u64,
    },
    /// The CRM commands taken from the queue.
    CrmCommands(Vec<String>),
    /// What a lease command did (granted, released, or refused).
    Lease {
        /// Lease name.
        name: String,
        /// The outcome.
        outcome: LeaseOutcome,
    },
    /// Results of a batch (all succeeded).
    Batch(Vec<Outcome>),
    /// A batch failed at `position`; nothing in it took effect.
    BatchFailed {
        /// Index of the failing command.
        position: usize,
        /// Its outcome.
        outcome: Box<Outcome>,
    },
}

impl Outcome {
    /// Whether the command took effect.
    pub fn is_success(&self) -> bool {
        match self {
            Outcome::VersionConflict { .. } | Outcome::BatchFailed { .. } => false,
            Outcome::Lease { outcome, .. } => outcome.is_success(),
            _ => true,
        }
    }
}

/// Response of one log entry: its index and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Log index of the entry; a reader that waits for this index on its
    /// local replica sees the effect (read-your-writes).
    pub index: u64,
    /// What happened.
    pub outcome: Outcome,
}
