//! Request extractors whose refusals are [`ApiError`]s naming the field.
//!
//! axum's own `Json`, `Path` and `Query` answer bad input with plain text
//! that names nothing; these wrap them so every refusal is the API's JSON
//! error body with `field` set: the JSON key at fault (an unknown, missing
//! or mistyped one), `path` or `query`, or `body` when the body as a whole
//! is wrong (not JSON, too large, wrong content type).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::error::shown;

/// A JSON request body; unknown keys are refused when the target type
/// says `#[serde(deny_unknown_fields)]` (every request type of the API
/// does).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Parses `bytes` as JSON into `T`, naming the field of any problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::field(
            "body",
            format!("field 'body': trailing data after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let message = e.inner().to_string();
    // serde names unknown and missing keys in backticks; the path ends in
    // an unknown key already, but is that of the enclosing object for a
    // missing one.
    let quoted = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|start| message.strip_prefix(start))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string());
    let path = e.path().to_string();
    let field = match (quoted, path.as_str()) {
        (Some(name), "." | "") => name,
        (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_string()
        }
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "body".to_string(),
        (None, path) => path.to_string(),
    };
    let field = shown(&field);
    ApiError::field(&field, format!("field '{field}': {message}"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body: super::error::ErrorBody {
                    error: "field 'body': expected 'Content-Type: application/json'".into(),
                    field: Some("body".into()),
                },
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError {
                status: e.status(),
                body: super::error::ErrorBody {
                    error: format!("field 'body': {}", e.body_text()),
                    field: Some("body".into()),
                },
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| ApiError::field("path", format!("field 'path': {}", e.body_text())))
    }
}

/// Query parameters; unknown ones are refused when the target type says
/// `#[serde(deny_unknown_fields)]`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::field("query", format!("field 'query': {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        sid: String,
        #[serde(default)]
        timeout: u64,
    }

    fn field_of(text: &str) -> String {
        parse_json::<Body>(text.as_bytes())
            .unwrap_err()
            .body
            .field
            .unwrap()
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field_of(r#"{"sid":"a","timout":1}"#), "timout");
        assert_eq!(field_of(r#"{"timeout":1}"#), "sid");
        assert_eq!(field_of(r#"{"sid":"a","timeout":-1}"#), "timeout");
        assert_eq!(
            field_of(r#"{"sid":"a","timeout":18446744073709551616}"#),
            "timeout"
        );
        assert_eq!(field_of("not json"), "body");
        assert_eq!(field_of(r#"{"sid":"a"} x"#), "body");
        assert!(parse_json::<Body>(br#"{"sid":"a"}"#).is_ok());
    }
}
