//! Errors of the cluster store API.

use serde::{Deserialize, Serialize};

use lease::{LeaseOutcome, LeaseRecord};

use crate::command::DocKey;
use crate::types::NodeId;

/// Why a store operation failed. Serializable so a leader's answer to a
/// forwarded request reaches the caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// No leader is known (election in progress or no quorum) and none
    /// appeared before the request timeout.
    #[error("no raft leader available (no quorum or election in progress)")]
    NoLeader,
    /// The operation must run on the leader and this node is not it.
    #[error("this node is not the raft leader (leader: {leader:?})")]
    NotLeader {
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
    /// A compare-and-set condition failed.
    #[error("version conflict on {key}: expected version {expected}, current version {current}")]
    VersionConflict {
        /// Which document.
        key: DocKey,
        /// Expected version.
        expected: u64,
        /// Current version (0 = absent).
        current: u64,
    },
    /// The state machine refused a lease command (busy, not the holder,
    /// take-over of a changed lease).
    #[error("lease {name}: refused for {caller:?}: {outcome:?}")]
    LeaseRefused {
        /// Lease name.
        name: String,
        /// Who asked.
        caller: String,
        /// The refusal.
        outcome: Box<LeaseOutcome>,
    },
    /// Take-over refused: the lease is not expired on the leader's clock.
    #[error("lease {name} has not expired")]
    LeaseNotExpired {
        /// Lease name.
        name: String,
    },
    /// Take-over refused by the leader before proposing: the lease changed
    /// since it was observed (a renewal or another take-over committed).
    #[error("take-over of lease {name} rejected: lease changed (now {current:?})")]
    TakeoverRejected {
        /// Lease name.
        name: String,
        /// The lease as it is now.
        current: Option<LeaseRecord>,
    },
    /// A batch failed; nothing in it took effect.
    #[error("batch command {position} failed: {cause}")]
    BatchFailed {
        /// Index of the failing command.
        position: usize,
        /// Why it failed.
        cause: Box<StoreError>,
    },
    /// The request did not complete in time.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long.
        ms: u64,
    },
    /// Talking to another node failed.
    #[error("request to node {node} at {addr} failed: {message}")]
    Transport {
        /// Target node.
        node: NodeId,
        /// Its address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// Another membership change is still being committed; retried until
    /// the membership timeout.
    #[error("another membership change is in progress")]
    MembershipChangeInProgress,
    /// Raft itself reported an error (storage failure, shutdown, invalid
    /// membership change, ...).
    #[error("raft: {0}")]
    Raft(String),
}
