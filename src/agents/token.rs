//! The fencing token handed to every agent call.

use std::fmt;

/// Environment variable carrying the lease term of the calling LRM.
pub const ENV_FENCING_TERM: &str = "HA_FENCING_TERM";
/// Environment variable carrying the lease renewal sequence of the calling LRM.
pub const ENV_FENCING_SEQ: &str = "HA_FENCING_SEQ";
/// Environment variable carrying the value that orders tokens: the lease
/// sequence.
pub const ENV_FENCING_TOKEN: &str = "HA_FENCING_TOKEN";

/// Identifies the lease under which an agent call is made: the lease
/// sequence of the grant (the log index that granted or renewed it) and,
/// for information, the Raft term the node saw when it made the call.
///
/// The sequence alone orders tokens: it only grows, across terms and
/// holders, so a service or a storage backend that remembers the highest
/// sequence it has seen can reject requests from an owner whose lease has
/// since been superseded. The term is read after the grant and can be
/// newer than the grant's; never order by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FencingToken {
    /// The lease sequence of the grant: the log index that granted or
    /// renewed it. First field, so the derived order is by it.
    pub seq: u64,
    /// The Raft term the node saw (information only).
    pub term: u64,
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
    /// The sequence: the one number that orders tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_sequence_alone() {
        // A term read after the grant can be newer than the grant's own:
        // only the sequence says which grant came later.
        assert!(FencingToken::new(1, 99) > FencingToken::new(2, 5));
        assert!(FencingToken::new(2, 5) > FencingToken::new(2, 4));
    }

    #[test]
    fn env_vars_carry_both_parts() {
        let vars = FencingToken::new(7, 42).env_vars();
        assert_eq!(vars[0], ("HA_FENCING_TERM", "7".to_string()));
        assert_eq!(vars[1], ("HA_FENCING_SEQ", "42".to_string()));
        assert_eq!(vars[2], ("HA_FENCING_TOKEN", "42".to_string()));
    }
}
