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
//! * `GET /api/v1/openapi.json`: the OpenAPI document of all of this
//!   (no token; see [`openapi`]), also committed as `docs/openapi.json`.
//! * `/` and `/ui/...`: the web dashboard's embedded files (`crate::web`),
//!   without a token (they hold no data; the page calls this API with the
//!   operator's token).
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
pub mod openapi;
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
use axum::Router;
use raft::ClusterStore;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The routes that need an API token or a node certificate, relative to
/// `/api/v1`, with their body limits. Each is registered with `routes!`,
/// which also adds its `#[utoipa::path]` entry to the OpenAPI document: a
/// new route goes here the same way, never with a plain `.route` (that
/// would be served but undocumented; a unit test below refuses it).
fn protected_routes() -> OpenApiRouter<ApiState> {
    let import = OpenApiRouter::new()
        .routes(routes!(import::import))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(cluster::status))
        .routes(routes!(cluster::admit))
        .routes(routes!(cluster::leave))
        .routes(routes!(cluster::remove_self))
        .routes(routes!(members::delnode))
        .routes(routes!(members::set_address))
        .routes(routes!(cluster::renew_cert))
        .routes(routes!(ca::status))
        .routes(routes!(ca::rotate))
        .routes(routes!(ca::finish))
        .routes(routes!(resources::list, resources::create))
        .routes(routes!(
            resources::get,
            resources::update,
            resources::remove
        ))
        .routes(routes!(resources::migrate))
        .routes(routes!(resources::relocate))
        .routes(routes!(resources::crm_command))
        .routes(routes!(resources::list_groups, resources::create_group))
        .routes(routes!(resources::update_group, resources::remove_group))
        .routes(routes!(backup::backup))
        .routes(routes!(crs::get_crs, crs::set_crs))
        .routes(routes!(crs::get_usage))
        .routes(routes!(rules::list_rules, rules::create_rule))
        .routes(routes!(
            rules::get_rule,
            rules::update_rule,
            rules::remove_rule
        ))
        .routes(routes!(notify::list, notify::add))
        .routes(routes!(notify::remove))
        .routes(routes!(notify::test))
        .routes(routes!(history::list))
        .routes(routes!(history::explain))
        .routes(routes!(status::status_current))
        .routes(routes!(status::manager_status))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::whoami))
        .routes(routes!(tokens::remove))
        .routes(routes!(join_tokens::list, join_tokens::create))
        .routes(routes!(join_tokens::revoke))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .merge(import)
}

/// `POST /cluster/join`, which needs a join token instead.
fn join_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(cluster::join))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
}

/// Routes of `/api/v1` without any authentication: the OpenAPI document.
fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(openapi::openapi_json))
}

/// `/metrics`, outside `/api/v1`. Metrics need a token too (read-only is
/// enough): they tell which nodes are down and which services run where.
fn metrics_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(status::metrics))
}

/// Puts the route groups together under the document's base: the one
/// place both [`router`] and [`openapi::document`] build from, so the
/// served routes and the documented ones are the same.
fn assemble(
    protected: OpenApiRouter<ApiState>,
    join: OpenApiRouter<ApiState>,
    metrics: OpenApiRouter<ApiState>,
) -> OpenApiRouter<ApiState> {
    let v1 = protected.merge(join).merge(public_routes());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(metrics)
}

/// Every route without its authentication layers (which do not change
/// the document): what [`openapi::document`] is made of.
fn documented_routes() -> OpenApiRouter<ApiState> {
    assemble(protected_routes(), join_routes(), metrics_routes())
}

/// The routes of `/api/v1` and `/metrics`. The token is checked by a
/// route layer, before any handler reads the body; bodies are capped at
/// [`API_BODY_LIMIT`] ([`IMPORT_BODY_LIMIT`] for the import).
pub fn router(state: ApiState) -> Router {
    let protected = protected_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let join = join_routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        join_tokens::require_join_token,
    ));
    let metrics =
        metrics_routes().route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let (router, _) = assemble(protected, join, metrics).split_for_parts();
    router
        .merge(crate::web::router())
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// A route added with a plain `.route(...)` would be served but
    /// missing from the OpenAPI document: every route of this file goes
    /// through `routes!`.
    #[test]
    fn every_route_is_registered_with_its_document_entry() {
        let source = include_str!("mod.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        for needle in [".route(", ".route_service(", ".nest_service("] {
            assert!(
                !code.contains(needle),
                "src/api/mod.rs uses `{needle}`: register routes with `.routes(routes!(handler))` \
                 and a `#[utoipa::path]` on the handler, so the OpenAPI document lists them"
            );
        }
    }
}
