//! API tokens with roles on real daemons: a read-only token reads status
//! and metrics on every node but changes nothing; an admin token changes;
//! secrets are shown once and stored as digests; a removed token stops
//! working; every change is in the audit log with the token's id.

mod common;

use std::time::Duration;

use common::{make_token, start};
use ha_manager::local_cluster::wait_until;

#[test]
fn read_only_tokens_read_admin_tokens_change_and_removed_tokens_stop() {
    let c = start(3);
    let http = c.https_client(0).expect("client");
    let ro = make_token(&c, "monitoring", "read-only");
    let admin = make_token(&c, "ops", "admin");
    let url = |i: usize, path: &str| c.url(i, path);
    let resources = |i: usize| -> serde_json::Value {
        http.get(url(i, "/api/v1/resources"))
            .bearer_auth(&admin)
            .send()
            .expect("answer")
            .json()
            .expect("json")
    };

    // Read-only: reads on every node (the token table is replicated).
    for i in 0..3 {
        let ok = wait_until(Duration::from_secs(10), "read-only token accepted", || {
            let r = http
                .get(url(i, "/api/v1/status/current"))
                .bearer_auth(&ro)
                .send()
                .ok()?;
            (r.status().as_u16() == 200).then_some(())
        });
        assert!(ok.is_ok(), "node{}: {ok:?}", i + 1);
        let m = http
            .get(url(i, "/metrics"))
            .bearer_auth(&ro)
            .send()
            .expect("answer");
        assert_eq!(m.status().as_u16(), 200);
    }
    // ... but every write is 403 and changes nothing.
    let before = resources(1);
    let add = http
        .post(url(1, "/api/v1/resources"))
        .bearer_auth(&ro)
        .json(&serde_json::json!({"sid": "exec:nope", "options": {"cmd": "sleep 1000"}}))
        .send()
        .expect("answer");
    assert_eq!(add.status().as_u16(), 403);
    let body: serde_json::Value = add.json().expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("'monitoring' is read-only"),
        "{body}"
    );
    for path in ["/api/v1/tokens", "/api/v1/backup"] {
        let r = http
            .get(url(1, path))
            .bearer_auth(&ro)
            .send()
            .expect("answer");
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }
    assert_eq!(resources(1), before);

    // The admin token writes, through another node.
    let out = c.cli(
        2,
        &[
            "add",
            "exec:made-by-ops",
            "--param",
            "cmd=sleep 1000",
            "--state",
            "stopped",
        ],
    );
    assert_eq!(out.expect("cli").code, 0);
    let add = http
        .post(url(2, "/api/v1/resources"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"sid": "exec:ops2", "options": {"cmd": "sleep 1000", "state": "stopped"}}))
        .send()
        .expect("answer");
    assert!(
        add.status().is_success(),
        "{}",
        add.text().unwrap_or_default()
    );

    // Listed without secrets; stored as digests only.
    let list = c
        .cli(0, &["token", "list", "--output-format", "json"])
        .expect("cli");
    assert_eq!(list.code, 0);
    let ro_secret = ro.split_once('.').expect("id.secret").1;
    assert!(!list.stdout.contains(ro_secret));
    for id in ["monitoring", "ops"] {
        assert!(
            list.stdout.contains(&format!("\"{id}\"")),
            "{}",
            list.stdout
        );
    }
    let dump = c.cli(0, &["status", "--verbose"]).expect("cli");
    assert!(!dump.stdout.contains(ro_secret));

    // Removed: refused at once on every node.
    let rm = c.cli(0, &["token", "remove", "monitoring"]).expect("cli");
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    for i in 0..3 {
        wait_until(Duration::from_secs(10), "removed token refused", || {
            let r = http
                .get(url(i, "/api/v1/status/current"))
                .bearer_auth(&ro)
                .send()
                .ok()?;
            (r.status().as_u16() == 401).then_some(())
        })
        .expect("refused");
    }
    let out = c.cli(0, &["token", "remove", "monitoring"]).expect("cli");
    assert_ne!(out.code, 0, "a token that is gone cannot be removed");
    let bad = c
        .cli(0, &["token", "add", "Bad/Id", "--role", "admin"])
        .expect("cli");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("field 'id'"), "{}", bad.stderr);

    // The audit log names who changed what.
    let logs: String = (0..3)
        .map(|i| std::fs::read_to_string(c.nodes[i].dir.join("daemon.log")).unwrap_or_default())
        .collect();
    assert!(
        logs.lines()
            .any(|l| l.contains("audit") && l.contains("token=ops") && l.contains("POST")),
        "no audit line for ops"
    );
    assert!(
        logs.lines().any(|l| l.contains("audit")
            && l.contains("token=monitoring")
            && l.contains("refused")),
        "no audit line for the refused read-only write"
    );
}
