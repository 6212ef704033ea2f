//! The `ha-manager` CLI against the nodes of a [`LocalCluster`], and what
//! tests read through it (status, cluster status, leader, logs).

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{io, CliOutput, LocalCluster, LocalClusterError};
use crate::api::cluster::ClusterStatus;
use crate::api::status::StatusEntry;

impl LocalCluster {
    /// Runs the `ha-manager` CLI against node `i` (its config file).
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<CliOutput, LocalClusterError> {
        let out = Command::new(self.bin("ha-manager"))
            .args(args)
            .env("HA_MANAGER_CONFIG", self.nodes[i].config_path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(io("running the ha-manager CLI"))?;
        Ok(CliOutput::from(out))
    }

    /// Runs the CLI against node `i` like [`LocalCluster::cli`], but kills
    /// it (by pid) if it has not finished within `limit` (a paused or cut
    /// off node answers nothing).
    pub fn cli_within(
        &self,
        i: usize,
        args: &[&str],
        limit: Duration,
    ) -> Result<CliOutput, LocalClusterError> {
        let child = Command::new(self.bin("ha-manager"))
            .args(args)
            .env("HA_MANAGER_CONFIG", self.nodes[i].config_path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("running the ha-manager CLI"))?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(limit) {
            Ok(out) => out.map_err(io("running the ha-manager CLI"))?,
            Err(_) => {
                Self::signal_pid(Some(pid), "the ha-manager CLI", Signal::SIGKILL)?;
                let _ = waiter.join();
                return Err(LocalClusterError::Failed(format!(
                    "ha-manager {} on {} took longer than {limit:?}",
                    args.join(" "),
                    self.nodes[i].name
                )));
            }
        };
        let _ = waiter.join();
        Ok(CliOutput::from(out))
    }

    /// `status` of node `i`, given at most `limit`.
    pub fn status_within(
        &self,
        i: usize,
        limit: Duration,
    ) -> Result<Vec<StatusEntry>, LocalClusterError> {
        let out = self.cli_within(i, &["status", "--output-format", "json"], limit)?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "ha-manager status on {}: exit {}: {}",
                self.nodes[i].name,
                out.code,
                out.stderr.trim()
            )));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| LocalClusterError::Failed(format!("ha-manager status: bad JSON: {e}")))
    }

    /// Runs the CLI and parses its JSON output (`--output-format json` is
    /// appended).
    pub fn cli_json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        args: &[&str],
    ) -> Result<T, LocalClusterError> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output-format", "json"]);
        let out = self.cli(i, &all)?;
        if out.code != 0 {
            return Err(LocalClusterError::Failed(format!(
                "ha-manager {}: exit {}: {}",
                args.join(" "),
                out.code,
                out.stderr.trim()
            )));
        }
        serde_json::from_str(&out.stdout).map_err(|e| {
            LocalClusterError::Failed(format!("ha-manager {}: bad JSON: {e}", args.join(" ")))
        })
    }

    /// An HTTPS client of the cluster's API as an operator's tool would
    /// have it: it trusts the cluster CA (from node `i`'s files) and
    /// presents no certificate, so it needs an API token.
    pub fn https_client(&self, i: usize) -> Result<reqwest::blocking::Client, LocalClusterError> {
        let path = self.nodes[i].dir.join("data").join("tls").join("ca.crt");
        let ca =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        let tls = raft::tls::config::cli_client_config(&ca, None)
            .map_err(|e| LocalClusterError::Failed(format!("{}: {e}", path.display())))?;
        reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LocalClusterError::Failed(format!("HTTPS client: {e}")))
    }

    /// `https://<node i's address><path>`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("https://{}{path}", self.nodes[i].addr)
    }

    /// `cluster status` of node `i`.
    pub fn cluster_status(&self, i: usize) -> Result<ClusterStatus, LocalClusterError> {
        self.cli_json(i, &["cluster", "status"])
    }

    /// `status` of node `i`: quorum, master, lrm and service entries.
    pub fn status(&self, i: usize) -> Result<Vec<StatusEntry>, LocalClusterError> {
        self.cli_json(i, &["status"])
    }

    /// The status entry of service `sid` as node `i` reports it.
    pub fn service_status(&self, i: usize, sid: &str) -> Option<StatusEntry> {
        self.status(i)
            .ok()?
            .into_iter()
            .find(|e| e.sid.as_deref() == Some(sid))
    }

    /// The index of the Raft leader as seen by any live node.
    pub fn leader(&self) -> Option<usize> {
        self.nodes.iter().enumerate().find_map(|(i, n)| {
            n.daemon.as_ref()?;
            let cs = self.cluster_status(i).ok()?;
            let leader = cs.leader?;
            self.nodes.iter().position(|m| m.name == leader)
        })
    }

    /// The last `lines` lines of every node's daemon log (for errors).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            for file in ["daemon.log", "mux.log"] {
                let log = std::fs::read_to_string(n.dir.join(file)).unwrap_or_default();
                let all: Vec<&str> = log.lines().collect();
                out.push_str(&format!("----- {} {file} -----\n", n.name));
                for l in &all[all.len().saturating_sub(lines)..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}
