//! The simulated cluster store and its Raft: the lease core's leader-side
//! [`LeaseTable`] (one replicated copy; the deadlines are the leader's),
//! the [`RaftModel`], the network and the queue of virtual time.
//!
//! Writes commit only through the leader, once its term started, while it
//! reaches a majority. A node's lease requests travel as messages: to the
//! node it believes leads, which refuses if it does not lead, checks a
//! take-over's expiry and a take-back's manager-status guard before
//! proposing (as the daemon's store does), commits after a replication
//! delay and answers. A node that gets no answer gives up after the
//! profile's `renew_attempt_timeout` (the lease core times the attempt
//! out) and asks whoever it believes leads then. With no delay (seed 0)
//! the whole exchange happens at once.

use lease::{
    LeaseCommand, LeaseEvent, LeaseOutcome, LeaseRequest, LeaseTable, Mono, NodeLease,
    NodeLeaseState, ReplicaView, RequestFailure,
};

use crate::crm::{agent_lease_name, AgentLease};
use crate::domain::NodeName;

use super::events::{Event, EventQueue, LeaseMsg, LeaseReply};
use super::net::Network;
use super::raft::{RaftModel, Topology};
use super::rng::SimRng;
use super::timing::SimTiming;

/// One node's lease client: what the daemon's lease task and watchdog
/// thread keep for one run of its LRM.
#[derive(Debug, Clone)]
pub struct AgentClient {
    /// The lease core's node side.
    pub lease: NodeLease,
    /// Changes with every new client (answers to an older one are
    /// dropped).
    pub epoch: u64,
    /// The id of the request in flight.
    pub inflight: Option<u64>,
    /// When the lease task is due next (one pending wake-up).
    pub task_at: Option<u64>,
    /// The LRM wants its watchdog open.
    pub watchdog_wanted: bool,
    /// When a broken watchdog is probed again.
    pub probe_at: Option<u64>,
}

impl AgentClient {
    /// A fresh client for run `incarnation` of `node`'s LRM.
    pub fn new(node: &NodeName, incarnation: u64, epoch: u64, timing: &SimTiming) -> Self {
        AgentClient {
            lease: NodeLease::new(
                &agent_lease_name(node.as_str()),
                node.as_str(),
                incarnation,
                &timing.profile,
            ),
            epoch,
            inflight: None,
            task_at: None,
            watchdog_wanted: false,
            probe_at: None,
        }
    }

    /// Takes an answer meant for this client: true if it was (the request
    /// in flight), with what the lease core made of it.
    pub fn accept(&mut self, now: u64, reply: LeaseReply) -> (bool, Option<LeaseEvent>) {
        if reply.epoch != self.epoch || self.inflight != Some(reply.id) || !self.lease.in_flight() {
            return (false, None);
        }
        self.inflight = None;
        (true, self.lease.on_reply(Mono(now), reply.result))
    }
}

/// The store, Raft and the network.
#[derive(Debug)]
pub struct Cluster {
    /// The replicated lease table (the leader's deadlines).
    pub table: LeaseTable,
    /// Proxmox's manager lock (pve profile): a lock in the cluster file
    /// system, judged by its own timeout and not by the Raft leader, so a
    /// leader change does not extend it.
    pub manager_lock: LeaseTable,
    /// The log index of the last lease command.
    index: u64,
    /// Who leads.
    pub raft: RaftModel,
    /// Links, delay and loss.
    pub net: Network,
    /// The run's randomness.
    pub rng: SimRng,
    /// Virtual time.
    pub events: EventQueue,
    next_request: u64,
    timing: SimTiming,
    /// Heartbeats on their way: (node, term).
    heartbeats: std::collections::BTreeSet<(NodeName, u64)>,
}

fn unavailable(why: &str) -> Result<LeaseOutcome, RequestFailure> {
    Err(RequestFailure::Unavailable(why.to_string()))
}

impl Cluster {
    /// An empty cluster.
    pub fn new(net: Network, rng: SimRng, timing: SimTiming) -> Self {
        Cluster {
            table: LeaseTable::default(),
            manager_lock: LeaseTable::default(),
            index: 0,
            raft: RaftModel::default(),
            net,
            rng,
            events: EventQueue::default(),
            next_request: 0,
            timing,
            heartbeats: std::collections::BTreeSet::new(),
        }
    }

    /// Whether `node` can commit a write now: a leader whose term started
    /// and that reaches a majority, and `node` exchanges messages with it.
    pub fn can_commit(&self, topo: &Topology, node: &NodeName) -> bool {
        match self.raft.leader() {
            Some(l) if self.raft.term_started() => {
                topo.reaches_majority(l) && (l == node || topo.exchange(node, l))
            }
            _ => false,
        }
    }

    /// Whether `node` is in the quorate part of the cluster: it exchanges
    /// messages with the leader, or (while an election runs) with a
    /// majority.
    pub fn quorate(&self, topo: &Topology, node: &NodeName) -> bool {
        if !topo.participant(node) {
            return false;
        }
        match self.raft.leader() {
            Some(l) => l == node || topo.exchange(node, l),
            None => topo.reaches_majority(node),
        }
    }

    /// Applies a command at the leader, at `now`.
    fn apply(&mut self, now: u64, command: &LeaseCommand) -> LeaseOutcome {
        self.index += 1;
        self.table.apply(self.index, command, Mono(now))
    }

    /// The leader's checks before it proposes a request.
    fn precheck(&self, now: u64, request: &LeaseRequest, version: u64) -> Result<(), String> {
        if let Some(v) = request.manager_status_guard {
            if v != version {
                return Err("the manager status changed".into());
            }
        }
        if let LeaseCommand::Takeover { name, expected, .. } = &request.command {
            self.table
                .check_takeover(name, expected.as_ref(), Mono(now))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A write of `node` committed at once (the CRM's lock actions): it
    /// must be able to commit, and the leader checks it as any request.
    pub fn commit_from(
        &mut self,
        topo: &Topology,
        node: &NodeName,
        now: u64,
        request: &LeaseRequest,
        version: u64,
    ) -> Result<LeaseOutcome, String> {
        if !self.can_commit(topo, node) {
            return Err("no quorate leader reachable".into());
        }
        self.precheck(now, request, version)?;
        Ok(self.apply(now, &request.command))
    }

    /// A change of Proxmox's manager lock by `node`'s CRM (pve), committed
    /// through the leader like every write.
    pub fn commit_manager_lock(
        &mut self,
        topo: &Topology,
        node: &NodeName,
        now: u64,
        command: &LeaseCommand,
    ) -> Result<LeaseOutcome, String> {
        if !self.can_commit(topo, node) {
            return Err("no quorate leader reachable".into());
        }
        self.index += 1;
        Ok(self.manager_lock.apply(self.index, command, Mono(now)))
    }

    /// `node`'s agent lease as the CRM sees it on the leader at `now`.
    pub fn agent_lease(&self, node: &NodeName, now: u64) -> AgentLease {
        let name = agent_lease_name(node.as_str());
        let record = self.table.record(&name);
        let expired = self.table.deadline(&name).is_some_and(|d| d < Mono(now));
        AgentLease::of(node, record, expired)
    }

    /// One poll of `node`'s lease client: what it wants to send goes out
    /// to the node it believes leads. Returns what the lease core made of
    /// an answer that came at once (no delay on the way).
    pub fn lease_poll(
        &mut self,
        topo: &Topology,
        node: &NodeName,
        client: &mut AgentClient,
        now: u64,
        fencing_me: bool,
        version: u64,
    ) -> Option<LeaseEvent> {
        let record = self.table.record(client.lease.name()).cloned();
        let view = ReplicaView {
            record: record.as_ref(),
            crm_fencing_me: fencing_me,
            manager_status_version: version,
        };
        let was_free = client.lease.state() == NodeLeaseState::Free;
        let polled = client.lease.poll(Mono(now), &view);
        // A grant to this run whose answer was missed, adopted from the
        // replica by the poll.
        let adopted = match client.lease.state() {
            NodeLeaseState::Held { seq, .. } if was_free => Some(LeaseEvent::Acquired { seq }),
            _ => None,
        };
        let Some(request) = polled else {
            if !client.lease.in_flight() {
                client.inflight = None;
            }
            return adopted;
        };
        self.next_request += 1;
        let id = self.next_request;
        client.inflight = Some(id);
        let msg = LeaseMsg {
            from: node.clone(),
            epoch: client.epoch,
            id,
            request,
        };
        match self.send_request(topo, now, msg, version) {
            Some(reply) => client.accept(now, reply).1.or(adopted),
            None => adopted,
        }
    }

    fn send_request(
        &mut self,
        topo: &Topology,
        now: u64,
        msg: LeaseMsg,
        version: u64,
    ) -> Option<LeaseReply> {
        let answer = |msg: LeaseMsg, why: &str| {
            Some(LeaseReply {
                to: msg.from,
                epoch: msg.epoch,
                id: msg.id,
                result: unavailable(why),
            })
        };
        let Some(target) = self.raft.belief(&msg.from).cloned() else {
            return answer(msg, "no leader known");
        };
        if target == msg.from {
            return self.arrive(topo, now, &target, msg, version);
        }
        if !topo.network_up(&msg.from) {
            return answer(msg, "network unreachable");
        }
        if !topo.can_send(&msg.from, &target) {
            return None;
        }
        match self.net.hop(&mut self.rng, &msg.from, &target) {
            None => None,
            Some(0) => self.arrive(topo, now, &target, msg, version),
            Some(d) => {
                self.events
                    .push(now + d, Event::LeaseArrive { at: target, msg });
                None
            }
        }
    }

    /// A request arrives at `at`.
    pub fn arrive(
        &mut self,
        topo: &Topology,
        now: u64,
        at: &NodeName,
        msg: LeaseMsg,
        version: u64,
    ) -> Option<LeaseReply> {
        if !topo.participant(at) {
            return None;
        }
        if !self.raft.leads(at) {
            return self.send_reply(topo, now, at, msg, unavailable("not the leader"));
        }
        if !topo.reaches_majority(at) {
            return None;
        }
        if let Err(why) = self.precheck(now, &msg.request, version) {
            return self.send_reply(topo, now, at, msg, unavailable(&why));
        }
        // Replicated to a majority and back; Raft retransmits, so never lost.
        let d = self.net.delay(&mut self.rng) + self.net.delay(&mut self.rng);
        let term = self.raft.term();
        if d == 0 {
            self.commit(topo, now, at, term, msg, version)
        } else {
            self.events.push(
                now + d,
                Event::LeaseCommit {
                    leader: at.clone(),
                    term,
                    msg,
                },
            );
            None
        }
    }

    /// A proposed request commits (if its leader still leads) and is
    /// answered.
    pub fn commit(
        &mut self,
        topo: &Topology,
        now: u64,
        leader: &NodeName,
        term: u64,
        msg: LeaseMsg,
        version: u64,
    ) -> Option<LeaseReply> {
        if !self.raft.leads(leader) || self.raft.term() != term || !topo.reaches_majority(leader) {
            return None;
        }
        if let Some(v) = msg.request.manager_status_guard {
            if v != version {
                return self.send_reply(
                    topo,
                    now,
                    leader,
                    msg,
                    unavailable("the manager status changed"),
                );
            }
        }
        let outcome = self.apply(now, &msg.request.command);
        self.send_reply(topo, now, leader, msg, Ok(outcome))
    }

    fn send_reply(
        &mut self,
        topo: &Topology,
        now: u64,
        from: &NodeName,
        msg: LeaseMsg,
        result: Result<LeaseOutcome, RequestFailure>,
    ) -> Option<LeaseReply> {
        let reply = LeaseReply {
            to: msg.from,
            epoch: msg.epoch,
            id: msg.id,
            result,
        };
        if from == &reply.to {
            return Some(reply);
        }
        if !topo.can_send(from, &reply.to) {
            return None;
        }
        match self.net.hop(&mut self.rng, from, &reply.to) {
            None => None,
            Some(0) => Some(reply),
            Some(d) => {
                self.events.push(now + d, Event::LeaseReply(reply));
                None
            }
        }
    }

    /// Raft after a change of the network or of a node: a leader that no
    /// longer reaches a majority is lost, an election timeout starts when
    /// nobody leads (the first leader forms at once in seed 0), and nodes
    /// that can hear the leader learn of it. Returns lines for the log.
    pub fn refresh_raft(&mut self, topo: &Topology, now: u64) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(lost) = self.raft.check_leader(topo) {
            notes.push(format!(
                "leader '{lost}' lost (term {}): it no longer reaches a majority",
                self.raft.term()
            ));
        }
        if self.raft.leader().is_none() {
            let form_now = !self.raft.ever_led() && !self.net.params.random_elections;
            if form_now {
                // Seed 0: the first leader forms as soon as a majority runs
                // (no election timeout, nothing logged).
                if !RaftModel::candidates(topo).is_empty() {
                    let round = self.raft.start_election();
                    self.on_election(topo, now, round, false);
                }
            } else if !self.raft.election_pending() {
                let round = self.raft.start_election();
                let timeout = self.election_timeout();
                if timeout == 0 {
                    if let Some(line) = self.on_election(topo, now, round, true) {
                        notes.push(line);
                    }
                } else {
                    self.events.push(now + timeout, Event::Election { round });
                }
            }
        }
        self.send_heartbeats(topo, now);
        notes
    }

    /// How long until the next election: drawn from the profile's range
    /// with a random seed; in seed 0 the range's upper bound, except in
    /// the pve profile, where it is immediate (Proxmox's simulator has no
    /// election gap, and its 1 s daemon steps and 20 s rounds would turn
    /// one into a different master).
    fn election_timeout(&mut self) -> u64 {
        let min = lease::millis(self.timing.profile.election_timeout_min);
        let max = lease::millis(self.timing.profile.election_timeout_max);
        if self.net.params.random_elections {
            self.rng.between(min, max)
        } else if self.timing.crm_watchdog {
            0
        } else {
            max
        }
    }

    /// An election timeout of `round` runs out: the first candidate (in
    /// seed 0 the first by name, else a random one) that reaches a
    /// majority wins; without one a new timeout starts. Returns a log
    /// line for a winner (`log`: whether to write one).
    pub fn on_election(
        &mut self,
        topo: &Topology,
        now: u64,
        round: u64,
        log: bool,
    ) -> Option<String> {
        if !self.raft.election_pending() || self.raft.election_round() != round {
            return None;
        }
        let candidates = RaftModel::candidates(topo);
        if candidates.is_empty() {
            self.raft.election_failed();
            // Another timeout; an immediate one waits for the next change
            // of the network instead (see `refresh_raft`).
            let timeout = self.election_timeout();
            if timeout > 0 {
                let round = self.raft.start_election();
                self.events.push(now + timeout, Event::Election { round });
            }
            return None;
        }
        let pick = if self.net.params.random_elections {
            usize::try_from(self.rng.below(candidates.len() as u64)).unwrap_or(0)
        } else {
            0
        };
        let winner = candidates[pick].clone();
        let term = self.install_leader(topo, now, &winner);
        log.then(|| format!("'{winner}' elected leader (term {term})"))
    }

    /// `winner` is elected at `now`: its term starts once its first entry
    /// (a no-op) commits, after one replication round, and it sends its
    /// first heartbeats. Returns the new term.
    fn install_leader(&mut self, topo: &Topology, now: u64, winner: &NodeName) -> u64 {
        let term = self.raft.elect(winner);
        let d = self.net.delay(&mut self.rng) + self.net.delay(&mut self.rng);
        if d == 0 {
            self.start_term(now, term);
        } else {
            self.events.push(now + d, Event::TermStart { term });
        }
        self.send_heartbeats(topo, now);
        term
    }

    /// The leader `from` hands leadership over (its CRM stopped outside
    /// pve, where the manager lock is leadership): the first other node
    /// that reaches a majority (a random one with a random seed) is elected
    /// at once, as a Raft leadership transfer does. Returns a log line, or
    /// `None` when `from` does not lead or no other node could.
    pub fn transfer_leadership(
        &mut self,
        topo: &Topology,
        now: u64,
        from: &NodeName,
    ) -> Option<String> {
        if self.raft.leader() != Some(from) {
            return None;
        }
        let others: Vec<NodeName> = RaftModel::candidates(topo)
            .into_iter()
            .filter(|n| n != from)
            .collect();
        if others.is_empty() {
            return None;
        }
        let pick = if self.net.params.random_elections {
            usize::try_from(self.rng.below(others.len() as u64)).unwrap_or(0)
        } else {
            0
        };
        let winner = others[pick].clone();
        self.raft.start_election();
        let term = self.install_leader(topo, now, &winner);
        Some(format!(
            "'{from}' hands leadership over: '{winner}' elected leader (term {term})"
        ))
    }

    /// The leader's first entry of `term` is applied: every held lease is
    /// extended to at least `now + ttl` (the new leader cannot know when
    /// the last renewals were sent).
    pub fn start_term(&mut self, now: u64, term: u64) {
        if self.raft.start_term(term) {
            self.table.extend_all(Mono(now));
        }
    }

    /// Heartbeats from the leader to the nodes that hear it but believe in
    /// another (or no) leader.
    fn send_heartbeats(&mut self, topo: &Topology, now: u64) {
        let Some(leader) = self.raft.leader().cloned() else {
            return;
        };
        let term = self.raft.term();
        for m in topo.members() {
            if self.raft.belief(m) == Some(&leader)
                || !topo.can_send(&leader, m)
                || self.heartbeats.contains(&(m.clone(), term))
            {
                continue;
            }
            let d = if self.net.params.max_delay_ms == 0 {
                0
            } else {
                self.rng.between(1, self.timing.heartbeat_ms())
            };
            if d == 0 {
                self.raft.set_belief(m, &leader);
            } else {
                self.heartbeats.insert((m.clone(), term));
                self.events.push(
                    now + d,
                    Event::Heartbeat {
                        to: m.clone(),
                        leader: leader.clone(),
                        term,
                    },
                );
            }
        }
    }

    /// A heartbeat arrives.
    pub fn on_heartbeat(&mut self, topo: &Topology, to: &NodeName, leader: &NodeName, term: u64) {
        self.heartbeats.remove(&(to.clone(), term));
        if self.raft.leader() == Some(leader)
            && self.raft.term() == term
            && topo.can_send(leader, to)
        {
            self.raft.set_belief(to, leader);
        }
    }
}
