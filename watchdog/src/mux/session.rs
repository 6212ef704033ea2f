//! One client connection of the mux and the protocol rules it follows.
//!
//! The rules, in one place:
//! - A connection starts unarmed and must send `Hello` within the
//!   handshake timeout, or it is dropped (it never armed, so no fence).
//! - `Hello` with a supported version and an allowed timeout arms it:
//!   deadline = now + timeout.
//! - An armed client moves its deadline with `Keepalive`, but only if the
//!   keepalive is processed before the deadline.
//! - `Release` (the magic byte 'V') disarms it; it should then close.
//! - An armed client that misses its deadline, disconnects, or sends
//!   anything invalid makes the mux fence the node.
//! - An unarmed client that sends anything invalid is rejected and dropped.

use crate::protocol::{decode_client, ClientFrame, RejectReason, ServerFrame, PROTOCOL_VERSION};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected, `Hello` not yet received.
    Handshake {
        /// When an unarmed connection is dropped.
        deadline: Instant,
    },
    /// Armed: must keep alive before `deadline`.
    Armed {
        /// The negotiated timeout.
        timeout: Duration,
        /// The client's current deadline.
        deadline: Instant,
    },
    /// Released with the magic byte; no deadline applies.
    Released,
}

/// What the mux must do after a session handled its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep the connection.
    Continue,
    /// Close the connection; nothing was armed, no fence.
    Close,
    /// Fence the node: this armed client failed, for the given reason.
    Fence(String),
}

/// Fixed facts the sessions need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Smallest client timeout the mux accepts.
    pub min_timeout: Duration,
    /// Largest client timeout the mux accepts.
    pub max_timeout: Duration,
    /// The backend's timeout, reported to clients.
    pub device_timeout: Duration,
}

/// One connected client.
#[derive(Debug)]
pub(crate) struct Session {
    /// The id used in logs and told to the client.
    pub id: u32,
    /// The peer's pid, from SO_PEERCRED.
    pub pid: i32,
    /// The connection (non-blocking).
    pub stream: UnixStream,
    /// The life-cycle phase.
    pub phase: Phase,
    /// Bytes received but not yet a whole frame.
    pending: Vec<u8>,
}

/// A `Hello` frame is the longest client frame; a client that has this many
/// undecoded bytes is not speaking the protocol.
const MAX_PENDING: usize = crate::protocol::HELLO_LEN;

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

impl Session {
    /// A new, unarmed session.
    pub fn new(id: u32, pid: i32, stream: UnixStream, handshake_deadline: Instant) -> Self {
        Session {
            id,
            pid,
            stream,
            phase: Phase::Handshake {
                deadline: handshake_deadline,
            },
            pending: Vec::with_capacity(MAX_PENDING),
        }
    }

    /// Whether this client currently protects the node.
    pub fn is_armed(&self) -> bool {
        matches!(self.phase, Phase::Armed { .. })
    }

    /// The instant at which this session needs attention.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshake { deadline } | Phase::Armed { deadline, .. } => Some(deadline),
            Phase::Released => None,
        }
    }

    /// Handles newly received bytes. Replies are appended to `replies`.
    ///
    /// `fenced` tells whether the mux already stopped feeding the device.
    pub fn handle_bytes(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        fenced: bool,
        replies: &mut Vec<ServerFrame>,
    ) -> Verdict {
        self.pending.extend_from_slice(bytes);
        let mut used = 0;
        let verdict = loop {
            match decode_client(&self.pending[used..]) {
                Ok(None) => break Verdict::Continue,
                Ok(Some((frame, len))) => {
                    used += len;
                    let verdict = self.handle_frame(frame, limits, fenced, replies);
                    if verdict != Verdict::Continue {
                        break verdict;
                    }
                }
                Err(err) => {
                    break self.violation(&format!("malformed message: {err}"), replies);
                }
            }
        };
        self.pending.drain(..used);
        if verdict == Verdict::Continue && self.pending.len() >= MAX_PENDING {
            return self.violation("oversized message", replies);
        }
        verdict
    }

    /// Handles one decoded frame.
    fn handle_frame(
        &mut self,
        frame: ClientFrame,
        limits: &Limits,
        fenced: bool,
        replies: &mut Vec<ServerFrame>,
    ) -> Verdict {
        if fenced {
            // The node is being reset; nobody arms, feeds or releases now.
            replies.push(ServerFrame::Rejected(RejectReason::Fenced));
            return Verdict::Close;
        }
        let now = Instant::now();
        match (self.phase, frame) {
            (
                Phase::Handshake { .. },
                ClientFrame::Hello {
                    version,
                    timeout_ms,
                },
            ) => {
                let timeout = Duration::from_millis(u64::from(timeout_ms));
                if version != PROTOCOL_VERSION {
                    tracing::warn!(
                        client = self.id,
                        pid = self.pid,
                        version,
                        "rejected: unsupported protocol version"
                    );
                    replies.push(ServerFrame::Rejected(RejectReason::UnsupportedVersion));
                    return Verdict::Close;
                }
                if timeout < limits.min_timeout || timeout > limits.max_timeout {
                    tracing::warn!(
                        client = self.id,
                        pid = self.pid,
                        ?timeout,
                        min = ?limits.min_timeout,
                        max = ?limits.max_timeout,
                        "rejected: client timeout out of range"
                    );
                    replies.push(ServerFrame::Rejected(RejectReason::TimeoutOutOfRange));
                    return Verdict::Close;
                }
                self.phase = Phase::Armed {
                    timeout,
                    deadline: now + timeout,
                };
                tracing::info!(client = self.id, pid = self.pid, ?timeout, "client armed");
                replies.push(ServerFrame::Armed {
                    version: PROTOCOL_VERSION,
                    client_timeout_ms: millis(timeout),
                    device_timeout_ms: millis(limits.device_timeout),
                    client_id: self.id,
                });
                Verdict::Continue
            }
            (Phase::Armed { timeout, deadline }, ClientFrame::Keepalive) => {
                if now >= deadline {
                    return Verdict::Fence(format!(
                        "keepalive arrived {:?} after the deadline",
                        now - deadline
                    ));
                }
                self.phase = Phase::Armed {
                    timeout,
                    deadline: now + timeout,
                };
                replies.push(ServerFrame::KeepaliveAck);
                Verdict::Continue
            }
            (Phase::Armed { deadline, .. }, ClientFrame::Release) => {
                if now >= deadline {
                    return Verdict::Fence(format!(
                        "release arrived {:?} after the deadline",
                        now - deadline
                    ));
                }
                self.phase = Phase::Released;
                tracing::info!(
                    client = self.id,
                    pid = self.pid,
                    "client released (magic close)"
                );
                replies.push(ServerFrame::Released);
                Verdict::Continue
            }
            (phase, frame) => self.violation(
                &format!("unexpected {frame:?} in phase {}", phase_name(phase)),
                replies,
            ),
        }
    }

    /// A protocol violation: an armed client's failure fences the node, an
    /// unarmed client is rejected and dropped.
    fn violation(&mut self, what: &str, replies: &mut Vec<ServerFrame>) -> Verdict {
        replies.push(ServerFrame::Rejected(RejectReason::ProtocolViolation));
        if self.is_armed() {
            Verdict::Fence(format!("protocol violation: {what}"))
        } else {
            tracing::warn!(
                client = self.id,
                pid = self.pid,
                "rejected unarmed client: protocol violation: {what}"
            );
            Verdict::Close
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Handshake { .. } => "handshake",
        Phase::Armed { .. } => "armed",
        Phase::Released => "released",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_client, TAG_HELLO};

    fn limits() -> Limits {
        Limits {
            min_timeout: Duration::from_millis(100),
            max_timeout: Duration::from_secs(60),
            device_timeout: Duration::from_secs(10),
        }
    }

    fn session() -> Session {
        let (stream, _peer) = UnixStream::pair().unwrap();
        Session::new(1, 42, stream, Instant::now() + Duration::from_secs(5))
    }

    fn hello(ms: u32) -> Vec<u8> {
        encode_client(ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            timeout_ms: ms,
        })
    }

    #[test]
    fn arm_keepalive_release() {
        let mut s = session();
        let mut replies = Vec::new();
        assert_eq!(
            s.handle_bytes(&hello(500), &limits(), false, &mut replies),
            Verdict::Continue
        );
        assert!(s.is_armed());
        assert!(matches!(
            replies[0],
            ServerFrame::Armed {
                client_timeout_ms: 500,
                device_timeout_ms: 10_000,
                client_id: 1,
                ..
            }
        ));
        assert_eq!(
            s.handle_bytes(&[0, 0], &limits(), false, &mut replies),
            Verdict::Continue
        );
        assert_eq!(
            &replies[1..],
            &[ServerFrame::KeepaliveAck, ServerFrame::KeepaliveAck]
        );
        assert_eq!(
            s.handle_bytes(b"V", &limits(), false, &mut replies),
            Verdict::Continue
        );
        assert_eq!(s.phase, Phase::Released);
        assert_eq!(replies[3], ServerFrame::Released);
    }

    #[test]
    fn hello_split_across_reads() {
        let mut s = session();
        let mut replies = Vec::new();
        let bytes = hello(300);
        for byte in &bytes[..bytes.len() - 1] {
            assert_eq!(
                s.handle_bytes(&[*byte], &limits(), false, &mut replies),
                Verdict::Continue
            );
            assert!(!s.is_armed());
        }
        s.handle_bytes(&bytes[bytes.len() - 1..], &limits(), false, &mut replies);
        assert!(s.is_armed());
    }

    #[test]
    fn garbage_from_armed_client_fences() {
        let mut s = session();
        let mut replies = Vec::new();
        s.handle_bytes(&hello(500), &limits(), false, &mut replies);
        let verdict = s.handle_bytes(&[0x7f], &limits(), false, &mut replies);
        assert!(
            matches!(verdict, Verdict::Fence(ref why) if why.contains("0x7f")),
            "{verdict:?}"
        );
        assert_eq!(
            replies.last(),
            Some(&ServerFrame::Rejected(RejectReason::ProtocolViolation))
        );
    }

    #[test]
    fn second_hello_from_armed_client_fences() {
        let mut s = session();
        let mut replies = Vec::new();
        s.handle_bytes(&hello(500), &limits(), false, &mut replies);
        assert!(matches!(
            s.handle_bytes(&hello(500), &limits(), false, &mut replies),
            Verdict::Fence(_)
        ));
    }

    #[test]
    fn garbage_from_unarmed_client_only_closes() {
        let mut s = session();
        let mut replies = Vec::new();
        assert_eq!(
            s.handle_bytes(b"GET /", &limits(), false, &mut replies),
            Verdict::Close
        );
        assert_eq!(
            replies,
            vec![ServerFrame::Rejected(RejectReason::ProtocolViolation)]
        );
        let mut s = session();
        assert_eq!(
            s.handle_bytes(&[0], &limits(), false, &mut replies),
            Verdict::Close
        );
    }

    #[test]
    fn bad_version_and_timeouts_are_rejected() {
        let mut replies = Vec::new();
        let mut s = session();
        let bad_version = [TAG_HELLO, 9, 0, 0, 1, 0];
        assert_eq!(
            s.handle_bytes(&bad_version, &limits(), false, &mut replies),
            Verdict::Close
        );
        assert_eq!(
            replies.pop(),
            Some(ServerFrame::Rejected(RejectReason::UnsupportedVersion))
        );
        for ms in [0, 99, 60_001] {
            let mut s = session();
            assert_eq!(
                s.handle_bytes(&hello(ms), &limits(), false, &mut replies),
                Verdict::Close
            );
            assert_eq!(
                replies.pop(),
                Some(ServerFrame::Rejected(RejectReason::TimeoutOutOfRange))
            );
        }
    }

    #[test]
    fn late_keepalive_fences() {
        let mut s = session();
        let mut replies = Vec::new();
        s.handle_bytes(&hello(100), &limits(), false, &mut replies);
        std::thread::sleep(Duration::from_millis(150));
        assert!(matches!(
            s.handle_bytes(&[0], &limits(), false, &mut replies),
            Verdict::Fence(_)
        ));
    }

    #[test]
    fn fenced_mux_rejects_everything() {
        let mut s = session();
        let mut replies = Vec::new();
        assert_eq!(
            s.handle_bytes(&hello(500), &limits(), true, &mut replies),
            Verdict::Close
        );
        assert_eq!(replies, vec![ServerFrame::Rejected(RejectReason::Fenced)]);
    }
}
