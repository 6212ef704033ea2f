//! Commands written through the log and their responses.
//!
//! These are part of the log format: changing them requires bumping
//! [`crate::state::STATE_FORMAT_VERSION`] and the wire version.

use std::fmt;

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

/// Replicated lease state. There is no deadline here: expiry is judged only
/// by the leader on its own monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Current holder.
    pub holder: String,
    /// Time to live after each renewal, in milliseconds.
    pub ttl_ms: u64,
    /// Renewal sequence number: the log index of the entry that acquired,
    /// renewed or took over the lease. Strictly increases with each renewal.
    pub seq: u64,
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
    /// Acquires a free lease (or renews it if `holder` already holds it).
    LeaseAcquire {
        /// Lease name.
        name: String,
        /// Who takes it.
        holder: String,
        /// Time to live, ms.
        ttl_ms: u64,
    },
    /// Renews a lease held by `holder`.
    LeaseRenew {
        /// Lease name.
        name: String,
        /// Who must hold it.
        holder: String,
    },
    /// Releases a lease held by `holder`.
    LeaseRelease {
        /// Lease name.
        name: String,
        /// Who must hold it.
        holder: String,
    },
    /// Takes over a lease the leader judged expired. Applies only if the
    /// lease is still held by `expected_holder` at `expected_seq`, i.e. no
    /// renewal was committed since the expiry was observed.
    LeaseTakeover {
        /// Lease name.
        name: String,
        /// The new holder.
        new_holder: String,
        /// Holder observed as expired.
        expected_holder: String,
        /// Renewal sequence number observed as expired.
        expected_seq: u64,
        /// Time to live for the new holder, ms.
        ttl_ms: u64,
    },
    /// Several commands in one log entry, applied all-or-nothing: if any
    /// fails, none takes effect and the response carries the failure.
    Batch(Vec<Command>),
}

impl Command {
    /// Every take-over in this command, including inside batches, as
    /// `(name, expected_holder, expected_seq)`.
    pub fn takeovers(&self) -> Vec<(&str, &str, u64)> {
        match self {
            Command::LeaseTakeover {
                name,
                expected_holder,
                expected_seq,
                ..
            } => vec![(name.as_str(), expected_holder.as_str(), *expected_seq)],
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
            Command::LeaseAcquire { .. } => "lease-acquire",
            Command::LeaseRenew { .. } => "lease-renew",
            Command::LeaseRelease { .. } => "lease-release",
            Command::LeaseTakeover { .. } => "lease-takeover",
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
    /// The lease is now held as described.
    LeaseHeld(Lease),
    /// Acquire failed: somebody else holds the lease.
    LeaseBusy {
        /// Lease name.
        name: String,
        /// The lease as it is.
        current: Lease,
    },
    /// Renew/release failed: the caller does not hold the lease.
    LeaseNotHolder {
        /// Lease name.
        name: String,
        /// Current lease, if any.
        current: Option<Lease>,
    },
    /// Take-over failed: the lease changed since it was observed expired.
    TakeoverRejected {
        /// Lease name.
        name: String,
        /// Current lease, if any.
        current: Option<Lease>,
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
        !matches!(
            self,
            Outcome::VersionConflict { .. }
                | Outcome::LeaseBusy { .. }
                | Outcome::LeaseNotHolder { .. }
                | Outcome::TakeoverRejected { .. }
                | Outcome::BatchFailed { .. }
        )
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
