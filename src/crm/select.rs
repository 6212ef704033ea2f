//! Node selection (spec section 3.10) with the `basic` scheduler (3.11.2):
//! node-affinity priorities, strict rules, failback, failed nodes and the
//! maintenance fallback. Resource affinity is not implemented yet.

use std::collections::BTreeMap;

use crate::domain::NodeName;

use super::status::ServiceRecord;

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

/// Usage of the online nodes: node -> number of services using it.
pub type Usage = BTreeMap<NodeName, usize>;

/// Picks a node for a service, or `None` if no node qualifies.
pub fn select_service_node(
    usage: &Usage,
    affinity: Option<&NodeAffinity>,
    failback: bool,
    sd: &ServiceRecord,
    preference: Preference,
) -> Option<NodeName> {
    let current = &sd.node;
    // Fast path, same answer as the full rules below: without a rule every
    // online node is allowed and preferred, so preference `none` keeps an
    // online current node unless a maintenance fallback elsewhere is online.
    if affinity.is_none()
        && preference == Preference::None
        && usage.contains_key(current)
        && sd
            .maintenance_node
            .as_ref()
            .is_none_or(|m| m == current || !usage.contains_key(m))
    {
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
                if !usage.contains_key(node) {
                    continue;
                }
                allowed.push(node);
                best = Some(best.map_or(*prio, |b: i64| b.max(*prio)));
            }
            let preferred = rule
                .nodes
                .iter()
                .filter(|(n, p)| usage.contains_key(*n) && Some(**p) == best)
                .map(|(n, _)| n)
                .collect();
            (allowed, preferred)
        }
    };
    if preferred.is_empty() {
        return None;
    }
    if preference == Preference::None && !failback && allowed.contains(&current) {
        return Some(current.clone());
    }
    if preference == Preference::TryNext {
        if let Some(failed) = &sd.failed_nodes {
            preferred.retain(|n| !failed.contains(n));
        }
    }
    if let Some(fallback) = &sd.maintenance_node {
        if preferred.contains(&fallback) {
            return Some(fallback.clone());
        }
    }
    if preference == Preference::None && preferred.contains(&current) {
        return Some(current.clone());
    }
    preferred.sort_by(|a, b| {
        let ua = usage.get(*a).copied().unwrap_or(0);
        let ub = usage.get(*b).copied().unwrap_or(0);
        ua.cmp(&ub).then_with(|| a.cmp(b))
    });
    if preference == Preference::TryNext {
        if let Some(pos) = preferred.iter().position(|n| *n == current) {
            if pos + 1 < preferred.len() {
                return Some(preferred[pos + 1].clone());
            }
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
        list.iter().map(|(k, v)| (n(k), *v)).collect()
    }

    #[test]
    fn stays_without_rules_and_picks_least_loaded_on_recovery() {
        let u = usage(&[("node1", 3), ("node2", 1), ("node3", 1)]);
        let sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        assert_eq!(
            select_service_node(&u, None, true, &sd, Preference::None),
            Some(n("node1"))
        );
        let sd = ServiceRecord::new(ServiceState::Recovery, n("node4"));
        assert_eq!(
            select_service_node(&u, None, true, &sd, Preference::BestScore),
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
            select_service_node(&u, Some(&rule), true, &sd, Preference::None),
            Some(n("node2"))
        );
        // no failback: stay on an allowed node
        assert_eq!(
            select_service_node(&u, Some(&rule), false, &sd, Preference::None),
            Some(n("node3"))
        );
        // strict: node1 is not allowed even without failback
        let sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        assert_eq!(
            select_service_node(&u, Some(&rule), false, &sd, Preference::None),
            Some(n("node2"))
        );
        // no listed node online: nothing
        let u2 = usage(&[("node1", 0)]);
        assert_eq!(
            select_service_node(&u2, Some(&rule), true, &sd, Preference::BestScore),
            None
        );
    }

    #[test]
    fn try_next_skips_failed_nodes() {
        let u = usage(&[("node1", 0), ("node2", 5), ("node3", 1)]);
        let mut sd = ServiceRecord::new(ServiceState::Started, n("node1"));
        sd.failed_nodes = Some(vec![n("node1")]);
        assert_eq!(
            select_service_node(&u, None, true, &sd, Preference::TryNext),
            Some(n("node3"))
        );
        sd.failed_nodes = Some(vec![n("node1"), n("node2"), n("node3")]);
        assert_eq!(
            select_service_node(&u, None, true, &sd, Preference::TryNext),
            None
        );
    }
}
