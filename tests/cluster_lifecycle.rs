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
