//! The web dashboard every daemon serves on its HTTPS listener, next to
//! the API: `/` redirects to `/ui/`, `/ui/...` are the page's static
//! files, embedded in the binary (no build step, no CDN: the page works on
//! an air-gapped network).
//!
//! The files hold no cluster data, so they are served without a token;
//! everything the page shows or changes goes through the `/api/v1` routes
//! with the token the operator pastes into the page, so a read-only token
//! sees and an admin token acts, exactly as with the CLI. Every answer
//! carries a strict `Content-Security-Policy` (only this origin's scripts,
//! styles and connections; no inline script, no frames) and is revalidated
//! by its `ETag`, so a daemon upgrade is picked up on the next load.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// The policy of every page answer: this origin only, no inline script or
/// style, no plugins, not framed, forms post nowhere else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file of the page.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its name under `/ui/`.
    pub name: &'static str,
    /// `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The page's files. `style.css` is shared with the simulator page.
pub const ASSETS: [Asset; 5] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/dashboard.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// A strong entity tag of `body` (the first 16 hex digits of its SHA-256).
fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The headers every answer of the page carries.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Serves `asset`, or 304 when the browser's copy (`If-None-Match`) is
/// current. `no-cache` makes the browser ask every time (the files change
/// with the binary, and asking costs one small request).
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    security_headers(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    response
}

async fn index(request: HeaderMap) -> Response {
    match asset("index.html") {
        Some(a) => serve(a, &request),
        None => not_found("index.html"),
    }
}

async fn file(Path(name): Path<String>, request: HeaderMap) -> Response {
    match asset(&name) {
        Some(a) => serve(a, &request),
        None => not_found(&name),
    }
}

/// A missing file: the API's JSON error shape, so every 404 of the
/// listener reads the same.
fn not_found(name: &str) -> Response {
    let mut response = crate::api::error::ApiError::field(
        "path",
        format!(
            "field 'path': no dashboard file '{}'",
            crate::domain::error::shown(name)
        ),
    )
    .with_status(StatusCode::NOT_FOUND)
    .into_response();
    security_headers(response.headers_mut());
    response
}

/// The dashboard's routes (`/`, `/ui`, `/ui/`, `/ui/{file}`), without a
/// token: they serve only the embedded files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_present_and_the_page_has_no_inline_script() {
        for a in &ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        let html = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        // The policy forbids inline script and style: the page must not
        // need them (a `<script>` may only load a file of this origin).
        for piece in html.split("<script").skip(1) {
            let tag_end = piece.find('>').unwrap();
            assert!(
                piece[..tag_end].contains("src=\"/ui/"),
                "inline script: {piece}"
            );
            assert!(piece[tag_end + 1..].starts_with("</script>"));
        }
        assert!(!html.contains("style=\""), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains("http://") && !html.contains("https://"));
        for name in ["app.js", "style.css", "dashboard.css"] {
            let text = std::str::from_utf8(asset(name).unwrap().body).unwrap();
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name} refers to another origin"
            );
        }
    }

    #[test]
    fn etags_differ_by_content_and_match_on_revalidation() {
        assert_ne!(etag(b"a"), etag(b"b"));
        let a = asset("app.js").unwrap();
        let mut request = HeaderMap::new();
        let first = serve(a, &request);
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].clone();
        assert_eq!(
            first.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            first.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        request.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve(a, &request).status(), StatusCode::NOT_MODIFIED);
    }
}
