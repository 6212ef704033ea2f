//! systemd agent tests.
//!
//! systemd is not running on build and CI machines (containers), so these
//! tests drive the agent against a small stand-in `systemctl` script that
//! keeps unit states in files. This is the one place in the agent tests that
//! uses a stand-in; the agent runs it as a real process exactly as it would
//! run systemctl (the path is configurable for that reason).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::test_support::{params, TOKEN};
use super::{AgentError, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome, SystemdAgent};

const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
# Stand-in for systemctl (systemd does not run in CI): unit state in files.
state=@STATE@
echo "$* token=$HA_FENCING_TOKEN" >> "$state/calls"
cmd=$1; shift
[ "$cmd" = kill ] && shift
unit=$1
case "$cmd" in
  start)
    if [ -f "$state/fail-start" ]; then echo "Job for $unit failed." >&2; exit 1; fi
    echo active > "$state/$unit" ;;
  stop)
    if [ -f "$state/hang-stop" ] && [ ! -f "$state/killed" ]; then sleep 30; fi
    echo inactive > "$state/$unit" ;;
  kill)
    touch "$state/killed" ;;
  is-active)
    s=$(cat "$state/$unit" 2>/dev/null || echo inactive)
    echo "$s"
    [ "$s" = active ] || exit 3 ;;
  *) echo "unknown command $cmd" >&2; exit 1 ;;
esac
"#;

struct FakeSystemd {
    _dir: tempfile::TempDir,
    state: PathBuf,
    agent: SystemdAgent,
}

impl FakeSystemd {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        let script = dir.path().join("systemctl");
        fs::write(
            &script,
            FAKE_SYSTEMCTL.replace("@STATE@", state.to_str().unwrap()),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let agent = SystemdAgent::from_params(name, &params(&[]), &dir.path().join("run"), &script)
            .unwrap();
        FakeSystemd {
            _dir: dir,
            state,
            agent,
        }
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.state.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn set_unit_state(&self, text: &str) {
        fs::write(self.state.join(self.agent.unit()), format!("{text}\n")).unwrap();
    }

    fn touch(&self, flag: &str) {
        fs::write(self.state.join(flag), "").unwrap();
    }
}

#[test]
fn start_status_stop_through_systemctl() {
    let fake = FakeSystemd::new("nginx");
    assert_eq!(fake.agent.unit(), "nginx.service");
    assert_eq!(fake.agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(fake.agent.start(TOKEN).unwrap(), StartOutcome::Started);
    assert_eq!(fake.agent.status(TOKEN).unwrap(), ServiceStatus::Running);
    assert_eq!(
        fake.agent.start(TOKEN).unwrap(),
        StartOutcome::AlreadyRunning
    );
    let starts: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("start "))
        .collect();
    assert_eq!(starts, ["start nginx.service token=42"]);
    assert_eq!(fake.agent.stop(None, TOKEN).unwrap(), StopOutcome::Stopped);
    assert_eq!(fake.agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(
        fake.agent.stop(None, TOKEN).unwrap(),
        StopOutcome::AlreadyStopped
    );
}

#[test]
fn start_writes_the_fencing_environment_file() {
    let fake = FakeSystemd::new("web");
    fake.agent.start(TOKEN).unwrap();
    let env = fs::read_to_string(fake.agent.env_file()).unwrap();
    assert_eq!(
        env,
        "HA_RESOURCE=systemd:web\nHA_FENCING_TERM=7\nHA_FENCING_SEQ=42\nHA_FENCING_TOKEN=42\n"
    );
    assert!(fake
        .agent
        .env_file()
        .ends_with(Path::new("run/systemd/web.service.env")));
}

#[test]
fn a_failed_start_reports_systemctl_output() {
    let fake = FakeSystemd::new("web");
    fake.touch("fail-start");
    match fake.agent.start(TOKEN) {
        Err(e @ AgentError::Failed { .. }) => {
            let text = e.to_string();
            assert!(text.contains("Job for web.service failed."), "{text}");
            assert!(text.contains("exit code 1"), "{text}");
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn a_hanging_stop_is_forced_after_the_timeout() {
    let fake = FakeSystemd::new("web");
    fake.agent.start(TOKEN).unwrap();
    fake.touch("hang-stop");
    let outcome = fake
        .agent
        .stop(Some(Duration::from_millis(300)), TOKEN)
        .unwrap();
    assert_eq!(outcome, StopOutcome::Killed);
    assert!(fake
        .calls()
        .iter()
        .any(|c| c == "kill --signal=SIGKILL web.service token=42"));
    assert_eq!(fake.agent.status(TOKEN).unwrap(), ServiceStatus::Stopped);
}

#[test]
fn zero_timeout_kills_at_once() {
    let fake = FakeSystemd::new("web");
    fake.agent.start(TOKEN).unwrap();
    assert_eq!(
        fake.agent.stop(Some(Duration::ZERO), TOKEN).unwrap(),
        StopOutcome::Killed
    );
    let calls = fake.calls();
    let kill = calls.iter().position(|c| c.starts_with("kill ")).unwrap();
    assert!(calls[kill + 1].starts_with("stop "));
}

#[test]
fn unit_states_map_to_statuses() {
    let fake = FakeSystemd::new("web");
    for (state, expected) in [
        ("failed", ServiceStatus::Stopped),
        ("reloading", ServiceStatus::Running),
        (
            "activating",
            ServiceStatus::Unknown("unit is activating".into()),
        ),
    ] {
        fake.set_unit_state(state);
        assert_eq!(fake.agent.status(TOKEN).unwrap(), expected, "{state}");
    }
}

#[test]
fn a_missing_systemctl_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let agent = SystemdAgent::from_params(
        "web",
        &params(&[]),
        dir.path(),
        Path::new("/nonexistent/systemctl"),
    )
    .unwrap();
    let err = agent.status(TOKEN).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/systemctl"), "{err}");
}
