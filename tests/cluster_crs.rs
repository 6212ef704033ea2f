//! The `static` scheduler against three real daemons: every node reports
//! its capacity and usage through the store; with `crs set ha=static` new
//! services are placed by TOPSIS over their `maxcpu`/`maxmem`, so two
//! heavy services land on different nodes where `basic` (which counts
//! services) would put the second next to the first. Where the services
//! run is read from their own processes. `status --verbose` shows the
//! imbalance with automatic rebalancing on, and the reports stay within
//! their rate limit.

mod common;

use std::time::{Duration, Instant};

use common::{cli_ok as ok, marker, start, wait_running_once};
use ha_manager::crm::usage::imbalance_of;
use ha_manager::crm::NodeUsage;
use ha_manager::local_cluster::procs::{marker_command, marker_pids};
use ha_manager::local_cluster::{wait_until, LocalCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// Every node's daemon log, joined.
fn logs(c: &LocalCluster) -> String {
    c.nodes
        .iter()
        .map(|n| std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Adds `exec:<name>` (a `sleep <marker>`) with scheduler limits, and
/// returns the node its process runs on.
fn add_service(c: &LocalCluster, name: &str, marker: u64, maxcpu: &str, maxmem: &str) -> usize {
    let cmd = format!("cmd={}", marker_command(marker));
    let sid = format!("exec:{name}");
    ok(
        c,
        0,
        &[
            "add", &sid, "--param", &cmd, "--maxcpu", maxcpu, "--maxmem", maxmem,
        ],
    );
    wait_running_once(c, marker, LIMIT)
}

#[test]
fn static_scheduler_places_by_limits_from_reported_capacity() {
    // Before the daemons start: an upper bound of how long they report.
    let started = Instant::now();
    let c = start(3);
    // Every node reports its capacity before the mode changes, so the CRM
    // never has to fall back to `basic`.
    let verbose: Value = wait_until(LIMIT, "a usage report from every node", || {
        let v: Value = c.cli_json(0, &["status", "--verbose"]).ok()?;
        (v["scheduling"]["nodes"].as_object()?.len() == 3).then_some(v)
    })
    .expect("every node reports its usage");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    for (node, report) in verbose["scheduling"]["nodes"].as_object().expect("nodes") {
        let maxcpu = report["maxcpu"].as_f64().expect("maxcpu");
        assert!(maxcpu >= cpus, "{node}: {report}");
        assert!(
            report["maxmem"].as_u64().expect("maxmem") > 0,
            "{node}: {report}"
        );
        let cpu = report["cpu"].as_f64().expect("cpu");
        assert!((0.0..=maxcpu).contains(&cpu), "{node}: {report}");
    }

    ok(&c, 1, &["crs", "set", "ha=static"]);
    // With all nodes empty TOPSIS ties, and ties go by name: node1. Then
    // the light services fill node2 and node3. `basic` would put heavy2
    // on node1 too (one service everywhere, first by name); `static`
    // sees node1's CPU and memory taken and picks another node.
    let (h1, l1, l2, h2) = (marker(1), marker(2), marker(3), marker(4));
    let heavy1 = add_service(&c, "heavy1", h1, "2", "8192");
    assert_eq!(heavy1, 0, "heavy1 on the first node by name");
    // The CRM becomes active with the first service: "using" if its first
    // round sees the mode, "switching" if it changed later.
    wait_until(LIMIT, "the CRM using the static scheduler", || {
        let all = logs(&c);
        (all.contains("using scheduler mode 'static'")
            || all.contains("switching scheduler mode from 'basic' to 'static'"))
        .then_some(())
    })
    .expect("the CRM schedules static");

    let light1 = add_service(&c, "light1", l1, "0.1", "64");
    let light2 = add_service(&c, "light2", l2, "0.1", "64");
    assert_ne!(light1, light2, "the light services spread out");
    let heavy2 = add_service(&c, "heavy2", h2, "2", "8192");
    assert_ne!(
        heavy2, heavy1,
        "static placed heavy2 next to heavy1 (what basic would do)"
    );
    let all = logs(&c);
    assert!(
        all.contains(&format!(
            "placing new service 'exec:heavy2' on node '{}'",
            c.nodes[heavy2].name
        )),
        "the CRM's placement log"
    );
    assert!(
        !all.contains("fallback to 'basic' scheduler mode"),
        "the CRM fell back to basic"
    );
    let config = ok(&c, 2, &["config"]);
    assert!(
        config.contains("exec:heavy2\n\tcmd ") && config.contains("\tmaxcpu 2\n\tmaxmem 8192\n"),
        "{config}"
    );

    // Automatic rebalancing on, but with a margin no move can reach:
    // `status --verbose` shows the CRM's imbalance, and nothing moves.
    let pids: Vec<Vec<u32>> = [h1, l1, l2, h2].map(marker_pids).to_vec();
    ok(
        &c,
        0,
        &[
            "crs",
            "set",
            "ha-auto-rebalance=1",
            "ha-auto-rebalance-margin=1",
        ],
    );
    let text = ok(&c, 0, &["status", "--verbose"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("current imbalance: "))
        .unwrap_or_else(|| panic!("no imbalance line:\n{text}"));
    let value = line.trim_start_matches("current imbalance: ");
    // The engine's coefficient of variation over the reported capacities
    // and the configured limits of what runs where.
    let usage: Value = c.cli_json(0, &["status", "--verbose"]).expect("status");
    let mut loads: Vec<NodeUsage> = (0..3)
        .map(|i| {
            let r = &usage["scheduling"]["nodes"][&c.nodes[i].name];
            NodeUsage {
                maxcpu: r["maxcpu"].as_f64().expect("maxcpu"),
                maxmem: r["maxmem"].as_f64().expect("maxmem"),
                ..NodeUsage::default()
            }
        })
        .collect();
    const MIB: f64 = 1024.0 * 1024.0;
    for (node, cpu, mem) in [
        (heavy1, 2.0, 8192.0),
        (light1, 0.1, 64.0),
        (light2, 0.1, 64.0),
        (heavy2, 2.0, 8192.0),
    ] {
        loads[node].cpu += cpu;
        loads[node].mem += mem * MIB;
    }
    let static_imbalance = imbalance_of(loads.iter());
    assert_eq!(value, format!("{static_imbalance:.2}"), "{text}");
    assert!(static_imbalance > 0.3, "{static_imbalance}");
    assert!(text.contains("scheduler mode: static"), "{text}");
    assert_eq!(text.matches("node usage node").count(), 3, "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!([h1, l1, l2, h2].map(marker_pids).to_vec(), pids);

    eprintln!("{}", text.split("full cluster state").next().unwrap_or(""));

    // `dynamic` works on the measured usage, services included. The three
    // nodes share this machine, so they measure about the same load: the
    // imbalance is below `static`'s (0.67 on a 2-core, 24 GiB machine).
    ok(&c, 1, &["crs", "set", "ha=dynamic"]);
    wait_until(LIMIT, "the CRM switching to the dynamic scheduler", || {
        logs(&c)
            .contains("switching scheduler mode from 'static' to 'dynamic'")
            .then_some(())
    })
    .expect("the CRM schedules dynamic");
    let text = ok(&c, 2, &["status", "--verbose"]);
    let dynamic: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("current imbalance: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no imbalance in dynamic mode:\n{text}"));
    assert!(dynamic < static_imbalance, "{text}");

    // The reports' rate limit: at most one per node per 10 s, over a
    // window with four services running (`HA_CRS_OBSERVE_SECS`, default
    // 20, makes it longer for a measurement).
    let observe = std::env::var("HA_CRS_OBSERVE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    std::thread::sleep(Duration::from_secs(observe));
    let verbose: Value = c.cli_json(0, &["status", "--verbose"]).expect("status");
    let elapsed = started.elapsed().as_secs();
    for (node, report) in verbose["scheduling"]["nodes"].as_object().expect("nodes") {
        let seq = report["seq"].as_u64().expect("seq");
        assert!(
            seq <= 1 + elapsed / 10,
            "{node}: {seq} reports in {elapsed} s"
        );
        eprintln!("{node}: {seq} usage reports in at most {elapsed} s");
    }
    assert!(
        !logs(&c).contains("fallback to 'basic' scheduler mode"),
        "the CRM fell back to basic"
    );
    // Each exec service is measured on its node: its process group's
    // resident memory (a `sleep` uses next to no CPU).
    for (name, node) in [
        ("heavy1", heavy1),
        ("light1", light1),
        ("light2", light2),
        ("heavy2", heavy2),
    ] {
        let report = &verbose["scheduling"]["nodes"][&c.nodes[node].name];
        let measured = &report["services"][&format!("exec:{name}")];
        assert!(
            measured["mem"].as_u64().is_some_and(|m| m > 0) && measured["cpu"].as_f64().is_some(),
            "exec:{name} not measured on its node: {report}"
        );
    }
}
