//! The Raft model: who can talk to whom (a snapshot of the network, the
//! [`Topology`]), and who leads ([`RaftModel`]).
//!
//! One leader at a time, and only a node that can exchange messages (both
//! directions) with a majority of all members, itself included, can lead.
//! A leader that loses that (powered off, paused, daemon stopped, cut
//! off) is lost at once; the others elect a new one when an election
//! timeout runs out, among the nodes that reach a majority then. A node
//! that cannot hear the leader keeps believing in the one it knew (its
//! requests to it go unanswered) until a heartbeat of a newer leader
//! reaches it. The replicated state itself is one copy in the cluster
//! (commits need the leader and a majority; see `cluster.rs`).

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::NodeName;

/// What the network looks like at one instant.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    names: Vec<NodeName>,
    participant: Vec<bool>,
    network: Vec<bool>,
    send: Vec<Vec<bool>>,
}

/// One node's part in the [`Topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLink {
    /// Takes part in Raft: powered, daemon running, not paused.
    pub participant: bool,
    /// Its network is up.
    pub network: bool,
}

impl Topology {
    /// Builds the snapshot from every member's state and the cut links.
    pub fn build(
        members: &[(NodeName, NodeLink)],
        blocked: &BTreeSet<(NodeName, NodeName)>,
    ) -> Topology {
        let names: Vec<NodeName> = members.iter().map(|(n, _)| n.clone()).collect();
        let participant: Vec<bool> = members.iter().map(|(_, l)| l.participant).collect();
        let network: Vec<bool> = members.iter().map(|(_, l)| l.network).collect();
        let count = names.len();
        let mut send: Vec<Vec<bool>> = (0..count)
            .map(|a| {
                (0..count)
                    .map(|b| {
                        if a == b {
                            participant[a]
                        } else {
                            participant[a] && participant[b] && network[a] && network[b]
                        }
                    })
                    .collect()
            })
            .collect();
        for (from, to) in blocked {
            let a = names.iter().position(|x| x == from);
            let b = names.iter().position(|x| x == to);
            if let (Some(a), Some(b)) = (a, b) {
                if a != b {
                    send[a][b] = false;
                }
            }
        }
        Topology {
            names,
            participant,
            network,
            send,
        }
    }

    fn idx(&self, n: &NodeName) -> Option<usize> {
        self.names.iter().position(|x| x == n)
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NodeName] {
        &self.names
    }

    /// Whether `n` takes part in Raft now.
    pub fn participant(&self, n: &NodeName) -> bool {
        self.idx(n).is_some_and(|i| self.participant[i])
    }

    /// Whether `n`'s own network is up.
    pub fn network_up(&self, n: &NodeName) -> bool {
        self.idx(n).is_some_and(|i| self.network[i])
    }

    /// Whether a message from `a` reaches `b`.
    pub fn can_send(&self, a: &NodeName, b: &NodeName) -> bool {
        match (self.idx(a), self.idx(b)) {
            (Some(i), Some(j)) => self.send[i][j],
            _ => false,
        }
    }

    /// Whether `a` and `b` can exchange messages (both directions).
    pub fn exchange(&self, a: &NodeName, b: &NodeName) -> bool {
        self.can_send(a, b) && self.can_send(b, a)
    }

    /// Whether `a` can exchange messages with a majority of all members,
    /// itself included.
    pub fn reaches_majority(&self, a: &NodeName) -> bool {
        let Some(i) = self.idx(a) else {
            return false;
        };
        if !self.participant[i] {
            return false;
        }
        let peers = (0..self.names.len())
            .filter(|&j| self.send[i][j] && self.send[j][i])
            .count();
        peers > self.names.len() / 2
    }
}

/// Who leads, and who believes what.
#[derive(Debug, Clone, Default)]
pub struct RaftModel {
    leader: Option<NodeName>,
    term: u64,
    term_started: bool,
    election_round: u64,
    election_pending: bool,
    ever_led: bool,
    belief: BTreeMap<NodeName, NodeName>,
}

impl RaftModel {
    /// The leader, if any.
    pub fn leader(&self) -> Option<&NodeName> {
        self.leader.as_ref()
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether the leader's first entry is applied (it serves requests
    /// and its CRM may act).
    pub fn term_started(&self) -> bool {
        self.leader.is_some() && self.term_started
    }

    /// Whether `n` leads and its term started.
    pub fn leads(&self, n: &NodeName) -> bool {
        self.term_started() && self.leader.as_ref() == Some(n)
    }

    /// Whether a leader ever existed.
    pub fn ever_led(&self) -> bool {
        self.ever_led
    }

    /// The leader `n` believes in.
    pub fn belief(&self, n: &NodeName) -> Option<&NodeName> {
        self.belief.get(n)
    }

    /// `n` believes `leader` leads.
    pub fn set_belief(&mut self, n: &NodeName, leader: &NodeName) {
        self.belief.insert(n.clone(), leader.clone());
    }

    /// `n` (a fresh daemon) knows no leader.
    pub fn forget(&mut self, n: &NodeName) {
        self.belief.remove(n);
    }

    /// Whether an election timeout is running.
    pub fn election_pending(&self) -> bool {
        self.election_pending
    }

    /// The current election round (to spot stale election events).
    pub fn election_round(&self) -> u64 {
        self.election_round
    }

    /// Drops a leader that can no longer reach a majority; returns it.
    pub fn check_leader(&mut self, topo: &Topology) -> Option<NodeName> {
        match &self.leader {
            Some(l) if !topo.reaches_majority(l) => {
                self.term_started = false;
                self.leader.take()
            }
            _ => None,
        }
    }

    /// Starts an election timeout (no leader, none running); returns its
    /// round.
    pub fn start_election(&mut self) -> u64 {
        self.election_round += 1;
        self.election_pending = true;
        self.election_round
    }

    /// The nodes that could win an election now.
    pub fn candidates(topo: &Topology) -> Vec<NodeName> {
        topo.members()
            .iter()
            .filter(|n| topo.reaches_majority(n))
            .cloned()
            .collect()
    }

    /// The election of `round` ends: `winner` leads in a new term (its
    /// term starts once its first entry is applied). Returns the term.
    pub fn elect(&mut self, winner: &NodeName) -> u64 {
        self.election_pending = false;
        self.election_round += 1;
        self.term += 1;
        self.term_started = false;
        self.ever_led = true;
        self.leader = Some(winner.clone());
        self.belief.insert(winner.clone(), winner.clone());
        self.term
    }

    /// The election timed out without a winner.
    pub fn election_failed(&mut self) {
        self.election_pending = false;
    }

    /// The leader's first entry of `term` is applied. False if that term
    /// is over already.
    pub fn start_term(&mut self, term: u64) -> bool {
        if self.leader.is_some() && self.term == term {
            self.term_started = true;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn topo(down: &[&str], cut: &[(&str, &str)]) -> Topology {
        let members: Vec<(NodeName, NodeLink)> = ["node1", "node2", "node3"]
            .iter()
            .map(|m| {
                (
                    n(m),
                    NodeLink {
                        participant: !down.contains(m),
                        network: true,
                    },
                )
            })
            .collect();
        let blocked = cut.iter().map(|(a, b)| (n(a), n(b))).collect();
        Topology::build(&members, &blocked)
    }

    #[test]
    fn majority_counts_only_two_way_links() {
        let t = topo(&[], &[]);
        assert!(t.reaches_majority(&n("node1")));
        // node1 -> node2 and node1 -> node3 cut: node1 hears both but
        // cannot talk to them.
        let t = topo(&[], &[("node1", "node2"), ("node1", "node3")]);
        assert!(!t.reaches_majority(&n("node1")));
        assert!(t.can_send(&n("node2"), &n("node1")));
        assert!(!t.exchange(&n("node2"), &n("node1")));
        assert!(t.reaches_majority(&n("node2")));
        let t = topo(&["node2", "node3"], &[]);
        assert!(!t.reaches_majority(&n("node1")));
        assert!(!t.participant(&n("node2")));
    }

    #[test]
    fn a_leader_cut_from_the_majority_is_lost_and_a_new_term_follows() {
        let mut r = RaftModel::default();
        assert_eq!(r.start_election(), 1);
        let term = r.elect(&n("node1"));
        assert!(!r.leads(&n("node1")), "not before its first entry");
        assert!(r.start_term(term));
        assert!(r.leads(&n("node1")));
        assert_eq!(r.check_leader(&topo(&[], &[])), None);
        assert_eq!(r.check_leader(&topo(&["node1"], &[])), Some(n("node1")));
        assert!(r.leader().is_none());
        assert!(!r.start_term(term), "a lost term never starts");
        assert_eq!(
            RaftModel::candidates(&topo(&["node1"], &[])),
            vec![n("node2"), n("node3")]
        );
        assert_eq!(r.belief(&n("node1")), Some(&n("node1")));
        r.forget(&n("node1"));
        assert_eq!(r.belief(&n("node1")), None);
    }
}
