//! Service identifiers (`type:name`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::shown;
use super::DomainError;

/// Longest resource type (the part before the colon).
pub const SID_KIND_MAX: usize = 16;

/// Longest resource name (the part after the colon): systemd's limit for a
/// unit name, so every `systemd:<unit>` fits.
pub const SID_NAME_MAX: usize = 255;

/// Whether `b` may appear in a resource name. Proxmox only asks for
/// non-blank characters (`\S+`), but its own types use digits; this set
/// keeps every Proxmox SID, systemd unit names (`getty@tty1.service`) and
/// OCF names (`ocf:heartbeat:IPaddr2`) and leaves out what means something
/// in URLs (`/ ? # %`), in list values (`, ;`) or on a terminal.
fn name_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@' | b'+')
}

/// A resource identifier `type:name`, e.g. `vm:101`, `exec:web`, `ocf:vip`.
///
/// The type is 1 to [`SID_KIND_MAX`] lower-case ASCII letters; the name is
/// 1 to [`SID_NAME_MAX`] characters of `[A-Za-z0-9._:@+-]`, a subset of
/// Proxmox's `^[a-z]+:\S+$` that every Proxmox SID fits. The simulator
/// types `vm`, `ct` and `fa` additionally require a decimal name of at
/// least two digits without a leading zero; see
/// [`Sid::validate_numeric_name`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid {
    text: String,
    colon: usize,
}

impl Sid {
    /// Builds a SID from its type and name, validating both.
    pub fn new(kind: &str, name: &str) -> Result<Self, DomainError> {
        format!("{kind}:{name}").parse()
    }

    /// The resource type (the part before the colon), which names the agent.
    pub fn kind(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The resource name (the part after the colon).
    pub fn name(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole SID as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Checks the numeric name rule of the guest types (`vm`, `ct`, `fa`):
    /// `^[1-9][0-9]+$`.
    pub fn validate_numeric_name(&self) -> Result<(), DomainError> {
        let name = self.name().as_bytes();
        let ok = name.len() >= 2
            && (b'1'..=b'9').contains(&name[0])
            && name[1..].iter().all(u8::is_ascii_digit);
        if ok {
            Ok(())
        } else {
            Err(DomainError::InvalidSid(shown(&self.text)))
        }
    }
}

impl FromStr for Sid {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let colon = s
            .find(':')
            .ok_or_else(|| DomainError::InvalidSid(shown(s)))?;
        let (kind, name) = (&s[..colon], &s[colon + 1..]);
        let kind_ok = (1..=SID_KIND_MAX).contains(&kind.len())
            && kind.bytes().all(|b| b.is_ascii_lowercase());
        let name_ok = (1..=SID_NAME_MAX).contains(&name.len()) && name.bytes().all(name_byte_ok);
        if kind_ok && name_ok {
            Ok(Sid {
                text: s.to_string(),
                colon,
            })
        } else {
            Err(DomainError::InvalidSid(shown(s)))
        }
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Sid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_splits() {
        let sid: Sid = "vm:101".parse().unwrap();
        assert_eq!(sid.kind(), "vm");
        assert_eq!(sid.name(), "101");
        assert_eq!(sid.to_string(), "vm:101");
        let sid: Sid = "exec:web:8080".parse().unwrap();
        assert_eq!(sid.kind(), "exec");
        assert_eq!(sid.name(), "web:8080");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "vm", "vm:", ":1", "VM:101", "vm:1 2", "v1:10"] {
            assert!(bad.parse::<Sid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn charset_and_lengths() {
        for good in [
            "systemd:getty@tty1.service",
            "ocf:heartbeat:IPaddr2",
            "exec:web_1-a+b",
            "ct:200",
        ] {
            assert!(good.parse::<Sid>().is_ok(), "{good}");
        }
        for bad in [
            "exec:zz/../../rules/db-strict",
            "exec:a#x",
            "exec:a?x",
            "exec:a%2F",
            "exec:a,b",
            "exec:a;b",
            "exec:\u{1b}[31m",
            "exec:é",
        ] {
            assert!(bad.parse::<Sid>().is_err(), "{bad}");
        }
        let name = "n".repeat(SID_NAME_MAX);
        assert!(format!("exec:{name}").parse::<Sid>().is_ok());
        assert!(format!("exec:{name}n").parse::<Sid>().is_err());
        let kind = "k".repeat(SID_KIND_MAX);
        assert!(format!("{kind}:a").parse::<Sid>().is_ok());
        assert!(format!("{kind}k:a").parse::<Sid>().is_err());
        let huge = format!("exec:{}", "x".repeat(120_000));
        let message = huge.parse::<Sid>().unwrap_err().to_string();
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn numeric_names() {
        assert!("vm:10"
            .parse::<Sid>()
            .unwrap()
            .validate_numeric_name()
            .is_ok());
        assert!("vm:1"
            .parse::<Sid>()
            .unwrap()
            .validate_numeric_name()
            .is_err());
        assert!("vm:0100"
            .parse::<Sid>()
            .unwrap()
            .validate_numeric_name()
            .is_err());
        assert!("vm:1a"
            .parse::<Sid>()
            .unwrap()
            .validate_numeric_name()
            .is_err());
    }
}
