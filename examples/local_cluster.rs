//! `cargo run --release --example local-cluster`: starts three daemons on
//! loopback. (Being written.)

fn main() {
    eprintln!("local-cluster: not implemented yet");
}
