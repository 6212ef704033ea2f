//! The `ha-manager` binary: CLI entry point.

fn main() {
    eprintln!("ha-manager: no commands yet");
    std::process::exit(2);
}
