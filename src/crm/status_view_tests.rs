//! The status lines on fixed input, compared with Proxmox's format
//! (spec 7.2) plus the node lines and marks.

use std::collections::BTreeMap;

use super::{build, status_text, LeaseView, StatusEntry, StatusInput};
use crate::crm::{AgentLease, ManagerStatus, NodeState, ServiceRecord, ServiceState};
use crate::domain::{RequestedState, ResourceConfig};
use crate::lrm::status::{LrmMode, LrmState, LrmStatus};

const NOW: u64 = 1_000_000;

struct Fixture {
    quorate: bool,
    ms: ManagerStatus,
    lrm: BTreeMap<String, LrmStatus>,
    resources: Vec<ResourceConfig>,
    members: Vec<String>,
    leases: BTreeMap<String, LeaseView>,
}

fn held(left_ms: u64) -> LeaseView {
    LeaseView {
        lease: AgentLease::Held {
            expired: left_ms == 0,
        },
        time_left_ms: Some(left_ms),
    }
}

fn lrm(state: LrmState, mode: LrmMode, age: u64) -> LrmStatus {
    LrmStatus {
        state: Some(state),
        mode: Some(mode),
        timestamp: NOW - age,
        ..LrmStatus::default()
    }
}

/// Two healthy nodes, node1 master, `exec:web` started on node1 and
/// `exec:new` configured but not yet tracked.
fn healthy() -> Fixture {
    let mut ms = ManagerStatus {
        master_node: Some("node1".parse().unwrap()),
        timestamp: NOW - 2,
        ..ManagerStatus::default()
    };
    ms.node_status
        .insert("node1".parse().unwrap(), NodeState::Online);
    ms.node_status
        .insert("node2".parse().unwrap(), NodeState::Online);
    let mut rec = ServiceRecord::new(ServiceState::Started, "node1".parse().unwrap());
    rec.running = true;
    ms.service_status.insert("exec:web".parse().unwrap(), rec);
    let lrm = BTreeMap::from([
        (
            "node1".to_string(),
            lrm(LrmState::Active, LrmMode::Active, 5),
        ),
        (
            "node2".to_string(),
            lrm(LrmState::WaitForAgentLock, LrmMode::Active, 3),
        ),
    ]);
    let leases = BTreeMap::from([
        ("node1".to_string(), held(9000)),
        (
            "node2".to_string(),
            LeaseView {
                lease: AgentLease::Free,
                time_left_ms: None,
            },
        ),
    ]);
    Fixture {
        quorate: true,
        ms,
        lrm,
        resources: vec![
            ResourceConfig::with_defaults("exec:web".parse().unwrap()),
            ResourceConfig::with_defaults("exec:new".parse().unwrap()),
        ],
        members: vec!["node1".into(), "node2".into()],
        leases,
    }
}

fn entries(f: &Fixture) -> Vec<StatusEntry> {
    let input = StatusInput {
        local_node: "node1",
        quorate: f.quorate,
        now: NOW,
        manager_status: &f.ms,
        lrm_status: &f.lrm,
        resources: &f.resources,
        members: &f.members,
        leases: &f.leases,
    };
    build(&input, &|secs| format!("T{secs}"))
}

fn text(f: &Fixture) -> String {
    entries(f)
        .iter()
        .map(|e| format!("{} {}\n", e.kind, e.status))
        .collect()
}

#[test]
fn a_healthy_cluster_reads_as_proxmoxs_lines_plus_node_lines() {
    let want = "\
quorum OK
master node1 (active, T999998)
node node1 (online, master)
node node2 (online)
lrm node1 (active, watchdog active, T999995)
lrm node2 (idle, watchdog standby, T999997)
service exec:web (node1, started)
service exec:new (none, queued)
";
    assert_eq!(text(&healthy()), want);
}

#[test]
fn typed_fields_carry_what_the_text_shows() {
    let all = entries(&healthy());
    let master = &all[1];
    assert_eq!(master.timestamp, Some(NOW - 2));
    assert_eq!(master.state.as_deref(), Some("active"));
    assert_eq!(master.master, Some(true));
    let lrm1 = all.iter().find(|e| e.id == "lrm:node1").unwrap();
    assert_eq!(lrm1.lrm_state.as_deref(), Some("active"));
    assert_eq!(lrm1.lrm_mode.as_deref(), Some("active"));
    assert_eq!(lrm1.watchdog.as_deref(), Some("active"));
    assert_eq!(lrm1.node_state.as_deref(), Some("online"));
    assert_eq!(lrm1.timestamp, Some(NOW - 5));
    let node1 = all.iter().find(|e| e.id == "node:node1").unwrap();
    assert_eq!(node1.lease_time_left_ms, Some(9000));
    // Re-rendering from the typed fields alone gives the same text.
    for e in &all {
        assert_eq!(status_text(e, &|s| format!("T{s}")), e.status, "{e:?}");
    }
    let json = serde_json::to_value(master).unwrap();
    assert_eq!(json["timestamp"], serde_json::json!(NOW - 2));
    assert_eq!(json["type"], "master");
}

#[test]
fn a_fenced_node_shows_the_crms_view_not_its_last_report() {
    let mut f = healthy();
    // node2 was fenced (lease taken over by the CRM, node state back to
    // unknown) and its service recovered to node1; its last LRM report
    // still says active.
    f.ms.node_status
        .insert("node2".parse().unwrap(), NodeState::Unknown);
    f.lrm
        .insert("node2".into(), lrm(LrmState::Active, LrmMode::Active, 4));
    f.leases.insert(
        "node2".into(),
        LeaseView {
            lease: AgentLease::FencingHold,
            time_left_ms: Some(3000),
        },
    );
    let t = text(&f);
    assert!(t.contains("node node2 (fenced)\n"), "{t}");
    assert!(
        t.contains("lrm node2 (node fenced, watchdog expired, T999996)\n"),
        "{t}"
    );
    assert!(!t.contains("lrm node2 (active"), "{t}");
}

#[test]
fn a_node_waiting_to_be_fenced_says_what_it_waits_for() {
    let mut f = healthy();
    f.ms.node_status
        .insert("node2".parse().unwrap(), NodeState::Fence);
    f.leases.insert("node2".into(), held(4200));
    let mut fenced = ServiceRecord::new(ServiceState::Fence, "node2".parse().unwrap());
    fenced.running = true;
    f.ms.service_status
        .insert("exec:db".parse().unwrap(), fenced);
    f.resources
        .push(ResourceConfig::with_defaults("exec:db".parse().unwrap()));
    let t = text(&f);
    assert!(
        t.contains("node node2 (fence, waiting for its agent lease to expire (in 5 s))\n"),
        "{t}"
    );
    // The CRM state already says why: no extra mark.
    assert!(t.contains("service exec:db (node2, fence)\n"), "{t}");
    f.leases.insert(
        "node2".into(),
        LeaseView {
            lease: AgentLease::Unguarded,
            time_left_ms: None,
        },
    );
    assert!(
        text(&f).contains("node node2 (fence, never fenced automatically"),
        "{}",
        text(&f)
    );
}

#[test]
fn a_service_on_a_node_not_known_up_is_marked() {
    let mut f = healthy();
    f.ms.node_status
        .insert("node1".parse().unwrap(), NodeState::Unknown);
    let t = text(&f);
    assert!(
        t.contains("service exec:web (node1, started (node unknown))\n"),
        "{t}"
    );
    let web = entries(&f)
        .into_iter()
        .find(|e| e.sid.as_deref() == Some("exec:web"))
        .unwrap();
    assert_eq!(web.state.as_deref(), Some("started"));
    assert_eq!(web.mark.as_deref(), Some("node unknown"));
    assert_eq!(web.node_state.as_deref(), Some("unknown"));
}

#[test]
fn without_quorum_nothing_claims_to_be_current() {
    let mut f = healthy();
    f.quorate = false;
    let want = "\
quorum No quorum on node 'node1'!
master node1 (no quorum - not active, T999998)
node node1 (online, no quorum here, last known state)
node node2 (online, no quorum here, last known state)
lrm node1 (active, watchdog active, T999995)
lrm node2 (idle, watchdog standby, T999997, no quorum here, last report)
service exec:web (node1, started (no quorum here))
service exec:new (none, queued)
";
    assert_eq!(text(&f), want);
}

#[test]
fn the_watchdog_state_follows_the_lease() {
    let mut f = healthy();
    // Maintenance with services still leaving: lease held, watchdog armed.
    f.lrm.insert(
        "node1".into(),
        lrm(LrmState::Maintenance, LrmMode::Maintenance, 1),
    );
    f.ms.node_status
        .insert("node1".parse().unwrap(), NodeState::Maintenance);
    assert!(
        text(&f).contains("lrm node1 (maintenance mode, watchdog active, T999999)\n"),
        "{}",
        text(&f)
    );
    // The same LRM after it let its lease go.
    f.leases.insert(
        "node1".into(),
        LeaseView {
            lease: AgentLease::Free,
            time_left_ms: None,
        },
    );
    assert!(text(&f).contains("lrm node1 (maintenance mode, watchdog standby,"));
    // Disarmed: released.
    f.lrm
        .insert("node2".into(), lrm(LrmState::Active, LrmMode::Disarm, 1));
    assert!(text(&f).contains("lrm node2 (disarm mode, watchdog released,"));
    // An LRM that never wrote a status.
    f.lrm.remove("node2");
    assert!(text(&f).contains("lrm node2 (unable to read lrm status)\n"));
}

#[test]
fn display_states_follow_spec_7_2() {
    let mut f = healthy();
    let sid = "exec:web".parse().unwrap();
    let cases = [
        (
            RequestedState::Started,
            ServiceState::Stopped,
            false,
            "starting",
        ),
        (
            RequestedState::Disabled,
            ServiceState::Stopped,
            false,
            "disabled",
        ),
        (
            RequestedState::Stopped,
            ServiceState::Started,
            true,
            "stopping",
        ),
        (
            RequestedState::Stopped,
            ServiceState::Started,
            false,
            "starting",
        ),
        (
            RequestedState::Disabled,
            ServiceState::Error,
            false,
            "clearing error flag",
        ),
        (
            RequestedState::Ignored,
            ServiceState::Started,
            true,
            "ignored",
        ),
        (
            RequestedState::Started,
            ServiceState::Migrate,
            false,
            "migrate",
        ),
    ];
    for (req, state, running, want) in cases {
        f.resources[0].state = req;
        let rec = f.ms.service_status.get_mut(&sid).unwrap();
        rec.state = state;
        rec.running = running;
        let t = text(&f);
        assert!(
            t.contains(&format!("service exec:web (node1, {want})\n")),
            "{req:?} {state:?}: {t}"
        );
    }
}
