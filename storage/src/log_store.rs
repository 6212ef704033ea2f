//! The Raft log, vote and commit index in a sled tree.
//!
//! Every mutating call flushes sled before it returns (or before it reports
//! the append as flushed to openraft), because sled on its own only syncs
//! every 500 ms and an acknowledged entry must survive `kill -9`.
//!
//! Appends use group commit: `append` writes the entries into sled and hands
//! openraft's flush callback to a dedicated flusher thread, which drains all
//! pending callbacks, runs one fsync covering all of them, then reports
//! them, in order. openraft treats entries as persisted only once their
//! callback fired, and its core loop is not blocked by the fsync.

use std::fmt::Debug;
use std::io::Cursor;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};

use crate::codec;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// sled-backed [`RaftLogStorage`]; cheap to clone (all clones share the tree
/// and the flusher thread, which ends when the last clone is dropped).
pub struct SledLogStore<C: RaftTypeConfig> {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: Arc<Flusher<C>>,
    _c: PhantomData<C>,
}

/// The flusher thread and its queue. Dropping the last handle closes the
/// queue and joins the thread, so the database is closed (and its lock
/// released) when the store is dropped.
struct Flusher<C: RaftTypeConfig> {
    queue: Option<mpsc::Sender<LogFlushed<C>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<C: RaftTypeConfig> Drop for Flusher<C> {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("raft log flusher thread panicked");
            }
        }
    }
}

impl<C: RaftTypeConfig> Clone for SledLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            flusher: self.flusher.clone(),
            _c: PhantomData,
        }
    }
}

/// Group commit: waits for pending append callbacks, fsyncs once for all of
/// them, then reports them in order.
fn run_flusher<C: RaftTypeConfig>(db: sled::Db, pending: mpsc::Receiver<LogFlushed<C>>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        batch.extend(pending.try_iter());
        let result = db.flush().map(|_| ());
        if let Err(e) = &result {
            tracing::error!(error = %e, "flushing the raft log failed");
        }
        for callback in batch {
            let report = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(report);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl<C> SledLogStore<C>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    /// Opens (or creates) the log trees in an already opened sled database.
    pub fn new(db: sled::Db) -> Result<Self, sled::Error> {
        let log = db.open_tree("raft_log")?;
        let meta = db.open_tree("raft_meta")?;
        let (queue, pending) = mpsc::channel();
        let flush_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || run_flusher::<C>(flush_db, pending))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            db,
            log,
            meta,
            flusher: Arc::new(Flusher {
                queue: Some(queue),
                thread: Some(thread),
            }),
            _c: PhantomData,
        })
    }

    /// Disaster recovery: makes `id` the only voter, with the whole local
    /// log kept (etcd's `--force-new-cluster`, Proxmox's `pvecm expected
    /// 1` made permanent). Appends one membership entry `{id: node}` after
    /// the last entry, in a term above every term seen, and records a vote
    /// for `id` in that term; at its next start the node elects itself
    /// and commits everything it has. Only for a cluster whose majority is
    /// lost for good: if the others come back they must not rejoin with
    /// their old logs. Must run while no Raft node uses the database.
    /// Returns the term and index of the new membership entry.
    pub fn force_single_member(
        &self,
        id: C::NodeId,
        node: C::Node,
    ) -> Result<(u64, u64), StorageIOError<C::NodeId>> {
        let last_purged: Option<LogId<C::NodeId>> =
            self.read_meta(KEY_LAST_PURGED, "last purged log id")?;
        let last = self.last_entry_log_id()?.or(last_purged);
        let vote: Option<Vote<C::NodeId>> = self.read_meta(KEY_VOTE, "vote")?;
        let seen_term = vote
            .map(|v| v.leader_id().get_term())
            .unwrap_or(0)
            .max(last.as_ref().map_or(0, |l| l.leader_id.term));
        let term = seen_term + 1;
        let index = last.as_ref().map_or(0, |l| l.index + 1);
        let membership = openraft::Membership::new(
            vec![std::collections::BTreeSet::from([id.clone()])],
            std::collections::BTreeMap::from([(id.clone(), node)]),
        );
        let entry: Entry<C> = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, id.clone()), index),
            payload: openraft::EntryPayload::Membership(membership),
        };
        let bytes = codec::encode("log entry", &entry).map_err(|e| StorageIOError::write(&e))?;
        self.log
            .insert(index_key(index), bytes)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.write_meta(KEY_VOTE, "vote", &Vote::new(term, id))?;
        self.db.flush().map_err(|e| StorageIOError::write(&e))?;
        Ok((term, index))
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static [u8],
        what: &'static str,
    ) -> Result<Option<T>, StorageIOError<C::NodeId>> {
        let raw = self.meta.get(key).map_err(|e| StorageIOError::read(&e))?;
        match raw {
            None => Ok(None),
            Some(raw) => codec::decode(what, &raw)
                .map(Some)
                .map_err(|e| StorageIOError::read(&e)),
        }
    }

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static [u8],
        what: &'static str,
        value: &T,
    ) -> Result<(), StorageIOError<C::NodeId>> {
        let bytes = codec::encode(what, value).map_err(|e| StorageIOError::write(&e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    fn decode_entry(index: u64, raw: &[u8]) -> Result<Entry<C>, StorageIOError<C::NodeId>> {
        codec::decode("log entry", raw).map_err(|e| StorageIOError::read_log_at_index(index, &e))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<C::NodeId>>, StorageIOError<C::NodeId>> {
        match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            None => Ok(None),
            Some((key, raw)) => {
                let index = decode_index(&key)?;
                Ok(Some(Self::decode_entry(index, &raw)?.get_log_id().clone()))
            }
        }
    }

    fn remove_range(&self, from: Bound<u64>, to: Bound<u64>) -> Result<(), sled::Error> {
        let range = (from.map(index_key), to.map(index_key));
        let mut batch = sled::Batch::default();
        for item in self.log.range(range) {
            let (key, _) = item?;
            batch.remove(key);
        }
        self.log.apply_batch(batch)
    }
}

fn decode_index<NID: openraft::NodeId>(key: &[u8]) -> Result<u64, StorageIOError<NID>> {
    let arr: [u8; 8] = key.try_into().map_err(|_| {
        StorageIOError::read_logs(&std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("log key has {} bytes, expected 8", key.len()),
        ))
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn io<NID: openraft::NodeId>(e: StorageIOError<NID>) -> StorageError<NID> {
    StorageError::IO { source: e }
}

impl<C> RaftLogReader<C> for SledLogStore<C>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
        let start = range.start_bound().map(|i| index_key(*i));
        let end = range.end_bound().map(|i| index_key(*i));
        let mut out = Vec::new();
        for item in self.log.range((start, end)) {
            let (key, raw) = item.map_err(|e| io(StorageIOError::read_logs(&e)))?;
            let index = decode_index(&key).map_err(io)?;
            out.push(Self::decode_entry(index, &raw).map_err(io)?);
        }
        Ok(out)
    }
}

impl<C> RaftLogStorage<C> for SledLogStore<C>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id: Option<LogId<C::NodeId>> = self
            .read_meta(KEY_LAST_PURGED, "last purged log id")
            .map_err(io)?;
        let last_log_id = self
            .last_entry_log_id()
            .map_err(io)?
            .or(last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.write_meta(KEY_VOTE, "vote", vote).map_err(io)?;
        self.flush()
            .await
            .map_err(|e| io(StorageIOError::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(KEY_VOTE, "vote").map_err(io)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Not flushed here: the commit index is only a hint that lets a
        // restarted node re-apply its committed tail before it hears from a
        // leader. Every acknowledged entry is already flushed in the logs
        // of a quorum, so it is committed again after any restart; the
        // index reaches disk with the next flushed append.
        self.write_meta(KEY_COMMITTED, "committed log id", &committed)
            .map_err(io)
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        let stored: Option<Option<LogId<C::NodeId>>> = self
            .read_meta(KEY_COMMITTED, "committed log id")
            .map_err(io)?;
        Ok(stored.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            let bytes = codec::encode("log entry", &entry)
                .map_err(|e| io(StorageIOError::write_log_entry(log_id.clone(), &e)))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(StorageIOError::write_logs(&e)))?;
        // The flusher reports the entries as persisted once an fsync that
        // started after this write has completed.
        let queued = match &self.flusher.queue {
            Some(queue) => queue.send(callback),
            None => Err(mpsc::SendError(callback)),
        };
        if let Err(mpsc::SendError(callback)) = queued {
            // The flusher thread is gone (it only stops when every handle
            // is dropped, so this is unexpected): flush inline instead.
            let flushed = self.flush().await;
            let report = match &flushed {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(report);
            flushed.map_err(|e| io(StorageIOError::write_logs(&e)))?;
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "truncating raft log");
        self.remove_range(Bound::Included(log_id.index), Bound::Unbounded)
            .map_err(|e| io(StorageIOError::write_logs(&e)))?;
        self.flush()
            .await
            .map_err(|e| io(StorageIOError::write_logs(&e)))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "purging raft log");
        // Record the purge point first: if we crash half way, the log state
        // still reports a consistent last purged id.
        self.write_meta(KEY_LAST_PURGED, "last purged log id", &log_id)
            .map_err(io)?;
        self.flush()
            .await
            .map_err(|e| io(StorageIOError::write_logs(&e)))?;
        self.remove_range(Bound::Unbounded, Bound::Included(log_id.index))
            .map_err(|e| io(StorageIOError::write_logs(&e)))?;
        self.flush()
            .await
            .map_err(|e| io(StorageIOError::write_logs(&e)))
    }
}
