//! The test backend: a software watchdog that SIGKILLs protected processes.
//!
//! For machines without a watchdog device (CI, laptops, the local demo).
//! It has the device's semantics — armed from creation, fires when not fed
//! for its timeout — but "firing" kills a process group and/or the members
//! of a cgroup with SIGKILL instead of resetting the machine. It is NOT
//! safe for production.
//!
//! # The device process
//!
//! Like a hardware watchdog, the timer does not live in watchdog-mux: at
//! [`TestBackend::start`] the mux forks a small *device process* that it
//! feeds over a pipe. One byte per message:
//!
//! - `k` (keepalive): the deadline moves to now + timeout;
//! - `V` (magic close): the device stops without firing and exits 0;
//! - `F` (fire now, used when the mux gives up while armed): the device
//!   fires at once and exits.
//!
//! When the pipe reaches end-of-file (the mux died, was SIGKILLed, or
//! closed it without `V`), the device keeps counting and fires at the
//! deadline, as hardware does; when the mux hangs (SIGSTOP, a stuck
//! loop), nothing feeds it and it fires too. After firing it exits with
//! status [`FIRED_EXIT_CODE`].
//!
//! The device process stays in the mux's cgroup and process group (so it
//! is never inside the protected cgroup unless the mux itself is, and a
//! power cut of the whole test node — SIGKILL of the mux's process group —
//! takes it along). It blocks SIGTERM, SIGINT, SIGHUP and SIGQUIT (a
//! device does not die of a signal meant for the node's services), and it
//! closes every file descriptor it inherited except the pipe and stdio,
//! so it never keeps the mux's socket alive. It writes its log lines to
//! the mux's stderr, in the format of the mux's own log.
//!
//! Between `fork` and its exit the device process only makes
//! async-signal-safe system calls and formats into stack buffers (no heap
//! allocation, no locks), so forking a multi-threaded process is sound.

use crate::backend::{Backend, BackendError};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, ForkResult, Pid};
use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Exit status of the device process after it fired.
pub const FIRED_EXIT_CODE: i32 = 3;
/// Exit status of the device process after a magic close.
pub const DISARMED_EXIT_CODE: i32 = 0;
/// How long the mux waits for the device process to answer a magic close
/// or a fire-now before it gives up on it.
const DEVICE_ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// What the test backend kills when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectTarget {
    /// Every process in this process group.
    ProcessGroup(i32),
    /// Every process in this cgroup (v2: via `cgroup.kill` when present).
    Cgroup(PathBuf),
}

impl std::fmt::Display for ProtectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtectTarget::ProcessGroup(pgid) => write!(f, "process group {pgid}"),
            ProtectTarget::Cgroup(path) => write!(f, "cgroup {}", path.display()),
        }
    }
}

/// Errors of the test backend.
#[derive(Debug, Error)]
pub enum TestBackendError {
    /// No protect target was configured.
    #[error("test backend needs at least one target (--protect-pgid or --protect-cgroup)")]
    NoTarget,
    /// A process group id that would hit unrelated processes.
    #[error("test backend: refusing process group {0}: must be greater than 1")]
    InvalidProcessGroup(i32),
    /// The process group does not exist.
    #[error("test backend: process group {pgid} does not exist: {errno}")]
    NoSuchProcessGroup {
        /// The group.
        pgid: i32,
        /// The errno of `kill(-pgid, 0)`.
        errno: Errno,
    },
    /// The cgroup directory is not usable.
    #[error("test backend: {path} is not a cgroup directory (no cgroup.procs)")]
    NotACgroup {
        /// The path.
        path: PathBuf,
    },
    /// A cgroup path that cannot be passed to the kernel (a NUL byte).
    #[error("test backend: cgroup path {path} contains a NUL byte")]
    BadPath {
        /// The path.
        path: PathBuf,
    },
    /// The device process could not be started.
    #[error("test backend: cannot start the device process: {0}")]
    SpawnTimer(Errno),
    /// The backend already fired; the node counts as reset.
    #[error("test backend already fired: the protected processes were killed")]
    AlreadyFired,
    /// The device process ended without firing (killed from outside).
    #[error("test backend: the device process is gone ({0}); nothing protects the node")]
    DeviceGone(String),
}

/// One target, prepared before the fork so the device process needs no
/// allocation.
#[derive(Debug)]
enum Prepared {
    ProcessGroup(i32),
    Cgroup {
        kill_file: CString,
        procs_file: CString,
        /// `cgroup <dir>` for the log.
        label: Vec<u8>,
    },
}

/// The mux's handle on the device process.
#[derive(Debug)]
struct Device {
    pid: Pid,
    /// Write end of the feed pipe (non-blocking).
    feed: OwnedFd,
}

/// The software watchdog backend. See the module docs.
#[derive(Debug)]
pub struct TestBackend {
    device: Option<Device>,
    timeout: Duration,
    targets: Vec<ProtectTarget>,
    fired: bool,
}

impl TestBackend {
    /// Validates the targets and starts the device process (armed now).
    pub fn start(timeout: Duration, targets: Vec<ProtectTarget>) -> Result<Self, TestBackendError> {
        if targets.is_empty() {
            return Err(TestBackendError::NoTarget);
        }
        for target in &targets {
            validate(target)?;
        }
        let prepared = prepare(&targets)?;
        let (read_end, write_end) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(TestBackendError::SpawnTimer)?;
        let messages = Messages::new(timeout, &targets);
        // SAFETY: the child only runs `device_main`, which makes
        // async-signal-safe system calls, formats into stack buffers and
        // ends with `_exit`; it never returns into the parent's code.
        match unsafe { nix::unistd::fork() }.map_err(TestBackendError::SpawnTimer)? {
            ForkResult::Child => {
                drop(write_end);
                device_main(read_end, timeout, &prepared, &messages)
            }
            ForkResult::Parent { child } => {
                drop(read_end);
                let flags =
                    fcntl(&write_end, FcntlArg::F_GETFL).map_err(TestBackendError::SpawnTimer)?;
                let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
                fcntl(&write_end, FcntlArg::F_SETFL(flags))
                    .map_err(TestBackendError::SpawnTimer)?;
                tracing::error!(
                    "TEST BACKEND: NOT SAFE FOR PRODUCTION. No watchdog device is used; a test \
                     watchdog device process (pid {child}) SIGKILLs the protected processes ({}) \
                     when not fed for {timeout:?} (also when watchdog-mux hangs or dies); the \
                     machine is NOT reset.",
                    describe_targets(&targets)
                );
                Ok(TestBackend {
                    device: Some(Device {
                        pid: child,
                        feed: write_end,
                    }),
                    timeout,
                    targets,
                    fired: false,
                })
            }
        }
    }

    /// The device process's pid while it runs.
    pub fn device_pid(&self) -> Option<i32> {
        self.device.as_ref().map(|d| d.pid.as_raw())
    }

    /// Sends one message byte; false if the device cannot take it now.
    fn send(device: &Device, byte: u8) -> Result<bool, Errno> {
        match nix::unistd::write(device.feed.as_fd(), &[byte]) {
            Ok(1) => Ok(true),
            Ok(_) | Err(Errno::EAGAIN) => Ok(false),
            Err(Errno::EINTR) => Self::send(device, byte),
            Err(errno) => Err(errno),
        }
    }

    /// Whether the device process has ended; records a firing.
    fn reap(&mut self, block_for: Duration) -> Option<WaitStatus> {
        let device = self.device.as_ref()?;
        let end = Instant::now() + block_for;
        loop {
            match waitpid(device.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    if matches!(status, WaitStatus::Exited(_, FIRED_EXIT_CODE)) {
                        self.fired = true;
                    }
                    self.device = None;
                    return Some(status);
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    tracing::error!(%errno, "test backend: cannot wait for the device process");
                    self.device = None;
                    return None;
                }
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `byte` (V or F) and waits for the device process to exit.
    fn finish(&mut self, byte: u8) -> Option<WaitStatus> {
        let device = self.device.as_ref()?;
        let pid = device.pid;
        if let Err(errno) = Self::send(device, byte) {
            tracing::error!(%errno, "test backend: cannot reach the device process");
        }
        let status = self.reap(DEVICE_ANSWER_LIMIT);
        if status.is_none() && self.device.is_some() {
            tracing::error!(
                %pid,
                "test backend: the device process did not answer in time; killing it"
            );
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            self.device = None;
        }
        status
    }
}

fn validate(target: &ProtectTarget) -> Result<(), TestBackendError> {
    match target {
        ProtectTarget::ProcessGroup(pgid) => {
            // kill(-1) would signal every process we may signal.
            if *pgid <= 1 {
                return Err(TestBackendError::InvalidProcessGroup(*pgid));
            }
            killpg(Pid::from_raw(*pgid), None)
                .map_err(|errno| TestBackendError::NoSuchProcessGroup { pgid: *pgid, errno })?;
            if getpgrp().as_raw() == *pgid {
                tracing::warn!(
                    pgid,
                    "watchdog-mux is itself in the protected process group: it dies with it when \
                     the test backend fires"
                );
            }
            Ok(())
        }
        ProtectTarget::Cgroup(path) => {
            if path.join("cgroup.procs").is_file() {
                Ok(())
            } else {
                Err(TestBackendError::NotACgroup { path: path.clone() })
            }
        }
    }
}

fn prepare(targets: &[ProtectTarget]) -> Result<Vec<Prepared>, TestBackendError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = |path: PathBuf| {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| TestBackendError::BadPath { path: path.clone() })
    };
    let mut out = Vec::new();
    // Cgroups first: a process group target may hold the mux and the
    // device itself (warned about above), which then dies last.
    for target in targets {
        if let ProtectTarget::Cgroup(path) = target {
            out.push(Prepared::Cgroup {
                kill_file: c_path(path.join("cgroup.kill"))?,
                procs_file: c_path(path.join("cgroup.procs"))?,
                label: target.to_string().into_bytes(),
            });
        }
    }
    for target in targets {
        if let ProtectTarget::ProcessGroup(pgid) = target {
            out.push(Prepared::ProcessGroup(*pgid));
        }
    }
    Ok(out)
}

fn describe_targets(targets: &[ProtectTarget]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The device process's fixed log texts, made before the fork.
#[derive(Debug)]
struct Messages {
    /// `TEST BACKEND FIRED: ...` (without pid and reason).
    fired: Vec<u8>,
}

impl Messages {
    fn new(timeout: Duration, targets: &[ProtectTarget]) -> Self {
        Messages {
            fired: format!(
                "TEST BACKEND FIRED: watchdog not fed for {timeout:?}, killing {} with SIGKILL",
                describe_targets(targets)
            )
            .into_bytes(),
        }
    }
}

/// A log line built on the stack.
struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Line {
    /// Starts a line like the mux's tracing output:
    /// `2026-01-02T03:04:05.678901Z ERROR watchdog::test_backend: `.
    fn new(level: &str) -> Self {
        let mut line = Line {
            buf: [0; 1024],
            len: 0,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let secs = now.as_secs();
        let (year, month, day) = crate::civil::civil_from_days(secs / 86_400);
        let rem = secs % 86_400;
        let _ = write!(
            line,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z {level:>5} watchdog::test_backend: ",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            now.subsec_micros()
        );
        line
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Writes the line (with a newline) to stderr.
    fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        let mut done = 0;
        while done < self.len {
            // SAFETY: writes initialized bytes of a stack buffer to fd 2.
            let n =
                unsafe { nix::libc::write(2, self.buf[done..].as_ptr().cast(), self.len - done) };
            if n <= 0 {
                return;
            }
            done += usize::try_from(n).unwrap_or(self.len);
        }
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// The device process. Never returns. Async-signal-safe only (see the
/// module docs).
fn device_main(feed: OwnedFd, timeout: Duration, targets: &[Prepared], messages: &Messages) -> ! {
    let fd = feed.as_raw_fd();
    // Close everything inherited but stdio and the feed pipe.
    close_other_fds(fd);
    let mut blocked = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        blocked.add(signal);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    // SAFETY: setting SIGPIPE to SIG_IGN installs no handler.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) };
    let me = std::process::id();
    {
        let mut line = Line::new("INFO");
        let _ = write!(
            line,
            "test watchdog device process {me} running (timeout {timeout:?}; NOT SAFE FOR PRODUCTION)"
        );
        line.emit();
    }
    let mut deadline = Instant::now() + timeout;
    let mut fed_by_mux = true;
    let mut buf = [0u8; 256];
    loop {
        let now = Instant::now();
        if now >= deadline {
            let reason: &str = if fed_by_mux {
                "not fed"
            } else {
                "watchdog-mux closed the device without the magic close"
            };
            fire(targets, messages, reason);
        }
        let wait = deadline - now;
        // Round up: never wake before the deadline and spin.
        let ms = u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX);
        if !fed_by_mux {
            std::thread::sleep(Duration::from_millis(u64::from(ms)));
            continue;
        }
        let mut fds = [PollFd::new(feed.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => {
                fed_by_mux = false;
                continue;
            }
        }
        let n = match nix::unistd::read(feed.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => 0,
        };
        if n == 0 {
            // The mux is gone (exited, killed) or closed the device:
            // keep counting, as a hardware watchdog does.
            fed_by_mux = false;
            let mut line = Line::new("WARN");
            let _ = write!(
                line,
                "test watchdog device process {me}: watchdog-mux closed the device without the \
                 magic close; firing at the deadline unless it was fed in time"
            );
            line.emit();
            continue;
        }
        for byte in &buf[..n] {
            match byte {
                b'k' => deadline = Instant::now() + timeout,
                b'V' => {
                    let mut line = Line::new("INFO");
                    let _ = write!(
                        line,
                        "test watchdog device process {me}: magic close, stopped without firing"
                    );
                    line.emit();
                    // SAFETY: _exit ends the process without running the
                    // parent's atexit handlers or destructors.
                    unsafe { nix::libc::_exit(DISARMED_EXIT_CODE) }
                }
                b'F' => fire(targets, messages, "told to fire by watchdog-mux"),
                _ => {}
            }
        }
    }
}

/// Closes every descriptor above 2 except `keep` (close_range where the
/// kernel has it, else one by one up to a bound).
fn close_other_fds(keep: i32) {
    let keep = u32::try_from(keep).unwrap_or(3);
    let ranges = [(3u32, keep.saturating_sub(1)), (keep + 1, u32::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range(2) only closes descriptors of this process.
        let r = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0u32) };
        if r != 0 {
            for fd in first..last.min(4096) {
                // SAFETY: closes a descriptor number; errors are ignored.
                unsafe {
                    nix::libc::close(i32::try_from(fd).unwrap_or(-1));
                }
            }
        }
    }
}

/// Kills every target with SIGKILL, logs loudly, and exits the device
/// process with [`FIRED_EXIT_CODE`].
fn fire(targets: &[Prepared], messages: &Messages, reason: &str) -> ! {
    let me = std::process::id();
    {
        let mut line = Line::new("ERROR");
        line.bytes(&messages.fired);
        let _ = write!(line, " ({reason}; device process {me})");
        line.emit();
    }
    for target in targets {
        match target {
            Prepared::ProcessGroup(pgid) => kill_process_group(*pgid),
            Prepared::Cgroup {
                kill_file,
                procs_file,
                label,
            } => kill_cgroup(kill_file, procs_file, label),
        }
    }
    // SAFETY: see device_main.
    unsafe { nix::libc::_exit(FIRED_EXIT_CODE) }
}

fn kill_process_group(pgid: i32) {
    let mut line;
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) => {
            line = Line::new("ERROR");
            let _ = write!(
                line,
                "test backend: SIGKILL sent to process group pgid={pgid}"
            );
        }
        Err(Errno::ESRCH) => {
            line = Line::new("WARN");
            let _ = write!(line, "test backend: process group already gone pgid={pgid}");
        }
        Err(errno) => {
            line = Line::new("ERROR");
            let _ = write!(
                line,
                "test backend: cannot kill process group pgid={pgid} errno={errno}"
            );
        }
    }
    line.emit();
}

/// Writes "1" to the file; true on success.
fn write_one(path: &CString) -> bool {
    // SAFETY: open/write/close on a NUL-terminated path made before fork.
    unsafe {
        let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = nix::libc::write(fd, b"1".as_ptr().cast(), 1) == 1;
        nix::libc::close(fd);
        ok
    }
}

/// Reads up to `buf.len()` bytes of the file; the length read.
fn read_file(path: &CString, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: open/read/close on a NUL-terminated path into a stack buffer.
    unsafe {
        let fd = nix::libc::open(path.as_ptr(), nix::libc::O_RDONLY | nix::libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut len = 0usize;
        while len < buf.len() {
            let n = nix::libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n <= 0 {
                break;
            }
            len += usize::try_from(n).unwrap_or(0);
        }
        nix::libc::close(fd);
        Some(len)
    }
}

fn kill_cgroup(kill_file: &CString, procs_file: &CString, label: &[u8]) {
    if write_one(kill_file) {
        let mut line = Line::new("ERROR");
        let _ = write!(line, "test backend: cgroup.kill written ");
        line.bytes(label);
        line.emit();
        return;
    }
    // Without cgroup.kill, members may fork while we kill: repeat until
    // the cgroup is empty, a bounded number of times.
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..50 {
        let Some(len) = read_file(procs_file, &mut buf) else {
            let mut line = Line::new("ERROR");
            let _ = write!(line, "test backend: cannot read cgroup.procs of ");
            line.bytes(label);
            line.emit();
            return;
        };
        let mut any = false;
        let mut pid: i32 = 0;
        let mut digits = false;
        for byte in buf[..len].iter().chain(std::iter::once(&b'\n')) {
            if byte.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add(i32::from(byte - b'0'));
                digits = true;
            } else {
                if digits && pid > 1 && pid != me {
                    any = true;
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                pid = 0;
                digits = false;
            }
        }
        if !any {
            let mut line = Line::new("ERROR");
            let _ = write!(line, "test backend: cgroup members killed ");
            line.bytes(label);
            line.emit();
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut line = Line::new("ERROR");
    let _ = write!(
        line,
        "test backend: members left after repeated SIGKILL in "
    );
    line.bytes(label);
    line.emit();
}

impl Backend for TestBackend {
    fn describe(&self) -> String {
        format!(
            "TEST backend (NOT SAFE FOR PRODUCTION): software watchdog in device process {}, \
             timeout {:?}, kills {}",
            self.device_pid().unwrap_or(0),
            self.timeout,
            describe_targets(&self.targets)
        )
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn keepalive(&mut self) -> Result<(), BackendError> {
        if self.fired {
            return Err(TestBackendError::AlreadyFired.into());
        }
        if let Some(status) = self.reap(Duration::ZERO) {
            return Err(if self.fired {
                TestBackendError::AlreadyFired
            } else {
                TestBackendError::DeviceGone(format!("{status:?}"))
            }
            .into());
        }
        let Some(device) = self.device.as_ref() else {
            return Err(TestBackendError::DeviceGone("not running".into()).into());
        };
        match Self::send(device, b'k') {
            // A full pipe means a stopped device: nothing more to do.
            Ok(_) => Ok(()),
            Err(errno) => {
                self.reap(Duration::from_millis(100));
                Err(if self.fired {
                    TestBackendError::AlreadyFired
                } else {
                    TestBackendError::DeviceGone(format!("feeding it failed: {errno}"))
                }
                .into())
            }
        }
    }

    fn disarm(mut self: Box<Self>) -> Result<(), BackendError> {
        let status = self.finish(b'V');
        if self.fired {
            return Err(TestBackendError::AlreadyFired.into());
        }
        match status {
            Some(WaitStatus::Exited(_, DISARMED_EXIT_CODE)) => Ok(()),
            other => Err(TestBackendError::DeviceGone(format!("{other:?}")).into()),
        }
    }

    fn abandon(mut self: Box<Self>) {
        // The mux gives up while armed: fire now, as the hardware would
        // after its timeout, and wait until the targets are killed.
        self.finish(b'F');
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if self.device.is_some() {
            // Dropped without disarm(): like closing a device without the
            // magic byte, which resets the node.
            self.finish(b'F');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(crate::civil::civil_from_days(0), (1970, 1, 1));
        assert_eq!(crate::civil::civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(crate::civil::civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn log_lines_are_bounded() {
        let mut line = Line::new("ERROR");
        let start = line.len;
        assert!(start > 20);
        line.bytes(&[b'x'; 4000]);
        assert_eq!(line.len, line.buf.len());
    }
}
