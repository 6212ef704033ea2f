//! Cluster resource scheduling benchmarks: one CRM round with `static`
//! scheduling and resource-affinity rules over 10,000 services on 32
//! nodes, and one automatic-rebalancing evaluation (bruteforce) over
//! 2,000 services on 32 nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use ha_manager::crm::{
    AgentLease, ConfiguredResource, GroupMigrationInput, Manager, ManagerInput, ManagerStatus,
    NodeAffinity, NodeState, NodeStats, ResourceAffinity, Scheduling, ServiceRecord, ServiceState,
    ServiceStats, Steps,
};
use ha_manager::domain::{CrsMode, NodeName, RequestedState, ResourceConfig, Sid};
use ha_manager::lrm::LrmStatus;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A cluster of `nodes` nodes with `services` started services; service
/// `i` runs on `place(i)`.
struct Cluster {
    nodes: Vec<NodeName>,
    membership: BTreeMap<NodeName, bool>,
    resources: BTreeMap<Sid, ConfiguredResource>,
    status: ManagerStatus,
    leases: BTreeMap<NodeName, AgentLease>,
    scheduling: Scheduling,
}

fn cluster(nodes: usize, services: usize, place: impl Fn(usize) -> usize) -> Cluster {
    let names: Vec<NodeName> = (1..=nodes)
        .map(|i| format!("node{i:02}").parse().unwrap())
        .collect();
    let mut status = ManagerStatus::default();
    let mut scheduling = Scheduling::default();
    for n in &names {
        status.node_status.insert(n.clone(), NodeState::Online);
        scheduling.node_stats.insert(
            n.clone(),
            NodeStats {
                maxcpu: 128.0,
                maxmem: 1024.0 * GIB,
                ..NodeStats::default()
            },
        );
    }
    let mut resources = BTreeMap::new();
    for i in 0..services {
        let sid: Sid = format!("vm:{}", 100 + i).parse().unwrap();
        let node = names[place(i) % nodes].clone();
        let mut config = ResourceConfig::with_defaults(sid.clone());
        config.state = RequestedState::Started;
        resources.insert(
            sid.clone(),
            ConfiguredResource {
                config,
                node: node.clone(),
            },
        );
        let mut sd = ServiceRecord::new(ServiceState::Started, node);
        sd.uid = Some(format!("u{i}"));
        sd.running = true;
        status.service_status.insert(sid.clone(), sd);
        scheduling.service_stats.insert(
            sid,
            ServiceStats {
                maxcpu: 1.0 + (i % 4) as f64,
                maxmem: (1 + i % 8) as f64 * GIB,
                cpu: 0.5,
                mem: GIB,
            },
        );
    }
    Cluster {
        membership: names.iter().map(|n| (n.clone(), true)).collect(),
        leases: names
            .iter()
            .map(|n| (n.clone(), AgentLease::Held { expired: false }))
            .collect(),
        nodes: names,
        resources,
        status,
        scheduling,
    }
}

fn round(c: &Cluster, manager: &mut Manager, affinity: &ResourceAffinity, now: u64) -> Steps {
    let node_affinity: BTreeMap<Sid, NodeAffinity> = BTreeMap::new();
    let lrm: BTreeMap<NodeName, LrmStatus> = BTreeMap::new();
    let input = ManagerInput {
        now_ms: now,
        membership: &c.membership,
        resources: &c.resources,
        node_affinity: &node_affinity,
        resource_affinity: affinity,
        lrm_status: &lrm,
        crm_commands: &[],
        agent_leases: &c.leases,
        unplaced: &[],
        guest_locks: &BTreeMap::new(),
        fence_delay_ms: 60_000,
        group_migration: GroupMigrationInput::no_groups(10_000),
        scheduling: &c.scheduling,
    };
    let mut out = Steps::default();
    manager.manage(&input, &mut out);
    out
}

/// Positive pairs (vm:100+4k, vm:101+4k) on one node, and negative pairs
/// (vm:102+4k, vm:103+4k) on two nodes: half of all services in a rule.
fn pairs(services: usize) -> ResourceAffinity {
    let mut aff = ResourceAffinity::default();
    let sid = |i: usize| -> Sid { format!("vm:{}", 100 + i).parse().unwrap() };
    let link = |map: &mut BTreeMap<Sid, BTreeSet<Sid>>, a: usize, b: usize| {
        map.entry(sid(a)).or_default().insert(sid(b));
        map.entry(sid(b)).or_default().insert(sid(a));
    };
    for k in (0..services.saturating_sub(3)).step_by(8) {
        link(&mut aff.positive, k, k + 1);
        link(&mut aff.negative, k + 2, k + 3);
    }
    aff
}

fn static_round(c: &mut Criterion) {
    // Positive partners share a node (k and k+1 land on the same node
    // when placed by k / 2); negative ones (k+2, k+3) are put apart, so
    // the cluster complies and rounds are steady.
    let mut cl = cluster(32, 10_000, |i| if i % 8 == 3 { i / 2 + 1 } else { i / 2 });
    cl.scheduling.crs.mode = CrsMode::Static;
    let affinity = pairs(10_000);
    let mut manager = Manager::new(cl.nodes[0].clone(), &cl.status);
    let mut now = 0;
    // The first round logs the mode; from then on rounds are steady.
    let first = round(&cl, &mut manager, &affinity, now);
    assert!(
        !format!("{first:?}").contains("migrate"),
        "the benchmark cluster must comply with its rules"
    );
    c.bench_function("crm_round_static_affinity_10000_services_32_nodes", |b| {
        b.iter(|| {
            now += 10_000;
            black_box(round(&cl, &mut manager, &affinity, now));
        })
    });
}

fn rebalance_evaluation(c: &mut Criterion) {
    // Half the nodes carry everything: imbalance 1.0.
    let mut cl = cluster(32, 2_000, |i| i % 16);
    cl.scheduling.crs.mode = CrsMode::Static;
    cl.scheduling.crs.auto_rebalance = true;
    cl.scheduling.crs.threshold = 0.0;
    cl.scheduling.crs.hold_rounds = 1;
    // No move can reach this margin, so every round evaluates every
    // (bundle, target) pair and queues nothing.
    cl.scheduling.crs.margin = 2.0;
    let affinity = ResourceAffinity::default();
    let mut manager = Manager::new(cl.nodes[0].clone(), &cl.status);
    let mut now = 0;
    round(&cl, &mut manager, &affinity, now);
    c.bench_function("auto_rebalance_bruteforce_2000_services_32_nodes", |b| {
        b.iter(|| {
            now += 10_000;
            black_box(round(&cl, &mut manager, &affinity, now));
        })
    });
}

criterion_group!(benches, static_round, rebalance_evaluation);
criterion_main!(benches);
