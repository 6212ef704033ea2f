//! Disaster recovery on a stopped node: turn it into a one-node cluster
//! with everything its log holds, when the majority is lost for good.

use std::path::Path;

use crate::state::ClusterApp;
use crate::store::StartError;
use crate::types::{Node, NodeId, TypeConfig};

/// What [`force_single_member`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedMembership {
    /// Term of the new membership entry (above every term seen).
    pub term: u64,
    /// Its log index (right after the last local entry).
    pub index: u64,
}

/// Rewrites the Raft store in `data_dir` so that node `id` at `addr` is
/// the only voter; see `storage::SledLogStore::force_single_member`. The
/// database must not be open elsewhere (the daemon must be stopped): sled
/// refuses a second opener, which is reported as a storage error.
pub fn force_single_member(
    data_dir: &Path,
    id: NodeId,
    addr: &str,
) -> Result<ForcedMembership, StartError> {
    let storage_err = |source| StartError::Storage {
        dir: data_dir.display().to_string(),
        source,
    };
    let (log, _sm) =
        storage::open::<TypeConfig, _>(data_dir, ClusterApp::default()).map_err(storage_err)?;
    let node = Node {
        addr: addr.to_string(),
    };
    let (term, index) = log
        .force_single_member(id, node)
        .map_err(|e| StartError::Raft(format!("rewriting the membership: {e}")))?;
    Ok(ForcedMembership { term, index })
}
