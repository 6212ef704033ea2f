//! "May this node be removed from the cluster?" (`cluster delnode`,
//! Proxmox's `pvecm delnode`).
//!
//! Removing a member is only safe once nothing of it can still run: the
//! node must not hold its agent lease (a held lease means its LRM may run
//! services under a fed watchdog; only a clean release or the CRM's
//! take-over after fencing proves otherwise), must not have left services
//! running unguarded, and no service may still be placed on it — neither
//! in the CRM's status nor in its placement — because after the removal
//! nobody would recover them. The daemon gathers these facts from its
//! replica and carries out the removal; the decision is here so that it is
//! one piece of code with its tests.

use crate::domain::{NodeName, Sid};

use super::fencing::AgentLease;

/// Why a node may not be removed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    /// The node is the one asked to remove it.
    #[error(
        "node '{0}' cannot remove itself with delnode: run `ha-manager cluster leave` on it, \
         or `cluster delnode {0}` on another member"
    )]
    Itself(NodeName),
    /// The node is not a member.
    #[error("node '{0}' is not a cluster member")]
    NotMember(NodeName),
    /// It would remove the last voter.
    #[error("node '{0}' is the last voter: a cluster cannot remove its last member")]
    LastVoter(NodeName),
    /// The node still holds its agent lease.
    #[error(
        "node '{node}' still holds its agent lease{}: it may be running services under its \
         watchdog; stop its daemon cleanly (systemctl stop ha-manager) or power it off and \
         wait until the CRM has fenced it and recovered its services",
        if *.expired { " (expired, not yet fenced)" } else { "" }
    )]
    HoldsLease {
        /// The node.
        node: NodeName,
        /// The leader already judged the lease expired (fencing is due).
        expired: bool,
    },
    /// The node released its lease while services kept running.
    #[error(
        "node '{0}' left its services running without watchdog protection (frozen or \
         disarmed): start its daemon again, or stop its services and its daemon cleanly, \
         before removing it"
    )]
    Unguarded(NodeName),
    /// Services are still placed on the node.
    #[error(
        "node '{node}' still has services: {}; move them first (ha-manager migrate|relocate \
         SID NODE, which also moves a stopped service) or remove them",
        .services.join(", ")
    )]
    HasServices {
        /// The node.
        node: NodeName,
        /// Each service with its CRM state, e.g. `exec:web (fence)`.
        services: Vec<String>,
    },
}

/// What the removal check reads.
#[derive(Debug, Clone)]
pub struct RemovalFacts<'a> {
    /// The node that received the request.
    pub here: &'a NodeName,
    /// The node to remove.
    pub node: &'a NodeName,
    /// It is in the node directory / Raft membership.
    pub is_member: bool,
    /// The node is a Raft voter.
    pub is_voter: bool,
    /// Voters in the Raft membership, the node included when it is one.
    pub voters: usize,
    /// The node's agent lease as classified by the CRM.
    pub lease: AgentLease,
    /// Services the CRM status puts on the node, with their state names.
    pub crm_services: Vec<(Sid, String)>,
    /// Services whose placement (the node they live on) is the node.
    pub placed: Vec<Sid>,
}

/// Decides whether `facts.node` may be removed now.
pub fn may_remove(facts: &RemovalFacts<'_>) -> Result<(), RemovalRefused> {
    let node = facts.node.clone();
    if facts.node == facts.here {
        return Err(RemovalRefused::Itself(node));
    }
    if !facts.is_member {
        return Err(RemovalRefused::NotMember(node));
    }
    if facts.is_voter && facts.voters <= 1 {
        return Err(RemovalRefused::LastVoter(node));
    }
    match facts.lease {
        AgentLease::Held { expired } => return Err(RemovalRefused::HoldsLease { node, expired }),
        AgentLease::Unguarded => return Err(RemovalRefused::Unguarded(node)),
        AgentLease::Free | AgentLease::FencingHold => {}
    }
    let mut services: Vec<String> = facts
        .crm_services
        .iter()
        .map(|(sid, state)| format!("{sid} ({state})"))
        .collect();
    for sid in &facts.placed {
        if !facts.crm_services.iter().any(|(s, _)| s == sid) {
            services.push(format!("{sid} (placed)"));
        }
    }
    if !services.is_empty() {
        return Err(RemovalRefused::HasServices { node, services });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn facts<'a>(here: &'a NodeName, node: &'a NodeName, lease: AgentLease) -> RemovalFacts<'a> {
        RemovalFacts {
            here,
            node,
            is_member: true,
            is_voter: true,
            voters: 3,
            lease,
            crm_services: Vec::new(),
            placed: Vec::new(),
        }
    }

    #[test]
    fn a_fenced_or_cleanly_stopped_empty_node_may_go() {
        let (a, b) = (name("node1"), name("node3"));
        assert_eq!(may_remove(&facts(&a, &b, AgentLease::FencingHold)), Ok(()));
        assert_eq!(may_remove(&facts(&a, &b, AgentLease::Free)), Ok(()));
    }

    #[test]
    fn a_held_lease_refuses_even_when_expired() {
        let (a, b) = (name("node1"), name("node3"));
        for expired in [false, true] {
            let e = may_remove(&facts(&a, &b, AgentLease::Held { expired })).unwrap_err();
            assert_eq!(
                e,
                RemovalRefused::HoldsLease {
                    node: b.clone(),
                    expired
                }
            );
            assert!(e.to_string().contains("holds its agent lease"), "{e}");
        }
        let e = may_remove(&facts(&a, &b, AgentLease::Unguarded)).unwrap_err();
        assert_eq!(e, RemovalRefused::Unguarded(b.clone()));
    }

    #[test]
    fn services_on_the_node_refuse_and_are_named() {
        let (a, b) = (name("node1"), name("node3"));
        let mut f = facts(&a, &b, AgentLease::FencingHold);
        f.crm_services = vec![("exec:web".parse().unwrap(), "fence".into())];
        f.placed = vec!["exec:web".parse().unwrap(), "exec:db".parse().unwrap()];
        let e = may_remove(&f).unwrap_err();
        assert!(
            e.to_string()
                .contains("still has services: exec:web (fence), exec:db (placed)"),
            "{e}"
        );
    }

    #[test]
    fn itself_a_stranger_and_the_last_voter_are_refused() {
        let (a, b) = (name("node1"), name("node3"));
        assert_eq!(
            may_remove(&facts(&a, &a, AgentLease::Free)),
            Err(RemovalRefused::Itself(a.clone()))
        );
        let mut f = facts(&a, &b, AgentLease::Free);
        f.is_member = false;
        assert_eq!(may_remove(&f), Err(RemovalRefused::NotMember(b.clone())));
        let mut f = facts(&a, &b, AgentLease::Free);
        f.voters = 1;
        assert_eq!(may_remove(&f), Err(RemovalRefused::LastVoter(b.clone())));
        // After force-single-node the lost members are no voters any more.
        f.is_voter = false;
        assert_eq!(may_remove(&f), Ok(()));
    }
}
