//! Randomized fault injection: many seeds of random faults and commands
//! on 3-5 nodes, then a healing phase, asserting the safety and liveness
//! invariants. `HA_SIM_SEEDS=N` runs N seeds (default 1000);
//! `HA_SIM_SEED=S` replays one seed and writes its scenario directory.

use std::collections::BTreeMap;
use std::path::Path;

use ha_manager::domain::{NodeName, RequestedState, ShutdownPolicy, Sid};
use ha_manager::sim::scenario::{HardwareNode, ServiceEntry};
use ha_manager::sim::{Scenario, SimTiming};

/// splitmix64: small, deterministic, good enough for test input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn scenario_for_seed(seed: u64) -> Scenario {
    let mut rng = Rng(seed);
    let node_count = 3 + rng.below(3);
    let nodes: Vec<String> = (1..=node_count).map(|i| format!("node{i}")).collect();
    let mut sc = Scenario::default();
    for n in &nodes {
        sc.hardware.insert(
            n.parse::<NodeName>().expect("node"),
            HardwareNode {
                power: false,
                network: false,
                pve_manager_version: None,
            },
        );
    }
    let service_count = 2 + rng.below(6);
    let mut sids = Vec::new();
    for i in 0..service_count {
        let kind = if rng.below(3) == 0 { "ct" } else { "vm" };
        let sid: Sid = format!("{kind}:{}", 101 + i).parse().expect("sid");
        let node: NodeName = rng.pick(&nodes).parse().expect("node");
        sc.services.insert(
            sid.clone(),
            ServiceEntry {
                node,
                state: RequestedState::Started,
                failback: rng.below(2) == 0,
                max_restart: 1,
                max_relocate: 1,
                group: None,
            },
        );
        sids.push(sid.to_string());
    }
    sc.shutdown_policy = *rng.pick(&[
        ShutdownPolicy::Conditional,
        ShutdownPolicy::Freeze,
        ShutdownPolicy::Failover,
        ShutdownPolicy::Migrate,
    ]);
    sc.cmdlist
        .push(nodes.iter().map(|n| format!("power {n} on")).collect());
    let fault_batches = 3 + rng.below(8);
    for _ in 0..fault_batches {
        let mut batch = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let n = rng.pick(&nodes).clone();
            let s = rng.pick(&sids).clone();
            let cmd = match rng.below(16) {
                0 => format!("power {n} off"),
                1 => format!("power {n} on"),
                2 => format!("network {n} off"),
                3 => format!("network {n} on"),
                4 => format!("reboot {n}"),
                5 => format!("shutdown {n}"),
                6 => format!("restart-lrm {n}"),
                7 => format!("crm {n} enable-node-maintenance"),
                8 => format!("crm {n} disable-node-maintenance"),
                9 => format!("service {s} migrate {n}"),
                10 => format!("service {s} relocate {n}"),
                11 => format!(
                    "service {s} {}",
                    rng.pick(&["stopped", "disabled", "started"])
                ),
                12 => format!("cfs {n} {} fail", rng.pick(&["rw", "update"])),
                13 => format!("cfs {n} {} work", rng.pick(&["rw", "update"])),
                14 => format!("service {s} stop {}", rng.pick(&[0, 10])),
                _ => format!("delay {}", 20 * rng.below(10)),
            };
            batch.push(cmd);
        }
        sc.cmdlist.push(batch);
    }
    // healing phase: a hard power cycle of every node (so no half-done
    // reboot survives), then everything healthy.
    sc.cmdlist
        .push(nodes.iter().map(|n| format!("power {n} off")).collect());
    let mut heal = Vec::new();
    for n in &nodes {
        heal.push(format!("power {n} on"));
        heal.push(format!("network {n} on"));
        heal.push(format!("cfs {n} rw work"));
        heal.push(format!("cfs {n} update work"));
        heal.push(format!("crm {n} start"));
        heal.push(format!("crm {n} disable-node-maintenance"));
    }
    sc.cmdlist.push(heal);
    // Requested states last, once a master consumed any queued stop
    // command (which rewrites the requested state to stopped).
    sc.cmdlist.push(vec!["delay 300".to_string()]);
    sc.cmdlist.push(
        sids.iter()
            .map(|s| format!("service {s} started"))
            .collect(),
    );
    sc
}

fn write_scenario(sc: &Scenario, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let cmdlist = serde_json::to_string_pretty(&sc.cmdlist).expect("json");
    std::fs::write(dir.join("cmdlist"), cmdlist).expect("write");
    let hw: BTreeMap<String, serde_json::Value> = sc
        .hardware
        .keys()
        .map(|n| {
            (
                n.to_string(),
                serde_json::json!({"power": "off", "network": "off"}),
            )
        })
        .collect();
    std::fs::write(
        dir.join("hardware_status"),
        serde_json::to_string_pretty(&hw).expect("json"),
    )
    .expect("write");
    let svc: BTreeMap<String, serde_json::Value> = sc
        .services
        .iter()
        .map(|(s, e)| {
            (
                s.to_string(),
                serde_json::json!({"node": e.node.as_str(), "state": e.state.as_str(), "failback": u8::from(e.failback)}),
            )
        })
        .collect();
    std::fs::write(
        dir.join("service_config"),
        serde_json::to_string_pretty(&svc).expect("json"),
    )
    .expect("write");
    std::fs::write(dir.join("manager_status"), "{}\n").expect("write");
    std::fs::write(
        dir.join("datacenter.cfg"),
        format!(
            "{{\"ha\": {{\"shutdown_policy\": \"{}\"}}}}\n",
            sc.shutdown_policy
        ),
    )
    .expect("write");
}

/// Returns a description of every broken invariant.
fn check_seed(seed: u64) -> Vec<String> {
    // even seeds run with Proxmox's timing, odd ones with ours
    let timing = if seed.is_multiple_of(2) {
        SimTiming::PVE
    } else {
        SimTiming::DEFAULT
    };
    let mut problems = check_seed_with(seed, timing);
    for p in &mut problems {
        *p = format!("[profile {}] {p}", timing.name);
    }
    problems
}

fn check_seed_with(seed: u64, timing: SimTiming) -> Vec<String> {
    let sc = scenario_for_seed(seed);
    let result = ha_manager::sim::run(&sc, timing);
    let mut problems: Vec<String> = result.final_state.violations.clone();
    if let Some(e) = result.error {
        problems.push(format!("simulation aborted: {e}"));
    }
    for (sid, svc) in &result.final_state.services {
        if svc.running_on.len() > 1 {
            problems.push(format!("{sid} runs on {:?} at the end", svc.running_on));
        }
        if svc.state == "error" {
            continue;
        }
        if svc.running_on != vec![svc.node.clone()] {
            problems.push(format!(
                "{sid} requested started but in state '{}' on '{}' running on {:?} after healing",
                svc.state, svc.node, svc.running_on
            ));
        }
    }
    problems
}

#[test]
fn random_faults_keep_the_invariants() {
    if let Ok(seed) = std::env::var("HA_SIM_SEED") {
        let seed: u64 = seed.parse().expect("HA_SIM_SEED must be a number");
        let dir = std::env::temp_dir().join(format!("ha-sim-seed-{seed}"));
        write_scenario(&scenario_for_seed(seed), &dir);
        eprintln!(
            "scenario written to {} (replay: cargo run -- sim run {})",
            dir.display(),
            dir.display()
        );
        let problems = check_seed(seed);
        assert!(
            problems.is_empty(),
            "seed {seed}:\n  {}",
            problems.join("\n  ")
        );
        return;
    }
    let seeds: u64 = std::env::var("HA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let problems = check_seed(seed);
        if !problems.is_empty() {
            failed.push(format!(
                "seed {seed} (replay: HA_SIM_SEED={seed} cargo test --test random_faults):\n  {}",
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds broke an invariant:\n{}",
        failed.len(),
        failed
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
