//! The test backend's device process: like a hardware watchdog it lives
//! outside watchdog-mux, so a hung or killed mux still gets its node
//! "reset" (the protected processes SIGKILLed), while a clean exit stops
//! it without firing.

mod common;

use common::{pid_is_dead, wait_until, MuxProcess, ProtectedGroup, EVENTUALLY};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};
use watchdog::WatchdogClient;

/// The test mux's device timeout (common::DEVICE_TIMEOUT).
const DEVICE_TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a busy machine.
const SLACK: Duration = Duration::from_secs(2);

fn device_pid(mux: &MuxProcess) -> i32 {
    assert!(
        mux.wait_log(&["test watchdog device process", "running"]),
        "{}",
        mux.log_text()
    );
    let pid = mux.device_pid().expect("device pid in the log");
    assert_ne!(pid, mux.pid(), "the device must be a process of its own");
    pid
}

#[test]
fn a_hung_mux_is_reset_by_the_device_within_its_timeout() {
    let mut group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    let device = device_pid(&mux);
    // An armed client with a long timeout: only the hang can fire.
    let mut client = WatchdogClient::connect(&mux.socket(), Duration::from_secs(60)).unwrap();
    client.keepalive().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(group.all_alive());
    let stopped = Instant::now();
    kill(Pid::from_raw(mux.pid()), Signal::SIGSTOP).unwrap();
    let died = wait_until(DEVICE_TIMEOUT + SLACK * 2, || group.all_dead());
    let took = stopped.elapsed();
    kill(Pid::from_raw(mux.pid()), Signal::SIGCONT).unwrap();
    assert!(
        died,
        "a SIGSTOPped mux must not stall the device; log:\n{}",
        mux.log_text()
    );
    assert!(
        took <= DEVICE_TIMEOUT + SLACK,
        "fired {took:?} after the hang (bound {:?})",
        DEVICE_TIMEOUT + SLACK
    );
    assert!(
        mux.wait_log(&["TEST BACKEND FIRED", "not fed"]),
        "{}",
        mux.log_text()
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(group.leader_status().and_then(|s| s.signal()), Some(9));
    // The resumed mux learns the node was reset and fences its clients.
    assert!(
        mux.wait_log(&["feeding the watchdog backend failed", "already fired"]),
        "{}",
        mux.log_text()
    );
    assert!(wait_until(EVENTUALLY, || pid_is_dead(device)));
}

#[test]
fn a_killed_mux_is_reset_by_the_device_after_its_timeout() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());
    let device = device_pid(&mux);
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    kill(Pid::from_raw(mux.pid()), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!pid_is_dead(device), "the device must survive the mux");
    assert!(
        wait_until(DEVICE_TIMEOUT + SLACK * 2, || group.all_dead()),
        "{}",
        mux.log_text()
    );
    assert!(
        killed.elapsed() <= DEVICE_TIMEOUT + SLACK,
        "{:?}",
        killed.elapsed()
    );
    // The log is complete once the device, which shares the mux's
    // stderr, has exited too.
    assert!(mux.wait_exit().is_some());
    let log = mux.log_text();
    assert!(
        log.contains("closed the device without the magic close"),
        "{log}"
    );
    assert!(log.contains("TEST BACKEND FIRED"), "{log}");
    assert!(wait_until(EVENTUALLY, || pid_is_dead(device)));
}

#[test]
fn a_clean_exit_stops_the_device_without_firing() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());
    let device = device_pid(&mux);
    WatchdogClient::connect(&mux.socket(), Duration::from_millis(400))
        .unwrap()
        .release()
        .unwrap();
    let status = mux.terminate().expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", mux.log_text());
    // Reaped by the mux before it exited: no process, not even a zombie.
    assert!(
        !std::path::Path::new(&format!("/proc/{device}")).exists(),
        "device process {device} outlived the mux's clean exit"
    );
    assert!(mux
        .log_text()
        .contains("magic close, stopped without firing"));
    std::thread::sleep(DEVICE_TIMEOUT + Duration::from_millis(500));
    assert!(group.all_alive(), "{}", mux.log_text());
    assert!(!mux.log_text().contains("TEST BACKEND FIRED"));
}
