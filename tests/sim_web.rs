//! `ha-manager sim serve` over real HTTP on 127.0.0.1: a scenario from
//! tests/scenarios loaded through the API, a node powered off by a
//! command, its service fenced and recovered on another node (from the
//! state JSON and the log); bad commands refused with 400 naming the word
//! and changing nothing; a stepped run reaching the same log and final
//! state as `sim run`; a saved session replaying the same with `sim run`;
//! the guard against other hosts and sites; the binary's `sim serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ha_manager::sim_web::{self, SessionInit, SimHandle};
use serde_json::{json, Value};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// A server on 127.0.0.1 (any free port) over its own session.
struct Server {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(dir: Option<PathBuf>) -> Server {
        let sim = SimHandle::start(SessionInit {
            dir,
            profile: None,
            seed: None,
        })
        .expect("scenario loads");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(sim_web::serve(listener, sim));
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON answer"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON answer"))
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    async fn state(&self) -> Value {
        let (status, v) = self.get("/api/state").await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn load(&self, name: &str) -> Value {
        self.ok(
            "/api/load",
            json!({"dir": scenario(name).display().to_string()}),
        )
        .await
    }

    /// Steps with `POST /api/step` until the run is done.
    async fn step_until_done(&self) -> Value {
        for _ in 0..2000 {
            let v = self.ok("/api/step?since=999999999", json!({})).await;
            if v["status"] != "running" {
                assert_eq!(v["status"], "done", "{}", v["error"]);
                return self.state().await;
            }
        }
        panic!("the run did not end in 2000 rounds");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn log_of(state: &Value) -> Vec<String> {
    state["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|l| l.as_str().expect("line").to_string())
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_fences_the_node_and_recovers_its_service_elsewhere() {
    let server = Server::start(None).await;
    let loaded = server.load("recovery-original-node-back").await;
    assert_eq!(loaded["round"], 0);
    assert!(text(&loaded["dir"]).ends_with("recovery-original-node-back"));
    // the scenario's cmdlist powers the nodes on; run until it is quiet
    let s = server.ok("/api/run", json!({"until_done": true})).await;
    assert_eq!(s["status"], "done");
    assert_eq!(s["services"]["vm:103"]["state"], "started");
    assert_eq!(s["services"]["vm:103"]["running_on"], json!(["node3"]));
    let log_before = s["log_total"].as_u64().expect("log_total");

    let s = server
        .ok(
            "/api/command",
            json!({"command": "power node3 off", "advance": true}),
        )
        .await;
    assert_eq!(s["nodes"]["node3"]["power"], "off", "the command ran");
    assert_eq!(s["status"], "running");

    // One round at a time, from the state JSON: vm:103 is fenced, then
    // recovered and started on another node.
    let mut seen: Vec<String> = Vec::new();
    let mut node_states: Vec<String> = Vec::new();
    let mut last = s;
    for _ in 0..40 {
        last = server.ok("/api/run?since=0", json!({"rounds": 1})).await;
        let st = text(&last["services"]["vm:103"]["state"]).to_string();
        if seen.last() != Some(&st) {
            seen.push(st);
        }
        let ns = text(&last["nodes"]["node3"]["node_state"]).to_string();
        if node_states.last() != Some(&ns) {
            node_states.push(ns);
        }
        let svc = &last["services"]["vm:103"];
        if svc["state"] == "started" && svc["running_on"] != json!(["node3"]) && seen.len() > 1 {
            break;
        }
    }
    // (fence -> recovery -> started may happen within one CRM round;
    // the log below shows the recovery state)
    let fence = seen.iter().position(|s| s == "fence");
    let after = fence.map_or(&[][..], |i| &seen[i + 1..]);
    assert!(
        fence.is_some() && after.iter().any(|s| s == "started"),
        "vm:103 went {seen:?}, node3 {node_states:?}"
    );
    assert!(node_states.iter().any(|s| s == "fence"), "{node_states:?}");
    let svc = &last["services"]["vm:103"];
    assert_eq!(svc["state"], "started", "{svc}");
    let running = svc["running_on"].as_array().expect("running_on");
    assert_eq!(running.len(), 1, "{svc}");
    assert_ne!(running[0], "node3");
    assert_eq!(svc["node"], running[0]);
    assert_eq!(last["violations"], json!([]));

    // the log shows it, after the command
    let log = log_of(&last);
    let new: Vec<&String> = log.iter().skip(log_before as usize).collect();
    let has = |needle: &str| new.iter().any(|l| l.contains(needle));
    assert!(has("cmdlist: execute power node3 off"), "{new:#?}");
    assert!(has("FENCE: Try to fence node 'node3'"), "{new:#?}");
    assert!(
        has("recover service 'vm:103' from fenced node 'node3'"),
        "{new:#?}"
    );
    // `since` returns only the lines after it
    let since = last["log_total"].as_u64().expect("total") - 2;
    let (_, tail) = server.get(&format!("/api/state?since={since}")).await;
    assert_eq!(tail["log_from"], since);
    assert_eq!(log_of(&tail), log[since as usize..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_command_gets_400_naming_the_word_and_changes_nothing() {
    let server = Server::start(Some(scenario("basic-failback-node-returns"))).await;
    server.ok("/api/run", json!({"rounds": 7})).await;
    let before = server.state().await;
    for (cmd, word) in [
        ("power node9 off", "node9"),
        ("explode node1", "explode"),
        ("power node1 sideways", "sideways"),
        ("service vm:999 migrate node2", "vm:999"),
        ("service vm:101 migrate node7", "node7"),
        ("net delay 100000", "100000"),
        ("", ""),
    ] {
        let (status, err) = server
            .post("/api/command", json!({"command": cmd, "advance": true}))
            .await;
        assert_eq!(status, 400, "{cmd}: {err}");
        assert_eq!(err["field"], "command", "{err}");
        if !word.is_empty() {
            assert_eq!(err["word"], word, "{cmd}: {err}");
            assert!(text(&err["error"]).contains(&format!("'{word}'")), "{err}");
        }
    }
    // malformed requests name their field
    let (status, err) = server
        .post("/api/command", json!({"comand": "power node1 off"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "comand", "{err}");
    let (status, err) = server.post("/api/run", json!({"rounds": 0})).await;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "rounds", "{err}");
    let (status, err) = server
        .post("/api/load", json!({"dir": "/nonexistent/scenario"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "dir", "{err}");
    assert!(text(&err["error"]).contains("does not exist"), "{err}");

    let after = server.state().await;
    assert_eq!(before, after, "refused requests changed the session");

    // a good command is queued for the next command slot
    let s = server
        .ok("/api/command", json!({"command": "network  node2   off"}))
        .await;
    let pending = s["pending"].as_array().expect("pending");
    assert!(
        pending[0]
            .as_array()
            .expect("batch")
            .contains(&json!("network node2 off")),
        "{pending:?}"
    );
    assert_eq!(s["time"], before["time"], "queued, not run");
}

/// The run loop stepped through the API is `sim run`'s: same log, same
/// final state, for scenarios with delays, skipped rounds, maintenance,
/// resource failures and another profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_run_reaches_what_sim_run_reaches() {
    let server = Server::start(None).await;
    for name in [
        "basic-failback-node-returns",
        "lrm-restart-takeback-reply-lost",
        "issue9-double-run-default",
        "crm-maintenance-request-conditional-shutdown",
        "resource-failure-restart-relocate",
        "disarm-config-changes-deferred",
    ] {
        let loaded = server.load(name).await;
        let expected = ha_manager::sim::run_dir(&scenario(name), None, None).expect("sim run");
        assert_eq!(loaded["profile"], expected_profile(name));
        let state = server.step_until_done().await;
        assert_eq!(log_of(&state), expected.log, "{name}: log differs");
        let fs = serde_json::to_value(&expected.final_state).expect("json");
        assert_eq!(state["time"], fs["time"], "{name}");
        assert_eq!(state["violations"], fs["violations"], "{name}");
        for (node, want) in fs["nodes"].as_object().expect("nodes") {
            for key in ["power", "network", "node_state", "crm_state", "lrm_state"] {
                assert_eq!(state["nodes"][node][key], want[key], "{name} {node} {key}");
            }
        }
        for (sid, want) in fs["services"].as_object().expect("services") {
            for key in ["state", "node", "crm_node", "running_on"] {
                assert_eq!(state["services"][sid][key], want[key], "{name} {sid} {key}");
            }
        }
        assert_eq!(
            state["services"].as_object().map(|m| m.len()),
            fs["services"].as_object().map(|m| m.len())
        );
    }
}

fn expected_profile(name: &str) -> &'static str {
    let file = scenario(name).join("profile");
    match std::fs::read_to_string(file).ok().as_deref().map(str::trim) {
        Some("default") => "default",
        Some("fast") => "fast",
        _ => "pve",
    }
}

/// Commands given through the API, saved as a scenario directory, replay
/// with `sim run` to the same log (the saved cmdlist puts each command in
/// the round it ran in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_session_replays_the_same_with_sim_run() {
    let server = Server::start(None).await;
    server.ok("/api/run", json!({"rounds": 6})).await;
    for (cmd, rounds) in [
        ("service vm:102 migrate node3", 3),
        ("network node1 off", 20),
        ("network node1 on", 4),
        ("crm node2 enable-node-maintenance", 9),
        ("service vm:105 add node3 started", 2),
        ("skip-round lrm 2", 3),
    ] {
        server
            .ok("/api/command", json!({"command": cmd, "advance": true}))
            .await;
        server.ok("/api/run", json!({"rounds": rounds})).await;
    }
    // one command queued and not yet run is saved as pending
    server
        .ok(
            "/api/command",
            json!({"command": "crm node2 disable-node-maintenance"}),
        )
        .await;
    let done = server.ok("/api/run", json!({"until_done": true})).await;
    assert_eq!(done["status"], "done");
    let log = log_of(&server.state().await);

    let (status, saved) = server.get("/api/save").await;
    assert_eq!(status, 200);
    let files = saved["files"].as_object().expect("files");
    for f in [
        "cmdlist",
        "hardware_status",
        "service_config",
        "manager_status",
    ] {
        assert!(files.contains_key(f), "{f} missing: {saved}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("saved");
    let (status, written) = server
        .post("/api/save", json!({"dir": target.display().to_string()}))
        .await;
    assert_eq!(status, 200, "{written}");
    for (name, text) in files {
        let on_disk = std::fs::read_to_string(target.join(name)).expect("written");
        assert_eq!(Some(on_disk.as_str()), text.as_str(), "{name}");
    }
    let replay = ha_manager::sim::run_dir(&target, None, None).expect("the saved scenario loads");
    assert_eq!(replay.log, log, "the replay differs");
    assert!(replay.final_state.violations.is_empty());

    // a directory holding another scenario's file is not mixed into
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("rules_config"), "").expect("write");
    let (status, err) = server
        .post("/api/save", json!({"dir": other.display().to_string()}))
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(text(&err["error"]).contains("rules_config"), "{err}");
    assert!(!other.join("cmdlist").exists(), "nothing written");

    // reset starts the scenario over (a new generation, the log anew)
    let reset = server.ok("/api/reset?since=0", json!({})).await;
    assert_ne!(reset["generation"], done["generation"]);
    assert_eq!(reset["round"], 0);
    assert_eq!(reset["time"], 0);
    let fresh = log_of(&reset);
    assert!(fresh.len() < log.len(), "{reset}");
    assert!(fresh.iter().all(|l| l.contains("      0 ")), "{fresh:#?}");
    assert!(fresh[fresh.len() - 1].ends_with("hardware: starting simulation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_and_foreign_hosts_refused() {
    let server = Server::start(None).await;
    let page = server
        .client
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    for id in [
        "id=\"step\"",
        "id=\"run\"",
        "id=\"pause\"",
        "id=\"command\"",
        "id=\"nodes\"",
        "id=\"log\"",
        "id=\"load\"",
        "id=\"save\"",
        "/assets/style.css",
        "/assets/sim.js",
    ] {
        assert!(html.contains(id), "{id} missing from the page");
    }
    for (path, kind) in [
        ("/assets/style.css", "text/css"),
        ("/assets/sim.css", "text/css"),
        ("/assets/sim.js", "text/javascript"),
    ] {
        let r = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let ct = r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
    }
    // DNS rebinding: another host name is refused
    let r = server
        .client
        .get(format!("{}/api/state", server.base))
        .header("Host", "attacker.example:80")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 403);
    // a cross-site POST is refused and changes nothing
    let r = server
        .client
        .post(format!("{}/api/step", server.base))
        .header("Origin", "http://attacker.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(server.state().await["round"], 0);
    // an unknown route answers JSON 404
    let (status, _) = server.get("/api/nothing").await;
    assert_eq!(status, 404);
}

#[test]
fn sim_serve_binary_reports_a_bad_dir_and_serves_a_good_one() {
    let bin = env!("CARGO_BIN_EXE_ha-manager");
    let out = Command::new(bin)
        .args([
            "sim",
            "serve",
            "/nonexistent/scenario",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/scenario") && err.contains("does not exist"),
        "{err}"
    );

    let mut child = Command::new(bin)
        .args(["sim", "serve"])
        .arg(scenario("basic-failback-node-returns"))
        .args(["--listen", "127.0.0.1:0", "--profile", "fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let url = line
        .trim()
        .strip_prefix("simulator on ")
        .expect("URL line")
        .to_string();
    let answer = reqwest::blocking::get(format!("{url}api/state")).and_then(|r| r.json::<Value>());
    // End the server (started here, by its pid) before asserting.
    let _ = child.kill();
    let _ = child.wait();
    let state = answer.expect("state");
    assert_eq!(state["profile"], "fast");
    assert_eq!(state["round"], 0);
    assert!(text(&state["dir"]).ends_with("basic-failback-node-returns"));
}
