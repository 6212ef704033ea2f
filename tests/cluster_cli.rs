//! The `ha-manager` CLI and the HTTP API against three real daemons on
//! loopback: bad input on every verb changes nothing, the API refuses
//! requests without the right token, and the CRM commands (migrate,
//! relocate, stop, node maintenance, the error state) act on the real
//! service processes.

mod common;

use std::time::{Duration, Instant};

use common::{
    add_sleep_service, cli_ok as ok, marker, start, wait_running_once, wait_service_state,
};
use ha_manager::local_cluster::procs::{marker_command, marker_pids, ServiceWatch};
use ha_manager::local_cluster::{wait_until, CliOutput, LocalCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Runs the CLI against node `via`.
fn run(c: &LocalCluster, via: usize, args: &[&str]) -> CliOutput {
    c.cli(via, args).expect("the CLI runs")
}

/// Runs the CLI and asserts it failed with every one of `needles` on
/// stderr (and no panic).
fn fails(c: &LocalCluster, via: usize, args: &[&str], needles: &[&str]) {
    let out = run(c, via, args);
    assert_ne!(
        out.code,
        0,
        "ha-manager {} succeeded but must fail; stdout: {}",
        args.join(" "),
        out.stdout
    );
    assert!(
        !out.stderr.contains("panicked"),
        "ha-manager {} panicked: {}",
        args.join(" "),
        out.stderr
    );
    eprintln!("[{}] -> {}", args.join(" "), out.stderr.trim());
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "ha-manager {}: stderr does not name '{n}': {}",
            args.join(" "),
            out.stderr.trim()
        );
    }
}

/// The resources, groups and rules as node `via` lists them (JSON, with
/// digests).
fn config_snapshot(c: &LocalCluster, via: usize) -> (Value, Value, Value) {
    let res: Value = c.cli_json(via, &["config"]).expect("config");
    let groups: Value = c.cli_json(via, &["groupconfig"]).expect("groupconfig");
    let rules: Value = c.cli_json(via, &["rules", "config"]).expect("rules config");
    (res, groups, rules)
}

/// The resource `sid` as node `via` lists it.
fn resource(c: &LocalCluster, via: usize, sid: &str) -> Option<Value> {
    let res: Value = c.cli_json(via, &["config"]).expect("config");
    res.as_array()?
        .iter()
        .find(|r| r["sid"].as_str() == Some(sid))
        .cloned()
}

/// Waits until node `via` reports `sid` in CRM state `state` (any node).
fn wait_crm_state(c: &LocalCluster, via: usize, sid: &str, state: &str) {
    wait_until(LIMIT, &format!("{sid} in state {state}"), || {
        let e = c.service_status(via, sid)?;
        (e.crm_state.as_deref() == Some(state)).then_some(())
    })
    .expect("service reaches the state");
}

/// Waits until exactly one copy runs, on node `node`.
fn wait_running_on(c: &LocalCluster, m: u64, node: usize) {
    wait_until(
        LIMIT,
        &format!("the service running once on node{}", node + 1),
        || {
            let pids = marker_pids(m);
            (pids.len() == 1 && c.node_of_pid(pids[0]) == Some(node)).then_some(())
        },
    )
    .expect("service runs on the node");
}

// ----- 1. bad input ----------------------------------------------------------

/// A refused command line and the words its error must contain (the field
/// or the offending value).
type BadCase = (&'static [&'static str], &'static [&'static str]);

/// Bad input for every verb; `exec:good` exists, nothing else does.
#[rustfmt::skip]
const BAD_INPUT: &[BadCase] = &[
    // add: SID, option values, agent parameters, duplicates
    (&["add", "vm:1"], &["sid", "vm:1"]),
    (&["add", "foo"], &["sid", "foo"]),
    (&["add", "Foo:bar"], &["sid", "Foo:bar"]),
    (&["add", "foo:bar"], &["sid", "foo"]),
    (&["add", "foo:bar", "--param", "cmd=true"], &["sid", "foo"]),
    (&["add", "vm:100"], &["sid", "vm"]),
    (&["add", "exec:new", "--max_restart", "abc"], &["max_restart", "abc"]),
    (&["add", "exec:new", "--max_relocate=-1"], &["max_relocate", "-1"]),
    (&["add", "exec:new", "--state", "bogus"], &["state", "bogus"]),
    (&["add", "exec:new", "--failback", "perhaps"], &["failback", "perhaps"]),
    (&["add", "exec:new", "--group", "nosuch"], &["group", "nosuch"]),
    (&["add", "exec:new", "--param", "noequals"], &["param", "noequals"]),
    (&["add", "exec:new", "--param", "1bad=x"], &["1bad"]),
    (&["add", "exec:nocmd"], &["cmd"]),
    (&["add", "exec:new", "--param", "cmd=true", "--param", "cmdd=1"], &["cmdd"]),
    (&["add", "exec:new", "--param", "cmd=true", "--param", "cwd=rel"], &["cwd", "rel"]),
    (&["add", "ocf:vip", "--param", "agent=IPaddr2"], &["agent", "IPaddr2"]),
    (&["add", "systemd:x", "--param", "unit=-f.service"], &["unit", "-f.service"]),
    (&["add", "exec:good", "--param", "cmd=true"], &["exec:good", "already defined"]),
    (&["add", "exec:new", "--bogus", "1"], &["--bogus"]),
    // remove
    (&["remove", "exec:missing"], &["exec:missing"]),
    (&["remove", "foo"], &["sid", "foo"]),
    // set
    (&["set", "exec:good", "--state", "bogus"], &["state", "bogus"]),
    (&["set", "exec:good", "--max_restart", "abc"], &["max_restart", "abc"]),
    (&["set", "exec:good", "--group", "nosuch"], &["group", "nosuch"]),
    (&["set", "exec:good", "--delete", "bogus"], &["delete", "bogus"]),
    (&["set", "exec:good", "--delete", "cmd"], &["cmd"]),
    (&["set", "exec:good", "--param", "noequals"], &["param", "noequals"]),
    (&["set", "exec:good", "--param", "stop_signal=NOPE"], &["stop_signal", "NOPE"]),
    (&["set", "exec:good", "--digest", "1", "--comment", "x"], &["digest"]),
    (&["set", "exec:missing", "--state", "stopped"], &["exec:missing"]),
    (&["set", "vm:1", "--state", "stopped"], &["sid", "vm:1"]),
    // migrate / relocate, plain and as crm-command
    (&["migrate", "exec:good", "node9"], &["node", "node9"]),
    (&["migrate", "exec:good", "bad node"], &["node", "bad node"]),
    (&["migrate", "exec:missing", "node2"], &["exec:missing"]),
    (&["migrate", "foo", "node2"], &["sid", "foo"]),
    (&["migrate", "exec:good"], &["NODE"]),
    (&["relocate", "exec:good", "node9"], &["node", "node9"]),
    (&["relocate", "exec:missing", "node2"], &["exec:missing"]),
    (&["relocate", "foo", "node2"], &["sid", "foo"]),
    (&["crm-command", "migrate", "exec:good", "node9"], &["node", "node9"]),
    (&["crm-command", "migrate", "exec:missing", "node2"], &["exec:missing"]),
    (&["crm-command", "relocate", "exec:good", "node9"], &["node", "node9"]),
    (&["crm-command", "relocate", "foo", "node2"], &["sid", "foo"]),
    // crm-command stop
    (&["crm-command", "stop", "exec:good", "abc"], &["timeout", "abc"]),
    (&["crm-command", "stop", "exec:good", "--", "-1"], &["timeout", "-1"]),
    (&["crm-command", "stop", "exec:good", "1.5"], &["timeout", "1.5"]),
    (&["crm-command", "stop", "exec:missing", "0"], &["exec:missing"]),
    (&["crm-command", "stop", "exec:good"], &["TIMEOUT"]),
    // crm-command node-maintenance
    (&["crm-command", "node-maintenance", "enable", "node9"], &["node", "node9"]),
    (&["crm-command", "node-maintenance", "disable", "node9"], &["node", "node9"]),
    (&["crm-command", "node-maintenance", "bogus", "node1"], &["bogus"]),
    (&["crm-command", "bogus"], &["bogus"]),
    // groups: legacy, refused once groups.cfg is empty (spec 1.4)
    (&["groupadd", "g2"], &["nodes"]),
    (&["groupadd", "g2", "--nodes", "node1"], &["groups", "migrated", "rules add"]),
    (&["groupadd", "bad/id", "--nodes", "node1"], &["group", "bad/id"]),
    (&["groupset", "nosuch", "--comment", "x"], &["migrated"]),
    (&["groupremove", "nosuch"], &["migrated"]),
    // rules (the rule `keep` exists and binds exec:good)
    (&["rules", "add", "node-affinity", "r2", "--nodes", "node1"], &["resources"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good"], &["nodes"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:missing", "--nodes", "node1"], &["resources", "exec:missing"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "foo", "--nodes", "node1"], &["resources", "foo"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", "node9"], &["nodes", "node9"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", "node1:abc"], &["nodes", "abc"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", ""], &["nodes"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", "node1", "--strict", "perhaps"], &["strict", "perhaps"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", "node1", "--disable", "perhaps"], &["disable", "perhaps"]),
    (&["rules", "add", "node-affinity", "r2", "--resources", "exec:good", "--nodes", "node1"], &["Rule 'r2' is invalid", "exec:good", "keep"]),
    (&["rules", "add", "node-affinity", "keep", "--resources", "exec:good", "--nodes", "node1"], &["keep", "already defined"]),
    (&["rules", "add", "node-affinity", "bad/id", "--resources", "exec:good", "--nodes", "node1"], &["rule", "bad/id"]),
    (&["rules", "add", "node-affinity", "_mine", "--resources", "exec:good", "--nodes", "node1"], &["rule", "_mine"]),
    (&["rules", "add", "resource-affinity", "r2", "--resources", "exec:good", "--affinity", "negative", "--nodes", "node1"], &["nodes"]),
    (&["rules", "add", "resource-affinity", "r2", "--resources", "exec:good"], &["affinity"]),
    (&["rules", "add", "resource-affinity", "r2", "--resources", "exec:good", "--affinity", "apart"], &["affinity", "apart"]),
    (&["rules", "add", "resource-affinity", "r2", "--resources", "exec:good", "--affinity", "negative"], &["Rule 'r2' is invalid", "at least two resources"]),
    (&["rules", "add", "bogus", "r2", "--resources", "exec:good", "--nodes", "node1"], &["type", "bogus"]),
    (&["rules", "set", "node-affinity", "nosuch", "--comment", "x"], &["nosuch"]),
    (&["rules", "set", "node-affinity", "keep", "--nodes", "node9"], &["nodes", "node9"]),
    (&["rules", "set", "node-affinity", "keep", "--resources", ""], &["resources"]),
    (&["rules", "set", "node-affinity", "keep", "--delete", "nodes"], &["delete", "nodes"]),
    (&["rules", "set", "node-affinity", "keep", "--digest", "1", "--comment", "x"], &["digest"]),
    (&["rules", "set", "resource-affinity", "keep", "--comment", "x"], &["type", "resource-affinity"]),
    (&["rules", "remove", "nosuch"], &["nosuch"]),
    (&["rules", "config", "--type", "bogus"], &["type", "bogus"]),
    (&["rules", "list", "--resource", "foo"], &["resource", "foo"]),
    (&["rules", "config", "--resource", "foo"], &["resource", "foo"]),
    // remove --purge
    (&["remove", "exec:good", "--purge", "perhaps"], &["purge", "perhaps"]),
    // import
    (&["import"], &["nothing to import"]),
    (&["import", "--resources", "/nonexistent/resources.cfg"], &["/nonexistent/resources.cfg"]),
    // no such verb
    (&["frobnicate"], &["frobnicate"]),
];

#[test]
fn bad_input_on_every_verb_is_refused_and_changes_nothing() {
    let c = start(3);
    let m = marker(11);
    let cmd = format!("cmd={}", marker_command(m));
    ok(
        &c,
        0,
        &["add", "exec:good", "--comment", "keep me", "--param", &cmd],
    );
    let on = wait_running_once(&c, m, LIMIT);
    wait_service_state(&c, 1, "exec:good", "started", &c.nodes[on].name);
    let pid = marker_pids(m)[0];
    // A rule over every node: it changes nothing about where exec:good runs.
    ok(
        &c,
        0,
        &[
            "rules",
            "add",
            "node-affinity",
            "keep",
            "--resources",
            "exec:good",
            "--nodes",
            "node1,node2,node3",
        ],
    );
    let watch = ServiceWatch::start(m, c.pid_locator());
    let before = config_snapshot(&c, 1);

    for (i, (args, needles)) in BAD_INPUT.iter().enumerate() {
        // Spread over the nodes: the leader and the followers refuse alike.
        fails(&c, i % 3, args, needles);
    }
    // Files with errors are refused with their own name and line; an import
    // into documents that already have entries is refused as a whole.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_resources = dir.path().join("my-resources.cfg");
    std::fs::write(
        &bad_resources,
        "exec: x\n\tcmd sleep 1\n\tmax_restart lots\n",
    )
    .unwrap();
    let bad_groups = dir.path().join("my-groups.cfg");
    std::fs::write(&bad_groups, "group: gold\n\tnodes node1\n\trestricted 2\n").unwrap();
    let good_resources = dir.path().join("resources.cfg");
    std::fs::write(&good_resources, "exec: other\n\tcmd sleep 1\n").unwrap();
    let good_groups = dir.path().join("groups.cfg");
    std::fs::write(&good_groups, "group: gold\n\tnodes node1\n").unwrap();
    let good_rules = dir.path().join("rules.cfg");
    std::fs::write(
        &good_rules,
        "node-affinity: rr\n\tresources exec:good\n\tnodes node1\n",
    )
    .unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let import_cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--resources".into(), path(&bad_resources)],
            vec![
                path(&bad_resources) + ":3",
                "max_restart".into(),
                "lots".into(),
            ],
        ),
        (
            vec!["--groups".into(), path(&bad_groups)],
            vec![path(&bad_groups) + ":3", "restricted".into()],
        ),
        (
            vec!["--resources".into(), path(&good_resources)],
            vec!["resources".into(), "already".into()],
        ),
        (
            vec!["--rules".into(), path(&good_rules)],
            vec!["rules".into(), "already".into()],
        ),
        // The groups file is fine, but the resources are refused: nothing
        // of the two is written.
        (
            vec![
                "--groups".into(),
                path(&good_groups),
                "--resources".into(),
                path(&good_resources),
            ],
            vec!["resources".into(), "already".into()],
        ),
    ];
    for (i, (extra, needles)) in import_cases.iter().enumerate() {
        let mut args = vec!["import"];
        args.extend(extra.iter().map(String::as_str));
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        fails(&c, i % 3, &args, &needles);
    }

    let after = config_snapshot(&c, 1);
    assert_eq!(before.0, after.0, "resources changed by refused commands");
    assert_eq!(before.1, after.1, "groups changed by refused commands");
    assert_eq!(before.2, after.2, "rules changed by refused commands");
    // Nothing was queued for the CRM either: the service stays where it is.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(marker_pids(m), vec![pid], "the service was touched");
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    let e = c.service_status(2, "exec:good").expect("status entry");
    assert_eq!(e.crm_state.as_deref(), Some("started"));
    assert_eq!(e.node.as_deref(), Some(c.nodes[on].name.as_str()));
    let st = c.status(2).expect("status");
    assert!(
        st.iter()
            .filter(|e| e.kind == "lrm")
            .all(|e| !e.status.contains("maintenance")),
        "a refused node-maintenance was applied: {st:?}"
    );
    // The digest guard lets an edit based on the current version through.
    let digest = before.0[0]["digest"].as_u64().expect("digest").to_string();
    ok(
        &c,
        2,
        &[
            "set",
            "exec:good",
            "--digest",
            &digest,
            "--comment",
            "edited",
        ],
    );
    let r = resource(&c, 0, "exec:good").expect("resource");
    assert_eq!(r["comment"].as_str(), Some("edited"), "{r}");
    fails(
        &c,
        0,
        &[
            "set",
            "exec:good",
            "--digest",
            &digest,
            "--comment",
            "again",
        ],
        &["digest"],
    );
}

// ----- 2. API authentication and /metrics -----------------------------------

#[test]
fn the_api_refuses_missing_or_wrong_tokens_and_metrics_are_prometheus_text() {
    let c = start(3);
    let m = marker(21);
    add_sleep_service(&c, 0, "api", m);
    let on = wait_running_once(&c, m, LIMIT);
    wait_service_state(&c, 1, "exec:api", "started", &c.nodes[on].name);
    let before = config_snapshot(&c, 1);
    let token = common::make_token(&c, "test-admin", "admin");
    let base = c.url(1, "/api/v1");
    let http = c.https_client(0).expect("client");
    let new_m = marker(22);
    let create = serde_json::json!({
        "sid": "exec:sneaky",
        "options": {"cmd": marker_command(new_m)},
    });
    let maintenance =
        serde_json::json!({"command": "node-maintenance-enable", "node": c.nodes[on].name});
    let stop = serde_json::json!({"command": "stop", "sid": "exec:api", "timeout": 0});
    let update = serde_json::json!({"options": {"state": "stopped"}});
    let wrong = format!("Bearer {token}x");
    let short = format!("Bearer {}", &token[..token.len() - 1]);
    let basic = format!("Basic {token}");
    let bare = token.clone();
    let headers: [Option<&str>; 7] = [
        None,
        Some("Bearer wrong"),
        Some(&wrong),
        Some(&short),
        Some(&basic),
        Some(&bare),
        Some("Bearer"),
    ];
    for header in headers {
        let requests = [
            http.get(format!("{base}/resources")),
            http.get(format!("{base}/status/current")),
            http.get(format!("{base}/cluster/status")),
            http.post(format!("{base}/resources")).json(&create),
            http.post(format!("{base}/crm-command")).json(&maintenance),
            http.post(format!("{base}/crm-command")).json(&stop),
            http.put(format!("{base}/resources/exec:api")).json(&update),
            http.delete(format!("{base}/resources/exec:api")),
            http.post(format!("{base}/resources/exec:api/migrate"))
                .json(&serde_json::json!({"node": c.nodes[(on + 1) % 3].name})),
            http.post(format!("{base}/groups"))
                .json(&serde_json::json!({"group": "g9", "options": {"nodes": "node1"}})),
            http.post(format!("{base}/rules")).json(&serde_json::json!({
                "type": "node-affinity", "rule": "r9",
                "options": {"resources": "exec:api", "nodes": "node1"},
            })),
            http.delete(format!("{base}/rules/r9")),
            http.post(format!("{base}/config/import"))
                .json(&serde_json::json!({"groups": "group: g9\n\tnodes node1\n"})),
        ];
        for req in requests {
            let req = match header {
                Some(h) => req.header(reqwest::header::AUTHORIZATION, h),
                None => req,
            };
            let built = req.build().expect("request");
            let what = format!("{} {} with {header:?}", built.method(), built.url());
            let resp = http.execute(built).expect("daemon answers");
            assert_eq!(resp.status().as_u16(), 401, "{what}");
            let body: Value = resp.json().expect("JSON error body");
            assert!(
                body["error"].as_str().is_some_and(|e| e.contains("token")),
                "{what}: {body}"
            );
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        before,
        config_snapshot(&c, 1),
        "a refused request changed the config"
    );
    assert!(marker_pids(new_m).is_empty());
    assert_eq!(
        wait_running_once(&c, m, LIMIT),
        on,
        "a refused request moved the service"
    );
    let st = c.status(1).expect("status");
    assert!(
        st.iter()
            .filter(|e| e.kind == "lrm")
            .all(|e| !e.status.contains("maintenance")),
        "{st:?}"
    );

    // The right token works, on every node (the token is cluster-wide).
    let good = format!("Bearer {token}");
    for i in 0..3 {
        let resp = http
            .get(c.url(i, "/api/v1/resources"))
            .header(reqwest::header::AUTHORIZATION, &good)
            .send()
            .expect("daemon answers");
        assert_eq!(resp.status().as_u16(), 200, "node{}", i + 1);
        let list: Value = resp.json().expect("JSON");
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    }
    let resp = http
        .post(format!("{base}/resources"))
        .header(reqwest::header::AUTHORIZATION, &good)
        .json(&create)
        .send()
        .expect("daemon answers");
    assert_eq!(resp.status().as_u16(), 200);
    let reply: Value = resp.json().expect("JSON");
    assert!(reply["digest"].as_u64().is_some(), "{reply}");
    assert!(resource(&c, 2, "exec:sneaky").is_some());
    wait_running_once(&c, new_m, LIMIT);
    // A bad body with a good token: 4xx, never 401 or 5xx.
    let resp = http
        .post(format!("{base}/resources"))
        .header(reqwest::header::AUTHORIZATION, &good)
        .body("{not json")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .send()
        .expect("daemon answers");
    assert!(
        resp.status().is_client_error() && resp.status().as_u16() != 401,
        "{}",
        resp.status()
    );

    // /metrics: refused without a token; a read-only token reads the
    // Prometheus text on every node.
    let resp = http
        .get(c.url(0, "/metrics"))
        .send()
        .expect("daemon answers");
    assert_eq!(resp.status().as_u16(), 401);
    let monitoring = common::make_token(&c, "metrics", "read-only");
    wait_service_state(
        &c,
        0,
        "exec:sneaky",
        "started",
        &c.nodes[wait_running_once(&c, new_m, LIMIT)].name,
    );
    let mut leaders = 0;
    let mut terms = Vec::new();
    for i in 0..3 {
        let resp = http
            .get(c.url(i, "/metrics"))
            .bearer_auth(&monitoring)
            .send()
            .expect("daemon answers");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/plain"), "content type {ct}");
        let text = resp.text().expect("text");
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("node{}: no metric {name} in\n{text}", i + 1))
                .trim()
                .parse()
                .expect("a number")
        };
        for name in [
            "ha_raft_is_leader",
            "ha_raft_term",
            "ha_services",
            "ha_failovers_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE line for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP line for {name}:\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a numeric value.
        for l in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, v) = l.rsplit_once(' ').expect("name value");
            assert!(name.starts_with("ha_"), "{l}");
            assert!(v.parse::<f64>().is_ok(), "not a number: {l}");
        }
        leaders += value("ha_raft_is_leader") as u32;
        terms.push(value("ha_raft_term") as u64);
        assert!(
            value("ha_raft_leader_id") >= 1.0,
            "node{} knows no leader",
            i + 1
        );
        assert!(value("ha_raft_applied_index") >= 1.0);
        assert_eq!(
            value("ha_services{state=\"started\"}"),
            2.0,
            "node{}:\n{text}",
            i + 1
        );
        assert_eq!(value("ha_failovers_total"), 0.0);
    }
    assert_eq!(leaders, 1, "exactly one node says it leads");
    assert!(
        terms.iter().all(|t| *t == terms[0] && *t >= 1),
        "terms {terms:?}"
    );
}

// ----- 3. migrate, relocate, stop, node maintenance --------------------------

#[test]
fn migrate_relocate_and_stop_through_the_cli_act_on_the_process() {
    let c = start(3);
    let m = marker(31);
    add_sleep_service(&c, 0, "mv", m);
    let a = wait_running_once(&c, m, LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let b = (a + 1) % 3;
    let d = (a + 2) % 3;

    ok(&c, a, &["migrate", "exec:mv", &c.nodes[b].name]);
    wait_running_on(&c, m, b);
    wait_service_state(&c, d, "exec:mv", "started", &c.nodes[b].name);

    ok(&c, d, &["relocate", "exec:mv", &c.nodes[d].name]);
    wait_running_on(&c, m, d);
    wait_service_state(&c, a, "exec:mv", "started", &c.nodes[d].name);

    ok(
        &c,
        b,
        &["crm-command", "migrate", "exec:mv", &c.nodes[a].name],
    );
    wait_running_on(&c, m, a);
    wait_service_state(&c, b, "exec:mv", "started", &c.nodes[a].name);

    // A move to the node it is on is accepted and ignored.
    ok(
        &c,
        b,
        &["crm-command", "relocate", "exec:mv", &c.nodes[a].name],
    );
    let pid = marker_pids(m)[0];
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(marker_pids(m), vec![pid]);

    // Hard stop: the process ends and the requested state becomes stopped.
    ok(&c, b, &["crm-command", "stop", "exec:mv", "0"]);
    wait_until(LIMIT, "the service process gone", || {
        marker_pids(m).is_empty().then_some(())
    })
    .expect("stopped");
    wait_crm_state(&c, d, "exec:mv", "stopped");
    let e = c.service_status(d, "exec:mv").expect("entry");
    assert_eq!(e.request_state.as_deref(), Some("stopped"), "{e:?}");
    let r = resource(&c, d, "exec:mv").expect("still configured");
    assert_eq!(r["state"].as_str(), Some("stopped"), "{r}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        marker_pids(m).is_empty(),
        "a stopped service was started again"
    );

    // And it starts again when asked.
    ok(&c, d, &["set", "exec:mv", "--state", "started"]);
    wait_running_on(&c, m, a);
    wait_service_state(&c, b, "exec:mv", "started", &c.nodes[a].name);

    // Removing it from HA does not stop it (spec 3.4: "Removal does not
    // stop the guest"): it leaves the status and keeps running unmanaged.
    let pid = marker_pids(m)[0];
    ok(&c, b, &["remove", "exec:mv"]);
    wait_until(LIMIT, "the removed service gone from the status", || {
        c.service_status(d, "exec:mv").is_none().then_some(())
    })
    .expect("gone from the status");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(marker_pids(m), vec![pid], "removal touched the process");
    assert!(resource(&c, a, "exec:mv").is_none());
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
}

#[test]
fn node_maintenance_enable_moves_the_services_away() {
    maintenance_round_trip(false, 41);
}

#[test]
fn node_maintenance_disable_brings_the_services_back() {
    maintenance_round_trip(true, 43);
}

/// Puts the node of two services in maintenance and checks they move away,
/// exactly once each; with `disable`, ends the maintenance and checks they
/// come back (the maintenance fallback, spec 3.6 `started` step 5). Each
/// caller passes its own markers (tests run in parallel in one process).
fn maintenance_round_trip(disable: bool, first_marker: u64) {
    let c = start(3);
    let m1 = marker(first_marker);
    let m2 = marker(first_marker + 1);
    add_sleep_service(&c, 0, "one", m1);
    let on = wait_running_once(&c, m1, LIMIT);
    // A second service on the same node, so maintenance has two to move.
    let cmd = format!("cmd={}", marker_command(m2));
    ok(&c, 0, &["add", "exec:two", "--param", &cmd]);
    let on2 = wait_running_once(&c, m2, LIMIT);
    if on2 != on {
        ok(&c, 0, &["migrate", "exec:two", &c.nodes[on].name]);
        wait_running_on(&c, m2, on);
    }
    let w1 = ServiceWatch::start(m1, c.pid_locator());
    let w2 = ServiceWatch::start(m2, c.pid_locator());
    let other = (on + 1) % 3;
    let name = c.nodes[on].name.clone();

    let since = Instant::now();
    ok(
        &c,
        other,
        &["crm-command", "node-maintenance", "enable", &name],
    );
    for (m, w) in [(m1, &w1), (m2, &w2)] {
        wait_until(LIMIT, "the service off the node in maintenance", || {
            let pids = marker_pids(m);
            (pids.len() == 1 && c.node_of_pid(pids[0]).is_some_and(|n| n != on)).then_some(())
        })
        .expect("moved away");
        assert!(w.first_gone_from(since, on).is_some());
    }
    wait_until(LIMIT, "the LRM line saying maintenance", || {
        let st = c.status(other).ok()?;
        st.iter()
            .find(|e| e.kind == "lrm" && e.node.as_deref() == Some(name.as_str()))
            .filter(|e| e.status.contains("maintenance"))
            .map(|_| ())
    })
    .expect("maintenance shown");
    for sid in ["exec:one", "exec:two"] {
        wait_crm_state(&c, other, sid, "started");
        let e = c.service_status(other, sid).expect("entry");
        assert_ne!(e.node.as_deref(), Some(name.as_str()), "{e:?}");
    }
    // Maintenance sticks: nothing comes back while it lasts.
    std::thread::sleep(Duration::from_secs(3));
    for m in [m1, m2] {
        let pids = marker_pids(m);
        assert_eq!(pids.len(), 1);
        assert_ne!(c.node_of_pid(pids[0]), Some(on));
    }
    if !disable {
        assert_eq!(w1.max_copies(), 1, "{:?}", w1.observations());
        assert_eq!(w2.max_copies(), 1, "{:?}", w2.observations());
        return;
    }

    ok(
        &c,
        other,
        &["crm-command", "node-maintenance", "disable", &name],
    );
    wait_running_on(&c, m1, on);
    wait_running_on(&c, m2, on);
    wait_service_state(&c, other, "exec:one", "started", &name);
    wait_service_state(&c, other, "exec:two", "started", &name);
    wait_until(LIMIT, "the LRM line back to active", || {
        let st = c.status(other).ok()?;
        st.iter()
            .find(|e| e.kind == "lrm" && e.node.as_deref() == Some(name.as_str()))
            .filter(|e| !e.status.contains("maintenance"))
            .map(|_| ())
    })
    .expect("maintenance ended");
    assert_eq!(w1.max_copies(), 1, "{:?}", w1.observations());
    assert_eq!(w2.max_copies(), 1, "{:?}", w2.observations());
}

// ----- 4. error state and recovery from it ----------------------------------

#[test]
fn a_failing_service_enters_error_and_recovers_after_disable_fix_start() {
    let c = start(3);
    ok(
        &c,
        0,
        &[
            "add",
            "exec:bad",
            "--max_restart",
            "0",
            "--max_relocate",
            "0",
            "--param",
            "cmd=exit 1",
        ],
    );
    wait_crm_state(&c, 1, "exec:bad", "error");
    let e = c.service_status(1, "exec:bad").expect("entry");
    assert!(e.status.contains("error"), "{e:?}");
    // It stays in error: no retry.
    std::thread::sleep(Duration::from_secs(3));
    wait_crm_state(&c, 2, "exec:bad", "error");

    // While errored, only `--state disabled` is accepted (spec 3.14).
    let before = config_snapshot(&c, 1);
    let m = marker(51);
    let fixed = format!("cmd={}", marker_command(m));
    fails(
        &c,
        1,
        &["set", "exec:bad", "--param", &fixed],
        &["exec:bad", "error state"],
    );
    fails(
        &c,
        1,
        &["set", "exec:bad", "--state", "started"],
        &["exec:bad", "error state"],
    );
    fails(
        &c,
        1,
        &["migrate", "exec:bad", "node2"],
        &["exec:bad", "error state"],
    );
    fails(
        &c,
        1,
        &["relocate", "exec:bad", "node2"],
        &["exec:bad", "error state"],
    );
    fails(
        &c,
        1,
        &["crm-command", "stop", "exec:bad", "0"],
        &["exec:bad", "error state"],
    );
    assert_eq!(before, config_snapshot(&c, 1));

    ok(&c, 1, &["set", "exec:bad", "--state", "disabled"]);
    wait_crm_state(&c, 2, "exec:bad", "stopped");
    let e = c.service_status(2, "exec:bad").expect("entry");
    assert_eq!(e.request_state.as_deref(), Some("disabled"));
    assert!(e.status.contains("disabled"), "{e:?}");

    ok(&c, 2, &["set", "exec:bad", "--param", &fixed]);
    assert!(marker_pids(m).is_empty(), "a disabled service started");
    ok(&c, 0, &["set", "exec:bad", "--state", "started"]);
    let on = wait_running_once(&c, m, LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());
    wait_service_state(&c, 1, "exec:bad", "started", &c.nodes[on].name);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    assert_eq!(wait_running_once(&c, m, LIMIT), on);
}

// ----- 5. node-affinity rules and remove --purge ------------------------------

/// The ids of the rules node `via` lists, optionally for one resource.
fn rule_ids(c: &LocalCluster, via: usize, resource: Option<&str>) -> Vec<String> {
    let mut args = vec!["rules", "config"];
    if let Some(sid) = resource {
        args.extend(["--resource", sid]);
    }
    let rules: Value = c.cli_json(via, &args).expect("rules config");
    rules
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn rules_move_services_and_remove_purges_them() {
    let c = start(3);
    let m = marker(61);
    add_sleep_service(&c, 0, "ruled", m);
    let first = wait_running_once(&c, m, LIMIT);
    let watch = ServiceWatch::start(m, c.pid_locator());

    // A rule preferring another node moves the service there (failback is
    // on by default), live, with never a second copy.
    let target = (first + 1) % 3;
    let preferred = format!("{}:2", c.nodes[target].name);
    ok(
        &c,
        1,
        &[
            "rules",
            "add",
            "node-affinity",
            "pin",
            "--resources",
            "exec:ruled",
            "--nodes",
            &preferred,
            "--comment",
            "keep it: here",
        ],
    );
    wait_running_on(&c, m, target);
    wait_service_state(&c, 2, "exec:ruled", "started", &c.nodes[target].name);

    // Editing the rule moves it again.
    let next = (target + 1) % 3;
    let preferred = format!("{}:2", c.nodes[next].name);
    ok(
        &c,
        2,
        &[
            "rules",
            "set",
            "node-affinity",
            "pin",
            "--nodes",
            &preferred,
        ],
    );
    wait_running_on(&c, m, next);
    // `rules config` is Proxmox's table with the CRM's verdict, `rules
    // list` the API's rules with their nodes.
    let text = ok(&c, 0, &["rules", "config"]);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.contains(" pin "))
        .map(|l| {
            l.split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        row,
        [
            "1",
            "in use",
            "pin",
            "node-affinity",
            "exec:ruled",
            "keep it: here"
        ],
        "{text}"
    );
    let list = ok(&c, 0, &["rules", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pin ") && l.contains(&format!(" {preferred} "))),
        "{list}"
    );

    // A disabled rule no longer steers: a manual migrate elsewhere sticks.
    ok(
        &c,
        0,
        &["rules", "set", "node-affinity", "pin", "--disable", "1"],
    );
    let table = ok(&c, 1, &["rules", "config"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("0") && l.contains("disabled") && l.contains("pin")),
        "{table}"
    );
    ok(&c, 0, &["migrate", "exec:ruled", &c.nodes[first].name]);
    wait_running_on(&c, m, first);
    std::thread::sleep(Duration::from_secs(3));
    wait_running_on(&c, m, first);
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());

    // A second resource in a rule of its own, removed without purge: its
    // rule stays. Removing the first with the default purge drops `pin`.
    let m2 = marker(62);
    add_sleep_service(&c, 1, "kept", m2);
    ok(
        &c,
        1,
        &[
            "rules",
            "add",
            "node-affinity",
            "other",
            "--resources",
            "exec:kept",
            "--nodes",
            "node1",
        ],
    );
    assert_eq!(rule_ids(&c, 2, Some("exec:ruled")), vec!["pin".to_string()]);
    ok(&c, 2, &["remove", "exec:kept", "--purge", "0"]);
    assert_eq!(rule_ids(&c, 0, None), vec!["pin", "other"]);
    ok(&c, 2, &["remove", "exec:ruled"]);
    assert_eq!(rule_ids(&c, 0, None), vec!["other"]);
    // A rule naming a resource that is gone is refused on edit but can
    // always be removed.
    let out = run(
        &c,
        0,
        &["rules", "set", "node-affinity", "other", "--comment", "x"],
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("exec:kept"), "{}", out.stderr);
    ok(&c, 0, &["rules", "remove", "other"]);
    assert!(rule_ids(&c, 1, None).is_empty());
    // Removing a resource leaves its process alone (spec 3.4): the
    // operator stops it. Only the CRM's record goes.
    wait_until(LIMIT, "the removed services leave the status", || {
        let entries = c.status(0).ok()?;
        (!entries.iter().any(|e| e.kind == "service")).then_some(())
    })
    .expect("status empties");
    for pid in marker_pids(m).into_iter().chain(marker_pids(m2)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
