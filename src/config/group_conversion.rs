//! Legacy groups -> node-affinity rules (spec sections 1.4 and 3.20).
//!
//! While groups.cfg has groups, the CRM converts them in memory every
//! round: [`rules_from_groups`] gives the rules (to be used together with
//! the rules of rules.cfg), [`effective_failback`] the failback flag of each
//! resource. [`migrate_groups`] is the persistent form of the same
//! conversion (rules to write, resources rewritten without `group`).

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{GroupConfig, NodeAffinityRule, ResourceConfig};

/// The id of the rule generated from group `group_id`.
pub fn group_rule_id(group_id: &str) -> String {
    format!("ha-group-{group_id}")
}

/// Converts every group used by at least one resource into a node-affinity
/// rule `ha-group-<G>`: resources = all resources with `group G`, nodes =
/// the group's nodes (missing priority = 0), strict = restricted, comment =
/// the group's comment or "Generated from HA group '<G>'.". Unused groups
/// produce no rule; references to unknown groups are ignored. Rules come
/// in the order of `groups`.
pub fn rules_from_groups(
    groups: &[GroupConfig],
    resources: &[ResourceConfig],
) -> Vec<NodeAffinityRule> {
    groups
        .iter()
        .filter_map(|group| {
            let members: BTreeSet<_> = resources
                .iter()
                .filter(|r| r.group.as_deref() == Some(group.id.as_str()))
                .map(|r| r.sid.clone())
                .collect();
            if members.is_empty() {
                return None;
            }
            let nodes: BTreeMap<_, _> = group
                .nodes
                .iter()
                .map(|member| (member.node.clone(), member.priority.unwrap_or(0)))
                .collect();
            Some(NodeAffinityRule {
                id: group_rule_id(&group.id),
                resources: members,
                nodes,
                strict: group.restricted,
                disable: false,
                comment: Some(
                    group
                        .comment
                        .clone()
                        .unwrap_or_else(|| format!("Generated from HA group '{}'.", group.id)),
                ),
            })
        })
        .collect()
}

/// The failback flag the CRM uses for `resource`: `!nofailback` of its
/// group when the group exists, else the resource's own `failback`.
pub fn effective_failback(resource: &ResourceConfig, groups: &[GroupConfig]) -> bool {
    resource
        .group
        .as_deref()
        .and_then(|id| groups.iter().find(|g| g.id == id))
        .map_or(resource.failback, |group| !group.nofailback)
}

/// The persistent migration (spec section 3.20): the rules to write to
/// rules.cfg, and the resources with `group` removed and `failback` set to
/// its effective value (so `failback 0` is written where the group had
/// `nofailback`). groups.cfg is then deleted by the caller.
pub fn migrate_groups(
    groups: &[GroupConfig],
    resources: &[ResourceConfig],
) -> (Vec<NodeAffinityRule>, Vec<ResourceConfig>) {
    let rules = rules_from_groups(groups, resources);
    let migrated = resources
        .iter()
        .map(|resource| {
            let mut resource = resource.clone();
            resource.failback = effective_failback(&resource, groups);
            resource.group = None;
            resource
        })
        .collect();
    (rules, migrated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_groups_cfg, parse_resources_cfg, write_rules_cfg};

    fn fixture() -> (Vec<GroupConfig>, Vec<ResourceConfig>) {
        let groups = parse_groups_cfg(
            "group: prefer\n\tnodes node1:2,node2\n\tnofailback 1\n\ngroup: pinned\n\tnodes node3\n\trestricted 1\n\tcomment db only\n\ngroup: unused\n\tnodes node1\n",
            "groups.cfg",
        )
        .unwrap();
        let resources = parse_resources_cfg(
            "vm: 101\n\tgroup prefer\n\nvm: 102\n\tgroup prefer\n\tfailback 1\n\nct: 200\n\tgroup pinned\n\tfailback 0\n\nvm: 103\n\tgroup missing\n\tfailback 0\n\nvm: 104\n",
            "resources.cfg",
        )
        .unwrap();
        (groups, resources)
    }

    #[test]
    fn converts_used_groups_only() {
        let (groups, resources) = fixture();
        let rules = rules_from_groups(&groups, &resources);
        assert_eq!(
            write_rules_cfg(&rules),
            "node-affinity: ha-group-prefer\n\tcomment Generated from HA group 'prefer'.\n\tnodes node1:2,node2\n\tresources vm:101,vm:102\n\nnode-affinity: ha-group-pinned\n\tcomment db only\n\tnodes node3\n\tresources ct:200\n\tstrict 1\n\n"
        );
    }

    #[test]
    fn failback_follows_the_group() {
        let (groups, resources) = fixture();
        let flags: Vec<(String, bool)> = resources
            .iter()
            .map(|r| (r.sid.to_string(), effective_failback(r, &groups)))
            .collect();
        assert_eq!(
            flags,
            [
                ("vm:101".to_string(), false),
                ("vm:102".to_string(), false),
                ("ct:200".to_string(), true),
                ("vm:103".to_string(), false),
                ("vm:104".to_string(), true),
            ]
        );
    }

    #[test]
    fn migration_drops_group_references() {
        let (groups, resources) = fixture();
        let (rules, migrated) = migrate_groups(&groups, &resources);
        assert_eq!(rules.len(), 2);
        assert!(migrated.iter().all(|r| r.group.is_none()));
        let failbacks: Vec<bool> = migrated.iter().map(|r| r.failback).collect();
        assert_eq!(failbacks, [false, false, true, false, true]);
    }
}
