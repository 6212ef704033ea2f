//! The watchdog-mux wire protocol, version 1.
//!
//! Fixed-layout frames over a unix stream socket; every multi-byte integer
//! is big-endian. The layout is written out byte by byte in the crate
//! README. It is deliberately hand-laid-out instead of a serde format: the
//! mux must be able to reject any byte sequence without allocating, and an
//! operator must be able to read a frame in `strace` output.
//!
//! Client to mux:
//! - `Hello`: `'H'`, version `u8`, requested timeout in ms `u32` (6 bytes).
//! - `Keepalive`: a single NUL byte.
//! - `Release`: the magic byte `'V'`; the client then closes the socket.
//!
//! Mux to client:
//! - `Armed`: `'A'`, version `u8`, client timeout ms `u32`, device timeout ms
//!   `u32`, client id `u32` (14 bytes).
//! - `KeepaliveAck`: `'K'`.
//! - `Released`: `'B'`.
//! - `Rejected`: `'R'`, reason `u8`; the mux closes the connection after it.

use thiserror::Error;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// First byte of a `Hello` frame.
pub const TAG_HELLO: u8 = b'H';
/// The keepalive byte (NUL, as in Proxmox's watchdog-mux).
pub const TAG_KEEPALIVE: u8 = 0;
/// The magic close byte, as for the kernel watchdog device.
pub const TAG_RELEASE: u8 = b'V';
/// First byte of an `Armed` frame.
pub const TAG_ARMED: u8 = b'A';
/// The keepalive acknowledgement byte.
pub const TAG_KEEPALIVE_ACK: u8 = b'K';
/// The release acknowledgement byte.
pub const TAG_RELEASED: u8 = b'B';
/// First byte of a `Rejected` frame.
pub const TAG_REJECTED: u8 = b'R';

/// Length of an encoded `Hello` frame.
pub const HELLO_LEN: usize = 6;
/// Length of an encoded `Armed` frame.
pub const ARMED_LEN: usize = 14;
/// Length of an encoded `Rejected` frame.
pub const REJECTED_LEN: usize = 2;

/// A frame sent by a client to the mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame {
    /// Arm this connection with the given per-client timeout.
    Hello {
        /// Protocol version the client speaks.
        version: u8,
        /// Requested client timeout in milliseconds.
        timeout_ms: u32,
    },
    /// Reset this client's deadline to now + its timeout.
    Keepalive,
    /// Disarm this client cleanly (magic close).
    Release,
}

/// A frame sent by the mux to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFrame {
    /// The client is armed.
    Armed {
        /// Protocol version the mux speaks.
        version: u8,
        /// The client timeout the mux enforces, in milliseconds.
        client_timeout_ms: u32,
        /// The watchdog device timeout, in milliseconds; the node resets at
        /// most this long after the mux stops feeding the device.
        device_timeout_ms: u32,
        /// The id the mux uses for this client in its logs.
        client_id: u32,
    },
    /// The keepalive was accepted and the deadline moved.
    KeepaliveAck,
    /// The client is released; it may close the socket now.
    Released,
    /// The request was refused; the mux closes the connection.
    Rejected(RejectReason),
}

/// Why the mux refused a client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// The requested timeout is outside the mux's configured bounds.
    TimeoutOutOfRange,
    /// The mux already serves its maximum number of clients.
    TooManyClients,
    /// The mux has stopped feeding the device: the node is being reset.
    Fenced,
    /// The client sent a frame that is not valid at this point.
    ProtocolViolation,
    /// The peer's user id is not allowed to use the mux.
    PermissionDenied,
    /// A reason code this version does not know.
    Unknown(u8),
}

impl RejectReason {
    /// The wire code of this reason.
    pub fn code(self) -> u8 {
        match self {
            RejectReason::UnsupportedVersion => 1,
            RejectReason::TimeoutOutOfRange => 2,
            RejectReason::TooManyClients => 3,
            RejectReason::Fenced => 4,
            RejectReason::ProtocolViolation => 5,
            RejectReason::PermissionDenied => 6,
            RejectReason::Unknown(code) => code,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => RejectReason::UnsupportedVersion,
            2 => RejectReason::TimeoutOutOfRange,
            3 => RejectReason::TooManyClients,
            4 => RejectReason::Fenced,
            5 => RejectReason::ProtocolViolation,
            6 => RejectReason::PermissionDenied,
            other => RejectReason::Unknown(other),
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::UnsupportedVersion => write!(f, "unsupported protocol version"),
            RejectReason::TimeoutOutOfRange => write!(f, "requested timeout out of range"),
            RejectReason::TooManyClients => write!(f, "too many clients"),
            RejectReason::Fenced => write!(f, "mux has fenced the node (device no longer fed)"),
            RejectReason::ProtocolViolation => write!(f, "protocol violation"),
            RejectReason::PermissionDenied => write!(f, "permission denied"),
            RejectReason::Unknown(code) => write!(f, "unknown reason code {code}"),
        }
    }
}

/// A byte sequence that is not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The first byte names no frame of this protocol.
    #[error("unknown frame tag 0x{0:02x}")]
    UnknownTag(u8),
}

/// Encodes a client frame.
pub fn encode_client(frame: ClientFrame) -> Vec<u8> {
    match frame {
        ClientFrame::Hello {
            version,
            timeout_ms,
        } => {
            let mut out = Vec::with_capacity(HELLO_LEN);
            out.push(TAG_HELLO);
            out.push(version);
            out.extend_from_slice(&timeout_ms.to_be_bytes());
            out
        }
        ClientFrame::Keepalive => vec![TAG_KEEPALIVE],
        ClientFrame::Release => vec![TAG_RELEASE],
    }
}

/// Decodes one client frame from the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, otherwise the frame and
/// the number of bytes it used.
pub fn decode_client(buf: &[u8]) -> Result<Option<(ClientFrame, usize)>, FrameError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    match tag {
        TAG_KEEPALIVE => Ok(Some((ClientFrame::Keepalive, 1))),
        TAG_RELEASE => Ok(Some((ClientFrame::Release, 1))),
        TAG_HELLO => {
            if buf.len() < HELLO_LEN {
                return Ok(None);
            }
            let timeout_ms = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]);
            Ok(Some((
                ClientFrame::Hello {
                    version: buf[1],
                    timeout_ms,
                },
                HELLO_LEN,
            )))
        }
        other => Err(FrameError::UnknownTag(other)),
    }
}

/// Encodes a server frame.
pub fn encode_server(frame: ServerFrame) -> Vec<u8> {
    match frame {
        ServerFrame::Armed {
            version,
            client_timeout_ms,
            device_timeout_ms,
            client_id,
        } => {
            let mut out = Vec::with_capacity(ARMED_LEN);
            out.push(TAG_ARMED);
            out.push(version);
            out.extend_from_slice(&client_timeout_ms.to_be_bytes());
            out.extend_from_slice(&device_timeout_ms.to_be_bytes());
            out.extend_from_slice(&client_id.to_be_bytes());
            out
        }
        ServerFrame::KeepaliveAck => vec![TAG_KEEPALIVE_ACK],
        ServerFrame::Released => vec![TAG_RELEASED],
        ServerFrame::Rejected(reason) => vec![TAG_REJECTED, reason.code()],
    }
}

/// Decodes one server frame from the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, otherwise the frame and
/// the number of bytes it used.
pub fn decode_server(buf: &[u8]) -> Result<Option<(ServerFrame, usize)>, FrameError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    match tag {
        TAG_KEEPALIVE_ACK => Ok(Some((ServerFrame::KeepaliveAck, 1))),
        TAG_RELEASED => Ok(Some((ServerFrame::Released, 1))),
        TAG_REJECTED => {
            if buf.len() < REJECTED_LEN {
                return Ok(None);
            }
            Ok(Some((
                ServerFrame::Rejected(RejectReason::from_code(buf[1])),
                REJECTED_LEN,
            )))
        }
        TAG_ARMED => {
            if buf.len() < ARMED_LEN {
                return Ok(None);
            }
            let word =
                |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            Ok(Some((
                ServerFrame::Armed {
                    version: buf[1],
                    client_timeout_ms: word(2),
                    device_timeout_ms: word(6),
                    client_id: word(10),
                },
                ARMED_LEN,
            )))
        }
        other => Err(FrameError::UnknownTag(other)),
    }
}

/// The length of the longest server frame, for reply buffers.
pub const MAX_SERVER_FRAME_LEN: usize = ARMED_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_round_trip() {
        let frames = [
            ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                timeout_ms: 0xdead_beef,
            },
            ClientFrame::Keepalive,
            ClientFrame::Release,
        ];
        for frame in frames {
            let bytes = encode_client(frame);
            assert_eq!(decode_client(&bytes), Ok(Some((frame, bytes.len()))));
            // Every strict prefix is incomplete, never an error.
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode_client(&bytes[..cut]),
                    Ok(None),
                    "{frame:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn hello_layout_is_big_endian() {
        let bytes = encode_client(ClientFrame::Hello {
            version: 1,
            timeout_ms: 1500,
        });
        assert_eq!(bytes, vec![b'H', 1, 0, 0, 0x05, 0xdc]);
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = [
            ServerFrame::Armed {
                version: PROTOCOL_VERSION,
                client_timeout_ms: 300,
                device_timeout_ms: 10_000,
                client_id: 7,
            },
            ServerFrame::KeepaliveAck,
            ServerFrame::Released,
            ServerFrame::Rejected(RejectReason::Fenced),
            ServerFrame::Rejected(RejectReason::Unknown(200)),
        ];
        for frame in frames {
            let bytes = encode_server(frame);
            assert!(bytes.len() <= MAX_SERVER_FRAME_LEN);
            assert_eq!(decode_server(&bytes), Ok(Some((frame, bytes.len()))));
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode_server(&bytes[..cut]),
                    Ok(None),
                    "{frame:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn reject_codes_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(RejectReason::from_code(code).code(), code);
        }
    }

    #[test]
    fn unknown_tags_are_errors() {
        assert_eq!(decode_client(&[0x7f]), Err(FrameError::UnknownTag(0x7f)));
        assert_eq!(decode_client(b"x"), Err(FrameError::UnknownTag(b'x')));
        assert_eq!(decode_server(&[0xff, 1]), Err(FrameError::UnknownTag(0xff)));
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let mut bytes = encode_client(ClientFrame::Keepalive);
        bytes.extend(encode_client(ClientFrame::Release));
        let (first, used) = decode_client(&bytes).unwrap().unwrap();
        assert_eq!(first, ClientFrame::Keepalive);
        let (second, _) = decode_client(&bytes[used..]).unwrap().unwrap();
        assert_eq!(second, ClientFrame::Release);
    }
}
