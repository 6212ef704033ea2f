//! Input bounds against a real daemon: names the CLI puts into URLs stay
//! one path segment, and names, numbers and JSON keys outside their
//! documented range are refused naming the field, changing nothing.
//! (`api_input_fuzz.rs` drives every route with arbitrary input.)

mod common;

use common::{add_sleep_service, marker, start};
use ha_manager::local_cluster::{CliOutput, LocalCluster};
use serde_json::{json, Value};

/// Runs the CLI against node `via`.
fn run(c: &LocalCluster, via: usize, args: &[&str]) -> CliOutput {
    c.cli(via, args).expect("the CLI runs")
}

/// Runs the CLI and asserts it succeeded.
fn ok(c: &LocalCluster, via: usize, args: &[&str]) {
    let out = run(c, via, args);
    assert_eq!(out.code, 0, "ha-manager {args:?} failed: {}", out.stderr);
}

/// Runs the CLI and asserts it failed, without a panic, naming `needle`.
fn fails(c: &LocalCluster, via: usize, args: &[&str], needle: &str) {
    let out = run(c, via, args);
    let shown: Vec<String> = args.iter().map(|a| a.chars().take(80).collect()).collect();
    assert_ne!(
        out.code, 0,
        "ha-manager {shown:?} succeeded: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "ha-manager {shown:?}: stderr does not name '{needle}': {}",
        out.stderr
    );
}

/// Everything an operator configured, as node `via` lists it (with the
/// document versions, so any write shows).
fn snapshot(c: &LocalCluster, via: usize) -> (Value, Value) {
    let res: Value = c.cli_json(via, &["config"]).expect("config");
    let rules: Value = c.cli_json(via, &["rules", "config"]).expect("rules config");
    (res, rules)
}

/// Sends a request and returns the status and the JSON error body.
fn send(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let response = request.send().expect("the daemon answers");
    let status = response.status().as_u16();
    let body: Value = response.json().unwrap_or(Value::Null);
    (status, body)
}

#[test]
fn names_in_urls_stay_one_segment_and_out_of_range_input_changes_nothing() {
    let c = start(1);
    add_sleep_service(&c, 0, "a", marker(1));
    ok(
        &c,
        0,
        &[
            "rules",
            "add",
            "node-affinity",
            "db-strict",
            "--resources",
            "exec:a",
            "--nodes",
            &c.nodes[0].name,
        ],
    );
    let before = snapshot(&c, 0);
    assert!(before.0.to_string().contains("exec:a"), "{}", before.0);
    assert!(before.1.to_string().contains("db-strict"), "{}", before.1);

    // Once these reached other objects through the URL ('..' segments,
    // '#' cutting the path); now the name is one segment and refused.
    let traversal = "exec:zz/../../rules/db-strict";
    fails(&c, 0, &["remove", traversal], traversal);
    fails(&c, 0, &["remove", "exec:a#x"], "exec:a#x");
    fails(&c, 0, &["remove", "exec:a?purge=0"], "exec:a?purge=0");
    fails(&c, 0, &["rules", "remove", ".."], "'..'");
    fails(&c, 0, &["rules", "remove", "db-strict/x"], "db-strict/x");
    fails(
        &c,
        0,
        &["migrate", "exec:a/../../x", "node1"],
        "exec:a/../../x",
    );
    // A name longer than the documented bound is refused when added, so
    // nothing exists that could not be removed again.
    let long = format!("exec:{}", "x".repeat(256));
    fails(&c, 0, &["add", &long, "--param", "cmd=true"], "field 'sid'");
    // One that does not even fit the body limit of the route.
    let huge = format!("exec:{}", "x".repeat(120_000));
    fails(
        &c,
        0,
        &["add", &huge, "--param", "cmd=true"],
        "field 'body'",
    );
    fails(
        &c,
        0,
        &["add", "exec:e\u{1b}[31m", "--param", "cmd=true"],
        "sid",
    );
    // Numbers beyond their range.
    fails(
        &c,
        0,
        &["crm-command", "stop", "exec:a", "18446744073709551615"],
        "field 'timeout'",
    );
    fails(
        &c,
        0,
        &["set", "exec:a", "--max_restart", "4294967296"],
        "max_restart",
    );
    fails(
        &c,
        0,
        &["set", "exec:a", "--max_restart", "101"],
        "max_restart",
    );

    // The same over raw HTTP, plus JSON the CLI would never send.
    let base = c.url(0, "/api/v1");
    let token = common::make_token(&c, "test-admin", "admin");
    let http = c.https_client(0).expect("client");
    let cases: Vec<(reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        (
            http.put(format!("{base}/resources/exec:a"))
                .json(&json!({"option": {"state": "stopped"}})),
            400,
            "option",
        ),
        (
            http.put(format!("{base}/resources/exec:a"))
                .json(&json!({"options": {"state": "stopped"}, "digest": -1})),
            400,
            "digest",
        ),
        (
            http.post(format!("{base}/crm-command")).json(
                &json!({"command": "stop", "sid": "exec:a", "timeout": 18446744073709551615u64}),
            ),
            400,
            "timeout",
        ),
        (
            http.post(format!("{base}/crm-command"))
                .json(&json!({"command": "stop", "sid": "exec:a", "timeout": 5, "force": true})),
            400,
            "force",
        ),
        (
            http.post(format!("{base}/rules")).json(&json!({
                "type": "node-affinity", "rule": "r2", "resources": "exec:a",
                "options": {"resources": "exec:a", "nodes": "node1"},
            })),
            400,
            "resources",
        ),
        (
            http.post(format!("{base}/resources"))
                .json(&json!({"sid": "exec:b", "options": {"cmd": "x".repeat(100_000)}})),
            413,
            "body",
        ),
        (
            http.delete(format!("{base}/resources/exec:a?purge=1&force=1")),
            400,
            "query",
        ),
        (
            http.post(format!("{base}/resources"))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "body",
        ),
        (http.get(format!("{base}/nothing-here")), 404, "path"),
        (http.patch(format!("{base}/resources")), 405, "method"),
    ];
    for (request, status, field) in cases {
        let (got, body) = send(request.bearer_auth(&token));
        assert_eq!(got, status, "{body}");
        assert_eq!(body["field"].as_str(), Some(field), "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(field)),
            "{body}"
        );
    }

    assert_eq!(
        snapshot(&c, 0),
        before,
        "a refused request changed the configuration"
    );
    let status: Value = c.cli_json(0, &["status"]).expect("status");
    let entry = status
        .as_array()
        .and_then(|a| a.iter().find(|e| e["sid"].as_str() == Some("exec:a")))
        .cloned()
        .expect("exec:a in status");
    assert_ne!(entry["crm_state"].as_str(), Some("request_stop"), "{entry}");
}

/// Runs `ha-manager cluster init` for a node whose `data_dir` is `data`.
fn cluster_init(data: &std::path::Path, config: &std::path::Path) -> std::process::Output {
    std::fs::write(
        config,
        format!(
            "node = \"node1\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .expect("node config");
    std::process::Command::new(env!("CARGO_BIN_EXE_ha-manager"))
        .args(["cluster", "init"])
        .env("HA_MANAGER_CONFIG", config)
        .output()
        .expect("the CLI runs")
}

#[test]
fn cluster_init_never_changes_the_mode_of_an_existing_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o7777;

    // A shared, /tmp-like directory: refused, left as it was.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let out = cluster_init(&shared, &dir.path().join("shared.toml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("writable by other users"), "{stderr}");
    assert!(stderr.contains(&shared.display().to_string()), "{stderr}");
    assert_eq!(mode(&shared), 0o1777);
    assert_eq!(std::fs::read_dir(&shared).expect("list").count(), 0);

    // An existing private directory keeps its mode.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).expect("mkdir");
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let out = cluster_init(&own, &dir.path().join("own.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&own), 0o750);
    assert_eq!(mode(&own.join("cluster.json")) & 0o777, 0o600);

    // A missing one is created private.
    let fresh = dir.path().join("fresh/data");
    let out = cluster_init(&fresh, &dir.path().join("fresh.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&fresh), 0o700);
}
