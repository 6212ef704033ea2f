//! Node selection (spec section 3.10): node-affinity priorities, strict
//! rules, failback, failed nodes, the maintenance fallback and resource
//! affinity (where the partners are); the candidates are ranked by the
//! usage model's scheduler ([`super::usage`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{NodeName, Sid};

use super::explain::{NoTrace, SelectTrace};
use super::status::{ServiceRecord, ServiceState};
pub use super::usage::{Load, Usage};
use crate::domain::CrsMode;

/// The compiled resource affinity: SID -> positive and negative partners.
pub use crate::config::CompiledResourceAffinity as ResourceAffinity;

/// Where a service's partners are (spec 3.10 step 3), on online nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerNodes {
    /// Node -> number of positive partners using it (a moving partner
    /// counts only on its target).
    pub together: BTreeMap<NodeName, usize>,
    /// Nodes used by a negative partner (current and target nodes).
    pub separate: BTreeSet<NodeName>,
}

impl PartnerNodes {
    /// No partner uses an online node.
    pub fn is_empty(&self) -> bool {
        self.together.is_empty() && self.separate.is_empty()
    }

    /// The service may stay on `node` as far as its partners go: a
    /// positive partner is there, or no negative one.
    pub fn allows(&self, node: &NodeName) -> bool {
        self.together.get(node).is_some_and(|n| *n > 0) || !self.separate.contains(node)
    }

    /// Collects the nodes the partners of `sid` use, from their records.
    /// `online` tells which nodes count.
    pub fn of(
        affinity: &ResourceAffinity,
        sid: &Sid,
        records: &BTreeMap<Sid, ServiceRecord>,
        online: impl Fn(&NodeName) -> bool,
    ) -> Self {
        let mut view = PartnerNodes::default();
        let empty = BTreeSet::new();
        for partner in affinity.positive.get(sid).unwrap_or(&empty) {
            let Some(sd) = records.get(partner) else {
                continue;
            };
            let (current, target) = used_nodes(sd, &online);
            if let Some(node) = target.or(current) {
                *view.together.entry(node.clone()).or_default() += 1;
            }
        }
        for partner in affinity.negative.get(sid).unwrap_or(&empty) {
            let Some(sd) = records.get(partner) else {
                continue;
            };
            let (current, target) = used_nodes(sd, &online);
            view.separate
                .extend(current.into_iter().chain(target).cloned());
        }
        view
    }
}

/// The current and target node a service uses for resource affinity
/// (spec 3.10 step 3): stopped and starting services use none.
pub fn used_nodes(
    sd: &ServiceRecord,
    online: impl Fn(&NodeName) -> bool,
) -> (Option<&NodeName>, Option<&NodeName>) {
    use ServiceState as S;
    let current = match sd.state {
        S::Started
        | S::RequestStop
        | S::Fence
        | S::Freeze
        | S::Error
        | S::Recovery
        | S::Migrate
        | S::Relocate => Some(&sd.node).filter(|n| online(n)),
        S::Stopped | S::RequestStart | S::RequestStartBalance => None,
    };
    let target = match sd.state {
        S::Migrate | S::Relocate | S::RequestStartBalance => {
            sd.target.as_ref().filter(|n| online(n))
        }
        _ => None,
    };
    (current, target)
}

/// The compiled node affinity of one resource (see
/// `config::compile::CompiledNodeAffinity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAffinity {
    /// Node -> priority; non-strict rules list every other node at -1.
    pub nodes: BTreeMap<NodeName, i64>,
    /// Only the listed nodes are allowed.
    pub strict: bool,
}

/// How to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Stay on the current node if it is allowed.
    None,
    /// The least loaded preferred node.
    BestScore,
    /// The next best node not yet tried (start-failure relocation).
    TryNext,
}

/// Picks a node for a service, or `None` if no node qualifies. `partners`
/// is where its resource-affinity partners are ([`PartnerNodes::of`]);
/// `load` what the service adds to a node (`None`: its statistics are
/// missing, every node scores the same).
#[allow(clippy::too_many_arguments)]
pub fn select_service_node(
    usage: &Usage,
    load: Option<&Load>,
    affinity: Option<&NodeAffinity>,
    partners: &PartnerNodes,
    failback: bool,
    sd: &ServiceRecord,
    preference: Preference,
) -> Option<NodeName> {
    select_traced(
        usage,
        load,
        affinity,
        partners,
        failback,
        sd,
        preference,
        &mut NoTrace,
    )
}

/// [`select_service_node`], reporting each rule's effect to `trace` (the
/// one selection: "explain" shows what this function did).
#[allow(clippy::too_many_arguments)]
pub fn select_traced<T: SelectTrace>(
    usage: &Usage,
    load: Option<&Load>,
    affinity: Option<&NodeAffinity>,
    partners: &PartnerNodes,
    failback: bool,
    sd: &ServiceRecord,
    preference: Preference,
    trace: &mut T,
) -> Option<NodeName> {
    let current = &sd.node;
    // Fast path, same answer as the full rules below: without a rule every
    // online node is allowed and preferred, so preference `none` keeps an
    // online current node unless a maintenance fallback elsewhere is online.
    if affinity.is_none()
        && partners.is_empty()
        && preference == Preference::None
        && usage.contains_key(current)
        && sd
            .maintenance_node
            .as_ref()
            .is_none_or(|m| m == current || !usage.contains_key(m))
    {
        trace.keep(current, "no rule applies and its node is online: it stays");
        return Some(current.clone());
    }
    let (allowed, mut preferred): (Vec<&NodeName>, Vec<&NodeName>) = match affinity {
        None => {
            let all: Vec<&NodeName> = usage.keys().collect();
            (all.clone(), all)
        }
        Some(rule) => {
            let mut allowed = Vec::new();
            let mut best: Option<i64> = None;
            for (node, prio) in &rule.nodes {
                trace.priority(node, *prio);
                if !usage.contains_key(node) {
                    continue;
                }
                allowed.push(node);
                best = Some(best.map_or(*prio, |b: i64| b.max(*prio)));
            }
            let preferred = rule
                .nodes
                .iter()
                .filter(|(n, p)| usage.contains_key(n) && Some(**p) == best)
                .map(|(n, _)| n)
                .collect();
            if T::RECORDS {
                for node in usage.keys() {
                    match rule.nodes.get(node) {
                        None if rule.strict => {
                            trace.exclude(node, "not in its strict node-affinity rule")
                        }
                        None => trace.exclude(node, "not in its node-affinity rule"),
                        Some(p) if Some(*p) != best => trace.exclude(
                            node,
                            &format!(
                                "node-affinity priority {p} is below the best online ({})",
                                best.unwrap_or(*p)
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
            (allowed, preferred)
        }
    };
    if preferred.is_empty() {
        trace.none("no node its rules allow is online");
        return None;
    }
    if preference == Preference::None
        && !failback
        && allowed.contains(&current)
        && partners.allows(current)
    {
        trace.keep(
            current,
            "failback is off and its node is still allowed: it stays",
        );
        return Some(current.clone());
    }
    if preference == Preference::TryNext {
        if let Some(failed) = &sd.failed_nodes {
            if T::RECORDS {
                for n in preferred.iter().filter(|n| failed.contains(n)) {
                    trace.exclude(n, "it failed to start there already");
                }
            }
            preferred.retain(|n| !failed.contains(n));
        }
    }
    if T::RECORDS {
        for n in preferred.iter().filter(|n| partners.separate.contains(*n)) {
            trace.exclude(n, "a negative resource-affinity partner uses it");
        }
    }
    preferred.retain(|n| !partners.separate.contains(*n));
    // Positive affinity: only the preferred node most partners use.
    let mut best: Option<(&NodeName, usize)> = None;
    for (node, count) in &partners.together {
        if *count > 0 && preferred.contains(&node) && best.is_none_or(|(_, c)| *count > c) {
            best = Some((node, *count));
        }
    }
    if let Some((node, _)) = best {
        if T::RECORDS {
            for n in preferred.iter().filter(|n| **n != node) {
                trace.exclude(
                    n,
                    &format!("its positive resource-affinity partners are on {node}"),
                );
            }
        }
        preferred.retain(|n| *n == node);
    }
    if preferred.is_empty() {
        trace.none("every allowed node is excluded by a failed start or a resource-affinity rule");
        return None;
    }
    if let Some(fallback) = &sd.maintenance_node {
        if preferred.contains(&fallback) {
            trace.keep(
                fallback,
                "it returns to its node, which came back from maintenance",
            );
            return Some(fallback.clone());
        }
    }
    if preference == Preference::None && preferred.contains(&current) {
        trace.keep(current, "its node is among the preferred ones: it stays");
        return Some(current.clone());
    }
    usage.order(&mut preferred, load);
    if preference == Preference::TryNext {
        if let Some(pos) = preferred.iter().position(|n| *n == current) {
            if pos + 1 < preferred.len() {
                if T::RECORDS {
                    // The order tried: the nodes after the one that failed,
                    // then the rest again.
                    let rotated: Vec<&NodeName> = preferred[pos + 1..]
                        .iter()
                        .chain(&preferred[..=pos])
                        .copied()
                        .collect();
                    trace.ranked(
                        &usage.scored(&rotated, load),
                        "the next node after the one where the start failed",
                    );
                }
                return Some(preferred[pos + 1].clone());
            }
        }
    }
    if T::RECORDS {
        let why = match (load, usage.mode()) {
            (None, _) => "its statistics are missing: the first allowed node by name",
            (Some(_), CrsMode::Basic) => "the allowed node with the fewest services",
            (Some(_), _) => "the allowed node with the best TOPSIS score",
        };
        let scored = usage.scored(&preferred, load);
        let tie = scored.len() > 1 && load.is_some() && scored[0].1 == scored[1].1;
        if tie {
            trace.ranked(&scored, &format!("{why} (a tie, broken by node name)"));
        } else {
            trace.ranked(&scored, why);
        }
    }
    preferred.first().map(|n| (*n).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::ServiceState;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn usage(list: &[(&str, usize)]) -> Usage {
        Usage::from_counts(list.iter().map(|(k, v)| (n(k), *v)))
    }

    const BASIC: Option<&Load> = Some(&Load {
        cpu: 0.0,
        mem: 0.0,
        zero_cpu_is_whole_node: false,
    });

    #[test]
    fn stays_without_rules_and_picks_least_loaded_on_recovery() {
        let u = usage(&[("node1", 3), ("node2", 1), ("node3", 1)]);
        let sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                None,
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::None
            ),
            Some(n("node1"))
        );
        let sd = ServiceRecord::new(ServiceState::Recovery, n("node4"));
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                None,
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::BestScore
            ),
            Some(n("node2"))
        );
    }

    #[test]
    fn priorities_failback_and_strict() {
        let u = usage(&[("node1", 0), ("node2", 0), ("node3", 0)]);
        let mut rule = NodeAffinity::default();
        rule.nodes.insert(n("node2"), 2);
        rule.nodes.insert(n("node3"), 1);
        rule.strict = true;
        let sd = ServiceRecord::new(ServiceState::Started, n("node3"));
        // failback: move to the highest priority node
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                Some(&rule),
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::None
            ),
            Some(n("node2"))
        );
        // no failback: stay on an allowed node
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                Some(&rule),
                &PartnerNodes::default(),
                false,
                &sd,
                Preference::None
            ),
            Some(n("node3"))
        );
        // strict: node1 is not allowed even without failback
        let sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                Some(&rule),
                &PartnerNodes::default(),
                false,
                &sd,
                Preference::None
            ),
            Some(n("node2"))
        );
        // no listed node online: nothing
        let u2 = usage(&[("node1", 0)]);
        assert_eq!(
            select_service_node(
                &u2,
                BASIC,
                Some(&rule),
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::BestScore
            ),
            None
        );
    }

    #[test]
    fn try_next_skips_failed_nodes() {
        let u = usage(&[("node1", 0), ("node2", 5), ("node3", 1)]);
        let mut sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        sd.failed_nodes = Some(vec![n("node1")]);
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                None,
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::TryNext
            ),
            Some(n("node3"))
        );
        sd.failed_nodes = Some(vec![n("node1"), n("node2"), n("node3")]);
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                None,
                &PartnerNodes::default(),
                true,
                &sd,
                Preference::TryNext
            ),
            None
        );
    }

    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    fn record(state: ServiceState, node: &str, target: Option<&str>) -> ServiceRecord {
        let mut sd = ServiceRecord::new(state, n(node));
        sd.target = target.map(n);
        sd
    }

    #[test]
    fn partner_states_and_targets() {
        let mut aff = ResourceAffinity::default();
        aff.positive
            .insert(sid("vm:1"), [sid("vm:2"), sid("vm:3"), sid("vm:4")].into());
        aff.negative
            .insert(sid("vm:1"), [sid("vm:5"), sid("vm:6"), sid("vm:7")].into());
        let mut records = BTreeMap::new();
        records.insert(sid("vm:2"), record(ServiceState::Started, "node1", None));
        // moving: only the target counts for positive affinity
        records.insert(
            sid("vm:3"),
            record(ServiceState::Migrate, "node1", Some("node2")),
        );
        // stopped partners use no node
        records.insert(sid("vm:4"), record(ServiceState::Stopped, "node3", None));
        // a migrating negative partner occupies its source and its target
        records.insert(
            sid("vm:5"),
            record(ServiceState::Relocate, "node2", Some("node3")),
        );
        records.insert(
            sid("vm:6"),
            record(ServiceState::RequestStart, "node1", None),
        );
        // offline nodes do not count
        records.insert(sid("vm:7"), record(ServiceState::Fence, "node4", None));
        let online = |x: &NodeName| x.as_str() != "node4";
        let view = PartnerNodes::of(&aff, &sid("vm:1"), &records, online);
        let together: Vec<(String, usize)> = view
            .together
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(
            together,
            [("node1".to_string(), 1), ("node2".to_string(), 1)]
        );
        let separate: Vec<String> = view.separate.iter().map(|k| k.to_string()).collect();
        assert_eq!(separate, ["node2", "node3"]);
    }

    #[test]
    fn negative_partners_exclude_and_positive_partners_attract() {
        let u = usage(&[("node1", 0), ("node2", 5), ("node3", 1)]);
        let sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        // a negative partner on the current node: move to the least loaded other node
        let mut apart = PartnerNodes::default();
        apart.separate.insert(n("node1"));
        assert_eq!(
            select_service_node(&u, BASIC, None, &apart, true, &sd, Preference::None),
            Some(n("node3"))
        );
        // failback off does not keep it there either
        assert_eq!(
            select_service_node(&u, BASIC, None, &apart, false, &sd, Preference::None),
            Some(n("node3"))
        );
        // the most partners win over load; ties go to the first name
        let mut together = PartnerNodes::default();
        together.together.insert(n("node2"), 2);
        together.together.insert(n("node3"), 2);
        assert_eq!(
            select_service_node(&u, BASIC, None, &together, true, &sd, Preference::None),
            Some(n("node2"))
        );
        // a positive partner on the current node allows staying with failback off
        let mut both = apart.clone();
        both.together.insert(n("node1"), 1);
        assert_eq!(
            select_service_node(&u, BASIC, None, &both, false, &sd, Preference::None),
            Some(n("node1"))
        );
        // no compliant node: none
        let mut everywhere = PartnerNodes::default();
        everywhere
            .separate
            .extend([n("node1"), n("node2"), n("node3")]);
        assert_eq!(
            select_service_node(
                &u,
                BASIC,
                None,
                &everywhere,
                true,
                &sd,
                Preference::BestScore
            ),
            None
        );
    }
}
