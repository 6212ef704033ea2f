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
    let second = run(&dir, &["--seed", "7"]);
    assert_eq!(first.stdout, second.stdout, "same input and seed, same log");
    let other = run(&dir, &["--seed", "8"]);
    assert_eq!(other.status.code(), Some(0));
    assert_ne!(first.stdout, other.stdout, "another seed, another run");
    let zero = run(&dir, &[]);
    assert_eq!(
        zero.stdout,
        run(&dir, &["--seed", "0"]).stdout,
        "seed 0 is the default"
    );
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
    let fast = run(&dir, &["--profile", "fast", "--seed", "3"]);
    assert_eq!(fast.status.code(), Some(0));
}

#[test]
fn new_fault_commands_are_validated_with_file_line_and_token() {
    for (name, cmd, want) in [
        ("pause", "pause node9", "cmdlist:2: unknown node ('node9')"),
        (
            "daemon",
            "daemon node1 kill",
            "cmdlist:2: expected stop or start ('kill')",
        ),
        (
            "mux",
            "mux node2 crash",
            "cmdlist:2: expected restart, hang or resume ('crash')",
        ),
        (
            "linkself",
            "link node1 node1 off",
            "cmdlist:2: a link needs two different nodes ('node1')",
        ),
        (
            "linkdir",
            "link node1 to node2 down",
            "cmdlist:2: expected on or off ('down')",
        ),
        (
            "linkall",
            "link all off",
            "cmdlist:2: only 'link all on' heals every link ('off')",
        ),
        (
            "loss",
            "net loss 500",
            "cmdlist:2: loss needs a per-mille value from 0 to 200 ('500')",
        ),
        (
            "net",
            "net jitter 5",
            "cmdlist:2: expected delay or loss ('jitter')",
        ),
    ] {
        let dir = scenario(
            name,
            &[
                ("cmdlist", &format!("[[\"power node1 on\"],\n [\"{cmd}\"]]")),
                ("hardware_status", HW),
                ("service_config", SVC),
            ],
        );
        let out = run(&dir, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
    }
    // A delay above the profile's bound is refused once the profile is
    // known (default: renew_attempt_timeout 1 s / 8 = 125 ms).
    let dir = scenario(
        "delay",
        &[
            ("cmdlist", "[[\"power node1 on\"],\n [\"net delay 200\"]]"),
            ("hardware_status", HW),
            ("service_config", SVC),
        ],
    );
    let out = run(&dir, &["--profile", "default"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cmdlist:2: message delay above the 'default' profile's bound of 125 ms"),
        "{err}"
    );
    assert_eq!(run(&dir, &["--profile", "pve"]).status.code(), Some(0));
}

#[test]
fn every_new_fault_runs() {
    let dir = scenario(
        "faults",
        &[
            (
                "cmdlist",
                r#"[["power node1 on", "power node2 on", "power node3 on"],
 ["net delay 50", "net loss 20", "link node1 to node2 off", "pause leader"],
 ["resume all", "link all on", "link node2 node3 off", "mux node3 hang"],
 ["link node2 node3 on", "mux node3 resume", "mux node1 restart", "daemon node2 stop"],
 ["daemon node2 start", "pause node3", "resume node3", "net loss 0"]]"#,
            ),
            ("hardware_status", HW),
            ("service_config", SVC),
            ("seed", "5\n"),
            ("profile", "fast\n"),
        ],
    );
    let fs = dir.join("final.json");
    let out = run(&dir, &["--final-state", fs.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    for line in [
        "execute pause leader",
        "the leader is",
        "execute mux node1 restart",
        "daemon of 'node2' stopped",
    ] {
        assert!(log.contains(line), "missing {line:?} in\n{log}");
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&fs).unwrap()).unwrap();
    assert_eq!(state["violations"].as_array().unwrap().len(), 0);
    assert!(state["liveness_violations"].is_array());
    // The seed file is the default; --seed overrides it.
    let again = run(&dir, &[]);
    assert_eq!(out.stdout, again.stdout);
    let bad = scenario("badseed", &[("cmdlist", "[[]]"), ("seed", "x")]);
    let out = run(&bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("seed:1: expected a non-negative integer ('x')"));
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

#[test]
fn bad_scheduling_input_names_file_line_and_field() {
    let cmd = "[[\"power node1 on\"]]";
    for (name, extra, want) in [
        (
            "static-missing",
            (
                "static_service_stats",
                "{\n  \"vm:101\": {\n    \"maxcpu\": 2\n  }\n}\n",
            ),
            "static_service_stats:2: 'vm:101': field 'maxmem' is missing",
        ),
        (
            "dynamic-malformed",
            (
                "dynamic_service_stats",
                "{\n  \"vm:101\": {\n    \"cpu\": 1,\n    \"mem\": \"lots\"\n  }\n}\n",
            ),
            "dynamic_service_stats:4: 'vm:101': field 'mem' must be a number of at least 0",
        ),
        (
            "hw-maxmem",
            (
                "hardware_status",
                "{\n\"node1\": {\"power\": \"off\",\n \"maxmem\": -5}}\n",
            ),
            "hardware_status:3: field 'maxmem': expected a positive number",
        ),
        (
            "crs-mode",
            (
                "datacenter.cfg",
                "{\n  \"crs\": {\n    \"ha\": \"fastest\"\n  }\n}\n",
            ),
            "datacenter.cfg:3: field 'crs.ha': invalid value 'fastest'",
        ),
        (
            "stats-command",
            (
                "cmdlist",
                "[[\"power node1 on\"],\n [\"service vm:101 set-static-stats maxcpu two\"]]",
            ),
            "cmdlist:2: field 'maxcpu' must be a number of at least 0",
        ),
    ] {
        let mut files = vec![
            ("cmdlist", cmd),
            ("hardware_status", HW),
            ("service_config", SVC),
        ];
        files.retain(|(f, _)| *f != extra.0);
        files.push(extra);
        let dir = scenario(name, &files);
        let out = run(&dir, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing may run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
    }
    // The same files, well formed, run.
    let dir = scenario(
        "crs-good",
        &[
            (
                "cmdlist",
                "[[\"power node1 on\", \"power node2 on\", \"power node3 on\"]]",
            ),
            ("hardware_status", HW),
            ("service_config", SVC),
            (
                "datacenter.cfg",
                "{\"crs\": {\"ha\": \"static\", \"ha-auto-rebalance\": 1}}",
            ),
            (
                "static_service_stats",
                "{\"vm:101\": {\"maxcpu\": 2, \"maxmem\": 1024}}",
            ),
        ],
    );
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("using scheduler mode 'static'"));
}
