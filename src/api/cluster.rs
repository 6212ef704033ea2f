//! `/api/v1/cluster/*`: join, admission, leave, status.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs::{self, NodeEntry};
use super::error::{ApiError, ApiResult, ErrorBody, ReadErrors, WriteErrors};
use super::extract::ApiJson;
use super::ApiState;
use crate::domain::NodeName;

/// Header of `POST /cluster/join` that carries the join token: checked
/// before the body is read, like every other credential
/// (`join_tokens::require_join_token`).
pub const JOIN_TOKEN_HEADER: &str = "x-ha-join-token";

/// Body of `POST /cluster/join` (authenticated by the join token in
/// [`JOIN_TOKEN_HEADER`]).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Name of the joining node.
    pub node: String,
    /// `host:port` of the joining node's HTTP server.
    pub addr: String,
    /// The Raft wire format the joining node speaks (1 when absent).
    #[serde(default = "first_wire_version")]
    pub wire_version: u8,
    /// The joining node's ha-manager version (empty when absent).
    #[serde(default)]
    pub software: String,
    /// A certificate signing request (PEM) for the joining node's key;
    /// only its public key is used.
    pub csr: String,
}

fn first_wire_version() -> u8 {
    1
}

/// Refuses a node that speaks another Raft wire format, naming both
/// sides' versions: it could neither replicate nor vote here.
fn check_wire_version(req: &JoinRequest) -> ApiResult<()> {
    let ours = raft::network::wire::WIRE_VERSION;
    if req.wire_version == ours {
        return Ok(());
    }
    let theirs = if req.software.is_empty() {
        "an unknown version".to_string()
    } else {
        req.software.clone()
    };
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "node '{}' runs ha-manager {theirs} with Raft wire format {}; this cluster runs \
             ha-manager {} with wire format {ours}: install the same version on every node \
             (see the upgrade section of the deploy guide)",
            req.node,
            req.wire_version,
            env!("CARGO_PKG_VERSION")
        ),
    ))
}

/// Answer to a join: the node's id and certificate, and the CA (the new
/// member signs the certificates of later joins). No join token: those are
/// made with `cluster join-token create`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinReply {
    /// Raft id allocated to the node.
    pub node_id: u64,
    /// The node's certificate (PEM), for the key of its request.
    pub node_cert: String,
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    /// The cluster CA key (PEM).
    pub ca_key: String,
}

/// `POST /cluster/join`: registers the node name and allocates its id.
/// The node becomes a Raft member when its daemon calls `/cluster/members`.
#[utoipa::path(
    post,
    path = "/cluster/join",
    tag = "cluster",
    request_body = JoinRequest,
    security(("join_token" = [])),
    responses(
        (status = 200, description = "The node is registered: its id, certificate and the CA", body = JoinReply),
        (status = 400, description = "Bad input; `field` names it and nothing changed", body = ErrorBody),
        (status = 401, description = "Missing, unknown, wrong or expired join token", body = ErrorBody),
        (status = 409, description = "The name is a member already, or the node speaks another Raft wire format", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not 'Content-Type: application/json'", body = ErrorBody),
        (status = 500, description = "The cluster store failed or holds a corrupt document", body = ErrorBody),
        (status = 503, description = "No cluster leader, or no answer in time", body = ErrorBody)
    )
)]
pub async fn join(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> ApiResult<Json<JoinReply>> {
    let _: NodeName = req
        .node
        .parse()
        .map_err(|e| ApiError::field("node", format!("field 'node': {e}")))?;
    super::members::check_addr(&req.addr)?;
    check_wire_version(&req)?;
    let mut dir = docs::nodes(&st.store).await?;
    // The first node registers itself right after bootstrapping; a join
    // before that would write a directory without it.
    if dir.version == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster is still initializing: retry in a moment",
        ));
    }
    let membership = st.store.membership();
    let node_id = match dir.value.nodes.get(&req.node) {
        // A retried join of the same node at the same address gets its id
        // back, as long as it never became a Raft member: a member that
        // joins again has lost its Raft log (a wiped or new disk), and the
        // old id would make the leader expect log entries it no longer has.
        Some(e) if e.addr == req.addr && !membership.addrs.contains_key(&e.id) => e.id,
        Some(e) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "node name '{}' is already a cluster member (id {} at {}); to replace \
                     that node (new disk or new address), remove the old member first with \
                     `ha-manager cluster delnode {}` on a member, then join again; to move \
                     it to a new address, use `ha-manager cluster set-address {} ADDR`",
                    req.node, e.id, e.addr, req.node, req.node
                ),
            ))
        }
        None => {
            let id = dir.value.next_id.max(2);
            dir.value.next_id = id + 1;
            id
        }
    };
    let ca = st.tls_files.load_ca().map_err(|e| {
        tracing::error!(error = %e, "cannot sign a joining node's certificate");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("this member cannot sign certificates: {e}"),
        )
    })?;
    let node_cert = raft::tls::pki::sign_node_csr(
        &ca,
        &req.csr,
        node_id,
        &req.node,
        std::time::SystemTime::now(),
    )
    .map_err(|e| ApiError::field("csr", format!("field 'csr': {e}")))?;
    let fingerprint = super::ca::pem_fingerprint(&node_cert).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a certificate just made does not parse",
        )
    })?;
    // The entry lists exactly this certificate (a retried join replaces
    // the one its earlier attempt got): nothing else may speak for the
    // node. Written with CAS before the certificate is handed out.
    dir.value.nodes.insert(
        req.node.clone(),
        NodeEntry {
            id: node_id,
            addr: req.addr.clone(),
            certs: vec![fingerprint.clone()],
        },
    );
    docs::put_nodes(&st.store, &dir.value, dir.version).await?;
    tracing::info!(target: "audit", node = %req.node, id = node_id, %fingerprint, "signed the certificate of a joining node");
    Ok(Json(JoinReply {
        node_id,
        node_cert,
        ca_cert: ca.cert_pem,
        ca_key: ca.key_pem,
    }))
}

/// Answer of `POST /cluster/renew-cert`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenewedCert {
    /// The node.
    pub node: String,
    /// SHA-256 of the new certificate (hex).
    pub fingerprint: String,
    /// End of its validity, unix seconds.
    pub not_after: u64,
}

/// `POST /cluster/renew-cert`: a new key and certificate for this node,
/// signed by the cluster CA, written to its TLS files and used from the
/// next handshake on (connections that are open keep their session). The
/// node's name and id stay; its peers need nothing new, as they trust
/// the CA.
#[utoipa::path(
    post,
    path = "/cluster/renew-cert",
    tag = "cluster",
    responses(
        (status = 200, description = "A new key and certificate for this node", body = RenewedCert),
        WriteErrors
    )
)]
pub async fn renew_cert(State(st): State<ApiState>) -> ApiResult<Json<RenewedCert>> {
    if let Some(phase) = super::ca::rotation_in_progress(&st.store) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "a CA rotation to the CA {phase} is in progress: the CA task renews the \
                 certificates with it; run `cluster ca finish` first"
            ),
        ));
    }
    let internal = |e: String| {
        tracing::error!(error = %e, "certificate renewal");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("certificate renewal: {e}"),
        )
    };
    let ca = st
        .tls_files
        .load_ca()
        .map_err(|e| internal(format!("reading the CA: {e}")))?;
    let trust = ca.cert_pem.clone();
    // `ca.crt` may hold more than one CA; the first is the one in charge.
    let ca = raft::tls::pki::CaMaterial {
        cert_pem: super::ca::first_pem_block(&ca.cert_pem),
        key_pem: ca.key_pem,
    };
    let renewed = super::node_certs::renew_own_certificate(&st, &ca, &trust)
        .await
        .map_err(internal)?;
    let not_after = raft::tls::pki::not_after(&renewed.cert_pem)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    tracing::info!(target: "audit", fingerprint = %renewed.fingerprint, "node certificate renewed");
    Ok(Json(RenewedCert {
        node: st.node.to_string(),
        fingerprint: renewed.fingerprint,
        not_after,
    }))
}

/// Body of `POST /cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// Raft id from the join.
    pub node_id: u64,
    /// `host:port`.
    pub addr: String,
}

/// `POST /cluster/members`: adds a registered node as learner, then voter.
#[utoipa::path(
    post,
    path = "/cluster/members",
    tag = "cluster",
    request_body = AdmitRequest,
    responses(
        (status = 200, description = "The node is a voter"),
        WriteErrors
    )
)]
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
#[utoipa::path(
    post,
    path = "/cluster/leave",
    tag = "cluster",
    responses(
        (status = 200, description = "This node left the cluster; its daemon stops"),
        WriteErrors
    )
)]
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
    // Another member takes this node out of the directory and the Raft
    // membership: whichever of the two this node did first, its own
    // request for the second would be refused (its certificate is then no
    // member's), so it asks, with its certificate, someone who stays.
    let client =
        reqwest::Client::builder()
            .use_preconfigured_tls(st.store.tls().client_config().map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("TLS: {e}"))
            })?)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut last = String::from("no other member");
    for (peer, addr) in membership.addrs.iter().filter(|(p, _)| **p != id) {
        let reply = client
            .post(format!(
                "https://{addr}/api/v1{}",
                crate::node_cli::client::routes::CLUSTER_REMOVE_SELF.template
            ))
            .json(&RemoveSelf { node_id: id })
            .send()
            .await;
        match reply {
            Ok(r) if r.status().is_success() => {
                tracing::info!(via = peer, "left the cluster");
                st.left.notify_one();
                return Ok(StatusCode::OK);
            }
            Ok(r) => {
                last = format!(
                    "{addr}: HTTP {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no member could take this node out of the cluster (last: {last}); retry"),
    ))
}

/// Body of `POST /cluster/remove-self`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveSelf {
    /// Raft id of the leaving node.
    pub node_id: u64,
}

/// `POST /cluster/remove-self`: a leaving member (see [`leave`]) asks this
/// member to take it out of the node directory and the Raft membership.
/// Only the node itself, by its certificate, may ask (an operator removes
/// another node with `delnode`, which has its own checks).
#[utoipa::path(
    post,
    path = "/cluster/remove-self",
    tag = "cluster",
    request_body = RemoveSelf,
    responses(
        (status = 200, description = "The calling member was removed"),
        WriteErrors
    )
)]
pub async fn remove_self(
    State(st): State<ApiState>,
    axum::Extension(caller): axum::Extension<super::tokens::Caller>,
    ApiJson(req): ApiJson<RemoveSelf>,
) -> ApiResult<StatusCode> {
    let mut dir = docs::nodes(&st.store).await?;
    let name = dir
        .value
        .name_of(req.node_id)
        .map(str::to_string)
        .ok_or_else(|| ApiError::not_found(format!("no member with id {}", req.node_id)))?;
    if caller.id != format!("node:{name}") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "only node '{name}' itself may ask to leave ('{}' asked); use `cluster delnode`",
                caller.id
            ),
        ));
    }
    if req.node_id == st.store.id() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a leaving node asks another member",
        ));
    }
    dir.value.nodes.retain(|_, e| e.id != req.node_id);
    docs::put_nodes(&st.store, &dir.value, dir.version).await?;
    st.store.remove_node(req.node_id).await?;
    tracing::info!(target: "audit", node = %name, id = req.node_id, "member left the cluster");
    Ok(StatusCode::OK)
}

/// One member in `GET /cluster/status`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Raft id.
    pub id: u64,
    /// Node name (if registered).
    pub name: Option<String>,
    /// Address.
    pub addr: String,
    /// Voter (else learner).
    pub voter: bool,
    /// `leader`, `voter` or `learner`.
    #[serde(default)]
    pub role: String,
    /// Log entries the member is behind the leader; known only when the
    /// answering node is the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lag: Option<u64>,
    /// Milliseconds since the member last renewed its agent lease, as the
    /// leader saw it; known only when the answering node is the leader and
    /// the member holds its lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    let lag = st.store.replication_lag();
    let leases = st.store.read_local(|s| {
        s.leases()
            .map(|(n, l)| (n.to_string(), (l.holder.clone(), l.ttl_ms)))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    let members = membership
        .addrs
        .iter()
        .map(|(id, addr)| {
            let name = dir.name_of(*id).map(str::to_string);
            let voter = membership.voters.contains(id);
            let role = if status.leader == Some(*id) {
                "leader"
            } else if voter {
                "voter"
            } else {
                "learner"
            };
            // ttl minus what is left of the lease = time since the grant
            // or renewal the leader last applied.
            let last_contact_ms = name.as_deref().and_then(|n| {
                let lease = crate::crm::fencing::agent_lease_name(n);
                let (holder, ttl_ms) = leases.value.get(&lease)?;
                if holder != n {
                    return None;
                }
                let left = st.store.lease_time_left(&lease)?;
                let left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                Some(ttl_ms.saturating_sub(left))
            });
            MemberView {
                id: *id,
                name,
                addr: addr.clone(),
                voter,
                role: role.to_string(),
                log_lag: lag.as_ref().and_then(|l| l.get(id).copied()),
                last_contact_ms: last_contact_ms.filter(|_| lag.is_some()),
            }
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
#[utoipa::path(
    get,
    path = "/cluster/status",
    tag = "cluster",
    responses(
        (status = 200, description = "Membership, leader and this node as this node sees them", body = ClusterStatus),
        ReadErrors
    )
)]
pub async fn status(State(st): State<ApiState>) -> Json<ClusterStatus> {
    Json(cluster_status(&st))
}

/// How long a joining daemon keeps asking for admission between attempts.
pub const ADMIT_RETRY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_another_wire_format_is_refused_naming_both_versions() {
        let mut req = JoinRequest {
            node: "node4".into(),
            addr: "10.0.0.4:7400".into(),
            wire_version: raft::network::wire::WIRE_VERSION,
            software: "9.9.9".into(),
            csr: String::new(),
        };
        assert!(check_wire_version(&req).is_ok());
        req.wire_version = raft::network::wire::WIRE_VERSION + 1;
        let e = check_wire_version(&req).unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let text = e.body.error;
        assert!(
            text.contains("9.9.9") && text.contains(env!("CARGO_PKG_VERSION")),
            "{text}"
        );
        assert!(
            text.contains(&format!("wire format {}", req.wire_version)),
            "{text}"
        );
        // A request without the version fields reads as wire format 1.
        // (Builds that sent the join token in the body are refused by
        // `require_join_token` before this, with a hint to upgrade.)
        let old: JoinRequest =
            serde_json::from_str(r#"{"node":"n","addr":"a:1","csr":""}"#).unwrap();
        assert_eq!(old.wire_version, 1);
    }
}
