//! Running a helper command (systemctl, an OCF script) with a time limit.
//!
//! The command runs in its own process group so a timeout kills everything it
//! started. Output is read through pipes by two threads; once the command has
//! exited they get a short grace period to drain, and are abandoned if a
//! daemon the command started still holds the pipe (so a leaked descriptor
//! can never hang the caller).

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Only the last this-many bytes of each stream are kept.
const OUTPUT_CAP: usize = 16 * 1024;
/// How long reader threads may keep draining after the command exited.
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// A command that ran to completion.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (tail).
    pub stdout: String,
    /// Its standard error (tail).
    pub stderr: String,
}

impl Finished {
    /// The exit code, or −1 when the command died from a signal (as the LRM
    /// reports a worker killed by a signal, spec §4.4).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// A one-line description for error messages: exit status and output tail.
    pub fn describe(&self) -> String {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown exit".to_string(),
        };
        let text = format!("{} {}", self.stderr.trim(), self.stdout.trim());
        let text = text.trim();
        if text.is_empty() {
            how
        } else {
            format!("{how}: {}", tail(text, 400))
        }
    }
}

/// Why a command did not finish.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started (not found, not executable, ...).
    Spawn(io::Error),
    /// It ran out of time and its process group was killed.
    Timeout {
        /// Output collected until the kill.
        output: String,
    },
    /// Waiting for it failed.
    Wait(io::Error),
}

/// Keeps the last `max` bytes of `text` (on a char boundary).
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

struct StreamReader {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl StreamReader {
    fn spawn<R: Read + Send + 'static>(mut source: R) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (buf, flag) = (Arc::clone(&buffer), Arc::clone(&done));
        let body = move || {
            let mut chunk = [0u8; 4096];
            loop {
                match source.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut guard = buf.lock().unwrap_or_else(|p| p.into_inner());
                        guard.extend_from_slice(&chunk[..n]);
                        if guard.len() > 2 * OUTPUT_CAP {
                            let cut = guard.len() - OUTPUT_CAP;
                            guard.drain(..cut);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            flag.store(true, Ordering::Release);
        };
        if thread::Builder::new()
            .name("agent-output".into())
            .spawn(body)
            .is_err()
        {
            // Without a reader the output is lost, but the command still runs.
            done.store(true, Ordering::Release);
        }
        StreamReader { buffer, done }
    }

    fn snapshot(&self) -> String {
        let guard = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let start = guard.len().saturating_sub(OUTPUT_CAP);
        String::from_utf8_lossy(&guard[start..]).into_owned()
    }
}

/// How far ahead a deadline may lie: a timeout beyond it (e.g. a stop
/// timeout of `u64::MAX` seconds) waits this long instead of overflowing
/// `Instant` and panicking the worker. Ten years is "never" for an agent.
const FARTHEST_DEADLINE: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `now + timeout`, capped at [`FARTHEST_DEADLINE`] so no timeout given by
/// an operator can overflow.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(FARTHEST_DEADLINE))
        .unwrap_or(now)
}

/// Runs `command` in a new process group with null stdin, waiting at most
/// `timeout`.
pub(crate) fn run(mut command: Command, timeout: Duration) -> Result<Finished, RunError> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying_busy_text(&mut command).map_err(RunError::Spawn)?;
    let readers = [
        child.stdout.take().map(StreamReader::spawn),
        child.stderr.take().map(StreamReader::spawn),
    ];
    let deadline = deadline_after(timeout);
    let status = match wait_until(&mut child, deadline).map_err(RunError::Wait)? {
        Some(status) => status,
        None => {
            kill_group(&child);
            // SIGKILL cannot be ignored; this wait is short.
            let _ = child.wait();
            drain(&readers);
            let output = readers
                .iter()
                .flatten()
                .map(StreamReader::snapshot)
                .collect::<Vec<_>>()
                .join("");
            return Err(RunError::Timeout { output });
        }
    };
    drain(&readers);
    let [out, err] = &readers;
    Ok(Finished {
        status,
        stdout: out.as_ref().map(StreamReader::snapshot).unwrap_or_default(),
        stderr: err.as_ref().map(StreamReader::snapshot).unwrap_or_default(),
    })
}

/// Spawns `command`, retrying briefly on ETXTBSY: a script that was just
/// written (a package upgrade, a test fixture) can be briefly "busy" while a
/// concurrently forked process still holds its write descriptor.
pub(crate) fn spawn_retrying_busy_text(command: &mut Command) -> io::Result<Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 10 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Polls `child` until it exits (`Some`) or the deadline passes (`None`).
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may already be gone; nothing else to do then.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn drain(readers: &[Option<StreamReader>]) {
    let deadline = Instant::now() + DRAIN_GRACE;
    while Instant::now() < deadline
        && readers
            .iter()
            .flatten()
            .any(|r| !r.done.load(Ordering::Acquire))
    {
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_output_and_exit_code() {
        let done = run(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.code(), 3);
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert!(done.describe().contains("exit code 3"));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        match run(sh(&script), Duration::from_millis(300)) {
            Err(RunError::Timeout { .. }) => {}
            other => panic!("expected timeout, got {other:?}"),
        }
        let child: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the same group and must be gone (it is
        // reparented, so at most a zombie awaiting init remains).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match super::super::proc_info::read_stat(child).unwrap() {
                None => break,
                Some(s) if s.has_exited() => break,
                Some(_) if Instant::now() > deadline => panic!("grandchild {child} survived"),
                Some(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    #[test]
    fn leaked_pipe_does_not_hang() {
        // The background sleep keeps stdout open after sh exits; run must
        // return while it still runs instead of waiting for end of file.
        let done = run(sh("sleep 30 & echo $!"), Duration::from_secs(10)).unwrap();
        assert_eq!(done.code(), 0);
        let leaked: i32 = done.stdout.trim().parse().unwrap();
        let stat = super::super::proc_info::read_stat(leaked).unwrap();
        assert!(
            stat.is_some_and(|s| !s.has_exited()),
            "run waited for the leaked pipe"
        );
        let _ = nix::sys::signal::kill(Pid::from_raw(leaked), Signal::SIGKILL);
    }

    #[test]
    fn spawn_failure_is_reported() {
        let r = run(Command::new("/nonexistent/tool"), Duration::from_secs(1));
        assert!(matches!(r, Err(RunError::Spawn(_))));
    }
}
