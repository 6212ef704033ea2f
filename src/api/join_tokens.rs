//! Join tokens: the credential a new node presents to `cluster join`.
//! They expire and can be revoked (`ha-manager cluster join-token
//! create|list|revoke`).
//!
//! A join token is shown as `<id>.<secret>` ([`format_join_token`],
//! parsed by [`parse_join_token`]): `id` is 8 random hex digits, `secret`
//! 64. The cluster stores, in the replicated document `join-tokens`, only
//! the SHA-256 digest of the secret with the token's creation and expiry
//! times (unix seconds), the id of the API token that made it and a
//! description; the secret is shown once, when the token is made. A joined
//! node receives no join token.
//!
//! `cluster init` runs before the daemon has a store: it keeps the first
//! token's stored form in the node's credentials ([`PendingJoinToken`]),
//! and the daemon writes it into the document when it bootstraps the
//! cluster ([`store_initial`]), before it registers itself in the node
//! directory (so a directory without the first token never exists).
//!
//! A join request is checked against the local replica of the document
//! (no quorum round for an unauthenticated request) by
//! [`require_join_token`], which reads the clock and calls the pure
//! [`check_join_token`]. Expiry uses the wall clocks of the node that made
//! the token and of the node that checks it: clock skew between nodes
//! shifts the expiry by that much. Expired tokens are pruned whenever a
//! token is created, and at most [`MAX_LIVE_JOIN_TOKENS`] live at once.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use raft::ClusterStore;
use serde::{Deserialize, Serialize};

use super::cluster::JOIN_TOKEN_HEADER;
use super::error::{AdminReadErrors, ApiError, ApiResult, ErrorBody, WriteErrors};
use super::extract::{ApiJson, ApiPath};
use super::tokens::{sha256_hex, Caller};
use super::ApiState;
use crate::daemon::credentials::{random_secret, secrets_equal};

/// Name of the replicated document holding the join tokens.
pub const JOIN_TOKENS_DOC: &str = "join-tokens";

/// Lifetime of a join token when none is given: 24 hours.
pub const DEFAULT_TTL_SECS: u64 = 24 * 3600;
/// Shortest lifetime: 5 seconds (a token for a join made right now).
pub const MIN_TTL_SECS: u64 = 5;
/// Longest lifetime: 30 days.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
/// How many unexpired join tokens may exist at once.
pub const MAX_LIVE_JOIN_TOKENS: usize = 64;
/// `created_by` of the token `cluster init` makes.
pub const INIT_CREATOR: &str = "cluster-init";

/// Hex digits of a join token id.
const ID_LEN: usize = 8;
/// Hex digits of a join token secret.
const SECRET_LEN: usize = 64;

/// One stored join token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJoinToken {
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// The token is refused from this time on (unix seconds).
    pub expires: u64,
    /// Id of the API token that made it ([`INIT_CREATOR`] for the first).
    pub created_by: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The `join-tokens` document. Unknown fields are ignored when it is
/// read, so a node of an older version can still check tokens a newer one
/// wrote during a rolling upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenTable {
    /// Tokens by id.
    #[serde(default)]
    pub tokens: BTreeMap<String, StoredJoinToken>,
}

impl JoinTokenTable {
    /// Removes the tokens expired at `now`; returns how many.
    pub fn prune_expired(&mut self, now: u64) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|_, t| now < t.expires);
        before - self.tokens.len()
    }
}

/// The first join token, kept in the credentials by `cluster init` until
/// the daemon has written it into the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJoinToken {
    /// Token id.
    pub id: String,
    /// What the store gets.
    #[serde(flatten)]
    pub token: StoredJoinToken,
}

/// Why a join token could not be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum JoinTokenError {
    /// No random bytes.
    #[error("reading /dev/urandom: {0}")]
    Random(#[from] std::io::Error),
    /// The store refused or could not be reached.
    #[error("storing the join token: {0}")]
    Store(String),
}

/// A join token just made: its secret exists only here.
#[derive(Debug, Clone)]
pub struct NewJoinToken {
    /// Token id.
    pub id: String,
    /// The secret (shown once).
    pub secret: String,
    /// What the store gets.
    pub stored: StoredJoinToken,
}

impl NewJoinToken {
    /// Makes a token valid from `now` for `ttl_secs` seconds.
    pub fn generate(
        now: u64,
        ttl_secs: u64,
        created_by: &str,
        description: &str,
    ) -> Result<Self, JoinTokenError> {
        let id = random_secret()?[..ID_LEN].to_string();
        let secret = random_secret()?;
        Ok(NewJoinToken {
            id,
            stored: StoredJoinToken {
                sha256: sha256_hex(&secret),
                created: now,
                expires: now.saturating_add(ttl_secs),
                created_by: created_by.to_string(),
                description: description.to_string(),
            },
            secret,
        })
    }

    /// The token as the operator passes it to `cluster join --token`.
    pub fn display(&self) -> String {
        format_join_token(&self.id, &self.secret)
    }

    /// The form `cluster init` keeps in the credentials.
    pub fn pending(&self) -> PendingJoinToken {
        PendingJoinToken {
            id: self.id.clone(),
            token: self.stored.clone(),
        }
    }
}

/// The one place that builds the displayed form of a join token.
pub fn format_join_token(id: &str, secret: &str) -> String {
    format!("{id}.{secret}")
}

/// A join token as presented, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedJoinToken<'a> {
    /// Token id.
    pub id: &'a str,
    /// The secret.
    pub secret: &'a str,
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The one place that parses the displayed form of a join token.
pub fn parse_join_token(text: &str) -> Result<PresentedJoinToken<'_>, JoinTokenRefusal> {
    let text = text.trim();
    match text.split_once('.') {
        Some((id, secret)) if lower_hex(id, ID_LEN) && lower_hex(secret, SECRET_LEN) => {
            Ok(PresentedJoinToken { id, secret })
        }
        _ => Err(JoinTokenRefusal::Malformed),
    }
}

/// Why a presented join token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenRefusal {
    /// Not `<id>.<secret>`.
    #[error(
        "malformed join token: expected '<id>.<secret>' as printed by `ha-manager cluster init` \
         or `ha-manager cluster join-token create` (the id-less token of an older ha-manager no \
         longer works: create a new one)"
    )]
    Malformed,
    /// No token with this id (revoked, pruned, or never made).
    #[error(
        "unknown join token '{id}' (revoked, expired and pruned, or never created): create one \
         with `ha-manager cluster join-token create` on a member"
    )]
    Unknown {
        /// The presented id.
        id: String,
    },
    /// The id exists, the secret does not match.
    #[error("wrong secret for join token '{id}'")]
    WrongSecret {
        /// The presented id.
        id: String,
    },
    /// Right secret, but too late.
    #[error(
        "join token '{id}' expired at {expires} (unix seconds); create a new one with \
         `ha-manager cluster join-token create` on a member"
    )]
    Expired {
        /// Token id.
        id: String,
        /// Its expiry, unix seconds.
        expires: u64,
    },
}

impl JoinTokenRefusal {
    /// A short name of the reason, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            JoinTokenRefusal::Malformed => "malformed",
            JoinTokenRefusal::Unknown { .. } => "unknown",
            JoinTokenRefusal::WrongSecret { .. } => "wrong-secret",
            JoinTokenRefusal::Expired { .. } => "expired",
        }
    }

    /// The token id named by the presented token, if it had one.
    pub fn id(&self) -> Option<&str> {
        match self {
            JoinTokenRefusal::Malformed => None,
            JoinTokenRefusal::Unknown { id }
            | JoinTokenRefusal::WrongSecret { id }
            | JoinTokenRefusal::Expired { id, .. } => Some(id),
        }
    }
}

/// Decides whether `presented` admits a join at `now` (unix seconds);
/// answers the token's id. A token is valid while `now < expires`. The
/// secret is compared as a digest in constant time, and expiry is told
/// only to who knows the secret.
pub fn check_join_token(
    table: &JoinTokenTable,
    presented: &str,
    now: u64,
) -> Result<String, JoinTokenRefusal> {
    let token = parse_join_token(presented)?;
    let id = token.id.to_string();
    let Some(stored) = table.tokens.get(token.id) else {
        return Err(JoinTokenRefusal::Unknown { id });
    };
    if !secrets_equal(&sha256_hex(token.secret), &stored.sha256) {
        return Err(JoinTokenRefusal::WrongSecret { id });
    }
    if now >= stored.expires {
        return Err(JoinTokenRefusal::Expired {
            id,
            expires: stored.expires,
        });
    }
    Ok(id)
}

/// Parses a lifetime: a whole number with the unit `s`, `m`, `h` or `d`
/// (`90s`, `10m`, `24h`, `7d`), between [`MIN_TTL_SECS`] and
/// [`MAX_TTL_SECS`]. The error names the field `ttl`.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "field 'ttl': '{}' is not a lifetime: a whole number with s, m, h or d (e.g. 30m, 24h, 7d)",
            t.escape_default()
        )
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let secs = n.saturating_mul(scale);
    check_ttl_secs(secs, "ttl")?;
    Ok(secs)
}

/// Checks a lifetime in seconds against the allowed range; the error
/// names `field`.
pub fn check_ttl_secs(secs: u64, field: &str) -> Result<(), String> {
    if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&secs) {
        return Ok(());
    }
    Err(format!(
        "field '{field}': a join token lives {MIN_TTL_SECS}s to 30d ({MAX_TTL_SECS} s), not {secs} s"
    ))
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_table(text: &str) -> Result<JoinTokenTable, serde_json::Error> {
    if text.is_empty() {
        return Ok(JoinTokenTable::default());
    }
    serde_json::from_str(text)
}

/// Refuses a join request without a valid join token before its body is
/// read: the clock is read here, the decision is [`check_join_token`]'s.
pub async fn require_join_token(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(JOIN_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    let Some(given) = given else {
        tracing::warn!(target: "audit", reason = "missing", "refused cluster join: no join token header");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "missing join token (header '{JOIN_TOKEN_HEADER}'); a node whose ha-manager \
                 sends it in the body is older than this cluster ({}): upgrade it first",
                env!("CARGO_PKG_VERSION")
            ),
        )
        .into_response();
    };
    let (text, version) = super::docs::read_local_raw(&st.store, JOIN_TOKENS_DOC);
    let table = match parse_table(&text) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("stored join token table is unreadable: {e}; every join is refused");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the join token table is unreadable",
            )
            .into_response();
        }
    };
    match check_join_token(&table, given, unix_now()) {
        Ok(id) => {
            if let Some(auth) = req
                .extensions()
                .get::<raft::network::server::ConnectionAuth>()
            {
                auth.mark();
            }
            tracing::info!(target: "audit", join_token = %id, "cluster join with join token");
            next.run(req).await
        }
        Err(refusal) => {
            // Right after `cluster init` the daemon writes the first token,
            // then the node directory: before that, ask to retry.
            let initializing = version == 0
                && super::docs::read_local_raw(&st.store, super::docs::NODES_DOC).1 == 0;
            if initializing && matches!(refusal, JoinTokenRefusal::Unknown { .. }) {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the cluster is still initializing: retry in a moment",
                )
                .into_response();
            }
            tracing::warn!(
                target: "audit",
                reason = refusal.reason(),
                join_token = refusal.id().unwrap_or("-"),
                "refused cluster join: {refusal}"
            );
            ApiError::new(StatusCode::UNAUTHORIZED, refusal.to_string()).into_response()
        }
    }
}

/// Writes the token `cluster init` made into the store (after the
/// bootstrap, before the node directory). Idempotent: a token already
/// stored under its id is left alone. Retries for about a minute.
pub async fn store_initial(
    store: &ClusterStore,
    pending: &PendingJoinToken,
) -> Result<(), JoinTokenError> {
    let mut last = String::new();
    for _ in 0..120 {
        match put_initial(store, pending).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e.body.error, "writing the first join token");
                last = e.body.error;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(JoinTokenError::Store(last))
}

async fn put_initial(store: &ClusterStore, pending: &PendingJoinToken) -> ApiResult<()> {
    let (mut table, version) = read_table(store).await?;
    if table.tokens.contains_key(&pending.id) {
        return Ok(());
    }
    table
        .tokens
        .insert(pending.id.clone(), pending.token.clone());
    write_table(store, &table, version).await?;
    Ok(())
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("stored join token table is unreadable: {e}"),
    )
}

async fn read_table(store: &ClusterStore) -> ApiResult<(JoinTokenTable, u64)> {
    let (text, version) = super::docs::read_raw_text(store, JOIN_TOKENS_DOC).await?;
    Ok((parse_table(&text).map_err(corrupt)?, version))
}

/// Writes with CAS on `version`, and waits until this node's replica has
/// applied the write, so the change holds here when the answer arrives
/// (other nodes apply it milliseconds later).
async fn write_table(store: &ClusterStore, table: &JoinTokenTable, version: u64) -> ApiResult<()> {
    let text = serde_json::to_string(table).map_err(corrupt)?;
    let written = super::docs::put_raw_text(store, JOIN_TOKENS_DOC, text, version).await?;
    store.read_at_least(written, |_| ()).await?;
    Ok(())
}

/// Body of `POST /cluster/join-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// Lifetime in seconds ([`MIN_TTL_SECS`]..=[`MAX_TTL_SECS`]; default
    /// [`DEFAULT_TTL_SECS`]).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECS
}

/// Answer to `POST /cluster/join-tokens`: the only time the secret is
/// shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedJoinToken {
    /// Token id.
    pub id: String,
    /// The whole token for `cluster join --token`.
    pub token: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
}

/// One row of `GET /cluster/join-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinTokenView {
    /// Token id.
    pub id: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// Whether it has expired (on the answering node's clock).
    pub expired: bool,
    /// Id of the API token that made it.
    pub created_by: String,
    /// Free text.
    pub description: String,
}

/// `GET /cluster/join-tokens` (admin only): every stored token, oldest
/// first; never secrets.
#[utoipa::path(
    get,
    path = "/cluster/join-tokens",
    tag = "join-tokens",
    operation_id = "list_join_tokens",
    responses(
        (status = 200, description = "Every stored join token, oldest first; never secrets", body = Vec<JoinTokenView>),
        AdminReadErrors
    )
)]
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<Vec<JoinTokenView>>> {
    let (table, _) = read_table(&st.store).await?;
    let now = unix_now();
    let mut rows: Vec<JoinTokenView> = table
        .tokens
        .into_iter()
        .map(|(id, t)| JoinTokenView {
            id,
            created: t.created,
            expires: t.expires,
            expired: now >= t.expires,
            created_by: t.created_by,
            description: t.description,
        })
        .collect();
    rows.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(Json(rows))
}

/// `POST /cluster/join-tokens` (admin only): makes a token, prunes the
/// expired ones, and answers the secret once.
#[utoipa::path(
    post,
    path = "/cluster/join-tokens",
    tag = "join-tokens",
    operation_id = "create_join_token",
    request_body = JoinTokenRequest,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedJoinToken),
        WriteErrors
    )
)]
pub async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<JoinTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedJoinToken>)> {
    check_ttl_secs(req.ttl_secs, "ttl_secs").map_err(|e| ApiError::field("ttl_secs", e))?;
    if req.description.chars().count() > 256 || req.description.chars().any(char::is_control) {
        return Err(ApiError::field(
            "description",
            "field 'description': at most 256 characters, no control characters",
        ));
    }
    // A token pins the current CA, which a rotation is replacing.
    if let Some(next) = super::ca::rotation_in_progress(&st.store) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "a CA rotation is in progress (next CA sha256 {next}): a join token made now \
                 would name the CA being replaced; run `ha-manager cluster ca finish` first"
            ),
        ));
    }
    let (mut table, version) = read_table(&st.store).await?;
    let now = unix_now();
    let pruned = table.prune_expired(now);
    if table.tokens.len() >= MAX_LIVE_JOIN_TOKENS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{MAX_LIVE_JOIN_TOKENS} join tokens are valid already: revoke unused ones first \
                 (`ha-manager cluster join-token list`, `... revoke ID`)"
            ),
        ));
    }
    let made = loop {
        let t = NewJoinToken::generate(now, req.ttl_secs, &caller.id, &req.description)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if !table.tokens.contains_key(&t.id) {
            break t;
        }
    };
    table.tokens.insert(made.id.clone(), made.stored.clone());
    write_table(&st.store, &table, version).await?;
    tracing::info!(
        target: "audit",
        token = %caller.id,
        join_token = %made.id,
        expires = made.stored.expires,
        pruned,
        "join token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedJoinToken {
            // What `cluster join` takes: the CA to pin, then the token.
            token: crate::daemon::lifecycle::join_token_text(
                st.store.tls().current().ca_fingerprint(),
                &made.display(),
            ),
            id: made.id,
            created: made.stored.created,
            expires: made.stored.expires,
        }),
    ))
}

/// Checks the form of a join token id; the error names the field `id`.
pub fn check_join_token_id(id: &str) -> Result<(), String> {
    if lower_hex(id, ID_LEN) {
        return Ok(());
    }
    Err(format!(
        "field 'id': '{}' is not a join token id ({ID_LEN} hex digits, as `cluster join-token list` shows)",
        id.escape_default()
    ))
}

/// Answer of `DELETE /cluster/join-tokens/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The id of the revoked token.
    pub revoked: String,
}

/// `DELETE /cluster/join-tokens/{id}` (admin only): the token stops
/// working on this node when the answer arrives, on the others when they
/// apply the change (milliseconds).
#[utoipa::path(
    delete,
    path = "/cluster/join-tokens/{id}",
    tag = "join-tokens",
    params(("id" = String, Path, description = "The token id")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 404, description = "No such join token", body = ErrorBody),
        WriteErrors
    )
)]
pub async fn revoke(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Revoked>> {
    check_join_token_id(&id).map_err(|e| ApiError::field("id", e))?;
    let (mut table, version) = read_table(&st.store).await?;
    if table.tokens.remove(&id).is_none() {
        return Err(ApiError::not_found(format!("no join token '{id}'")));
    }
    write_table(&st.store, &table, version).await?;
    tracing::info!(target: "audit", token = %caller.id, join_token = %id, "join token revoked");
    Ok(Json(Revoked { revoked: id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn table_with(made: &NewJoinToken) -> JoinTokenTable {
        let mut t = JoinTokenTable::default();
        t.tokens.insert(made.id.clone(), made.stored.clone());
        t
    }

    #[test]
    fn a_token_is_valid_until_exactly_its_expiry() {
        let made = NewJoinToken::generate(NOW, 60, "root", "").unwrap();
        let table = table_with(&made);
        let shown = made.display();
        assert_eq!(check_join_token(&table, &shown, NOW), Ok(made.id.clone()));
        assert_eq!(
            check_join_token(&table, &shown, NOW + 59),
            Ok(made.id.clone())
        );
        assert_eq!(
            check_join_token(&table, &shown, NOW + 60),
            Err(JoinTokenRefusal::Expired {
                id: made.id.clone(),
                expires: NOW + 60
            })
        );
        // Surrounding blanks (a copied line) are no problem.
        assert!(check_join_token(&table, &format!(" {shown}\n"), NOW).is_ok());
    }

    #[test]
    fn unknown_wrong_and_malformed_tokens_are_refused_by_reason() {
        let made = NewJoinToken::generate(NOW, 60, "root", "").unwrap();
        let table = table_with(&made);
        let other = NewJoinToken::generate(NOW, 60, "root", "").unwrap();
        let unknown = check_join_token(&table, &other.display(), NOW).unwrap_err();
        assert_eq!(unknown.reason(), "unknown");
        assert_eq!(unknown.id(), Some(other.id.as_str()));
        let wrong = format_join_token(&made.id, &other.secret);
        let e = check_join_token(&table, &wrong, NOW).unwrap_err();
        assert_eq!(
            e,
            JoinTokenRefusal::WrongSecret {
                id: made.id.clone()
            }
        );
        // Expiry is told only to who knows the secret.
        assert_eq!(
            check_join_token(&table, &wrong, NOW + 1000)
                .unwrap_err()
                .reason(),
            "wrong-secret"
        );
        let old_style = made.secret.clone();
        for bad in [
            "",
            ".",
            old_style.as_str(),
            &format!("{}.{}", made.id.to_uppercase(), made.secret),
            &format!("{}x.{}", made.id, made.secret),
            &format!("{}.{}", made.id, &made.secret[1..]),
            &format!("{}.{}.extra", made.id, made.secret),
        ] {
            let e = check_join_token(&table, bad, NOW).unwrap_err();
            assert_eq!(e, JoinTokenRefusal::Malformed, "{bad}");
            assert_eq!(e.id(), None);
        }
        // The messages never carry the secret.
        let texts = [unknown.to_string(), e.to_string()];
        for text in texts {
            assert!(!text.contains(&made.secret) && !text.contains(&other.secret));
        }
    }

    #[test]
    fn the_displayed_form_round_trips_and_only_digests_are_stored() {
        let made = NewJoinToken::generate(NOW, DEFAULT_TTL_SECS, "ops", "rack 4").unwrap();
        let shown = made.display();
        let parsed = parse_join_token(&shown).unwrap();
        assert_eq!(
            (parsed.id, parsed.secret),
            (made.id.as_str(), made.secret.as_str())
        );
        let stored = serde_json::to_string(&table_with(&made)).unwrap();
        assert!(!stored.contains(&made.secret));
        assert!(stored.contains(&sha256_hex(&made.secret)));
        assert_eq!(made.stored.expires, NOW + 86400);
        assert!(check_join_token_id(&made.id).is_ok());
        // The pending form in the credentials flattens the stored one.
        let pending = serde_json::to_value(made.pending()).unwrap();
        assert_eq!(pending["id"], made.id.as_str());
        assert_eq!(pending["created_by"], "ops");
    }

    #[test]
    fn lifetimes_are_parsed_and_bounded() {
        assert_eq!(parse_ttl("5s"), Ok(5));
        assert_eq!(parse_ttl("10m"), Ok(600));
        assert_eq!(parse_ttl("24h"), Ok(86400));
        assert_eq!(parse_ttl("30d"), Ok(MAX_TTL_SECS));
        for bad in [
            "",
            "24",
            "h",
            "1.5h",
            "-1h",
            "4s",
            "31d",
            "1w",
            "99999999999999999999d",
        ] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(e.starts_with("field 'ttl'"), "{bad}: {e}");
        }
    }

    #[test]
    fn pruning_drops_only_expired_tokens() {
        let old = NewJoinToken::generate(NOW - 100, 50, "root", "").unwrap();
        let live = NewJoinToken::generate(NOW, 50, "root", "").unwrap();
        let mut t = table_with(&old);
        t.tokens.insert(live.id.clone(), live.stored.clone());
        assert_eq!(t.prune_expired(NOW), 1);
        assert_eq!(t.tokens.keys().collect::<Vec<_>>(), vec![&live.id]);
    }
}
