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
pub mod types;

pub use command::{Command, CommandResponse, DocKey, Document, Outcome};
pub use config::StoreConfig;
pub use error::StoreError;
pub use lease::{LeaseCommand, LeaseOutcome, LeaseRecord};
pub use state::ClusterState;
pub use store::{Applied, ClusterStore, MembershipView, NodeStatus, StartError};
pub use types::{Node, NodeId, TypeConfig};

impl ClusterStore {
    /// The axum routes of this node (Raft RPCs and forwarded requests),
    /// to be mounted under `/raft`.
    pub fn router(&self) -> axum::Router {
        network::server::router(self.clone())
    }

    /// Serves `Router::new().nest("/raft", self.router())` on `listener`
    /// until the returned task is aborted. Convenience for tests and tools;
    /// the daemon mounts [`Self::router`] in its own server.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let app = axum::Router::new().nest("/raft", self.router());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "raft http server stopped");
            }
        })
    }
}
