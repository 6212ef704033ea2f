//! The HTTP answer of a daemon that has no cluster credentials yet.
//!
//! The daemon binds its port before it waits for `cluster init` or
//! `cluster join`, so a port clash fails at once. Without this answer, a
//! request in that window (e.g. `cluster join` aimed at a node that was
//! never initialised) would sit in the listen backlog until the client
//! gave up, and the operator would read only "operation timed out".

use std::time::Duration;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::api::error::ErrorBody;
use crate::domain::NodeName;

/// How long the stand-in server may take to finish the requests it is
/// answering once the credentials are there.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The message every request gets while the node is not in a cluster.
pub fn message(node: &NodeName) -> String {
    format!(
        "node '{node}' is not part of a cluster yet: run 'ha-manager cluster init' on it to \
         create one, or join through a node that is a member"
    )
}

/// Answers every request on (a clone of) `listener` with 503 and
/// [`message`] until `credentials` resolves, then stops accepting and
/// hands the listener back for the real server. Served under the same
/// `limits` as the real server (connection cap, header and request
/// timeouts).
pub async fn answer_until<T>(
    listener: tokio::net::TcpListener,
    node: &NodeName,
    limits: super::http_server::ServerLimits,
    credentials: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(tokio::net::TcpListener, T)> {
    let listener = listener
        .into_std()
        .context("taking over the HTTP listener")?;
    let stand_in = tokio::net::TcpListener::from_std(
        listener.try_clone().context("cloning the HTTP listener")?,
    )
    .context("cloning the HTTP listener")?;
    let text = message(node);
    let app = axum::Router::new().fallback(move || {
        let text = text.clone();
        async move {
            // Connection: close, so no idle keep-alive connection delays
            // the hand-over to the real server.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONNECTION, "close")],
                Json(ErrorBody {
                    error: text,
                    field: None,
                }),
            )
                .into_response()
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(super::http_server::serve(
        stand_in,
        app,
        None,
        limits,
        async {
            let _ = stop_rx.await;
        },
    ));
    let result = credentials.await;
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN_LIMIT, &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    let value = result?;
    let listener =
        tokio::net::TcpListener::from_std(listener).context("taking back the HTTP listener")?;
    Ok((listener, value))
}
