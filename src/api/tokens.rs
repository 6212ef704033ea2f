//! API tokens with roles: `admin` (everything) and `read-only` (GET only:
//! status, lists, `/metrics` — for monitoring). `ha-manager token
//! add|list|remove`.
//!
//! A token is `<id>.<secret>`; the cluster stores only the SHA-256 digest
//! of the secret, in the replicated document `tokens`, so a stolen store
//! (or backup) does not hand out working tokens, and the secret is shown
//! once, when it is made. A member's node certificate (what the CLI on a
//! node presents) acts as admin under the id `node:<name>`. Every request
//! that changes something is logged (target `audit`) with the caller's id.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{AdminReadErrors, ApiError, ApiResult, ErrorBody, ReadErrors, WriteErrors};
use super::ApiState;
use crate::daemon::credentials::{random_secret, secrets_equal};

/// Name of the replicated document holding the tokens.
pub const TOKENS_DOC: &str = "tokens";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every route.
    Admin,
    /// Only reads (GET, HEAD).
    ReadOnly,
}

impl Role {
    /// Its name in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// One stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// Its role.
    pub role: Role,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// The `tokens` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTable {
    /// Tokens by id.
    pub tokens: BTreeMap<String, StoredToken>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token id, or `node:<name>` for a member's node certificate.
    pub id: String,
    /// Its role.
    pub role: Role,
}

/// Hex SHA-256 of a secret (how API and join token secrets are stored).
pub(crate) fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Token ids: 1 to 32 of `a-z`, `0-9`, `-`, `_`, starting with a letter.
pub fn check_token_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "field 'id': '{}' is not a token id (1 to 32 of a-z, 0-9, '-', '_', starting with a letter)",
            id.escape_default()
        ));
    }
    Ok(())
}

/// Reads the token table from the local replica (no quorum round: a
/// token check must not depend on reaching the leader). An unreadable
/// table fails closed: no token works then (node certificates still do).
fn local_table(st: &ApiState) -> Result<TokenTable, String> {
    let (text, _) = super::docs::read_local_raw(&st.store, TOKENS_DOC);
    if text.is_empty() {
        return Ok(TokenTable::default());
    }
    serde_json::from_str(&text).map_err(|e| format!("stored token table is unreadable: {e}"))
}

/// Who `bearer` is, or why not.
pub fn identify(st: &ApiState, bearer: &str) -> Result<Caller, ApiError> {
    let bearer = bearer.trim();
    let wrong = || ApiError::new(StatusCode::UNAUTHORIZED, "wrong API token");
    let Some((id, secret)) = bearer.split_once('.') else {
        return Err(wrong());
    };
    let table = local_table(st).map_err(|e| {
        tracing::error!("{e}; no API token is accepted (node certificates are)");
        wrong()
    })?;
    let Some(token) = table.tokens.get(id) else {
        return Err(wrong());
    };
    if !secrets_equal(&sha256_hex(secret), &token.sha256) {
        return Err(wrong());
    }
    Ok(Caller {
        id: id.to_string(),
        role: token.role,
    })
}

/// Who a node certificate is: a member of the node directory with the
/// name and Raft id the certificate names, presenting a certificate the
/// directory lists for it (see [`super::node_certs`]).
pub fn identify_node(st: &ApiState, peer: &raft::tls::PeerIdentity) -> Result<Caller, ApiError> {
    let dir = super::node_certs::local_directory(&st.store)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    // Unlike Raft, the API never takes an empty directory's word: a node
    // that has none is not serving operators yet.
    if dir.nodes.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this node has no node directory yet: node certificates are not accepted",
        ));
    }
    super::node_certs::check_peer(&dir, peer)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    Ok(Caller {
        id: format!("node:{}", peer.name),
        role: Role::Admin,
    })
}

/// Routes only admin tokens may read: the token list, backups (the
/// whole configuration, agent parameters included), and the join tokens.
const ADMIN_READS: [&str; 3] = ["/tokens", "/backup", "/cluster/join-tokens"];

/// Whether `caller` may use `method` on `path` (with or without the
/// `/api/v1` prefix): read-only tokens only read, and not [`ADMIN_READS`].
pub fn authorize(caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    let route = path.strip_prefix("/api/v1").unwrap_or(path);
    let admin_read = ADMIN_READS
        .iter()
        .any(|p| route == *p || route.starts_with(&format!("{p}/")));
    if (method == Method::GET || method == Method::HEAD) && !admin_read {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "token '{}' is read-only: {method} {route} needs an admin token",
            caller.id
        ),
    ))
}

/// Body of `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Token id.
    pub id: String,
    /// `admin` or `read-only`.
    pub role: Role,
    /// Free text.
    #[serde(default)]
    pub comment: String,
}

/// Answer to `POST /tokens`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// Token id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The whole bearer token, `<id>.<secret>`.
    pub token: String,
}

/// One row of `GET /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Token id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Free text.
    pub comment: String,
}

async fn read_table(st: &ApiState) -> ApiResult<(TokenTable, u64)> {
    let (text, version) = super::docs::read_raw_text(&st.store, TOKENS_DOC).await?;
    if text.is_empty() {
        return Ok((TokenTable::default(), version));
    }
    let table = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored token table is unreadable: {e}"),
        )
    })?;
    Ok((table, version))
}

async fn write_table(st: &ApiState, table: &TokenTable, version: u64) -> ApiResult<()> {
    let text = serde_json::to_string(table).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("token table: {e}"),
        )
    })?;
    super::docs::put_raw_text(&st.store, TOKENS_DOC, text, version).await?;
    Ok(())
}

/// Answer of `GET /whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Token id, or `node:<name>` for a member's node certificate.
    pub id: String,
    /// `admin` or `read-only`.
    pub role: Role,
}

/// `GET /whoami`: who the caller's credentials say it is, so a client
/// (the dashboard) shows only the actions its role may take. Any token
/// may ask; the middleware has already identified the caller.
#[utoipa::path(
    get,
    path = "/whoami",
    tag = "tokens",
    responses(
        (status = 200, description = "The caller's token id and role", body = WhoAmI),
        ReadErrors
    )
)]
pub async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        id: caller.id,
        role: caller.role,
    })
}

/// `GET /tokens`: ids, roles and comments; never secrets.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Every API token: ids, roles, comments; never secrets", body = Vec<TokenView>),
        AdminReadErrors
    )
)]
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<Vec<TokenView>>> {
    let (table, _) = read_table(&st).await?;
    let rows = table
        .tokens
        .into_iter()
        .map(|(id, t)| TokenView {
            id,
            role: t.role,
            created: t.created,
            comment: t.comment,
        })
        .collect();
    Ok(Json(rows))
}

/// `POST /tokens`: makes a token and answers its secret, once.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedToken),
        WriteErrors
    )
)]
pub async fn create(
    State(st): State<ApiState>,
    Json(req): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    check_token_id(&req.id).map_err(|e| ApiError::field("id", e))?;
    if req.comment.len() > 256 || req.comment.chars().any(char::is_control) {
        return Err(ApiError::field(
            "comment",
            "field 'comment': at most 256 characters, no control characters",
        ));
    }
    let (mut table, version) = read_table(&st).await?;
    if table.tokens.contains_key(&req.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("token '{}' exists: remove it first to replace it", req.id),
        ));
    }
    let secret = random_secret().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading /dev/urandom: {e}"),
        )
    })?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    table.tokens.insert(
        req.id.clone(),
        StoredToken {
            role: req.role,
            sha256: sha256_hex(&secret),
            created,
            comment: req.comment,
        },
    );
    write_table(&st, &table, version).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: format!("{}.{secret}", req.id),
            id: req.id,
            role: req.role,
        }),
    ))
}

/// Answer of `DELETE /tokens/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// The id of the removed token.
    pub removed: String,
}

/// `DELETE /tokens/{id}`: the token stops working at once on this node,
/// and on every other node when it applies the change (milliseconds).
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    operation_id = "remove_token",
    params(("id" = String, Path, description = "The token id")),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 404, description = "No such token", body = ErrorBody),
        WriteErrors
    )
)]
pub async fn remove(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Removed>> {
    let (mut table, version) = read_table(&st).await?;
    if table.tokens.remove(&id).is_none() {
        return Err(ApiError::not_found(format!(
            "no token '{}'",
            id.escape_default()
        )));
    }
    write_table(&st, &table, version).await?;
    Ok(Json(Removed { removed: id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_tokens_only_read() {
        let ro = Caller {
            id: "mon".into(),
            role: Role::ReadOnly,
        };
        assert!(authorize(&ro, &Method::GET, "/api/v1/status/current").is_ok());
        assert!(authorize(&ro, &Method::GET, "/metrics").is_ok());
        assert!(authorize(&ro, &Method::GET, "/api/v1/tokens").is_err());
        assert!(authorize(&ro, &Method::GET, "/backup").is_err());
        assert!(authorize(&ro, &Method::GET, "/api/v1/cluster/join-tokens").is_err());
        assert!(authorize(&ro, &Method::GET, "/api/v1/cluster/status").is_ok());
        for m in [Method::POST, Method::PUT, Method::DELETE] {
            let e = authorize(&ro, &m, "/api/v1/resources").unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN);
            assert!(
                e.body.error.contains("'mon' is read-only"),
                "{}",
                e.body.error
            );
        }
        let admin = Caller {
            id: "ops".into(),
            role: Role::Admin,
        };
        assert!(authorize(&admin, &Method::DELETE, "/api/v1/tokens/mon").is_ok());
    }

    #[test]
    fn ids_are_checked_and_secrets_stored_as_digests() {
        assert!(check_token_id("monitoring-1").is_ok());
        for bad in ["", "Root", "1abc", "a b", "a/b", &"a".repeat(33)] {
            assert!(check_token_id(bad).is_err(), "{bad}");
        }
        let d = sha256_hex("abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            serde_json::to_string(&Role::ReadOnly).unwrap(),
            "\"read-only\""
        );
    }
}
