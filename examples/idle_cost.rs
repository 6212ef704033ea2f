//! `cargo run --release --example idle-cost -- [--services N] [--seconds S] [--timing default|fast]`
//!
//! What an idle cluster costs: a three-node local cluster (real daemons,
//! real watchdog-mux with the test backend) with N services, half of them
//! started and half stopped; once everything settled, it measures for S
//! seconds how many Raft log entries the cluster writes per second and how
//! much CPU and memory each daemon uses. Goal (issue 9): at most 5 entries
//! per second in total with 100 services, under 3 % CPU per daemon.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ha_manager::local_cluster::failover::built_binaries;
use ha_manager::local_cluster::{wait_until, LocalCluster, LocalClusterOptions};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The last log index the cluster applied, as node 0's metrics say.
fn applied_index(c: &LocalCluster) -> anyhow::Result<u64> {
    let url = c.url(0, "/metrics");
    // /metrics needs a token: a read-only one, made once.
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let token = match TOKEN.get() {
        Some(t) => t.clone(),
        None => {
            let out = c.cli(0, &["token", "add", "idle-cost", "--role", "read-only"])?;
            anyhow::ensure!(out.code == 0, "token add: {}", out.stderr);
            let t = out
                .stdout
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("idle-cost."))
                .context("no token in the output of 'token add'")?
                .to_string();
            TOKEN.get_or_init(|| t).clone()
        }
    };
    let text = c
        .https_client(0)?
        .get(&url)
        .bearer_auth(token)
        .send()
        .with_context(|| format!("GET {url}"))?
        .text()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ha_raft_applied_index "))
        .and_then(|v| v.trim().parse().ok())
        .context("no ha_raft_applied_index in /metrics")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let services: usize = arg(&args, "--services")
        .unwrap_or("100")
        .parse()
        .context("--services")?;
    let seconds: u64 = arg(&args, "--seconds")
        .unwrap_or("60")
        .parse()
        .context("--seconds")?;
    let timing = match arg(&args, "--timing").unwrap_or("default") {
        "fast" => "fast",
        "default" => "default",
        other => bail!("--timing: expected default or fast, got '{other}'"),
    };
    let bin_dir = built_binaries()?;
    let dir = tempfile::Builder::new().prefix("ha-idle").tempdir()?;
    let c = LocalCluster::start(LocalClusterOptions::new(
        3,
        timing,
        dir.path().to_path_buf(),
        bin_dir,
    ))?;
    let marker = 7_000_000_000 + u64::from(std::process::id()) * 1000;
    for i in 0..services {
        let state = if i % 2 == 0 { "started" } else { "stopped" };
        let sid = format!("exec:idle{i}");
        let cmd = format!("cmd=exec sleep {}", marker + i as u64);
        let out = c.cli(i % 3, &["add", &sid, "--state", state, "--param", &cmd])?;
        if out.code != 0 {
            bail!("add {sid}: {}", out.stderr);
        }
    }
    let started = services.div_ceil(2);
    wait_until(
        Duration::from_secs(300),
        "every started service running",
        || {
            let running = (0..services)
                .step_by(2)
                .filter(|i| {
                    !ha_manager::local_cluster::procs::marker_pids(marker + *i as u64).is_empty()
                })
                .count();
            (running == started).then_some(())
        },
    )?;
    // Let the last status writes and results settle.
    std::thread::sleep(Duration::from_secs(15));
    let pids: Vec<u32> = c
        .nodes
        .iter()
        .map(|n| n.daemon_pid().context("daemon pid"))
        .collect::<anyhow::Result<_>>()?;
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu0: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).collect();
    let index0 = applied_index(&c)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let index1 = applied_index(&c)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let entries = index1.saturating_sub(index0) as f64 / elapsed;
    println!(
        "idle cluster, profile {timing}, {services} services ({started} started, {} stopped), {seconds} s",
        services - started
    );
    println!("raft log entries per second (whole cluster): {entries:.2}");
    for (i, pid) in pids.iter().enumerate() {
        let cpu1 = cpu_ticks(*pid).unwrap_or(0);
        let pct = (cpu1.saturating_sub(cpu0[i]) as f64 / ticks_per_s) / elapsed * 100.0;
        println!(
            "{}: CPU {pct:.2} %, resident memory {:.1} MiB",
            c.nodes[i].name,
            rss_kib(*pid).unwrap_or(0) as f64 / 1024.0
        );
    }
    Ok(())
}
