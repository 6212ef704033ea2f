//! Shutdown policies (spec 3.17) with three real daemons: a SIGTERM while
//! systemd reports a queued poweroff or reboot job. No systemd runs here,
//! so `HA_MANAGER_SYSTEMCTL` points the daemons at a script that answers
//! `list-jobs` as systemd would during a shutdown.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{add_sleep_service, marker, start_adjusted, wait_running_once, wait_service_state};
use ha_manager::local_cluster::procs::{marker_pids, ServiceWatch};
use ha_manager::local_cluster::wait_until;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(60);

/// A cluster whose daemons use `policy` and believe the node is going
/// down with `target` (poweroff.target or reboot.target) at SIGTERM.
fn cluster(policy: &str, target: &str) -> common::TestCluster {
    let script_dir = tempfile::tempdir().expect("temp dir").keep();
    let script = script_dir.join("systemctl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1\" = list-jobs ] && echo '7 {target} start waiting'\nexit 0\n"),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let policy = policy.to_string();
    start_adjusted(3, move |o| {
        o.extra_config = format!("shutdown_policy = \"{policy}\"\n");
        o.daemon_env = vec![(
            "HA_MANAGER_SYSTEMCTL".to_string(),
            script.display().to_string(),
        )];
    })
}

#[test]
fn failover_policy_stops_the_service_and_it_is_recovered_elsewhere() {
    let mut c = cluster("failover", "poweroff.target");
    let m = marker(1);
    add_sleep_service(&c, 0, "fo", m);
    let on = wait_running_once(&c, m, LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let t = Instant::now();
    c.signal_daemon(on, Signal::SIGTERM).expect("term");
    assert_eq!(
        c.wait_daemon_exit(on, LIMIT),
        Some(0),
        "clean exit, no reset"
    );
    assert!(marker_pids(m).iter().all(|p| c.node_of_pid(*p) != Some(on)));
    let (_, to) = wait_until(LIMIT, "recovery", || watch.first_elsewhere(t, on)).expect("moved");
    assert_ne!(to, on);
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn freeze_policy_stops_and_freezes_until_the_node_is_back() {
    let mut c = cluster("freeze", "poweroff.target");
    let m = marker(2);
    add_sleep_service(&c, 0, "fr", m);
    let on = wait_running_once(&c, m, LIMIT);
    let other = (on + 1) % 3;
    c.signal_daemon(on, Signal::SIGTERM).expect("term");
    assert_eq!(c.wait_daemon_exit(on, LIMIT), Some(0));
    wait_service_state(&c, other, "exec:fr", "freeze", &c.nodes[on].name);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        marker_pids(m).is_empty(),
        "stopped and not recovered while frozen"
    );
    c.start_daemon(on).expect("node back");
    assert_eq!(wait_running_once(&c, m, LIMIT), on, "resumed on its node");
}

#[test]
fn migrate_policy_moves_the_service_before_the_daemon_exits() {
    let mut c = cluster("migrate", "poweroff.target");
    let m = marker(3);
    add_sleep_service(&c, 0, "mg", m);
    let on = wait_running_once(&c, m, LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let t = Instant::now();
    c.signal_daemon(on, Signal::SIGTERM).expect("term");
    assert_eq!(c.wait_daemon_exit(on, LIMIT), Some(0));
    // The LRM exits only once its services have been moved away (stopped
    // here, handed to another node), which then starts them.
    assert!(marker_pids(m).iter().all(|p| c.node_of_pid(*p) != Some(on)));
    let (_, to) = wait_until(LIMIT, "the service on another node", || {
        watch.first_elsewhere(t, on)
    })
    .expect("moved");
    assert_ne!(to, on);
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn conditional_policy_freezes_on_reboot() {
    let mut c = cluster("conditional", "reboot.target");
    let m = marker(4);
    add_sleep_service(&c, 0, "cd", m);
    let on = wait_running_once(&c, m, LIMIT);
    let other = (on + 1) % 3;
    c.signal_daemon(on, Signal::SIGTERM).expect("term");
    assert_eq!(c.wait_daemon_exit(on, LIMIT), Some(0));
    wait_service_state(&c, other, "exec:cd", "freeze", &c.nodes[on].name);
    assert!(marker_pids(m).is_empty(), "a reboot stops the service");
}
