//! watchdog-mux: owns the node's watchdog and multiplexes it to local
//! clients over a unix socket. See the watchdog crate README.

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use watchdog::backend::{Backend, DeviceBackend};
use watchdog::duration::parse_duration;
use watchdog::mux::{signals, BoundSocket, Exit, MuxConfig};
use watchdog::test_backend::{ProtectTarget, TestBackend};

/// Which watchdog the mux feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The Linux watchdog device (production).
    Device,
    /// Software watchdog that SIGKILLs protected processes. NOT SAFE FOR
    /// PRODUCTION: for CI, laptops and the local demo only.
    Test,
}

/// Command line of watchdog-mux.
#[derive(Debug, Parser)]
#[command(
    name = "watchdog-mux",
    version,
    about = "Multiplexes the node's watchdog to local clients"
)]
struct Args {
    /// Backend to feed. `test` is never chosen automatically.
    #[arg(long, value_enum, default_value = "device")]
    backend: BackendKind,
    /// Unix socket clients connect to (created with mode 0600).
    #[arg(long, default_value = "/run/watchdog-mux.sock")]
    socket: PathBuf,
    /// Directory that exists while clients are armed; the mux refuses to
    /// start while it exists (a reset is pending).
    #[arg(long, default_value = "/run/watchdog-mux.active")]
    active_marker: PathBuf,
    /// Watchdog device path (device backend).
    #[arg(long, default_value = watchdog::device::DEFAULT_DEVICE_PATH)]
    device: PathBuf,
    /// Kernel module to load with modprobe when the device is missing
    /// (device backend); empty to never load a module.
    #[arg(long, env = "WATCHDOG_MODULE", default_value = watchdog::device::DEFAULT_MODULE)]
    module: String,
    /// Device timeout: whole seconds for the device backend; any duration
    /// (e.g. 500ms) for the test backend.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    device_timeout: Duration,
    /// How often the backend is fed (at most half the device timeout).
    #[arg(long, value_parser = parse_duration)]
    feed_interval: Option<Duration>,
    /// Smallest client timeout accepted.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    min_client_timeout: Duration,
    /// Largest client timeout accepted.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    max_client_timeout: Duration,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 100)]
    max_clients: usize,
    /// How long a new connection may take to send its Hello.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Test backend: process group to SIGKILL on expiry (repeatable).
    #[arg(long)]
    protect_pgid: Vec<i32>,
    /// Test backend: cgroup (v2) directory whose members are SIGKILLed on
    /// expiry (repeatable).
    #[arg(long)]
    protect_cgroup: Vec<PathBuf>,
    /// Log debug messages too.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    // Before any thread or process is started (the test backend forks its
    // device process, which keeps these signals blocked).
    if let Err(errno) = signals::block() {
        eprintln!("watchdog-mux: cannot block signals: {errno}");
        return ExitCode::from(1);
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(if args.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .init();
    match run(args) {
        Ok(Exit::Clean) => ExitCode::SUCCESS,
        Ok(Exit::Abandoned) => ExitCode::from(2),
        Err(err) => {
            tracing::error!("watchdog-mux: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn build_backend(args: &Args) -> anyhow::Result<Box<dyn Backend>> {
    match args.backend {
        BackendKind::Device => {
            if !args.protect_pgid.is_empty() || !args.protect_cgroup.is_empty() {
                bail!("--protect-pgid/--protect-cgroup only apply to --backend test");
            }
            let timeout = &args.device_timeout;
            if timeout.subsec_nanos() != 0 || timeout.is_zero() {
                bail!("--device-timeout must be whole seconds (at least 1) for the device backend, got {timeout:?}");
            }
            let module = Some(args.module.as_str()).filter(|m| !m.is_empty());
            let backend = DeviceBackend::open(&args.device, module, timeout.as_secs())
                .context("cannot set up the watchdog device")?;
            Ok(Box::new(backend))
        }
        BackendKind::Test => {
            let targets = args
                .protect_pgid
                .iter()
                .map(|pgid| ProtectTarget::ProcessGroup(*pgid))
                .chain(
                    args.protect_cgroup
                        .iter()
                        .cloned()
                        .map(ProtectTarget::Cgroup),
                )
                .collect();
            Ok(Box::new(TestBackend::start(args.device_timeout, targets)?))
        }
    }
}

fn run(args: Args) -> anyhow::Result<Exit> {
    let feed_interval = args
        .feed_interval
        .unwrap_or_else(|| (args.device_timeout / 4).min(Duration::from_secs(1)));
    let config = MuxConfig {
        socket_path: args.socket.clone(),
        active_marker: args.active_marker.clone(),
        feed_interval,
        min_client_timeout: args.min_client_timeout,
        max_client_timeout: args.max_client_timeout,
        max_clients: args.max_clients,
        handshake_timeout: args.handshake_timeout,
    };
    // Marker and socket first: opening the device restarts its timer.
    let bound = BoundSocket::bind(config)?;
    let backend = match build_backend(&args) {
        Ok(backend) => backend,
        Err(err) => {
            // Best effort: we own the socket file we just bound.
            let _ = std::fs::remove_file(&args.socket);
            return Err(err);
        }
    };
    let mux = bound.start(backend)?;
    Ok(mux.run()?)
}
