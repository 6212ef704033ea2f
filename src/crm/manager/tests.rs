//! Tests of the manager round.

use super::*;
use crate::crm::CrmStep;
use crate::crm::Scheduling;

fn n(s: &str) -> NodeName {
    s.parse().unwrap()
}
fn sid(s: &str) -> Sid {
    s.parse().unwrap()
}

pub(super) struct Fixture {
    membership: BTreeMap<NodeName, bool>,
    resources: BTreeMap<Sid, ConfiguredResource>,
    affinity: BTreeMap<Sid, NodeAffinity>,
    resource_affinity: ResourceAffinity,
    lrm: BTreeMap<NodeName, LrmStatus>,
    commands: Vec<String>,
    leases: BTreeMap<NodeName, AgentLease>,
    locks: BTreeMap<Sid, String>,
    scheduling: Scheduling,
}

impl Fixture {
    fn new() -> Self {
        let membership = ["node1", "node2", "node3"]
            .iter()
            .map(|x| (n(x), true))
            .collect();
        let mut resources = BTreeMap::new();
        for (s, node) in [("vm:101", "node1"), ("vm:102", "node2")] {
            resources.insert(
                sid(s),
                ConfiguredResource {
                    config: ResourceConfig::with_defaults(sid(s)),
                    node: n(node),
                },
            );
        }
        let leases = ["node1", "node2", "node3"]
            .iter()
            .map(|x| (n(x), AgentLease::Held { expired: false }))
            .collect();
        Fixture {
            membership,
            resources,
            affinity: BTreeMap::new(),
            resource_affinity: ResourceAffinity::default(),
            lrm: BTreeMap::new(),
            commands: Vec::new(),
            leases,
            locks: BTreeMap::new(),
            scheduling: Scheduling::default(),
        }
    }
    fn round(&self, m: &mut Manager, now_s: u64) -> Vec<CrmStep> {
        let input = ManagerInput {
            now_ms: now_s * 1000,
            membership: &self.membership,
            resources: &self.resources,
            node_affinity: &self.affinity,
            resource_affinity: &self.resource_affinity,
            lrm_status: &self.lrm,
            crm_commands: &self.commands,
            agent_leases: &self.leases,
            unplaced: &[],
            guest_locks: &self.locks,
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput::no_groups(10_000),
            scheduling: &self.scheduling,
        };
        let mut out = Steps::default();
        assert!(m.manage(&input, &mut out));
        out.0
    }
}

#[test]
fn group_migration_is_decided_on_the_third_round_that_gets_past_the_offline_check() {
    use crate::domain::{GroupConfig, GroupNode};
    use crate::lrm::LrmState;
    let mut f = Fixture::new();
    if let Some(r) = f.resources.get_mut(&sid("vm:101")) {
        r.config.group = Some("g".into());
    }
    for node in ["node1", "node2", "node3"] {
        let st = LrmStatus {
            state: Some(LrmState::Active),
            ..LrmStatus::default()
        };
        f.lrm.insert(n(node), st);
    }
    let groups = vec![GroupConfig {
        id: "g".into(),
        nodes: vec![GroupNode {
            node: n("node1"),
            priority: Some(2),
        }],
        restricted: false,
        nofailback: true,
        comment: None,
    }];
    let versions: BTreeMap<NodeName, String> = ["node1", "node2", "node3"]
        .iter()
        .map(|x| (n(x), "9.0.1".to_string()))
        .collect();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    let mut decided = Vec::new();
    for round in 0..4u64 {
        // round 0: the master sees itself offline and ends the round
        // early; it does not count
        let mut membership = f.membership.clone();
        membership.insert(n("node1"), round != 0);
        let input = ManagerInput {
            now_ms: round * 10_000,
            membership: &membership,
            resources: &f.resources,
            node_affinity: &f.affinity,
            resource_affinity: &f.resource_affinity,
            lrm_status: &f.lrm,
            crm_commands: &f.commands,
            agent_leases: &f.leases,
            unplaced: &[],
            guest_locks: &f.locks,
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput {
                groups: &groups,
                node_versions: &versions,
                round_interval_ms: 10_000,
            },
            scheduling: &crate::crm::Scheduling::default(),
        };
        let mut out = Steps::default();
        m.manage(&input, &mut out);
        if out.0.contains(&CrmStep::Do(CrmAction::MigrateGroups)) {
            decided.push(round);
        }
    }
    assert_eq!(decided, [3]);
}

fn state(m: &Manager, s: &str) -> ServiceState {
    m.status().service_status[&sid(s)].state
}

#[test]
fn new_services_start_and_uids_change_on_every_transition() {
    let f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    assert_eq!(state(&m, "vm:101"), ServiceState::Started);
    let uid1 = m.status().service_status[&sid("vm:101")]
        .uid
        .clone()
        .unwrap();
    let uid2 = m.status().service_status[&sid("vm:102")]
        .uid
        .clone()
        .unwrap();
    assert_ne!(uid1, uid2);
    // a stale result (wrong uid) is ignored, the current one consumed
    let mut f = f;
    let mut st = LrmStatus::default();
    st.results.insert(
        "stale".into(),
        LrmResult {
            sid: sid("vm:101"),
            state: ServiceState::Started,
            exit_code: 0,
        },
    );
    f.lrm.insert(n("node1"), st.clone());
    f.round(&mut m, 10);
    assert_eq!(
        m.status().service_status[&sid("vm:101")].uid.as_deref(),
        Some(uid1.as_str())
    );
    assert!(!m.status().service_status[&sid("vm:101")].running);
    st.results.insert(
        uid1.clone(),
        LrmResult {
            sid: sid("vm:101"),
            state: ServiceState::Started,
            exit_code: 0,
        },
    );
    f.lrm.insert(n("node1"), st);
    f.round(&mut m, 20);
    let sd = &m.status().service_status[&sid("vm:101")];
    assert!(sd.running);
    assert_eq!(
        sd.uid.as_deref(),
        Some(uid1.as_str()),
        "a reported success keeps its uid: a healthy service costs no writes"
    );
    let before = m.status().clone();
    f.round(&mut m, 30);
    let mut after = m.status().clone();
    after.timestamp = before.timestamp;
    assert_eq!(after, before, "steady: nothing changes");
    // A failed start gets a fresh uid (the LRM must run it again).
    let mut st = LrmStatus::default();
    st.results.insert(
        uid1.clone(),
        LrmResult {
            sid: sid("vm:101"),
            state: ServiceState::Started,
            exit_code: exit_code::ERROR,
        },
    );
    f.lrm.insert(n("node1"), st);
    f.round(&mut m, 40);
    assert_ne!(
        m.status().service_status[&sid("vm:101")].uid.as_deref(),
        Some(uid1.as_str())
    );
}

#[test]
fn offline_node_is_fenced_after_the_delay_and_recovered_after_the_lock() {
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    f.membership.insert(n("node2"), false);
    f.round(&mut m, 20);
    assert_eq!(m.status().node_status[&n("node2")], NodeState::Unknown);
    assert_eq!(state(&m, "vm:102"), ServiceState::Started);
    f.round(&mut m, 59);
    assert_eq!(state(&m, "vm:102"), ServiceState::Started);
    f.round(&mut m, 60);
    assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
    assert_eq!(m.status().node_status[&n("node2")], NodeState::Fence);
    f.leases
        .insert(n("node2"), AgentLease::Held { expired: true });
    let steps = f.round(&mut m, 140);
    let lock_pos = steps
        .iter()
        .position(|s| *s == CrmStep::Do(CrmAction::TakeAgentLock(n("node2"))))
        .expect("lock taken");
    let move_pos = steps
        .iter()
        .position(|s| matches!(s, CrmStep::Do(CrmAction::MoveResourceNode { .. })))
        .expect("moved");
    assert!(lock_pos < move_pos, "fencing acknowledged before the steal");
    assert_eq!(state(&m, "vm:102"), ServiceState::Started);
    assert_eq!(m.status().service_status[&sid("vm:102")].node, n("node3"));
}

#[test]
fn a_node_that_left_services_unguarded_is_never_fenced() {
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    f.membership.insert(n("node2"), false);
    f.leases.insert(n("node2"), AgentLease::Unguarded);
    f.round(&mut m, 20);
    f.round(&mut m, 60);
    assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
    for t in [80, 200, 2000] {
        let steps = f.round(&mut m, t);
        assert!(!steps
            .iter()
            .any(|s| matches!(s, CrmStep::Do(CrmAction::TakeAgentLock(_)))));
    }
    assert_eq!(state(&m, "vm:102"), ServiceState::Fence);
    // A lease that is not there at all is evidence.
    f.leases.remove(&n("node2"));
    f.round(&mut m, 2010);
    assert_eq!(m.status().service_status[&sid("vm:102")].node, n("node3"));
}

#[test]
fn frozen_services_thaw_only_on_an_online_node_that_holds_its_lease() {
    use crate::lrm::LrmState;
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    let lrm = |mode| LrmStatus {
        state: Some(LrmState::Active),
        mode: Some(mode),
        ..LrmStatus::default()
    };
    f.lrm.insert(n("node2"), lrm(LrmMode::Restart));
    f.round(&mut m, 10);
    assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
    // The restarted LRM reports mode active, but has no lease yet.
    f.lrm.insert(n("node2"), lrm(LrmMode::Active));
    f.leases.insert(n("node2"), AgentLease::Unguarded);
    f.round(&mut m, 20);
    assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
    // Offline, even with the stale LRM status saying active: frozen.
    f.leases
        .insert(n("node2"), AgentLease::Held { expired: false });
    f.membership.insert(n("node2"), false);
    f.round(&mut m, 30);
    assert_eq!(state(&m, "vm:102"), ServiceState::Freeze);
    f.membership.insert(n("node2"), true);
    f.round(&mut m, 40);
    assert_eq!(state(&m, "vm:102"), ServiceState::Started);
}

#[test]
fn new_services_are_placed_on_the_least_loaded_online_node() {
    let f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    let new = vec![ResourceConfig::with_defaults(sid("vm:103"))];
    let input = ManagerInput {
        now_ms: 1000,
        membership: &f.membership,
        resources: &f.resources,
        node_affinity: &f.affinity,
        resource_affinity: &f.resource_affinity,
        lrm_status: &f.lrm,
        crm_commands: &f.commands,
        agent_leases: &f.leases,
        unplaced: &new,
        guest_locks: &f.locks,
        fence_delay_ms: 60_000,
        group_migration: GroupMigrationInput::no_groups(10_000),
        scheduling: &crate::crm::Scheduling::default(),
    };
    let mut out = Steps::default();
    m.manage(&input, &mut out);
    assert!(out.0.contains(&CrmStep::Do(CrmAction::PlaceResource {
        sid: sid("vm:103"),
        node: n("node3"),
    })));
}

#[test]
fn stop_command_requests_stop_and_rewrites_the_config() {
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    f.commands = vec![
        "stop vm:101 30".into(),
        "migrate vm:999 node2".into(),
        "bogus".into(),
    ];
    let steps = f.round(&mut m, 10);
    let sd = &m.status().service_status[&sid("vm:101")];
    assert_eq!(sd.state, ServiceState::RequestStop);
    assert_eq!(sd.timeout, Some(30));
    assert!(steps.contains(&CrmStep::Do(CrmAction::SetRequestedState(
        sid("vm:101"),
        RequestedState::Stopped
    ))));
    assert!(steps.contains(&CrmStep::Do(CrmAction::ConsumeCrmCommands)));
    let logs: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            CrmStep::Log(e) => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&"crm command error - no such service: migrate vm:999 node2".to_string()));
    assert!(logs.contains(&"unable to parse crm command: bogus".to_string()));
}

#[test]
fn migrate_command_moves_and_completes_on_success() {
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node1"), &ManagerStatus::default());
    f.round(&mut m, 0);
    f.commands = vec!["migrate vm:101 node3".into()];
    f.round(&mut m, 10);
    let sd = m.status().service_status[&sid("vm:101")].clone();
    assert_eq!(sd.state, ServiceState::Migrate);
    assert_eq!(sd.target, Some(n("node3")));
    f.commands.clear();
    let mut st = LrmStatus::default();
    st.results.insert(
        sd.uid.unwrap(),
        LrmResult {
            sid: sid("vm:101"),
            state: ServiceState::Migrate,
            exit_code: 0,
        },
    );
    f.lrm.insert(n("node1"), st);
    f.round(&mut m, 20);
    let sd = &m.status().service_status[&sid("vm:101")];
    assert_eq!(
        (sd.state, sd.node.clone()),
        (ServiceState::Started, n("node3"))
    );
}

#[test]
fn maintenance_moves_services_away_and_back() {
    let mut f = Fixture::new();
    let mut m = Manager::new(n("node2"), &ManagerStatus::default());
    f.round(&mut m, 0);
    f.commands = vec!["enable-node-maintenance node1".into()];
    f.round(&mut m, 10);
    f.commands.clear();
    assert!(m.status().maintenance_requested(&n("node1")));
    let st = LrmStatus {
        mode: Some(LrmMode::Maintenance),
        ..LrmStatus::default()
    };
    f.lrm.insert(n("node1"), st);
    f.round(&mut m, 20);
    assert_eq!(m.status().node_status[&n("node1")], NodeState::Maintenance);
    let sd = m.status().service_status[&sid("vm:101")].clone();
    assert_eq!(sd.state, ServiceState::Migrate);
    assert_eq!(sd.maintenance_node, Some(n("node1")));
    assert_eq!(sd.target, Some(n("node3")), "least loaded online node");
    // migration done, maintenance ends: the service moves back
    let mut st = LrmStatus::default();
    st.results.insert(
        sd.uid.clone().unwrap(),
        LrmResult {
            sid: sid("vm:101"),
            state: ServiceState::Migrate,
            exit_code: 0,
        },
    );
    f.lrm.insert(n("node1"), st);
    f.commands = vec!["disable-node-maintenance node1".into()];
    f.round(&mut m, 30);
    f.commands.clear();
    f.round(&mut m, 40);
    let sd = &m.status().service_status[&sid("vm:101")];
    assert_eq!(m.status().node_status[&n("node1")], NodeState::Online);
    assert_eq!(
        (sd.state, sd.target.clone()),
        (ServiceState::Migrate, Some(n("node1")))
    );
    assert_eq!(sd.maintenance_node, None);
}

mod resource_affinity {
    //! Resource affinity in the manager round: the command queue and
    //! moves without a command.
    use super::*;

    fn messages(steps: &[CrmStep]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                CrmStep::Log(ev) => Some(ev.message.clone()),
                _ => None,
            })
            .collect()
    }

    fn fixture(positive: bool) -> Fixture {
        let mut f = Fixture::new();
        f.resources.insert(
            sid("vm:103"),
            ConfiguredResource {
                config: ResourceConfig::with_defaults(sid("vm:103")),
                node: n("node3"),
            },
        );
        let map = if positive {
            &mut f.resource_affinity.positive
        } else {
            &mut f.resource_affinity.negative
        };
        map.insert(sid("vm:101"), [sid("vm:102")].into());
        map.insert(sid("vm:102"), [sid("vm:101")].into());
        f
    }

    #[test]
    fn migrate_onto_a_negative_partner_is_refused_and_changes_nothing() {
        let mut f = fixture(false);
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        f.commands = vec!["migrate vm:101 node2".into()];
        let steps = f.round(&mut m, 10);
        assert!(messages(&steps).contains(
            &"crm command 'migrate vm:101 node2' error - service 'vm:102' on node 'node2' in negative affinity with service 'vm:101'".to_string()
        ));
        let sd = &m.status().service_status[&sid("vm:101")];
        assert_eq!(
            (sd.state, sd.node.as_str(), &sd.cmd),
            (ServiceState::Started, "node1", &None)
        );
        // To a free node it is accepted.
        f.commands = vec!["migrate vm:101 node3".into()];
        f.round(&mut m, 20);
        let sd = &m.status().service_status[&sid("vm:101")];
        assert_eq!(sd.state, ServiceState::Migrate);
        assert_eq!(sd.target.as_ref(), Some(&n("node3")));
        // vm:101 is still on node1 while it migrates: node1 is occupied.
        f.commands = vec!["migrate vm:102 node1".into()];
        let steps = f.round(&mut m, 30);
        assert!(messages(&steps).contains(
            &"crm command 'migrate vm:102 node1' error - service 'vm:101' on node 'node1' in negative affinity with service 'vm:102'".to_string()
        ));
        // ... and node3, where it is heading.
        f.commands = vec!["relocate vm:102 node3".into()];
        let steps = f.round(&mut m, 40);
        assert!(messages(&steps).iter().any(|l| l.starts_with(
            "crm command 'relocate vm:102 node3' error - service 'vm:101' on node 'node3'"
        )));
        assert_eq!(
            m.status().service_status[&sid("vm:102")].state,
            ServiceState::Started
        );
    }

    #[test]
    fn migrating_one_positive_member_moves_its_partners() {
        let f = fixture(true);
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        // vm:101 (node1) and vm:102 (node2) break their rule: the round
        // after they started, one of them joins the other without a command.
        f.round(&mut m, 10);
        let nodes: Vec<(ServiceState, Option<NodeName>)> = ["vm:101", "vm:102"]
            .iter()
            .map(|s| {
                let sd = &m.status().service_status[&sid(s)];
                (sd.state, sd.target.clone())
            })
            .collect();
        assert_eq!(
            nodes,
            [
                (ServiceState::Migrate, Some(n("node2"))),
                (ServiceState::Started, None)
            ]
        );
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        let mut f = fixture(true);
        if let Some(r) = f.resources.get_mut(&sid("vm:102")) {
            r.node = n("node1");
        }
        f.round(&mut m, 0);
        f.commands = vec!["migrate vm:101 node3".into()];
        let steps = f.round(&mut m, 10);
        let logs = messages(&steps);
        assert!(logs.contains(&"got crm command: migrate vm:101 node3".to_string()));
        assert!(logs.contains(&"crm command 'migrate vm:101 node3' - migrate service 'vm:102' to node 'node3' (service 'vm:102' in positive affinity with service 'vm:101')".to_string()));
        for s in ["vm:101", "vm:102"] {
            let sd = &m.status().service_status[&sid(s)];
            assert_eq!(
                (sd.state, sd.target.as_ref()),
                (ServiceState::Migrate, Some(&n("node3"))),
                "{s}"
            );
        }
    }

    #[test]
    fn new_services_are_placed_with_their_partners() {
        // vm:103 joins its positive partner vm:102 on node2, although node3
        // carries nothing; vm:104 avoids node1 and node2 (negative partners).
        let mut f = Fixture::new();
        f.resource_affinity
            .positive
            .insert(sid("vm:103"), [sid("vm:102")].into());
        f.resource_affinity
            .negative
            .insert(sid("vm:104"), [sid("vm:101"), sid("vm:102")].into());
        let mut m = Manager::new(n("node1"), &ManagerStatus::default());
        f.round(&mut m, 0);
        let new = vec![
            ResourceConfig::with_defaults(sid("vm:103")),
            ResourceConfig::with_defaults(sid("vm:104")),
        ];
        let input = ManagerInput {
            now_ms: 1000,
            membership: &f.membership,
            resources: &f.resources,
            node_affinity: &f.affinity,
            resource_affinity: &f.resource_affinity,
            lrm_status: &f.lrm,
            crm_commands: &f.commands,
            agent_leases: &f.leases,
            unplaced: &new,
            guest_locks: &f.locks,
            fence_delay_ms: 60_000,
            group_migration: GroupMigrationInput::no_groups(10_000),
            scheduling: &crate::crm::Scheduling::default(),
        };
        let mut out = Steps::default();
        m.manage(&input, &mut out);
        let placed: Vec<(String, String)> = out
            .0
            .iter()
            .filter_map(|s| match s {
                CrmStep::Do(CrmAction::PlaceResource { sid, node }) => {
                    Some((sid.to_string(), node.to_string()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            placed,
            [
                ("vm:103".to_string(), "node2".to_string()),
                ("vm:104".to_string(), "node3".to_string())
            ]
        );
    }
}

fn logs(steps: &[CrmStep]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            CrmStep::Log(ev) => Some(ev.message.clone()),
            _ => None,
        })
        .collect()
}

fn running_manager(f: &Fixture) -> Manager {
    let mut ms = ManagerStatus::default();
    for node in f.membership.keys() {
        ms.node_status.insert(node.clone(), NodeState::Online);
    }
    for (sid, r) in &f.resources {
        let mut sd = ServiceRecord::new(ServiceState::Started, r.node.clone());
        sd.running = true;
        ms.service_status.insert(sid.clone(), sd);
    }
    Manager::new(n("node1"), &ms)
}

#[test]
fn scheduler_mode_is_logged_and_falls_back_to_basic_without_capacity() {
    use crate::crm::NodeStats;
    use crate::domain::CrsMode;
    let mut f = Fixture::new();
    f.scheduling.crs.mode = CrsMode::Static;
    let mut m = running_manager(&f);
    // node3 has no known capacity: static cannot start
    for node in ["node1", "node2"] {
        f.scheduling.node_stats.insert(
            n(node),
            NodeStats {
                maxcpu: 4.0,
                maxmem: 8.0,
                ..NodeStats::default()
            },
        );
    }
    let first = logs(&f.round(&mut m, 10));
    assert!(
        first.contains(&"using scheduler mode 'static'".to_string()),
        "{first:?}"
    );
    assert!(
        first.iter().any(|l| l
            .starts_with("fallback to 'basic' scheduler mode, init for 'static' failed - ")
            && l.contains("node3")),
        "{first:?}"
    );
    f.scheduling.node_stats.insert(
        n("node3"),
        NodeStats {
            maxcpu: 4.0,
            maxmem: 8.0,
            ..NodeStats::default()
        },
    );
    let second = logs(&f.round(&mut m, 20));
    assert!(
        !second.iter().any(|l| l.contains("scheduler mode")),
        "{second:?}"
    );
    f.scheduling.crs.mode = CrsMode::Dynamic;
    let third = logs(&f.round(&mut m, 30));
    assert!(
        third.contains(&"switching scheduler mode from 'static' to 'dynamic'".to_string()),
        "{third:?}"
    );
}

#[test]
fn auto_rebalance_waits_for_a_queued_move_with_its_hold_counter_kept() {
    use crate::crm::{NodeStats, ServiceStats};
    use crate::domain::CrsMode;
    let mut f = Fixture::new();
    // three services on node1, none elsewhere
    f.resources.clear();
    for s in ["vm:101", "vm:102", "vm:103"] {
        f.resources.insert(
            sid(s),
            ConfiguredResource {
                config: ResourceConfig::with_defaults(sid(s)),
                node: n("node1"),
            },
        );
        f.scheduling.service_stats.insert(
            sid(s),
            ServiceStats {
                maxcpu: 1.0,
                maxmem: 1.0,
                ..ServiceStats::default()
            },
        );
    }
    for node in ["node1", "node2", "node3"] {
        f.scheduling.node_stats.insert(
            n(node),
            NodeStats {
                maxcpu: 8.0,
                maxmem: 8.0,
                ..NodeStats::default()
            },
        );
    }
    f.scheduling.crs.mode = CrsMode::Static;
    f.scheduling.crs.auto_rebalance = true;
    f.scheduling.crs.hold_rounds = 2;
    let mut m = running_manager(&f);
    let moved = |steps: &[CrmStep]| {
        logs(steps)
            .iter()
            .any(|l| l.starts_with("auto rebalance - "))
    };
    // round 1: hold 1
    assert!(!moved(&f.round(&mut m, 10)));
    // a queued manual move: rebalancing waits, the counter stays at 1
    f.commands = vec!["migrate vm:103 node3".to_string()];
    let steps = f.round(&mut m, 20);
    assert!(!moved(&steps));
    f.commands.clear();
    // the move is under way (no LRM result): still waiting
    assert_eq!(
        m.status().service_status[&sid("vm:103")].state,
        ServiceState::Migrate
    );
    assert!(!moved(&f.round(&mut m, 30)));
    // it finishes: the next round counts 2 = hold and moves
    let mut sd = m.status().service_status[&sid("vm:103")].clone();
    sd.state = ServiceState::Started;
    sd.node = n("node3");
    sd.target = None;
    let mut ms = m.status().clone();
    ms.service_status.insert(sid("vm:103"), sd);
    if let Some(r) = f.resources.get_mut(&sid("vm:103")) {
        r.node = n("node3");
    }
    m.resync(&ms);
    let steps = f.round(&mut m, 40);
    let lines = logs(&steps);
    assert!(
        lines.contains(&"auto rebalance - migrate vm:101 to node2 (expected change for imbalance from 0.82 to 0.00)".to_string()),
        "{lines:?}"
    );
    assert_eq!(
        m.status().service_status[&sid("vm:101")].state,
        ServiceState::Migrate
    );
}
