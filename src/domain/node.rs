//! Cluster node names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::shown;
use super::DomainError;

/// Longest node name: a DNS label (RFC 1035), as Proxmox node names are
/// host names.
pub const NODE_NAME_MAX: usize = 63;

/// A cluster node name: `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`, at most
/// [`NODE_NAME_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
        let ok = bytes.len() <= NODE_NAME_MAX
            && edge_ok(bytes.first())
            && edge_ok(bytes.last())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
        if ok {
            Ok(NodeName(s.to_string()))
        } else {
            Err(DomainError::InvalidNodeName(shown(s)))
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["node1", "a", "pve-01", "N2"] {
            assert!(good.parse::<NodeName>().is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", "a b", "a/b", "a#b"] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad}");
        }
        assert!("n".repeat(NODE_NAME_MAX).parse::<NodeName>().is_ok());
        assert!("n".repeat(NODE_NAME_MAX + 1).parse::<NodeName>().is_err());
    }
}
