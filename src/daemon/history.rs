//! The event history in the store: the CRM shell turns a round's events
//! into writes (batched with the manager status), the API and the
//! notifier read them from the local replica. The layout and the append
//! plan are the core's (`crm::history`); this file only reads and writes
//! documents.

use raft::{ClusterState, ClusterStore, Command, DocKey};

use crate::crm::history::{
    chunk_key, chunk_number, chunk_of, plan_append, Chunk, Filter, HaEvent, CHUNK_EVENTS,
    CHUNK_PREFIX,
};

/// The stored chunks, oldest first; a chunk that cannot be read is
/// reported through `bad` and skipped (the history is for people: one
/// damaged chunk must not hide the rest).
fn chunks<'a>(
    state: &'a ClusterState,
    from_chunk: u64,
    bad: &'a mut Vec<String>,
) -> impl Iterator<Item = (u64, u64, Chunk)> + 'a {
    state
        .config_docs_with_prefix(CHUNK_PREFIX)
        .filter_map(move |(name, doc)| {
            let n = chunk_number(name)?;
            if n < from_chunk {
                return None;
            }
            match Chunk::parse(name, &doc.value) {
                Ok(c) => Some((n, doc.version, c)),
                Err(e) => {
                    bad.push(e.to_string());
                    None
                }
            }
        })
}

/// The writes that append `events` to the history in `state` (numbering
/// them), as commands for one batch: the changed chunks with
/// compare-and-set on the versions read, the chunks past the cap deleted.
/// Empty when there is nothing to append.
pub fn append_commands(state: &ClusterState, events: Vec<HaEvent>) -> Vec<Command> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut names = state.config_docs_with_prefix(CHUNK_PREFIX);
    let oldest = names.next().and_then(|(n, _)| chunk_number(n));
    let newest = state
        .config_docs_with_prefix(CHUNK_PREFIX)
        .next_back()
        .and_then(|(n, d)| Some((chunk_number(n)?, n, d)));
    let (next_seq, tail, tail_version) = match newest {
        None => (1, Vec::new(), 0),
        Some((n, name, doc)) => match Chunk::parse(name, &doc.value) {
            Ok(c) => {
                let next = c.events.last().map_or(n * CHUNK_EVENTS, |e| e.seq + 1);
                if chunk_of(next) == n {
                    (next, c.events, doc.version)
                } else {
                    (next, Vec::new(), 0)
                }
            }
            // Left as it is (for a person to look at); the history goes
            // on in the next chunk.
            Err(e) => {
                tracing::warn!("{e}; the history continues in the next chunk");
                ((n + 1) * CHUNK_EVENTS, Vec::new(), 0)
            }
        },
    };
    let tail_chunk = chunk_of(next_seq.max(1));
    let plan = plan_append(next_seq, tail, oldest, events);
    let mut commands = Vec::new();
    for (n, chunk) in plan.put {
        let expected = if n == tail_chunk { tail_version } else { 0 };
        let value = match serde_json::to_string(&chunk) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("history chunk {n} not written: {e}");
                continue;
            }
        };
        commands.push(Command::PutDoc {
            key: DocKey::Config(chunk_key(n)),
            expected_version: Some(expected),
            value,
        });
    }
    for n in plan.delete {
        let key = DocKey::Config(chunk_key(n));
        if state.doc(&key).is_some() {
            commands.push(Command::DeleteDoc {
                key,
                expected_version: None,
            });
        }
    }
    commands
}

/// What a reader gets.
#[derive(Debug, Clone, Default)]
pub struct HistoryRead {
    /// The matching events, oldest first (the newest `limit` of them).
    pub events: Vec<HaEvent>,
    /// The sequence number the next event will get.
    pub next_seq: u64,
    /// Chunks that could not be read (their messages).
    pub unreadable: Vec<String>,
}

/// Reads the events `filter` selects from the local replica, at most
/// `limit` (the newest).
pub fn read(store: &ClusterStore, filter: &Filter, limit: usize) -> HistoryRead {
    store
        .read_local(|state| {
            let mut bad = Vec::new();
            let from_chunk = filter.after_seq.map_or(0, |s| chunk_of(s + 1));
            let mut events: Vec<HaEvent> = Vec::new();
            let mut next_seq = 1;
            for (_, _, chunk) in chunks(state, from_chunk, &mut bad) {
                if let Some(last) = chunk.events.last() {
                    next_seq = next_seq.max(last.seq + 1);
                }
                events.extend(chunk.events.into_iter().filter(|e| filter.matches(e)));
            }
            if events.len() > limit {
                events.drain(..events.len() - limit);
            }
            HistoryRead {
                events,
                next_seq,
                unreadable: bad,
            }
        })
        .value
}

/// The events after `after_seq`, oldest first, at most `limit` (the
/// oldest ones: a notifier delivers in order).
pub fn events_after(store: &ClusterStore, after_seq: u64, limit: usize) -> Vec<HaEvent> {
    store
        .read_local(|state| {
            let mut bad = Vec::new();
            let mut out = Vec::new();
            for (_, _, chunk) in chunks(state, chunk_of(after_seq + 1), &mut bad) {
                for e in chunk.events {
                    if e.seq > after_seq && out.len() < limit {
                        out.push(e);
                    }
                }
                if out.len() >= limit {
                    break;
                }
            }
            for b in bad {
                tracing::warn!("{b}");
            }
            out
        })
        .value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::history::{EventKind, CAP, KEEP_CHUNKS};

    fn apply(state: &mut ClusterState, index: &mut u64, commands: Vec<Command>) {
        *index += 1;
        let outcome = state.apply(*index, &Command::Batch(commands), lease::Mono::default());
        assert!(outcome.is_success(), "{outcome:?}");
    }

    fn ev(i: u64) -> HaEvent {
        HaEvent::new(i, EventKind::ServiceState, format!("event {i}")).sid("vm:100")
    }

    /// The history in the real state machine stays within its cap under a
    /// burst of 10,000 events (one round) and many small rounds, stays
    /// gap-free, and keeps the newest.
    #[test]
    fn bounded_under_a_ten_thousand_event_burst_in_the_state_machine() {
        let mut state = ClusterState::default();
        let mut index = 0;
        for round in 0..30 {
            let cmds = append_commands(&state, vec![ev(round), ev(round)]);
            apply(&mut state, &mut index, cmds);
        }
        let burst = append_commands(&state, (0..10_000).map(ev).collect());
        assert!(
            burst.len() as u64 <= KEEP_CHUNKS + 1 + 1,
            "{} commands",
            burst.len()
        );
        apply(&mut state, &mut index, burst);
        for round in 0..250 {
            let cmds = append_commands(&state, vec![ev(round)]);
            apply(&mut state, &mut index, cmds);
        }
        let seqs: Vec<u64> = state
            .config_docs_with_prefix(CHUNK_PREFIX)
            .flat_map(|(n, d)| Chunk::parse(n, &d.value).unwrap().events)
            .map(|e| e.seq)
            .collect();
        assert!(seqs.len() as u64 <= CAP, "{} kept", seqs.len());
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap-free");
        assert_eq!(*seqs.last().unwrap(), 60 + 10_000 + 250);
        let docs = state.config_docs_with_prefix(CHUNK_PREFIX).count() as u64;
        assert!(docs <= KEEP_CHUNKS, "{docs} chunk documents");
        // An unreadable newest chunk is left alone; the history goes on.
        let (name, doc) = state
            .config_docs_with_prefix(CHUNK_PREFIX)
            .next_back()
            .unwrap();
        let (name, version) = (name.to_string(), doc.version);
        apply(
            &mut state,
            &mut index,
            vec![Command::PutDoc {
                key: DocKey::Config(name.clone()),
                expected_version: Some(version),
                value: "not json".into(),
            }],
        );
        let cmds = append_commands(&state, vec![ev(1)]);
        apply(&mut state, &mut index, cmds);
        assert_eq!(state.doc(&DocKey::Config(name)).unwrap().value, "not json");
    }
}
