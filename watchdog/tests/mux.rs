//! The real watchdog-mux binary, real sockets, real processes, real signals.

mod common;

use common::{wait_until, MuxProcess, ProtectedGroup, EVENTUALLY};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use watchdog::protocol::{
    decode_server, encode_client, ClientFrame, RejectReason, ServerFrame, PROTOCOL_VERSION,
};
use watchdog::{ClientError, WatchdogClient};

const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const KEEPALIVE_EVERY: Duration = Duration::from_millis(50);

/// Keeps `client` alive for `span`.
fn keep_alive_for(client: &mut WatchdogClient, span: Duration) {
    let rounds = span.as_millis() / KEEPALIVE_EVERY.as_millis();
    for _ in 0..rounds {
        client.keepalive().expect("keepalive");
        std::thread::sleep(KEEPALIVE_EVERY);
    }
}

/// Long enough for a missed deadline plus the device timeout to have fired
/// several times over, had anything been missed.
fn quiet_period() -> Duration {
    (CLIENT_TIMEOUT + Duration::from_secs(1)) * 2
}

/// Reads one server frame from a raw stream.
fn read_frame(stream: &mut UnixStream) -> Option<ServerFrame> {
    stream.set_read_timeout(Some(EVENTUALLY)).unwrap();
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if let Ok(Some((frame, _))) = decode_server(&buffer) {
            return Some(frame);
        }
        match stream.read(&mut byte) {
            Ok(1) => buffer.push(byte[0]),
            _ => return None,
        }
    }
}

fn raw_hello(stream: &mut UnixStream, version: u8, timeout_ms: u32) -> Option<ServerFrame> {
    stream
        .write_all(&encode_client(ClientFrame::Hello {
            version,
            timeout_ms,
        }))
        .unwrap();
    read_frame(stream)
}

#[test]
fn protocol_round_trip_and_clean_release_does_not_fire() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());

    let mut client = WatchdogClient::connect(&mux.socket(), CLIENT_TIMEOUT).unwrap();
    assert_eq!(client.client_timeout(), CLIENT_TIMEOUT);
    assert_eq!(client.device_timeout(), Duration::from_secs(1));
    assert!(client.id() >= 1);
    assert!(
        mux.marker().is_dir(),
        "marker must exist while a client is armed"
    );
    // Several client timeouts' worth of keepalives: nothing fires.
    keep_alive_for(&mut client, CLIENT_TIMEOUT * 4);
    assert!(
        group.all_alive(),
        "fired although keepalives arrived; log:\n{}",
        mux.log_text()
    );
    let id = client.id().to_string();
    client.release().unwrap();

    assert!(mux.wait_log(&["client armed", &format!("client={id}")]));
    assert!(mux.wait_log(&["client released", &format!("client={id}")]));
    assert!(
        wait_until(EVENTUALLY, || !mux.marker().exists()),
        "marker must go once no client is armed"
    );
    std::thread::sleep(quiet_period());
    assert!(
        group.all_alive(),
        "fired after a clean release; log:\n{}",
        mux.log_text()
    );
    assert!(mux.log_lines_with(&["EXPIRED"]).is_empty());
    assert!(mux.is_running());
}

#[test]
fn no_armed_clients_keeps_the_device_alive() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());
    // Many device timeouts without any client.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        group.all_alive(),
        "idle mux let the device fire; log:\n{}",
        mux.log_text()
    );
    assert!(mux.is_running());
    // A clean SIGTERM with no armed client disarms and removes the socket.
    let status = mux.terminate().expect("mux exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", mux.log_text());
    assert!(!mux.socket().exists());
    assert!(mux.log_text().contains("watchdog disarmed"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(group.all_alive(), "disarmed backend fired");
}

#[test]
fn missed_deadline_fires_the_test_backend() {
    let mut group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    let mut client = WatchdogClient::connect(&mux.socket(), CLIENT_TIMEOUT).unwrap();
    keep_alive_for(&mut client, CLIENT_TIMEOUT * 2);
    assert!(group.all_alive());
    // Stop feeding but keep the connection open: only the deadline fails.
    assert!(
        wait_until(EVENTUALLY, || group.all_dead()),
        "protected group survived a missed deadline; log:\n{}",
        mux.log_text()
    );
    let id = format!("client={}", client.id());
    assert!(
        mux.wait_log(&["missed its deadline", &id]),
        "{}",
        mux.log_text()
    );
    assert!(mux.wait_log(&["EXPIRED"]));
    assert!(mux.wait_log(&["TEST BACKEND FIRED"]));
    // The leader died of SIGKILL, not of anything else.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(group.leader_status().and_then(|s| s.signal()), Some(9));
    // The mux refuses any further keepalive: the node is being reset.
    match client.keepalive() {
        Err(ClientError::Rejected(RejectReason::Fenced))
        | Err(ClientError::Closed)
        | Err(ClientError::Io(_)) => {}
        other => panic!("keepalive after expiry must fail, got {other:?}"),
    }
    match WatchdogClient::connect(&mux.socket(), CLIENT_TIMEOUT) {
        Err(ClientError::Rejected(RejectReason::Fenced)) => {}
        other => panic!("new client after expiry must be rejected as fenced, got {other:?}"),
    }
    assert!(mux.marker().is_dir(), "marker must stay after a fence");
    eprintln!("{}", mux.log_text());
}

#[test]
fn unclean_disconnect_fires_the_test_backend() {
    let mut group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    // A long timeout, so only the disconnect can be the cause.
    let client = WatchdogClient::connect(&mux.socket(), Duration::from_secs(600)).unwrap();
    let id = format!("client={}", client.id());
    drop(client);
    assert!(
        wait_until(EVENTUALLY, || group.all_dead()),
        "protected group survived an unclean disconnect; log:\n{}",
        mux.log_text()
    );
    assert!(
        mux.wait_log(&["disconnected without magic close", &id]),
        "{}",
        mux.log_text()
    );
}

#[test]
fn several_clients_only_the_one_that_misses_fails() {
    let mut group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    let socket = mux.socket();
    // a and c get generous deadlines, so a loaded machine that delays this
    // thread cannot make them miss first; b is the one that stops.
    let mut a = WatchdogClient::connect(&socket, Duration::from_millis(2000)).unwrap();
    let mut b = WatchdogClient::connect(&socket, Duration::from_millis(700)).unwrap();
    let mut c = WatchdogClient::connect(&socket, Duration::from_millis(1500)).unwrap();
    let ids: Vec<u32> = vec![a.id(), b.id(), c.id()];
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);

    // All three stay alive for longer than each one's timeout.
    for _ in 0..60 {
        a.keepalive().unwrap();
        b.keepalive().unwrap();
        c.keepalive().unwrap();
        std::thread::sleep(KEEPALIVE_EVERY);
    }
    assert!(
        group.all_alive(),
        "fired while all clients were fed; log:\n{}",
        mux.log_text()
    );

    // Now b stops; a and c keep going until the mux refuses them.
    let mut refused = false;
    for _ in 0..(EVENTUALLY.as_millis() / KEEPALIVE_EVERY.as_millis()) {
        let a_result = a.keepalive();
        let c_result = c.keepalive();
        if a_result.is_err() || c_result.is_err() {
            assert!(
                matches!(a_result, Err(ClientError::Rejected(RejectReason::Fenced))),
                "{a_result:?}"
            );
            assert!(
                matches!(c_result, Err(ClientError::Rejected(RejectReason::Fenced))),
                "{c_result:?}"
            );
            refused = true;
            break;
        }
        std::thread::sleep(KEEPALIVE_EVERY);
    }
    assert!(refused, "mux never fenced; log:\n{}", mux.log_text());
    assert!(
        wait_until(EVENTUALLY, || group.all_dead()),
        "{}",
        mux.log_text()
    );
    assert!(mux.wait_log(&["TEST BACKEND FIRED"]), "{}", mux.log_text());
    // The first failure, the one that fenced, is b's; a and c were
    // refused (Fenced) while still within their deadlines.
    let b = format!("client={}", ids[1]);
    let failed = mux.log_lines_with(&["client failed"]);
    assert!(!failed.is_empty() && failed[0].contains(&b), "{failed:?}");
    assert!(failed[0].contains("missed its deadline"), "{failed:?}");
    let expired = mux.log_lines_with(&["EXPIRED"]);
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(expired[0].contains(&b), "{expired:?}");
}

#[test]
fn malformed_message_from_armed_client_fences_without_crashing() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());
    let mut stream = UnixStream::connect(mux.socket()).unwrap();
    let Some(ServerFrame::Armed { client_id, .. }) =
        raw_hello(&mut stream, PROTOCOL_VERSION, 60_000)
    else {
        panic!("not armed; log:\n{}", mux.log_text());
    };
    stream.write_all(&[0x7f, 1, 2, 3]).unwrap();
    assert_eq!(
        read_frame(&mut stream),
        Some(ServerFrame::Rejected(RejectReason::ProtocolViolation))
    );
    assert!(
        wait_until(EVENTUALLY, || group.all_dead()),
        "{}",
        mux.log_text()
    );
    assert!(mux.wait_log(&["TEST BACKEND FIRED"]), "{}", mux.log_text());
    let failed = mux.log_lines_with(&[
        "client failed",
        "protocol violation",
        &format!("client={client_id}"),
    ]);
    assert_eq!(failed.len(), 1, "{}", mux.log_text());
    assert!(failed[0].contains("0x7f"), "{failed:?}");
    assert!(failed[0].contains("failures=1"), "{failed:?}");
    // Still running and answering.
    assert!(mux.is_running());
    let mut probe = UnixStream::connect(mux.socket()).unwrap();
    assert_eq!(
        read_frame(&mut probe),
        Some(ServerFrame::Rejected(RejectReason::Fenced))
    );
    assert!(mux.is_running());
}

#[test]
fn bad_requests_from_unarmed_clients_are_rejected_without_fencing() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());

    let mut garbage = UnixStream::connect(mux.socket()).unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(
        read_frame(&mut garbage),
        Some(ServerFrame::Rejected(RejectReason::ProtocolViolation))
    );

    let mut wrong_version = UnixStream::connect(mux.socket()).unwrap();
    assert_eq!(
        raw_hello(&mut wrong_version, 99, 1000),
        Some(ServerFrame::Rejected(RejectReason::UnsupportedVersion))
    );

    match WatchdogClient::connect(&mux.socket(), Duration::from_millis(10)) {
        Err(ClientError::Rejected(RejectReason::TimeoutOutOfRange)) => {}
        other => panic!("10 ms is below the minimum, got {other:?}"),
    }
    // A connection that never says Hello, closed again.
    drop(UnixStream::connect(mux.socket()).unwrap());

    std::thread::sleep(quiet_period());
    assert!(
        group.all_alive(),
        "an unarmed client caused a fence; log:\n{}",
        mux.log_text()
    );
    assert!(mux.log_lines_with(&["EXPIRED"]).is_empty());
    assert!(mux.is_running());
    // And the mux still arms well-behaved clients.
    let client = WatchdogClient::connect(&mux.socket(), CLIENT_TIMEOUT).unwrap();
    client.release().unwrap();
}

#[test]
fn sigterm_with_an_armed_client_kills_and_keeps_the_marker() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start_test_backend(group.pgid());
    let _client = WatchdogClient::connect(&mux.socket(), Duration::from_secs(600)).unwrap();
    let status = mux.terminate().expect("mux exits on SIGTERM");
    assert_eq!(status.code(), Some(2), "{}", mux.log_text());
    assert!(
        wait_until(EVENTUALLY, || group.all_dead()),
        "{}",
        mux.log_text()
    );
    assert!(
        mux.marker().is_dir(),
        "marker must stay: a reset is pending"
    );

    // A new mux refuses to start while the marker exists.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("active")).unwrap();
    let group2 = ProtectedGroup::spawn();
    let mut second = MuxProcess::spawn(
        dir,
        &[
            "--backend",
            "test",
            "--protect-pgid",
            &group2.pgid().to_string(),
            "--device-timeout",
            "1s",
        ],
    );
    let status = second.wait_exit().expect("refuses to start");
    assert_eq!(status.code(), Some(1));
    assert!(
        second.log_text().contains("a reset is pending"),
        "{}",
        second.log_text()
    );
}

#[test]
fn socket_is_private_and_single_instance() {
    let group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    let mode = std::fs::metadata(mux.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second mux on the same socket path refuses to steal it.
    let dir = tempfile::tempdir().unwrap();
    let socket = mux.socket();
    let mut second = MuxProcess::spawn(
        dir,
        &[
            "--backend",
            "test",
            "--protect-pgid",
            &group.pgid().to_string(),
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    let status = second.wait_exit().expect("second mux exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        second.log_text().contains("already listening"),
        "{}",
        second.log_text()
    );
    // The first one still works.
    WatchdogClient::connect(&socket, CLIENT_TIMEOUT)
        .unwrap()
        .release()
        .unwrap();
}

#[test]
fn test_backend_is_never_a_fallback_and_refuses_bad_targets() {
    // Device backend with a missing device and an unloadable module fails
    // cleanly instead of falling back to the test backend.
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("no-watchdog");
    let mut mux = MuxProcess::spawn(
        tempfile::tempdir().unwrap(),
        &[
            "--device",
            device.to_str().unwrap(),
            "--module",
            "ha-manager-no-such-module",
        ],
    );
    assert_eq!(mux.wait_exit().and_then(|s| s.code()), Some(1));
    let log = mux.log_text();
    assert!(
        log.contains("ha-manager-no-such-module") && log.contains("no-watchdog"),
        "{log}"
    );
    assert!(!log.contains("TEST BACKEND"), "{log}");

    // With module loading disabled the error names the missing device.
    let mut mux = MuxProcess::spawn(
        tempfile::tempdir().unwrap(),
        &["--device", device.to_str().unwrap(), "--module", ""],
    );
    assert_eq!(mux.wait_exit().and_then(|s| s.code()), Some(1));
    assert!(
        mux.log_text().contains("does not exist"),
        "{}",
        mux.log_text()
    );

    // A file that is not a watchdog: the ioctl fails, the mux disarms
    // what it opened (magic close 'V', no client ever armed) and exits.
    let not_a_watchdog = dir.path().join("regular-file");
    std::fs::write(&not_a_watchdog, b"").unwrap();
    let mut mux = MuxProcess::spawn(
        tempfile::tempdir().unwrap(),
        &["--device", not_a_watchdog.to_str().unwrap()],
    );
    assert_eq!(mux.wait_exit().and_then(|s| s.code()), Some(1));
    assert!(
        mux.log_text().contains("is not a watchdog device"),
        "{}",
        mux.log_text()
    );
    assert_eq!(
        std::fs::read(&not_a_watchdog).unwrap(),
        b"V",
        "magic close written"
    );

    // The test backend needs a target, and never pgid 0/1 (kill(-1)!).
    for args in [
        vec!["--backend", "test"],
        vec!["--backend", "test", "--protect-pgid", "1"],
    ] {
        let mut mux = MuxProcess::spawn(tempfile::tempdir().unwrap(), &args);
        assert_eq!(
            mux.wait_exit().and_then(|s| s.code()),
            Some(1),
            "{args:?}: {}",
            mux.log_text()
        );
    }
}

#[test]
fn test_backend_kills_a_cgroup() {
    let root = std::path::Path::new("/sys/fs/cgroup/unified");
    let cgroup = root.join(format!("watchdog-test-{}", std::process::id()));
    if std::fs::create_dir(&cgroup).is_err() {
        eprintln!("skipped: cannot create a cgroup under {}", root.display());
        return;
    }
    /// Removes the (by then empty) cgroup however the test ends.
    struct RemoveCgroup(std::path::PathBuf);
    impl Drop for RemoveCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = RemoveCgroup(cgroup.clone());
    // A shell that moves itself into the cgroup, then starts two children.
    let mut group = ProtectedGroup::spawn_in_cgroup(&cgroup);
    let mux = MuxProcess::start(&[
        "--backend",
        "test",
        "--protect-cgroup",
        cgroup.to_str().unwrap(),
        "--device-timeout",
        "1s",
        "--feed-interval",
        "100ms",
    ]);
    let client = WatchdogClient::connect(&mux.socket(), CLIENT_TIMEOUT).unwrap();
    drop(client);
    let died = wait_until(EVENTUALLY, || group.all_dead());
    let logged = mux.wait_log(&["cgroup.kill written"]);
    let log = mux.log_text();
    drop(group);
    assert!(died, "cgroup members survived; log:\n{log}");
    assert!(logged, "{log}");
}

#[test]
fn client_errors_are_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-mux.sock");
    match WatchdogClient::connect(&missing, CLIENT_TIMEOUT) {
        Err(err @ ClientError::Connect { .. }) => {
            assert!(err.to_string().contains("no-mux.sock"), "{err}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(matches!(
        WatchdogClient::connect(&missing, Duration::from_micros(900)),
        Err(ClientError::InvalidTimeout(_))
    ));

    let group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    // Sub-millisecond parts are rounded down, never up.
    let client = WatchdogClient::connect(&mux.socket(), Duration::from_micros(400_900)).unwrap();
    assert_eq!(client.client_timeout(), Duration::from_millis(400));
    client.release().unwrap();
    match WatchdogClient::connect(&mux.socket(), Duration::from_secs(3600)) {
        Err(err @ ClientError::Rejected(RejectReason::TimeoutOutOfRange)) => {
            assert!(err.to_string().contains("out of range"), "{err}")
        }
        other => panic!("an hour is above the maximum, got {other:?}"),
    }
}

#[test]
fn silent_connections_are_dropped_and_client_count_is_bounded() {
    let mut group = ProtectedGroup::spawn();
    let mut mux = MuxProcess::start(&[
        "--backend",
        "test",
        "--protect-pgid",
        &group.pgid().to_string(),
        "--device-timeout",
        common::DEVICE_TIMEOUT,
        "--feed-interval",
        "100ms",
        "--handshake-timeout",
        "200ms",
        "--max-clients",
        "2",
    ]);
    // A connection that never says Hello is dropped, without a fence.
    let mut silent = UnixStream::connect(mux.socket()).unwrap();
    assert!(
        mux.wait_log(&["no Hello within the handshake timeout"]),
        "{}",
        mux.log_text()
    );
    silent.set_read_timeout(Some(EVENTUALLY)).unwrap();
    assert_eq!(
        silent.read(&mut [0u8; 1]).unwrap(),
        0,
        "dropped connection reads EOF"
    );

    let first = WatchdogClient::connect(&mux.socket(), Duration::from_secs(60)).unwrap();
    let second = WatchdogClient::connect(&mux.socket(), Duration::from_secs(60)).unwrap();
    match WatchdogClient::connect(&mux.socket(), Duration::from_secs(60)) {
        Err(ClientError::Rejected(RejectReason::TooManyClients)) => {}
        other => panic!("third client must be refused, got {other:?}"),
    }
    first.release().unwrap();
    second.release().unwrap();
    std::thread::sleep(quiet_period());
    assert!(group.all_alive(), "{}", mux.log_text());
    assert!(mux.is_running());
    assert!(mux.log_lines_with(&["EXPIRED"]).is_empty());
}

/// Env var that turns `uid_helper_client` into a client for
/// `other_users_are_refused`, which runs this test binary as user nobody.
const UID_HELPER_SOCKET: &str = "WATCHDOG_UID_HELPER_SOCKET";

/// Not a test on its own: without the env var it returns at once. Run by
/// `other_users_are_refused` as another user, it reports what connecting
/// gave.
#[test]
fn uid_helper_client() {
    let Some(socket) = std::env::var_os(UID_HELPER_SOCKET) else {
        return;
    };
    let result = WatchdogClient::connect(std::path::Path::new(&socket), Duration::from_secs(5));
    println!("HELPER_RESULT: {result:?}");
}

#[test]
fn other_users_are_refused() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let group = ProtectedGroup::spawn();
    let mux = MuxProcess::start_test_backend(group.pgid());
    let run_helper_as_nobody = || {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "uid_helper_client",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(UID_HELPER_SOCKET, mux.socket())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    std::fs::set_permissions(mux.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // The socket's mode 0600 keeps others out at connect time...
    let out = run_helper_as_nobody();
    assert!(out.contains("HELPER_RESULT: Err(Connect"), "{out}");
    assert!(out.contains("PermissionDenied"), "{out}");

    // ...and if the mode were opened up, the peer-uid check still refuses.
    std::fs::set_permissions(mux.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_helper_as_nobody();
    assert!(
        out.contains("HELPER_RESULT: Err(Rejected(PermissionDenied))"),
        "{out}"
    );
    assert!(
        mux.wait_log(&["connection rejected", "uid=65534"]),
        "{}",
        mux.log_text()
    );
}
