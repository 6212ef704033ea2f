//! The replicated cluster store: openraft 0.9 on sled (via the `storage`
//! crate), with the application state machine of design.md section 5:
//! versioned documents with compare-and-set, the CRM command queue, leases
//! judged on the leader's monotonic clock, membership and node addresses.
//!
//! Entry points: [`ClusterStore::start`] opens a node, [`ClusterStore::router`]
//! gives the axum routes to mount under `/raft`, and the methods of
//! [`ClusterStore`] are the client API.

// openraft's StorageError/RaftError types are large and are imposed by its
// traits; boxing them at every internal helper would only add noise.
#![allow(clippy::result_large_err)]

pub mod command;
pub mod config;
pub mod error;
pub mod network;
pub mod recovery;
pub mod state;
pub mod store;
pub mod tls;
pub mod types;

pub use command::{Command, CommandResponse, DocKey, Document, Outcome};
pub use config::StoreConfig;
pub use error::StoreError;
pub use lease::{LeaseCommand, LeaseOutcome, LeaseRecord};
pub use state::ClusterState;
pub use store::{
    Applied, ClusterStore, MembershipView, NodeStatus, PeerCheck, StartError, WeakClusterStore,
};
pub use types::{Node, NodeId, TypeConfig};

impl ClusterStore {
    /// The axum routes of this node (Raft RPCs and forwarded requests),
    /// to be mounted under `/raft`.
    pub fn router(&self) -> axum::Router {
        network::server::router(self.clone())
    }

    /// Serves `Router::new().nest("/raft", self.router())` over TLS with
    /// this node's certificate on `listener` until the returned task is
    /// aborted. Convenience for tests and tools; the daemon mounts
    /// [`Self::router`] in its own server (with connection limits).
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let app = axum::Router::new().nest("/raft", self.router());
        let tls = self.tls().clone();
        tokio::spawn(async move {
            let config = match tls.server_config() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "raft https server cannot start");
                    return;
                }
            };
            // Connections live in this set, so aborting the task ends them
            // too (a restarted node must not keep serving old connections
            // with its old store).
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let tcp = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                };
                let app = app.clone();
                let config = config.clone();
                connections.spawn(async move {
                    let limit = std::time::Duration::from_secs(5);
                    match tls::accept::handshake(config, tcp, limit).await {
                        Ok((stream, identity)) => serve_tls_connection(stream, identity, app).await,
                        Err(e) => tracing::debug!(error = %e, "raft https connection refused"),
                    }
                });
            }
        })
    }
}

/// Serves `app` on one TLS connection, with the client's identity (if it
/// presented a node certificate) on every request.
pub async fn serve_tls_connection<S>(
    stream: S,
    identity: Option<tls::PeerIdentity>,
    app: axum::Router,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let service = tower::service_fn(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            if let Some(identity) = identity.clone() {
                req.extensions_mut().insert(identity);
            }
            let app = app.clone();
            async move { app.oneshot(req.map(axum::body::Body::new)).await }
        },
    );
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(
        hyper_util::rt::TokioIo::new(stream),
        hyper_util::service::TowerToHyperService::new(service),
    );
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "raft https connection ended with an error");
    }
}
