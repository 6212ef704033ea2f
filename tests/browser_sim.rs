//! The simulator page (`ha-manager sim serve`) in a real headless
//! Chromium: load a scenario, run it until it is quiet, power the node of
//! a service off with the page's switch, run, and watch the page show the
//! node fenced and the service recovered on another node, with the log
//! saying so. The screenshot goes to `docs/screenshots/simulator.png`
//! with `HA_UPDATE_SCREENSHOTS=1` (the README shows it).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::Browser;

const PAGE: Duration = Duration::from_secs(30);

/// The `sim serve` process started here; ended by its pid on drop.
struct SimServer {
    child: Child,
    url: String,
}

impl SimServer {
    fn start(scenario: &str) -> SimServer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios")
            .join(scenario);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ha-manager"))
            .args(["sim", "serve"])
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sim serve starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the URL line");
        let url = line
            .trim()
            .strip_prefix("simulator on ")
            .unwrap_or_else(|| panic!("no URL line: {line:?}"))
            .to_string();
        SimServer { child, url }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_simulator_page_powers_a_node_off_and_shows_the_recovery() {
    let server = SimServer::start("recovery-original-node-back");
    let b = Browser::start();
    b.goto(&server.url);
    b.wait_for("the node cards", PAGE, |b| {
        (b.count("#nodes [data-node]") >= 3).then_some(())
    });
    // The scenario's own commands power the nodes on; run until quiet.
    b.click("#run-done");
    b.wait_for("the scenario to be done", PAGE, |b| {
        (b.attr("#status", "class")
            .is_some_and(|c| c.split_whitespace().any(|w| w == "done")))
        .then_some(())
    });
    let row = "#service-rows tr[data-sid='vm:103']";
    b.wait_for("vm:103 started on node3", PAGE, |b| {
        (b.attr(row, "data-state").as_deref() == Some("started")
            && b.attr(row, "data-node").as_deref() == Some("node3"))
        .then_some(())
    });
    // Power node3 off with its switch, then run.
    b.click("#power-node3");
    b.wait_for("node3 powered off", PAGE, |b| {
        (b.attr("#node-node3", "data-power").as_deref() == Some("off")).then_some(())
    });
    b.click("#run");
    let node = b.wait_for("vm:103 recovered on another node", PAGE, |b| {
        let state = b.attr(row, "data-state")?;
        let node = b.attr(row, "data-node")?;
        (state == "started" && node != "node3").then_some(node)
    });
    b.click("#pause");
    assert!(node == "node1" || node == "node2", "recovered to {node}");
    // The log on the page tells the fence and the recovery.
    let log = b.text("#log").unwrap_or_default();
    assert!(log.contains("FENCE: Try to fence node 'node3'"), "{log}");
    assert!(
        log.contains(&format!(
            "recover service 'vm:103' from fenced node 'node3' to node '{node}'"
        )),
        "{log}"
    );
    assert!(
        b.text("#violations").unwrap_or_default().contains("none"),
        "no safety violation"
    );
    b.screenshot("simulator.png");
}
