//! Runs every scenario under tests/scenarios/, diffs the produced log
//! against `log.expect` and asserts zero safety violations.
//!
//! `BLESS=1 cargo test --test scenarios` writes missing or changed
//! `log.expect` files. `SCENARIO=<name>` runs only matching directories.

use std::path::{Path, PathBuf};

fn scenario_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("cmdlist").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    if let Ok(filter) = std::env::var("SCENARIO") {
        dirs.retain(|d| d.to_string_lossy().contains(&filter));
    }
    dirs
}

/// A small unified-style diff: the first differing region with context.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(a.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    // common suffix
    let mut tail = 0;
    while tail < e.len() - first.min(e.len())
        && tail < a.len() - first.min(a.len())
        && e[e.len() - 1 - tail] == a[a.len() - 1 - tail]
    {
        tail += 1;
    }
    let start = first.saturating_sub(3);
    let mut out = format!("@@ line {} @@\n", first + 1);
    for line in &e[start..first] {
        out.push_str(&format!(" {line}\n"));
    }
    for line in &e[first..e.len() - tail] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &a[first..a.len() - tail] {
        out.push_str(&format!("+{line}\n"));
    }
    let ctx_end = (e.len() - tail + 3).min(e.len());
    for line in &e[e.len() - tail..ctx_end] {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

#[test]
fn all_scenarios_match_their_expected_log() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let dirs = scenario_dirs();
    assert!(!dirs.is_empty(), "no scenarios found under tests/scenarios");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let result = match ha_manager::sim::run_dir(dir, None) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: cannot load scenario: {e}"));
                continue;
            }
        };
        let mut log = result.log.join("\n");
        log.push('\n');
        if !result.final_state.violations.is_empty() {
            failures.push(format!(
                "{name}: safety violations:\n  {}",
                result.final_state.violations.join("\n  ")
            ));
        }
        if let Some(err) = &result.error {
            failures.push(format!("{name}: simulation aborted: {err}"));
        }
        let expect_path = dir.join("log.expect");
        match std::fs::read_to_string(&expect_path) {
            Ok(expected) if expected == log => {}
            Ok(expected) => {
                if bless {
                    std::fs::write(&expect_path, &log).expect("write log.expect");
                } else {
                    failures.push(format!(
                        "{name}: log differs from log.expect\n{}",
                        diff(&expected, &log)
                    ));
                }
            }
            Err(_) => {
                if bless {
                    std::fs::write(&expect_path, &log).expect("write log.expect");
                } else {
                    failures.push(format!(
                        "{name}: no log.expect; review the log with `cargo run -- sim run {}` and bless it with `BLESS=1 cargo test --test scenarios`",
                        dir.display()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

/// The group migration scenario persists its result: no groups left, the
/// generated rule present, vm:103 without its group and with failback 0,
/// placement unchanged.
#[test]
fn group_migration_rewrites_the_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/group-migrate-versions");
    let result = ha_manager::sim::run_dir(&dir, None).expect("scenario loads");
    let fs = &result.final_state;
    assert!(fs.groups.is_empty(), "groups deleted: {:?}", fs.groups);
    assert_eq!(fs.rules, ["ha-group-pref3"]);
    let vm103 = &fs.services["vm:103"];
    assert_eq!(vm103.group, None);
    assert!(!vm103.failback, "nofailback group -> failback 0");
    for (sid, node) in [
        ("vm:101", "node1"),
        ("vm:102", "node2"),
        ("vm:103", "node3"),
    ] {
        let svc = &fs.services[sid];
        assert_eq!((svc.state.as_str(), svc.node.as_str()), ("started", node));
        assert_eq!(svc.running_on, [node]);
    }
    let attempts = result
        .log
        .iter()
        .filter(|l| l.contains("abort ha groups migration"))
        .count();
    assert_eq!(attempts, 1, "one failed attempt before the version update");
}
