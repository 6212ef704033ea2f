//! "May this node be fenced?" — the CRM's evidence (design.md section 5).
//!
//! Fencing needs positive evidence that no service of the node can still
//! run: its agent lease taken over after it expired on the leader (the
//! node's watchdog fired strictly before, by the timing rule), or no lease
//! at all (the node's LRM starts nothing without one). A lease its holder
//! left *unguarded* (an LRM restart froze its services, or the cluster
//! was disarmed) is never evidence: those services may run unprotected.

use lease::{LeaseMode, LeaseRecord};

use crate::domain::NodeName;

/// Name of a node's agent lease.
pub fn agent_lease_name(node: &str) -> String {
    format!("ha_agent_{node}_lock")
}

/// Holder name of a fencing hold taken by the CRM running on `node`.
pub fn crm_holder(node: &str) -> String {
    format!("crm:{node}")
}

/// A node's agent lease as the CRM sees it on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLease {
    /// No lease: the node's LRM cannot have started anything since it
    /// let its lease go cleanly (or it never had one).
    Free,
    /// Held by the node; `expired` on the leader's clock.
    Held {
        /// The leader judged it expired.
        expired: bool,
    },
    /// Released while services keep running without protection.
    Unguarded,
    /// Taken over by a CRM: the node was fenced.
    FencingHold,
}

impl AgentLease {
    /// Classifies the record of `node`'s agent lease; `expired` is the
    /// leader's verdict on it.
    pub fn of(node: &NodeName, record: Option<&LeaseRecord>, expired: bool) -> AgentLease {
        match record {
            None => AgentLease::Free,
            Some(r) if r.mode == LeaseMode::Unguarded => AgentLease::Unguarded,
            Some(r) if r.holder == node.as_str() => AgentLease::Held { expired },
            Some(_) => AgentLease::FencingHold,
        }
    }

    /// What the CRM can do to fence the node now.
    pub fn fence_evidence(self) -> FenceEvidence {
        match self {
            AgentLease::Free | AgentLease::Held { expired: true } => FenceEvidence::TakeOver,
            AgentLease::FencingHold => FenceEvidence::AlreadyFenced,
            AgentLease::Held { expired: false } => FenceEvidence::Wait,
            AgentLease::Unguarded => FenceEvidence::Never,
        }
    }

    /// Whether the node holds its own lease and the leader still counts
    /// it valid: the node is protected by its watchdog.
    pub fn protects(self) -> bool {
        self == AgentLease::Held { expired: false }
    }
}

/// The answer to "may this node be fenced now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceEvidence {
    /// Take the lease over (expired, or free): the commit is the fencing
    /// acknowledgement.
    TakeOver,
    /// A CRM already took the lease over.
    AlreadyFenced,
    /// The lease is still valid: the node may be alive; wait.
    Wait,
    /// Services may run unprotected: never fence automatically.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, mode: LeaseMode) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            incarnation: 1,
            ttl_ms: 1000,
            seq: 3,
            mode,
        }
    }

    #[test]
    fn only_an_expired_or_absent_lease_is_evidence() {
        let n: NodeName = "node1".parse().unwrap();
        let held = rec("node1", LeaseMode::Held);
        let cases = [
            (None, false, FenceEvidence::TakeOver),
            (Some(&held), true, FenceEvidence::TakeOver),
            (Some(&held), false, FenceEvidence::Wait),
        ];
        for (r, expired, want) in cases {
            assert_eq!(AgentLease::of(&n, r, expired).fence_evidence(), want);
        }
        let unguarded = rec("node1", LeaseMode::Unguarded);
        assert_eq!(
            AgentLease::of(&n, Some(&unguarded), true).fence_evidence(),
            FenceEvidence::Never
        );
        let hold = rec("crm:node2", LeaseMode::Held);
        assert_eq!(
            AgentLease::of(&n, Some(&hold), false).fence_evidence(),
            FenceEvidence::AlreadyFenced
        );
        assert!(AgentLease::of(&n, Some(&held), false).protects());
        assert!(!AgentLease::of(&n, None, false).protects());
    }
}
