//! "Why is it here": the record of one node choice (a placement, a
//! recovery, a move the CRM made itself), built while the choice is made.
//!
//! [`select_traced`](super::select::select_traced) is the one selection
//! function; it reports each rule's effect to a [`SelectTrace`]. The
//! manager passes a [`DecisionTrace`] where it records a decision and
//! [`NoTrace`] everywhere else (every round, for every service: that path
//! must cost nothing), so the explanation is the selection's own account,
//! not a second model of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::NodeName;

/// Why a node was chosen for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionReason {
    /// A new service got its first node.
    Placement,
    /// The service's node was fenced.
    Recovery,
    /// The CRM moved a started service (failback, a rule, the end of a
    /// maintenance, a resource-affinity partner).
    Rebalance,
    /// `ha-rebalance-on-start` chose the node to start on.
    RebalanceOnStart,
    /// The service failed to start; the next node is tried.
    StartFailure,
    /// Automatic rebalancing (`ha-auto-rebalance`).
    AutoRebalance,
}

impl DecisionReason {
    /// A few words for a person.
    pub fn describe(self) -> &'static str {
        match self {
            DecisionReason::Placement => "placement of a new service",
            DecisionReason::Recovery => "recovery from a fenced node",
            DecisionReason::Rebalance => "moved by the CRM (rules, failback or maintenance)",
            DecisionReason::RebalanceOnStart => "rebalance on start",
            DecisionReason::StartFailure => "relocation after a failed start",
            DecisionReason::AutoRebalance => "automatic rebalancing",
        }
    }
}

/// One node as the decision saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// Its CRM node state (`online`, `unknown`, `fence`, `maintenance`,
    /// ...), or `offline` when the CRM has none.
    pub state: String,
    /// Why it could not be chosen, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// Its node-affinity priority, if a rule lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Its score: `basic` counts services on the node (fewer is better);
    /// `static`/`dynamic` give the TOPSIS closeness (higher is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Its place in the final order (1 = chosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

/// The record of one node choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The service.
    pub sid: String,
    /// What kind of choice it was.
    pub reason: DecisionReason,
    /// The scheduler mode (`basic`, `static`, `dynamic`).
    pub mode: String,
    /// The node the service was on (or the fenced node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The node chosen (`None`: no node qualified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
    /// Every member, in name order.
    pub candidates: Vec<Candidate>,
    /// The rule that decided, in a few words.
    pub summary: String,
}

impl Decision {
    /// The winner as the candidate table shows it: the candidate ranked
    /// first that no rule excluded.
    pub fn winner(&self) -> Option<String> {
        self.candidates
            .iter()
            .find(|c| c.rank == Some(1) && c.excluded.is_none())
            .map(|c| c.node.clone())
    }

    /// The decision as a few lines a person reads at a glance.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let chosen = self.chosen.as_deref().unwrap_or("no node");
        out.push_str(&format!(
            "{}: {} -> {chosen}\n",
            self.sid,
            self.reason.describe()
        ));
        if let Some(current) = &self.current {
            out.push_str(&format!("  was on: {current}\n"));
        }
        let scoring = match self.mode.as_str() {
            "basic" => "basic (score = services on the node, fewer wins)",
            "static" => {
                "static (score = TOPSIS closeness of configured CPU and memory, higher wins)"
            }
            "dynamic" => {
                "dynamic (score = TOPSIS closeness of measured CPU and memory, higher wins)"
            }
            other => other,
        };
        out.push_str(&format!("  scheduler: {scoring}\n"));
        let width = self
            .candidates
            .iter()
            .map(|c| c.node.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for c in &self.candidates {
            let mut line = format!("  {:<width$}  {:<11}", c.node, c.state);
            if let Some(p) = c.priority {
                line.push_str(&format!("  priority {p:<3}"));
            }
            if let Some(s) = c.score {
                if self.mode == "basic" {
                    line.push_str(&format!("  score {s:<6}"));
                } else {
                    line.push_str(&format!("  score {s:<6.3}"));
                }
            }
            match (&c.excluded, c.rank) {
                (Some(why), _) => line.push_str(&format!("  excluded: {why}")),
                (None, Some(1)) => line.push_str("  <- chosen"),
                (None, Some(r)) => line.push_str(&format!("  rank {r}")),
                (None, None) => {}
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!("  why: {}\n", self.summary));
        out
    }
}

/// What the selection reports while it chooses (see
/// [`select_traced`](super::select::select_traced)).
pub trait SelectTrace {
    /// Whether anything is recorded: the selection skips the work of
    /// scoring for a trace that records nothing.
    const RECORDS: bool;
    /// `node` cannot be chosen.
    fn exclude(&mut self, node: &NodeName, why: &str);
    /// A node-affinity rule lists `node` at `priority`.
    fn priority(&mut self, node: &NodeName, priority: i64);
    /// The remaining nodes in their final order, with scores; the first
    /// is chosen.
    fn ranked(&mut self, order: &[(&NodeName, Option<f64>)], why: &str);
    /// `node` is chosen without ranking.
    fn keep(&mut self, node: &NodeName, why: &str);
    /// No node qualifies.
    fn none(&mut self, why: &str);
}

/// Records nothing: the selection every round takes.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl SelectTrace for NoTrace {
    const RECORDS: bool = false;
    fn exclude(&mut self, _: &NodeName, _: &str) {}
    fn priority(&mut self, _: &NodeName, _: i64) {}
    fn ranked(&mut self, _: &[(&NodeName, Option<f64>)], _: &str) {}
    fn keep(&mut self, _: &NodeName, _: &str) {}
    fn none(&mut self, _: &str) {}
}

/// Records one selection, to become a [`Decision`].
#[derive(Debug, Default, Clone)]
pub struct DecisionTrace {
    excluded: BTreeMap<NodeName, String>,
    priority: BTreeMap<NodeName, i64>,
    rank: BTreeMap<NodeName, (u32, Option<f64>)>,
    summary: String,
}

impl SelectTrace for DecisionTrace {
    const RECORDS: bool = true;

    fn exclude(&mut self, node: &NodeName, why: &str) {
        // The first rule that excluded a node is the one to show.
        self.excluded
            .entry(node.clone())
            .or_insert_with(|| why.to_string());
    }

    fn priority(&mut self, node: &NodeName, priority: i64) {
        self.priority.insert(node.clone(), priority);
    }

    fn ranked(&mut self, order: &[(&NodeName, Option<f64>)], why: &str) {
        for (i, (node, score)) in order.iter().enumerate() {
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            self.rank.insert((*node).clone(), (rank, *score));
        }
        self.summary = why.to_string();
    }

    fn keep(&mut self, node: &NodeName, why: &str) {
        self.rank.insert(node.clone(), (1, None));
        self.summary = why.to_string();
    }

    fn none(&mut self, why: &str) {
        self.rank.clear();
        self.summary = why.to_string();
    }
}

impl DecisionTrace {
    /// The decision over `members` (node -> its CRM state; a node the
    /// selection never saw is excluded by that state, since only online
    /// nodes are scheduled).
    #[allow(clippy::too_many_arguments)]
    pub fn into_decision(
        self,
        sid: &str,
        reason: DecisionReason,
        mode: &str,
        current: Option<&NodeName>,
        chosen: Option<&NodeName>,
        members: &BTreeMap<NodeName, String>,
        schedulable: impl Fn(&NodeName) -> bool,
    ) -> Decision {
        let candidates = members
            .iter()
            .map(|(node, state)| {
                let excluded = if !schedulable(node) {
                    Some(unschedulable_reason(state))
                } else {
                    self.excluded.get(node).cloned()
                };
                let (rank, score) = match self.rank.get(node) {
                    Some((r, s)) if excluded.is_none() => (Some(*r), *s),
                    _ => (None, None),
                };
                Candidate {
                    node: node.to_string(),
                    state: state.clone(),
                    excluded,
                    priority: self.priority.get(node).copied(),
                    score,
                    rank,
                }
            })
            .collect();
        Decision {
            sid: sid.to_string(),
            reason,
            mode: mode.to_string(),
            current: current.map(ToString::to_string),
            chosen: chosen.map(ToString::to_string),
            candidates,
            summary: self.summary,
        }
    }
}

/// Why a node in `state` takes no service.
fn unschedulable_reason(state: &str) -> String {
    match state {
        "fence" => "node is being fenced".into(),
        "unknown" => "node is not heard from (unknown)".into(),
        "maintenance" => "node is in maintenance".into(),
        "gone" => "node left the cluster".into(),
        "online" => "node cannot protect itself (watchdog problem) or is not schedulable".into(),
        other => format!("node is {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    #[test]
    fn winner_and_text_follow_the_ranking() {
        let mut t = DecisionTrace::default();
        t.exclude(&n("node2"), "a negative resource-affinity partner uses it");
        t.ranked(
            &[(&n("node3"), Some(1.0)), (&n("node4"), Some(2.0))],
            "fewest services",
        );
        let members: BTreeMap<NodeName, String> = [
            ("node1", "fence"),
            ("node2", "online"),
            ("node3", "online"),
            ("node4", "online"),
        ]
        .into_iter()
        .map(|(a, b)| (n(a), b.to_string()))
        .collect();
        let d = t.into_decision(
            "vm:100",
            DecisionReason::Recovery,
            "basic",
            Some(&n("node1")),
            Some(&n("node3")),
            &members,
            |node| node.as_str() != "node1",
        );
        assert_eq!(d.winner().as_deref(), Some("node3"));
        let text = d.text();
        assert!(
            text.contains("vm:100: recovery from a fenced node -> node3"),
            "{text}"
        );
        assert!(
            text.contains("node1  fence        excluded: node is being fenced"),
            "{text}"
        );
        assert!(text.contains("excluded: a negative resource-affinity partner uses it"));
        assert!(
            text.contains("node3  online       score 1       <- chosen"),
            "{text}"
        );
        assert!(
            text.contains("node4  online       score 2       rank 2"),
            "{text}"
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"reason\":\"recovery\""), "{json}");
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
    }
}
