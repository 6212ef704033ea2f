//! In-process clusters on loopback with real sled stores in temp dirs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use raft::tls::pki::{self, CaMaterial};
use raft::tls::{NodeTls, TlsMaterial};

use raft::{ClusterStore, NodeId, StoreConfig};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// The CA of every test cluster of a test binary.
pub fn test_ca() -> &'static CaMaterial {
    static CA: OnceLock<CaMaterial> = OnceLock::new();
    CA.get_or_init(|| pki::new_ca("test", SystemTime::now()).unwrap())
}

/// TLS material of node `id` (named `node<id>`) signed by `ca`.
pub fn tls_of(ca: &CaMaterial, id: NodeId) -> Arc<NodeTls> {
    let node = pki::issue_node(ca, id, &format!("node{id}"), SystemTime::now()).unwrap();
    NodeTls::new(TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap())
}

/// TLS material of node `id` of the test CA.
pub fn node_tls(id: NodeId) -> Arc<NodeTls> {
    tls_of(test_ca(), id)
}

pub struct TestNode {
    pub store: ClusterStore,
    pub addr: String,
    server: JoinHandle<()>,
    dir: TempDir,
}

pub struct TestCluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    tune: fn(StoreConfig) -> StoreConfig,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=error".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn test_config(id: NodeId, dir: &std::path::Path, addr: &str) -> StoreConfig {
    let mut config = StoreConfig::new(id, dir, addr, node_tls(id)).fast();
    config.request_timeout = Duration::from_secs(5);
    config.membership_timeout = Duration::from_secs(10);
    config
}

pub async fn start_node(id: NodeId, tune: fn(StoreConfig) -> StoreConfig) -> TestNode {
    start_node_at(id, tune, TempDir::new().unwrap(), "127.0.0.1:0").await
}

/// Starts a node on an existing data dir and address (for restarts).
pub async fn start_node_at(
    id: NodeId,
    tune: fn(StoreConfig) -> StoreConfig,
    dir: TempDir,
    bind: &str,
) -> TestNode {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let store = ClusterStore::start(tune(test_config(id, dir.path(), &addr)))
        .await
        .unwrap();
    let server = store.serve(listener);
    TestNode {
        store,
        addr,
        server,
        dir,
    }
}

impl TestCluster {
    /// Starts `n` voters: node 1 initializes, the others join as learners
    /// and are promoted.
    pub async fn start(n: u64) -> Self {
        Self::start_tuned(n, |c| c).await
    }

    pub async fn start_tuned(n: u64, tune: fn(StoreConfig) -> StoreConfig) -> Self {
        init_tracing();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            nodes.insert(id, start_node(id, tune).await);
        }
        let first = &nodes[&1];
        first.store.initialize(&first.addr).await.unwrap();
        let cluster = TestCluster { nodes, tune };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.node(1).is_leader() {
            assert!(Instant::now() < deadline, "node 1 never became leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for id in 2..=n {
            let addr = cluster.nodes[&id].addr.clone();
            cluster.nodes[&1]
                .store
                .add_learner(id, &addr)
                .await
                .unwrap();
            cluster.nodes[&1].store.promote_voter(id).await.unwrap();
        }
        cluster
    }

    pub fn node(&self, id: NodeId) -> &ClusterStore {
        &self.nodes[&id].store
    }

    /// Adds a fresh node as learner (through `via`).
    pub async fn add_node(&mut self, id: NodeId, via: NodeId) {
        let node = start_node(id, self.tune).await;
        let addr = node.addr.clone();
        self.nodes.insert(id, node);
        self.node(via).add_learner(id, &addr).await.unwrap();
    }

    /// Waits until the running nodes agree on a leader that is one of them.
    pub async fn wait_leader(&self, timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            for (id, node) in &self.nodes {
                if node.store.is_leader() {
                    let agreed = self
                        .nodes
                        .values()
                        .all(|n| n.store.status().leader == Some(*id));
                    if agreed {
                        return *id;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops a node: its HTTP server and its Raft node.
    pub async fn kill(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.server.abort();
        node.store.shutdown().await.unwrap();
    }

    /// Stops a node and starts it again on the same data dir and address,
    /// retrying while the old process-internal handles release the sled
    /// lock.
    pub async fn restart(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.server.abort();
        node.store.shutdown().await.unwrap();
        let (store, addr, dir) = (node.store, node.addr, node.dir);
        drop(store);
        let deadline = Instant::now() + Duration::from_secs(10);
        let config_dir = dir.path().to_path_buf();
        loop {
            let attempt =
                ClusterStore::start((self.tune)(test_config(id, &config_dir, &addr))).await;
            match attempt {
                Ok(store) => {
                    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
                    let server = store.serve(listener);
                    self.nodes.insert(
                        id,
                        TestNode {
                            store,
                            addr,
                            server,
                            dir,
                        },
                    );
                    return;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "restart of node {id} failed: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    pub fn followers(&self, leader: NodeId) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|id| *id != leader)
            .collect()
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}
