//! The event history and `explain` on a real 3-node cluster (issue 13):
//! after a failover, `ha-manager history` tells what happened in order
//! (the operator's command with its token, the node going unknown, the
//! fence, the lease taken over, the recovery, the start) and `ha-manager
//! explain` names the node the service's process really runs on now.
//! Once with the service on a follower, once on the leader.

mod common;

use std::time::{Duration, Instant};

use common::{add_sleep_service, cli_ok, make_token, marker, start, wait_running_once};
use ha_manager::api::history::{ExplainReply, HistoryReply};
use ha_manager::crm::{DecisionReason, EventKind, HaEvent};
use ha_manager::local_cluster::procs::ServiceWatch;
use ha_manager::local_cluster::{wait_until, LocalCluster};

const LIMIT: Duration = Duration::from_secs(60);

fn history(c: &LocalCluster, via: usize, args: &[&str]) -> Vec<HaEvent> {
    let mut all = vec!["history"];
    all.extend_from_slice(args);
    c.cli_json::<HistoryReply>(via, &all)
        .expect("history")
        .events
}

/// The first event matching `f`, with its position.
fn find(events: &[HaEvent], what: &str, f: impl Fn(&HaEvent) -> bool) -> (usize, HaEvent) {
    events
        .iter()
        .enumerate()
        .find(|(_, e)| f(e))
        .map(|(i, e)| (i, e.clone()))
        .unwrap_or_else(|| panic!("no {what} event in {events:#?}"))
}

/// Moves `sid` (running on `from`) to node `to` with an operator token,
/// kills node `to`, and checks history and explain against where the
/// service's process ends up.
fn failover_is_told(c: &mut LocalCluster, sid: &str, m: u64, to: usize, token: &str) {
    let from = wait_running_once(c, m, LIMIT);
    let observer = (0..3).find(|i| *i != to).expect("a survivor");
    if from != to {
        let reply = c
            .https_client(observer)
            .expect("client")
            .post(c.url(observer, &format!("/api/v1/resources/{sid}/migrate")))
            .bearer_auth(token)
            .json(&serde_json::json!({"node": c.nodes[to].name}))
            .send()
            .expect("migrate");
        assert!(reply.status().is_success(), "{:?}", reply.text());
        wait_until(LIMIT, "the service on the target node", || {
            (wait_running_once(c, m, LIMIT) == to).then_some(())
        })
        .expect("moved");
    }
    let watch = ServiceWatch::start(m, c.pid_locator());
    let killed = Instant::now();
    c.kill_node(to);
    let (_, now_on) = wait_until(LIMIT, "the recovered service", || {
        watch.first_elsewhere(killed, to)
    })
    .expect("recovered");
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    let victim = c.nodes[to].name.clone();
    let survivor = c.nodes[now_on].name.clone();
    // The history is written with the round that recovered it; wait for
    // the start on the new node to be recorded too.
    let events = wait_until(LIMIT, "the recovery in the history", || {
        let events = history(c, observer, &[sid]);
        events
            .iter()
            .any(|e| {
                e.kind == EventKind::ServiceState
                    && e.to.as_deref() == Some("started")
                    && e.node.as_deref() == Some(survivor.as_str())
            })
            .then_some(events)
    })
    .expect("history of the service");
    let node_events = history(c, observer, &["--node", &victim]);
    if from != to {
        let (_, cmd) = find(&events, "command", |e| {
            e.kind == EventKind::Command && e.message.contains("migrate")
        });
        assert_eq!(cmd.actor.as_deref(), Some("ops"), "{cmd:?}");
    }
    // The node's story, in order: unknown, fence, fenced (lease taken).
    let (unknown, _) = find(&node_events, "node unknown", |e| {
        e.kind == EventKind::NodeState && e.to.as_deref() == Some("unknown")
    });
    let (fence, _) = find(&node_events, "node fence", |e| {
        e.kind == EventKind::NodeState && e.to.as_deref() == Some("fence")
    });
    let (fenced, _) = find(&node_events, "fenced", |e| e.kind == EventKind::Fenced);
    assert!(unknown < fence && fence < fenced, "{node_events:#?}");
    // The service's: fence, then the recovery to the node its process is on.
    let (i_fence, _) = find(&events, "service fence", |e| {
        e.kind == EventKind::ServiceState && e.to.as_deref() == Some("fence")
    });
    let (i_rec, rec) = find(&events, "recovery", |e| e.kind == EventKind::Recovery);
    assert!(i_fence < i_rec);
    assert_eq!(rec.from.as_deref(), Some(victim.as_str()));
    assert_eq!(rec.to.as_deref(), Some(survivor.as_str()), "{rec:?}");
    let d = rec.decision.expect("a recovery carries its decision");
    assert_eq!(d.reason, DecisionReason::Recovery);
    assert_eq!(d.chosen.as_deref(), Some(survivor.as_str()));
    let fenced_node = d
        .candidates
        .iter()
        .find(|c| c.node == victim)
        .expect("the fenced node is a candidate");
    assert!(fenced_node.excluded.is_some(), "{fenced_node:?}");
    // explain, as JSON and as text, says the same.
    let explained: ExplainReply = c.cli_json(observer, &["explain", sid]).expect("explain");
    assert_eq!(explained.node.as_deref(), Some(survivor.as_str()));
    let text = cli_ok(c, observer, &["explain", sid]);
    assert!(
        text.contains(&format!("recovery from a fenced node -> {survivor}")),
        "{text}"
    );
    assert!(text.contains("<- chosen"), "{text}");
    assert!(text.contains(&format!("was on: {victim}")), "{text}");
}

#[test]
fn history_and_explain_tell_a_follower_failover() {
    let mut c = start(3);
    let token = make_token(&c, "ops", "admin");
    let m = marker(1);
    add_sleep_service(&c, 0, "hist", m);
    let leader = wait_until(LIMIT, "a leader", || c.leader()).expect("leader");
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    failover_is_told(&mut c, "exec:hist", m, follower, &token);
    // Filters and bad input.
    let survivor = (0..3).find(|i| *i != follower).expect("survivor");
    assert!(!history(&c, survivor, &["--since", "1d"]).is_empty());
    assert!(history(&c, survivor, &["exec:other"]).is_empty());
    let bad = c
        .cli(survivor, &["history", "--since", "yesterday"])
        .expect("cli");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("field 'since'"), "{}", bad.stderr);
    let bad = c.cli(survivor, &["explain", "exec:nosuch"]).expect("cli");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("no such resource"), "{}", bad.stderr);
    // A read-only token may read the history.
    let viewer = make_token(&c, "viewer", "read-only");
    let reply = c
        .https_client(survivor)
        .expect("client")
        .get(c.url(survivor, "/api/v1/history?limit=5"))
        .bearer_auth(&viewer)
        .send()
        .expect("history");
    assert_eq!(reply.status(), 200);
    let body: HistoryReply = reply.json().expect("json");
    assert!(body.events.len() <= 5 && !body.events.is_empty());
    let reply = c
        .https_client(survivor)
        .expect("client")
        .get(c.url(survivor, "/api/v1/history?limit=0"))
        .bearer_auth(&viewer)
        .send()
        .expect("history");
    assert_eq!(reply.status(), 400);
    assert!(reply.text().unwrap_or_default().contains("field 'limit'"));
}

#[test]
fn history_tells_a_leader_failover_from_the_new_leader() {
    let mut c = start(3);
    let token = make_token(&c, "ops", "admin");
    let m = marker(2);
    add_sleep_service(&c, 0, "lead", m);
    let leader = wait_until(LIMIT, "a leader", || c.leader()).expect("leader");
    failover_is_told(&mut c, "exec:lead", m, leader, &token);
    let new_leader = wait_until(LIMIT, "a new leader", || {
        c.leader().filter(|l| *l != leader)
    })
    .expect("new leader");
    let events = history(&c, new_leader, &[]);
    let name = c.nodes[new_leader].name.clone();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Master && e.node.as_deref() == Some(name.as_str())),
        "the new leader's CRM says it took over: {events:#?}"
    );
}
