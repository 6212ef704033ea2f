//! The watchdog multiplexer: one backend, many local clients.
//!
//! A single thread runs one poll loop; there is no shared state. The one
//! safety invariant, kept by [`Mux::feed_if_due`]: the backend is fed only
//! at an instant when every armed client's deadline still lies in the
//! future, and never again once any armed client has failed. So the node
//! resets at the latest `client_timeout + device_timeout` after the last
//! keepalive of a failing client.

mod session;
pub mod signals;
pub mod socket;

use crate::backend::Backend;
use crate::protocol::{encode_server, RejectReason, ServerFrame};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::geteuid;
use session::{Limits, Session, Verdict};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;

pub use socket::SocketError;

/// Mux settings.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// The unix socket clients connect to.
    pub socket_path: PathBuf,
    /// Directory that exists while clients are armed; a mux refuses to
    /// start while it exists.
    pub active_marker: PathBuf,
    /// How often the backend is fed while nothing failed.
    pub feed_interval: Duration,
    /// Smallest client timeout accepted.
    pub min_client_timeout: Duration,
    /// Largest client timeout accepted.
    pub max_client_timeout: Duration,
    /// Most clients connected at once.
    pub max_clients: usize,
    /// How long a new connection may take to send `Hello`.
    pub handshake_timeout: Duration,
}

/// Errors that stop the mux.
#[derive(Debug, Error)]
pub enum MuxError {
    /// Socket or marker setup failed.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The configuration is unsafe or inconsistent.
    #[error("invalid mux configuration: {0}")]
    Config(String),
    /// A system call of the event loop failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was attempted.
        what: &'static str,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

/// How the mux ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// No client was armed: the backend was disarmed cleanly.
    Clean,
    /// Clients were armed or the mux had fenced: the backend was left
    /// armed, the node resets.
    Abandoned,
}

/// The running multiplexer.
pub struct Mux {
    config: MuxConfig,
    backend: Option<Box<dyn Backend>>,
    listener: UnixListener,
    signal_fd: SignalFd,
    sessions: Vec<Session>,
    limits: Limits,
    next_client_id: u32,
    next_feed: Instant,
    fenced: bool,
    failures: u64,
    owner_uid: u32,
    marker_present: bool,
}

/// The mux before it has a backend: marker checked, socket bound.
///
/// The order matters: the marker must be checked before the device is
/// opened, because opening a watchdog restarts its timer and would avert
/// the reset a previous, failed mux left pending.
pub struct BoundSocket {
    config: MuxConfig,
    listener: UnixListener,
    signal_fd: SignalFd,
}

impl BoundSocket {
    /// Checks the configuration and the marker, creates the signalfd and
    /// binds the socket. The caller must have called [`signals::block`]
    /// before starting any thread.
    pub fn bind(config: MuxConfig) -> Result<Self, MuxError> {
        if config.feed_interval.is_zero() {
            return Err(MuxError::Config("feed interval must be non-zero".into()));
        }
        if config.min_client_timeout.is_zero()
            || config.min_client_timeout > config.max_client_timeout
        {
            return Err(MuxError::Config(format!(
                "client timeout bounds {:?}..{:?} are empty or start at zero",
                config.min_client_timeout, config.max_client_timeout
            )));
        }
        if config.max_clients == 0 {
            return Err(MuxError::Config("max clients must be at least 1".into()));
        }
        socket::check_marker(&config.active_marker)?;
        let signal_fd = signals::signal_fd().map_err(|errno| MuxError::Sys {
            what: "signalfd",
            errno,
        })?;
        let listener = socket::bind(&config.socket_path)?;
        Ok(BoundSocket {
            config,
            listener,
            signal_fd,
        })
    }

    /// Attaches the backend. If the feed interval does not fit the
    /// backend's timeout, the backend is disarmed again (nobody armed it
    /// yet) and the mux does not start.
    pub fn start(self, backend: Box<dyn Backend>) -> Result<Mux, MuxError> {
        let config = self.config;
        let device_timeout = backend.timeout();
        if config.feed_interval * 2 > device_timeout {
            if let Err(err) = backend.disarm() {
                tracing::error!(%err, "disarming the backend after a configuration error failed");
            }
            // Best effort: we own the socket file we just bound.
            let _ = std::fs::remove_file(&config.socket_path);
            return Err(MuxError::Config(format!(
                "feed interval {:?} must be at most half the device timeout {:?}",
                config.feed_interval, device_timeout
            )));
        }
        tracing::info!(
            socket = %config.socket_path.display(),
            backend = %backend.describe(),
            feed_interval = ?config.feed_interval,
            "watchdog-mux listening"
        );
        Ok(Mux {
            limits: Limits {
                min_timeout: config.min_client_timeout,
                max_timeout: config.max_client_timeout,
                device_timeout,
            },
            config,
            backend: Some(backend),
            listener: self.listener,
            signal_fd: self.signal_fd,
            sessions: Vec::new(),
            next_client_id: 1,
            next_feed: Instant::now(),
            fenced: false,
            failures: 0,
            owner_uid: geteuid().as_raw(),
            marker_present: false,
        })
    }
}

impl Mux {
    /// Runs until SIGTERM or SIGINT.
    pub fn run(mut self) -> Result<Exit, MuxError> {
        loop {
            self.feed_if_due();
            let timeout = self.poll_timeout();
            let (signalled, listener_ready, ready) = {
                let mut fds = Vec::with_capacity(self.sessions.len() + 2);
                fds.push(PollFd::new(self.signal_fd.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
                for session in &self.sessions {
                    fds.push(PollFd::new(session.stream.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(errno) => {
                        return Err(MuxError::Sys {
                            what: "poll",
                            errno,
                        })
                    }
                }
                let fired = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                // By id, not index: `expire` below may remove sessions.
                let ready: Vec<u32> = fds[2..]
                    .iter()
                    .zip(&self.sessions)
                    .filter(|(fd, _)| fired(fd))
                    .map(|(_, session)| session.id)
                    .collect();
                (fired(&fds[0]), fired(&fds[1]), ready)
            };
            // Deadlines first: data that arrives after a deadline must not
            // rescue a client that already missed it.
            self.expire(Instant::now());
            if signalled {
                if let Some(exit) = self.handle_signals() {
                    return Ok(exit);
                }
            }
            for id in ready {
                if let Some(index) = self.sessions.iter().position(|s| s.id == id) {
                    self.service(index);
                }
            }
            if listener_ready {
                self.accept_all();
            }
            self.update_marker();
        }
    }

    /// Feeds the backend if it is due and safe; see the module docs.
    fn feed_if_due(&mut self) {
        let now = Instant::now();
        self.expire(now);
        if self.fenced || now < self.next_feed {
            return;
        }
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        match backend.keepalive() {
            Ok(()) => tracing::trace!("backend fed"),
            // Nothing better to do than to retry: a device we cannot feed
            // resets the node, which is the safe outcome.
            Err(err) => tracing::error!(%err, "feeding the watchdog backend failed"),
        }
        self.next_feed = now + self.config.feed_interval;
    }

    /// Fences for every armed session whose deadline passed, and drops
    /// unarmed sessions whose handshake took too long.
    fn expire(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.sessions.len() {
            let session = &self.sessions[index];
            match (session.is_armed(), session.deadline()) {
                (true, Some(deadline)) if now >= deadline => {
                    let late = now - deadline;
                    self.fail(
                        index,
                        &format!("missed its deadline (detected {late:?} after it)"),
                    );
                }
                (false, Some(deadline)) if now >= deadline => {
                    tracing::warn!(
                        client = session.id,
                        pid = session.pid,
                        "dropped: no Hello within the handshake timeout"
                    );
                    self.sessions.remove(index);
                }
                _ => index += 1,
            }
        }
    }

    /// Records an armed client's failure: fence (stop feeding for good)
    /// and drop the connection.
    fn fail(&mut self, index: usize, reason: &str) {
        let session = self.sessions.remove(index);
        self.failures += 1;
        tracing::error!(
            client = session.id,
            pid = session.pid,
            failures = self.failures,
            "client failed: {reason}"
        );
        if !self.fenced {
            self.fenced = true;
            tracing::error!(
                client = session.id,
                pid = session.pid,
                device_timeout = ?self.limits.device_timeout,
                "watchdog EXPIRED: stopped feeding the backend for good; the node resets within the device timeout"
            );
        }
        self.update_marker();
    }

    /// Reads what a ready client sent and acts on it.
    fn service(&mut self, index: usize) {
        let mut buffer = [0u8; 256];
        let session = &mut self.sessions[index];
        let verdict = match session.stream.read(&mut buffer) {
            Ok(0) => match session.phase {
                session::Phase::Armed { .. } => {
                    Verdict::Fence("disconnected without magic close".into())
                }
                session::Phase::Released => {
                    tracing::info!(
                        client = session.id,
                        pid = session.pid,
                        "released client closed"
                    );
                    Verdict::Close
                }
                session::Phase::Handshake { .. } => {
                    tracing::debug!(client = session.id, "unarmed client closed");
                    Verdict::Close
                }
            },
            Ok(len) => {
                let mut replies = Vec::new();
                let was_armed = session.is_armed();
                let verdict =
                    session.handle_bytes(&buffer[..len], &self.limits, self.fenced, &mut replies);
                if session.is_armed() && !was_armed && !self.marker_present {
                    // Before the client hears it is armed.
                    socket::set_marker(&self.config.active_marker, true);
                    self.marker_present = true;
                }
                match send(&mut session.stream, &replies) {
                    Ok(()) => verdict,
                    Err(err) if session.is_armed() => {
                        Verdict::Fence(format!("cannot write reply: {err}"))
                    }
                    Err(_) => Verdict::Close,
                }
            }
            Err(err)
                if err.kind() == ErrorKind::WouldBlock || err.kind() == ErrorKind::Interrupted =>
            {
                Verdict::Continue
            }
            Err(err) if session.is_armed() => Verdict::Fence(format!("connection error: {err}")),
            Err(_) => Verdict::Close,
        };
        match verdict {
            Verdict::Continue => {}
            Verdict::Close => {
                self.sessions.remove(index);
            }
            Verdict::Fence(reason) => self.fail(index, &reason),
        }
    }

    /// Accepts every pending connection.
    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::error!(%err, "accept failed");
                    return;
                }
            };
            self.admit(stream);
        }
    }

    /// Admits a new connection, or rejects it.
    fn admit(&mut self, mut stream: UnixStream) {
        let (pid, uid) = match getsockopt(&stream, PeerCredentials) {
            Ok(cred) => (cred.pid(), cred.uid()),
            Err(errno) => {
                tracing::error!(%errno, "cannot read peer credentials; dropping connection");
                return;
            }
        };
        let rejection = if uid != self.owner_uid {
            Some(RejectReason::PermissionDenied)
        } else if self.sessions.len() >= self.config.max_clients {
            Some(RejectReason::TooManyClients)
        } else if self.fenced {
            Some(RejectReason::Fenced)
        } else {
            None
        };
        if let Some(reason) = rejection {
            tracing::warn!(pid, uid, %reason, "connection rejected");
            // Best effort: the connection is closed either way.
            let _ = stream.set_nonblocking(true);
            let _ = send(&mut stream, &[ServerFrame::Rejected(reason)]);
            return;
        }
        if let Err(err) = stream.set_nonblocking(true) {
            tracing::error!(pid, %err, "cannot make connection non-blocking; dropping it");
            return;
        }
        let id = self.next_client_id;
        self.next_client_id = self.next_client_id.wrapping_add(1).max(1);
        tracing::debug!(client = id, pid, "client connected");
        self.sessions.push(Session::new(
            id,
            pid,
            stream,
            Instant::now() + self.config.handshake_timeout,
        ));
    }

    /// The marker exists while any client is armed or the mux has fenced.
    fn update_marker(&mut self) {
        let active = self.fenced || self.sessions.iter().any(Session::is_armed);
        if active != self.marker_present {
            socket::set_marker(&self.config.active_marker, active);
            self.marker_present = active;
        }
    }

    /// How long poll may sleep: until the next feed or the next deadline.
    fn poll_timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let mut wake = self.sessions.iter().filter_map(Session::deadline).min();
        if !self.fenced {
            wake = Some(wake.map_or(self.next_feed, |w| w.min(self.next_feed)));
        }
        let Some(wake) = wake else {
            return PollTimeout::NONE;
        };
        // Round up so we never wake just before the instant and spin.
        let wait = wake.saturating_duration_since(now);
        let millis = wait.as_nanos().div_ceil(1_000_000);
        PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
    }

    /// Drains the signalfd; returns how the mux exits if it must.
    fn handle_signals(&mut self) -> Option<Exit> {
        let mut terminate = false;
        while let Ok(Some(info)) = self.signal_fd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == nix::sys::signal::Signal::SIGHUP as i32 {
                tracing::info!("SIGHUP ignored");
            } else {
                tracing::info!(signo, "termination signal received");
                terminate = true;
            }
        }
        terminate.then(|| self.shutdown())
    }

    /// Ends the mux: disarm cleanly only if nobody is armed and nothing failed.
    fn shutdown(&mut self) -> Exit {
        let armed: Vec<u32> = self
            .sessions
            .iter()
            .filter(|s| s.is_armed())
            .map(|s| s.id)
            .collect();
        let Some(backend) = self.backend.take() else {
            return Exit::Abandoned;
        };
        if self.fenced || !armed.is_empty() {
            tracing::error!(
                ?armed,
                fenced = self.fenced,
                "exiting with armed clients or after a failure: leaving the watchdog armed, the node resets"
            );
            backend.abandon();
            // Keep the marker: a restarted mux must not avert the reset.
            return Exit::Abandoned;
        }
        match backend.disarm() {
            Ok(()) => tracing::info!("no armed clients: watchdog disarmed (magic close)"),
            Err(err) => tracing::error!(%err, "disarming the watchdog failed; the node may reset"),
        }
        socket::set_marker(&self.config.active_marker, false);
        if let Err(err) = std::fs::remove_file(&self.config.socket_path) {
            tracing::warn!(%err, "cannot remove the socket file");
        }
        Exit::Clean
    }
}

/// Writes replies; the stream is non-blocking, so a client that does not
/// read its replies gets an error instead of stalling the mux.
fn send(stream: &mut UnixStream, replies: &[ServerFrame]) -> std::io::Result<()> {
    let bytes: Vec<u8> = replies
        .iter()
        .flat_map(|frame| encode_server(*frame))
        .collect();
    if bytes.is_empty() {
        return Ok(());
    }
    stream.write_all(&bytes)
}
