//! `cargo run --release --example failover-bench -- [--trials N] [--timing fast|default]`
//!
//! Failover time from SIGKILL of the service's node to the service running
//! on another node (process-level), N trials each with the service on a
//! follower and on the Raft leader, each trial on a fresh three-node local
//! cluster with real watchdog fencing (test backend). Also the daemons'
//! idle resident memory and the `ha-manager status` round trip.

use std::time::{Duration, Instant};

use anyhow::Context;
use ha_manager::local_cluster::failover::{built_binaries, run_trial, Victim};
use ha_manager::local_cluster::{LocalCluster, LocalClusterOptions};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn summary(label: &str, mut v: Vec<Duration>) {
    if v.is_empty() {
        return;
    }
    v.sort();
    let ms = |d: Duration| d.as_secs_f64();
    println!(
        "{label}: n={} min {:.2} s, median {:.2} s, max {:.2} s",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let trials: usize = arg(&args, "--trials")
        .unwrap_or("10")
        .parse()
        .context("--trials")?;
    let timing = match arg(&args, "--timing").unwrap_or("fast") {
        "fast" => "fast",
        "default" => "default",
        other => anyhow::bail!("--timing: expected fast or default, got '{other}'"),
    };
    let bin_dir = built_binaries()?;
    let mut results: Vec<(Victim, Duration, Duration)> = Vec::new();
    let mut marker = 8_000_000_000 + u64::from(std::process::id()) * 100;
    for victim in [Victim::Follower, Victim::Leader] {
        for t in 0..trials {
            let dir = tempfile::Builder::new().prefix("ha-bench").tempdir()?;
            let mut cluster = LocalCluster::start(LocalClusterOptions::new(
                3,
                timing,
                dir.path().to_path_buf(),
                bin_dir.clone(),
            ))?;
            marker += 1;
            let r = run_trial(&mut cluster, &format!("bench{t}"), marker, victim)?;
            anyhow::ensure!(r.max_copies <= 1, "trial {t}: two copies at once");
            println!(
                "{timing} {victim:?} trial {t}: {} -> {}, leader killed: {}, old copy gone {:.2} s, running again {:.2} s",
                cluster.nodes[r.from].name,
                cluster.nodes[r.to].name,
                r.leader_killed,
                r.old_copy_gone.as_secs_f64(),
                r.recovered.as_secs_f64()
            );
            results.push((victim, r.old_copy_gone, r.recovered));
        }
    }
    println!("\nprofile '{timing}', {trials} trials per case:");
    for victim in [Victim::Follower, Victim::Leader] {
        let rec: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == victim)
            .map(|r| r.2)
            .collect();
        let gone: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == victim)
            .map(|r| r.1)
            .collect();
        summary(&format!("  {victim:?} killed, failover"), rec);
        summary(
            &format!("  {victim:?} killed, old copy killed by its watchdog"),
            gone,
        );
    }

    // Idle memory and CLI latency on a fresh cluster.
    let dir = tempfile::Builder::new().prefix("ha-bench").tempdir()?;
    let cluster = LocalCluster::start(LocalClusterOptions::new(
        3,
        timing,
        dir.path().to_path_buf(),
        bin_dir,
    ))?;
    std::thread::sleep(Duration::from_secs(10));
    for n in &cluster.nodes {
        if let Some(kib) = n.daemon_pid().and_then(rss_kib) {
            println!("idle RSS {}: {:.1} MiB", n.name, kib as f64 / 1024.0);
        }
    }
    let mut lat = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let out = cluster.cli(1, &["status"])?;
        anyhow::ensure!(out.code == 0, "status failed: {}", out.stderr);
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "`ha-manager status` round trip (process start included): min {:.1} ms, median {:.1} ms, max {:.1} ms",
        lat[0].as_secs_f64() * 1e3,
        lat[lat.len() / 2].as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    Ok(())
}
