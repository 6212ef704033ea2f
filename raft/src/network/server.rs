//! Incoming HTTP: the axum router for `/raft`.
//!
//! Every request must carry the cluster secret; anything else is refused
//! with 401 and logged. Bodies that do not decode (garbage, truncation,
//! wrong format version) are refused with 400 naming the problem. Neither
//! touches the Raft node.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{self, ForwardRequest, SECRET_HEADER};
use crate::store::ClusterStore;
use crate::types::TypeConfig;

/// Largest accepted request body (snapshot chunks are 1 MiB, append
/// batches are bounded by openraft's max payload entries).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Routes of the Raft RPC and forwarding endpoints, relative to where they
/// are mounted. The daemon mounts them with
/// `Router::new().nest("/raft", store.router())`.
pub fn router(store: ClusterStore) -> Router {
    Router::new()
        .route(wire::PATH_APPEND, post(append))
        .route(wire::PATH_VOTE, post(vote))
        .route(wire::PATH_SNAPSHOT, post(snapshot))
        .route(wire::PATH_FORWARD, post(forward))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
}

/// Constant-time comparison so the secret does not leak through timing.
fn secret_matches(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Checks the secret and decodes the body, or produces the refusal.
fn admit<T: DeserializeOwned>(
    store: &ClusterStore,
    headers: &HeaderMap,
    body: &[u8],
    what: &'static str,
) -> Result<T, Response> {
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    if !given.is_some_and(|g| secret_matches(g, store.secret().as_bytes())) {
        tracing::warn!(
            endpoint = what,
            present = given.is_some(),
            "refused raft request: missing or wrong cluster secret"
        );
        return Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong cluster secret (header x-ha-cluster-secret)",
        )
            .into_response());
    }
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

async fn append(State(store): State<ClusterStore>, headers: HeaderMap, body: Bytes) -> Response {
    let req: openraft::raft::AppendEntriesRequest<TypeConfig> =
        match admit(&store, &headers, &body, "append-entries") {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
    reply("append-entries", &store.raft().append_entries(req).await)
}

async fn vote(State(store): State<ClusterStore>, headers: HeaderMap, body: Bytes) -> Response {
    let req: openraft::raft::VoteRequest<u64> = match admit(&store, &headers, &body, "vote") {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    reply("vote", &store.raft().vote(req).await)
}

async fn snapshot(State(store): State<ClusterStore>, headers: HeaderMap, body: Bytes) -> Response {
    let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
        match admit(&store, &headers, &body, "install-snapshot") {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
    reply(
        "install-snapshot",
        &store.raft().install_snapshot(req).await,
    )
}

async fn forward(State(store): State<ClusterStore>, headers: HeaderMap, body: Bytes) -> Response {
    let req: ForwardRequest = match admit(&store, &headers, &body, "forward") {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    reply("forward", &store.handle_on_leader(req).await)
}
