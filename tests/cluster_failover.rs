//! Three real daemons on loopback, each with its own watchdog-mux (test
//! backend: a fired watchdog SIGKILLs the node's cgroup) — the failover
//! paths of issue 5, checked on the service processes themselves.

mod common;

use std::time::{Duration, Instant};

use common::{
    add_sleep_service, marker, start, start_adjusted, wait_running_once, wait_service_state,
};
use ha_manager::local_cluster::procs::{marker_pids, ServiceWatch};
use ha_manager::local_cluster::wait_until;
use nix::sys::signal::Signal;

const START_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_service_added_through_the_cli_runs_on_exactly_one_node() {
    let c = start(3);
    let m = marker(1);
    add_sleep_service(&c, 1, "once", m);
    let node = wait_running_once(&c, m, START_LIMIT);
    wait_service_state(&c, 2, "exec:once", "started", &c.nodes[node].name);
    let watch = ServiceWatch::start(m, c.pid_locator());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    assert_eq!(marker_pids(m).len(), 1);
}

#[test]
fn sigkill_of_the_service_node_moves_the_service_exactly_once() {
    let mut c = start(3);
    let m = marker(2);
    add_sleep_service(&c, 0, "killme", m);
    let victim = wait_running_once(&c, m, START_LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let killed_at = Instant::now();
    c.signal_daemon(victim, Signal::SIGKILL).expect("kill");
    let survivor = (victim + 1) % 3;
    let (moved_at, to) = wait_until(START_LIMIT, "the service on another node", || {
        watch.first_elsewhere(killed_at, victim)
    })
    .expect("service recovered");
    assert_ne!(to, victim);
    let gone_at = watch
        .first_gone_from(killed_at, victim)
        .expect("the old copy ended");
    assert!(gone_at <= moved_at, "new copy before the old one ended");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    wait_service_state(&c, survivor, "exec:killme", "started", &c.nodes[to].name);
    assert!(c.daemon_exited(victim));
}

#[test]
fn a_hung_node_is_fenced_and_never_runs_a_second_copy() {
    let mut c = start(3);
    let m = marker(3);
    add_sleep_service(&c, 0, "hang", m);
    let victim = wait_running_once(&c, m, START_LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let stopped_at = Instant::now();
    c.signal_daemon(victim, Signal::SIGSTOP).expect("stop");
    let (_, to) = wait_until(START_LIMIT, "the service on another node", || {
        watch.first_elsewhere(stopped_at, victim)
    })
    .expect("service recovered");
    // The hang outlasted the lease: the node's watchdog fired and took
    // the daemon with it (a reset). SIGCONT reaches nothing.
    let _ = c.signal_daemon(victim, Signal::SIGCONT);
    wait_until(
        Duration::from_secs(10),
        "the hung daemon to be reset",
        || c.daemon_exited(victim).then_some(()),
    )
    .expect("watchdog reset the hung node");
    // The node boots again and rejoins; the service stays where it is.
    c.start_node(victim).expect("node restarts");
    let survivor = (victim + 1) % 3;
    wait_until(Duration::from_secs(60), "the node back online", || {
        let st = c.status(survivor).ok()?;
        st.iter()
            .any(|e| e.kind == "lrm" && e.node.as_deref() == Some(c.nodes[victim].name.as_str()))
            .then_some(())
    })
    .expect("node rejoins");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    assert_eq!(wait_running_once(&c, m, START_LIMIT), to);
}

#[test]
fn killing_the_leader_loses_no_acknowledged_request() {
    let c = start(3);
    let leader = wait_until(Duration::from_secs(10), "a leader", || c.leader()).expect("leader");
    let m = marker(4);
    add_sleep_service(&c, leader, "keep", m);
    let on = wait_running_once(&c, m, START_LIMIT);
    // Pick a target that is neither the leader nor the current node when
    // possible (the service may run on the leader).
    let target = (0..3)
        .find(|i| *i != leader && *i != on)
        .unwrap_or((on + 1) % 3);
    let target_name = c.nodes[target].name.clone();
    let out = c
        .cli(leader, &["migrate", "exec:keep", &target_name])
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Acknowledged: now the leader dies before acting on it.
    c.signal_daemon(leader, Signal::SIGKILL)
        .expect("kill leader");
    let other = (0..3).find(|i| *i != leader).expect("a survivor");
    wait_until(Duration::from_secs(90), "the migration to finish", || {
        let pids = marker_pids(m);
        (pids.len() == 1 && c.node_of_pid(pids[0]) == Some(target)).then_some(())
    })
    .expect("the acknowledged migration was carried out by the new leader");
    wait_service_state(&c, other, "exec:keep", "started", &target_name);
}

#[test]
fn a_daemon_stop_freezes_its_services_and_a_restart_resumes_them() {
    let mut c = start(3);
    let m = marker(5);
    add_sleep_service(&c, 0, "frozen", m);
    let on = wait_running_once(&c, m, START_LIMIT);
    let pid = marker_pids(m)[0];
    let watch = ServiceWatch::start(m, c.pid_locator());
    c.signal_daemon(on, Signal::SIGTERM).expect("term");
    // A clean stop: the LRM waits for its services to be frozen, releases
    // the lease and the watchdog, and exits 0; nothing is fenced.
    assert_eq!(c.wait_daemon_exit(on, Duration::from_secs(30)), Some(0));
    let other = (on + 1) % 3;
    wait_service_state(&c, other, "exec:frozen", "freeze", &c.nodes[on].name);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        marker_pids(m),
        vec![pid],
        "the frozen service keeps running"
    );
    c.start_daemon(on).expect("daemon restarts");
    wait_service_state(&c, other, "exec:frozen", "started", &c.nodes[on].name);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        marker_pids(m),
        vec![pid],
        "no second copy after the restart"
    );
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn groups_place_and_recover_services_and_migrate_to_rules() {
    let c = start(3);
    // Groups are legacy: like an operator moving from Proxmox, the test
    // imports a groups.cfg and a resources.cfg that uses it.
    let m = marker(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let groups = dir.path().join("groups.cfg");
    std::fs::write(&groups, "group: prefer\n\tnodes node3:2,node2:1\n").unwrap();
    let resources = dir.path().join("resources.cfg");
    std::fs::write(
        &resources,
        format!(
            "exec: pref\n\tgroup prefer\n\tcmd {}\n",
            ha_manager::local_cluster::procs::marker_command(m)
        ),
    )
    .unwrap();
    let out = c
        .cli(
            0,
            &[
                "import",
                "--groups",
                groups.to_str().unwrap(),
                "--resources",
                resources.to_str().unwrap(),
            ],
        )
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("imported 1 resources, 1 groups"),
        "{}",
        out.stdout
    );
    // Placed on the highest-priority node, not on the leader.
    assert_eq!(wait_running_once(&c, m, START_LIMIT), 2);
    // The CRM migrates the group into a rule (spec 3.20): the resource
    // loses `group`, groups.cfg empties, rules.cfg has `ha-group-prefer`.
    wait_until(Duration::from_secs(60), "the group migration", || {
        let rules: serde_json::Value = c.cli_json(0, &["rules", "config"]).ok()?;
        let groups: serde_json::Value = c.cli_json(0, &["groupconfig"]).ok()?;
        let migrated = rules.as_array()?.iter().any(|r| {
            r["id"] == "ha-group-prefer" && r["resources"].as_array().is_some_and(|a| a.len() == 1)
        });
        (migrated && groups.as_array()?.is_empty()).then_some(())
    })
    .expect("groups migrate");
    let config = c.cli(0, &["config"]).expect("cli");
    assert!(!config.stdout.contains("group"), "{}", config.stdout);
    // The rule keeps steering recovery: node3 dies, node2 (priority 1)
    // takes the service rather than node1.
    let watch = ServiceWatch::start(m, c.pid_locator());
    let killed = Instant::now();
    c.signal_daemon(2, Signal::SIGKILL).expect("kill");
    let (_, to) = wait_until(START_LIMIT, "recovery", || watch.first_elsewhere(killed, 2))
        .expect("recovered");
    assert_eq!(to, 1, "recovered onto the preferred survivor");
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn a_node_whose_watchdog_does_not_fit_the_profile_says_so_and_runs_nothing() {
    // node2's watchdog-mux resets only 10 s after its last feed, where the
    // `fast` profile needs 1 s: node2 could outlive its lease.
    let c = start_adjusted(3, |o| {
        o.mux_device_timeout.insert(1, Duration::from_secs(10));
    });
    let m = marker(7);
    add_sleep_service(&c, 0, "misfit", m);
    // Prefer node2, so the service is sent there first.
    let out = c
        .cli(
            0,
            &[
                "rules",
                "add",
                "node-affinity",
                "prefer-node2",
                "--resources",
                "exec:misfit",
                "--nodes",
                "node2:2,node1:1,node3:1",
            ],
        )
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let on = wait_running_once(&c, m, START_LIMIT);
    assert_ne!(on, 1, "the service ran on the unprotected node2");
    wait_until(
        Duration::from_secs(30),
        "node2 reporting its watchdog",
        || {
            let st = c.status(0).ok()?;
            st.iter()
                .any(|e| {
                    e.kind == "lrm"
                        && e.node.as_deref() == Some("node2")
                        && e.status.contains("watchdog cannot protect this node")
                })
                .then_some(())
        },
    )
    .expect("status says why node2 runs nothing");
    std::thread::sleep(Duration::from_secs(3));
    let obs = watch.observations();
    assert!(
        obs.iter()
            .all(|o| o.copies.iter().all(|(_, node)| *node != Some(1))),
        "a copy ran on node2: {obs:?}"
    );
    assert_eq!(watch.max_copies(), 1, "{obs:?}");
    let log = std::fs::read_to_string(c.nodes[1].dir.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("exceeds the timing profile 'fast'"),
        "node2's log names the misfit"
    );
    assert!(c.resets(1) == 0, "node2 was reset although it never armed");
}
