//! Outgoing HTTP: the openraft network and request forwarding.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire;
use crate::tls::NodeTls;
use crate::types::{Node, NodeId, TypeConfig};

/// Why an HTTP exchange with a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Could not connect: the peer cannot have seen the request.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke or timed out: the peer may have acted on it.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an HTTP error (refused certificate, bad
    /// body, ...).
    #[error("peer answered HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response text.
        body: String,
    },
    /// The request or response body could not be encoded/decoded.
    #[error("codec: {0}")]
    Codec(#[from] storage::codec::CodecError),
}

/// Shared HTTPS client of node-to-node traffic: presents this node's
/// certificate and accepts only servers with a certificate of the cluster
/// CA (see [`crate::tls`]). When the node's certificate is replaced, the
/// next request opens new connections with the new one (pooled
/// connections keep the certificate of their handshake, which a later
/// renewal may unlist).
#[derive(Clone)]
pub struct PeerClient {
    tls: Arc<NodeTls>,
    source: Option<std::net::IpAddr>,
    http: Arc<RwLock<(u64, reqwest::Client)>>,
}

impl PeerClient {
    /// Builds a client with `tls`'s certificate that connects from
    /// `source` (see [`crate::StoreConfig::source_addr`]; `None`: the
    /// kernel picks).
    pub fn new(tls: Arc<NodeTls>, source: Option<std::net::IpAddr>) -> Result<Self, HttpError> {
        let generation = tls.generation();
        let http = Self::build(&tls, source)?;
        Ok(Self {
            tls,
            source,
            http: Arc::new(RwLock::new((generation, http))),
        })
    }

    fn build(
        tls: &Arc<NodeTls>,
        source: Option<std::net::IpAddr>,
    ) -> Result<reqwest::Client, HttpError> {
        let config = tls
            .client_config()
            .map_err(|e| HttpError::Connect(format!("TLS configuration: {e}")))?;
        // Shorter than the 5 s in which the daemon's server closes an idle
        // connection, so a request never goes out on a connection the
        // peer is closing (a renewal every 10 s in the `pve` profile
        // would otherwise race with that close).
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .pool_idle_timeout(Duration::from_secs(4))
            .tcp_nodelay(true)
            .local_address(source)
            .build()
            .map_err(|e| HttpError::Connect(format!("HTTP client: {e}")))
    }

    /// The client of the current certificate (a new one, with a new pool,
    /// after the certificate was replaced).
    fn http(&self) -> Result<reqwest::Client, HttpError> {
        let generation = self.tls.generation();
        {
            let current = match self.http.read() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if current.0 == generation {
                return Ok(current.1.clone());
            }
        }
        let fresh = Self::build(&self.tls, self.source)?;
        let mut slot = match self.http.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = (generation, fresh.clone());
        tracing::info!(
            generation,
            "node certificate replaced: new peer connections"
        );
        Ok(fresh)
    }

    /// POSTs `body` to `https://{addr}/raft{path}` and decodes the reply.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        what: &'static str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, HttpError> {
        let bytes = wire::encode(what, body)?;
        let url = format!("https://{addr}/raft{path}");
        let response = self
            .http()?
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect(e.to_string())
                } else {
                    HttpError::Unreachable(e.to_string())
                }
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(wire::decode(what, &body)?)
    }
}

/// Creates one [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    client: PeerClient,
}

impl NetworkFactory {
    /// A factory sharing `client`.
    pub fn new(client: PeerClient) -> Self {
        Self { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerConnection {
    client: PeerClient,
    target: NodeId,
    addr: String,
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        what: &'static str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply: Result<Resp, RaftError<NodeId, E>> = self
            .client
            .post(&self.addr, path, what, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                HttpError::Connect(_) | HttpError::Unreachable(_) => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(wire::PATH_APPEND, "append-entries", &rpc, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(wire::PATH_SNAPSHOT, "install-snapshot", &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(wire::PATH_VOTE, "vote", &rpc, &option).await
    }
}
