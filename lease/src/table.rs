//! The leader-side lease table (design.md section 5).
//!
//! The records are replicated: [`LeaseTable::apply`] changes them as a
//! deterministic function of the table, the log index and the command.
//! Each replica also keeps a deadline per held lease on its own monotonic
//! clock, set from the `now` its caller passes when it applies a grant;
//! only the leader's deadlines are ever consulted. They are never
//! replicated, so no replica depends on synchronized clocks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{Expected, LeaseCommand, LeaseMode, LeaseOutcome, LeaseRecord};
use crate::Mono;

/// Why the leader refuses to propose a take-over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeoverRefusal {
    /// The lease is still valid on this leader's clock.
    #[error("lease '{name}' has not expired yet ({left:?} left on the leader)")]
    NotExpired {
        /// Lease name.
        name: String,
        /// Time left.
        left: Duration,
    },
    /// The lease is not (or no longer) what the take-over expects.
    #[error("lease '{name}' changed since it was observed (now {current:?})")]
    Changed {
        /// Lease name.
        name: String,
        /// The lease as it is.
        current: Option<LeaseRecord>,
    },
}

/// All leases of the cluster, with this replica's local deadlines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseTable {
    records: BTreeMap<String, LeaseRecord>,
    /// Local deadline of every held lease (this replica's clock). Only
    /// meaningful on the leader; rebuilt by [`LeaseTable::extend_all`]
    /// after a restore or when a leader's term starts.
    #[serde(skip)]
    deadlines: BTreeMap<String, Mono>,
}

impl PartialEq for LeaseTable {
    /// Replicas are equal when their records are: deadlines are local.
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for LeaseTable {}

impl LeaseTable {
    /// A lease by name.
    pub fn record(&self, name: &str) -> Option<&LeaseRecord> {
        self.records.get(name)
    }

    /// All leases, by name.
    pub fn records(&self) -> impl Iterator<Item = (&str, &LeaseRecord)> {
        self.records.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Applies `command`, committed at log `index` and applied at local
    /// time `now`. Deterministic in the records; `now` only sets this
    /// replica's deadline of a grant.
    pub fn apply(&mut self, index: u64, command: &LeaseCommand, now: Mono) -> LeaseOutcome {
        match command {
            LeaseCommand::Acquire {
                name,
                holder,
                incarnation,
                ttl_ms,
            } => match self.records.get(name) {
                None => self.grant(index, name, holder, *incarnation, *ttl_ms, now),
                Some(r) if r.mode == LeaseMode::Unguarded && &r.holder == holder => {
                    self.grant(index, name, holder, *incarnation, *ttl_ms, now)
                }
                Some(r) => LeaseOutcome::Busy { current: r.clone() },
            },
            LeaseCommand::Renew { name, holder, seq } => match self.records.get(name) {
                Some(r) if r.mode == LeaseMode::Held && &r.holder == holder && r.seq == *seq => {
                    let (ttl, incarnation) = (r.ttl_ms, r.incarnation);
                    self.grant(index, name, holder, incarnation, ttl, now)
                }
                current => LeaseOutcome::NotHolder {
                    current: current.cloned(),
                },
            },
            LeaseCommand::Release {
                name,
                holder,
                seq,
                leave_unguarded,
            } => match self.records.get_mut(name) {
                Some(r) if &r.holder == holder && r.seq == *seq => {
                    self.deadlines.remove(name);
                    if *leave_unguarded {
                        debug_assert!(index > r.seq, "a lease sequence only grows");
                        r.mode = LeaseMode::Unguarded;
                        r.seq = index;
                        LeaseOutcome::Released(Some(r.clone()))
                    } else {
                        self.records.remove(name);
                        LeaseOutcome::Released(None)
                    }
                }
                current => LeaseOutcome::NotHolder {
                    current: current.cloned(),
                },
            },
            LeaseCommand::Takeover {
                name,
                new_holder,
                new_incarnation,
                expected,
                ttl_ms,
            } => {
                let current = self.records.get(name);
                let matches = match (expected, current) {
                    (None, None) => true,
                    (Some(Expected { holder, seq }), Some(r)) => {
                        r.mode == LeaseMode::Held && &r.holder == holder && r.seq == *seq
                    }
                    _ => false,
                };
                if matches {
                    self.grant(index, name, new_holder, *new_incarnation, *ttl_ms, now)
                } else {
                    LeaseOutcome::TakeoverRejected {
                        current: current.cloned(),
                    }
                }
            }
        }
    }

    fn grant(
        &mut self,
        index: u64,
        name: &str,
        holder: &str,
        incarnation: u64,
        ttl_ms: u64,
        now: Mono,
    ) -> LeaseOutcome {
        if let Some(old) = self.records.get(name) {
            debug_assert!(index > old.seq, "a lease sequence only grows");
        }
        let record = LeaseRecord {
            holder: holder.to_string(),
            incarnation,
            ttl_ms,
            seq: index,
            mode: LeaseMode::Held,
        };
        self.records.insert(name.to_string(), record.clone());
        self.deadlines
            .insert(name.to_string(), now.after_ms(ttl_ms));
        LeaseOutcome::Granted(record)
    }

    /// Extends every held lease to at least `now + ttl`, never shortening
    /// one. Called when a leader's term starts (its first entry is
    /// applied: it cannot know when the last renewals were sent) and after
    /// a snapshot restore.
    pub fn extend_all(&mut self, now: Mono) {
        let mut fresh = BTreeMap::new();
        for (name, r) in &self.records {
            if r.mode != LeaseMode::Held {
                continue;
            }
            let candidate = now.after_ms(r.ttl_ms);
            let deadline = match self.deadlines.get(name) {
                Some(existing) if *existing > candidate => *existing,
                _ => candidate,
            };
            fresh.insert(name.clone(), deadline);
        }
        self.deadlines = fresh;
    }

    /// This replica's deadline of a held lease.
    pub fn deadline(&self, name: &str) -> Option<Mono> {
        self.deadlines.get(name).copied()
    }

    /// Time left until a held lease expires on this replica's clock.
    pub fn time_left(&self, name: &str, now: Mono) -> Option<Duration> {
        self.deadline(name).map(|d| d.since(now))
    }

    /// Held leases whose deadline lies before `now` (meaningful on the
    /// leader only). A lease is still valid at its deadline itself, as a
    /// Proxmox lock is still valid at exactly its timeout.
    pub fn expired(&self, now: Mono) -> Vec<(String, LeaseRecord)> {
        self.records
            .iter()
            .filter(|(name, r)| {
                r.mode == LeaseMode::Held && self.deadlines.get(*name).is_some_and(|d| *d < now)
            })
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect()
    }

    /// On the leader, before proposing a take-over: with `expected` the
    /// lease must be held exactly so and expired on this clock; without,
    /// it must be free.
    pub fn check_takeover(
        &self,
        name: &str,
        expected: Option<&Expected>,
        now: Mono,
    ) -> Result<(), TakeoverRefusal> {
        let current = self.records.get(name);
        match (expected, current) {
            (None, None) => Ok(()),
            (Some(e), Some(r))
                if r.mode == LeaseMode::Held && r.holder == e.holder && r.seq == e.seq =>
            {
                match self.deadlines.get(name) {
                    Some(d) if *d < now => Ok(()),
                    Some(d) => Err(TakeoverRefusal::NotExpired {
                        name: name.to_string(),
                        left: d.since(now),
                    }),
                    // No local deadline for a held lease cannot happen after
                    // extend_all; refuse rather than guess.
                    None => Err(TakeoverRefusal::NotExpired {
                        name: name.to_string(),
                        left: Duration::from_millis(r.ttl_ms),
                    }),
                }
            }
            _ => Err(TakeoverRefusal::Changed {
                name: name.to_string(),
                current: current.cloned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const N: &str = "ha_agent_node1_lock";

    fn acquire(h: &str) -> LeaseCommand {
        LeaseCommand::Acquire {
            name: N.into(),
            holder: h.into(),
            incarnation: 1,
            ttl_ms: 1000,
        }
    }
    fn renew(h: &str, seq: u64) -> LeaseCommand {
        LeaseCommand::Renew {
            name: N.into(),
            holder: h.into(),
            seq,
        }
    }
    fn release(h: &str, seq: u64, unguarded: bool) -> LeaseCommand {
        LeaseCommand::Release {
            name: N.into(),
            holder: h.into(),
            seq,
            leave_unguarded: unguarded,
        }
    }
    fn takeover(new: &str, expected: Option<(&str, u64)>) -> LeaseCommand {
        LeaseCommand::Takeover {
            name: N.into(),
            new_holder: new.into(),
            new_incarnation: 1,
            expected: expected.map(|(h, s)| Expected {
                holder: h.into(),
                seq: s,
            }),
            ttl_ms: 500,
        }
    }

    #[test]
    fn grant_renew_takeover_release() {
        let mut t = LeaseTable::default();
        assert!(
            matches!(t.apply(1, &acquire("node1"), Mono(0)), LeaseOutcome::Granted(r) if r.seq == 1)
        );
        assert!(matches!(
            t.apply(2, &acquire("node2"), Mono(0)),
            LeaseOutcome::Busy { .. }
        ));
        // A second incarnation of the same holder is busy too.
        assert!(matches!(
            t.apply(3, &acquire("node1"), Mono(0)),
            LeaseOutcome::Busy { .. }
        ));
        // Renew needs the exact sequence.
        assert!(matches!(
            t.apply(4, &renew("node1", 7), Mono(0)),
            LeaseOutcome::NotHolder { .. }
        ));
        assert!(
            matches!(t.apply(5, &renew("node1", 1), Mono(10)), LeaseOutcome::Granted(r) if r.seq == 5)
        );
        assert_eq!(t.deadline(N), Some(Mono(1010)));
        // A take-over that observed seq 1 is stale after the renewal at 5.
        assert!(matches!(
            t.apply(6, &takeover("crm:node2", Some(("node1", 1))), Mono(0)),
            LeaseOutcome::TakeoverRejected { .. }
        ));
        assert!(matches!(
            t.apply(7, &takeover("crm:node2", Some(("node1", 5))), Mono(2000)),
            LeaseOutcome::Granted(r) if r.holder == "crm:node2"
        ));
        assert!(matches!(
            t.apply(8, &renew("node1", 5), Mono(0)),
            LeaseOutcome::NotHolder { .. }
        ));
        assert_eq!(
            t.apply(9, &release("crm:node2", 7, false), Mono(0)),
            LeaseOutcome::Released(None)
        );
        assert!(t.record(N).is_none());
        assert!(t.deadline(N).is_none());
    }

    #[test]
    fn unguarded_never_expires_and_only_its_holder_takes_it_back() {
        let mut t = LeaseTable::default();
        t.apply(1, &acquire("node1"), Mono(0));
        let out = t.apply(2, &release("node1", 1, true), Mono(0));
        assert!(
            matches!(out, LeaseOutcome::Released(Some(ref r)) if r.mode == LeaseMode::Unguarded)
        );
        assert!(t.expired(Mono(u64::MAX)).is_empty());
        assert!(t
            .check_takeover(
                N,
                Some(&Expected {
                    holder: "node1".into(),
                    seq: 2
                }),
                Mono(u64::MAX)
            )
            .is_err());
        assert!(matches!(
            t.apply(3, &takeover("crm:x", Some(("node1", 2))), Mono(0)),
            LeaseOutcome::TakeoverRejected { .. }
        ));
        assert!(matches!(
            t.apply(4, &takeover("crm:x", None), Mono(0)),
            LeaseOutcome::TakeoverRejected { .. }
        ));
        assert!(matches!(
            t.apply(5, &acquire("node2"), Mono(0)),
            LeaseOutcome::Busy { .. }
        ));
        assert!(matches!(
            t.apply(6, &acquire("node1"), Mono(0)),
            LeaseOutcome::Granted(r) if r.mode == LeaseMode::Held && r.seq == 6
        ));
    }

    #[test]
    fn takeover_of_a_free_lease_blocks_acquires() {
        let mut t = LeaseTable::default();
        assert!(t.check_takeover(N, None, Mono(0)).is_ok());
        assert!(t
            .apply(1, &takeover("crm:node2", None), Mono(0))
            .is_success());
        assert!(matches!(
            t.apply(2, &acquire("node1"), Mono(0)),
            LeaseOutcome::Busy { .. }
        ));
        assert!(t.check_takeover(N, None, Mono(0)).is_err());
    }

    #[test]
    fn expiry_is_judged_on_the_local_clock() {
        let mut t = LeaseTable::default();
        t.apply(1, &acquire("node1"), Mono(100));
        let e = Expected {
            holder: "node1".into(),
            seq: 1,
        };
        assert!(t.expired(Mono(1100)).is_empty(), "valid at its deadline");
        assert!(matches!(
            t.check_takeover(N, Some(&e), Mono(1099)),
            Err(TakeoverRefusal::NotExpired { left, .. }) if left == Duration::from_millis(1)
        ));
        assert!(t.check_takeover(N, Some(&e), Mono(1100)).is_err());
        assert_eq!(t.expired(Mono(1101)).len(), 1);
        assert!(t.check_takeover(N, Some(&e), Mono(1101)).is_ok());
        let stale = Expected {
            holder: "node1".into(),
            seq: 0,
        };
        assert!(matches!(
            t.check_takeover(N, Some(&stale), Mono(5000)),
            Err(TakeoverRefusal::Changed { .. })
        ));
    }

    #[test]
    fn leader_start_extends_but_never_shortens() {
        let mut t = LeaseTable::default();
        t.apply(1, &acquire("node1"), Mono(10_000));
        assert_eq!(t.deadline(N), Some(Mono(11_000)));
        t.extend_all(Mono(5_000));
        assert_eq!(t.deadline(N), Some(Mono(11_000)));
        t.extend_all(Mono(20_000));
        assert_eq!(t.deadline(N), Some(Mono(21_000)));
    }

    #[test]
    fn restore_then_extend_gives_every_held_lease_a_deadline() {
        let mut t = LeaseTable::default();
        t.apply(1, &acquire("node1"), Mono(0));
        let mut other = LeaseTable {
            records: t.records.clone(),
            deadlines: BTreeMap::new(),
        };
        assert_eq!(other, t);
        other.extend_all(Mono(50));
        assert_eq!(other.deadline(N), Some(Mono(1050)));
    }

    #[test]
    fn absurd_ttl_saturates() {
        let mut t = LeaseTable::default();
        t.apply(
            1,
            &LeaseCommand::Acquire {
                name: N.into(),
                holder: "h".into(),
                incarnation: 1,
                ttl_ms: u64::MAX,
            },
            Mono(5),
        );
        assert_eq!(t.deadline(N), Some(Mono(u64::MAX)));
        t.extend_all(Mono(10));
        assert!(t.expired(Mono(u64::MAX - 1)).is_empty());
    }

    fn any_command() -> impl Strategy<Value = LeaseCommand> {
        let holder = prop::sample::select(vec!["node1", "node2", "crm:node3"]);
        let seq = 0u64..40;
        prop_oneof![
            holder.clone().prop_map(acquire),
            (holder.clone(), seq.clone()).prop_map(|(h, s)| renew(h, s)),
            (holder.clone(), seq.clone(), any::<bool>()).prop_map(|(h, s, u)| release(h, s, u)),
            (holder.clone(), prop::option::of((holder, seq))).prop_map(|(n, e)| takeover(n, e)),
        ]
    }

    proptest! {
        /// Replicas applying the same commands at different local times
        /// agree on the records, and a sequence only grows.
        #[test]
        fn apply_is_deterministic_and_sequences_grow(
            commands in prop::collection::vec(any_command(), 1..40),
            skew in 0u64..100_000,
        ) {
            let mut a = LeaseTable::default();
            let mut b = LeaseTable::default();
            let mut last_seq = 0;
            for (i, c) in commands.iter().enumerate() {
                let index = i as u64 + 1;
                let oa = a.apply(index, c, Mono(index * 10));
                let ob = b.apply(index, c, Mono(index * 10 + skew));
                prop_assert_eq!(oa, ob);
                prop_assert_eq!(&a, &b);
                if let Some(r) = a.record(N) {
                    prop_assert!(r.seq >= last_seq);
                    last_seq = r.seq;
                }
            }
        }
    }
}
