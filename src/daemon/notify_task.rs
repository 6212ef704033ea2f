//! The notification shell: on the Raft leader only, reads the event
//! history and the `notifications` document from the local replica,
//! lets the planner ([`crate::notify::plan`]) decide, sends
//! ([`super::notify_send`]) and writes each target's cursor through Raft
//! after a delivery.
//!
//! Exactly one node sends: the task starts sending only after the leader
//! confirmed its term with a quorum (so the previous leader's cursor
//! writes are applied here), confirms again before each round of sends,
//! and writes cursors with `write_here` (never forwarded) with CAS. A
//! crash between a send and its cursor write makes the next leader send
//! that event again: delivery is at least once, and `X-HA-Event-Id`
//! (`HA_EVENT_SEQ` for hooks) lets a receiver drop the duplicate.
//!
//! Steady state: a read of the local replica every [`POLL`], no write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::{ClusterStore, Command, DocKey, Outcome};
use tokio::task::JoinSet;

use super::crm_task::unix_ms;
use crate::crm::history::HaEvent;
use crate::notify::config::{cursor_doc, parse_doc, Cursor, Target, NOTIFY_DOC};
use crate::notify::event::Notice;
use crate::notify::plan::{Attempt, Step, TargetProgress, BACKOFF};

/// How often the leader looks for new events.
pub const POLL: Duration = Duration::from_millis(250);

/// Events delivered by this node.
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// Failed attempts (each retried later) by this node.
pub static FAILED_ATTEMPTS: AtomicU64 = AtomicU64::new(0);
/// Events a receiver refused for good (4xx), skipped.
pub static REJECTED: AtomicU64 = AtomicU64::new(0);
/// Events the history dropped (its cap) before they were delivered.
pub static LOST: AtomicU64 = AtomicU64::new(0);

/// Reads up to `limit` history events after `after` from the local
/// replica, oldest first.
fn events_after(store: &ClusterStore, after: u64, limit: usize) -> Vec<HaEvent> {
    super::history::events_after(store, after, limit)
}

/// The seq of the newest history event in the local replica (0: none):
/// a new target gets the events after it.
pub fn last_seq(store: &ClusterStore) -> u64 {
    super::history::read(store, &crate::crm::history::Filter::default(), 0)
        .next_seq
        .saturating_sub(1)
}

/// One target on this leader.
struct Tracked {
    progress: TargetProgress,
    /// Version of its cursor document (0: none yet).
    cursor_version: u64,
    /// An attempt is running.
    busy: bool,
}

/// State of one leader term.
#[derive(Default)]
struct Leading {
    targets: BTreeMap<String, Tracked>,
    /// The document could not be read (logged once).
    doc_error: Option<String>,
}

fn read_cursor(store: &ClusterStore, name: &str) -> (Cursor, u64) {
    let (text, version) = crate::api::docs::read_local_raw(store, &cursor_doc(name));
    if text.is_empty() {
        return (Cursor::default(), version);
    }
    match serde_json::from_str::<Cursor>(&text) {
        Ok(c) => (c, version),
        Err(e) => {
            // Starting over from start_after resends at most what came
            // after it; never skips.
            tracing::error!(target: "notify", target_name = name, "cursor unreadable ({e}): starting from the target's start");
            (Cursor::default(), version)
        }
    }
}

/// Result of one attempt: target, seq, outcome.
type Sent = (String, u64, Attempt);

/// Runs until aborted.
pub async fn run(store: ClusterStore, node: crate::domain::NodeName) {
    let mut lead: Option<Leading> = None;
    let mut sends: JoinSet<Sent> = JoinSet::new();
    loop {
        let finished = if sends.is_empty() {
            tokio::time::sleep(POLL).await;
            None
        } else {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => None,
                done = sends.join_next() => done.and_then(Result::ok),
            }
        };
        if !store.is_leader() {
            if lead.take().is_some() {
                tracing::info!(target: "notify", "no longer Raft leader: notifications stop here");
            }
            sends.abort_all();
            continue;
        }
        if lead.is_none() {
            // Confirms the term with a quorum: everything committed before
            // (the previous leader's cursor writes) is applied here.
            if store.expired_leases().await.is_err() {
                continue;
            }
            sends.abort_all();
            tracing::info!(target: "notify", "Raft leader: notifications are sent from this node");
            lead = Some(Leading::default());
        }
        let Some(state) = lead.as_mut() else { continue };
        let mut resync = false;
        if let Some((name, seq, attempt)) = finished {
            resync = !settle(&store, state, &name, seq, &attempt).await;
        }
        if !resync {
            resync = !round(&store, state, &mut sends, node.as_str()).await;
        }
        if resync {
            lead = None;
            sends.abort_all();
        }
    }
}

/// Takes one attempt's result; false when the cursor could not be written
/// (the term is over or someone else wrote it: start over).
async fn settle(
    store: &ClusterStore,
    state: &mut Leading,
    name: &str,
    seq: u64,
    attempt: &Attempt,
) -> bool {
    let Some(t) = state.targets.get_mut(name) else {
        return true;
    };
    t.busy = false;
    match t.progress.record(unix_ms(), seq, attempt, BACKOFF) {
        Step::Settled { seq, delivered } => {
            if delivered {
                DELIVERED.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "notify", target_name = name, seq, "event delivered");
            } else {
                REJECTED.fetch_add(1, Ordering::Relaxed);
                let why = match attempt {
                    Attempt::Rejected(why) => why.as_str(),
                    _ => "",
                };
                tracing::error!(target: "notify", target_name = name, seq, "the receiver refused the event ({why}): skipped");
            }
            match t.progress.cursor_write(true) {
                Some(cursor) => write_cursor(store, name, t, cursor).await,
                None => true,
            }
        }
        Step::RetryAt {
            seq,
            at_ms,
            failures,
        } => {
            FAILED_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
            let why = match attempt {
                Attempt::Retry(why) => why.as_str(),
                _ => "",
            };
            tracing::warn!(target: "notify", target_name = name, seq, failures, retry_in_ms = at_ms.saturating_sub(unix_ms()), "delivery failed: {why}");
            true
        }
        Step::Nothing => true,
    }
}

async fn write_cursor(store: &ClusterStore, name: &str, t: &mut Tracked, seq: u64) -> bool {
    let Ok(value) = serde_json::to_string(&Cursor { seq }) else {
        return false;
    };
    let written = store
        .write_here(Command::PutDoc {
            key: DocKey::Config(cursor_doc(name)),
            expected_version: Some(t.cursor_version),
            value,
        })
        .await;
    match written.map(|r| r.outcome) {
        Ok(Outcome::Written { version }) => {
            t.cursor_version = version;
            t.progress.cursor_written(seq);
            true
        }
        Ok(other) => {
            tracing::warn!(target: "notify", target_name = name, "cursor not written: {other:?}");
            false
        }
        Err(e) => {
            tracing::warn!(target: "notify", target_name = name, "cursor not written: {e}");
            false
        }
    }
}

/// One pass over the targets: read new events, write skip-only cursors,
/// start the attempts that are due. False when the term is over.
async fn round(
    store: &ClusterStore,
    state: &mut Leading,
    sends: &mut JoinSet<Sent>,
    me: &str,
) -> bool {
    let (text, _) = crate::api::docs::read_local_raw(store, NOTIFY_DOC);
    let doc = match parse_doc(&text) {
        Ok(d) => {
            state.doc_error = None;
            d
        }
        Err(e) => {
            if state.doc_error.as_deref() != Some(e.as_str()) {
                tracing::error!(target: "notify", "the {NOTIFY_DOC} document is unreadable ({e}): nothing is sent until it is fixed");
                state.doc_error = Some(e);
            }
            return true;
        }
    };
    let names: BTreeSet<&String> = doc.targets.keys().collect();
    state.targets.retain(|n, _| names.contains(n));
    let now_ms = unix_ms();
    let mut due: Vec<(String, Target, HaEvent)> = Vec::new();
    for (name, target) in &doc.targets {
        let t = state.targets.entry(name.clone()).or_insert_with(|| {
            let (cursor, cursor_version) = read_cursor(store, name);
            Tracked {
                progress: TargetProgress::resume(cursor.seq, target.start_after),
                cursor_version,
                busy: false,
            }
        });
        let limit = t.progress.fetch_limit();
        if limit > 0 {
            let events = events_after(store, t.progress.read_after(), limit);
            let admitted = t.progress.admit(target, &events);
            if let Some(lost) = admitted.lost {
                LOST.fetch_add(lost.count(), Ordering::Relaxed);
                tracing::error!(
                    target: "notify",
                    target_name = %name,
                    first = lost.first,
                    last = lost.last,
                    "{} history events were dropped (history cap) before this target got them; they are not sent",
                    lost.count()
                );
            }
        }
        if let Some(cursor) = t.progress.cursor_write(false) {
            if !write_cursor(store, name, t, cursor).await {
                return false;
            }
        }
        if t.busy {
            continue;
        }
        if let Some(ev) = t.progress.due(now_ms) {
            due.push((name.clone(), target.clone(), ev.clone()));
        }
    }
    if due.is_empty() {
        return true;
    }
    // Only a leader a quorum still follows sends.
    if store.expired_leases().await.is_err() {
        return false;
    }
    for (name, target, ev) in due {
        if let Some(t) = state.targets.get_mut(&name) {
            t.busy = true;
        }
        let me = me.to_string();
        sends.spawn(async move {
            let notice = Notice::of(&ev);
            let attempt = super::notify_send::deliver(&name, &target, &notice, &me).await;
            (name, ev.seq, attempt)
        });
    }
    true
}
