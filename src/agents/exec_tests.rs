//! exec agent tests with real processes, signals and pid files.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::pid_file::{self, PidRecord};
use super::proc_info::{boot_id, read_stat};
use super::test_support::{group, is_live, params, read_when_written, wait_for, TOKEN};
use super::{AgentError, ExecAgent, ResourceAgent, ServiceStatus, StartOutcome, StopOutcome};

/// An agent that kills its service when dropped, so a failing test leaves
/// no process behind.
#[derive(Debug)]
struct Guarded(ExecAgent);

impl std::ops::Deref for Guarded {
    type Target = ExecAgent;
    fn deref(&self) -> &ExecAgent {
        &self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.stop(Some(Duration::ZERO), TOKEN);
    }
}

fn agent(dir: &Path, name: &str, cmd: &str) -> Guarded {
    guarded(name, &[("cmd", cmd)], dir)
}

fn guarded(name: &str, pairs: &[(&str, &str)], dir: &Path) -> Guarded {
    Guarded(ExecAgent::from_params(name, &params(pairs), dir).unwrap())
}

fn recorded_pid(agent: &ExecAgent) -> i32 {
    match pid_file::read(agent.pid_file()).unwrap() {
        pid_file::PidFileState::Present(record) => record.pid,
        other => panic!("no pid record: {other:?}"),
    }
}

#[test]
fn start_status_stop_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "echo hello; exec sleep 300");
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(web.start(TOKEN).unwrap(), StartOutcome::Started);
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Running);
    let pid = recorded_pid(&web);
    assert!(is_live(pid));
    assert_eq!(web.pid_file(), dir.path().join("exec/web.pid"));
    wait_for("log output", || {
        fs::read_to_string(web.log_file())
            .unwrap_or_default()
            .contains("hello")
    });
    assert_eq!(
        web.stop(Some(Duration::from_secs(10)), TOKEN).unwrap(),
        StopOutcome::Stopped
    );
    assert!(!is_live(pid));
    assert!(!web.pid_file().exists());
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(web.stop(None, TOKEN).unwrap(), StopOutcome::AlreadyStopped);
}

#[test]
fn a_huge_stop_timeout_stops_without_panicking() {
    // A stop timeout of u64::MAX seconds once overflowed `Instant + d` and
    // panicked the LRM worker; the deadline is capped instead.
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "exec sleep 300");
    assert_eq!(web.start(TOKEN).unwrap(), StartOutcome::Started);
    let pid = recorded_pid(&web);
    assert_eq!(
        web.stop(Some(Duration::from_secs(u64::MAX)), TOKEN)
            .unwrap(),
        StopOutcome::Stopped
    );
    assert!(!is_live(pid));
}

#[test]
fn start_is_idempotent_across_a_daemon_restart() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("starts");
    let cmd = format!("echo started >> {}; exec sleep 300", counter.display());
    // Not guarded: dropping it must leave the service running, as a daemon
    // that dies does.
    let first = ExecAgent::from_params("web", &params(&[("cmd", &cmd)]), dir.path()).unwrap();
    assert_eq!(first.start(TOKEN).unwrap(), StartOutcome::Started);
    let pid = recorded_pid(&first);
    assert_eq!(first.start(TOKEN).unwrap(), StartOutcome::AlreadyRunning);
    drop(first);
    // A fresh agent object, as after a daemon restart, reads the same pid file.
    let second = agent(dir.path(), "web", &cmd);
    assert_eq!(second.status(TOKEN).unwrap(), ServiceStatus::Running);
    assert_eq!(second.start(TOKEN).unwrap(), StartOutcome::AlreadyRunning);
    assert_eq!(recorded_pid(&second), pid);
    assert_eq!(fs::read_to_string(&counter).unwrap().lines().count(), 1);
    assert_eq!(
        second.stop(Some(Duration::from_secs(10)), TOKEN).unwrap(),
        StopOutcome::Stopped
    );
    assert!(!is_live(pid));
}

#[test]
fn corrupt_pid_file_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "exec sleep 300");
    fs::create_dir_all(web.pid_file().parent().unwrap()).unwrap();
    fs::write(web.pid_file(), "pid=garbage\n").unwrap();
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(web.stop(None, TOKEN).unwrap(), StopOutcome::AlreadyStopped);
    fs::write(web.pid_file(), "\u{0}\u{1}junk").unwrap();
    assert_eq!(web.start(TOKEN).unwrap(), StartOutcome::Started);
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Running);
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
}

#[test]
fn dead_recycled_or_foreign_pids_are_not_mistaken_for_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "exec sleep 300");
    let boot = boot_id().unwrap();

    // A dead pid.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id() as i32;
    gone.wait().unwrap();
    let record = PidRecord {
        pid: dead_pid,
        start_time: 1,
        boot_id: boot.clone(),
    };
    pid_file::write(web.pid_file(), &record).unwrap();
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);

    // A live process that is not ours: same pid, other start time (a recycled pid).
    let mut stranger = Command::new("sleep").arg("300").spawn().unwrap();
    let stranger_pid = stranger.id() as i32;
    let real_start = read_stat(stranger_pid).unwrap().unwrap().start_time;
    let record = PidRecord {
        pid: stranger_pid,
        start_time: real_start + 1,
        boot_id: boot,
    };
    pid_file::write(web.pid_file(), &record).unwrap();
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(
        web.stop(Some(Duration::ZERO), TOKEN).unwrap(),
        StopOutcome::AlreadyStopped
    );
    assert!(
        is_live(stranger_pid),
        "stop killed a process that was not the service"
    );

    // Same pid and start time but from an earlier boot.
    let record = PidRecord {
        pid: stranger_pid,
        start_time: real_start,
        boot_id: "other-boot".into(),
    };
    pid_file::write(web.pid_file(), &record).unwrap();
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
    assert_eq!(web.start(TOKEN).unwrap(), StartOutcome::Started);
    assert_ne!(recorded_pid(&web), stranger_pid);
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
    assert!(
        is_live(stranger_pid),
        "stop killed a process that was not the service"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn stop_kills_every_process_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "sleep 300 & sleep 300 & wait");
    web.start(TOKEN).unwrap();
    let pgid = recorded_pid(&web);
    wait_for("both children", || group(pgid).len() == 3);
    let members = group(pgid);
    assert_eq!(
        web.stop(Some(Duration::from_secs(10)), TOKEN).unwrap(),
        StopOutcome::Stopped
    );
    for pid in members {
        assert!(!is_live(pid), "process {pid} of the group survived stop");
    }
}

#[test]
fn stop_escalates_to_sigkill_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // SIGTERM is ignored by the shell and, inherited, by its child.
    let web = agent(dir.path(), "stubborn", "trap '' TERM; sleep 300 & wait");
    web.start(TOKEN).unwrap();
    let pgid = recorded_pid(&web);
    wait_for("the child", || group(pgid).len() == 2);
    let members = group(pgid);
    let timeout = Duration::from_millis(300);
    let began = Instant::now();
    assert_eq!(web.stop(Some(timeout), TOKEN).unwrap(), StopOutcome::Killed);
    assert!(
        began.elapsed() >= timeout,
        "SIGKILL came before the stop timeout"
    );
    for pid in members {
        assert!(!is_live(pid), "process {pid} survived SIGKILL");
    }
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
}

#[test]
fn custom_stop_signal_is_sent_first() {
    // USR1, not INT: a test run started from a non-interactive shell in
    // the background inherits SIGINT ignored, and a shell cannot trap a
    // signal that was ignored when it started (POSIX). The daemon itself
    // handles SIGINT, so its services start with the default disposition.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("got-usr1");
    let ready = dir.path().join("ready");
    let cmd = format!(
        "trap 'echo usr1 > {}; exit 0' USR1; trap '' TERM; echo ready > {}; while :; do sleep 0.05; done",
        marker.display(),
        ready.display()
    );
    let web = guarded("web", &[("cmd", &cmd), ("stop_signal", "USR1")], dir.path());
    web.start(TOKEN).unwrap();
    read_when_written(&ready);
    assert_eq!(
        web.stop(Some(Duration::from_secs(10)), TOKEN).unwrap(),
        StopOutcome::Stopped
    );
    assert_eq!(read_when_written(&marker), "usr1");
}

#[test]
fn zero_timeout_is_an_immediate_hard_stop() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "web", "trap '' TERM; exec sleep 300");
    web.start(TOKEN).unwrap();
    let pid = recorded_pid(&web);
    assert_eq!(
        web.stop(Some(Duration::ZERO), TOKEN).unwrap(),
        StopOutcome::Killed
    );
    assert!(!is_live(pid));
}

#[test]
fn the_service_sees_the_fencing_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let cmd = format!(
        "echo \"$HA_FENCING_TERM $HA_FENCING_SEQ $HA_FENCING_TOKEN $HA_RESOURCE\" > {}; exec sleep 300",
        out.display()
    );
    let web = agent(dir.path(), "envtest", &cmd);
    web.start(TOKEN).unwrap();
    assert_eq!(read_when_written(&out), "7 42 42 exec:envtest");
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
}

#[test]
fn the_service_learns_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let cmd = format!(
        "echo \"$HA_NODE $HA_RESOURCE\" > {}; exec sleep 300",
        out.display()
    );
    let settings = super::AgentSettings::new(dir.path()).with_node("node7");
    let web = settings
        .agent_for("exec", "where", &params(&[("cmd", &cmd)]))
        .unwrap();
    web.start(TOKEN).unwrap();
    let seen = read_when_written(&out);
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
    assert_eq!(seen, "node7 exec:where");
}

#[test]
fn cwd_is_applied_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let cmd = "pwd > where; exec sleep 300";
    let cwd = work.to_str().unwrap();
    let web = guarded("web", &[("cmd", cmd), ("cwd", cwd)], dir.path());
    web.start(TOKEN).unwrap();
    assert_eq!(read_when_written(&work.join("where")), cwd);
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();

    let missing = dir.path().join("missing");
    let web = guarded(
        "web2",
        &[("cmd", cmd), ("cwd", missing.to_str().unwrap())],
        dir.path(),
    );
    let err = web.start(TOKEN).unwrap_err();
    assert!(
        err.to_string().contains("is not a directory on this node"),
        "{err}"
    );
}

#[test]
fn a_command_that_exits_at_once_is_a_failed_start() {
    let dir = tempfile::tempdir().unwrap();
    // A generous check so a loaded machine cannot make the exit look late;
    // the command exits at once, so the test does not wait for it.
    let web = Guarded(
        ExecAgent::from_params(
            "web",
            &params(&[("cmd", "echo broken config >&2; exit 7")]),
            dir.path(),
        )
        .unwrap()
        .with_start_check(Duration::from_secs(10)),
    );
    match web.start(TOKEN) {
        Err(AgentError::Failed {
            operation, reason, ..
        }) => {
            assert_eq!(operation, "start");
            assert!(reason.contains("exit status: 7"), "{reason}");
            assert!(reason.contains("broken config"), "{reason}");
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
    assert!(!web.pid_file().exists());
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
}

#[test]
fn leftovers_of_a_dead_main_process_are_unknown_then_cleaned_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let child_file = dir.path().join("child");
    let cmd = format!("sleep 300 & echo $! > {}; wait", child_file.display());
    let web = agent(dir.path(), "web", &cmd);
    web.start(TOKEN).unwrap();
    let main = recorded_pid(&web);
    let child: i32 = read_when_written(&child_file).parse().unwrap();
    fs::remove_file(&child_file).unwrap();
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    wait_for("the main process to die", || !is_live(main));
    assert!(matches!(
        web.status(TOKEN).unwrap(),
        ServiceStatus::Unknown(_)
    ));
    // Start must not run a second copy beside the leftover: it kills it first.
    assert_eq!(web.start(TOKEN).unwrap(), StartOutcome::Started);
    assert!(!is_live(child), "leftover child survived the restart");
    assert_ne!(recorded_pid(&web), main);
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
}

#[test]
fn concurrent_operations_get_busy() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let cmd = format!(
        "trap '' TERM; echo ready > {}; exec sleep 300",
        ready.display()
    );
    let web = Arc::new(agent(dir.path(), "web", &cmd));
    web.start(TOKEN).unwrap();
    read_when_written(&ready);
    let stopper = {
        let web = Arc::clone(&web);
        // The probing starts below may hold the lock for a moment too.
        std::thread::spawn(move || loop {
            match web.stop(Some(Duration::from_secs(1)), TOKEN) {
                Err(AgentError::Busy { .. }) => std::thread::sleep(Duration::from_millis(1)),
                other => return other,
            }
        })
    };
    let mut saw_busy = false;
    while !stopper.is_finished() {
        if let Err(e @ AgentError::Busy { .. }) = web.start(TOKEN) {
            assert_eq!(e.exit_code().code(), 2);
            saw_busy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(stopper.join().unwrap().unwrap(), StopOutcome::Killed);
    assert!(saw_busy, "a start during a stop was not refused");
    // A probing start may have slipped in after the stop finished.
    web.stop(Some(Duration::ZERO), TOKEN).unwrap();
}

#[test]
fn names_with_slashes_stay_inside_the_runtime_dir() {
    let dir = tempfile::tempdir().unwrap();
    let web = agent(dir.path(), "../a/b", "exec sleep 300");
    assert_eq!(web.pid_file(), dir.path().join("exec/%2E.%2Fa%2Fb.pid"));
}

#[test]
fn a_failed_start_leaves_no_background_process() {
    let dir = tempfile::tempdir().unwrap();
    let child_file = dir.path().join("child");
    // A forking command: the main process exits, its child would linger.
    let cmd = format!("sleep 300 & echo $! > {}; exit 0", child_file.display());
    let web = Guarded(
        ExecAgent::from_params("forking", &params(&[("cmd", &cmd)]), dir.path())
            .unwrap()
            .with_start_check(Duration::from_secs(10)),
    );
    assert!(matches!(web.start(TOKEN), Err(AgentError::Failed { .. })));
    let child: i32 = read_when_written(&child_file).parse().unwrap();
    wait_for("the background child to be killed", || !is_live(child));
    assert_eq!(web.status(TOKEN).unwrap(), ServiceStatus::Stopped);
}
