//! The simulated network: links cut between given nodes (one way or both
//! ways), and the seeded, bounded delay and loss of messages.
//!
//! A message from `a` to `b` can travel only if both nodes take part in
//! Raft (powered, daemon running, not paused), both have their network up
//! and the link `a -> b` is not cut. On a link that works, a message is
//! delayed by a draw from `0..=max_delay_ms` and lost with probability
//! `loss_per_mille`, but never twice in a row on the same link (the bound
//! that keeps loss from looking like a partition).

use std::collections::BTreeSet;

use crate::domain::NodeName;

use super::rng::SimRng;
use super::timing::SimTiming;

/// Largest `loss_per_mille` a scenario may set.
pub const MAX_LOSS_PER_MILLE: u32 = 200;

/// Per-run network parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetParams {
    /// Upper bound of one message's delay (ms).
    pub max_delay_ms: u64,
    /// Probability of losing one message, per mille.
    pub loss_per_mille: u32,
    /// Election timeouts drawn from the profile's range (otherwise always
    /// its upper bound), and the very first leader elected by a timeout
    /// too (otherwise it forms at once when a majority boots).
    pub random_elections: bool,
    /// Node order within a round shuffled every round.
    pub shuffle_order: bool,
}

impl NetParams {
    /// Seed 0: today's deterministic run (sorted node order, no delay, no
    /// loss, elections after the longest timeout). Any other seed: node
    /// order, delays, loss and election timeouts drawn from the seed.
    pub fn for_seed(seed: u64, timing: &SimTiming) -> NetParams {
        if seed == 0 {
            NetParams {
                max_delay_ms: 0,
                loss_per_mille: 0,
                random_elections: false,
                shuffle_order: false,
            }
        } else {
            NetParams {
                max_delay_ms: timing.heartbeat_ms() / 2,
                loss_per_mille: 10,
                random_elections: true,
                shuffle_order: true,
            }
        }
    }

    /// The largest `max_delay_ms` a scenario may set: a renewal (request,
    /// replication there and back, answer) must fit in half an attempt.
    pub fn max_delay_bound(timing: &SimTiming) -> u64 {
        lease::millis(timing.profile.renew_attempt_timeout) / 8
    }
}

/// Links and message fate.
#[derive(Debug, Clone)]
pub struct Network {
    /// Cut links `a -> b`.
    blocked: BTreeSet<(NodeName, NodeName)>,
    /// The parameters in force.
    pub params: NetParams,
    /// Links whose last message was lost.
    lost_last: BTreeSet<(NodeName, NodeName)>,
    /// Bumped whenever a link changes.
    generation: u64,
}

impl Network {
    /// A network without cut links.
    pub fn new(params: NetParams) -> Self {
        Network {
            blocked: BTreeSet::new(),
            params,
            lost_last: BTreeSet::new(),
            generation: 0,
        }
    }

    /// The cut links.
    pub fn blocked(&self) -> &BTreeSet<(NodeName, NodeName)> {
        &self.blocked
    }

    /// Changes whenever a link is cut or restored.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Cuts (`up == false`) or restores the link `from -> to`.
    pub fn set_link(&mut self, from: &NodeName, to: &NodeName, up: bool) {
        self.generation += 1;
        let key = (from.clone(), to.clone());
        if up {
            self.blocked.remove(&key);
        } else {
            self.blocked.insert(key);
        }
    }

    /// Restores every link.
    pub fn heal_all(&mut self) {
        self.generation += 1;
        self.blocked.clear();
    }

    /// The fate of one message on a working link: `None` if lost, else its
    /// delay (ms).
    pub fn hop(&mut self, rng: &mut SimRng, from: &NodeName, to: &NodeName) -> Option<u64> {
        if self.params.loss_per_mille > 0 {
            let key = (from.clone(), to.clone());
            if !self.lost_last.contains(&key) && rng.chance(self.params.loss_per_mille) {
                self.lost_last.insert(key);
                return None;
            }
            self.lost_last.remove(&key);
        }
        Some(self.delay(rng))
    }

    /// One message delay (ms), never lost (Raft retransmits its own
    /// traffic).
    pub fn delay(&mut self, rng: &mut SimRng) -> u64 {
        if self.params.max_delay_ms == 0 {
            0
        } else {
            rng.between(0, self.params.max_delay_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    #[test]
    fn links_are_directed_and_loss_is_never_twice_in_a_row() {
        let mut net = Network::new(NetParams {
            max_delay_ms: 5,
            loss_per_mille: 1000,
            random_elections: true,
            shuffle_order: true,
        });
        net.set_link(&n("a"), &n("b"), false);
        assert!(net.blocked().contains(&(n("a"), n("b"))));
        assert!(!net.blocked().contains(&(n("b"), n("a"))));
        let mut rng = SimRng::new(1);
        assert_eq!(net.hop(&mut rng, &n("a"), &n("c")), None);
        let d = net
            .hop(&mut rng, &n("a"), &n("c"))
            .expect("second one passes");
        assert!(d <= 5);
        assert_eq!(net.hop(&mut rng, &n("a"), &n("c")), None);
        net.heal_all();
        assert!(net.blocked().is_empty());
    }

    #[test]
    fn seed_zero_is_the_ideal_network() {
        let p = NetParams::for_seed(0, &SimTiming::DEFAULT);
        assert_eq!((p.max_delay_ms, p.loss_per_mille), (0, 0));
        assert!(!p.random_elections && !p.shuffle_order);
        for t in SimTiming::ALL {
            let p = NetParams::for_seed(9, &t);
            assert!(
                p.max_delay_ms <= NetParams::max_delay_bound(&t),
                "{}",
                t.name
            );
        }
    }
}
