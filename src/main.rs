//! The `ha-manager` binary: CLI entry point.

use clap::Parser;

fn main() {
    let cli = ha_manager::cli::Cli::parse();
    std::process::exit(ha_manager::cli::run(cli));
}
