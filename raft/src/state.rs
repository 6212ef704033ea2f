//! The application state machine: documents, CRM command queue, leases.
//!
//! [`ClusterState`] is the replicated part; it changes only through
//! [`ClusterState::apply`], a deterministic function of the state, the log
//! index and the command. The lease table (the `lease` crate) also keeps
//! this replica's deadlines, set from the `now` its caller passes to
//! `apply`: nothing here reads a clock. [`ClusterApp`] adds the term of the
//! last leader-start entry and turns the caller's `Instant` into the lease
//! core's monotonic milliseconds.

use std::collections::BTreeMap;
use std::time::Instant;

use lease::{LeaseRecord, LeaseTable, Mono};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use storage::codec::{self, CodecError};
use storage::Application;

use crate::command::{Command, CommandResponse, DocKey, Document, Outcome};
use crate::types::{LogId, TypeConfig};

/// Format version of the state-machine snapshot (2: leases of the `lease`
/// crate, with incarnation and mode).
pub const STATE_FORMAT_VERSION: u8 = 2;

/// The replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    docs: BTreeMap<DocKey, Document>,
    crm_commands: Vec<String>,
    leases: LeaseTable,
}

impl ClusterState {
    /// A document by key.
    pub fn doc(&self, key: &DocKey) -> Option<&Document> {
        self.docs.get(key)
    }

    /// The version of a document (0 = absent).
    pub fn doc_version(&self, key: &DocKey) -> u64 {
        self.docs.get(key).map_or(0, |d| d.version)
    }

    /// All documents, ordered by key.
    pub fn docs(&self) -> impl Iterator<Item = (&DocKey, &Document)> {
        self.docs.iter()
    }

    /// The config documents whose name starts with `prefix`, in name
    /// order, found by a range lookup (no scan of the others).
    pub fn config_docs_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl DoubleEndedIterator<Item = (&'a str, &'a Document)> + 'a {
        let start = DocKey::Config(prefix.to_string());
        // The end bound: the prefix with its last character incremented
        // would do, but any key past every `prefix...` name is simpler.
        let end = DocKey::Config(format!("{prefix}\u{10FFFF}"));
        self.docs
            .range(start..end)
            .filter_map(move |(k, d)| match k {
                DocKey::Config(name) if name.starts_with(prefix) => Some((name.as_str(), d)),
                _ => None,
            })
    }

    /// The manager status document.
    pub fn manager_status(&self) -> Option<&Document> {
        self.docs.get(&DocKey::ManagerStatus)
    }

    /// Every LRM status document, by node name.
    pub fn lrm_statuses(&self) -> impl Iterator<Item = (&str, &Document)> {
        self.docs.iter().filter_map(|(k, d)| match k {
            DocKey::LrmStatus(node) => Some((node.as_str(), d)),
            _ => None,
        })
    }

    /// The pending CRM commands (oldest first).
    pub fn crm_commands(&self) -> &[String] {
        &self.crm_commands
    }

    /// A lease by name.
    pub fn lease(&self, name: &str) -> Option<&LeaseRecord> {
        self.leases.record(name)
    }

    /// All leases, by name.
    pub fn leases(&self) -> impl Iterator<Item = (&str, &LeaseRecord)> {
        self.leases.records()
    }

    /// The lease table with this replica's deadlines.
    pub fn lease_table(&self) -> &LeaseTable {
        &self.leases
    }

    fn check_version(&self, key: &DocKey, expected: Option<u64>) -> Result<(), Outcome> {
        let current = self.doc_version(key);
        match expected {
            Some(expected) if expected != current => Err(Outcome::VersionConflict {
                key: key.clone(),
                expected,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// Applies `command` committed at log `index`, at local time `now`
    /// (which only sets this replica's lease deadlines); deterministic in
    /// the replicated state.
    pub fn apply(&mut self, index: u64, command: &Command, now: Mono) -> Outcome {
        match command {
            Command::PutDoc {
                key,
                expected_version,
                value,
            } => match self.check_version(key, *expected_version) {
                Err(conflict) => conflict,
                Ok(()) => {
                    self.docs.insert(
                        key.clone(),
                        Document {
                            version: index,
                            value: value.clone(),
                        },
                    );
                    Outcome::Written { version: index }
                }
            },
            Command::DeleteDoc {
                key,
                expected_version,
            } => match self.check_version(key, *expected_version) {
                Err(conflict) => conflict,
                Ok(()) => {
                    self.docs.remove(key);
                    Outcome::Done
                }
            },
            Command::AssertVersion { key, version } => {
                match self.check_version(key, Some(*version)) {
                    Err(conflict) => conflict,
                    Ok(()) => Outcome::Done,
                }
            }
            Command::CrmCommandAppend { command } => {
                self.crm_commands.push(command.clone());
                Outcome::Done
            }
            Command::CrmCommandTake => Outcome::CrmCommands(std::mem::take(&mut self.crm_commands)),
            Command::Lease(lease) => Outcome::Lease {
                name: lease.name().to_string(),
                outcome: self.leases.apply(index, lease, now),
            },
            Command::Batch(commands) => {
                // All-or-nothing: run on a copy and keep it only if every
                // command succeeded.
                let mut scratch = self.clone();
                let mut outcomes = Vec::with_capacity(commands.len());
                for (position, command) in commands.iter().enumerate() {
                    let outcome = scratch.apply(index, command, now);
                    if !outcome.is_success() {
                        return Outcome::BatchFailed {
                            position,
                            outcome: Box::new(outcome),
                        };
                    }
                    outcomes.push(outcome);
                }
                *self = scratch;
                Outcome::Batch(outcomes)
            }
        }
    }
}

/// The state machine application: replicated state plus the term of the
/// last leader-start entry.
#[derive(Debug)]
pub struct ClusterApp {
    state: ClusterState,
    /// Term of the last blank entry applied: a leader's own blank entry
    /// marks the start of its term.
    blank_term: Option<u64>,
    /// Origin of this replica's monotonic milliseconds.
    origin: Instant,
}

impl Default for ClusterApp {
    fn default() -> Self {
        ClusterApp {
            state: ClusterState::default(),
            blank_term: None,
            origin: Instant::now(),
        }
    }
}

impl ClusterApp {
    /// The replicated state.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Term of the last applied leader-start (blank) entry.
    pub fn blank_term(&self) -> Option<u64> {
        self.blank_term
    }

    /// `at` on this replica's lease clock.
    pub fn mono(&self, at: Instant) -> Mono {
        Mono(lease::millis(at.saturating_duration_since(self.origin)))
    }

    /// Held leases whose local deadline is at or before `at`.
    pub fn expired_at(&self, at: Instant) -> Vec<(String, LeaseRecord)> {
        self.state.leases.expired(self.mono(at))
    }
}

impl Application<TypeConfig> for ClusterApp {
    fn apply(
        &mut self,
        log_id: &LogId,
        payload: &EntryPayload<TypeConfig>,
        now: Instant,
    ) -> CommandResponse {
        let index = log_id.index;
        let now = self.mono(now);
        let outcome = match payload {
            EntryPayload::Blank => {
                self.blank_term = Some(log_id.leader_id.term);
                // A new leader cannot know when the last renewals were
                // sent: every held lease gets a full ttl from now.
                self.state.leases.extend_all(now);
                Outcome::Done
            }
            EntryPayload::Membership(_) => Outcome::Done,
            EntryPayload::Normal(command) => self.state.apply(index, command, now),
        };
        CommandResponse { index, outcome }
    }

    fn to_snapshot(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode_versioned(STATE_FORMAT_VERSION, "cluster state", &self.state)
    }

    fn restore(&mut self, snapshot: &[u8], now: Instant) -> Result<(), CodecError> {
        let mut state: ClusterState =
            codec::decode_versioned(STATE_FORMAT_VERSION, "cluster state", snapshot)?;
        let now = self.mono(now);
        state.leases.extend_all(now);
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lease::{Expected, LeaseCommand, LeaseOutcome};

    fn put(key: DocKey, expected: Option<u64>, value: &str) -> Command {
        Command::PutDoc {
            key,
            expected_version: expected,
            value: value.into(),
        }
    }

    fn apply(s: &mut ClusterState, index: u64, c: &Command) -> Outcome {
        s.apply(index, c, Mono(index))
    }

    #[test]
    fn cas_on_documents() {
        let mut s = ClusterState::default();
        let key = DocKey::Config("resources".into());
        assert_eq!(
            apply(&mut s, 5, &put(key.clone(), Some(0), "a")),
            Outcome::Written { version: 5 }
        );
        assert_eq!(
            apply(&mut s, 6, &put(key.clone(), Some(0), "b")),
            Outcome::VersionConflict {
                key: key.clone(),
                expected: 0,
                current: 5
            }
        );
        assert_eq!(
            apply(&mut s, 7, &put(key.clone(), Some(5), "c")),
            Outcome::Written { version: 7 }
        );
        assert_eq!(s.doc(&key).unwrap().value, "c");
        assert!(!apply(
            &mut s,
            8,
            &Command::DeleteDoc {
                key: key.clone(),
                expected_version: Some(5)
            }
        )
        .is_success());
        assert_eq!(
            apply(
                &mut s,
                9,
                &Command::DeleteDoc {
                    key: key.clone(),
                    expected_version: Some(7)
                }
            ),
            Outcome::Done
        );
        assert!(s.doc(&key).is_none());
    }

    #[test]
    fn crm_queue_is_taken_atomically() {
        let mut s = ClusterState::default();
        for (i, c) in ["a", "b"].iter().enumerate() {
            apply(
                &mut s,
                i as u64 + 1,
                &Command::CrmCommandAppend {
                    command: c.to_string(),
                },
            );
        }
        assert_eq!(
            apply(&mut s, 3, &Command::CrmCommandTake),
            Outcome::CrmCommands(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            apply(&mut s, 4, &Command::CrmCommandTake),
            Outcome::CrmCommands(vec![])
        );
    }

    #[test]
    fn a_guarded_lease_take_back_needs_the_manager_status_unchanged() {
        let mut s = ClusterState::default();
        let take = |seq| {
            Command::Lease(LeaseCommand::Takeover {
                name: "l".into(),
                new_holder: "node1".into(),
                new_incarnation: 2,
                expected: Some(Expected {
                    holder: "node1".into(),
                    seq,
                }),
                ttl_ms: 1000,
            })
        };
        apply(
            &mut s,
            1,
            &Command::Lease(LeaseCommand::Acquire {
                name: "l".into(),
                holder: "node1".into(),
                incarnation: 1,
                ttl_ms: 1000,
            }),
        );
        apply(&mut s, 2, &put(DocKey::ManagerStatus, None, "{}"));
        let stale = Command::Batch(vec![
            Command::AssertVersion {
                key: DocKey::ManagerStatus,
                version: 1,
            },
            take(1),
        ]);
        assert!(matches!(
            apply(&mut s, 3, &stale),
            Outcome::BatchFailed { position: 0, .. }
        ));
        let fresh = Command::Batch(vec![
            Command::AssertVersion {
                key: DocKey::ManagerStatus,
                version: 2,
            },
            take(1),
        ]);
        assert!(apply(&mut s, 4, &fresh).is_success());
        assert_eq!(s.lease("l").unwrap().incarnation, 2);
        // Lease refusals are failed outcomes (and fail batches).
        let again = apply(&mut s, 5, &take(1));
        assert!(matches!(
            again,
            Outcome::Lease {
                outcome: LeaseOutcome::TakeoverRejected { .. },
                ..
            }
        ));
        assert!(!again.is_success());
    }

    #[test]
    fn batch_is_all_or_nothing() {
        let mut s = ClusterState::default();
        let key = DocKey::ManagerStatus;
        let batch = Command::Batch(vec![
            Command::CrmCommandAppend {
                command: "x".into(),
            },
            put(key.clone(), Some(3), "never"),
        ]);
        assert!(matches!(
            apply(&mut s, 1, &batch),
            Outcome::BatchFailed { position: 1, .. }
        ));
        assert_eq!(s, ClusterState::default());
        let batch = Command::Batch(vec![
            Command::CrmCommandAppend {
                command: "x".into(),
            },
            put(key.clone(), Some(0), "yes"),
        ]);
        assert!(apply(&mut s, 2, &batch).is_success());
        assert_eq!(s.crm_commands(), ["x".to_string()]);
    }

    #[test]
    fn snapshot_round_trip_and_garbage() {
        let mut app = ClusterApp::default();
        app.state.apply(
            1,
            &Command::Lease(LeaseCommand::Acquire {
                name: "l".into(),
                holder: "h".into(),
                incarnation: 1,
                ttl_ms: 10,
            }),
            Mono(0),
        );
        let bytes = app.to_snapshot().unwrap();
        let mut other = ClusterApp::default();
        other.restore(&bytes, Instant::now()).unwrap();
        assert_eq!(other.state, app.state);
        assert!(other.state.lease_table().deadline("l").is_some());
        assert!(other
            .restore(&bytes[..bytes.len() - 1], Instant::now())
            .is_err());
        assert!(other.restore(&[9, 9, 9], Instant::now()).is_err());
        assert_eq!(other.state, app.state);
    }

    #[test]
    fn apply_takes_time_from_its_caller() {
        let mut app = ClusterApp::default();
        let log_id = openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 1);
        let at = app.origin + std::time::Duration::from_secs(100);
        let response = app.apply(
            &log_id,
            &EntryPayload::Normal(Command::Lease(LeaseCommand::Acquire {
                name: "l".into(),
                holder: "h".into(),
                incarnation: 1,
                ttl_ms: 5_000,
            })),
            at,
        );
        assert!(response.outcome.is_success());
        assert_eq!(app.state.lease_table().deadline("l"), Some(Mono(105_000)));
        assert!(
            app.expired_at(at + std::time::Duration::from_secs(5))
                .is_empty(),
            "valid at its deadline"
        );
        assert_eq!(
            app.expired_at(at + std::time::Duration::from_millis(5_001))
                .len(),
            1
        );
    }
}
