//! The queue of virtual time: everything that happens between daemon
//! iterations (lease-task wake-ups, watchdog feeding, watchdog resets,
//! message deliveries, Raft elections) is an event at an exact time in
//! milliseconds. Events at the same time run in the order they were
//! scheduled.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use lease::{LeaseOutcome, LeaseRequest, RequestFailure};

use crate::domain::NodeName;

/// A lease request on its way to (or at) the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseMsg {
    /// The node that sent it.
    pub from: NodeName,
    /// The sender's lease-client epoch (a new daemon run or LRM start
    /// ignores answers meant for the previous one).
    pub epoch: u64,
    /// The request id (answers to an attempt the sender gave up on are
    /// ignored).
    pub id: u64,
    /// What the node asks for.
    pub request: LeaseRequest,
}

/// The answer to a [`LeaseMsg`], on its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReply {
    /// The node that asked.
    pub to: NodeName,
    /// Its lease-client epoch.
    pub epoch: u64,
    /// The request id.
    pub id: u64,
    /// The answer.
    pub result: Result<LeaseOutcome, RequestFailure>,
}

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node's lease task wakes up (renewal due, attempt timed out,
    /// re-read of the replica).
    LeaseTask {
        /// The node.
        node: NodeName,
        /// Its timer epoch (stale after a pause, stop or power-off).
        epoch: u64,
    },
    /// A node's watchdog thread feeds (or arms, or releases) its client.
    Feed {
        /// The node.
        node: NodeName,
        /// Its timer epoch.
        epoch: u64,
    },
    /// The watchdog device of a node may run out now.
    WatchdogCheck {
        /// The node.
        node: NodeName,
    },
    /// A lease request arrives at the node its sender believes leads.
    LeaseArrive {
        /// The receiving node.
        at: NodeName,
        /// The request.
        msg: LeaseMsg,
    },
    /// A lease request the leader proposed is committed (replicated to a
    /// majority) and applied.
    LeaseCommit {
        /// The leader that proposed it.
        leader: NodeName,
        /// Its term.
        term: u64,
        /// The request.
        msg: LeaseMsg,
    },
    /// An answer arrives at the node that asked.
    LeaseReply(LeaseReply),
    /// A Raft election timeout runs out.
    Election {
        /// The election round it belongs to (stale once a leader exists
        /// or the election was rescheduled).
        round: u64,
    },
    /// The new leader's first entry is applied: its term starts.
    TermStart {
        /// The term.
        term: u64,
    },
    /// A leader's heartbeat tells a node who leads.
    Heartbeat {
        /// The receiving node.
        to: NodeName,
        /// The leader.
        leader: NodeName,
        /// Its term.
        term: u64,
    },
}

#[derive(Debug)]
struct Entry {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so the max-heap pops the earliest entry first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events ordered by time, then by scheduling order.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    /// Schedules `event` at `at` (ms).
    pub fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Takes the earliest event if it is due at or before `until`.
    pub fn pop_due(&mut self, until: u64) -> Option<(u64, Event)> {
        if self.heap.peek().is_some_and(|e| e.at <= until) {
            self.heap.pop().map(|e| (e.at, e.event))
        } else {
            None
        }
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_in_scheduling_order() {
        let mut q = EventQueue::default();
        q.push(20, Event::Election { round: 2 });
        q.push(10, Event::Election { round: 1 });
        q.push(20, Event::TermStart { term: 3 });
        assert_eq!(q.len(), 3);
        assert!(q.pop_due(9).is_none());
        assert_eq!(q.pop_due(10), Some((10, Event::Election { round: 1 })));
        assert_eq!(q.pop_due(100), Some((20, Event::Election { round: 2 })));
        assert_eq!(q.pop_due(100), Some((20, Event::TermStart { term: 3 })));
        assert!(q.is_empty());
    }
}
