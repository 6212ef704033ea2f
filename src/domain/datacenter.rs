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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatacenterOptions {
    /// The shutdown policy (`ha: shutdown_policy=...`).
    pub shutdown_policy: ShutdownPolicy,
    /// LRM worker limit (`max_workers`, at least 1).
    pub max_workers: u32,
}

impl Default for DatacenterOptions {
    fn default() -> Self {
        DatacenterOptions {
            shutdown_policy: ShutdownPolicy::Conditional,
            max_workers: DEFAULT_MAX_WORKERS,
        }
    }
}
