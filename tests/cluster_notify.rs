//! Notifications on real daemons: a webhook receiver on loopback (axum)
//! gets exactly one fence event for a killed follower (plus its fencing
//! and the service's recovery), signed with the target's secret, after a
//! 500 it was retried; then the leader is killed and the new leader sends
//! the old leader's fence event exactly once. An exec hook gets the
//! events in its environment. Targets are validated naming the field,
//! read-only tokens list them without secrets and change nothing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{add_sleep_service, cli_ok, make_token, marker, start, wait_running_once};
use ha_manager::local_cluster::wait_until;
use nix::sys::signal::Signal;
use serde_json::Value;

const SECRET: &str = "notify-test-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    sender: String,
    signature: String,
    body: Vec<u8>,
    /// The status it answered.
    answered: u16,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn accepted(&self) -> bool {
        self.answered == 200
    }

    /// Whether the signature is the HMAC-SHA256 of the body under
    /// [`SECRET`] (checked with ring's constant-time verify).
    fn signed(&self) -> bool {
        let Some(hex) = self.signature.strip_prefix("sha256=") else {
            return false;
        };
        let Some(tag) = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        ring::hmac::verify(&key, &self.body, &tag).is_ok()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A webhook receiver on 127.0.0.1: records every request; answers 500
/// to the next `fail_next` requests, 200 otherwise.
struct Receiver {
    port: u16,
    log: Log,
    fail_next: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log: Log = Arc::default();
        let fail_next = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state((log.clone(), fail_next.clone()));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            log,
            fail_next,
            _runtime: runtime,
        }
    }

    fn all(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }

    /// Accepted requests whose event matches `pred`.
    fn accepted(&self, pred: impl Fn(&Value) -> bool) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.accepted() && pred(&r.event()))
            .collect()
    }
}

async fn receive(
    State((log, fail_next)): State<(Log, Arc<AtomicUsize>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    log.lock().expect("log").push(Received {
        id: header("x-ha-event-id"),
        sender: header("x-ha-sender"),
        signature: header("x-ha-signature-256"),
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    status
}

fn is(ev: &Value, kind: &str, key: &str, value: &str) -> bool {
    ev["kind"] == kind && ev[key] == value
}

fn fence_of(node: &str) -> impl Fn(&Value) -> bool + '_ {
    move |ev| is(ev, "node_state", "node", node) && ev["to"] == "fence"
}

fn fenced_of(node: &str) -> impl Fn(&Value) -> bool + '_ {
    move |ev| is(ev, "fenced", "node", node)
}

#[test]
fn each_fence_is_sent_once_by_the_leader_across_a_leader_kill() {
    let mut c = start(3);
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret file");
    let hook_out = dir.path().join("hook-out");
    std::fs::create_dir(&hook_out).expect("hook dir");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"hook got $HA_EVENT_ID\"\nenv | grep '^HA_EVENT_' > '{}/'\"$HA_EVENT_ID\".env\n",
            hook_out.display()
        ),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let url = format!("http://127.0.0.1:{}/hook", rx.port);

    // Bad input names the field and changes nothing.
    let bad = c
        .cli(
            0,
            &["notify", "target", "add", "bad", "--webhook", "ftp://x"],
        )
        .expect("cli");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("field 'webhook'"), "{}", bad.stderr);
    let http = c.https_client(1).expect("client");
    let admin = make_token(&c, "ops", "admin");
    let ro = make_token(&c, "watch", "read-only");
    let refused = http
        .post(c.url(1, "/api/v1/notify/targets"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "bad", "exec": "relative/hook"}))
        .send()
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().expect("json");
    assert_eq!(body["field"], "exec", "{body}");

    cli_ok(
        &c,
        0,
        &[
            "notify",
            "target",
            "add",
            "hook",
            "--webhook",
            &url,
            "--secret-file",
            secret.to_str().expect("utf-8"),
            "--events",
            "fence,recovery",
        ],
    );
    cli_ok(
        &c,
        1,
        &[
            "notify",
            "target",
            "add",
            "envhook",
            "--exec",
            hook.to_str().expect("utf-8"),
            "--events",
            "fence",
        ],
    );
    let dup = c
        .cli(
            2,
            &["notify", "target", "add", "hook", "--exec", "/bin/true"],
        )
        .expect("cli");
    assert_ne!(dup.code, 0);
    assert!(dup.stderr.contains("exists already"), "{}", dup.stderr);

    // Read-only tokens list (never a secret) and change nothing.
    let listed = http
        .get(c.url(1, "/api/v1/notify/targets"))
        .bearer_auth(&ro)
        .send()
        .expect("answer");
    assert_eq!(listed.status().as_u16(), 200);
    let text = listed.text().expect("text");
    assert!(!text.contains(SECRET), "{text}");
    let rows: Vec<Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(rows.len(), 2, "{text}");
    let denied = http
        .delete(c.url(1, "/api/v1/notify/targets/hook"))
        .bearer_auth(&ro)
        .send()
        .expect("answer");
    assert_eq!(denied.status().as_u16(), 403);
    let rows: Vec<Value> = c.cli_json(2, &["notify", "target", "list"]).expect("list");
    assert_eq!(rows.len(), 2);

    // `notify test` goes through the real path and says what happened.
    let out = cli_ok(&c, 2, &["notify", "test", "--target", "hook"]);
    assert!(out.contains("hook: delivered"), "{out}");
    let tests = rx.accepted(|ev| ev["kind"] == "test");
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert!(tests[0].signed(), "bad signature: {tests:?}");
    assert!(tests[0].id.starts_with("test-"), "{tests:?}");

    // A service on a follower; its node dies.
    let leader = wait_until(Duration::from_secs(20), "a leader", || c.leader()).expect("leader");
    let m = marker(1);
    add_sleep_service(&c, leader, "svc", m);
    let mut on = wait_running_once(&c, m, Duration::from_secs(60));
    if on == leader {
        let to = (leader + 1) % 3;
        cli_ok(
            &c,
            leader,
            &["migrate", "exec:svc", &c.nodes[to].name.clone()],
        );
        on = wait_until(Duration::from_secs(60), "the service on a follower", || {
            let pids = ha_manager::local_cluster::procs::marker_pids(m);
            (pids.len() == 1 && c.node_of_pid(pids[0]) == Some(to)).then_some(to)
        })
        .expect("migrated");
    }
    let victim = on;
    let victim_name = c.nodes[victim].name.clone();
    // The first delivery after the kill gets a 500: it must be retried.
    rx.fail_next.store(1, Ordering::SeqCst);
    c.signal_daemon(victim, Signal::SIGKILL).expect("kill");
    wait_until(
        Duration::from_secs(60),
        "fence, fenced and recovery events",
        || {
            let fence = !rx.accepted(fence_of(&victim_name)).is_empty();
            let fenced = !rx.accepted(fenced_of(&victim_name)).is_empty();
            let recovery = !rx
                .accepted(|ev| is(ev, "recovery", "sid", "exec:svc"))
                .is_empty();
            (fence && fenced && recovery).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: received {:?}", rx.all()));
    // Late duplicates would show up within a few polls.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rx.accepted(fence_of(&victim_name)).len(),
        1,
        "{:?}",
        rx.all()
    );
    assert_eq!(
        rx.accepted(fenced_of(&victim_name)).len(),
        1,
        "{:?}",
        rx.all()
    );
    let all = rx.all();
    let failed: Vec<&Received> = all.iter().filter(|r| r.answered == 500).collect();
    assert_eq!(failed.len(), 1, "{all:?}");
    assert!(
        all.iter()
            .any(|r| r.accepted() && r.id == failed[0].id && r.body == failed[0].body),
        "the event answered with 500 was not retried: {all:?}"
    );
    assert!(all.iter().all(Received::signed), "{all:?}");
    let leader_name = c.nodes[leader].name.clone();
    assert!(
        all.iter()
            .filter(|r| r.event()["kind"] != "test")
            .all(|r| r.sender == leader_name),
        "only the leader sends: {all:?}"
    );
    // Every event went out once (no leader change yet), in seq order.
    let seqs: Vec<u64> = all
        .iter()
        .filter(|r| r.accepted() && r.event()["kind"] != "test")
        .map(|r| r.event()["seq"].as_u64().expect("seq"))
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "out of order or duplicated: {all:?}");
    // The exec hook got the fence in its environment.
    let fence_seq = rx.accepted(fence_of(&victim_name))[0].id.clone();
    let env = wait_until(Duration::from_secs(10), "the hook's output", || {
        std::fs::read_to_string(hook_out.join(format!("{fence_seq}.env"))).ok()
    })
    .expect("the exec hook ran");
    assert!(env.contains("HA_EVENT_KIND=node_state"), "{env}");
    assert!(
        env.contains(&format!("HA_EVENT_NODE={victim_name}")),
        "{env}"
    );
    assert!(env.contains("HA_EVENT_TO=fence"), "{env}");
    assert!(env.contains(&format!("HA_EVENT_SEQ={fence_seq}")), "{env}");
    assert!(env.contains("HA_EVENT_JSON={"), "{env}");

    // The node comes back; then the leader dies.
    c.start_node(victim).expect("node restarts");
    let other = (0..3)
        .find(|i| *i != leader && *i != victim)
        .expect("third");
    wait_until(Duration::from_secs(60), "the node back online", || {
        let st = c.status(other).ok()?;
        st.iter()
            .any(|e| {
                e.kind == "node"
                    && e.node.as_deref() == Some(victim_name.as_str())
                    && e.node_state.as_deref() == Some("online")
            })
            .then_some(())
    })
    .expect("node rejoins");
    c.signal_daemon(leader, Signal::SIGKILL)
        .expect("kill leader");
    wait_until(
        Duration::from_secs(60),
        "the old leader's fence event",
        || {
            let fence = !rx.accepted(fence_of(&leader_name)).is_empty();
            let fenced = !rx.accepted(fenced_of(&leader_name)).is_empty();
            (fence && fenced).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: received {:?}", rx.all()));
    std::thread::sleep(Duration::from_secs(2));
    let fences = rx.accepted(fence_of(&leader_name));
    assert_eq!(fences.len(), 1, "{:?}", rx.all());
    assert_ne!(fences[0].sender, leader_name);
    assert!(fences[0].signed());
    assert_eq!(
        rx.accepted(fenced_of(&leader_name)).len(),
        1,
        "{:?}",
        rx.all()
    );
}
