//! `/api/v1/cluster/*`: join, admission, leave, status.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs::{self, NodeEntry};
use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::ApiState;
use crate::daemon::credentials::secrets_equal;
use crate::domain::NodeName;

/// Header of `POST /cluster/join` that carries the join token: checked
/// before the body is read, like every other credential.
pub const JOIN_TOKEN_HEADER: &str = "x-ha-join-token";

/// Body of `POST /cluster/join` (authenticated by the join token in
/// [`JOIN_TOKEN_HEADER`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Name of the joining node.
    pub node: String,
    /// `host:port` of the joining node's HTTP server.
    pub addr: String,
}

/// Answer to a join: everything the new node stores in its credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    /// Raft id allocated to the node.
    pub node_id: u64,
    /// Cluster secret for `/raft`.
    pub cluster_secret: String,
    /// API token.
    pub api_token: String,
    /// Join token (so the new node can admit further nodes).
    pub join_token: String,
}

/// Refuses a join request without the right join token before its body
/// is read.
pub async fn require_join_token(
    State(st): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let given = req
        .headers()
        .get(JOIN_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    match given {
        Some(token) if secrets_equal(token, &st.creds.join_token) => {
            if let Some(auth) = req
                .extensions()
                .get::<raft::network::server::ConnectionAuth>()
            {
                auth.mark();
            }
            next.run(req).await
        }
        _ => {
            tracing::warn!("refused cluster join: missing or wrong join token");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong join token (header '{JOIN_TOKEN_HEADER}')"),
            )
            .into_response()
        }
    }
}

/// `POST /cluster/join`: registers the node name and allocates its id.
/// The node becomes a Raft member when its daemon calls `/cluster/members`.
pub async fn join(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> ApiResult<Json<JoinReply>> {
    let _: NodeName = req
        .node
        .parse()
        .map_err(|e| ApiError::field("node", format!("field 'node': {e}")))?;
    if req
        .addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(ApiError::field(
            "addr",
            format!("field 'addr': '{}' is not host:port", req.addr),
        ));
    }
    let mut dir = docs::nodes(&st.store).await?;
    // The first node registers itself right after bootstrapping; a join
    // before that would write a directory without it.
    if dir.version == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster is still initializing: retry in a moment",
        ));
    }
    let node_id = match dir.value.nodes.get(&req.node) {
        // A retried join of the same node at the same address gets its id back.
        Some(e) if e.addr == req.addr => e.id,
        Some(_) => {
            return Err(ApiError::field(
                "node",
                format!("node name '{}' is already a cluster member", req.node),
            ))
        }
        None => {
            let id = dir.value.next_id.max(2);
            dir.value.next_id = id + 1;
            dir.value.nodes.insert(
                req.node.clone(),
                NodeEntry {
                    id,
                    addr: req.addr.clone(),
                },
            );
            docs::put_nodes(&st.store, &dir.value, dir.version).await?;
            id
        }
    };
    Ok(Json(JoinReply {
        node_id,
        cluster_secret: st.creds.cluster_secret.clone(),
        api_token: st.creds.api_token.clone(),
        join_token: st.creds.join_token.clone(),
    }))
}

/// Body of `POST /cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// Raft id from the join.
    pub node_id: u64,
    /// `host:port`.
    pub addr: String,
}

/// `POST /cluster/members`: adds a registered node as learner, then voter.
pub async fn admit(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<AdmitRequest>,
) -> ApiResult<StatusCode> {
    let dir = docs::nodes(&st.store).await?.value;
    if !dir
        .nodes
        .values()
        .any(|e| e.id == req.node_id && e.addr == req.addr)
    {
        return Err(ApiError::field(
            "node_id",
            format!("node id {} at {} has not joined", req.node_id, req.addr),
        ));
    }
    let membership = st.store.membership();
    if !membership.voters.contains(&req.node_id) {
        if !membership.learners.contains(&req.node_id) {
            st.store.add_learner(req.node_id, &req.addr).await?;
        }
        st.store.promote_voter(req.node_id).await?;
    }
    Ok(StatusCode::OK)
}

/// `POST /cluster/leave`: removes this node from the cluster.
pub async fn leave(State(st): State<ApiState>) -> ApiResult<StatusCode> {
    let id = st.store.id();
    let membership = st.store.membership();
    if membership.voters.len() <= 1 && membership.voters.contains(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this node is the last voter: a cluster cannot leave itself",
        ));
    }
    // A node that leaves with services on it could only be fenced by its
    // watchdog: make the operator move them first.
    let snap = crate::daemon::snapshot::read(&st.store);
    let here: Vec<String> = snap
        .resources
        .values()
        .filter(|r| r.node == st.node)
        .map(|r| r.config.sid.to_string())
        .collect();
    if !here.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "node '{}' still has services: {}; move them first (ha-manager crm-command node-maintenance enable {}) or remove them",
                st.node,
                here.join(", "),
                st.node
            ),
        ));
    }
    let mut dir = docs::nodes(&st.store).await?;
    dir.value.nodes.retain(|_, e| e.id != id);
    docs::put_nodes(&st.store, &dir.value, dir.version).await?;
    st.store.remove_node(id).await?;
    st.left.notify_one();
    Ok(StatusCode::OK)
}

/// One member in `GET /cluster/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Raft id.
    pub id: u64,
    /// Node name (if registered).
    pub name: Option<String>,
    /// Address.
    pub addr: String,
    /// Voter (else learner).
    pub voter: bool,
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// This node's Raft id.
    pub node_id: u64,
    /// leader / follower / candidate / learner.
    pub raft_state: String,
    /// Current term.
    pub term: u64,
    /// Leader id.
    pub leader_id: Option<u64>,
    /// Leader name.
    pub leader: Option<String>,
    /// Last applied log index.
    pub applied_index: u64,
    /// Members.
    pub members: Vec<MemberView>,
}

/// Builds the cluster status from the local replica.
pub fn cluster_status(st: &ApiState) -> ClusterStatus {
    let status = st.store.status();
    let membership = st.store.membership();
    let (text, _) = docs::read_local_raw(&st.store, docs::NODES_DOC);
    let dir = docs::parse_nodes(&text).unwrap_or_default();
    let members = membership
        .addrs
        .iter()
        .map(|(id, addr)| MemberView {
            id: *id,
            name: dir.name_of(*id).map(str::to_string),
            addr: addr.clone(),
            voter: membership.voters.contains(id),
        })
        .collect();
    ClusterStatus {
        node: st.node.to_string(),
        node_id: status.id,
        raft_state: format!("{:?}", status.state).to_lowercase(),
        term: status.term,
        leader_id: status.leader,
        leader: status
            .leader
            .and_then(|l| dir.name_of(l).map(str::to_string)),
        applied_index: status.applied_index.unwrap_or(0),
        members,
    }
}

/// `GET /cluster/status`.
pub async fn status(State(st): State<ApiState>) -> Json<ClusterStatus> {
    Json(cluster_status(&st))
}

/// How long a joining daemon keeps asking for admission between attempts.
pub const ADMIT_RETRY: Duration = Duration::from_millis(500);
