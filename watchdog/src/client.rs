//! The blocking watchdog-mux client, used by the LRM.
//!
//! ```no_run
//! use std::time::Duration;
//! use watchdog::WatchdogClient;
//! # fn main() -> Result<(), watchdog::ClientError> {
//! let mut client = WatchdogClient::connect("/run/watchdog-mux.sock".as_ref(), Duration::from_secs(5))?;
//! client.keepalive()?; // after every acknowledged lease renewal
//! client.release()?;   // clean disarm; dropping an armed client resets the node
//! # Ok(()) }
//! ```

use crate::protocol::{
    decode_server, encode_client, ClientFrame, RejectReason, ServerFrame, MAX_SERVER_FRAME_LEN,
    PROTOCOL_VERSION,
};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Longest wait for a reply of the mux.
const MAX_REPLY_WAIT: Duration = Duration::from_secs(5);

/// Errors of the watchdog client.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The timeout does not fit the protocol (whole ms, 1..=u32::MAX).
    #[error("watchdog client timeout {0:?} is not between 1 ms and {max} ms", max = u32::MAX)]
    InvalidTimeout(Duration),
    /// The socket could not be reached.
    #[error("cannot connect to watchdog-mux at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("watchdog-mux connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// The mux did not answer in time.
    #[error("watchdog-mux did not answer within {0:?}")]
    Timeout(Duration),
    /// The mux closed the connection.
    #[error("watchdog-mux closed the connection")]
    Closed,
    /// The mux refused the request.
    #[error("watchdog-mux rejected the request: {0}")]
    Rejected(RejectReason),
    /// The mux sent bytes that are not the expected reply.
    #[error("watchdog-mux sent an unexpected reply: {0}")]
    UnexpectedReply(String),
}

/// An armed connection to watchdog-mux.
///
/// Dropping it without [`WatchdogClient::release`] closes the connection
/// uncleanly, which makes the mux fence the node: that is deliberate, a
/// crashing LRM must lead to a reset.
#[derive(Debug)]
pub struct WatchdogClient {
    stream: UnixStream,
    client_timeout: Duration,
    device_timeout: Duration,
    id: u32,
}

impl WatchdogClient {
    /// Connects and arms with the given client timeout (rounded down to
    /// whole milliseconds). From the moment this returns, `keepalive` must
    /// be called within `timeout`.
    pub fn connect(socket_path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        // Whole milliseconds, rounded down: a shorter timeout only makes
        // the reset come earlier, never later.
        let timeout_ms = u32::try_from(timeout.as_millis())
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or(ClientError::InvalidTimeout(timeout))?;
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let stream = UnixStream::connect(socket_path).map_err(|source| ClientError::Connect {
            path: socket_path.to_path_buf(),
            source,
        })?;
        let wait = timeout.min(MAX_REPLY_WAIT);
        stream
            .set_read_timeout(Some(wait))
            .map_err(ClientError::Io)?;
        stream
            .set_write_timeout(Some(wait))
            .map_err(ClientError::Io)?;
        let mut client = WatchdogClient {
            stream,
            client_timeout: timeout,
            device_timeout: Duration::ZERO,
            id: 0,
        };
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            timeout_ms,
        };
        match client.request(hello)? {
            ServerFrame::Armed {
                version,
                client_timeout_ms,
                device_timeout_ms,
                client_id,
            } if version == PROTOCOL_VERSION && client_timeout_ms == timeout_ms => {
                client.device_timeout = Duration::from_millis(u64::from(device_timeout_ms));
                client.id = client_id;
                Ok(client)
            }
            other => Err(ClientError::UnexpectedReply(format!("{other:?} to Hello"))),
        }
    }

    /// Moves this client's deadline to now + its timeout.
    pub fn keepalive(&mut self) -> Result<(), ClientError> {
        match self.request(ClientFrame::Keepalive)? {
            ServerFrame::KeepaliveAck => Ok(()),
            other => Err(ClientError::UnexpectedReply(format!(
                "{other:?} to Keepalive"
            ))),
        }
    }

    /// Disarms cleanly: sends the magic byte, waits for the mux to confirm,
    /// and closes the connection.
    pub fn release(mut self) -> Result<(), ClientError> {
        match self.request(ClientFrame::Release)? {
            ServerFrame::Released => Ok(()),
            other => Err(ClientError::UnexpectedReply(format!(
                "{other:?} to Release"
            ))),
        }
    }

    /// The client timeout the mux enforces (whole milliseconds).
    pub fn client_timeout(&self) -> Duration {
        self.client_timeout
    }

    /// The mux's device timeout: the node resets at most this long after
    /// the mux stops feeding the device. The daemon checks it against its
    /// timing profile (`lease::TimingProfile::check_mux_device_timeout`).
    pub fn device_timeout(&self) -> Duration {
        self.device_timeout
    }

    /// The id the mux uses for this client in its logs.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends one frame and reads one reply; a rejection becomes an error.
    fn request(&mut self, frame: ClientFrame) -> Result<ServerFrame, ClientError> {
        if let Err(err) = self.stream.write_all(&encode_client(frame)) {
            // The mux may have sent a rejection and closed before our write:
            // report that rejection rather than the broken pipe.
            return Err(match self.read_reply() {
                Err(rejected @ ClientError::Rejected(_)) => rejected,
                _ => self.io_error(err),
            });
        }
        self.read_reply()
    }

    /// Reads one reply; a rejection becomes an error.
    fn read_reply(&mut self) -> Result<ServerFrame, ClientError> {
        let mut buffer = [0u8; MAX_SERVER_FRAME_LEN];
        let mut filled = 0;
        loop {
            match decode_server(&buffer[..filled]) {
                Ok(Some((ServerFrame::Rejected(reason), _))) => {
                    return Err(ClientError::Rejected(reason))
                }
                Ok(Some((reply, _))) => return Ok(reply),
                Ok(None) => {}
                Err(err) => return Err(ClientError::UnexpectedReply(err.to_string())),
            }
            match self.stream.read(&mut buffer[filled..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(len) => filled += len,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(self.io_error(err)),
            }
        }
    }

    fn io_error(&self, err: std::io::Error) -> ClientError {
        match err.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                ClientError::Timeout(self.client_timeout.min(MAX_REPLY_WAIT))
            }
            _ => ClientError::Io(err),
        }
    }
}
