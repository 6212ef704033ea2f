//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and the body types' `ToSchema` derives.
//!
//! Every route of [`super::router`] is registered with utoipa-axum's
//! `routes!`, which adds the route and its document entry in one call, so
//! a route the daemon serves cannot be missing from the document. The
//! document is served at `GET /api/v1/openapi.json` and committed as
//! `docs/openapi.json` (`ha-manager openapi > docs/openapi.json`; the test
//! `tests/openapi.rs` fails when the committed copy is stale).

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::cluster::JOIN_TOKEN_HEADER;
use super::error::{ApiError, ErrorBody};

/// Name of the bearer API token scheme in the document.
pub const BEARER: &str = "bearer";
/// Name of the node certificate (mutual TLS) scheme in the document.
pub const NODE_CERTIFICATE: &str = "node_certificate";
/// Name of the join token scheme in the document.
pub const JOIN_TOKEN: &str = "join_token";

/// What the document says before the routes are added: title, the
/// security schemes, the default requirement (a bearer token or a node
/// certificate) and the error body every refusal carries.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ha-manager API",
        description = "The HTTPS API of the ha-manager node daemon. Every route needs an API \
            token (`Authorization: Bearer <id>.<secret>`) or a member's node certificate, except \
            `POST /api/v1/cluster/join` (a join token) and `GET /api/v1/openapi.json` (none). \
            Read-only tokens may only read, and not the token lists, join tokens or backups. \
            Every refusal is the JSON body `ErrorBody`, naming the field at fault.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later")
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("node_certificate" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "cluster", description = "Membership: join, admission, leave, removal, addresses, certificates"),
        (name = "ca", description = "Rotating the cluster CA"),
        (name = "join-tokens", description = "Expiring, revocable join tokens (admin only)"),
        (name = "tokens", description = "API tokens (admin only)"),
        (name = "resources", description = "HA resources and the CRM command queue"),
        (name = "groups", description = "Legacy HA groups (groups.cfg)"),
        (name = "rules", description = "Node- and resource-affinity rules (rules.cfg)"),
        (name = "crs", description = "Cluster resource scheduling options and usage"),
        (name = "status", description = "What `ha-manager status` shows"),
        (name = "notify", description = "Notification targets (webhook, exec hook) and the test event"),
        (name = "history", description = "The CRM's event history and why a service is on its node"),
        (name = "config", description = "Import and backup of the configuration"),
        (name = "meta", description = "This document"),
        (name = "metrics", description = "Prometheus metrics (outside /api/v1)")
    )
)]
pub struct ApiDoc;

/// Adds the security schemes (the derive has no syntax for them).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("<id>.<secret>")
                    .description(Some(
                        "An API token (`ha-manager token create`): `admin`, or `read-only` (GET \
                         only, and not /tokens, /cluster/join-tokens or /backup).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            NODE_CERTIFICATE,
            SecurityScheme::MutualTls {
                description: Some(
                    "A member's node certificate, signed by the cluster CA and listed in the node \
                     directory (the CLI on a node, a daemon): acts as admin `node:<name>`. A \
                     bearer token, when also given, says who calls."
                        .to_string(),
                ),
                extensions: None,
            },
        );
        components.add_security_scheme(
            JOIN_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                JOIN_TOKEN_HEADER,
                "A join token (`ha-manager cluster join-token create`): `<id>.<secret>`; \
                 expires and can be revoked.",
            ))),
        );
    }
}

/// The whole document: the base above plus every route of the router.
pub fn document() -> Document {
    super::documented_routes().into_openapi()
}

/// The document as pretty JSON with a final newline, the form committed
/// as `docs/openapi.json`.
pub fn document_json() -> Result<String, serde_json::Error> {
    let mut text = document().to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

/// The document is the same for the daemon's whole life: made once.
fn cached_json() -> &'static Result<String, String> {
    static DOC: OnceLock<Result<String, String>> = OnceLock::new();
    DOC.get_or_init(|| document_json().map_err(|e| e.to_string()))
}

/// `GET /openapi.json`. No token: the document holds no secrets and
/// says nothing about this cluster (it is the same for every build of
/// this version), and clients need it before they have a token.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object),
        (status = 500, description = "The document could not be written", body = ErrorBody)
    )
)]
pub async fn openapi_json() -> Response {
    match cached_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the OpenAPI document: {e}"),
        )
        .into_response(),
    }
}
