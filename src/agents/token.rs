//! The fencing token handed to every agent call.

use std::fmt;

/// Environment variable carrying the lease term of the calling LRM.
pub const ENV_FENCING_TERM: &str = "HA_FENCING_TERM";
/// Environment variable carrying the lease renewal sequence of the calling LRM.
pub const ENV_FENCING_SEQ: &str = "HA_FENCING_SEQ";
/// Environment variable carrying `term.seq` in one value.
pub const ENV_FENCING_TOKEN: &str = "HA_FENCING_TOKEN";

/// Identifies the lease under which an agent call is made: the Raft term in
/// which the lease was granted and the renewal sequence within that term.
///
/// Tokens order lexicographically by `(term, seq)`, so a service or a storage
/// backend that remembers the highest token it has seen can reject requests
/// from an owner whose lease has since been superseded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FencingToken {
    /// The Raft term in which the lease was granted.
    pub term: u64,
    /// The renewal sequence of the lease within that term.
    pub seq: u64,
}

impl FencingToken {
    /// Builds a token from its two parts.
    pub fn new(term: u64, seq: u64) -> Self {
        FencingToken { term, seq }
    }

    /// The three environment variables (`HA_FENCING_TERM`, `HA_FENCING_SEQ`,
    /// `HA_FENCING_TOKEN`) that agents pass to the processes they start.
    pub fn env_vars(&self) -> [(&'static str, String); 3] {
        [
            (ENV_FENCING_TERM, self.term.to_string()),
            (ENV_FENCING_SEQ, self.seq.to_string()),
            (ENV_FENCING_TOKEN, self.to_string()),
        ]
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_term_then_seq() {
        assert!(FencingToken::new(2, 0) > FencingToken::new(1, 99));
        assert!(FencingToken::new(2, 5) > FencingToken::new(2, 4));
    }

    #[test]
    fn env_vars_carry_both_parts() {
        let vars = FencingToken::new(7, 42).env_vars();
        assert_eq!(vars[0], ("HA_FENCING_TERM", "7".to_string()));
        assert_eq!(vars[1], ("HA_FENCING_SEQ", "42".to_string()));
        assert_eq!(vars[2], ("HA_FENCING_TOKEN", "7.42".to_string()));
    }
}
