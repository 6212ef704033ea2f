//! Resource-affinity rules against three real daemons: a negative rule
//! added through the CLI separates two services that run on one node, a
//! manual migrate onto the partner's node is refused by the CRM naming
//! both services, and a rule that contradicts it is refused with 400
//! naming the rule and the check, changing nothing. Where the services run
//! is read from their own processes, not from the CRM's status. The
//! scheduling options (`crs get|set`) reach the CRM.

mod common;

use std::time::{Duration, Instant};

use common::{add_sleep_service, cli_ok as ok, marker, start, wait_running_once};
use ha_manager::local_cluster::procs::{marker_pids, ServiceWatch};
use ha_manager::local_cluster::{wait_until, LocalCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// The node each copy of `marker` runs on (by cgroup).
fn nodes_of(c: &LocalCluster, marker: u64) -> Vec<Option<usize>> {
    let locate = c.pid_locator();
    marker_pids(marker).into_iter().map(locate).collect()
}

/// Waits until `marker` runs exactly once, on node `node`.
fn wait_running_on(c: &LocalCluster, marker: u64, node: usize) {
    wait_until(LIMIT, &format!("the service on node {node}"), || {
        (nodes_of(c, marker) == vec![Some(node)]).then_some(())
    })
    .expect("the service moves");
}

/// Every node's daemon log, joined.
fn logs(c: &LocalCluster) -> String {
    c.nodes
        .iter()
        .map(|n| std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn negative_rule_separates_services_and_refuses_a_migrate_onto_the_partner() {
    let c = start(3);
    // `import --rules` takes resource-affinity rules as they are.
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_cfg = dir.path().join("rules.cfg");
    std::fs::write(
        &rules_cfg,
        "resource-affinity: imported\n\taffinity positive\n\tresources exec:x,exec:y\n",
    )
    .expect("write rules.cfg");
    ok(&c, 0, &["import", "--rules", &rules_cfg.to_string_lossy()]);
    let listed: Value = c.cli_json(1, &["rules", "list"]).expect("rules list");
    assert_eq!(listed[0]["id"], "imported", "{listed}");
    assert_eq!(listed[0]["type"], "resource-affinity", "{listed}");
    assert_eq!(listed[0]["affinity"], "positive", "{listed}");
    ok(&c, 1, &["rules", "remove", "imported"]);

    let (m1, m2) = (marker(1), marker(2));
    add_sleep_service(&c, 0, "db1", m1);
    add_sleep_service(&c, 0, "db2", m2);
    let db1_node = wait_running_once(&c, m1, LIMIT);
    let db2_node = wait_running_once(&c, m2, LIMIT);
    // Both on one node first, so the rule has something to undo.
    if db2_node != db1_node {
        ok(&c, 1, &["migrate", "exec:db2", &c.nodes[db1_node].name]);
        wait_running_on(&c, m2, db1_node);
    }
    let watch1 = ServiceWatch::start(m1, c.pid_locator());
    let watch2 = ServiceWatch::start(m2, c.pid_locator());

    ok(
        &c,
        2,
        &[
            "rules",
            "add",
            "resource-affinity",
            "apart",
            "--resources",
            "exec:db1,exec:db2",
            "--affinity",
            "negative",
            "--comment",
            "never together",
        ],
    );
    let (db1_node, db2_node) = wait_until(LIMIT, "db1 and db2 on different nodes", || {
        match (nodes_of(&c, m1).as_slice(), nodes_of(&c, m2).as_slice()) {
            ([Some(a)], [Some(b)]) if a != b => Some((*a, *b)),
            _ => None,
        }
    })
    .expect("the negative rule separates the services");
    assert!(watch1.max_copies() <= 1, "db1 ran twice at once");
    assert!(watch2.max_copies() <= 1, "db2 ran twice at once");

    let table = ok(&c, 0, &["rules", "config"]);
    let row = table
        .lines()
        .find(|l| l.contains(" apart "))
        .unwrap_or_else(|| panic!("rules config lists the rule:\n{table}"));
    for cell in [
        "in use",
        "resource-affinity",
        "exec:db1,exec:db2",
        "never together",
    ] {
        assert!(row.contains(cell), "row lacks '{cell}': {row}");
    }

    // A manual migrate onto the partner's node: the CRM refuses it naming
    // both services, and db2 stays where it is.
    let pid2 = marker_pids(m2);
    let since = Instant::now();
    ok(&c, 0, &["migrate", "exec:db2", &c.nodes[db1_node].name]);
    let refusal = wait_until(LIMIT, "the CRM refusing the migrate", || {
        logs(&c)
            .lines()
            .find(|l| {
                l.contains("crm command 'migrate exec:db2")
                    && l.contains("in negative affinity with service 'exec:db2'")
            })
            .map(str::to_string)
    })
    .expect("the CRM refuses the migrate");
    assert!(refusal.contains("service 'exec:db1'"), "{refusal}");
    // Two more CRM rounds: nothing moved.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(marker_pids(m2), pid2, "db2 was restarted");
    assert_eq!(nodes_of(&c, m2), vec![Some(db2_node)]);
    assert!(watch2.first_gone_from(since, db2_node).is_none());

    // A positive rule on the same pair fails feasibility check 4: 400
    // naming the rule and the check, and the rules stay as they were.
    let before: Value = c.cli_json(1, &["rules", "config"]).expect("rules config");
    let out = c
        .cli(
            1,
            &[
                "rules",
                "add",
                "resource-affinity",
                "together",
                "--resources",
                "exec:db1,exec:db2",
                "--affinity",
                "positive",
            ],
        )
        .expect("the CLI runs");
    assert_ne!(out.code, 0, "a contradicting rule was accepted");
    assert!(
        out.stderr.contains("Rule 'together' is invalid")
            && out
                .stderr
                .contains("shares two or more resources with 'apart'"),
        "{}",
        out.stderr
    );
    let after: Value = c.cli_json(1, &["rules", "config"]).expect("rules config");
    assert_eq!(before, after);

    // Scheduling options: a bad value is refused naming the key and
    // changes nothing; a good one reaches the CRM.
    let before: Value = c.cli_json(0, &["crs", "get"]).expect("crs get");
    assert_eq!(before["options"]["ha"], "basic");
    let out = c
        .cli(0, &["crs", "set", "ha-rebalance-on-start=1", "ha=fancy"])
        .expect("the CLI runs");
    assert_ne!(out.code, 0, "a bad crs value was accepted");
    assert!(
        out.stderr.contains("crs.ha") && out.stderr.contains("fancy"),
        "{}",
        out.stderr
    );
    let unchanged: Value = c.cli_json(1, &["crs", "get"]).expect("crs get");
    assert_eq!(before, unchanged);
    ok(
        &c,
        2,
        &["crs", "set", "ha=static", "ha-rebalance-on-start=1"],
    );
    let text = ok(&c, 1, &["crs", "get"]);
    assert!(text.contains("ha static\n"), "{text}");
    assert!(text.contains("ha-rebalance-on-start 1\n"), "{text}");
    wait_until(LIMIT, "the CRM switching to the static scheduler", || {
        logs(&c)
            .contains("switching scheduler mode from 'basic' to 'static'")
            .then_some(())
    })
    .expect("the CRM reads the crs options");
}
