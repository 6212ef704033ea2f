//! Node configuration of the cluster store.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use crate::tls::NodeTls;
use crate::types::NodeId;

/// How one node of the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This node's Raft id (unique in the cluster, never reused).
    pub node_id: NodeId,
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// `host:port` where this node's HTTP server (with `/raft`) listens, as
    /// the other nodes reach it.
    pub advertise_addr: String,
    /// This node's certificate, key and trusted CAs: node-to-node traffic
    /// is mutual TLS (see [`crate::tls`]).
    pub tls: Arc<NodeTls>,
    /// Leader heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Election timeout range (a follower that hears no leader for a random
    /// time in this range starts an election).
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot (and purge the log before it) after this many
    /// applied entries.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, so slightly lagging
    /// followers catch up from the log rather than a snapshot.
    pub keep_entries_behind_snapshot: u64,
    /// Upper bound on a client request (write, read index, forward),
    /// including waiting for a leader.
    pub request_timeout: Duration,
    /// Upper bound on a membership change (adding a learner waits until it
    /// has caught up).
    pub membership_timeout: Duration,
    /// Source address of outgoing node-to-node connections. By default the
    /// IP of `advertise_addr`, so the peers see this node under the address
    /// they know it by and a firewall rule on that address means what it
    /// says; `None` lets the kernel choose (on loopback that is 127.0.0.1
    /// for every node).
    pub source_addr: Option<IpAddr>,
}

/// The IP of a `host:port` address, unless it is a name or a wildcard.
pub fn source_of(advertise_addr: &str) -> Option<IpAddr> {
    advertise_addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

impl StoreConfig {
    /// A configuration with production-leaning defaults: heartbeat 200 ms,
    /// election timeout 1-2 s, snapshot every 5000 entries.
    pub fn new(
        node_id: NodeId,
        data_dir: impl Into<PathBuf>,
        advertise_addr: impl Into<String>,
        tls: Arc<NodeTls>,
    ) -> Self {
        let advertise_addr: String = advertise_addr.into();
        Self {
            node_id,
            data_dir: data_dir.into(),
            source_addr: source_of(&advertise_addr),
            advertise_addr,
            tls,
            heartbeat_interval: Duration::from_millis(200),
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(2000)),
            snapshot_every_entries: 5000,
            keep_entries_behind_snapshot: 1000,
            request_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(30),
        }
    }

    /// Short timings for tests and the local demo: heartbeat 50 ms,
    /// election timeout 250-500 ms.
    pub fn fast(mut self) -> Self {
        self.heartbeat_interval = Duration::from_millis(50);
        self.election_timeout = (Duration::from_millis(250), Duration::from_millis(500));
        self
    }

    pub(crate) fn to_openraft(&self) -> Result<openraft::Config, openraft::ConfigError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "ha-manager".to_string(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout.0),
            election_timeout_max: ms(self.election_timeout.1),
            install_snapshot_timeout: 2000,
            snapshot_max_chunk_size: 1024 * 1024,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.keep_entries_behind_snapshot,
            ..Default::default()
        };
        config.validate()
    }
}
