//! Runs every scenario under tests/scenarios/ and checks it twice, in two
//! separate tests:
//!
//! - the produced log against the blessed `log.expect`, with zero safety
//!   violations;
//! - the final state (`SimResult::final_state`) against the scenario's
//!   `final-state.expect`, written from the scenario's README (format in
//!   tests/scenarios/README.md), independently of the log.
//!
//! `BLESS=1 cargo test --test scenarios` writes missing or changed
//! `log.expect` files (never `final-state.expect`: those come from the
//! README, not from a run). `SCENARIO=<name>` runs only matching
//! directories.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ha_manager::sim::harness::FinalState;
use ha_manager::sim::SimResult;
use serde_json::{Map, Value};

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

/// One scenario run, shared by the tests below.
struct Run {
    name: String,
    dir: PathBuf,
    result: Result<SimResult, String>,
}

/// The runs whose scenario loaded; one failure line for each that did not.
fn loaded_runs(
    failures: &mut Vec<String>,
) -> Vec<(&'static str, &'static PathBuf, &'static SimResult)> {
    let runs = runs();
    assert!(!runs.is_empty(), "no scenarios found under tests/scenarios");
    runs.iter()
        .filter_map(|Run { name, dir, result }| match result {
            Ok(r) => Some((name.as_str(), dir, r)),
            Err(e) => {
                failures.push(format!("{name}: cannot load scenario: {e}"));
                None
            }
        })
        .collect()
}

/// Runs every selected scenario once; both scenario tests read these runs
/// (the simulator is deterministic, a second run would give the same).
fn runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        scenario_dirs()
            .into_iter()
            .map(|dir| {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let result = ha_manager::sim::run_dir(&dir, None, None).map_err(|e| e.to_string());
                Run { name, dir, result }
            })
            .collect()
    })
}

#[test]
fn all_scenarios_match_their_expected_log() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, dir, result) in loaded_runs(&mut failures) {
        let mut log = result.log.join("\n");
        log.push('\n');
        if !result.final_state.violations.is_empty() {
            failures.push(format!(
                "{name}: safety violations:\n  {}",
                result.final_state.violations.join("\n  ")
            ));
        }
        if !result.final_state.liveness_violations.is_empty() {
            failures.push(format!(
                "{name}: liveness violations:\n  {}",
                result.final_state.liveness_violations.join("\n  ")
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
        runs().len(),
        failures.join("\n\n")
    );
}

/// Keys of a `final-state.expect` document: (key, required).
const TOP_KEYS: &[(&str, bool)] = &[
    ("time", false),
    ("services", true),
    ("nodes", true),
    ("groups", false),
    ("rules", false),
    ("violations", true),
    ("liveness_violations", false),
    ("notes", false),
];
/// Keys of one service entry: (key, required).
const SERVICE_KEYS: &[(&str, bool)] = &[
    ("state", true),
    ("node", true),
    ("crm_node", false),
    ("running_on", true),
    ("failback", false),
    ("group", false),
];
/// Keys of one node entry: (key, required).
const NODE_KEYS: &[(&str, bool)] = &[
    ("power", true),
    ("network", false),
    ("node_state", false),
    ("crm_state", false),
    ("lrm_state", false),
];
/// Fields compared as sets (order in the file does not matter).
const SET_FIELDS: &[&str] = &["running_on", "groups", "rules"];

/// Checks that `obj` has every required key of `keys` and no other key.
fn check_keys(path: &str, obj: &Map<String, Value>, keys: &[(&str, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    for (key, required) in keys {
        if *required && !obj.contains_key(*key) {
            out.push(format!("{path}: required key '{key}' missing"));
        }
    }
    for key in obj.keys() {
        if !keys.iter().any(|(k, _)| k == key) {
            let allowed: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
            out.push(format!(
                "{path}: unknown key '{key}' (allowed: {})",
                allowed.join(", ")
            ));
        }
    }
    out
}

/// The strings of a JSON array, sorted; `None` when it is not one.
fn sorted_strings(v: &Value) -> Option<Vec<&str>> {
    let mut list: Vec<&str> = v
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<_>>()?;
    list.sort_unstable();
    Some(list)
}

/// Compares one field; `path` names it (e.g. `services.vm:101.node`).
/// A field absent from the actual document reads as `null`.
fn compare_field(path: &str, field: &str, expected: &Value, actual: Option<&Value>) -> Vec<String> {
    let actual = actual.unwrap_or(&Value::Null);
    let equal = if SET_FIELDS.contains(&field) {
        match (sorted_strings(expected), sorted_strings(actual)) {
            (Some(e), Some(a)) => e == a,
            (None, _) => {
                return vec![format!(
                    "{path}: expected value {expected} is not a list of strings"
                )]
            }
            (Some(_), None) => false,
        }
    } else {
        expected == actual
    };
    if equal {
        Vec::new()
    } else {
        vec![format!("{path}: expected {expected}, got {actual}")]
    }
}

/// Compares the entries of `services` or `nodes`: every actual entry must
/// be expected; an expected entry must exist unless it is `null` (which
/// asserts its absence, e.g. a deleted service); listed fields must match.
fn compare_entries(
    section: &str,
    expected: &Value,
    actual: Option<&Value>,
    keys: &[(&str, bool)],
) -> Vec<String> {
    let Some(expected) = expected.as_object() else {
        return vec![format!("{section}: expected an object, got {expected}")];
    };
    let empty = Map::new();
    let actual = actual.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Vec::new();
    for id in actual.keys() {
        if !expected.contains_key(id) {
            out.push(format!(
                "{section}.{id}: present in the final state ({}) but not listed in final-state.expect",
                actual[id]
            ));
        }
    }
    for (id, exp) in expected {
        let path = format!("{section}.{id}");
        match (exp, actual.get(id)) {
            (Value::Null, None) => {}
            (Value::Null, Some(a)) => {
                out.push(format!("{path}: expected absent, got {a}"));
            }
            (Value::Object(_), None) => {
                out.push(format!("{path}: expected {exp}, got absent"));
            }
            (Value::Object(fields), Some(a)) => {
                let problems = check_keys(&path, fields, keys);
                if !problems.is_empty() {
                    out.extend(problems);
                    continue;
                }
                for (field, value) in fields {
                    out.extend(compare_field(
                        &format!("{path}.{field}"),
                        field,
                        value,
                        a.get(field),
                    ));
                }
            }
            _ => out.push(format!("{path}: expected an object or null, got {exp}")),
        }
    }
    out
}

/// Compares a final state against a `final-state.expect` document; one
/// message per differing (or malformed) field.
fn compare_final_state(expected: &Value, actual: &FinalState) -> Vec<String> {
    let Some(top) = expected.as_object() else {
        return vec!["final-state.expect: expected a JSON object".to_string()];
    };
    let problems = check_keys("final-state.expect", top, TOP_KEYS);
    if !problems.is_empty() {
        return problems;
    }
    let actual = serde_json::to_value(actual).expect("final state serializes");
    let mut out = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "notes" => {}
            "services" => out.extend(compare_entries(
                "services",
                value,
                actual.get("services"),
                SERVICE_KEYS,
            )),
            "nodes" => out.extend(compare_entries(
                "nodes",
                value,
                actual.get("nodes"),
                NODE_KEYS,
            )),
            _ => out.extend(compare_field(key, key, value, actual.get(key.as_str()))),
        }
    }
    out
}

#[test]
fn all_scenarios_reach_their_expected_final_state() {
    let mut failures = Vec::new();
    for (name, dir, result) in loaded_runs(&mut failures) {
        let path = dir.join("final-state.expect");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(_) => {
                failures.push(format!(
                    "{name}: no final-state.expect; write it from the scenario's README (format in tests/scenarios/README.md)"
                ));
                continue;
            }
        };
        let expected: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: final-state.expect is not valid JSON: {e}"));
                continue;
            }
        };
        let diffs = compare_final_state(&expected, &result.final_state);
        if !diffs.is_empty() {
            failures.push(format!(
                "{name}: final state differs from final-state.expect:\n  {}",
                diffs.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        runs().len(),
        failures.join("\n\n")
    );
}

/// The comparison itself: a matching document passes; each wrong,
/// missing, extra or unknown field is reported with its path and both
/// values.
#[test]
fn final_state_comparison_reports_each_field() {
    use ha_manager::sim::harness::{FinalNode, FinalService};
    let actual = FinalState {
        time: 720,
        services: [(
            "vm:101".to_string(),
            FinalService {
                state: "started".into(),
                node: "node1".into(),
                crm_node: Some("node1".into()),
                running_on: vec!["node1".into()],
                group: None,
                failback: true,
            },
        )]
        .into(),
        nodes: [(
            "node1".to_string(),
            FinalNode {
                power: "on".into(),
                network: "on".into(),
                node_state: "online".into(),
                crm_state: "master".into(),
                lrm_state: "active".into(),
            },
        )]
        .into(),
        groups: vec![],
        rules: vec![],
        violations: vec![],
        liveness_violations: vec![],
    };
    let ok: Value = serde_json::json!({
        "time": 720,
        "services": {
            "vm:101": {"state": "started", "node": "node1", "running_on": ["node1"], "group": null},
            "vm:999": null
        },
        "nodes": {"node1": {"power": "on", "lrm_state": "active"}},
        "violations": [],
        "notes": ["partial expectations are fine"]
    });
    assert_eq!(compare_final_state(&ok, &actual), Vec::<String>::new());
    let bad: Value = serde_json::json!({
        "services": {
            "vm:101": {"state": "error", "node": "node1", "running_on": []},
            "vm:102": {"state": "started", "node": "node2", "running_on": ["node2"]}
        },
        "nodes": {"node1": {"power": "off", "crm": "master"}, "node2": {"power": "on"}},
        "violations": ["x"]
    });
    let diffs = compare_final_state(&bad, &actual);
    for want in [
        r#"services.vm:101.state: expected "error", got "started""#,
        r#"services.vm:101.running_on: expected [], got ["node1"]"#,
        r#"services.vm:102: expected {"#,
        "nodes.node1: unknown key 'crm'",
        r#"nodes.node2: expected {"power":"on"}, got absent"#,
        r#"violations: expected ["x"], got []"#,
    ] {
        assert!(
            diffs.iter().any(|d| d.starts_with(want)),
            "no message starting with {want:?} in {diffs:#?}"
        );
    }
    let missing: Value = serde_json::json!({"services": {}, "nodes": {}});
    let diffs = compare_final_state(&missing, &actual);
    assert!(
        diffs.iter().any(|d| d.contains("'violations' missing")),
        "{diffs:?}"
    );
    let unlisted: Value = serde_json::json!({"services": {}, "nodes": {}, "violations": []});
    let diffs = compare_final_state(&unlisted, &actual);
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("services.vm:101: present in the final state")),
        "{diffs:?}"
    );
}

/// The group migration scenario persists its result: no groups left, the
/// generated rule present, vm:103 without its group and with failback 0,
/// placement unchanged.
#[test]
fn group_migration_rewrites_the_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/group-migrate-versions");
    let result = ha_manager::sim::run_dir(&dir, None, None).expect("scenario loads");
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

/// `explain` shows the CRM's actual choice (issue 13): in every scenario,
/// each recorded decision names the node its candidate table ranks first,
/// the service's next state change lands there, and a recovery's decision
/// names the node the CRM's own log line recovered it to.
#[test]
fn every_recorded_decision_matches_the_crm_choice() {
    use ha_manager::crm::history::check_decisions;
    use ha_manager::crm::{DecisionReason, EventKind};
    let mut failures = Vec::new();
    let mut decisions = 0usize;
    let mut recoveries = 0usize;
    for (name, _, result) in loaded_runs(&mut failures) {
        for problem in check_decisions(&result.history) {
            failures.push(format!("{name}: {problem}"));
        }
        for e in &result.history {
            let Some(d) = &e.decision else { continue };
            decisions += 1;
            if d.reason == DecisionReason::Recovery && e.kind == EventKind::Recovery {
                recoveries += 1;
                let (Some(from), Some(chosen)) = (&e.from, &d.chosen) else {
                    failures.push(format!("{name}: recovery event without nodes: {e:?}"));
                    continue;
                };
                let line = if from == chosen {
                    format!(
                        "recover service '{}' to previous failed and fenced node '{from}' again",
                        d.sid
                    )
                } else {
                    format!(
                        "recover service '{}' from fenced node '{from}' to node '{chosen}'",
                        d.sid
                    )
                };
                if !result.log.iter().any(|l| l.ends_with(&line)) {
                    failures.push(format!(
                        "{name}: decision chose {chosen} for {}, the CRM log has no '{line}'",
                        d.sid
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The check must have had something to check.
    assert!(decisions > 50, "only {decisions} decisions recorded");
    assert!(recoveries > 10, "only {recoveries} recoveries recorded");
}
