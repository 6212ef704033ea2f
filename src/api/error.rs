//! API errors: an HTTP status and a JSON body `{"error": ..., "field": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Human readable message (names the field when there is one).
    pub error: String,
    /// The offending field, if the error is about one input field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error answers any authenticated read can get (for the OpenAPI
/// document: every error is an [`ErrorBody`]).
#[derive(utoipa::IntoResponses)]
pub enum ReadErrors {
    /// No API token or node certificate, or an unknown or wrong one.
    #[response(
        status = 401,
        description = "Not authenticated: missing, unknown or wrong API token"
    )]
    Unauthorized(ErrorBody),
    /// The store could not answer.
    #[response(
        status = 500,
        description = "The cluster store failed or holds a corrupt document"
    )]
    Internal(ErrorBody),
    /// No Raft leader, or it did not answer in time.
    #[response(status = 503, description = "No cluster leader, or no answer in time")]
    Unavailable(ErrorBody),
}

/// The error answers of a read that read-only tokens may not make (token
/// lists, join tokens, backups).
#[derive(utoipa::IntoResponses)]
pub enum AdminReadErrors {
    /// No API token or node certificate, or an unknown or wrong one.
    #[response(
        status = 401,
        description = "Not authenticated: missing, unknown or wrong API token"
    )]
    Unauthorized(ErrorBody),
    /// A read-only token.
    #[response(
        status = 403,
        description = "The token is read-only and this read needs an admin token"
    )]
    Forbidden(ErrorBody),
    /// The store could not answer.
    #[response(
        status = 500,
        description = "The cluster store failed or holds a corrupt document"
    )]
    Internal(ErrorBody),
    /// No Raft leader, or it did not answer in time.
    #[response(status = 503, description = "No cluster leader, or no answer in time")]
    Unavailable(ErrorBody),
}

/// The error answers of a change (admin token or node certificate): bad
/// input names the field and changes nothing.
#[derive(utoipa::IntoResponses)]
pub enum WriteErrors {
    /// A bad field, key, value, path or query (`field` names it).
    #[response(
        status = 400,
        description = "Bad input; `field` names it and nothing changed"
    )]
    BadRequest(ErrorBody),
    /// No API token or node certificate, or an unknown or wrong one.
    #[response(
        status = 401,
        description = "Not authenticated: missing, unknown or wrong API token"
    )]
    Unauthorized(ErrorBody),
    /// A read-only token.
    #[response(status = 403, description = "The token is read-only")]
    Forbidden(ErrorBody),
    /// The document changed since the given digest, or the change
    /// conflicts with the cluster's state.
    #[response(
        status = 409,
        description = "Conflict: the document changed meanwhile (digest), or the cluster's state forbids the change"
    )]
    Conflict(ErrorBody),
    /// The body is larger than the route accepts.
    #[response(status = 413, description = "The body is too large")]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(
        status = 415,
        description = "The body is not 'Content-Type: application/json'"
    )]
    UnsupportedMediaType(ErrorBody),
    /// The store could not answer.
    #[response(
        status = 500,
        description = "The cluster store failed or holds a corrupt document"
    )]
    Internal(ErrorBody),
    /// No Raft leader, or it did not answer in time.
    #[response(status = 503, description = "No cluster leader, or no answer in time")]
    Unavailable(ErrorBody),
}

/// An error answered by the API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub body: ErrorBody,
}

impl ApiError {
    /// 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: message.into(),
                field: Some(field.to_string()),
            },
        }
    }

    /// An error with a status and no field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: message.into(),
                field: None,
            },
        }
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<raft::StoreError> for ApiError {
    fn from(e: raft::StoreError) -> Self {
        let status = match &e {
            raft::StoreError::VersionConflict { .. } => StatusCode::CONFLICT,
            raft::StoreError::NoLeader | raft::StoreError::Timeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("cluster store: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
