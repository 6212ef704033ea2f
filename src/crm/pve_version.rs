//! pve-manager version numbers as the group migration gate compares them
//! (spec section 3.20): `MAJOR.MINOR.PATCH` with an optional `~REV`;
//! versions before PVE 8 were written `MAJOR.MINOR-PATCH` (`7.4-3`) and
//! read the same way.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The oldest pve-manager version every node must run before groups are
/// migrated to rules.
pub const GROUP_MIGRATION_MIN_VERSION: PveVersion = PveVersion {
    major: 9,
    minor: 0,
    patch: 0,
    rev: Some(16),
};

/// A parsed pve-manager version.
///
/// `~REV` marks a pre-release as in Debian version ordering: `9.0.0~2` <
/// `9.0.0~16` < `9.0.0` (revisions compare as numbers, and the release
/// without `~` is newer than all its pre-releases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PveVersion {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release revision after `~`, if any.
    pub rev: Option<u64>,
}

/// A version string that is not `MAJOR.MINOR.PATCH[~REV]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed pve-manager version '{0}' (expected MAJOR.MINOR.PATCH[~REV] or MAJOR.MINOR-PATCH)"
)]
pub struct MalformedVersion(pub String);

fn number(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl FromStr for PveVersion {
    type Err = MalformedVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || MalformedVersion(text.to_string());
        let (release, rev) = match text.split_once('~') {
            Some((release, rev)) => (release, Some(number(rev).ok_or_else(bad)?)),
            None => (text, None),
        };
        let mut parts = release.split('.');
        let mut next = || parts.next().and_then(number).ok_or_else(bad);
        let major = next()?;
        let (minor, patch) = match release.split_once('.').map(|(_, rest)| rest) {
            // The pre-PVE-8 form: `MAJOR.MINOR-PATCH`.
            Some(rest) if rest.contains('-') => {
                let (minor, patch) = rest.split_once('-').ok_or_else(bad)?;
                let minor = number(minor).ok_or_else(bad)?;
                let patch = number(patch).ok_or_else(bad)?;
                (minor, patch)
            }
            _ => {
                let (minor, patch) = (next()?, next()?);
                if parts.next().is_some() {
                    return Err(bad());
                }
                (minor, patch)
            }
        };
        Ok(PveVersion {
            major,
            minor,
            patch,
            rev,
        })
    }
}

impl Ord for PveVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.rev, other.rev) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
    }
}

impl PartialOrd for PveVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(rev) = self.rev {
            write!(f, "~{rev}")?;
        }
        Ok(())
    }
}

/// True if `version` is at least `min`; a malformed version is an error.
pub fn version_at_least(version: &str, min: PveVersion) -> Result<bool, MalformedVersion> {
    Ok(version.parse::<PveVersion>()? >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_least_min(v: &str) -> Result<bool, MalformedVersion> {
        version_at_least(v, GROUP_MIGRATION_MIN_VERSION)
    }

    #[test]
    fn revisions_compare_as_numbers() {
        assert_eq!(at_least_min("9.0.0~16"), Ok(true));
        assert_eq!(at_least_min("9.0.0~2"), Ok(false));
        assert_eq!(at_least_min("9.0.0~15"), Ok(false));
        assert_eq!(at_least_min("9.0.0~100"), Ok(true));
    }

    #[test]
    fn releases_are_newer_than_their_pre_releases() {
        assert_eq!(at_least_min("9.0.0"), Ok(true));
        assert_eq!(at_least_min("9.0.1"), Ok(true));
        assert_eq!(at_least_min("9.0.1~1"), Ok(true));
        assert_eq!(at_least_min("9.1.0"), Ok(true));
        assert_eq!(at_least_min("10.0.0~1"), Ok(true));
        assert_eq!(at_least_min("8.4.1"), Ok(false));
        assert_eq!(at_least_min("8.99.99"), Ok(false));
    }

    #[test]
    fn malformed_versions_are_errors() {
        for bad in [
            "",
            "9",
            "9.0",
            "9.0.0.1",
            "9.0.0~",
            "9.0.0~rc1",
            "v9.0.0",
            "9.0.x",
            "9..0",
            " 9.0.0",
            "9.0.0-1",
            "9.0-",
            "9.-1",
            "9.0-1-2",
            "9-0.1",
            "-1.0.0",
        ] {
            assert_eq!(
                at_least_min(bad),
                Err(MalformedVersion(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dash_form_reads_like_dots() {
        assert_eq!("7.4-3".parse::<PveVersion>(), "7.4.3".parse::<PveVersion>());
        assert_eq!(at_least_min("8.2-4"), Ok(false));
        assert_eq!(at_least_min("9.1-0"), Ok(true));
        assert_eq!("7.4-3".parse::<PveVersion>().unwrap().to_string(), "7.4.3");
    }

    #[test]
    fn display_round_trips() {
        for v in ["9.0.0~16", "8.4.1", "10.2.3~0"] {
            assert_eq!(v.parse::<PveVersion>().unwrap().to_string(), v);
        }
        assert_eq!(GROUP_MIGRATION_MIN_VERSION.to_string(), "9.0.0~16");
    }
}
