//! Command line (clap derive). `main.rs` only calls [`run`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod stdout;

/// ha-manager: standalone HA cluster manager.
#[derive(Debug, Parser)]
#[command(name = "ha-manager", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The deterministic simulator.
    Sim {
        /// Simulator command.
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Node daemon, cluster life cycle and HA verbs (see `node_cli`).
    #[cfg(feature = "node")]
    #[command(flatten)]
    Node(Box<crate::node_cli::NodeCommand>),
}

/// Simulator commands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run a scenario directory and print its event log.
    Run {
        /// The scenario directory (Proxmox simulator layout).
        dir: PathBuf,
        /// Write the final state as JSON to this file.
        #[arg(long)]
        final_state: Option<PathBuf>,
        /// Timing profile: `pve` (Proxmox constants, the default unless the
        /// scenario has a `profile` file), `default` or `fast`.
        #[arg(long, value_parser = ["pve", "default", "fast"])]
        profile: Option<String>,
        /// Seed of the run (default: the scenario's `seed` file, else 0).
        /// Seed 0 keeps sorted node order, no message delay or loss and
        /// fixed election timeouts; any other value randomizes node order
        /// within a round, message delay and loss and election timeouts.
        /// Same scenario and seed, same log.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Serve the simulator in the browser: a local web page over the same
    /// engine as `sim run`, with nodes to switch off and on, services, the
    /// log, stepping, commands and loading and saving scenario directories.
    ///
    /// A local tool: it listens on 127.0.0.1 unless --listen says
    /// otherwise, and whoever can reach it can read and write scenario
    /// directories as the user running it.
    #[cfg(feature = "node")]
    Serve {
        /// The scenario directory to start with (Proxmox simulator
        /// layout); without one, a built-in scenario of three nodes.
        dir: Option<PathBuf>,
        /// Address and port to listen on (port 0: any free port; the URL
        /// is printed).
        #[arg(long, default_value = "127.0.0.1:8070")]
        listen: std::net::SocketAddr,
        /// Timing profile: `pve`, `default` or `fast` (default: the
        /// scenario's `profile` file, else `pve`).
        #[arg(long, value_parser = ["pve", "default", "fast"])]
        profile: Option<String>,
        /// Seed of the run (default: the scenario's `seed` file, else 0).
        #[arg(long)]
        seed: Option<u64>,
    },
}

/// Runs the CLI; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        #[cfg(feature = "node")]
        Command::Node(command) => crate::node_cli::run(*command),
        #[cfg(feature = "node")]
        Command::Sim {
            command:
                SimCommand::Serve {
                    dir,
                    listen,
                    profile,
                    seed,
                },
        } => crate::sim_web::run_cli(crate::sim_web::SessionInit { dir, profile, seed }, listen),
        Command::Sim {
            command:
                SimCommand::Run {
                    dir,
                    final_state,
                    profile,
                    seed,
                },
        } => {
            let result = match crate::sim::run_dir(&dir, profile.as_deref(), seed) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("ha-manager: {}: {e}", dir.display());
                    return 2;
                }
            };
            let mut text = result.log.join("\n");
            text.push('\n');
            match stdout::write(&text) {
                Ok(()) => {}
                // The reader closed the pipe: it has what it wanted.
                Err(stdout::OutputError::ClosedPipe) => return 0,
                Err(e) => {
                    eprintln!("ha-manager: {e}");
                    return 1;
                }
            }
            if let Some(path) = final_state {
                let json = match serde_json::to_string_pretty(&result.final_state) {
                    Ok(j) => j,
                    Err(e) => {
                        eprintln!("ha-manager: cannot encode final state: {e}");
                        return 1;
                    }
                };
                if let Err(e) = std::fs::write(&path, json + "\n") {
                    eprintln!("ha-manager: cannot write {}: {e}", path.display());
                    return 1;
                }
            }
            if let Some(e) = result.error {
                eprintln!("ha-manager: simulation aborted: {e}");
                return 1;
            }
            0
        }
    }
}
