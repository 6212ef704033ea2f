//! Typed access to the configuration documents in the cluster store.
//!
//! Every document carries a version (the log index of its last write; 0 =
//! absent). Writers pass the version they read, so concurrent edits fail
//! with a conflict instead of overwriting each other.

use std::collections::BTreeMap;

use raft::{ClusterStore, DocKey};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use crate::config::{parse_groups_cfg, parse_resources_cfg, write_groups_cfg, write_resources_cfg};
use crate::domain::{GroupConfig, ResourceConfig};

/// Document name of the node directory.
pub const NODES_DOC: &str = "nodes";
/// Document name of resources.cfg.
pub const RESOURCES_DOC: &str = "resources";
/// Document name of groups.cfg.
pub const GROUPS_DOC: &str = "groups";

/// One cluster member in the node directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Raft id.
    pub id: u64,
    /// `host:port` of its HTTP server.
    pub addr: String,
}

/// Node name -> Raft id and address. Ids are never reused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDirectory {
    /// The id the next joining node gets.
    pub next_id: u64,
    /// Members by node name.
    pub nodes: BTreeMap<String, NodeEntry>,
}

impl NodeDirectory {
    /// The name of the node with Raft id `id`.
    pub fn name_of(&self, id: u64) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, e)| e.id == id)
            .map(|(n, _)| n.as_str())
    }
}

/// A parsed document and the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The contents.
    pub value: T,
    /// Version (0 = the document does not exist yet).
    pub version: u64,
}

async fn read_raw(store: &ClusterStore, name: &str) -> ApiResult<(String, u64)> {
    let key = DocKey::Config(name.to_string());
    let doc = store
        .read_linearizable(|s| s.doc(&key).cloned())
        .await?
        .value;
    Ok(doc.map_or((String::new(), 0), |d| (d.value, d.version)))
}

/// Reads the raw document from the local replica without a quorum round.
pub fn read_local_raw(store: &ClusterStore, name: &str) -> (String, u64) {
    let key = DocKey::Config(name.to_string());
    store
        .read_local(|s| s.doc(&key).cloned())
        .value
        .map_or((String::new(), 0), |d| (d.value, d.version))
}

fn corrupt(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("stored document '{name}' is invalid: {e}"),
    )
}

/// Parses the node directory text.
pub fn parse_nodes(text: &str) -> Result<NodeDirectory, serde_json::Error> {
    if text.is_empty() {
        return Ok(NodeDirectory::default());
    }
    serde_json::from_str(text)
}

/// Reads the node directory (linearizable).
pub async fn nodes(store: &ClusterStore) -> ApiResult<Versioned<NodeDirectory>> {
    let (text, version) = read_raw(store, NODES_DOC).await?;
    let value = parse_nodes(&text).map_err(|e| corrupt(NODES_DOC, e))?;
    Ok(Versioned { value, version })
}

/// Writes the node directory with CAS.
pub async fn put_nodes(store: &ClusterStore, dir: &NodeDirectory, version: u64) -> ApiResult<u64> {
    let text = serde_json::to_string(dir).map_err(|e| corrupt(NODES_DOC, e))?;
    Ok(store
        .put_doc(DocKey::Config(NODES_DOC.into()), Some(version), text)
        .await?)
}

/// Reads resources.cfg (linearizable).
pub async fn resources(store: &ClusterStore) -> ApiResult<Versioned<Vec<ResourceConfig>>> {
    let (text, version) = read_raw(store, RESOURCES_DOC).await?;
    let value =
        parse_resources_cfg(&text, "resources.cfg").map_err(|e| corrupt(RESOURCES_DOC, e))?;
    Ok(Versioned { value, version })
}

/// Writes resources.cfg with CAS.
pub async fn put_resources(
    store: &ClusterStore,
    res: &[ResourceConfig],
    version: u64,
) -> ApiResult<u64> {
    Ok(store
        .put_doc(
            DocKey::Config(RESOURCES_DOC.into()),
            Some(version),
            write_resources_cfg(res),
        )
        .await?)
}

/// Reads groups.cfg (linearizable).
pub async fn groups(store: &ClusterStore) -> ApiResult<Versioned<Vec<GroupConfig>>> {
    let (text, version) = read_raw(store, GROUPS_DOC).await?;
    let value = parse_groups_cfg(&text, "groups.cfg").map_err(|e| corrupt(GROUPS_DOC, e))?;
    Ok(Versioned { value, version })
}

/// Writes groups.cfg with CAS.
pub async fn put_groups(
    store: &ClusterStore,
    groups: &[GroupConfig],
    version: u64,
) -> ApiResult<u64> {
    Ok(store
        .put_doc(
            DocKey::Config(GROUPS_DOC.into()),
            Some(version),
            write_groups_cfg(groups),
        )
        .await?)
}
