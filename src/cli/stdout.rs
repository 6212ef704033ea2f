//! Writing command output to stdout without panicking on a closed pipe.
//!
//! `println!` panics when stdout is a pipe whose reader went away
//! (`ha-manager status | head -1`): Rust ignores SIGPIPE, so the write
//! fails with `EPIPE` and the macro turns that into a panic (exit 101).
//! Every verb writes through [`write`] instead, and the entry points treat
//! a closed pipe as the end of the output: a quiet, successful exit, as a
//! C tool killed by SIGPIPE would end without a message.

use std::io::{self, Write};

/// Writes `text` to stdout and flushes it, so an `EPIPE` surfaces here as
/// an error rather than later in a destructor.
pub fn write(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` and a newline to stdout (see [`write`]).
pub fn line(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Whether `error` (or anything in its chain) is a write to a closed pipe:
/// the reader has all it wanted, so the command ends quietly.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
