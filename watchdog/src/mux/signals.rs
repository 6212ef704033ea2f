//! Signals as file descriptors, so the mux's single poll loop sees them.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals the mux handles: SIGTERM and SIGINT end it, SIGHUP is
/// ignored (read and dropped).
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// Blocks the handled signals in the calling thread and every thread it
/// starts later. Call first thing in `main`, before any thread exists, or
/// a signal may hit a thread that does not block it and kill the process.
pub fn block() -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
}

/// A non-blocking signalfd for the handled signals.
pub fn signal_fd() -> nix::Result<SignalFd> {
    SignalFd::with_flags(&handled(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}
