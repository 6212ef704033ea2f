//! `/api/v1/cluster/delnode` and `/api/v1/cluster/set-address`: removing
//! a dead member and moving a member to a new address, run from any other
//! member (Proxmox's `pvecm delnode`; `crm_node --remove`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult, WriteErrors};
use super::extract::ApiJson;
use super::ApiState;
use crate::crm::fencing::{agent_lease_name, AgentLease};
use crate::crm::node_removal::{may_remove, RemovalFacts, RemovalRefused};
use crate::domain::NodeName;

/// Body of `POST /cluster/delnode`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelnodeRequest {
    /// Name of the member to remove.
    pub node: String,
}

/// Answer to a removal.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DelnodeReply {
    /// The removed node.
    pub node: String,
    /// Its former Raft id (never given out again).
    pub id: u64,
}

fn node_field(text: &str) -> ApiResult<NodeName> {
    text.parse()
        .map_err(|e| ApiError::field("node", format!("field 'node': {e}")))
}

/// `POST /cluster/delnode`: removes a member that can no longer run
/// anything (see [`may_remove`]) from the node directory and from Raft.
/// Its id is never reused, so a replacement under the same name joins as
/// a new member and catches up from a snapshot.
#[utoipa::path(
    post,
    path = "/cluster/delnode",
    tag = "cluster",
    request_body = DelnodeRequest,
    responses(
        (status = 200, description = "The member was removed", body = DelnodeReply),
        WriteErrors
    )
)]
pub async fn delnode(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<DelnodeRequest>,
) -> ApiResult<Json<DelnodeReply>> {
    let node = node_field(&req.node)?;
    // Linearizable: the replica below is at least as new as this read, so
    // a lease the node took back after fencing is seen.
    let mut dir = docs::nodes(&st.store).await?;
    let snap = crate::daemon::snapshot::read(&st.store);
    let membership = st.store.membership();
    let dir_id = dir.value.nodes.get(node.as_str()).map(|e| e.id);
    // A node directory entry without Raft membership (or the reverse) is a
    // removal that stopped half-way: it is finished like a whole one.
    let raft_id = dir_id.filter(|id| membership.addrs.contains_key(id));
    let lease_name = agent_lease_name(node.as_str());
    let lease = AgentLease::of(&node, snap.leases.get(&lease_name), false);
    let on_node = |n: &NodeName| *n == node;
    let crm_services = snap
        .manager_status
        .service_status
        .iter()
        .filter(|(_, r)| on_node(&r.node) || r.target.as_ref().is_some_and(on_node))
        .map(|(sid, r)| (sid.clone(), r.state.to_string()))
        .collect();
    let placed = snap
        .resources
        .iter()
        .filter(|(_, r)| on_node(&r.node))
        .map(|(sid, _)| sid.clone())
        .collect();
    let facts = RemovalFacts {
        here: &st.node,
        node: &node,
        is_member: dir_id.is_some(),
        is_voter: dir_id.is_some_and(|id| membership.voters.contains(&id)),
        voters: membership.voters.len(),
        lease,
        crm_services,
        placed,
    };
    if let Err(refused) = may_remove(&facts) {
        tracing::warn!("delnode {node} refused: {refused}");
        let status = match refused {
            RemovalRefused::NotMember(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        return Err(ApiError::new(status, refused.to_string()));
    }
    let Some(id) = dir_id else {
        return Err(ApiError::not_found(format!(
            "node '{node}' is not a cluster member"
        )));
    };
    tracing::warn!("removing node '{node}' (id {id}) from the cluster (delnode)");
    // The directory first: from then on the CRM no longer counts the node
    // and places nothing there; then the Raft membership.
    dir.value.nodes.remove(node.as_str());
    docs::put_nodes(&st.store, &dir.value, dir.version).await?;
    if raft_id.is_some() {
        st.store.remove_node(id).await?;
    }
    // Its last LRM status would go on showing it `active` in `status`.
    if snap.lrm_status.contains_key(&node) {
        if let Err(e) = st
            .store
            .delete_doc(raft::DocKey::LrmStatus(node.to_string()), None)
            .await
        {
            tracing::warn!("delnode {node}: its LRM status stays: {e}");
        }
    }
    // Its usage report would keep counting as a node's statistics.
    if snap.node_usage.contains_key(&node) {
        let key = raft::DocKey::Config(docs::node_usage_doc(node.as_str()));
        if let Err(e) = st.store.delete_doc(key, None).await {
            tracing::warn!("delnode {node}: its usage report stays: {e}");
        }
    }
    tracing::warn!("node '{node}' (id {id}) removed from the cluster");
    Ok(Json(DelnodeReply {
        node: node.to_string(),
        id,
    }))
}

/// Body of `POST /cluster/set-address`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAddressRequest {
    /// The member.
    pub node: String,
    /// Its new `host:port` (what its `advertise` now says).
    pub addr: String,
}

/// `host:port` with a numeric port.
pub fn check_addr(addr: &str) -> ApiResult<()> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "addr",
            format!("field 'addr': '{addr}' is not host:port"),
        ))
    }
}

/// `POST /cluster/set-address`: a member moved to another address (its
/// config's `listen`/`advertise` changed). Same id, same role: Raft and the
/// node directory are told the new address.
#[utoipa::path(
    post,
    path = "/cluster/set-address",
    tag = "cluster",
    request_body = SetAddressRequest,
    responses(
        (status = 200, description = "The address was changed"),
        WriteErrors
    )
)]
pub async fn set_address(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<SetAddressRequest>,
) -> ApiResult<StatusCode> {
    let node = node_field(&req.node)?;
    check_addr(&req.addr)?;
    let mut dir = docs::nodes(&st.store).await?;
    if let Some((other, _)) = dir
        .value
        .nodes
        .iter()
        .find(|(n, e)| e.addr == req.addr && n.as_str() != node.as_str())
    {
        return Err(ApiError::field(
            "addr",
            format!(
                "field 'addr': {} is the address of node '{other}'",
                req.addr
            ),
        ));
    }
    let Some(entry) = dir.value.nodes.get_mut(node.as_str()) else {
        return Err(ApiError::not_found(format!(
            "node '{node}' is not a cluster member"
        )));
    };
    let id = entry.id;
    entry.addr = req.addr.clone();
    tracing::warn!("node '{node}' (id {id}) moves to {}", req.addr);
    st.store.set_address(id, &req.addr).await?;
    docs::put_nodes(&st.store, &dir.value, dir.version).await?;
    Ok(StatusCode::OK)
}
