//! The `ha-manager sim run` command as a real process: bad input gives
//! exit code 2 and names file, line and token; a good run writes the
//! final state and is byte-for-byte reproducible.

use std::path::PathBuf;
use std::process::Command;

fn scenario(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ha-sim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

const HW: &str = r#"{"node1": {"power": "off", "network": "off"},
 "node2": {"power": "off", "network": "off"},
 "node3": {"power": "off", "network": "off"}}"#;
const SVC: &str = r#"{"vm:101": {"node": "node1", "state": "started"}}"#;

fn run(dir: &PathBuf, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ha-manager"))
        .args(["sim", "run"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn unknown_command_is_rejected_with_file_line_and_token() {
    let dir = scenario(
        "badcmd",
        &[
            (
                "cmdlist",
                "[\n  [\"power node1 on\"],\n  [\"explode node1\"]\n]\n",
            ),
            ("hardware_status", HW),
            ("service_config", SVC),
        ],
    );
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cmdlist:3"), "{err}");
    assert!(err.contains("'explode'"), "{err}");
}

#[test]
fn unknown_node_and_sid_and_malformed_json_are_rejected() {
    for (name, cmdlist, svc, want) in [
        ("node", "[[\"power node9 on\"]]", SVC, "'node9'"),
        (
            "sid",
            "[[\"service vm:999 migrate node2\"]]",
            SVC,
            "'vm:999'",
        ),
        (
            "json",
            "[[\"power node1 on\"]]",
            "{\"vm:101\": {\"node\": ",
            "service_config:1",
        ),
    ] {
        let dir = scenario(
            name,
            &[
                ("cmdlist", cmdlist),
                ("hardware_status", HW),
                ("service_config", svc),
            ],
        );
        let out = run(&dir, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn final_state_and_reproducible_log() {
    let dir = scenario(
        "good",
        &[
            ("cmdlist", "[[\"power node1 on\", \"power node2 on\", \"power node3 on\"], [\"network node1 off\"]]"),
            ("hardware_status", HW),
            ("service_config", SVC),
            ("manager_status", "{}"),
        ],
    );
    let fs = dir.join("final.json");
    let first = run(
        &dir,
        &["--final-state", fs.to_str().unwrap(), "--seed", "7"],
    );
    assert_eq!(first.status.code(), Some(0));
    let second = run(&dir, &["--seed", "8"]);
    assert_eq!(first.stdout, second.stdout, "same input, same log");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&fs).unwrap()).unwrap();
    assert_eq!(state["violations"].as_array().unwrap().len(), 0);
    let svc = &state["services"]["vm:101"];
    assert_eq!(svc["state"], "started");
    assert_ne!(
        svc["node"], "node1",
        "recovered away from the isolated node"
    );
    assert_eq!(svc["running_on"].as_array().unwrap().len(), 1);
    assert_eq!(state["nodes"]["node1"]["power"], "off", "watchdog fired");
    let default = run(&dir, &["--profile", "default"]);
    assert_eq!(default.status.code(), Some(0));
}

#[test]
fn missing_directory_and_missing_cmdlist_are_named() {
    let missing = std::env::temp_dir().join(format!("ha-sim-cli-{}-absent", std::process::id()));
    let _ = std::fs::remove_dir_all(&missing);
    let out = run(&missing, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scenario directory does not exist"), "{err}");
    assert!(!err.contains("cmdlist"), "{err}");

    let empty = scenario("empty", &[]);
    let out = run(&empty, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cmdlist: missing required file in the scenario directory"),
        "{err}"
    );
    assert!(!err.contains(":0:"), "{err}");
}

#[test]
fn malformed_pve_manager_version_is_rejected() {
    for (name, cmdlist, hw, want) in [
        (
            "vercmd",
            "[[\"power node1 on\"], [\"pve-manager-version node1 set nine\"]]",
            HW,
            "cmdlist:1: malformed pve-manager version 'nine'",
        ),
        (
            "verhw",
            "[[\"power node1 on\"]]",
            r#"{"node1": {"power": "off", "network": "off", "pve-manager-version": "9.0"}}"#,
            "hardware_status:1: malformed pve-manager version '9.0'",
        ),
    ] {
        let dir = scenario(
            name,
            &[
                ("cmdlist", cmdlist),
                ("hardware_status", hw),
                ("service_config", SVC),
            ],
        );
        let out = run(&dir, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
    }
}
