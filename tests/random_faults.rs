//! Randomized fault injection: many seeds of random faults and commands
//! on 3-5 nodes in all three timing profiles, then a healing phase,
//! asserting the safety and liveness invariants:
//!
//! - a service never runs on two nodes, and is never started on a node
//!   before its old node was fenced or confirmed stopped; no agent lease is
//!   taken over while its holder's watchdog has not fired (the
//!   simulator's `violations`);
//! - no node is reset by its watchdog while it can reach the quorum (the
//!   simulator's `liveness_violations`);
//! - every service requested `started` runs again, once, on its node,
//!   after the healing phase.
//!
//! Each test seed also seeds the simulator (`--seed`): node order within a
//! round, message delay and loss, election timeouts. The faults: power,
//! network, cut links (one way and both ways), a hung daemon (the leader
//! among them) and its resume, a clean daemon stop and start, reboot and
//! shutdown, LRM restart, CRM stop and start, skipped CRM and LRM rounds,
//! a restarted or hung watchdog-mux, message delay and loss, cfs failures,
//! maintenance and service commands.
//!
//! `HA_SIM_SEEDS=N` runs N seeds (default 1000); `HA_SIM_SEED=S` replays
//! one seed and writes its scenario directory; a failure prints the
//! command that replays it.

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

/// The timing profile of a test seed: pve, default and fast in turn.
fn timing_of(seed: u64) -> SimTiming {
    SimTiming::ALL[(seed % 3) as usize]
}

/// One random fault or command.
fn random_command(rng: &mut Rng, nodes: &[String], sids: &[String]) -> String {
    let n = rng.pick(nodes).clone();
    let m = rng.pick(nodes).clone();
    let s = rng.pick(sids).clone();
    match rng.below(36) {
        0 | 1 => format!("power {n} off"),
        2 => format!("power {n} on"),
        3 => format!("network {n} off"),
        4 => format!("network {n} on"),
        5 => format!("reboot {n}"),
        6 => format!("shutdown {n}"),
        7 => format!("restart-lrm {n}"),
        8 => format!("crm {n} stop"),
        9 => format!("crm {n} start"),
        10 => format!("crm {n} enable-node-maintenance"),
        11 => format!("crm {n} disable-node-maintenance"),
        12 => format!("service {s} migrate {n}"),
        13 => format!("service {s} relocate {n}"),
        14 => format!(
            "service {s} {}",
            rng.pick(&["stopped", "disabled", "started"])
        ),
        15 => format!("cfs {n} {} fail", rng.pick(&["rw", "update"])),
        16 => format!("cfs {n} {} work", rng.pick(&["rw", "update"])),
        17 => format!("service {s} stop {}", rng.pick(&[0, 10])),
        18 => format!(
            "skip-round {} {}",
            rng.pick(&["crm", "lrm"]),
            1 + rng.below(3)
        ),
        19 | 20 => format!("pause {n}"),
        21 => "pause leader".to_string(),
        22 => format!("resume {n}"),
        23 => "resume all".to_string(),
        24 if n != m => format!("link {n} {m} off"),
        25 if n != m => format!("link {n} to {m} off"),
        26 if n != m => format!("link {n} {m} on"),
        27 => "link all on".to_string(),
        28 => format!("daemon {n} stop"),
        29 => format!("daemon {n} start"),
        30 => format!("mux {n} restart"),
        31 => format!("mux {n} hang"),
        32 => format!("mux {n} resume"),
        33 => format!("net loss {}", rng.pick(&[0, 20, 50])),
        _ => format!("delay {}", 20 * rng.below(10)),
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
        let batch = (0..1 + rng.below(2))
            .map(|_| random_command(&mut rng, &nodes, &sids))
            .collect();
        sc.cmdlist.push(batch);
    }
    // Healing phase: a hard power cycle of every node (so no half-done
    // reboot or stop survives), every link and the network whole again,
    // then everything healthy.
    let mut off: Vec<String> = nodes.iter().map(|n| format!("power {n} off")).collect();
    off.push("link all on".to_string());
    off.push("net loss 0".to_string());
    sc.cmdlist.push(off);
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

/// The directory a seed's scenario is written to.
fn seed_dir(seed: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ha-sim-seed-{seed}"))
}

/// How to replay a seed: the test, and the simulator on its scenario.
fn replay(seed: u64) -> String {
    format!(
        "HA_SIM_SEED={seed} cargo test -p ha-manager --test random_faults; \
         ha-manager sim run {} --seed {seed} --profile {}",
        seed_dir(seed).display(),
        timing_of(seed).name
    )
}

/// Returns a description of every broken invariant.
fn check_seed(seed: u64) -> Vec<String> {
    let timing = timing_of(seed);
    let sc = scenario_for_seed(seed);
    let result = ha_manager::sim::run_seeded(&sc, timing, seed);
    let mut problems: Vec<String> = result.final_state.violations.clone();
    problems.extend(
        result
            .final_state
            .liveness_violations
            .iter()
            .map(|v| format!("liveness: {v}")),
    );
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
    for p in &mut problems {
        *p = format!("[profile {}] {p}", timing.name);
    }
    problems
}

#[test]
fn random_faults_keep_the_invariants() {
    if let Ok(seed) = std::env::var("HA_SIM_SEED") {
        let seed: u64 = seed.parse().expect("HA_SIM_SEED must be a number");
        let dir = seed_dir(seed);
        write_scenario(&scenario_for_seed(seed), &dir);
        eprintln!(
            "scenario written to {} (replay: ha-manager sim run {} --seed {seed} --profile {})",
            dir.display(),
            dir.display(),
            timing_of(seed).name
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
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let problems = check_seed(seed);
        if !problems.is_empty() {
            failed.push(format!(
                "seed {seed} (replay: {}):\n  {}",
                replay(seed),
                problems.join("\n  ")
            ));
        }
    }
    eprintln!(
        "{seeds} seeds in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
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

/// The seeds are spread over the three profiles, and one seed gives the
/// same run twice.
#[test]
fn seeds_cover_every_profile_and_replay_exactly() {
    let names: Vec<&str> = (0..3).map(|s| timing_of(s).name).collect();
    assert_eq!(names, vec!["pve", "default", "fast"]);
    let sc = scenario_for_seed(42);
    let a = ha_manager::sim::run_seeded(&sc, timing_of(42), 42);
    let b = ha_manager::sim::run_seeded(&sc, timing_of(42), 42);
    assert_eq!(a.log, b.log);
    let other = ha_manager::sim::run_seeded(&sc, timing_of(42), 43);
    assert_ne!(a.log, other.log, "the seed changes the run");
}
