//! Errors of the cluster store API.

use serde::{Deserialize, Serialize};

use crate::command::{DocKey, Lease};
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
    /// Acquire failed: the lease is held by someone else.
    #[error("lease {name} is held by {holder}")]
    LeaseBusy {
        /// Lease name.
        name: String,
        /// Current holder.
        holder: String,
    },
    /// Renew or release by a node that does not hold the lease.
    #[error("lease {name} is not held by {caller} (current holder: {current:?})")]
    LeaseNotHolder {
        /// Lease name.
        name: String,
        /// The caller.
        caller: String,
        /// Current holder, if any.
        current: Option<String>,
    },
    /// Take-over refused: the lease is not expired on the leader's clock.
    #[error("lease {name} has not expired")]
    LeaseNotExpired {
        /// Lease name.
        name: String,
    },
    /// Take-over refused at apply: a renewal (or another take-over) was
    /// committed since the expiry was observed.
    #[error("take-over of lease {name} rejected: lease changed (now {current:?})")]
    TakeoverRejected {
        /// Lease name.
        name: String,
        /// The lease as it is now.
        current: Option<Lease>,
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
