//! Shared helpers of the multi-node tests: a [`LocalCluster`] of real
//! daemons on loopback whose logs are printed when a test fails.

#![allow(dead_code)]

pub mod browser;

use std::path::PathBuf;
use std::time::Duration;

use ha_manager::local_cluster::{procs, wait_until, LocalCluster, LocalClusterOptions};

/// One cluster at a time per test binary: six daemons and muxes per
/// cluster on a 2-core CI machine are enough; two clusters at once plus
/// sled fsyncs can stall a node past its watchdog feed window (1.5 s in
/// the `fast` profile), which then correctly fences it.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster plus its temp dir; prints each node's HA log on panic.
pub struct TestCluster {
    pub cluster: LocalCluster,
    _dir: tempfile::TempDir,
    // Dropped last, after the cluster's processes are gone.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.cluster.nodes {
                let log = std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default();
                eprintln!("===== {} daemon.log (HA lines, last 60) =====", n.name);
                let lines: Vec<&str> = log.lines().filter(|l| !l.contains("openraft")).collect();
                for l in lines.iter().skip(lines.len().saturating_sub(60)) {
                    eprintln!("{l}");
                }
                let mux = std::fs::read_to_string(n.dir.join("mux.log")).unwrap_or_default();
                eprintln!("===== {} mux.log =====\n{mux}", n.name);
            }
        }
    }
}

/// Directory of the binaries under test (ha-manager and, built by the same
/// workspace test run, watchdog-mux).
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ha-manager"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// Starts an `n`-node cluster with the `fast` timing profile.
pub fn start(n: usize) -> TestCluster {
    start_adjusted(n, |_| {})
}

/// Starts an `n`-node cluster with the `fast` timing profile, each node
/// in a network namespace of its own (for the network faults). With
/// `HA_FAULT_LOOPBACK=1` in the environment the nodes run on loopback
/// instead (to tell a namespace effect from a daemon bug; the network
/// faults then fail with an error).
pub fn start_netns(n: usize) -> TestCluster {
    let loopback = std::env::var("HA_FAULT_LOOPBACK").is_ok_and(|v| v == "1");
    start_adjusted(n, |o| o.netns = !loopback)
}

/// Starts an `n`-node `fast` cluster with options changed by `adjust`.
pub fn start_adjusted(n: usize, adjust: impl FnOnce(&mut LocalClusterOptions)) -> TestCluster {
    let turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::Builder::new()
        .prefix("hacl")
        .tempdir()
        .expect("temp dir");
    let mut options = LocalClusterOptions::new(n, "fast", dir.path().join("c"), bin_dir());
    adjust(&mut options);
    let cluster = LocalCluster::start(options).expect("local cluster starts");
    TestCluster {
        cluster,
        _dir: dir,
        _turn: turn,
    }
}

/// A marker unique to this process and `n`, for a service command line.
pub fn marker(n: u64) -> u64 {
    9_000_000_000 + u64::from(std::process::id()) * 1000 + n
}

/// Adds `exec:<name>` running `sleep <marker>` through node `via`'s CLI.
pub fn add_sleep_service(c: &LocalCluster, via: usize, name: &str, marker: u64) {
    let cmd = format!("cmd={}", procs::marker_command(marker));
    let sid = format!("exec:{name}");
    let out = c
        .cli(via, &["add", &sid, "--param", &cmd])
        .expect("cli runs");
    assert_eq!(out.code, 0, "add failed: {}", out.stderr);
}

/// Waits until exactly one copy of `marker` runs, and returns its node.
pub fn wait_running_once(c: &LocalCluster, marker: u64, limit: Duration) -> usize {
    let locate = c.pid_locator();
    wait_until(limit, "the service running once", || {
        let pids = procs::marker_pids(marker);
        if pids.len() == 1 {
            locate(pids[0])
        } else {
            None
        }
    })
    .expect("service runs")
}

/// Waits until node `via` reports `sid` in CRM state `state` on `node`.
pub fn wait_service_state(c: &LocalCluster, via: usize, sid: &str, state: &str, node: &str) {
    wait_until(
        Duration::from_secs(60),
        &format!("{sid} {state} on {node}"),
        || {
            let e = c.service_status(via, sid)?;
            (e.crm_state.as_deref() == Some(state) && e.node.as_deref() == Some(node)).then_some(())
        },
    )
    .expect("service reaches the state");
}

/// Makes API token `id` with `role` through node 1's CLI; returns the
/// bearer token (`id.secret`) the CLI printed once.
pub fn make_token(c: &LocalCluster, id: &str, role: &str) -> String {
    let out = c
        .cli(
            0,
            &["token", "add", id, "--role", role, "--comment", "test"],
        )
        .expect("cli");
    assert_eq!(out.code, 0, "token add: {}", out.stderr);
    let token = out
        .stdout
        .lines()
        .nth(1)
        .expect("the token line")
        .trim()
        .to_string();
    assert!(token.starts_with(&format!("{id}.")), "{}", out.stdout);
    token
}

/// Makes a join token with `cluster join-token create` (plus `extra`
/// options) through node `via`'s CLI; returns the token it printed once.
pub fn make_join_token(c: &LocalCluster, via: usize, extra: &[&str]) -> String {
    let mut args = vec!["cluster", "join-token", "create"];
    args.extend_from_slice(extra);
    let out = cli_ok(c, via, &args);
    out.lines()
        .find_map(|l| l.strip_prefix("join token: "))
        .unwrap_or_else(|| panic!("no join token printed: {out}"))
        .trim()
        .to_string()
}

/// Runs the CLI against node `via` and asserts it succeeded; its stdout.
pub fn cli_ok(c: &LocalCluster, via: usize, args: &[&str]) -> String {
    let out = c.cli(via, args).expect("the CLI runs");
    assert_eq!(
        out.code,
        0,
        "ha-manager {} failed: {}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

/// Hex SHA-256 of the cluster CA certificate, as node `i` has it.
#[allow(dead_code)]
pub fn ca_fingerprint(c: &LocalCluster, i: usize) -> String {
    let pem = std::fs::read_to_string(c.nodes[i].dir.join("data/tls/ca.crt")).expect("ca.crt");
    let der = raft::tls::config::certs_from_pem("ca", &pem).expect("CA PEM");
    raft::tls::fingerprint(&der[0])
}

/// An HTTPS client that trusts the cluster CA and presents `cert_pem`
/// (with `key_pem`).
#[allow(dead_code)]
pub fn client_with_cert(
    c: &LocalCluster,
    cert_pem: &str,
    key_pem: &str,
) -> reqwest::blocking::Client {
    let ca = std::fs::read_to_string(c.nodes[0].dir.join("data/tls/ca.crt")).expect("ca.crt");
    let tls = raft::tls::config::cli_client_config(&ca, Some((cert_pem, key_pem)))
        .expect("client config");
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// An HTTPS client presenting node `i`'s own certificate (read from its
/// files, so it works after the node is gone too).
#[allow(dead_code)]
pub fn client_with_node_cert(c: &LocalCluster, i: usize) -> reqwest::blocking::Client {
    let dir = c.nodes[i].dir.join("data/tls");
    let cert = std::fs::read_to_string(dir.join("node.crt")).expect("node.crt");
    let key = std::fs::read_to_string(dir.join("node.key")).expect("node.key");
    client_with_cert(c, &cert, &key)
}
