//! Node liveness on the leader (sans-IO): which members count as online.
//!
//! The shell reports what it observes — progress counters of each node
//! (replication, lease renewals, LRM status writes) and direct proofs of
//! life — with the time; this decides. A node is online while it showed
//! life within `offline_after`. A counter's first value is no proof (a new
//! leader has seen nothing move yet), but every node gets that long of
//! grace from the tracker's start, so a new leader does not call the whole
//! cluster offline in its first round.

use std::collections::BTreeMap;

use crate::domain::NodeName;

#[derive(Debug, Clone, Default)]
struct Seen {
    counters: BTreeMap<&'static str, u64>,
    alive_at: Option<u64>,
}

/// Liveness of the members, judged on the leader's clock (ms).
#[derive(Debug, Clone)]
pub struct Liveness {
    offline_after_ms: u64,
    started_ms: u64,
    seen: BTreeMap<NodeName, Seen>,
}

impl Liveness {
    /// A tracker started at `now_ms`.
    pub fn new(offline_after_ms: u64, now_ms: u64) -> Self {
        Liveness {
            offline_after_ms,
            started_ms: now_ms,
            seen: BTreeMap::new(),
        }
    }

    /// A progress counter of `node` (`kind` names it: replication index,
    /// lease sequence, LRM status version) read at `now_ms`: a changed
    /// value proves the node alive.
    pub fn progress(&mut self, node: &NodeName, kind: &'static str, value: u64, now_ms: u64) {
        let seen = self.seen.entry(node.clone()).or_default();
        match seen.counters.insert(kind, value) {
            Some(old) if old != value => seen.alive_at = Some(now_ms),
            _ => {}
        }
    }

    /// Direct proof that `node` is alive at `now_ms` (the leader itself, a
    /// follower whose replication is caught up).
    pub fn alive(&mut self, node: &NodeName, now_ms: u64) {
        self.seen.entry(node.clone()).or_default().alive_at = Some(now_ms);
    }

    /// Whether `node` counts as online at `now_ms`.
    pub fn online(&self, node: &NodeName, now_ms: u64) -> bool {
        let last = self
            .seen
            .get(node)
            .and_then(|s| s.alive_at)
            .unwrap_or(self.started_ms);
        now_ms.saturating_sub(last) < self.offline_after_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    #[test]
    fn a_node_is_online_while_it_shows_progress() {
        let mut l = Liveness::new(1000, 0);
        assert!(l.online(&n("a"), 999), "grace after the start");
        assert!(!l.online(&n("a"), 1000));
        l.progress(&n("a"), "lease", 5, 1500);
        assert!(!l.online(&n("a"), 1500), "a first value is no proof");
        l.progress(&n("a"), "lease", 6, 1600);
        assert!(l.online(&n("a"), 2599));
        assert!(!l.online(&n("a"), 2600));
        l.progress(&n("a"), "lease", 6, 2700);
        assert!(
            !l.online(&n("a"), 2700),
            "an unchanged counter proves nothing"
        );
        l.alive(&n("a"), 2800);
        assert!(l.online(&n("a"), 2800));
    }
}
