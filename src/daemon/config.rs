//! The node configuration file (TOML), e.g. `/etc/ha-manager/node.toml`.
//!
//! Unknown keys are refused with the key name and its line, so a typo never
//! silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{NodeName, ShutdownPolicy, TimingProfile};

/// Default HTTP listen address (Raft RPC, API and metrics share it).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7400";
/// Default data directory (sled store and the cluster credentials).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/ha-manager";
/// Default unix socket of watchdog-mux.
pub const DEFAULT_WATCHDOG_SOCKET: &str = "/run/watchdog-mux.sock";
/// Default timing profile.
pub const DEFAULT_TIMING: &str = "default";
/// Default node config path used by the CLI (override: `HA_MANAGER_CONFIG`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ha-manager/node.toml";

/// Why the node configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// What is wrong (names the key).
        message: String,
    },
    /// A value is syntactically fine but not acceptable.
    #[error("{path}: field '{field}': {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The key.
        field: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeConfig {
    node: String,
    listen: Option<String>,
    advertise: Option<String>,
    data_dir: Option<PathBuf>,
    watchdog_socket: Option<PathBuf>,
    timing: Option<String>,
    agent_runtime_dir: Option<PathBuf>,
    shutdown_policy: Option<String>,
    source_address: Option<String>,
}

/// A validated node configuration with defaults applied.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name (unique in the cluster).
    pub node: NodeName,
    /// `host:port` the HTTP server binds.
    pub listen: String,
    /// `host:port` the other nodes use to reach this node (default: `listen`).
    pub advertise: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// watchdog-mux socket.
    pub watchdog_socket: PathBuf,
    /// The timing profile (checked against the lease rule).
    pub timing: TimingProfile,
    /// Where agents keep pid files and logs (default `<data_dir>/agents`).
    pub agent_runtime_dir: PathBuf,
    /// What a node shutdown or reboot does to its services (spec 3.17).
    pub shutdown_policy: ShutdownPolicy,
    /// Source address of connections to other nodes: `advertise` (the
    /// default: the IP of `advertise`), `kernel` (`None`: the kernel picks),
    /// or an IP address.
    pub source_address: Option<std::net::IpAddr>,
}

impl NodeConfig {
    /// Reads and validates a node configuration file.
    pub fn load(path: &Path) -> Result<Self, NodeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `file` appears in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, NodeConfigError> {
        let raw: RawNodeConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            NodeConfigError::Parse {
                path: file.to_string(),
                line,
                message: e.message().to_string(),
            }
        })?;
        let invalid = |field: &str, reason: String| NodeConfigError::Invalid {
            path: file.to_string(),
            field: field.to_string(),
            reason,
        };
        let node: NodeName = raw
            .node
            .parse()
            .map_err(|e: crate::domain::DomainError| invalid("node", e.to_string()))?;
        let listen = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        check_addr("listen", &listen).map_err(|r| invalid("listen", r))?;
        let advertise = raw.advertise.unwrap_or_else(|| listen.clone());
        check_addr("advertise", &advertise).map_err(|r| invalid("advertise", r))?;
        if advertise.starts_with("0.0.0.0:") || advertise.starts_with("[::]:") {
            return Err(invalid(
                "advertise",
                format!("'{advertise}' is a wildcard address: set 'advertise' to an address the other nodes can reach"),
            ));
        }
        let timing_name = raw.timing.unwrap_or_else(|| DEFAULT_TIMING.to_string());
        let timing: TimingProfile = timing_name.parse().map_err(|_| {
            invalid(
                "timing",
                format!("unknown timing profile '{timing_name}': expected default, fast or pve"),
            )
        })?;
        timing
            .check()
            .map_err(|e| invalid("timing", e.to_string()))?;
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let agent_runtime_dir = raw
            .agent_runtime_dir
            .unwrap_or_else(|| data_dir.join("agents"));
        let shutdown_policy = match raw.shutdown_policy {
            None => ShutdownPolicy::Conditional,
            Some(text) => {
                crate::config::datacenter::parse_shutdown_policy("shutdown_policy", &text)
                    .map_err(|e| invalid("shutdown_policy", e.to_string()))?
            }
        };
        let source_address = match raw.source_address.as_deref() {
            None | Some("advertise") => raft::config::source_of(&advertise),
            Some("kernel") => None,
            Some(ip) => Some(ip.parse().map_err(|_| {
                invalid(
                    "source_address",
                    format!("'{ip}' is neither 'advertise', 'kernel' nor an IP address"),
                )
            })?),
        };
        Ok(NodeConfig {
            node,
            shutdown_policy,
            source_address,
            listen,
            advertise,
            data_dir,
            watchdog_socket: raw
                .watchdog_socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WATCHDOG_SOCKET)),
            timing,
            agent_runtime_dir,
        })
    }

    /// The path of the cluster credentials file in the data directory.
    pub fn credentials_path(&self) -> PathBuf {
        self.data_dir.join("cluster.json")
    }

    /// The directory of the sled store.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("raft")
    }
}

fn check_addr(field: &str, addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("'{addr}' is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("'{addr}': empty host in {field}"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("'{addr}': invalid port '{port}'"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = NodeConfig::parse(
            "node = \"node1\"\nadvertise = \"10.0.0.1:7400\"\n",
            "n.toml",
        )
        .unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.timing.name, "default");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = NodeConfig::parse(
            "node = \"n1\"\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n",
            "n.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("n.toml:3:"), "{e}");
        assert!(e.contains("listn"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = NodeConfig::parse(
            "node = \"n1\"\nlisten = \"127.0.0.1:1\"\ntiming = \"turbo\"\n",
            "n.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field 'timing'"), "{e}");
        let e = NodeConfig::parse("node = \"n1\"\nlisten = \"127.0.0.1:99999\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field 'listen'"), "{e}");
        let e = NodeConfig::parse("node = \"n1\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field 'advertise'"), "{e}");
    }
}
