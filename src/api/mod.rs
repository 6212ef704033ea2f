//! The HTTPS API of the node daemon (design.md section 8).
//!
//! * `/api/v1/...`: JSON, every route needs `Authorization: Bearer <api
//!   token>` or a member's node certificate (the CLI on a node; acts as
//!   admin `node:<name>`, see `node_certs.rs`), except `POST
//!   /api/v1/cluster/join`, which needs the join
//!   token in `x-ha-join-token` (`join_tokens.rs`: they expire and can be
//!   revoked). A wrong or missing token gets 401 and changes nothing.
//!   Tokens have a role (`tokens.rs`): `admin`, or `read-only` (GET only,
//!   and not the token lists, join tokens or backups). Every change is
//!   logged (target `audit`) with the token's id.
//! * `/metrics`: Prometheus text; any token (a read-only one for
//!   monitoring).
//! * The token is checked on the headers, before any body is read; bodies
//!   are then capped at [`API_BODY_LIMIT`] ([`IMPORT_BODY_LIMIT`] for the
//!   config import). Every refusal is the JSON error body naming the field
//!   (see [`extract`]).
//! * `/raft` is mounted by the daemon from the `raft` crate (a member's
//!   node certificate that the node directory lists).

pub mod backup;
pub mod ca;
pub mod cluster;
pub mod crs;
pub mod docs;
pub mod error;
pub mod extract;
pub mod history;
pub mod import;
pub mod join_tokens;
pub mod members;
pub mod node_certs;
pub mod notify;
pub mod resources;
pub mod rules;
pub mod status;
pub mod tokens;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use raft::ClusterStore;

use crate::daemon::credentials::Credentials;
use crate::domain::NodeName;
use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    /// The local store node.
    pub store: ClusterStore,
    /// This node's name.
    pub node: NodeName,
    /// This node's credentials (join token).
    pub creds: Arc<Credentials>,
    /// This node's TLS files (the CA signs joining nodes).
    pub tls_files: crate::daemon::tls_files::TlsFiles,
    /// Services recovered by this node's CRM after fencing.
    pub failovers: Arc<AtomicU64>,
    /// Notified once this node has left the cluster: the daemon stops.
    pub left: Arc<tokio::sync::Notify>,
}

async fn require_token(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // A bearer token, when given, says who the caller is (so a node's
    // CLI run with a read-only token acts read-only); otherwise the node
    // certificate of a member (the CLI on a node, a joining daemon).
    let peer = req.extensions().get::<raft::tls::PeerIdentity>();
    let caller = match (given, peer) {
        (Some(token), _) => tokens::identify(&st, token),
        (None, Some(peer)) => tokens::identify_node(&st, peer),
        (None, None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API token (header 'Authorization: Bearer <token>') or node certificate",
        )),
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(target: "audit", path = %req.uri().path(), error = %e.body.error, "refused: not authenticated");
            return e.into_response();
        }
    };
    // The server never evicts a connection that authenticated.
    if let Some(auth) = req
        .extensions()
        .get::<raft::network::server::ConnectionAuth>()
    {
        auth.mark();
    }
    let method = req.method().clone();
    if let Err(e) = tokens::authorize(&caller, &method, req.uri().path()) {
        tracing::warn!(target: "audit", token = %caller.id, %method, path = %req.uri().path(), "refused: read-only token");
        return e.into_response();
    }
    let path = req.uri().path().to_string();
    // Handlers that record who made something read it from here.
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    // Every change made through the API, with who made it.
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        tracing::info!(
            target: "audit",
            token = %caller.id,
            %method,
            %path,
            status = response.status().as_u16(),
            "api change"
        );
    }
    response
}

/// Largest request body of an ordinary API route: the biggest is a rule
/// or resource with a few options, far below this.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// Largest request body of `POST /config/import`: three config files.
pub const IMPORT_BODY_LIMIT: usize = 4 * 1024 * 1024;

async fn no_such_route(req: Request) -> ApiError {
    ApiError::field(
        "path",
        format!(
            "field 'path': no API route '{}'",
            crate::domain::error::shown(req.uri().path())
        ),
    )
    .with_status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::field(
        "method",
        format!(
            "field 'method': {} is not allowed on '{}'",
            req.method(),
            crate::domain::error::shown(req.uri().path())
        ),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// The routes of `/api/v1` and `/metrics`. The token is checked by a
/// route layer, before any handler reads the body; bodies are capped at
/// [`API_BODY_LIMIT`] ([`IMPORT_BODY_LIMIT`] for the import).
pub fn router(state: ApiState) -> Router {
    let import = Router::new()
        .route("/config/import", post(import::import))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    let protected = Router::new()
        .route("/cluster/status", get(cluster::status))
        .route("/cluster/members", post(cluster::admit))
        .route("/cluster/leave", post(cluster::leave))
        .route("/cluster/remove-self", post(cluster::remove_self))
        .route("/cluster/delnode", post(members::delnode))
        .route("/cluster/set-address", post(members::set_address))
        .route("/cluster/renew-cert", post(cluster::renew_cert))
        .route("/cluster/ca", get(ca::status))
        .route("/cluster/ca/rotate", post(ca::rotate))
        .route("/cluster/ca/finish", post(ca::finish))
        .route("/resources", get(resources::list).post(resources::create))
        .route(
            "/resources/{sid}",
            get(resources::get)
                .put(resources::update)
                .delete(resources::remove),
        )
        .route("/resources/{sid}/migrate", post(resources::migrate))
        .route("/resources/{sid}/relocate", post(resources::relocate))
        .route("/crm-command", post(resources::crm_command))
        .route(
            "/groups",
            get(resources::list_groups).post(resources::create_group),
        )
        .route(
            "/groups/{group}",
            axum::routing::put(resources::update_group).delete(resources::remove_group),
        )
        .route("/backup", get(backup::backup))
        .route("/crs", get(crs::get_crs).put(crs::set_crs))
        .route("/crs/usage", get(crs::get_usage))
        .route("/rules", get(rules::list_rules).post(rules::create_rule))
        .route(
            "/rules/{rule}",
            get(rules::get_rule)
                .put(rules::update_rule)
                .delete(rules::remove_rule),
        )
        .route("/history", get(history::list))
        .route("/explain/{sid}", get(history::explain))
        .route("/status/current", get(status::status_current))
        .route("/status/manager_status", get(status::manager_status))
        .route("/notify/targets", get(notify::list).post(notify::add))
        .route(
            "/notify/targets/{name}",
            axum::routing::delete(notify::remove),
        )
        .route("/notify/test", post(notify::test))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::remove))
        .route(
            "/cluster/join-tokens",
            get(join_tokens::list).post(join_tokens::create),
        )
        .route(
            "/cluster/join-tokens/{id}",
            axum::routing::delete(join_tokens::revoke),
        )
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .merge(import)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let join = Router::new()
        .route("/cluster/join", post(cluster::join))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            join_tokens::require_join_token,
        ));
    let v1 = protected.merge(join);
    // Metrics need a token too (read-only is enough): they tell which
    // nodes are down and which services run where.
    let metrics = Router::new()
        .route("/metrics", get(status::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .nest("/api/v1", v1)
        .merge(metrics)
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
