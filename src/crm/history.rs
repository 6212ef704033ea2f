//! The event history: what the CRM decided that a person wants to read
//! after a failover ("what happened, in what order, and why"), as bounded,
//! versioned entries in the replicated store.
//!
//! The CRM core emits [`HaEvent`]s as [`CrmStep::Event`](super::CrmStep)
//! in the order it decides; the shell numbers them and persists them with
//! the round's other writes, so an event exists exactly when the round that
//! made it committed. Both shells store them the same way, through
//! [`plan_append`]: chunks of [`CHUNK_EVENTS`] events, the last
//! [`KEEP_CHUNKS`] kept ([`CAP`] events; the oldest are dropped first).
//!
//! Nothing here reads a clock: event times are the round's `now`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::explain::Decision;

/// Format version of a stored history chunk. A reader refuses another one
/// (it fails closed: no history shown rather than a wrong one).
pub const HISTORY_FORMAT: u32 = 1;

/// Events per stored chunk (one document): small enough that appending to
/// the current chunk rewrites little.
pub const CHUNK_EVENTS: u64 = 100;

/// Chunks kept; older ones are deleted in the same write that starts a
/// new one.
pub const KEEP_CHUNKS: u64 = 50;

/// The most events the history holds.
pub const CAP: u64 = CHUNK_EVENTS * KEEP_CHUNKS;

/// Prefix of the chunk documents (`history/<chunk, 12 digits>`).
pub const CHUNK_PREFIX: &str = "history/";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A node's CRM became master (it manages from now on).
    Master,
    /// A node changed state (`online`, `unknown`, `fence`, `maintenance`,
    /// `gone`).
    NodeState,
    /// A node's agent lease was taken over: the node is fenced (its
    /// watchdog reset it, or it released its lease), its services may now
    /// be recovered.
    Fenced,
    /// A service changed state.
    ServiceState,
    /// A new service was placed on a node.
    Placement,
    /// A service of a fenced node was recovered to another node.
    Recovery,
    /// A service is migrated (live) to another node.
    Migrate,
    /// A service is relocated (stop, move, start) to another node.
    Relocate,
    /// A service failed to start on a node.
    StartFailure,
    /// A service entered the error state, or the CRM could not do what it
    /// had to (no recovery node).
    Error,
    /// A command from the queue (`migrate`, `stop`, maintenance, ...),
    /// with the token that issued it.
    Command,
    /// HA was disarmed.
    Disarm,
    /// HA was armed again.
    Arm,
}

impl EventKind {
    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Master => "master",
            EventKind::NodeState => "node_state",
            EventKind::Fenced => "fenced",
            EventKind::ServiceState => "service_state",
            EventKind::Placement => "placement",
            EventKind::Recovery => "recovery",
            EventKind::Migrate => "migrate",
            EventKind::Relocate => "relocate",
            EventKind::StartFailure => "start_failure",
            EventKind::Error => "error",
            EventKind::Command => "command",
            EventKind::Disarm => "disarm",
            EventKind::Arm => "arm",
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaEvent {
    /// Position in the history, from 1, gap-free; 0 until the shell
    /// stored it.
    pub seq: u64,
    /// The CRM round's time, Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The node it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The service it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The state (or node) before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The state (or node) after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Who asked for it (the API token id of a command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// One line for a person.
    pub message: String,
    /// Why the CRM chose this node (placements, recoveries and the moves
    /// it made itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

impl HaEvent {
    /// An event of `kind` at `time_ms` with only a message.
    pub fn new(time_ms: u64, kind: EventKind, message: impl Into<String>) -> Self {
        HaEvent {
            seq: 0,
            time_ms,
            kind,
            node: None,
            sid: None,
            from: None,
            to: None,
            actor: None,
            message: message.into(),
            decision: None,
        }
    }

    /// Sets the node.
    pub fn node(mut self, node: impl ToString) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// Sets the service.
    pub fn sid(mut self, sid: impl ToString) -> Self {
        self.sid = Some(sid.to_string());
        self
    }

    /// Sets the states (or nodes) before and after.
    pub fn change(mut self, from: impl ToString, to: impl ToString) -> Self {
        self.from = Some(from.to_string());
        self.to = Some(to.to_string());
        self
    }

    /// Sets the state (or node) after only.
    pub fn to(mut self, to: impl ToString) -> Self {
        self.to = Some(to.to_string());
        self
    }

    /// Sets who asked for it.
    pub fn actor(mut self, actor: Option<&str>) -> Self {
        self.actor = actor.map(str::to_string);
        self
    }

    /// Attaches the placement decision.
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }
}

/// One stored chunk (the document `history/<chunk>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// [`HISTORY_FORMAT`].
    pub format: u32,
    /// Events in sequence order.
    pub events: Vec<HaEvent>,
}

/// A chunk document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Not JSON of the chunk's shape.
    #[error("history chunk '{key}' is not readable: {reason}")]
    Malformed {
        /// The document name.
        key: String,
        /// The parser's message.
        reason: String,
    },
    /// Written by another format version.
    #[error("history chunk '{key}' has format {found}, this build reads {HISTORY_FORMAT}")]
    Format {
        /// The document name.
        key: String,
        /// The version found.
        found: u32,
    },
}

impl Chunk {
    /// Parses a stored chunk; another format version is refused.
    pub fn parse(key: &str, text: &str) -> Result<Chunk, ChunkError> {
        let chunk: Chunk = serde_json::from_str(text).map_err(|e| ChunkError::Malformed {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        if chunk.format != HISTORY_FORMAT {
            return Err(ChunkError::Format {
                key: key.to_string(),
                found: chunk.format,
            });
        }
        Ok(chunk)
    }
}

/// How a queued CRM command names the API token that issued it:
/// `<command> #by <token id>`. The CRM records the id with the command in
/// the history; Proxmox's command words are unchanged.
pub const ACTOR_MARK: &str = " #by ";

/// A queued command line carrying the token id that issued it.
pub fn command_with_actor(command: &str, actor: &str) -> String {
    format!("{command}{ACTOR_MARK}{actor}")
}

/// Splits a queued command line into the command and the issuer, if the
/// line names one.
pub fn split_command_actor(line: &str) -> (&str, Option<&str>) {
    match line.rsplit_once(ACTOR_MARK) {
        Some((command, actor)) if !actor.trim().is_empty() => (command, Some(actor.trim())),
        _ => (line, None),
    }
}

/// The chunk an event of `seq` belongs to.
pub fn chunk_of(seq: u64) -> u64 {
    seq / CHUNK_EVENTS
}

/// The document name of a chunk; zero-padded so names sort by number.
pub fn chunk_key(chunk: u64) -> String {
    format!("{CHUNK_PREFIX}{chunk:012}")
}

/// The chunk number of a document name, if it is a chunk.
pub fn chunk_number(key: &str) -> Option<u64> {
    key.strip_prefix(CHUNK_PREFIX)?.parse().ok()
}

/// What to write to append events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendPlan {
    /// Chunks to write whole (number, content), oldest first.
    pub put: Vec<(u64, Chunk)>,
    /// Chunks to delete (too old to keep).
    pub delete: Vec<u64>,
    /// The sequence number the next event gets.
    pub next_seq: u64,
}

/// Numbers `new` from `next_seq` on and plans the writes that append them
/// to the history whose newest chunk holds `tail` (the events of
/// `chunk_of(next_seq)` stored so far) and whose oldest kept chunk is
/// `oldest` (`None`: the history is empty). Only chunks that survive the
/// cap are written, so a burst of any size writes at most [`KEEP_CHUNKS`]
/// chunks; every chunk older than the kept window is deleted.
pub fn plan_append(
    next_seq: u64,
    tail: Vec<HaEvent>,
    oldest: Option<u64>,
    new: Vec<HaEvent>,
) -> AppendPlan {
    let next_seq = next_seq.max(1);
    let mut plan = AppendPlan {
        next_seq,
        ..AppendPlan::default()
    };
    if new.is_empty() {
        return plan;
    }
    let last_seq = next_seq + new.len() as u64 - 1;
    let last_chunk = chunk_of(last_seq);
    let first_kept = last_chunk.saturating_sub(KEEP_CHUNKS - 1);
    let mut chunks: BTreeMap<u64, Chunk> = BTreeMap::new();
    if chunk_of(next_seq) >= first_kept {
        chunks.insert(
            chunk_of(next_seq),
            Chunk {
                format: HISTORY_FORMAT,
                events: tail,
            },
        );
    }
    for (i, mut event) in new.into_iter().enumerate() {
        let seq = next_seq + i as u64;
        let chunk = chunk_of(seq);
        if chunk < first_kept {
            continue;
        }
        event.seq = seq;
        chunks
            .entry(chunk)
            .or_insert_with(|| Chunk {
                format: HISTORY_FORMAT,
                events: Vec::new(),
            })
            .events
            .push(event);
    }
    plan.next_seq = last_seq + 1;
    plan.put = chunks.into_iter().collect();
    if let Some(oldest) = oldest {
        plan.delete = (oldest..first_kept).collect();
    }
    debug_assert!(plan.put.len() as u64 <= KEEP_CHUNKS);
    debug_assert!(plan.next_seq > next_seq, "the sequence only grows");
    plan
}

/// The in-memory history of the simulator: the same chunks and the same
/// [`plan_append`] as the store, so the simulator shows what a cluster
/// would keep.
#[derive(Debug, Clone, Default)]
pub struct MemoryHistory {
    chunks: BTreeMap<u64, Chunk>,
    next_seq: u64,
}

impl MemoryHistory {
    /// Appends events, numbering them.
    pub fn append(&mut self, events: Vec<HaEvent>) {
        let next = self.next_seq.max(1);
        let tail = self
            .chunks
            .get(&chunk_of(next))
            .map(|c| c.events.clone())
            .unwrap_or_default();
        let oldest = self.chunks.keys().next().copied();
        let plan = plan_append(next, tail, oldest, events);
        for chunk in plan.delete {
            self.chunks.remove(&chunk);
        }
        for (n, chunk) in plan.put {
            self.chunks.insert(n, chunk);
        }
        self.next_seq = plan.next_seq;
    }

    /// Every kept event, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &HaEvent> {
        self.chunks.values().flat_map(|c| c.events.iter())
    }

    /// Number of kept events.
    pub fn len(&self) -> usize {
        self.chunks.values().map(|c| c.events.len()).sum()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events about this service.
    pub sid: Option<String>,
    /// Only events about this node (as the node, or as the source or
    /// target node of a move).
    pub node: Option<String>,
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only events after this sequence number.
    pub after_seq: Option<u64>,
}

impl Filter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &HaEvent) -> bool {
        if self.sid.as_ref().is_some_and(|s| e.sid.as_ref() != Some(s)) {
            return false;
        }
        if let Some(node) = &self.node {
            let about = e.node.as_ref() == Some(node)
                || (moves_between_nodes(e.kind)
                    && (e.from.as_ref() == Some(node) || e.to.as_ref() == Some(node)));
            if !about {
                return false;
            }
        }
        if self.since_ms.is_some_and(|t| e.time_ms < t) {
            return false;
        }
        if self.after_seq.is_some_and(|s| e.seq <= s) {
            return false;
        }
        true
    }
}

/// Events whose `from`/`to` are nodes, not states.
fn moves_between_nodes(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Placement | EventKind::Recovery | EventKind::Migrate | EventKind::Relocate
    )
}

/// The last event of `sid` that carries a decision, if the history still
/// holds one.
pub fn last_decision<'a>(
    events: impl DoubleEndedIterator<Item = &'a HaEvent>,
    sid: &str,
) -> Option<&'a HaEvent> {
    events
        .rev()
        .find(|e| e.decision.is_some() && e.sid.as_deref() == Some(sid))
}

/// Checks that every recorded decision names the node the CRM acted on:
/// the winner the candidate table shows ([`Decision::winner`]) is the
/// event's target, and the service's next state change in the history
/// lands on that node. Returns one line per mismatch (the scenario runner
/// asserts there are none).
pub fn check_decisions<'a>(events: impl IntoIterator<Item = &'a HaEvent>) -> Vec<String> {
    let events: Vec<&HaEvent> = events.into_iter().collect();
    let mut problems = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Some(d) = &e.decision else { continue };
        let winner = d.winner();
        if winner.as_deref() != d.chosen.as_deref() {
            problems.push(format!(
                "event {}: decision for {} chose {:?}, its candidate table says {:?}",
                e.seq, d.sid, d.chosen, winner
            ));
        }
        if e.to.is_some() && e.to != d.chosen {
            problems.push(format!(
                "event {}: {} acted on {:?}, the decision chose {:?}",
                e.seq, d.sid, e.to, d.chosen
            ));
        }
        // The service's next state change (same round or later) must be
        // on the chosen node (as its node or its move target).
        let Some(chosen) = &d.chosen else { continue };
        let next = events[i + 1..].iter().find(|n| {
            n.kind == EventKind::ServiceState && n.sid.as_deref() == Some(d.sid.as_str())
        });
        if let Some(next) = next {
            let lands = next.node.as_deref() == Some(chosen.as_str())
                || next.message.contains(&format!("target = {chosen}"));
            if !lands && e.kind != EventKind::Placement {
                problems.push(format!(
                    "event {}: {} was sent to '{chosen}', its next state change is on {:?} ({})",
                    e.seq, d.sid, next.node, next.message
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> HaEvent {
        HaEvent::new(i, EventKind::NodeState, format!("event {i}")).node("node1")
    }

    #[test]
    fn append_numbers_events_and_fills_chunks() {
        let plan = plan_append(1, Vec::new(), None, (0..150).map(ev).collect());
        assert_eq!(plan.next_seq, 151);
        assert_eq!(plan.put.len(), 2);
        assert_eq!(plan.put[0].0, 0);
        assert_eq!(plan.put[0].1.events.len(), 99, "chunk 0 holds seq 1..=99");
        assert_eq!(plan.put[1].1.events.len(), 51);
        assert_eq!(plan.put[1].1.events[0].seq, 100);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn append_to_a_partial_chunk_keeps_its_events() {
        let first = plan_append(1, Vec::new(), None, (0..3).map(ev).collect());
        let tail = first.put[0].1.events.clone();
        let second = plan_append(first.next_seq, tail, Some(0), vec![ev(9)]);
        assert_eq!(second.put.len(), 1);
        let seqs: Vec<u64> = second.put[0].1.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn a_burst_of_ten_thousand_keeps_the_cap_and_writes_at_most_the_kept_chunks() {
        let mut h = MemoryHistory::default();
        h.append((0..10).map(ev).collect());
        h.append((0..10_000).map(ev).collect());
        assert!(h.len() as u64 <= CAP, "{} events kept", h.len());
        assert!(h.len() as u64 > CAP - CHUNK_EVENTS);
        let seqs: Vec<u64> = h.events().map(|e| e.seq).collect();
        assert_eq!(*seqs.last().unwrap(), 10_010, "the newest survive");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap-free");
        // A second burst drops the first one entirely.
        let plan = plan_append(10_011, Vec::new(), Some(0), (0..20_000).map(ev).collect());
        assert_eq!(plan.put.len() as u64, KEEP_CHUNKS);
        assert!(plan.delete.contains(&0));
    }

    #[test]
    fn chunks_round_trip_and_refuse_other_formats() {
        let plan = plan_append(1, Vec::new(), None, vec![ev(1)]);
        let text = serde_json::to_string(&plan.put[0].1).unwrap();
        assert_eq!(
            Chunk::parse("history/000000000000", &text).unwrap(),
            plan.put[0].1
        );
        let other = text.replace("\"format\":1", "\"format\":2");
        assert!(matches!(
            Chunk::parse("k", &other),
            Err(ChunkError::Format { found: 2, .. })
        ));
        assert!(Chunk::parse("k", "{").is_err());
        assert_eq!(chunk_number(&chunk_key(42)), Some(42));
        assert_eq!(chunk_number("history/x"), None);
    }

    #[test]
    fn filter_by_service_node_time_and_sequence() {
        let mut e = HaEvent::new(50, EventKind::Recovery, "r")
            .sid("vm:100")
            .change("node1", "node2");
        e.seq = 7;
        let f = |sid: Option<&str>, node: Option<&str>, since: Option<u64>, after: Option<u64>| {
            Filter {
                sid: sid.map(str::to_string),
                node: node.map(str::to_string),
                since_ms: since,
                after_seq: after,
            }
            .matches(&e)
        };
        assert!(f(Some("vm:100"), None, None, None));
        assert!(!f(Some("vm:101"), None, None, None));
        assert!(f(None, Some("node2"), None, None), "target node");
        assert!(!f(None, Some("node3"), None, None));
        assert!(f(None, None, Some(50), None));
        assert!(!f(None, None, Some(51), None));
        assert!(!f(None, None, None, Some(7)));
        assert!(f(None, None, None, Some(6)));
    }
}
