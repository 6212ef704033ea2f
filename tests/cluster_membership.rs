//! Node life cycle on real daemons (issue 11): a dead member is removed
//! with `cluster delnode` only once it can run nothing, and a replacement
//! under the same name — empty disk, same or new address — joins as a new
//! member, catches up, and gives the cluster back its fault tolerance.

mod common;

use std::time::{Duration, Instant};

use common::{add_sleep_service, make_join_token, marker, start, wait_running_once};
use ha_manager::api::cluster::ClusterStatus;
use ha_manager::local_cluster::procs::ServiceWatch;
use ha_manager::local_cluster::{wait_until, LocalCluster};

const LIMIT: Duration = Duration::from_secs(60);

/// A fresh join token (default lifetime), made with member `i`'s CLI.
fn join_token(c: &LocalCluster, i: usize) -> String {
    make_join_token(c, i, &[])
}

/// Member names (with their addresses) in node `via`'s cluster status.
fn members(c: &LocalCluster, via: usize) -> Option<Vec<(String, String, bool)>> {
    let cs: ClusterStatus = c.cluster_status(via).ok()?;
    Some(
        cs.members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.addr.clone(), m.voter))
            .collect(),
    )
}

/// Wipes node `i`'s disk (its data directory) and, with `new_port`,
/// moves it to another loopback port; its processes must be stopped.
fn wipe_disk(c: &mut LocalCluster, i: usize, new_port: bool) {
    let node = &mut c.nodes[i];
    std::fs::remove_dir_all(node.dir.join("data")).expect("wipe data dir");
    if new_port {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let config_path = node.dir.join("node.toml");
        let text = std::fs::read_to_string(&config_path).expect("node.toml");
        let text = text.replace(&node.addr, &addr);
        std::fs::write(&config_path, text).expect("write node.toml");
        node.addr = addr;
    }
}

/// Runs `cluster join` on node `i` through member `via`.
fn join(
    c: &LocalCluster,
    i: usize,
    via: usize,
    token: &str,
) -> ha_manager::local_cluster::CliOutput {
    let addr = c.nodes[via].addr.clone();
    c.cli(i, &["cluster", "join", &addr, "--token", token])
        .expect("cli runs")
}

/// Waits until `name` is a voter at `addr` and its LRM reports, seen
/// from node `via`.
fn wait_member_back(c: &LocalCluster, via: usize, name: &str, addr: &str) {
    wait_until(
        LIMIT,
        &format!("{name} voting at {addr} with an LRM"),
        || {
            let m = members(c, via)?;
            let voting = m.iter().any(|(n, a, v)| n == name && a == addr && *v);
            let lrm = c
                .status(via)
                .ok()?
                .iter()
                .any(|e| e.kind == "lrm" && e.node.as_deref() == Some(name));
            (voting && lrm && m.len() == 3).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)));
}

#[test]
fn a_dead_service_node_is_removed_after_fencing_and_replaced_at_a_new_address() {
    let mut c = start(3);
    let m = marker(1);
    add_sleep_service(&c, 0, "life", m);
    let victim = wait_running_once(&c, m, LIMIT);
    let victim_name = c.nodes[victim].name.clone();
    let watch = ServiceWatch::start(m, c.pid_locator());
    let token = join_token(&c, (victim + 1) % 3);

    // A power cut of the service's node.
    let cut = Instant::now();
    c.kill_node(victim);
    let a = (victim + 1) % 3;
    let b = (victim + 2) % 3;

    // Right away it still holds its lease (or its service): refused, and
    // it stays a member.
    let early = c
        .cli(a, &["cluster", "delnode", &victim_name])
        .expect("cli");
    assert_ne!(early.code, 0, "delnode of an unfenced node must be refused");
    assert!(
        early.stderr.contains("holds its agent lease")
            || early.stderr.contains("still has services"),
        "{}",
        early.stderr
    );
    assert!(members(&c, a)
        .unwrap()
        .iter()
        .any(|(n, _, _)| *n == victim_name));

    // Fenced, recovered: then it may go.
    let (_, to) = wait_until(LIMIT, "the service recovered", || {
        watch.first_elsewhere(cut, victim)
    })
    .expect("service recovered");
    assert_ne!(to, victim);
    let mut last = String::new();
    wait_until(LIMIT, "delnode accepted after recovery", || {
        let out = c.cli(a, &["cluster", "delnode", &victim_name]).ok()?;
        last = out.stderr.clone();
        (out.code == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: last refusal: {last}"));
    let left = members(&c, b).expect("status");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.iter().any(|(n, _, _)| *n == victim_name), "{left:?}");

    // The removed node's certificate still chains to the CA, but it opens
    // nothing any more: neither Raft nor the API.
    let removed = common::client_with_node_cert(&c, victim);
    for i in [a, b] {
        let raft = removed
            .post(c.url(i, "/raft/forward"))
            .body(vec![2u8, 0])
            .send()
            .expect("answer");
        assert_eq!(raft.status().as_u16(), 403, "node{}", i + 1);
        let api = removed
            .get(c.url(i, "/api/v1/resources"))
            .send()
            .expect("answer");
        assert_eq!(api.status().as_u16(), 403, "node{}", i + 1);
    }

    // The replacement: same name, empty disk, new address.
    wipe_disk(&mut c, victim, true);
    c.start_node(victim).expect("replacement boots");
    let out = join(&c, victim, a, &token);
    assert_eq!(out.code, 0, "join of the replacement: {}", out.stderr);
    let new_addr = c.nodes[victim].addr.clone();
    wait_member_back(&c, a, &victim_name, &new_addr);
    // It caught up: its own replica has the service.
    wait_until(LIMIT, "the replacement sees the service", || {
        c.service_status(victim, "exec:life").map(|_| ())
    })
    .expect("replica caught up");

    // Fault tolerance is back: losing the node that runs the service now
    // still leaves a quorum (the replacement and one more), which
    // recovers it.
    let runs_on = to;
    let cut2 = Instant::now();
    c.kill_node(runs_on);
    let (_, to2) = wait_until(LIMIT, "the service recovered again", || {
        watch.first_elsewhere(cut2, runs_on)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)));
    assert_ne!(to2, runs_on);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn a_wiped_member_is_refused_until_deleted_then_rejoins_and_can_move_address() {
    let mut c = start(3);
    let leader = c.leader().expect("a leader");
    let f = (leader + 1) % 3;
    let name = c.nodes[f].name.clone();
    let addr = c.nodes[f].addr.clone();
    let token = join_token(&c, leader);

    // The leader knows every member's log lag and last contact.
    let cs: ClusterStatus = c.cluster_status(leader).expect("status");
    for mv in &cs.members {
        assert!(mv.log_lag.is_some(), "{mv:?}");
        assert!(!mv.role.is_empty(), "{mv:?}");
    }
    assert!(cs.members.iter().any(|m| m.role == "leader"));

    // A clean stop releases its lease; then its disk is wiped.
    c.stop_daemon_clean(f, Duration::from_secs(30))
        .expect("clean stop");
    c.kill_node(f);
    wipe_disk(&mut c, f, false);
    c.start_node(f).expect("boots empty");
    let out = join(&c, f, leader, &token);
    assert_ne!(out.code, 0, "a wiped member must not take its old id back");
    assert!(out.stderr.contains("cluster delnode"), "{}", out.stderr);

    let del = c.cli(leader, &["cluster", "delnode", &name]).expect("cli");
    assert_eq!(del.code, 0, "delnode: {}", del.stderr);
    let out = join(&c, f, leader, &token);
    assert_eq!(out.code, 0, "rejoin after delnode: {}", out.stderr);
    wait_member_back(&c, leader, &name, &addr);

    // Moving it to another address: stop it, change its config, tell the
    // cluster, start it.
    c.stop_daemon_clean(f, Duration::from_secs(30))
        .expect("clean stop");
    c.kill_node(f);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let new_addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let config_path = c.nodes[f].dir.join("node.toml");
    let text = std::fs::read_to_string(&config_path).expect("node.toml");
    std::fs::write(&config_path, text.replace(&addr, &new_addr)).expect("write");
    c.nodes[f].addr = new_addr.clone();
    let bad = c
        .cli(leader, &["cluster", "set-address", &name, "nonsense"])
        .expect("cli");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("addr"), "{}", bad.stderr);
    let set = c
        .cli(leader, &["cluster", "set-address", &name, &new_addr])
        .expect("cli");
    assert_eq!(set.code, 0, "set-address: {}", set.stderr);
    c.start_node(f).expect("boots at the new address");
    wait_member_back(&c, leader, &name, &new_addr);
    wait_until(LIMIT, "the moved node follows the log", || {
        let cs: ClusterStatus = c.cluster_status(leader).ok()?;
        let mv = cs.members.iter().find(|m| m.addr == new_addr)?;
        (mv.log_lag? < 5).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)));
}

#[test]
fn force_single_node_brings_back_a_cluster_that_lost_its_majority_for_good() {
    let mut c = start(3);
    let m = marker(3);
    add_sleep_service(&c, 0, "lonely", m);
    let runs_on = wait_running_once(&c, m, LIMIT);
    // The survivor is another node: the service must come to it.
    let s = (runs_on + 1) % 3;
    let name = c.nodes[s].name.clone();
    let watch = ServiceWatch::start(m, c.pid_locator());

    // Refused while the daemon runs (its store is open).
    let busy = c
        .cli(
            s,
            &[
                "cluster",
                "force-single-node",
                "--yes-i-have-lost-the-majority",
            ],
        )
        .expect("cli");
    assert_ne!(busy.code, 0, "must refuse while the daemon runs");
    assert!(busy.stderr.contains("daemon"), "{}", busy.stderr);

    // The majority is lost for good.
    let cut = Instant::now();
    for k in 0..3 {
        if k != s {
            c.kill_node(k);
        }
    }
    c.kill_node(s);
    // Without the confirmation nothing happens.
    let unconfirmed = c.cli(s, &["cluster", "force-single-node"]).expect("cli");
    assert_ne!(unconfirmed.code, 0);
    assert!(
        unconfirmed.stderr.contains("WARNING"),
        "{}",
        unconfirmed.stderr
    );
    let forced = c
        .cli(
            s,
            &[
                "cluster",
                "force-single-node",
                "--yes-i-have-lost-the-majority",
            ],
        )
        .expect("cli");
    assert_eq!(forced.code, 0, "force-single-node: {}", forced.stderr);
    c.start_node(s).expect("survivor boots");

    // It leads alone, fences the lost members and runs the service.
    let (_, to) = wait_until(
        Duration::from_secs(90),
        "the service recovered on the survivor",
        || watch.first_elsewhere(cut, runs_on),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)));
    assert_eq!(to, s);
    let cs: ClusterStatus = c.cluster_status(s).expect("status");
    assert_eq!(cs.raft_state, "leader");
    assert_eq!(cs.members.iter().filter(|m| m.voter).count(), 1, "{cs:?}");
    // The lost members can then be removed for good.
    for k in 0..3 {
        if k == s {
            continue;
        }
        let lost = c.nodes[k].name.clone();
        let mut last = String::new();
        wait_until(LIMIT, "delnode of a lost member", || {
            let out = c.cli(s, &["cluster", "delnode", &lost]).ok()?;
            last = out.stderr.clone();
            (out.code == 0).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {last}"));
    }
    // Removed members no longer show their last LRM state.
    let st = c.status(s).expect("status");
    assert!(
        !st.iter().any(|e| e.kind == "lrm"
            && e.node.as_deref() != Some(name.as_str())
            && e.status.contains("active")),
        "{st:?}"
    );
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}
