//! The openraft type configuration of the cluster store.

use std::io::Cursor;

use crate::command::{Command, CommandResponse};

/// A node's Raft id.
pub type NodeId = u64;

/// What the store keeps about every member: its HTTP address (`host:port`).
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// openraft type config: application commands are [`Command`]s.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The openraft instance type used throughout the crate.
pub type Raft = openraft::Raft<TypeConfig>;

/// Log id with our node id type.
pub type LogId = openraft::LogId<NodeId>;
