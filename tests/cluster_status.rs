//! `ha-manager status` and the other query verbs against three real
//! daemons on loopback: Proxmox's lines in the local time of the CLI
//! process, the node lines, a service that learns its node (`HA_NODE`), a
//! fenced node shown as the CRM sees it, a lone node without quorum that
//! claims nothing, and no panic when the reader closes the pipe.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{bin_dir, marker, start, wait_running_once};
use ha_manager::api::status::{ctime_utc, StatusEntry};
use ha_manager::local_cluster::procs::marker_command;
use ha_manager::local_cluster::{wait_until, LocalCluster};

const LIMIT: Duration = Duration::from_secs(60);

/// A fixed zone without daylight saving, three hours east of UTC (POSIX
/// TZ syntax: the offset is written west-positive).
const TZ: &str = "HAT-3";
const TZ_OFFSET_SECS: u64 = 3 * 3600;

/// The CLI against node `i` with `TZ` set and stdout/stderr piped.
fn cli(c: &LocalCluster, i: usize, args: &[&str]) -> Command {
    let mut command = Command::new(bin_dir().join("ha-manager"));
    command
        .args(args)
        .env("HA_MANAGER_CONFIG", c.nodes[i].config_path())
        .env("TZ", TZ)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The status text of node `i` (exit 0 asserted).
fn status_text(c: &LocalCluster, i: usize) -> String {
    let out = cli(c, i, &["status"]).output().expect("the CLI runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "status failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn entry<'a>(entries: &'a [StatusEntry], id: &str) -> Option<&'a StatusEntry> {
    entries.iter().find(|e| e.id == id)
}

#[test]
fn status_is_proxmoxs_in_local_time_and_tells_the_truth_about_failed_nodes() {
    let mut c = start(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("nodes");
    let m = marker(1);
    let cmd = format!(
        "cmd=echo \"$HA_NODE\" >> {}; {}",
        seen.display(),
        marker_command(m)
    );
    let out = c
        .cli(0, &["add", "exec:where", "--param", &cmd])
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = wait_running_once(&c, m, LIMIT);
    let first_name = c.nodes[first].name.clone();
    // The service learned which node runs it.
    let names = wait_until(LIMIT, "the service wrote HA_NODE", || {
        std::fs::read_to_string(&seen)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .expect("HA_NODE written");
    assert_eq!(names.trim(), first_name, "HA_NODE of the first start");

    // `config` prints only the keys that are set, as resources.cfg has them.
    let out = c
        .cli(0, &["set", "exec:where", "--max_restart", "3"])
        .expect("cli");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = c.cli(1, &["config"]).expect("cli").stdout;
    let keys: Vec<&str> = config
        .lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(config.starts_with("exec:where\n"), "{config}");
    assert_eq!(keys, ["cmd", "max_restart"], "{config}");

    // Proxmox's lines, in order, with the node lines after the master.
    let via = (first + 1) % 3;
    let text = wait_until(LIMIT, "a settled status", || {
        let t = status_text(&c, via);
        t.contains(&format!("service exec:where ({first_name}, started)"))
            .then_some(t)
    })
    .expect("settled");
    let kinds: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["quorum", "master", "node", "node", "node", "lrm", "lrm", "lrm", "service"],
        "{text}"
    );
    assert_eq!(text.lines().next(), Some("quorum OK"), "{text}");
    for n in &c.nodes {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("node {} (online", n.name))),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!("lrm {first_name} (active, watchdog active, ")),
        "{text}"
    );
    // The master's time is the CLI's local time (TZ), not UTC.
    let master = text
        .lines()
        .find(|l| l.starts_with("master "))
        .expect("master line");
    let shown = master
        .rsplit_once(", ")
        .map(|(_, t)| t.trim_end_matches(')'))
        .expect("a time");
    let t = now();
    let local: Vec<String> = (t - 40..=t + 2)
        .map(|s| ctime_utc(s + TZ_OFFSET_SECS))
        .collect();
    assert!(
        local.iter().any(|l| l == shown),
        "master time '{shown}' is not local time ({TZ}); {master}"
    );

    // JSON: typed fields of the same entries.
    let entries = c.status(via).expect("status json");
    let m_entry = entry(&entries, "master").expect("master entry");
    assert_eq!(m_entry.state.as_deref(), Some("active"));
    assert!(m_entry.timestamp.is_some_and(|ts| ts + 40 >= t));
    let lrm = entry(&entries, &format!("lrm:{first_name}")).expect("lrm entry");
    assert_eq!(lrm.lrm_state.as_deref(), Some("active"));
    assert_eq!(lrm.watchdog.as_deref(), Some("active"));
    assert_eq!(lrm.node_state.as_deref(), Some("online"));

    // A power cut of the service's node: the survivors show it fenced by
    // the CRM, not as its last report, and the service recovered.
    c.kill_node(first);
    let second = wait_running_once(&c, m, LIMIT);
    assert_ne!(second, first);
    let second_name = c.nodes[second].name.clone();
    let entries = wait_until(LIMIT, "the fenced node shown fenced", || {
        let e = c.status(second).ok()?;
        let node = entry(&e, &format!("node:{first_name}"))?;
        (node.node_state.as_deref() == Some("fenced")).then_some(e)
    })
    .expect("fenced");
    let lrm = entry(&entries, &format!("lrm:{first_name}")).expect("lrm entry");
    assert_ne!(lrm.watchdog.as_deref(), Some("active"), "{lrm:?}");
    assert_eq!(lrm.state.as_deref(), Some("node fenced"), "{lrm:?}");
    let line = format!("service exec:where ({second_name}, started)\n");
    wait_until(LIMIT, "the recovered service started, unmarked", || {
        status_text(&c, second).contains(&line).then_some(())
    })
    .expect("recovered");
    let names = std::fs::read_to_string(&seen).expect("nodes file");
    assert_eq!(
        names.lines().last(),
        Some(second_name.as_str()),
        "HA_NODE after recovery"
    );

    // The last survivor without quorum claims nothing.
    let third = (0..3).find(|&i| i != first && i != second).expect("third");
    c.kill_node(second);
    let text = wait_until(LIMIT, "the survivor without quorum", || {
        let t = status_text(&c, third);
        t.starts_with("quorum No quorum").then_some(t)
    })
    .expect("no quorum");
    let master = text.lines().find(|l| l.starts_with("master "));
    assert!(master.is_none_or(|l| !l.contains("(active, ")), "{text}");
    let second_lrm = format!("lrm {second_name} (");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&second_lrm) && l.ends_with(", no quorum here, last report)")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("service exec:where (") && l.ends_with("(no quorum here))")),
        "{text}"
    );
}

/// A Proxmox resources.cfg with guests: refused with the file, the line
/// and what to do, and nothing imported.
#[test]
fn importing_guests_names_file_line_and_the_agents_to_map_them_to() {
    let c = start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("resources.cfg");
    std::fs::write(
        &file,
        "exec: web\n\tcmd sleep 1\n\nvm: 100\n\tstate started\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    let out = c.cli(0, &["import", "--resources", path]).expect("cli");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for needle in [
        format!("{path}:4: resource 'vm:100'"),
        "'exec: <name>' with 'cmd".to_string(),
        "systemd".to_string(),
    ] {
        assert!(
            out.stderr.contains(&needle),
            "no '{needle}' in {}",
            out.stderr
        );
    }
    let config = c.cli(0, &["config"]).expect("cli");
    assert_eq!(config.code, 0, "{}", config.stderr);
    assert_eq!(config.stdout, "", "nothing imported");
}

/// Every query verb, its reader gone before it writes: a quiet exit 0,
/// no panic (Rust's `println!` panics with exit 101 on EPIPE).
#[test]
fn a_closed_pipe_ends_every_query_verb_quietly() {
    let c = start(1);
    let verbs: [&[&str]; 8] = [
        &["status"],
        &["status", "--verbose"],
        &["status", "--output-format", "json"],
        &["config"],
        &["rules", "config"],
        &["rules", "list"],
        &["groupconfig"],
        &["cluster", "status"],
    ];
    for args in verbs {
        let mut child = cli(&c, 0, args).spawn().expect("spawn");
        // Close the read end before the CLI has its answer to write.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = child.wait().expect("wait");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
    }
}
