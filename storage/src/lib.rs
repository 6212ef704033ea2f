//! sled-backed persistence for openraft 0.9 (storage-v2 API).
//!
//! - [`SledLogStore`]: the Raft log, vote and commit index
//!   ([`openraft::storage::RaftLogStorage`]).
//! - [`SledStateMachine`]: applied position, membership and snapshots around
//!   an application-provided [`Application`]
//!   ([`openraft::storage::RaftStateMachine`]).
//!
//! Everything on disk is postcard with a leading format-version byte
//! ([`codec`]); unreadable records are errors, never panics. Every mutation
//! is flushed to disk before it is acknowledged.

// openraft's StorageError/RaftError types are large and are imposed by its
// traits; boxing them at every internal helper would only add noise.
#![allow(clippy::result_large_err)]

pub mod codec;
mod log_store;
mod state_machine;

use std::io::Cursor;
use std::path::Path;

pub use log_store::SledLogStore;
use openraft::{Entry, RaftTypeConfig};
pub use state_machine::{
    Application, OpenError, SledSnapshotBuilder, SledStateMachine, SmHandle, SmState,
};

/// Opens (or creates) a sled database at `path` and returns the log store
/// and state machine sharing it.
pub fn open<C, A>(
    path: &Path,
    app: A,
) -> Result<(SledLogStore<C>, SledStateMachine<C, A>), OpenError>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    A: Application<C>,
{
    let db = sled::Config::new()
        .path(path)
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let log = SledLogStore::new(db.clone())?;
    let sm = SledStateMachine::new(db, app)?;
    Ok((log, sm))
}
