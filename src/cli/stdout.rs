//! Writing command output to stdout without panicking on a closed pipe.
//!
//! `println!` panics when stdout is a pipe whose reader went away
//! (`ha-manager status | head -1`): Rust ignores SIGPIPE, so the write
//! fails with `EPIPE` and the macro turns that into a panic (exit 101).
//! Every verb writes through [`write`] instead, and the entry points treat
//! [`OutputError::ClosedPipe`] as the end of the output: a quiet,
//! successful exit, as a C tool killed by SIGPIPE ends without a message.
//! Only a failed write to stdout counts: a broken connection to the daemon
//! is an error like any other.

use std::io::{self, Write};

/// A failed write of command output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader closed the pipe: it has all it wanted.
    #[error("stdout was closed by its reader")]
    ClosedPipe,
    /// Any other write error (a full disk, ...).
    #[error("cannot write to stdout: {0}")]
    Io(#[source] io::Error),
}

/// Writes `text` to stdout and flushes it, so an `EPIPE` surfaces here
/// rather than later in a destructor.
pub fn write(text: &str) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => OutputError::ClosedPipe,
            _ => OutputError::Io(e),
        })
}

/// Whether `error` is a write of command output to a closed pipe.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<OutputError>(),
        Some(OutputError::ClosedPipe)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_counts_as_the_end_of_the_output() {
        let closed = anyhow::Error::new(OutputError::ClosedPipe);
        assert!(is_closed_pipe(&closed));
        assert!(is_closed_pipe(&closed.context("printing the status")));
        // A connection to the daemon that broke is a real error.
        let socket = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_closed_pipe(&socket));
        let full = anyhow::Error::new(OutputError::Io(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_closed_pipe(&full));
    }
}
