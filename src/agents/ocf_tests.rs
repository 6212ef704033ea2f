//! ocf agent tests against the real `ocf:heartbeat:Dummy` and
//! `ocf:heartbeat:IPaddr2` scripts from Debian's resource-agents package.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::ocf::DEFAULT_OCF_ROOT;
use super::test_support::{params, TOKEN};
use super::{AgentError, OcfAgent, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome};

/// Installs Debian's resource-agents when missing (root + apt-get), else
/// fails (never skips) saying what to install.
fn require_resource_agents() {
    if let Err(e) = crate::host_packages::ensure(&[crate::host_packages::RESOURCE_AGENTS]) {
        panic!("the ocf agent tests need the real OCF scripts: {e}");
    }
    let dummy = Path::new(DEFAULT_OCF_ROOT).join("resource.d/heartbeat/Dummy");
    assert!(dummy.is_file(), "{} is missing", dummy.display());
}

fn dummy(name: &str, state: &Path) -> OcfAgent {
    require_resource_agents();
    let pairs = [
        ("agent", "heartbeat/Dummy"),
        ("state", state.to_str().unwrap()),
    ];
    OcfAgent::from_params(name, &params(&pairs), Path::new(DEFAULT_OCF_ROOT))
        .unwrap()
        .with_timeouts(Duration::from_secs(20), Duration::from_secs(20))
}

#[test]
fn dummy_start_monitor_stop() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dummy.state");
    let agent = dummy("d1", &state);
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(agent.start(TOKEN).unwrap(), StartOutcome::Started);
    // OCF_RESKEY_state reached the agent: it created our state file.
    assert!(state.is_file());
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Running);
    assert_eq!(agent.start(TOKEN).unwrap(), StartOutcome::AlreadyRunning);
    assert_eq!(agent.stop(None, TOKEN).unwrap(), StopOutcome::Stopped);
    assert!(!state.exists());
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(
        agent.stop(None, TOKEN).unwrap(),
        StopOutcome::AlreadyStopped
    );
}

#[test]
fn dummy_live_migration() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dummy.state");
    let agent = dummy("d2", &state);
    assert!(agent.supports_live_migration());
    agent.start(TOKEN).unwrap();
    agent.migrate_to("node1", "node2", TOKEN).unwrap();
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    agent.migrate_from("node1", "node2", TOKEN).unwrap();
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Running);
    agent.stop(None, TOKEN).unwrap();
}

#[test]
fn dummy_start_failure_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // The state file's directory does not exist, so the agent cannot create it.
    let state = dir.path().join("no-such-dir/dummy.state");
    let agent = dummy("d3", &state);
    match agent.start(TOKEN) {
        Err(e @ AgentError::Failed { .. }) => {
            assert!(e.to_string().contains("OCF_ERR_GENERIC (1)"), "{e}");
            assert_eq!(e.exit_code().code(), 1);
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
}

#[test]
fn ipaddr2_without_ip_is_an_invalid_parameter() {
    require_resource_agents();
    let agent = OcfAgent::from_params(
        "vip",
        &params(&[("agent", "heartbeat/IPaddr2")]),
        Path::new(DEFAULT_OCF_ROOT),
    )
    .unwrap();
    // IPaddr2 answers OCF_ERR_CONFIGURED with an exit reason.
    match agent.status(TOKEN) {
        Err(e @ AgentError::InvalidParameter { .. }) => {
            assert!(e.to_string().contains("ip parameter) is mandatory"), "{e}");
            assert_eq!(e.exit_code().code(), 6);
        }
        other => panic!("expected an invalid parameter, got {other:?}"),
    }
    assert!(!agent.supports_live_migration());
}

#[test]
fn a_missing_agent_is_not_installed() {
    let agent = OcfAgent::from_params(
        "x",
        &params(&[("agent", "heartbeat/NoSuchAgent")]),
        Path::new(DEFAULT_OCF_ROOT),
    )
    .unwrap();
    assert_eq!(agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(
        agent.stop(None, TOKEN).unwrap(),
        StopOutcome::AlreadyStopped
    );
    match agent.start(TOKEN) {
        Err(e @ AgentError::NotInstalled { .. }) => {
            assert!(
                e.to_string().contains("resource.d/heartbeat/NoSuchAgent"),
                "{e}"
            );
            assert_eq!(e.exit_code().code(), 1);
        }
        other => panic!("expected not installed, got {other:?}"),
    }
}

/// A minimal OCF agent of our own (as a site would write one) that records
/// its environment and exits with a chosen code, to check the environment
/// contract and every exit code's mapping.
const RECORDING_AGENT: &str = r#"#!/bin/sh
env | grep -E '^(OCF_|HA_)' | sort > "$OCF_RESKEY_dir/env.$1"
exit $(cat "$OCF_RESKEY_dir/rc.$1" "$OCF_RESKEY_dir/rc" 2>/dev/null | head -n 1 | grep . || echo 0)
"#;

fn recording_agent(root: &Path, work: &Path) -> OcfAgent {
    let script = root.join("resource.d/site/Recorder");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::write(&script, RECORDING_AGENT).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let pairs = [
        ("agent", "site/Recorder"),
        ("dir", work.to_str().unwrap()),
        ("ip", "10.1.2.3"),
    ];
    OcfAgent::from_params("rec", &params(&pairs), root)
        .unwrap()
        .with_node("node1")
}

#[test]
fn the_agent_gets_the_ocf_environment_and_fencing_token() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recording_agent(&dir.path().join("ocf"), dir.path());
    agent.migrate_to("node1", "node2", TOKEN).unwrap();
    let env = fs::read_to_string(dir.path().join("env.migrate_to")).unwrap();
    let root = dir.path().join("ocf");
    for line in [
        format!("OCF_ROOT={}", root.display()),
        "OCF_RESOURCE_INSTANCE=rec".to_string(),
        "OCF_RESOURCE_TYPE=Recorder".to_string(),
        "OCF_RESOURCE_PROVIDER=site".to_string(),
        "OCF_RESKEY_ip=10.1.2.3".to_string(),
        "OCF_RESKEY_CRM_meta_migrate_source=node1".to_string(),
        "OCF_RESKEY_CRM_meta_migrate_target=node2".to_string(),
        "HA_FENCING_TERM=7".to_string(),
        "HA_FENCING_SEQ=42".to_string(),
        "HA_FENCING_TOKEN=42".to_string(),
        "HA_RESOURCE=ocf:rec".to_string(),
        "HA_NODE=node1".to_string(),
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in:\n{env}");
    }
}

#[test]
fn monitor_exit_codes_map_to_statuses_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recording_agent(&dir.path().join("ocf"), dir.path());
    let status_for = |rc: i32| {
        fs::write(dir.path().join("rc"), rc.to_string()).unwrap();
        agent.status(TOKEN)
    };
    for (rc, expected) in [
        (0, ServiceStatus::Running),
        (7, ServiceStatus::Stopped),
        (8, ServiceStatus::Running),
        (5, ServiceStatus::Stopped),
    ] {
        assert_eq!(status_for(rc).unwrap(), expected, "rc {rc}");
    }
    for rc in [1, 9, 42] {
        assert!(
            matches!(status_for(rc).unwrap(), ServiceStatus::Unknown(_)),
            "rc {rc}"
        );
    }
    for (rc, code) in [(2, 6), (6, 6), (3, 1), (4, 1)] {
        assert_eq!(
            status_for(rc).unwrap_err().exit_code().code(),
            code,
            "rc {rc}"
        );
    }
    assert!(matches!(status_for(3), Err(AgentError::Unsupported { .. })));
}

#[test]
fn action_exit_codes_map_to_outcomes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recording_agent(&dir.path().join("ocf"), dir.path());
    let set = |action: &str, rc: i32| {
        fs::write(dir.path().join(format!("rc.{action}")), rc.to_string()).unwrap()
    };
    set("monitor", 0);
    for rc in [0, 7, 5] {
        set("stop", rc);
        assert_eq!(
            agent.stop(None, TOKEN).unwrap(),
            StopOutcome::Stopped,
            "stop rc {rc}"
        );
    }
    set("stop", 1);
    assert!(matches!(
        agent.stop(None, TOKEN),
        Err(AgentError::Failed { .. })
    ));
    set("monitor", 7);
    set("start", 6);
    assert_eq!(agent.start(TOKEN).unwrap_err().exit_code().code(), 6);
    set("start", 5);
    assert!(matches!(
        agent.start(TOKEN),
        Err(AgentError::NotInstalled { .. })
    ));
    set("start", 0);
    assert_eq!(agent.start(TOKEN).unwrap(), StartOutcome::Started);
    set("migrate_to", 3);
    assert!(matches!(
        agent.migrate_to("a", "b", TOKEN),
        Err(AgentError::Unsupported { .. })
    ));
    // Its meta-data lists no migrate actions, so no live migration.
    assert!(!agent.supports_live_migration());
}
