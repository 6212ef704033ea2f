//! Property tests: `parse(write(x)) == x` for resources, groups and rules,
//! and no parser panics on arbitrary text.

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;

use super::*;
use crate::domain::{
    Affinity, GroupConfig, GroupNode, NodeAffinityRule, NodeName, RequestedState,
    ResourceAffinityRule, ResourceConfig, Rule, Sid,
};

fn node_name() -> impl Strategy<Value = NodeName> {
    "[a-z][a-z0-9-]{0,4}[a-z0-9]".prop_map(|s| s.parse().unwrap())
}

fn config_id() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{1,8}"
}

/// Text that survives a verbatim value: one line, no edge whitespace.
fn plain_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9#:%é✓]([a-zA-Z0-9 #:%é✓\t]{0,20}[a-zA-Z0-9#:%é✓])?"
}

fn state() -> impl Strategy<Value = RequestedState> {
    prop_oneof![
        Just(RequestedState::Started),
        Just(RequestedState::Stopped),
        Just(RequestedState::Disabled),
        Just(RequestedState::Ignored),
    ]
}

fn resource_sid() -> impl Strategy<Value = Sid> {
    prop_oneof![
        ("(vm|ct|fa)", "[1-9][0-9]{1,5}"),
        ("(exec|systemd|ocf|foo)", "[a-z0-9:_.@+-]{1,8}"),
    ]
    .prop_map(|(kind, name)| Sid::new(&kind, &name).unwrap())
}

fn resource() -> impl Strategy<Value = ResourceConfig> {
    (
        resource_sid(),
        state(),
        any::<bool>(),
        0u32..=crate::domain::resource::MAX_RESTART_LIMIT,
        0u32..5,
        option::of(config_id()),
        option::of(plain_text()),
        btree_map("[a-z_][a-z0-9_.-]{0,6}", plain_text(), 0..3),
        option::of(0u32..=8_192_000),
        option::of(0u64..=crate::domain::resource::MAXMEM_LIMIT_MIB),
    )
        .prop_map(
            |(
                sid,
                state,
                failback,
                max_restart,
                max_relocate,
                group,
                comment,
                params,
                maxcpu,
                maxmem,
            )| {
                let agent = resources::AGENT_PARAM_TYPES.contains(&sid.kind());
                let params: BTreeMap<String, String> = params
                    .into_iter()
                    .filter(|(k, _)| agent && !resources::RESOURCE_KEYS.contains(&k.as_str()))
                    .collect();
                ResourceConfig {
                    sid,
                    state,
                    failback,
                    max_restart,
                    max_relocate,
                    group,
                    comment,
                    params,
                    maxcpu: maxcpu.and_then(|m| {
                        crate::domain::resource::CpuLimit::from_cores(f64::from(m) / 1000.0)
                    }),
                    maxmem,
                }
            },
        )
}

fn group() -> impl Strategy<Value = GroupConfig> {
    (
        config_id(),
        btree_map(node_name(), option::of(any::<u32>()), 1..5),
        any::<bool>(),
        any::<bool>(),
        option::of(plain_text()),
        any::<u64>(),
    )
        .prop_map(|(id, nodes, restricted, nofailback, comment, shuffle)| {
            let mut nodes: Vec<GroupNode> = nodes
                .into_iter()
                .map(|(node, priority)| GroupNode { node, priority })
                .collect();
            // Written order is kept, so it need not be sorted.
            let len = nodes.len();
            nodes.rotate_left((shuffle % len as u64) as usize);
            GroupConfig {
                id,
                nodes,
                restricted,
                nofailback,
                comment,
            }
        })
}

fn rule() -> impl Strategy<Value = NodeAffinityRule> {
    (
        config_id(),
        btree_set("[a-z]{1,4}:[a-z0-9:@]{1,5}", 1..5),
        btree_map(node_name(), 0u32..4, 1..5),
        any::<bool>(),
        any::<bool>(),
        option::of(any::<String>().prop_filter("no edge spaces", |s| {
            !s.is_empty() && !s.starts_with(' ') && !s.ends_with(' ')
        })),
    )
        .prop_map(
            |(id, resources, nodes, strict, disable, comment)| NodeAffinityRule {
                id,
                resources: resources.iter().map(|s| s.parse().unwrap()).collect(),
                nodes,
                strict,
                disable,
                comment,
            },
        )
}

fn any_rule() -> impl Strategy<Value = Rule> {
    let resource_affinity = (
        config_id(),
        btree_set("[a-z]{1,4}:[a-z0-9:@]{1,5}", 1..5),
        any::<bool>(),
        any::<bool>(),
        option::of(any::<String>().prop_filter("no edge spaces", |s| {
            !s.is_empty() && !s.starts_with(' ') && !s.ends_with(' ')
        })),
    )
        .prop_map(|(id, resources, positive, disable, comment)| {
            Rule::ResourceAffinity(ResourceAffinityRule {
                id,
                resources: resources.iter().map(|s| s.parse().unwrap()).collect(),
                affinity: if positive {
                    Affinity::Positive
                } else {
                    Affinity::Negative
                },
                disable,
                comment,
            })
        });
    prop_oneof![rule().prop_map(Rule::NodeAffinity), resource_affinity]
}

fn dedup_by<T, K: Ord>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

proptest! {
    #[test]
    fn resources_round_trip(items in vec(resource(), 0..6)) {
        let items = dedup_by(items, |r| r.sid.clone());
        let text = write_resources_cfg(&items);
        let parsed = parse_resources_cfg(&text, "resources.cfg");
        prop_assert_eq!(parsed.as_ref(), Ok(&items), "text:\n{}", text);
    }

    #[test]
    fn groups_round_trip(items in vec(group(), 0..5)) {
        let items = dedup_by(items, |g| g.id.clone());
        let text = write_groups_cfg(&items);
        let parsed = parse_groups_cfg(&text, "groups.cfg");
        prop_assert_eq!(parsed.as_ref(), Ok(&items), "text:\n{}", text);
    }

    #[test]
    fn rules_round_trip(items in vec(rule(), 0..5)) {
        let items = dedup_by(items, |r| r.id.clone());
        let text = write_rules_cfg(&items);
        let parsed = parse_rules_cfg(&text, "rules.cfg");
        prop_assert_eq!(parsed.as_ref(), Ok(&items), "text:\n{}", text);
    }

    #[test]
    fn mixed_rules_round_trip(items in vec(any_rule(), 0..6)) {
        let items = dedup_by(items, |r| r.id().to_string());
        let text = write_rules(&items);
        let parsed = parse_rules(&text, "rules.cfg");
        prop_assert_eq!(parsed.as_ref(), Ok(&items), "text:\n{}", text);
    }

    #[test]
    fn parsers_never_panic(text in "(vm: 10[0-9]|group: g1|(vm|group|node-affinity|exec|resource-affinity): [^\n ]{1,4}|node-affinity: r1|\t[a-z_]{1,12}( [a-z0-9:%,;]{0,8})?| +|#x|ha: [a-z_=,]{0,20}|\\{\"[a-z_]{1,12}\": [0-9]\\}|.{0,10}|\n){0,30}") {
        let _ = parse_resources_cfg(&text, "r");
        let _ = parse_groups_cfg(&text, "g");
        let _ = parse_rules_cfg(&text, "x");
        let _ = parse_rules(&text, "x");
        let _ = parse_datacenter_cfg(&text, "d");
        let _ = parse_datacenter_json(&text, "j");
    }
}

/// Throughput probe, not a limit: run with
/// `cargo test -p ha-manager --release --lib config::round_trip_tests::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_parse_and_write_10k_resources() {
    use std::time::Instant;
    let resources: Vec<ResourceConfig> = (0..10_000)
        .map(|i| {
            let mut r =
                ResourceConfig::with_defaults(Sid::new("vm", &(100 + i).to_string()).unwrap());
            r.max_relocate = 2;
            r.comment = Some(format!("guest {i}"));
            r
        })
        .collect();
    let rounds = 20;
    let start = Instant::now();
    let mut text = String::new();
    for _ in 0..rounds {
        text = write_resources_cfg(&resources);
    }
    let write = start.elapsed() / rounds;
    let start = Instant::now();
    for _ in 0..rounds {
        assert_eq!(parse_resources_cfg(&text, "r").unwrap().len(), 10_000);
    }
    let parse = start.elapsed() / rounds;
    let rules: Vec<NodeAffinityRule> = (0..1_000)
        .map(|i| NodeAffinityRule {
            id: format!("rule{i}"),
            resources: (0..10)
                .map(|j| Sid::new("vm", &(100 + i * 10 + j).to_string()).unwrap())
                .collect(),
            nodes: (0..3)
                .map(|n| (format!("node{}", (i + n) % 32).parse().unwrap(), n as u32))
                .collect(),
            strict: i % 2 == 0,
            disable: false,
            comment: None,
        })
        .collect();
    let nodes: Vec<NodeName> = (0..32)
        .map(|n| format!("node{n}").parse().unwrap())
        .collect();
    let start = Instant::now();
    for _ in 0..rounds {
        let (compiled, _) = compile_rules(&rules, &[], &nodes);
        assert_eq!(compiled.node_affinity.len(), 10_000);
    }
    let compile = start.elapsed() / rounds;
    println!(
        "10k resources: write {write:?} ({} bytes), parse {parse:?}; compile 1k rules x 10 SIDs on 32 nodes: {compile:?}",
        text.len()
    );
}
