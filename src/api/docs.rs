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
use crate::config::{parse_rules, write_rules};
use crate::domain::{GroupConfig, ResourceConfig, Rule};

/// Document name of the node directory.
pub const NODES_DOC: &str = "nodes";
/// Document name of resources.cfg.
pub const RESOURCES_DOC: &str = "resources";
/// Document name of groups.cfg.
pub const GROUPS_DOC: &str = "groups";
/// Document name of rules.cfg (node- and resource-affinity rules).
pub const RULES_DOC: &str = "rules";
/// Document name of the cluster resource scheduling options: the value of
/// datacenter.cfg's `crs` key (`ha=static,ha-rebalance-on-start=1`).
pub const CRS_DOC: &str = "crs";
/// Document name of the cluster CA set during and after a CA rotation
/// (`api::ca`: the CAs with their keys, and each member's report). Never
/// part of a backup.
pub const CA_DOC: &str = "cluster-ca";
/// Prefix of the per-node usage reports (`node-usage/<node>`: a
/// `crm::NodeUsageReport` as JSON), written by each node's usage reporter
/// and read by the CRM for the `static`/`dynamic` schedulers.
pub const NODE_USAGE_PREFIX: &str = "node-usage/";

/// The document name of `node`'s usage report.
pub fn node_usage_doc(node: &str) -> String {
    format!("{NODE_USAGE_PREFIX}{node}")
}

/// One cluster member in the node directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Raft id.
    pub id: u64,
    /// `host:port` of its HTTP server.
    pub addr: String,
    /// SHA-256 (hex) of the certificates this member may present: the one
    /// it was given at join or renewal, and during a renewal the previous
    /// one ([`super::node_certs`]). Any other certificate, even one of the
    /// cluster CA naming this member, is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<String>,
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

/// Reads a document's text and version (linearizable); empty text and
/// version 0 if it does not exist.
pub async fn read_raw_text(store: &ClusterStore, name: &str) -> ApiResult<(String, u64)> {
    read_raw(store, name).await
}

/// Writes a document's text with CAS on `version` (0: must not exist).
pub async fn put_raw_text(
    store: &ClusterStore,
    name: &str,
    text: String,
    version: u64,
) -> ApiResult<u64> {
    put_text(store, name, text, version).await
}

/// Reads a document's text (linearizable); empty if it does not exist.
pub async fn read_text(store: &ClusterStore, name: &str) -> ApiResult<String> {
    Ok(read_raw(store, name).await?.0)
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
    put_text(store, NODES_DOC, text, version).await
}

/// Reads a section-config document (linearizable) and parses it as
/// `file` (the name errors give).
async fn read_cfg<T>(
    store: &ClusterStore,
    name: &str,
    file: &str,
    parse: fn(&str, &str) -> Result<Vec<T>, crate::config::ConfigError>,
) -> ApiResult<Versioned<Vec<T>>> {
    let (text, version) = read_raw(store, name).await?;
    let value = parse(&text, file).map_err(|e| corrupt(name, e))?;
    Ok(Versioned { value, version })
}

/// Writes a document's text with CAS on `version`.
async fn put_text(store: &ClusterStore, name: &str, text: String, version: u64) -> ApiResult<u64> {
    Ok(store
        .put_doc(DocKey::Config(name.into()), Some(version), text)
        .await?)
}

/// Reads resources.cfg (linearizable).
pub async fn resources(store: &ClusterStore) -> ApiResult<Versioned<Vec<ResourceConfig>>> {
    read_cfg(store, RESOURCES_DOC, "resources.cfg", parse_resources_cfg).await
}

/// Writes resources.cfg with CAS.
pub async fn put_resources(
    store: &ClusterStore,
    res: &[ResourceConfig],
    version: u64,
) -> ApiResult<u64> {
    put_text(store, RESOURCES_DOC, write_resources_cfg(res), version).await
}

/// Reads groups.cfg (linearizable).
pub async fn groups(store: &ClusterStore) -> ApiResult<Versioned<Vec<GroupConfig>>> {
    read_cfg(store, GROUPS_DOC, "groups.cfg", parse_groups_cfg).await
}

/// Writes groups.cfg with CAS.
pub async fn put_groups(
    store: &ClusterStore,
    groups: &[GroupConfig],
    version: u64,
) -> ApiResult<u64> {
    put_text(store, GROUPS_DOC, write_groups_cfg(groups), version).await
}

/// Reads rules.cfg with both rule types, in file order (linearizable).
pub async fn rules(store: &ClusterStore) -> ApiResult<Versioned<Vec<Rule>>> {
    read_cfg(store, RULES_DOC, "rules.cfg", parse_rules).await
}

/// Writes rules.cfg with CAS.
pub async fn put_rules(store: &ClusterStore, rules: &[Rule], version: u64) -> ApiResult<u64> {
    put_text(store, RULES_DOC, write_rules(rules), version).await
}

/// Parses the stored `crs` document (an absent one is the defaults).
pub fn parse_crs(text: &str) -> Result<crate::domain::CrsOptions, crate::config::ConfigErrorKind> {
    crate::config::datacenter::parse_crs_property(text.trim())
}

/// Reads the cluster resource scheduling options (linearizable).
pub async fn crs(store: &ClusterStore) -> ApiResult<Versioned<crate::domain::CrsOptions>> {
    let (text, version) = read_raw(store, CRS_DOC).await?;
    let value = parse_crs(&text).map_err(|e| corrupt(CRS_DOC, e))?;
    Ok(Versioned { value, version })
}

/// Writes the cluster resource scheduling options with CAS.
pub async fn put_crs(
    store: &ClusterStore,
    crs: &crate::domain::CrsOptions,
    version: u64,
) -> ApiResult<u64> {
    let text = crate::config::datacenter::write_crs_property(crs);
    put_text(store, CRS_DOC, text, version).await
}
