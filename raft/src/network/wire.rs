//! What travels between nodes: every HTTPS body is `[WIRE_VERSION][postcard]`;
//! the sender is authenticated by its TLS client certificate.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use storage::codec::{self, CodecError};

use crate::command::{Command, CommandResponse};
use crate::error::StoreError;
use crate::types::NodeId;

/// Format version of every request and response body. 2: mutual TLS
/// instead of a shared secret (a node of version 1 cannot reach a node of
/// version 2 at all).
pub const WIRE_VERSION: u8 = 2;

/// Path (under the mount point) of the AppendEntries RPC.
pub const PATH_APPEND: &str = "/append";
/// Path of the Vote RPC.
pub const PATH_VOTE: &str = "/vote";
/// Path of the InstallSnapshot RPC (one chunk per request).
pub const PATH_SNAPSHOT: &str = "/snapshot";
/// Path of client requests forwarded from a follower to the leader.
pub const PATH_FORWARD: &str = "/forward";

/// Encodes a body.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    codec::encode_versioned(WIRE_VERSION, what, value)
}

/// Decodes a body; garbage, truncation or a wrong version is an error.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    codec::decode_versioned(WIRE_VERSION, what, bytes)
}

/// A client request a follower forwards to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose a command.
    Write(Command),
    /// Confirm leadership and return the index a linearizable read must
    /// wait for.
    ReadIndex,
    /// Add a node as learner (blocks until it has caught up).
    AddLearner {
        /// Its id.
        id: NodeId,
        /// Its HTTP address.
        addr: String,
    },
    /// Promote a learner to voter.
    PromoteVoter {
        /// Its id.
        id: NodeId,
    },
    /// Remove a node (voter or learner) from the cluster.
    RemoveNode {
        /// Its id.
        id: NodeId,
    },
    /// Change a member's HTTP address (the node keeps its id and role).
    SetAddress {
        /// Its id.
        id: NodeId,
        /// The new `host:port`.
        addr: String,
    },
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The command was committed and applied.
    Written(CommandResponse),
    /// Reads must wait until this log index is applied.
    ReadIndex(u64),
    /// The membership change was committed at this index.
    Membership(u64),
}

/// Result type carried in a forward response body.
pub type ForwardResult = Result<ForwardReply, StoreError>;
