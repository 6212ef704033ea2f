//! The web dashboard in a real headless Chromium against a real 3-node
//! cluster: log in with an admin token, add a service, migrate and
//! relocate it with the page's buttons (and check the process really
//! moved), kill its node and watch the failover on the page, then log in
//! read-only: no action buttons, and the API refuses its writes. And with
//! 2,000 services a poll touches only the rows that changed.
//!
//! Screenshots of the failover go to `docs/screenshots/` with
//! `HA_UPDATE_SCREENSHOTS=1` (the README shows them), to a temp dir
//! otherwise.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{make_token, marker, start, wait_running_once};
use ha_manager::local_cluster::procs::{marker_command, marker_pids, ServiceWatch};
use ha_manager::local_cluster::{wait_until, LocalCluster};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const PAGE: Duration = Duration::from_secs(20);
const MOVE: Duration = Duration::from_secs(40);
const SID: &str = "exec:web";

fn row(sid: &str) -> String {
    format!("tr[data-sid='{sid}']")
}

/// Waits until the page shows `sid` started on `node`.
fn wait_row_on(b: &Browser, sid: &str, node: &str, limit: Duration) {
    let css = row(sid);
    b.wait_for(
        &format!("the page to show {sid} started on {node}"),
        limit,
        |b| {
            (b.attr(&css, "data-node").as_deref() == Some(node)
                && b.attr(&css, "data-state").as_deref() == Some("started"))
            .then_some(())
        },
    );
}

/// Waits until the one copy of `marker` runs on node `to`.
fn wait_process_on(c: &LocalCluster, marker: u64, to: usize) {
    wait_until(
        MOVE,
        &format!("the service process on {}", c.nodes[to].name),
        || {
            let pids = marker_pids(marker);
            (pids.len() == 1 && c.node_of_pid(pids[0]) == Some(to)).then_some(())
        },
    )
    .expect("the process moved");
}

/// Clicks `action` (migrate or relocate) in the service's row, picks
/// `node` in the dialog and confirms.
fn move_with_page(b: &Browser, action: &str, sid: &str, node: &str) {
    b.click(&format!("{} button[data-action='{action}']", row(sid)));
    b.wait_for("the node picker", PAGE, |b| {
        b.displayed("#move-node").then_some(())
    });
    b.select("#move-node", node);
    b.click("#dialog-ok");
    b.wait_for("the dialog to close", PAGE, |b| {
        (!b.displayed("#dialog")).then_some(())
    });
}

fn login(b: &Browser, token: &str) {
    b.wait_for("the login form", PAGE, |b| {
        b.displayed("#login-form").then_some(())
    });
    b.type_text("#token", token);
    b.click("#login-button");
    b.wait_for("the dashboard after login", PAGE, |b| {
        b.displayed("#app").then_some(())
    });
}

/// Action buttons a person can see (the "why" button only reads).
fn visible_actions(b: &Browser) -> Vec<String> {
    let v = b.js(
        "return [...document.querySelectorAll('button[data-action], form.admin-only')]
            .filter((e) => e.dataset.action !== 'why' && e.getClientRects().length > 0)
            .map((e) => e.dataset.action || e.id);",
        vec![],
    );
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A POST with the page's own token, from the page; (status, error).
fn post_from_page(b: &Browser, path: &str, body: &Value) -> (u64, String) {
    let v = b.js_async(
        "const done = arguments[arguments.length - 1];
         fetch('/api/v1' + arguments[0], {
           method: 'POST',
           headers: {
             Authorization: 'Bearer ' + sessionStorage.getItem('ha-manager-token'),
             'Content-Type': 'application/json',
           },
           body: JSON.stringify(arguments[1]),
         }).then((r) => r.json().then((j) => done([r.status, j.error || ''])))
           .catch((e) => done([0, String(e)]));",
        vec![json!(path), body.clone()],
    );
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn the_dashboard_shows_the_cluster_acts_with_admin_tokens_and_only_reads_with_read_only_ones() {
    // The browser first: installing it may take a while, and the cluster
    // should not idle meanwhile.
    let b = Browser::start();
    let mut c = start(3);
    let admin = make_token(&c, "dash-admin", "admin");
    let viewer = make_token(&c, "dash-viewer", "read-only");
    let leader = wait_until(Duration::from_secs(20), "a leader", || c.leader()).expect("leader");
    let http = c.https_client(leader).expect("client");

    // The page's files need no token and carry the strict policy.
    let page = http.get(c.url(leader, "/ui/")).send().expect("GET /ui/");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let whoami: Value = http
        .get(c.url(leader, "/api/v1/whoami"))
        .bearer_auth(&viewer)
        .send()
        .and_then(|r| r.json())
        .expect("whoami");
    assert_eq!(whoami, json!({"id": "dash-viewer", "role": "read-only"}));

    // Admin: log in on the leader's page (it answers throughout: the
    // node killed below is a follower).
    b.goto(&c.url(leader, "/"));
    // A wrong token is refused with the API's message.
    b.wait_for("the login form", PAGE, |b| {
        b.displayed("#login-form").then_some(())
    });
    b.type_text("#token", "dash-admin.not-the-secret");
    b.click("#login-button");
    b.wait_for("the refusal", PAGE, |b| {
        b.text("#login-error")
            .filter(|t| t.contains("wrong API token"))
    });
    assert!(!b.displayed("#app"));
    login(&b, &admin);
    b.wait_for("three nodes on the page", PAGE, |b| {
        (b.count(".node[data-node]") == 3).then_some(())
    });
    assert_eq!(
        b.text("#who").as_deref(),
        Some("dash-admin (admin)"),
        "the page says who is logged in"
    );

    // Add the service with the page's form; it must really run.
    let m = marker(1);
    b.type_text("#add-sid", SID);
    b.type_text("#add-options", &format!("cmd={}", marker_command(m)));
    b.click("#add-form button[data-action='add']");
    let on = wait_running_once(&c, m, Duration::from_secs(60));
    wait_row_on(&b, SID, &c.nodes[on].name, PAGE);
    let watch = ServiceWatch::start(m, c.pid_locator());

    // Migrate with the page to another node, then relocate to a follower
    // (the node killed below: the leader, whose page we watch, survives).
    let via = (0..3).find(|i| *i != on).expect("another node");
    let follower = (0..3)
        .find(|i| *i != via && *i != leader)
        .expect("a follower");
    move_with_page(&b, "migrate", SID, &c.nodes[via].name);
    wait_row_on(&b, SID, &c.nodes[via].name, MOVE);
    wait_process_on(&c, m, via);
    move_with_page(&b, "relocate", SID, &c.nodes[follower].name);
    wait_row_on(&b, SID, &c.nodes[follower].name, MOVE);
    wait_process_on(&c, m, follower);
    b.screenshot("dashboard.png");

    // An API error is shown with the API's message.
    b.click(&format!("{} button[data-action='migrate']", row(SID)));
    b.wait_for("the node picker", PAGE, |b| {
        b.displayed("#move-node").then_some(())
    });
    b.js(
        "const o = document.createElement('option'); o.value = 'nosuchnode'; \
         document.getElementById('move-node').append(o);",
        vec![],
    );
    b.select("#move-node", "nosuchnode");
    b.click("#dialog-ok");
    b.wait_for("the API's refusal in the dialog", PAGE, |b| {
        b.text("#dialog-error")
            .filter(|t| t.contains("'nosuchnode' is not a cluster member"))
    });
    b.click("#dialog-cancel");

    // Kill the service's node: the page shows the node lost, then the
    // service recovered elsewhere.
    let victim = follower;
    let victim_name = c.nodes[victim].name.clone();
    let killed = Instant::now();
    c.signal_daemon(victim, Signal::SIGKILL)
        .expect("kill the node");
    let card = format!(".node[data-node='{victim_name}']");
    b.wait_for(&format!("{victim_name} shown as lost"), MOVE, |b| {
        b.attr(&card, "data-state")
            .filter(|s| matches!(s.as_str(), "unknown" | "fence" | "fenced"))
    });
    b.screenshot("failover-node-lost.png");
    let (_, to) = wait_until(MOVE, "the service recovered on another node", || {
        watch.first_elsewhere(killed, victim)
    })
    .expect("recovered");
    wait_row_on(&b, SID, &c.nodes[to].name, MOVE);
    b.wait_for(&format!("{victim_name} shown fenced"), MOVE, |b| {
        b.attr(&card, "data-state").filter(|s| s == "fenced")
    });
    // The timeline tells the story from the history: the node unknown,
    // fenced, its lease taken; the service fenced, recovered, started.
    let node_lane = format!("#timeline .lane[data-lane='node {victim_name}']");
    let service_lane = format!("#timeline .lane[data-lane='{SID}']");
    let marks = [
        format!("{node_lane} .mark[data-mark='unknown']"),
        format!("{node_lane} .mark[data-mark='fence']"),
        format!("{node_lane} .mark[data-mark='fenced']"),
        format!("{service_lane} .mark[data-mark='fence']"),
        format!("{service_lane} .mark[data-kind='recovery']"),
        format!("{service_lane} .mark[data-mark='started']"),
    ];
    b.wait_for("the failover on the timeline", MOVE, |b| {
        marks.iter().all(|m| b.count(m) >= 1).then_some(())
    });
    // In time order along the lane.
    let left = |css: &str| {
        b.js(
            "return document.querySelector(arguments[0]).getBoundingClientRect().left;",
            vec![json!(css)],
        )
        .as_f64()
        .expect("a position")
    };
    assert!(left(&marks[0]) <= left(&marks[2]), "unknown before fenced");
    assert!(
        left(&marks[4]) <= left(&marks[5]),
        "recovery before started"
    );
    let recovery_text = b.text(&marks[4]).unwrap_or_default();
    assert!(
        recovery_text.contains(&c.nodes[to].name),
        "the recovery names the new node: {recovery_text}"
    );
    // The history lists the commands the page sent, with its token.
    b.wait_for("the page's commands in the history", PAGE, |b| {
        b.text("#history")
            .filter(|t| t.contains("dash-admin") && t.contains("relocate"))
    });
    b.js("window.scrollTo(0, 0);", vec![]);
    b.screenshot("failover-recovered.png");
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());

    // Why: the CRM's recovery decision, from the API.
    b.js("window.scrollTo(0, 0);", vec![]);
    b.click(&format!("{} button[data-action='why']", row(SID)));
    let why = b.wait_for("the explanation", PAGE, |b| {
        b.text("#why-text").filter(|t| !t.is_empty())
    });
    assert!(
        why.contains(&format!("-> {}", c.nodes[to].name)) && why.contains("recovery"),
        "{why}"
    );
    assert!(
        b.count(&format!("#dialog tr[data-node='{victim_name}']")) == 1,
        "the fenced node is listed among the candidates"
    );
    b.screenshot("why.png");
    b.click("#dialog-cancel");

    // Read-only: the same page without any action, and the API refuses
    // the page's own POSTs.
    b.click("#logout");
    login(&b, &viewer);
    wait_row_on(&b, SID, &c.nodes[to].name, PAGE);
    assert_eq!(b.text("#who").as_deref(), Some("dash-viewer (read-only)"));
    assert_eq!(visible_actions(&b), Vec::<String>::new());
    assert!(b.count(&format!("{} button[data-action='why']", row(SID))) == 1);
    let (status, error) = post_from_page(
        &b,
        "/resources/exec%3Aweb/migrate",
        &json!({"node": c.nodes[leader].name}),
    );
    assert_eq!(status, 403, "{error}");
    assert!(error.contains("read-only"), "{error}");
    let (status, error) = post_from_page(&b, "/crm-command", &json!({"command": "arm-ha"}));
    assert_eq!(status, 403, "{error}");
    let refused = http
        .post(c.url(leader, "/api/v1/crm-command"))
        .bearer_auth(&viewer)
        .json(&json!({"command": "disarm-ha", "mode": "freeze"}))
        .send()
        .expect("POST");
    assert_eq!(refused.status(), 403);
    // A bad disarm mode is refused naming the field, even for an admin.
    let bad = http
        .post(c.url(leader, "/api/v1/crm-command"))
        .bearer_auth(&admin)
        .json(&json!({"command": "disarm-ha", "mode": "sometimes"}))
        .send()
        .expect("POST");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().expect("error body");
    assert_eq!(body["field"], "mode", "{body}");
    assert_eq!(
        marker_pids(m).len(),
        1,
        "the read-only POSTs changed nothing"
    );
    drop(b);
    let _ = c.daemon_exited(victim);
}

#[test]
fn with_two_thousand_services_a_poll_touches_only_the_rows_that_changed() {
    let b = Browser::start();
    let c = start(3);
    let admin = make_token(&c, "dash-admin", "admin");
    let leader = wait_until(Duration::from_secs(20), "a leader", || c.leader()).expect("leader");
    // 2,000 stopped services in one import (nothing runs).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("resources.cfg");
    let cfg: String = (0..2000)
        .map(|i| format!("exec: s{i:04}\n\tstate stopped\n\tcmd sleep 1\n\n"))
        .collect();
    std::fs::write(&file, cfg).expect("resources.cfg");
    let out = c
        .cli(0, &["import", "--resources", file.to_str().expect("path")])
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    b.goto(&c.url(leader, "/"));
    login(&b, &admin);
    b.wait_for(
        "2,000 stopped services on the page",
        Duration::from_secs(90),
        |b| (b.count("tr[data-sid][data-state='stopped']") == 2000).then_some(()),
    );
    // Watch the table through a few polls: nothing changed, nothing is
    // touched (no re-render).
    b.js(
        "window.touched = [];
         new MutationObserver((list) => {
           for (const m of list) {
             const row = (m.target.nodeType === 1 ? m.target : m.target.parentElement).closest('tr');
             window.touched.push(row ? row.dataset.sid : '(table)');
           }
         }).observe(document.getElementById('service-rows'),
           { subtree: true, childList: true, characterData: true, attributes: true });",
        vec![],
    );
    std::thread::sleep(Duration::from_secs(4));
    let touched = b.js("return window.touched;", vec![]);
    assert_eq!(touched, json!([]), "a poll without changes touched rows");
    // One service is edited with the page: only its row is touched.
    b.click("tr[data-sid='exec:s0042'] button[data-action='edit']");
    let text = b.wait_for("the edit dialog", PAGE, |b| {
        b.displayed("#edit-options")
            .then(|| {
                b.js(
                    "return document.getElementById('edit-options').value;",
                    vec![],
                )
            })
            .and_then(|v| v.as_str().map(str::to_string))
    });
    assert!(
        text.contains("state=stopped") && text.contains("cmd=sleep 1"),
        "{text}"
    );
    b.type_text(
        "#edit-options",
        &text.replace("state=stopped", "state=disabled"),
    );
    b.click("#dialog-ok");
    b.wait_for("the change on the page", PAGE, |b| {
        (b.text("tr[data-sid='exec:s0042'] .requested-cell")
            .as_deref()
            == Some("disabled"))
        .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let touched = b.js("return [...new Set(window.touched)];", vec![]);
    assert_eq!(touched, json!(["exec:s0042"]), "only the changed row");
    assert_eq!(b.count("tr[data-sid]"), 2000);
    let http = c.https_client(leader).expect("client");
    let stored: Value = http
        .get(c.url(leader, "/api/v1/resources/exec%3As0042"))
        .bearer_auth(&admin)
        .send()
        .and_then(|r| r.json())
        .expect("GET");
    assert_eq!(stored["state"], "disabled", "{stored}");
    assert_eq!(stored["params"]["cmd"], "sleep 1", "the edit kept the rest");

    // Rules: add one with the form, see the CRM's verdict, remove it.
    b.select("#rule-type", "resource-affinity");
    b.type_text("#rule-id", "apart");
    b.type_text("#rule-resources", "exec:s0001,exec:s0002");
    b.select("#rule-affinity", "negative");
    b.click("#rule-form button[data-action='add-rule']");
    b.wait_for("the new rule in use", PAGE, |b| {
        b.text("tr[data-rule='apart']")
            .filter(|t| t.contains("negative") && t.contains("in use"))
    });
    b.click("tr[data-rule='apart'] button[data-action='remove-rule']");
    b.wait_for("the rule gone", PAGE, |b| {
        (b.count("tr[data-rule='apart']") == 0).then_some(())
    });

    // Maintenance of a node, on and off.
    let node = c.nodes[(leader + 1) % 3].name.clone();
    let card = format!(".node[data-node='{node}']");
    b.click(&format!("{card} button[data-action='maintenance-enable']"));
    b.wait_for(&format!("{node} in maintenance"), MOVE, |b| {
        b.attr(&card, "data-state").filter(|s| s == "maintenance")
    });
    b.click(&format!("{card} button[data-action='maintenance-disable']"));
    b.wait_for(&format!("{node} online again"), MOVE, |b| {
        b.attr(&card, "data-state").filter(|s| s == "online")
    });
}
