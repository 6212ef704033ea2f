//! What the simulator watches for (design.md section 9):
//!
//! Safety violations (`violations`):
//! - a service running on two nodes at once;
//! - a service started on a node while it still runs on another powered
//!   node (started elsewhere before its old node was fenced or confirmed
//!   stopped; checked in `resources.rs` when the start happens);
//! - an agent lease taken over while its holder was still powered with
//!   its LRM watchdog armed, a reset still pending, or services running.
//!
//! Liveness violations (`liveness_violations`): a node reset by its
//! watchdog although it was in good standing without a break for the
//! whole [`SimTiming::liveness_window_ms`](super::timing::SimTiming::liveness_window_ms)
//! before the reset. A node is in good standing while its daemon runs
//! (powered, not stopped, not paused), its network is up, it exchanges
//! messages with the Raft leader (or, while an election runs, with a
//! majority of the members), its local store is readable (no `cfs rw
//! fail`: Proxmox's LRM ends itself with its watchdog armed when it
//! cannot read the manager status in maintenance, spec 4.1), and its
//! watchdog-mux was neither restarted with a client armed nor hung. A reset of the pve CRM watchdog while
//! CRM rounds were being skipped is not counted (the CRM daemon was not
//! running its loop, as Proxmox's would not).

use std::collections::BTreeMap;

use crate::domain::{NodeName, Sid};

use super::mux::{MuxFailure, WatchdogOwner};
use super::world::World;

impl World {
    /// Updates every node's good standing (see the module documentation).
    pub(crate) fn refresh_standing(&mut self) {
        let topo = self.topology();
        let now = self.now;
        let World { nodes, cluster, .. } = self;
        for (name, n) in nodes.iter_mut() {
            let mux_fault = n.mux.failure().is_some_and(|(_, why)| why.is_mux_fault());
            let ok = n.running_daemon()
                && n.network
                && n.cfs_rw
                && n.mux.answers()
                && !mux_fault
                && cluster.quorate(&topo, name);
            if !ok {
                n.standing_since = None;
            } else if n.standing_since.is_none() {
                n.standing_since = Some(now);
            }
        }
    }

    /// Records a liveness violation if `node`, about to be reset at `at`,
    /// was in good standing for the whole liveness window.
    pub(crate) fn check_liveness_at_reset(&mut self, node: &NodeName, at: u64, why: MuxFailure) {
        let Some(since) = self.nodes.get(node).and_then(|n| n.standing_since) else {
            return;
        };
        if at.saturating_sub(since) < self.timing.liveness_window_ms()
            || self.crm_skip_excuses(why, at)
        {
            return;
        }
        let cause = match why {
            MuxFailure::Starved(WatchdogOwner::Lrm) => "the LRM watchdog was not fed",
            MuxFailure::Starved(WatchdogOwner::Crm) => "the CRM watchdog was not fed",
            MuxFailure::Disconnected(WatchdogOwner::Lrm) => "the LRM left its watchdog armed",
            MuxFailure::Disconnected(WatchdogOwner::Crm) => "the CRM left its watchdog armed",
            MuxFailure::Restarted => "watchdog-mux restarted",
            MuxFailure::Hung => "watchdog-mux hung",
        };
        let t = self.fmt_time(at);
        let s = self.fmt_time(since);
        self.liveness_violations.push(format!(
            "{}: node '{node}' reset by its watchdog ({cause}) although it reached the quorum without a break since {}",
            t.trim(),
            s.trim()
        ));
    }

    /// After a fencing take-over of `target`'s lease (`name`): the holder
    /// must be gone, or at least its watchdog must have fired.
    pub(crate) fn check_takeover_safe(&mut self, name: &str, target: &NodeName) {
        let unsafe_holder = self.nodes.get(target).is_some_and(|n| {
            n.power
                && (n.mux.armed(WatchdogOwner::Lrm)
                    || n.mux.failure().is_some()
                    || !n.running.is_empty())
        });
        if unsafe_holder {
            self.violation(format!(
                "lease '{name}' taken over while the watchdog of '{target}' had not fired"
            ));
        }
    }

    /// Records a violation for every service running on two nodes.
    pub fn check_double_running(&mut self) {
        let mut seen: BTreeMap<&Sid, Vec<&NodeName>> = BTreeMap::new();
        for (name, n) in &self.nodes {
            for sid in &n.running {
                seen.entry(sid).or_default().push(name);
            }
        }
        let bad: Vec<String> = seen
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(sid, v)| {
                let list: Vec<&str> = v.iter().map(|n| n.as_str()).collect();
                format!(
                    "service '{sid}' running on two nodes at once ({})",
                    list.join(", ")
                )
            })
            .collect();
        for b in bad {
            if !self.violations.iter().any(|v| v.ends_with(&b)) {
                self.violation(b);
            }
        }
    }
}
