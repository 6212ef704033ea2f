//! Cluster-wide HA options (datacenter.cfg).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DomainError;

/// What the LRM does with its services when its node shuts down or reboots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutdownPolicy {
    /// Freeze on reboot, fail over on shutdown.
    #[default]
    Conditional,
    /// Always freeze: services wait for the node to come back.
    Freeze,
    /// Always fail over: services are recovered on other nodes.
    Failover,
    /// Migrate services away (node maintenance) before shutting down.
    Migrate,
}

impl ShutdownPolicy {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownPolicy::Conditional => "conditional",
            ShutdownPolicy::Freeze => "freeze",
            ShutdownPolicy::Failover => "failover",
            ShutdownPolicy::Migrate => "migrate",
        }
    }
}

impl FromStr for ShutdownPolicy {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "conditional" => Ok(ShutdownPolicy::Conditional),
            "freeze" => Ok(ShutdownPolicy::Freeze),
            "failover" => Ok(ShutdownPolicy::Failover),
            "migrate" => Ok(ShutdownPolicy::Migrate),
            _ => Err(DomainError::InvalidValue {
                field: "shutdown_policy".into(),
                value: s.into(),
                reason: "expected one of conditional, freeze, failover, migrate".into(),
            }),
        }
    }
}

impl fmt::Display for ShutdownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ShutdownPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ShutdownPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Default LRM worker limit.
pub const DEFAULT_MAX_WORKERS: u32 = 4;

/// The HA-related datacenter-wide options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatacenterOptions {
    /// The shutdown policy (`ha: shutdown_policy=...`).
    pub shutdown_policy: ShutdownPolicy,
    /// LRM worker limit (`max_workers`, at least 1).
    pub max_workers: u32,
    /// Cluster resource scheduling (`crs: ...`); documents written before
    /// it existed read as the defaults.
    #[serde(default)]
    pub crs: CrsOptions,
}

impl Default for DatacenterOptions {
    fn default() -> Self {
        DatacenterOptions {
            shutdown_policy: ShutdownPolicy::Conditional,
            max_workers: DEFAULT_MAX_WORKERS,
            crs: CrsOptions::default(),
        }
    }
}

/// The cluster resource scheduler (`crs: ha=...`, spec 3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrsMode {
    /// Count of services per node.
    #[default]
    Basic,
    /// Configured CPU and memory of the services against node capacity.
    Static,
    /// Measured CPU and memory usage of nodes and services.
    Dynamic,
}

impl CrsMode {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            CrsMode::Basic => "basic",
            CrsMode::Static => "static",
            CrsMode::Dynamic => "dynamic",
        }
    }
}

impl fmt::Display for CrsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How automatic rebalancing ranks candidate moves (spec 3.11.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebalanceMethod {
    /// The move that leaves the lowest imbalance.
    #[default]
    Bruteforce,
    /// The move ranked best by TOPSIS over the four load criteria.
    Topsis,
}

impl RebalanceMethod {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceMethod::Bruteforce => "bruteforce",
            RebalanceMethod::Topsis => "topsis",
        }
    }
}

/// Default imbalance above which automatic rebalancing acts (fraction).
pub const DEFAULT_REBALANCE_THRESHOLD: f64 = 0.3;
/// Default relative improvement a rebalancing move must bring (fraction).
pub const DEFAULT_REBALANCE_MARGIN: f64 = 0.1;
/// Default number of rounds the imbalance must last before a move.
pub const DEFAULT_REBALANCE_HOLD_ROUNDS: u32 = 3;

/// The `crs` options (spec 1.7). Threshold and margin are fractions
/// (0.3 = 30 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrsOptions {
    /// `ha`: the scheduler.
    pub mode: CrsMode,
    /// `ha-rebalance-on-start`: pick the best node when a stopped service
    /// is started.
    pub rebalance_on_start: bool,
    /// `ha-auto-rebalance`: move running services to even out the load.
    pub auto_rebalance: bool,
    /// `ha-auto-rebalance-threshold`.
    pub threshold: f64,
    /// `ha-auto-rebalance-method`.
    pub method: RebalanceMethod,
    /// `ha-auto-rebalance-hold-duration`, in rounds.
    pub hold_rounds: u32,
    /// `ha-auto-rebalance-margin`.
    pub margin: f64,
}

impl Default for CrsOptions {
    fn default() -> Self {
        CrsOptions {
            mode: CrsMode::Basic,
            rebalance_on_start: false,
            auto_rebalance: false,
            threshold: DEFAULT_REBALANCE_THRESHOLD,
            method: RebalanceMethod::Bruteforce,
            hold_rounds: DEFAULT_REBALANCE_HOLD_ROUNDS,
            margin: DEFAULT_REBALANCE_MARGIN,
        }
    }
}
