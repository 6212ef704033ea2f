//! Generic state-machine store: applied position, membership and snapshots in
//! sled, application state in memory behind a lock that readers can share.
//!
//! Durability of applied state: the application state lives in memory and is
//! written to sled whenever a snapshot is built or installed. Everything
//! applied after the last snapshot is in the (flushed) log, and the commit
//! index is flushed before openraft applies, so on restart openraft replays
//! the committed tail into the restored state. Nothing acknowledged is lost
//! and the log is only purged up to a snapshot that is already on disk.

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, RaftTypeConfig, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};

const KEY_SNAPSHOT: &[u8] = b"current_snapshot";

/// The application logic driven by [`SledStateMachine`].
///
/// `apply` must be deterministic: given the same sequence of entries every
/// replica must reach the same replicated state and return the same
/// responses. Node-local, non-replicated data (for example a leader's lease
/// deadlines) may live in the same value but must not influence responses.
/// The application never reads a clock: the state machine passes the
/// monotonic time at which it applies each batch.
pub trait Application<C: RaftTypeConfig>: Send + Sync + 'static {
    /// Applies one committed entry (blank, membership or application
    /// data) at local time `now`.
    fn apply(
        &mut self,
        log_id: &LogId<C::NodeId>,
        payload: &EntryPayload<C>,
        now: std::time::Instant,
    ) -> C::R;

    /// Serializes the replicated state (with its own format version).
    fn to_snapshot(&self) -> Result<Vec<u8>, CodecError>;

    /// Replaces the replicated state with a snapshot made by `to_snapshot`,
    /// at local time `now`. On error the current state must be left
    /// unchanged.
    fn restore(&mut self, snapshot: &[u8], now: std::time::Instant) -> Result<(), CodecError>;
}

/// State machine contents shared between the store and local readers.
pub struct SmState<C: RaftTypeConfig, A> {
    /// Last log id applied to `app`.
    pub last_applied: Option<LogId<C::NodeId>>,
    /// Last membership config applied.
    pub last_membership: StoredMembership<C::NodeId, C::Node>,
    /// The application state.
    pub app: A,
}

/// A cloneable read handle to the state machine, for local reads.
pub struct SmHandle<C: RaftTypeConfig, A> {
    inner: Arc<RwLock<SmState<C, A>>>,
}

impl<C: RaftTypeConfig, A> Clone for SmHandle<C, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig, A> SmHandle<C, A> {
    /// Locks the state for reading. A poisoned lock is recovered: apply
    /// never leaves the state half-updated across a panic point we own.
    pub fn read(&self) -> RwLockReadGuard<'_, SmState<C, A>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the state for writing (node-local fields only; replicated
    /// state must change only through apply).
    pub fn write(&self) -> RwLockWriteGuard<'_, SmState<C, A>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct StoredSnapshot<C: RaftTypeConfig> {
    meta: SnapshotMeta<C::NodeId, C::Node>,
    data: Vec<u8>,
}

/// Why the state machine store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// The stored snapshot could not be decoded or restored.
    #[error("stored snapshot is unreadable: {0}")]
    Snapshot(#[from] CodecError),
}

/// sled-backed [`RaftStateMachine`] around an [`Application`].
pub struct SledStateMachine<C: RaftTypeConfig, A> {
    db: sled::Db,
    tree: sled::Tree,
    state: SmHandle<C, A>,
    snapshot_counter: Arc<AtomicU64>,
    _c: PhantomData<C>,
}

impl<C, A> SledStateMachine<C, A>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    A: Application<C>,
{
    /// Opens the state machine in `db`, restoring `app` from the stored
    /// snapshot if there is one.
    pub fn new(db: sled::Db, mut app: A) -> Result<Self, OpenError> {
        let tree = db.open_tree("state_machine")?;
        let mut last_applied = None;
        let mut last_membership = StoredMembership::default();
        if let Some(raw) = tree.get(KEY_SNAPSHOT)? {
            let stored: StoredSnapshot<C> = codec::decode("snapshot", &raw)?;
            app.restore(&stored.data, std::time::Instant::now())?;
            last_applied = stored.meta.last_log_id;
            last_membership = stored.meta.last_membership;
        }
        Ok(Self {
            db,
            tree,
            state: SmHandle {
                inner: Arc::new(RwLock::new(SmState {
                    last_applied,
                    last_membership,
                    app,
                })),
            },
            snapshot_counter: Arc::new(AtomicU64::new(0)),
            _c: PhantomData,
        })
    }

    /// A handle for local reads of the applied state.
    pub fn handle(&self) -> SmHandle<C, A> {
        self.state.clone()
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot<C>>, StorageError<C::NodeId>> {
        let raw = self
            .tree
            .get(KEY_SNAPSHOT)
            .map_err(|e| io(StorageIOError::read_snapshot(None, &e)))?;
        match raw {
            None => Ok(None),
            Some(raw) => codec::decode("snapshot", &raw)
                .map(Some)
                .map_err(|e| io(StorageIOError::read_snapshot(None, &e))),
        }
    }

    async fn store_snapshot(
        &self,
        stored: &StoredSnapshot<C>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let sig = Some(stored.meta.signature());
        let bytes = codec::encode("snapshot", stored)
            .map_err(|e| io(StorageIOError::write_snapshot(sig.clone(), &e)))?;
        self.tree
            .insert(KEY_SNAPSHOT, bytes)
            .map_err(|e| io(StorageIOError::write_snapshot(sig.clone(), &e)))?;
        self.db
            .flush_async()
            .await
            .map_err(|e| io(StorageIOError::write_snapshot(sig, &e)))?;
        Ok(())
    }
}

fn io<NID: openraft::NodeId>(e: StorageIOError<NID>) -> StorageError<NID> {
    StorageError::IO { source: e }
}

/// Builds snapshots from a [`SledStateMachine`].
pub struct SledSnapshotBuilder<C: RaftTypeConfig, A> {
    sm: SledStateMachine<C, A>,
}

impl<C: RaftTypeConfig, A> SledStateMachine<C, A> {
    fn shallow_clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            tree: self.tree.clone(),
            state: self.state.clone(),
            snapshot_counter: self.snapshot_counter.clone(),
            _c: PhantomData,
        }
    }
}

impl<C, A> RaftSnapshotBuilder<C> for SledSnapshotBuilder<C, A>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    A: Application<C>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let (data, last_applied, last_membership) = {
            let state = self.sm.state.read();
            let data = state
                .app
                .to_snapshot()
                .map_err(|e| io(StorageIOError::write_snapshot(None, &e)))?;
            (
                data,
                state.last_applied.clone(),
                state.last_membership.clone(),
            )
        };
        let n = self.sm.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, n),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot::<C> { meta, data };
        self.sm.store_snapshot(&stored).await?;
        tracing::debug!(snapshot = %stored.meta.snapshot_id, bytes = stored.data.len(), "built snapshot");
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl<C, A> RaftStateMachine<C> for SledStateMachine<C, A>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    A: Application<C>,
{
    type SnapshotBuilder = SledSnapshotBuilder<C, A>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let state = self.state.read();
        Ok((state.last_applied.clone(), state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write();
        let mut responses = Vec::new();
        // The shell's clock, read once per batch and handed to the
        // application (which never reads one itself).
        let now = std::time::Instant::now();
        for entry in entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                state.last_membership =
                    StoredMembership::new(Some(entry.log_id.clone()), m.clone());
            }
            let response = state.app.apply(&entry.log_id, &entry.payload, now);
            state.last_applied = Some(entry.log_id);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SledSnapshotBuilder {
            sm: self.shallow_clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let data = snapshot.into_inner();
        {
            let mut state = self.state.write();
            state
                .app
                .restore(&data, std::time::Instant::now())
                .map_err(|e| io(StorageIOError::read_snapshot(Some(meta.signature()), &e)))?;
            state.last_applied = meta.last_log_id.clone();
            state.last_membership = meta.last_membership.clone();
        }
        let stored = StoredSnapshot::<C> {
            meta: meta.clone(),
            data,
        };
        self.store_snapshot(&stored).await?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        Ok(self.load_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
