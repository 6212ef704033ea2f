//! Engine benchmarks: one CRM manager round over 10,000 services on 32
//! nodes, and 24 h of simulated time of a 3-node cluster with 100
//! services and one fault every simulated 10 minutes.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use ha_manager::crm::{
    ConfiguredResource, GroupMigrationInput, Manager, ManagerInput, ManagerStatus, NodeAffinity,
    NodeState, ServiceRecord, ServiceState, Steps,
};
use ha_manager::domain::{NodeName, RequestedState, ResourceConfig, Sid};
use ha_manager::lrm::LrmStatus;
use ha_manager::sim::scenario::{HardwareNode, ServiceEntry};
use ha_manager::sim::{Scenario, SimTiming};

fn crm_round(c: &mut Criterion) {
    let nodes: Vec<NodeName> = (1..=32)
        .map(|i| format!("node{i}").parse().unwrap())
        .collect();
    let membership: BTreeMap<NodeName, bool> = nodes.iter().map(|n| (n.clone(), true)).collect();
    let mut resources = BTreeMap::new();
    let mut ms = ManagerStatus::default();
    for n in &nodes {
        ms.node_status.insert(n.clone(), NodeState::Online);
    }
    for i in 0..10_000 {
        let sid: Sid = format!("vm:{}", 100 + i).parse().unwrap();
        let node = nodes[i % nodes.len()].clone();
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
        ms.service_status.insert(sid, sd);
    }
    let affinity: BTreeMap<Sid, NodeAffinity> = BTreeMap::new();
    let lrm: BTreeMap<NodeName, LrmStatus> = BTreeMap::new();
    let leases: BTreeMap<NodeName, ha_manager::crm::AgentLease> = nodes
        .iter()
        .map(|n| {
            (
                n.clone(),
                ha_manager::crm::AgentLease::Held { expired: false },
            )
        })
        .collect();
    let locks = BTreeMap::new();
    let commands: Vec<String> = Vec::new();
    let mut manager = Manager::new(nodes[0].clone(), &ms);
    let mut now = 0u64;
    c.bench_function("crm_round_10000_services_32_nodes", |b| {
        b.iter(|| {
            now += 10_000;
            let input = ManagerInput {
                now_ms: now,
                membership: &membership,
                resources: &resources,
                node_affinity: &affinity,
                resource_affinity: &ha_manager::crm::ResourceAffinity::default(),
                lrm_status: &lrm,
                crm_commands: &commands,
                agent_leases: &leases,
                unplaced: &[],
                guest_locks: &locks,
                fence_delay_ms: 60_000,
                group_migration: GroupMigrationInput::no_groups(10_000),
                scheduling: &ha_manager::crm::Scheduling::default(),
            };
            let mut out = Steps::default();
            manager.manage(&input, &mut out);
            black_box(out);
        })
    });
    c.bench_function("crm_round_10000_services_32_nodes_with_status_copy", |b| {
        b.iter(|| {
            now += 10_000;
            let input = ManagerInput {
                now_ms: now,
                membership: &membership,
                resources: &resources,
                node_affinity: &affinity,
                resource_affinity: &ha_manager::crm::ResourceAffinity::default(),
                lrm_status: &lrm,
                crm_commands: &commands,
                agent_leases: &leases,
                unplaced: &[],
                guest_locks: &locks,
                fence_delay_ms: 60_000,
                group_migration: GroupMigrationInput::no_groups(10_000),
                scheduling: &ha_manager::crm::Scheduling::default(),
            };
            let mut out = Steps::default();
            manager.manage(&input, &mut out);
            // the shell writes a copy of the status every round
            black_box(manager.status().clone());
            black_box(out);
        })
    });
}

/// 3 nodes, 100 services, 24 h; every 10 minutes one node is powered off
/// or cut from the network, and powered on again 5 minutes later.
fn day_scenario() -> Scenario {
    let mut sc = Scenario::default();
    let nodes = ["node1", "node2", "node3"];
    for n in nodes {
        sc.hardware.insert(
            n.parse().unwrap(),
            HardwareNode {
                power: false,
                network: false,
                pve_manager_version: None,
            },
        );
    }
    for i in 0..100 {
        sc.services.insert(
            format!("vm:{}", 100 + i).parse().unwrap(),
            ServiceEntry {
                node: nodes[i % 3].parse().unwrap(),
                state: RequestedState::Started,
                failback: true,
                max_restart: 1,
                max_relocate: 1,
                group: None,
            },
        );
    }
    sc.cmdlist
        .push(nodes.iter().map(|n| format!("power {n} on")).collect());
    // batches come every 100 s: a fault every 6th batch, repair 3 later
    let batches = 86_400 / 100;
    for b in 1..batches {
        let k = b / 6;
        let node = nodes[k % 3];
        let cmd = match b % 6 {
            0 if k % 2 == 0 => vec![format!("power {node} off")],
            0 => vec![format!("network {node} off")],
            3 => vec![format!("power {node} on")],
            _ => vec![],
        };
        sc.cmdlist.push(cmd);
    }
    sc
}

fn simulated_day(c: &mut Criterion) {
    let sc = day_scenario();
    let mut timing = SimTiming::PVE;
    timing.max_time_ms = 200_000_000;
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // Seed 0: sorted node order, no message delay or loss; seed 1: node
    // order, delays (up to 100 ms), 1 % loss and election timeouts drawn.
    for (name, seed) in [
        ("sim_24h_3_nodes_100_services_fault_every_10min", 0),
        ("sim_24h_3_nodes_100_services_fault_every_10min_seed1", 1),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = ha_manager::sim::run_seeded(&sc, timing, seed);
                assert!(result.final_state.violations.is_empty());
                assert!(result.final_state.liveness_violations.is_empty());
                assert!(result.final_state.time >= 86_400);
                black_box(result.log.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, crm_round, simulated_day);
criterion_main!(benches);
