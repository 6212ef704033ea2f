//! The state an operator requests for a resource.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DomainError;

/// The requested state of a resource (`state` in resources.cfg).
///
/// `enabled` is accepted on input as the legacy alias of `started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RequestedState {
    /// Keep running; restart on failure; recover on node failure.
    #[default]
    Started,
    /// Keep stopped, but still relocate when the node fails.
    Stopped,
    /// Keep stopped; not recovered; the way out of `error`.
    Disabled,
    /// Not managed by HA at all.
    Ignored,
}

impl RequestedState {
    /// The canonical name as written to config files.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedState::Started => "started",
            RequestedState::Stopped => "stopped",
            RequestedState::Disabled => "disabled",
            RequestedState::Ignored => "ignored",
        }
    }
}

impl FromStr for RequestedState {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "started" | "enabled" => Ok(RequestedState::Started),
            "stopped" => Ok(RequestedState::Stopped),
            "disabled" => Ok(RequestedState::Disabled),
            "ignored" => Ok(RequestedState::Ignored),
            _ => Err(DomainError::InvalidValue {
                field: "state".into(),
                value: s.into(),
                reason: "expected one of started, stopped, disabled, ignored (or enabled)".into(),
            }),
        }
    }
}

impl fmt::Display for RequestedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RequestedState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RequestedState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_is_started() {
        assert_eq!(
            "enabled".parse::<RequestedState>().unwrap(),
            RequestedState::Started
        );
        assert_eq!(RequestedState::Started.to_string(), "started");
        assert!("running".parse::<RequestedState>().is_err());
    }
}
