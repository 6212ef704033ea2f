//! Measures the mux in-process with the test backend:
//! - keepalive round-trip time (client sends, mux acknowledges) with
//!   several concurrent clients;
//! - expiry: time from a client's last acknowledged keepalive until the
//!   test backend has killed the protected process (bound: client timeout
//!   + device timeout).
//!
//! Run: `cargo run --release -p watchdog --example mux_latency`
//! (optional args: clients, keepalives per client).

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};
use watchdog::mux::{signals, BoundSocket, Exit, MuxConfig};
use watchdog::test_backend::{ProtectTarget, TestBackend};
use watchdog::WatchdogClient;

const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);
const DEVICE_TIMEOUT: Duration = Duration::from_millis(500);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn start_mux(
    dir: &std::path::Path,
    pgid: i32,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<Exit>>> {
    let config = MuxConfig {
        socket_path: dir.join("mux.sock"),
        active_marker: dir.join("active"),
        feed_interval: Duration::from_millis(100),
        min_client_timeout: Duration::from_millis(50),
        max_client_timeout: Duration::from_secs(60),
        max_clients: 100,
        handshake_timeout: Duration::from_secs(5),
    };
    let bound = BoundSocket::bind(config)?;
    let backend = TestBackend::start(DEVICE_TIMEOUT, vec![ProtectTarget::ProcessGroup(pgid)])?;
    let mux = bound.start(Box::new(backend))?;
    Ok(std::thread::spawn(move || Ok(mux.run()?)))
}

fn main() -> anyhow::Result<()> {
    signals::block()?;
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);

    // Round trips.
    let dir = tempfile::tempdir()?;
    let mut protected = Command::new("sleep").arg("1000").process_group(0).spawn()?;
    let pgid = protected.id() as i32;
    let mux = start_mux(dir.path(), pgid)?;
    let socket = dir.path().join("mux.sock");
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut client = WatchdogClient::connect(&socket, Duration::from_secs(10))?;
                let mut samples = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    let start = Instant::now();
                    client.keepalive()?;
                    samples.push(start.elapsed());
                }
                client.release()?;
                Ok(samples)
            })
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("worker panicked"))??,
        );
    }
    let elapsed = started.elapsed();
    samples.sort();
    println!(
        "keepalive round trip, {clients} concurrent clients x {rounds}: p50 {:?}, p99 {:?}, max {:?}; {:.0} keepalives/s",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len() as f64 / elapsed.as_secs_f64()
    );

    // Expiry: stop keeping a client alive and time the kill.
    let mut client = WatchdogClient::connect(&socket, CLIENT_TIMEOUT)?;
    client.keepalive()?;
    let last_ack = Instant::now();
    let status = loop {
        if let Some(status) = protected.try_wait()? {
            break status;
        }
        if last_ack.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("protected process never killed");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    println!(
        "expiry: protected process dead ({status}) {:?} after the last keepalive ack; bound client {:?} + device {:?} = {:?}",
        last_ack.elapsed(),
        CLIENT_TIMEOUT,
        DEVICE_TIMEOUT,
        CLIENT_TIMEOUT + DEVICE_TIMEOUT
    );
    drop(client);

    kill(Pid::this(), Signal::SIGTERM)?;
    let exit = mux.join().map_err(|_| anyhow::anyhow!("mux panicked"))??;
    println!("mux exit after fence: {exit:?}");
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    Ok(())
}
