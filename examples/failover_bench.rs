//! `cargo run --release --example failover-bench -- [--trials N] [--timing fast|default]`
//!
//! Failover time from a fault of the service's node to the service running
//! on another node (process-level), N trials per case, each on a fresh
//! three-node local cluster (one network namespace per node) with real
//! watchdog fencing (test backend): SIGKILL of the daemon with the service
//! on a follower and on the Raft leader; a hang (SIGSTOP past the lease)
//! and a network partition of the leader running the service. Then the
//! other side: a hang and a partition of the leader while the service runs
//! on a follower, where the service must run on, uninterrupted, and the
//! follower must not be reset. Also the daemons' idle resident memory and
//! the `ha-manager status` round trip. Needs root, `ip` and `iptables`.

use std::time::{Duration, Instant};

use anyhow::Context;
use ha_manager::local_cluster::failover::{
    built_binaries, run_fault_trial, run_leader_fault_trial, Fault, Victim,
};
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
    let fresh = |dir: &tempfile::TempDir| {
        let mut options =
            LocalClusterOptions::new(3, timing, dir.path().to_path_buf(), bin_dir.clone());
        options.netns = true;
        LocalCluster::start(options)
    };
    let mut marker = 8_000_000_000 + u64::from(std::process::id()) * 100;
    let cases = [
        (Victim::Follower, Fault::Kill),
        (Victim::Leader, Fault::Kill),
        (Victim::Leader, Fault::Hang),
        (Victim::Leader, Fault::Partition),
    ];
    let mut results: Vec<((Victim, Fault), Duration, Duration)> = Vec::new();
    for (victim, fault) in cases {
        for t in 0..trials {
            let dir = tempfile::Builder::new().prefix("ha-bench").tempdir()?;
            let mut cluster = fresh(&dir)?;
            marker += 1;
            let r = run_fault_trial(&mut cluster, &format!("bench{t}"), marker, victim, fault)?;
            anyhow::ensure!(r.max_copies <= 1, "trial {t}: two copies at once");
            println!(
                "{timing} {fault:?} of the {victim:?} trial {t}: {} -> {}, old copy gone {:.2} s, running again {:.2} s",
                cluster.nodes[r.from].name,
                cluster.nodes[r.to].name,
                r.old_copy_gone.as_secs_f64(),
                r.recovered.as_secs_f64()
            );
            results.push(((victim, fault), r.old_copy_gone, r.recovered));
        }
    }
    let mut spared: Vec<(Fault, Duration, bool)> = Vec::new();
    for fault in [Fault::Hang, Fault::Partition] {
        for t in 0..trials {
            let dir = tempfile::Builder::new().prefix("ha-bench").tempdir()?;
            let mut cluster = fresh(&dir)?;
            marker += 1;
            let r = run_leader_fault_trial(&mut cluster, &format!("spare{t}"), marker, fault)?;
            anyhow::ensure!(r.max_copies <= 1, "trial {t}: two copies at once");
            println!(
                "{timing} {fault:?} of the leader, service on follower {}, trial {t}: interruption {:.3} s, follower reset: {}",
                cluster.nodes[r.follower].name,
                r.interruption.as_secs_f64(),
                r.follower_reset
            );
            spared.push((fault, r.interruption, r.follower_reset));
        }
    }
    println!("\nprofile '{timing}', {trials} trials per case:");
    for case in cases {
        let rec: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == case)
            .map(|r| r.2)
            .collect();
        let gone: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == case)
            .map(|r| r.1)
            .collect();
        let (victim, fault) = case;
        summary(&format!("  {fault:?} of the {victim:?}, failover"), rec);
        summary(
            &format!("  {fault:?} of the {victim:?}, old copy ended by its watchdog"),
            gone,
        );
    }
    for fault in [Fault::Hang, Fault::Partition] {
        let mine: Vec<&(Fault, Duration, bool)> = spared.iter().filter(|s| s.0 == fault).collect();
        let resets = mine.iter().filter(|s| s.2).count();
        summary(
            &format!("  {fault:?} of the leader, service on a follower, interruption"),
            mine.iter().map(|s| s.1).collect(),
        );
        println!(
            "  {fault:?} of the leader: follower reset in {resets} of {} trials",
            mine.len()
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
