//! The simulated cluster: nodes, the cluster store (lease table, manager
//! status, LRM status, command queue, service config), Raft and the
//! network, in virtual time (spec sections 5.4, 8.2, 8.5; design.md
//! section 9). The behaviour is split by concern: `crm_run.rs` and
//! `lrm_run.rs` run the daemons, `tasks.rs` the events between their
//! iterations, `commands.rs` the cmdlist, `checks.rs` the violations.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::crm::{ConfiguredResource, ManagerStatus};
use crate::domain::{NodeName, ResourceConfig, ShutdownPolicy, Sid};
use crate::lrm::LrmStatus;

use super::cluster::Cluster;
use super::net::{NetParams, Network};
use super::node::SimNode;
use super::raft::{NodeLink, Topology};
use super::rng::SimRng;
use super::scenario::{Scenario, ServiceEntry};
use super::timing::SimTiming;

/// Name of the manager lock (pve profile: Proxmox's CRM lock; in default
/// and fast the manager "lock" is Raft leadership itself).
pub const MANAGER_LOCK: &str = "ha_manager_lock";

/// The pve-manager version of a node whose `hardware_status` entry has
/// none (spec 8.2). It is older than the group migration minimum, so
/// groups are only migrated in scenarios that set versions.
pub const DEFAULT_PVE_MANAGER_VERSION: &str = "9.0.0~2";

/// The whole simulated cluster.
#[derive(Debug)]
pub struct World {
    /// Timing in use.
    pub timing: SimTiming,
    /// The seed of the run.
    pub seed: u64,
    /// Global clock (ms).
    pub now: u64,
    /// Nodes by name.
    pub nodes: BTreeMap<NodeName, SimNode>,
    /// The store's leases, Raft, the network and the event queue.
    pub cluster: Cluster,
    /// Version of the stored manager status (bumped on every write).
    pub manager_status_version: u64,
    /// Runs of the LRM so far (a new run, a new lease incarnation).
    pub(crate) incarnations: u64,
    /// Lease-client epochs handed out so far.
    pub(crate) epochs: u64,
    /// Stored manager status.
    pub manager_status: ManagerStatus,
    /// The CRM's event history (`crm::history`), kept as the store keeps
    /// it.
    pub history: crate::crm::history::MemoryHistory,
    /// Stored LRM status documents.
    pub lrm_status: BTreeMap<NodeName, LrmStatus>,
    /// Pending CRM command lines.
    pub crm_commands: Vec<String>,
    /// Service configuration with the current node (the shape the CRM
    /// and LRM read, so no per-iteration conversion is needed).
    pub services: BTreeMap<Sid, ConfiguredResource>,
    /// Guest locks.
    pub guest_locks: BTreeMap<Sid, String>,
    /// Node affinity rules (compiled per iteration).
    pub rules: Vec<crate::domain::NodeAffinityRule>,
    /// Resource affinity rules (compiled per iteration).
    pub resource_rules: Vec<crate::domain::ResourceAffinityRule>,
    /// Legacy groups (emptied by the group migration).
    pub groups: Vec<crate::domain::GroupConfig>,
    /// pve-manager version reported by each node.
    pub node_versions: BTreeMap<NodeName, String>,
    /// Shutdown policy.
    pub shutdown_policy: ShutdownPolicy,
    /// `crs` options, node capacities and service statistics.
    pub stats: super::stats::SimStats,
    pub(crate) fa_tries: BTreeMap<(Sid, &'static str), u32>,
    /// Log lines.
    pub log: Vec<String>,
    /// Safety violations seen.
    pub violations: Vec<String>,
    /// Liveness violations seen (a node reset while it reached the
    /// quorum).
    pub liveness_violations: Vec<String>,
    /// When a CRM round was last skipped (`skip-round crm`).
    pub crm_skipped_at: Option<u64>,
    /// The topology last built, with the inputs it was built from.
    topo_cache: RefCell<Option<(TopoKey, Rc<Topology>)>>,
    /// What Raft and the standings were last refreshed for.
    pub(crate) refreshed_for: Option<NetKey>,
}

/// What a [`Topology`] is built from: per node whether it takes part in
/// Raft and has its network up (2 bits each), and the links' generation.
type TopoKey = (u128, u64);

/// What Raft and the nodes' standings depend on (see
/// [`World::net_changed`](World::net_changed)): the topology, the leader,
/// its term and whether it started, a running election, each node's mux
/// health and whether it believes in the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetKey {
    topo: TopoKey,
    leader: Option<usize>,
    term: u64,
    started: bool,
    election: bool,
    mux: u128,
    belief: u128,
}

impl World {
    /// Builds the world from a scenario, for `seed`.
    pub fn new(sc: &Scenario, timing: SimTiming, seed: u64) -> World {
        let nodes = sc
            .hardware
            .keys()
            .map(|n| (n.clone(), SimNode::new(n, &timing)))
            .collect();
        let params = NetParams::for_seed(seed, &timing);
        let mut world = World {
            timing,
            seed,
            now: 0,
            nodes,
            cluster: Cluster::new(Network::new(params), SimRng::new(seed), timing),
            manager_status_version: 0,
            incarnations: 0,
            epochs: 0,
            manager_status: sc.manager_status.clone(),
            history: Default::default(),
            lrm_status: BTreeMap::new(),
            crm_commands: Vec::new(),
            services: sc
                .services
                .iter()
                .map(|(sid, e)| (sid.clone(), configured(sid, e, &sc.groups)))
                .collect(),
            guest_locks: BTreeMap::new(),
            rules: sc.rules.clone(),
            resource_rules: sc.resource_rules.clone(),
            groups: sc.groups.clone(),
            node_versions: sc
                .hardware
                .iter()
                .map(|(n, hw)| {
                    let version = hw
                        .pve_manager_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PVE_MANAGER_VERSION.to_string());
                    (n.clone(), version)
                })
                .collect(),
            shutdown_policy: sc.shutdown_policy,
            stats: sc.stats.clone(),
            fa_tries: BTreeMap::new(),
            log: Vec::new(),
            violations: Vec::new(),
            liveness_violations: Vec::new(),
            crm_skipped_at: None,
            topo_cache: RefCell::new(None),
            refreshed_for: None,
        };
        // Nodes that start powered run their daemons from the start.
        for (n, hw) in &sc.hardware {
            if hw.power {
                world.power_silent(n, true);
                if let Some(node) = world.nodes.get_mut(n) {
                    node.network = hw.network;
                }
            }
        }
        world.net_changed();
        world
    }

    /// Formats a time for the log.
    pub fn fmt_time(&self, ms: u64) -> String {
        if self.timing.name == "pve" {
            format!("{:>5}", ms / 1000)
        } else {
            format!("{:>5}.{:03}", ms / 1000, ms % 1000)
        }
    }

    /// Appends a log line.
    pub fn log_line(&mut self, level: &str, time: u64, source: &str, msg: &str) {
        let line = format!(
            "{:<5} {} {:>12}: {}",
            level,
            self.fmt_time(time),
            source,
            msg
        );
        self.log.push(line);
    }

    /// Logs a harness line at the global time.
    pub fn hw_log(&mut self, source: &str, msg: &str) {
        self.log_line("info", self.now, source, msg);
    }

    /// Records a safety violation at the global time.
    pub(crate) fn violation(&mut self, msg: String) {
        let t = self.fmt_time(self.now);
        self.violations.push(format!("{}: {msg}", t.trim()));
    }

    fn topo_key(&self) -> Option<TopoKey> {
        if self.nodes.len() > 64 {
            return None;
        }
        let mut bits = 0u128;
        for (i, n) in self.nodes.values().enumerate() {
            let v = u128::from(n.running_daemon()) | (u128::from(n.network) << 1);
            bits |= v << (2 * i);
        }
        Some((bits, self.cluster.net.generation()))
    }

    /// The network as it is now (rebuilt only when a node's power,
    /// daemon, pause or network, or a link changed).
    pub fn topology(&self) -> Rc<Topology> {
        let key = self.topo_key();
        if let (Some(k), Some((cached, topo))) = (key, &*self.topo_cache.borrow()) {
            if k == *cached {
                return topo.clone();
            }
        }
        let members: Vec<(NodeName, NodeLink)> = self
            .nodes
            .iter()
            .map(|(name, n)| {
                (
                    name.clone(),
                    NodeLink {
                        participant: n.running_daemon(),
                        network: n.network,
                    },
                )
            })
            .collect();
        let topo = Rc::new(Topology::build(&members, self.cluster.net.blocked()));
        if let Some(k) = key {
            *self.topo_cache.borrow_mut() = Some((k, topo.clone()));
        }
        topo
    }

    /// The [`NetKey`] of now (`None` for clusters too large to key).
    pub(crate) fn net_key(&self) -> Option<NetKey> {
        let topo = self.topo_key()?;
        let raft = &self.cluster.raft;
        let leader = raft
            .leader()
            .and_then(|l| self.nodes.keys().position(|n| n == l));
        let (mut mux, mut belief) = (0u128, 0u128);
        for (i, (name, n)) in self.nodes.iter().enumerate() {
            let fault = n.mux.failure().is_some_and(|(_, why)| why.is_mux_fault()) || !n.cfs_rw;
            mux |= (u128::from(n.mux.answers()) | (u128::from(fault) << 1)) << (2 * i);
            belief |= u128::from(raft.belief(name) == raft.leader()) << i;
        }
        Some(NetKey {
            topo,
            leader,
            term: raft.term(),
            started: raft.term_started(),
            election: raft.election_pending(),
            mux,
            belief,
        })
    }

    /// Quorum as seen from `node`: it exchanges messages with the leader
    /// (or, while an election runs, with a majority).
    pub fn quorate_for(&self, node: &NodeName) -> bool {
        self.cluster.quorate(&self.topology(), node)
    }

    /// Whether `node` can commit a write now.
    pub fn can_commit(&self, node: &NodeName) -> bool {
        self.cluster.can_commit(&self.topology(), node)
    }

    /// Membership: node -> online (in the quorate part of the cluster).
    pub fn membership(&self) -> BTreeMap<NodeName, bool> {
        let topo = self.topology();
        self.nodes
            .keys()
            .map(|name| (name.clone(), self.cluster.quorate(&topo, name)))
            .collect()
    }

    /// All nodes a service is running on.
    pub fn running_on(&self, sid: &Sid) -> Vec<NodeName> {
        self.nodes
            .iter()
            .filter(|(_, x)| x.running.contains(sid))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Node order for one round: sorted in seed 0, shuffled otherwise.
    pub fn round_order(&mut self) -> Vec<NodeName> {
        let mut order: Vec<NodeName> = self.nodes.keys().cloned().collect();
        if self.cluster.net.params.shuffle_order {
            self.cluster.rng.shuffle(&mut order);
        }
        order
    }
}

/// Converts a scenario service entry to what the CRM reads.
pub fn configured(
    sid: &Sid,
    e: &ServiceEntry,
    groups: &[crate::domain::GroupConfig],
) -> ConfiguredResource {
    let mut config = ResourceConfig::with_defaults(sid.clone());
    config.state = e.state;
    config.failback = e.failback;
    config.max_restart = e.max_restart;
    config.max_relocate = e.max_relocate;
    config.group = e.group.clone();
    config.failback = crate::config::effective_failback(&config, groups);
    ConfiguredResource {
        config,
        node: e.node.clone(),
    }
}
