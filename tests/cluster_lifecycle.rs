//! Cluster life cycle with real daemons: init/join (in every test's
//! set-up), status of the members, and `cluster leave`.

mod common;

use std::time::Duration;

use common::{add_sleep_service, marker, start, wait_running_once};
use ha_manager::local_cluster::wait_until;

#[test]
fn a_node_with_services_cannot_leave_and_an_idle_one_leaves_cleanly() {
    let mut c = start(3);
    let cs = c.cluster_status(0).expect("status");
    assert_eq!(cs.members.iter().filter(|m| m.voter).count(), 3);
    assert!(cs.leader.is_some());

    let m = marker(1);
    add_sleep_service(&c, 0, "pinned", m);
    let on = wait_running_once(&c, m, Duration::from_secs(60));
    let refused = c.cli(on, &["cluster", "leave"]).expect("cli");
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("still has services") && refused.stderr.contains("exec:pinned"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        c.cluster_status(0).expect("status").members.len(),
        3,
        "a refused leave changes nothing"
    );

    let idle = (on + 1) % 3;
    let out = c.cli(idle, &["cluster", "leave"]).expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.wait_daemon_exit(idle, Duration::from_secs(30)), Some(0));
    let via = (idle + 1) % 3;
    wait_until(Duration::from_secs(30), "two members", || {
        let cs = c.cluster_status(via).ok()?;
        (cs.members.len() == 2).then_some(())
    })
    .expect("membership shrinks");
    let data = c.nodes[idle].dir.join("data");
    assert!(
        !data.join("cluster.json").exists(),
        "credentials moved aside"
    );
    // The two remaining nodes still keep the service running, once.
    assert_eq!(wait_running_once(&c, m, Duration::from_secs(30)), on);
}

/// The documented rolling upgrade: every node in turn, leader included,
/// is stopped cleanly (its services freeze and keep running, its lease
/// and watchdog are released), started again (a new binary would be
/// installed in between), and the next node waits until the cluster has
/// all its voters and the restarted LRM is active again.
#[test]
fn a_rolling_restart_of_every_node_keeps_every_service_running() {
    use ha_manager::local_cluster::procs::{marker_pids, ServiceWatch};

    let mut c = start(3);
    let marks = [marker(11), marker(12), marker(13)];
    for (k, m) in marks.iter().enumerate() {
        add_sleep_service(&c, k, &format!("roll{k}"), *m);
    }
    let pids: Vec<Vec<u32>> = marks
        .iter()
        .map(|m| {
            wait_running_once(&c, *m, Duration::from_secs(60));
            marker_pids(*m)
        })
        .collect();
    let watches: Vec<ServiceWatch> = marks
        .iter()
        .map(|m| ServiceWatch::start(*m, c.pid_locator()))
        .collect();
    let resets_before: Vec<usize> = (0..3).map(|i| c.resets(i)).collect();
    // Followers first, the leader last, as the guide says.
    let leader = c.leader().expect("leader");
    let order: Vec<usize> = (0..3).filter(|i| *i != leader).chain([leader]).collect();
    for i in order {
        assert_eq!(
            c.stop_daemon_clean(i, Duration::from_secs(30))
                .expect("clean stop"),
            0
        );
        c.start_daemon(i).expect("restart");
        let other = (i + 1) % 3;
        let name = c.nodes[i].name.clone();
        wait_until(
            Duration::from_secs(60),
            &format!("{name} back: voters and an active LRM"),
            || {
                let cs = c.cluster_status(other).ok()?;
                let voters = cs.members.iter().filter(|m| m.voter).count();
                let st = c.status(other).ok()?;
                let lrm_active = st.iter().any(|e| {
                    e.kind == "lrm"
                        && e.node.as_deref() == Some(name.as_str())
                        && e.status.contains("active")
                });
                let services_started = st
                    .iter()
                    .filter(|e| e.kind == "service")
                    .all(|e| e.crm_state.as_deref() == Some("started"));
                (voters == 3 && lrm_active && services_started).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)));
    }
    for (k, m) in marks.iter().enumerate() {
        assert_eq!(marker_pids(*m), pids[k], "service {k} kept its process");
        assert_eq!(
            watches[k].max_copies(),
            1,
            "{:?}",
            watches[k].observations()
        );
    }
    let resets_after: Vec<usize> = (0..3).map(|i| c.resets(i)).collect();
    assert_eq!(resets_before, resets_after, "no node was reset");
}
