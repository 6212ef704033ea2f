//! Opt-in fault soak (issue 9): random faults against one real 3-node
//! cluster (`fast` profile, one network namespace per node), judged from
//! what the heartbeat services themselves wrote.
//!
//! ```text
//! cargo run --release --example fault-soak -- [--faults N] [--seed S] [--minutes M]
//! HA_FAULT_SOAK=500 cargo run --release --example fault-soak
//! ```
//!
//! Default: 500 faults, no time budget. SIGINT or SIGTERM (or the
//! `--minutes` budget) ends the run after the current round, with the
//! summary and a full clean-up. Each round picks one fault at random (SIGKILL of a
//! daemon, power cut of a node, SIGSTOP of a daemon or a mux, two-way or
//! one-way partition, clean stop and start of a daemon; the target is the
//! leader, a node with services or any node), holds it for a random time,
//! heals it and boots whatever is down. Every 5 rounds (and at the end)
//! it waits, at most 60 s, until every node is back and every service
//! runs exactly once. Invariants, reported as breaches with the round and
//! fault that preceded them:
//! - never two writers of one service at once (heartbeat spans);
//! - every heartbeat line well-formed and written on a node;
//! - convergence within the bound;
//! - a clean stop (SIGTERM) exits 0 within 30 s (else the daemon is
//!   SIGKILLed so the run goes on).
//!
//! Prints the count per fault kind and every breach; exits 1 if any.
//! Needs root, `ip` and `iptables`. Everything it starts is stopped at the
//! end (also on error).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_manager::local_cluster::failover::built_binaries;
use ha_manager::local_cluster::heartbeat::{now_ns, Heartbeats};
use ha_manager::local_cluster::{LocalCluster, LocalClusterOptions};

/// Heartbeat services spread over the cluster.
const SERVICES: [&str; 2] = ["soak1", "soak2"];
/// Bound for convergence after a round.
const CONVERGE: Duration = Duration::from_secs(60);

/// A small deterministic PRNG (xorshift64*), so a seed replays a run's
/// choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// The faults the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillDaemon,
    PowerCut,
    PauseDaemon,
    PauseMux,
    Partition,
    OneWay,
    CleanRestart,
}

const FAULTS: [Fault; 7] = [
    Fault::KillDaemon,
    Fault::PowerCut,
    Fault::PauseDaemon,
    Fault::PauseMux,
    Fault::Partition,
    Fault::OneWay,
    Fault::CleanRestart,
];

/// Set by SIGINT/SIGTERM: finish the current round, then stop.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop the soak between rounds (so the cluster
/// is dropped and cleaned up) instead of killing it.
fn install_stop_handler() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &action) }.context("installing the stop handler")?;
    }
    Ok(())
}

fn args() -> anyhow::Result<(usize, u64, Option<Duration>)> {
    let mut faults: usize = match std::env::var("HA_FAULT_SOAK") {
        Ok(v) => v.parse().context("HA_FAULT_SOAK must be a number")?,
        Err(_) => 500,
    };
    let mut seed = now_ns() | 1;
    let mut budget = None;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).context("option without a value")?;
        match argv[i].as_str() {
            "--faults" => faults = value.parse().context("--faults")?,
            "--seed" => seed = value.parse::<u64>().context("--seed")? | 1,
            "--minutes" => {
                budget = Some(Duration::from_secs(
                    60 * value.parse::<u64>().context("--minutes")?,
                ))
            }
            other => {
                anyhow::bail!("unknown option {other} (use --faults N, --seed S, --minutes M)")
            }
        }
        i += 2;
    }
    Ok((faults, seed, budget))
}

/// The node the service runs on now, from its heartbeats.
fn service_node(c: &LocalCluster, name: &str) -> Option<usize> {
    let hb = c.heartbeats(name).ok()?;
    let last = hb.last()?;
    (now_ns().saturating_sub(last.at) < 1_000_000_000)
        .then(|| c.index_of(&last.writer.node))
        .flatten()
}

/// Boots every node whose daemon or mux is gone; `clean` nodes (stopped
/// with SIGTERM, mux and services untouched) only get their daemon back.
fn boot_down_nodes(c: &mut LocalCluster, clean: &[usize]) -> anyhow::Result<()> {
    for i in 0..c.nodes.len() {
        let daemon_gone = c.daemon_exited(i);
        let mux_gone = c.mux_exited(i);
        if clean.contains(&i) && daemon_gone && !mux_gone {
            c.start_daemon(i)?;
        } else if daemon_gone || mux_gone {
            c.start_node(i)?;
        }
    }
    Ok(())
}

/// What keeps the cluster from having converged now (None: converged):
/// nodes that do not answer, services without exactly one recent writer.
fn not_converged(c: &LocalCluster) -> Option<String> {
    let mut missing: Vec<String> = (0..c.nodes.len())
        .filter(|i| c.status_within(*i, Duration::from_secs(5)).is_err())
        .map(|i| format!("{} does not answer", c.nodes[i].name))
        .collect();
    let now = now_ns();
    for s in SERVICES {
        match c.heartbeats(s) {
            Ok(hb) => {
                let recent = hb.writers_between(now.saturating_sub(1_000_000_000), now);
                let fresh = hb
                    .last()
                    .is_some_and(|b| now.saturating_sub(b.at) < 500_000_000);
                if recent.len() != 1 || !fresh {
                    let writers: Vec<String> = recent.iter().map(ToString::to_string).collect();
                    missing.push(format!("{s}: recent writers [{}]", writers.join(", ")));
                }
            }
            Err(e) => missing.push(format!("{s}: {e}")),
        }
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// Waits until every node answers and every service runs exactly once.
/// A node whose watchdog reset it after the fault was healed (the device
/// fires up to mux + device timeout after the last feed) boots again
/// meanwhile, as a real node would after a reset.
fn converge(c: &mut LocalCluster) -> Result<(), String> {
    let end = Instant::now() + CONVERGE;
    loop {
        if let Err(e) = boot_down_nodes(c, &[]) {
            return Err(format!("booting a reset node: {e}"));
        }
        let Some(why) = not_converged(c) else {
            return Ok(());
        };
        if Instant::now() >= end {
            return Err(format!("not converged within {CONVERGE:?}: {why}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// New invariant breaches in the heartbeat files (each reported once).
fn heartbeat_breaches(c: &LocalCluster, seen: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for name in SERVICES {
        let hb = match c.heartbeats(name) {
            Ok(hb) => hb,
            Err(e) => {
                out.push(format!("{name}: cannot read heartbeats: {e}"));
                continue;
            }
        };
        let mut found: Vec<String> = hb
            .overlaps()
            .iter()
            .map(|o| format!("{name}: TWO WRITERS {} and {}", o.earlier, o.later))
            .collect();
        found.extend(
            hb.spans()
                .iter()
                .filter(|s| c.index_of(&s.writer.node).is_none())
                .map(|s| format!("{name}: writer outside every node: {}", s.writer)),
        );
        if !hb.malformed().is_empty() {
            found.push(format!("{name}: {} malformed lines", hb.malformed().len()));
        }
        for f in found {
            if !seen.contains(&f) {
                seen.push(f.clone());
                out.push(f);
            }
        }
    }
    out
}

/// Each service's CRM state and node as the first answering node shows
/// them, and the nodes whose daemon is down.
fn service_states(c: &LocalCluster) -> String {
    let status = (0..c.nodes.len()).find_map(|i| c.status_within(i, Duration::from_secs(5)).ok());
    let mut out: Vec<String> = status
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "service")
        .map(|e| e.status)
        .collect();
    if out.is_empty() {
        out.push("no node answers".into());
    }
    out.join(", ")
}

/// Requests `disabled` then `started` for every service in `error`
/// (what an operator does), waiting for the cluster to answer.
fn clear_errors(c: &LocalCluster) {
    let quick = Duration::from_secs(10);
    let answer = (0..30).find_map(|_| {
        let st = (0..c.nodes.len()).find_map(|i| c.status_within(i, quick).ok());
        if st.is_none() {
            std::thread::sleep(Duration::from_secs(1));
        }
        st
    });
    let in_error: Vec<String> = answer
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "service" && e.crm_state.as_deref() == Some("error"))
        .filter_map(|e| e.sid)
        .collect();
    for sid in in_error {
        println!("  clearing the error state of {sid}");
        let _ = c.cli_within(0, &["set", &sid, "--state", "disabled"], quick);
        std::thread::sleep(Duration::from_secs(3));
        let _ = c.cli_within(0, &["set", &sid, "--state", "started"], quick);
    }
}

/// The leader (as any node sees it), quickly.
fn leader(c: &LocalCluster) -> Option<usize> {
    (0..c.nodes.len()).find_map(|i| {
        let out = c
            .cli_within(
                i,
                &["cluster", "status", "--output-format", "json"],
                Duration::from_secs(5),
            )
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        c.index_of(v["leader"].as_str()?)
    })
}

/// The rounds that ran during `[from, to]` (heartbeat clock): the one under
/// way at `from` and every one that began before `to`.
fn rounds_during(starts: &[(u64, String)], from: u64, to: u64) -> Vec<&str> {
    let first = starts
        .partition_point(|(at, _)| *at <= from)
        .saturating_sub(1);
    starts[first..]
        .iter()
        .take_while(|(at, _)| *at < to)
        .map(|(_, what)| what.as_str())
        .collect()
}

fn main() -> anyhow::Result<()> {
    let (total, seed, budget) = args()?;
    install_stop_handler()?;
    let mut rng = Rng(seed);
    println!("fault soak: {total} faults, seed {seed}");
    let bin_dir = built_binaries().context("building the binaries")?;
    let dir = tempfile::Builder::new().prefix("ha-fault-soak").tempdir()?;
    let mut options = LocalClusterOptions::new(3, "fast", dir.path().join("c"), bin_dir);
    options.netns = true;
    let mut c = LocalCluster::start(options).context("starting the cluster")?;
    for name in SERVICES {
        c.add_heartbeat_service(0, name, &[])?;
    }
    let began = Instant::now();
    let mut counts: BTreeMap<Fault, usize> = BTreeMap::new();
    // When each round began (heartbeat clock), to name the faults behind
    // the longest gap.
    let mut round_starts: Vec<(u64, String)> = Vec::new();
    let mut breaches: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    if let Err(e) = converge(&mut c) {
        anyhow::bail!("the services never started: {e}\n{}", c.log_tails(20));
    }
    let n = c.nodes.len();
    let mut done = 0;
    for round in 1..=total {
        if STOP.load(std::sync::atomic::Ordering::Relaxed) {
            println!("stop requested: ending after {done} faults");
            break;
        }
        if budget.is_some_and(|b| began.elapsed() >= b) {
            println!("time budget used: ending after {done} faults");
            break;
        }
        done = round;
        let fault = FAULTS[usize::try_from(rng.below(FAULTS.len() as u64)).unwrap_or(0)];
        // Target: the leader, a node with a service, or any node.
        let target = match rng.below(3) {
            0 => leader(&c),
            1 => service_node(&c, SERVICES[usize::try_from(rng.below(2)).unwrap_or(0)]),
            _ => None,
        }
        .unwrap_or_else(|| usize::try_from(rng.below(n as u64)).unwrap_or(0));
        let other = (target + 1 + usize::try_from(rng.below(n as u64 - 1)).unwrap_or(0)) % n;
        let hold = rng.millis(300, 7000);
        *counts.entry(fault).or_default() += 1;
        let what = format!(
            "round {round} {fault:?} {} (other {}) hold {hold:?}",
            c.nodes[target].name, c.nodes[other].name
        );
        println!("[{:7.1}s] {what}", began.elapsed().as_secs_f64());
        round_starts.push((now_ns(), what.clone()));
        let mut clean = Vec::new();
        let mut stop_problems: Vec<String> = Vec::new();
        let result: anyhow::Result<()> = (|| {
            match fault {
                Fault::KillDaemon => {
                    if !c.daemon_exited(target) {
                        c.kill_daemon(target)?;
                    }
                    std::thread::sleep(hold);
                }
                Fault::PowerCut => {
                    c.kill_node(target);
                    std::thread::sleep(hold);
                }
                Fault::PauseDaemon => {
                    if !c.daemon_exited(target) {
                        c.pause_daemon(target)?;
                    }
                    std::thread::sleep(hold);
                }
                Fault::PauseMux => {
                    if !c.mux_exited(target) {
                        c.pause_mux(target)?;
                    }
                    std::thread::sleep(hold);
                }
                Fault::Partition => {
                    c.partition(target)?;
                    std::thread::sleep(hold);
                }
                Fault::OneWay => {
                    c.partition_one_way(target, other)?;
                    std::thread::sleep(hold);
                }
                Fault::CleanRestart => {
                    if !c.daemon_exited(target) {
                        match c.stop_daemon_clean(target, Duration::from_secs(30)) {
                            Ok(0) => {}
                            Ok(code) => stop_problems.push(format!("clean stop exit {code}")),
                            Err(e) => {
                                stop_problems.push(format!("clean stop: {e}"));
                                // A daemon stuck in its stop: kill it (its
                                // watchdog then resets the node).
                                if !c.daemon_exited(target) {
                                    c.kill_daemon(target)?;
                                }
                            }
                        }
                    }
                    clean.push(target);
                    std::thread::sleep(hold);
                }
            }
            c.heal()?;
            // A paused mux is a broken node: power-cycle it unless its
            // device already reset it.
            if fault == Fault::PauseMux && !c.mux_exited(target) && c.daemon_exited(target) {
                c.kill_node(target);
            }
            boot_down_nodes(&mut c, &clean)?;
            Ok(())
        })();
        for p in stop_problems.drain(..) {
            let b = format!("{what}: {p}");
            println!("  BREACH {b}");
            breaches.push(b);
        }
        if let Err(e) = result {
            let b = format!("{what}: harness error: {e}");
            println!("  BREACH {b}");
            breaches.push(b);
            let _ = c.heal();
            let _ = boot_down_nodes(&mut c, &clean);
        }
        std::thread::sleep(rng.millis(200, 1500));
        if round % 5 == 0 {
            if let Err(e) = converge(&mut c) {
                let b = format!("after {what}: {e}; services: {}", service_states(&c));
                println!("  BREACH {b}");
                breaches.push(b);
                // Start over from a known state: boot every node, and
                // clear the error state of services (disabled, then
                // started again) so the run goes on.
                for i in 0..n {
                    let _ = c.start_node(i);
                }
                clear_errors(&c);
                let _ = converge(&mut c);
            }
        }
        for b in heartbeat_breaches(&c, &mut seen) {
            let b = format!("after {what}: {b}");
            println!("  BREACH {b}");
            breaches.push(b);
        }
    }
    if done % 5 != 0 {
        if let Err(e) = converge(&mut c) {
            let b = format!("at the end: {e}; services: {}", service_states(&c));
            println!("  BREACH {b}");
            breaches.push(b);
        }
        for b in heartbeat_breaches(&c, &mut seen) {
            println!("  BREACH at the end: {b}");
            breaches.push(format!("at the end: {b}"));
        }
    }
    println!(
        "\n{done} faults in {:.0} s (seed {seed}):",
        began.elapsed().as_secs_f64()
    );
    for (fault, count) in &counts {
        println!("  {fault:?}: {count}");
    }
    for name in SERVICES {
        let hb: Heartbeats = c.heartbeats(name)?;
        let gap = hb.longest_gap();
        println!(
            "  {name}: {} writers, {} overlaps, longest gap {:.3}s",
            hb.spans().len(),
            hb.overlaps().len(),
            gap.map(|g| g.len()).unwrap_or_default().as_secs_f64()
        );
        if let Some(gap) = gap {
            for what in rounds_during(&round_starts, gap.from, gap.to) {
                println!("    during {what}");
            }
        }
    }
    println!("{} invariant breaches", breaches.len());
    for b in &breaches {
        println!("  {b}");
    }
    drop(c);
    drop(dir);
    if breaches.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
