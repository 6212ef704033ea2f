//! Incoming HTTP: the axum router for `/raft`.
//!
//! Every request must come over a TLS connection whose client presented a
//! node certificate of the cluster CA (the server that terminates TLS puts
//! its [`PeerIdentity`] on the request), naming a current member: a
//! removed node is refused from the moment its removal is in this node's
//! log. Anything else is refused with 401/403 and logged by a middleware
//! that runs before the body is read. A Raft RPC must moreover be sent by
//! the node its certificate names (the vote's node), so one member cannot
//! speak for another. Bodies are then capped
//! per route (small for votes, large only for append and snapshot).
//! Bodies that do not decode (garbage, truncation, wrong format version)
//! are refused with 400 naming the problem. Neither touches the Raft node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{self, ForwardRequest};
use crate::store::ClusterStore;
use crate::tls::PeerIdentity;
use crate::types::TypeConfig;

/// Largest append-entries or snapshot body (snapshot chunks are 1 MiB,
/// append batches are bounded by openraft's max payload entries).
pub const BULK_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Largest forwarded client request (a config document of an import is
/// at most 4 MiB of text).
pub const FORWARD_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Largest vote body (a few numbers).
pub const VOTE_BODY_LIMIT: usize = 64 * 1024;

/// A request extension the HTTP server puts on every request of one
/// connection; whoever authenticates a request sets it, so the server can
/// tell connections of peers and operators (never evicted) from
/// connections that have proven nothing (evicted first when the
/// connection limit is reached).
#[derive(Debug, Clone, Default)]
pub struct ConnectionAuth(Arc<AtomicBool>);

impl ConnectionAuth {
    /// Records that a request on this connection was authenticated.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a request on this connection was authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Routes of the Raft RPC and forwarding endpoints, relative to where they
/// are mounted. The daemon mounts them with
/// `Router::new().nest("/raft", store.router())`.
pub fn router(store: ClusterStore) -> Router {
    Router::new()
        .route(
            wire::PATH_APPEND,
            post(append).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route(
            wire::PATH_VOTE,
            post(vote).layer(DefaultBodyLimit::max(VOTE_BODY_LIMIT)),
        )
        .route(
            wire::PATH_SNAPSHOT,
            post(snapshot).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route(
            wire::PATH_FORWARD,
            post(forward).layer(DefaultBodyLimit::max(FORWARD_BODY_LIMIT)),
        )
        .route_layer(middleware::from_fn_with_state(
            store.clone(),
            require_member,
        ))
        .with_state(store)
}

fn refuse(status: StatusCode, path: &str, why: String) -> Response {
    tracing::warn!(%path, reason = %why, "refused raft request");
    (status, why).into_response()
}

/// Refuses a request that does not come from a member's certificate,
/// before its body is read.
async fn require_member(State(store): State<ClusterStore>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(peer) = req.extensions().get::<PeerIdentity>().cloned() else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            &path,
            "no node certificate: Raft requests need a client certificate of this cluster's CA"
                .into(),
        );
    };
    let membership = store.membership();
    // A node that has no membership yet (it is being added as a learner
    // and has not received its first entries) cannot tell members apart;
    // it accepts any node certificate of its CA until it has one.
    let known = membership.addrs.is_empty() || membership.addrs.contains_key(&peer.id);
    if !known {
        return refuse(
            StatusCode::FORBIDDEN,
            &path,
            format!(
                "the certificate of node '{}' (id {}, sha256 {}) is not a member's: refused",
                peer.name, peer.id, peer.fingerprint
            ),
        );
    }
    if let Some(check) = store.peer_check() {
        if let Err(why) = check(&peer) {
            return refuse(StatusCode::FORBIDDEN, &path, why);
        }
    }
    if let Some(auth) = req.extensions().get::<ConnectionAuth>() {
        auth.mark();
    }
    next.run(req).await
}

/// Refuses a Raft RPC whose sender (the node of its vote) is not the node
/// of the certificate it came with.
fn check_sender(peer: Option<&PeerIdentity>, sender: u64, what: &str) -> Result<(), Response> {
    match peer {
        Some(p) if p.id == sender => Ok(()),
        Some(p) => Err(refuse(
            StatusCode::FORBIDDEN,
            what,
            format!(
                "{what} request for node {sender} came with the certificate of node '{}' (id {})",
                p.name, p.id
            ),
        )),
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            what,
            "no node certificate".into(),
        )),
    }
}

/// Decodes the body of an authenticated request, or produces the refusal.
fn admit<T: DeserializeOwned>(body: &[u8], what: &'static str) -> Result<T, Response> {
    wire::decode(what, body).map_err(|e| {
        tracing::warn!(endpoint = what, error = %e, "refused raft request: bad body");
        (
            StatusCode::BAD_REQUEST,
            format!("bad {what} request body: {e}"),
        )
            .into_response()
    })
}

fn reply<T: Serialize>(what: &'static str, value: &T) -> Response {
    match wire::encode(what, value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => {
            tracing::error!(endpoint = what, error = %e, "cannot encode raft reply");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

async fn append(
    State(store): State<ClusterStore>,
    peer: Option<Extension<PeerIdentity>>,
    body: Bytes,
) -> Response {
    let req: openraft::raft::AppendEntriesRequest<TypeConfig> = match admit(&body, "append-entries")
    {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = check_sender(
        peer.as_ref().map(|p| &p.0),
        req.vote.leader_id().voted_for().unwrap_or_default(),
        "append-entries",
    ) {
        return refusal;
    }
    reply("append-entries", &store.raft().append_entries(req).await)
}

async fn vote(
    State(store): State<ClusterStore>,
    peer: Option<Extension<PeerIdentity>>,
    body: Bytes,
) -> Response {
    let req: openraft::raft::VoteRequest<u64> = match admit(&body, "vote") {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = check_sender(
        peer.as_ref().map(|p| &p.0),
        req.vote.leader_id().voted_for().unwrap_or_default(),
        "vote",
    ) {
        return refusal;
    }
    reply("vote", &store.raft().vote(req).await)
}

async fn snapshot(
    State(store): State<ClusterStore>,
    peer: Option<Extension<PeerIdentity>>,
    body: Bytes,
) -> Response {
    let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
        match admit(&body, "install-snapshot") {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
    if let Err(refusal) = check_sender(
        peer.as_ref().map(|p| &p.0),
        req.vote.leader_id().voted_for().unwrap_or_default(),
        "install-snapshot",
    ) {
        return refusal;
    }
    reply(
        "install-snapshot",
        &store.raft().install_snapshot(req).await,
    )
}

async fn forward(State(store): State<ClusterStore>, body: Bytes) -> Response {
    let req: ForwardRequest = match admit(&body, "forward") {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    reply("forward", &store.handle_on_leader(req).await)
}
