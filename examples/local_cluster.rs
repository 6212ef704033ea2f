//! `cargo run --release --example local-cluster [-- --timing fast|default]`
//!
//! Starts three `ha-manager daemon` processes on loopback, each with its
//! own watchdog-mux (test backend: a fired watchdog SIGKILLs the node's
//! cgroup instead of resetting the machine), adds a demo `exec` service,
//! SIGKILLs the daemon of the node that runs it and prints the failover
//! timeline as the survivors and the processes show it. Needs root (one
//! cgroup per node). Everything it starts is stopped at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_manager::local_cluster::failover::built_binaries;
use ha_manager::local_cluster::procs::{marker_command, marker_pids, ServiceWatch};
use ha_manager::local_cluster::{wait_until, LocalCluster, LocalClusterOptions};
use nix::sys::signal::Signal;

const SID: &str = "exec:demo";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let timing = match args.iter().position(|a| a == "--timing") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("default") => "default",
            Some("fast") => "fast",
            other => anyhow::bail!("--timing: expected fast or default, got {other:?}"),
        },
        None => "fast",
    };
    let bin_dir = built_binaries().context("building the binaries")?;
    let dir = tempfile::Builder::new()
        .prefix("ha-local-cluster")
        .tempdir()?;
    println!(
        "starting 3 nodes (timing profile '{timing}') in {}",
        dir.path().display()
    );
    let t0 = Instant::now();
    let cluster = LocalCluster::start(LocalClusterOptions::new(
        3,
        timing,
        dir.path().to_path_buf(),
        bin_dir,
    ))
    .context("starting the local cluster")?;
    println!("cluster formed in {:.1} s", t0.elapsed().as_secs_f64());
    let cs = cluster.cluster_status(0)?;
    println!("leader: {}", cs.leader.unwrap_or_default());

    let marker = 7_000_000_000 + u64::from(std::process::id());
    let cmd = format!("cmd={}", marker_command(marker));
    let out = cluster.cli(0, &["add", SID, "--param", &cmd])?;
    anyhow::ensure!(out.code == 0, "add failed: {}", out.stderr);
    println!("added {SID} ({})", marker_command(marker));
    let locate = cluster.pid_locator();
    let on = wait_until(Duration::from_secs(60), "the demo service", || {
        let pids = marker_pids(marker);
        (pids.len() == 1).then(|| locate(pids[0])).flatten()
    })?;
    wait_until(
        Duration::from_secs(60),
        "the LRM to report it started",
        || {
            let e = cluster.service_status((on + 1) % 3, SID)?;
            e.status.ends_with(", started)").then_some(())
        },
    )?;
    println!(
        "{SID} runs on {} (pid {})",
        cluster.nodes[on].name,
        marker_pids(marker)[0]
    );
    print_status(&cluster, (on + 1) % 3)?;

    let watch = ServiceWatch::start(marker, cluster.pid_locator());
    let survivor = (on + 1) % 3;
    println!(
        "\n--- SIGKILL of the daemon on {} ---",
        cluster.nodes[on].name
    );
    let killed = Instant::now();
    cluster.signal_daemon(on, Signal::SIGKILL)?;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut old_gone_printed = false;
    let recovered = loop {
        let t = killed.elapsed().as_secs_f64();
        if !old_gone_printed {
            if let Some(at) = watch.first_gone_from(killed, on) {
                println!(
                    "{:6.2} s  the old copy is gone: {}'s watchdog fired and killed the node's cgroup",
                    at.duration_since(killed).as_secs_f64(),
                    cluster.nodes[on].name
                );
                old_gone_printed = true;
            }
        }
        if let Ok(entries) = cluster.status(survivor) {
            for e in entries {
                if e.kind == "quorum" {
                    continue;
                }
                // The status lines carry a timestamp; report real changes.
                let shown = without_timestamp(&e.status);
                if last.get(&e.id) != Some(&shown) {
                    println!("{t:6.2} s  {} {}", e.kind, e.status);
                    last.insert(e.id.clone(), shown);
                }
            }
        }
        if let Some((at, to)) = watch.first_elsewhere(killed, on) {
            break (at.duration_since(killed), to);
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "no failover within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "{:6.2} s  {SID} runs on {} (pid {})",
        recovered.0.as_secs_f64(),
        cluster.nodes[recovered.1].name,
        marker_pids(marker).first().copied().unwrap_or(0)
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "\nfailover: {:.2} s from SIGKILL to the service running on {}",
        recovered.0.as_secs_f64(),
        cluster.nodes[recovered.1].name
    );
    println!(
        "most copies ever running at once: {} (must be 1)",
        watch.max_copies()
    );
    print_status(&cluster, survivor)?;
    anyhow::ensure!(watch.max_copies() == 1, "the service ran twice");
    println!("stopping the cluster");
    Ok(())
}

/// `node1 (active, Sun Nov 22 22:09:51 2026)` -> `node1 (active`.
fn without_timestamp(status: &str) -> String {
    match status.rsplit_once(", ") {
        Some((head, tail)) if tail.ends_with(')') && tail.len() == 25 => head.to_string(),
        _ => status.to_string(),
    }
}

fn print_status(cluster: &LocalCluster, via: usize) -> anyhow::Result<()> {
    let out = cluster.cli(via, &["status"])?;
    println!("$ ha-manager status   (on {})", cluster.nodes[via].name);
    print!("{}", out.stdout);
    Ok(())
}
