//! The application state machine: documents, CRM command queue, leases.
//!
//! [`ClusterState`] is the replicated part; it changes only through
//! [`ClusterState::apply`], which is a pure function of the state, the log
//! index and the command. [`ClusterApp`] adds the node-local lease deadlines
//! (monotonic clock, never replicated) that the leader uses to judge expiry.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use storage::codec::{self, CodecError};
use storage::Application;

use crate::command::{Command, CommandResponse, DocKey, Document, Lease, Outcome};
use crate::types::{LogId, TypeConfig};

/// Format version of the state-machine snapshot.
pub const STATE_FORMAT_VERSION: u8 = 1;

/// The replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    docs: BTreeMap<DocKey, Document>,
    crm_commands: Vec<String>,
    leases: BTreeMap<String, Lease>,
}

/// A lease change that moves the local deadline.
enum LeaseEffect {
    Renewed { name: String, ttl_ms: u64 },
    Released { name: String },
}

impl ClusterState {
    /// A document by key.
    pub fn doc(&self, key: &DocKey) -> Option<&Document> {
        self.docs.get(key)
    }

    /// All documents, ordered by key.
    pub fn docs(&self) -> impl Iterator<Item = (&DocKey, &Document)> {
        self.docs.iter()
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
    pub fn lease(&self, name: &str) -> Option<&Lease> {
        self.leases.get(name)
    }

    /// All leases, by name.
    pub fn leases(&self) -> impl Iterator<Item = (&str, &Lease)> {
        self.leases.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn check_version(&self, key: &DocKey, expected: Option<u64>) -> Result<(), Outcome> {
        let current = self.docs.get(key).map_or(0, |d| d.version);
        match expected {
            Some(expected) if expected != current => Err(Outcome::VersionConflict {
                key: key.clone(),
                expected,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// Applies `command` at log `index`; deterministic.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
        let mut effects = Vec::new();
        self.apply_inner(index, command, &mut effects)
    }

    fn apply_inner(
        &mut self,
        index: u64,
        command: &Command,
        effects: &mut Vec<LeaseEffect>,
    ) -> Outcome {
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
            Command::CrmCommandAppend { command } => {
                self.crm_commands.push(command.clone());
                Outcome::Done
            }
            Command::CrmCommandTake => Outcome::CrmCommands(std::mem::take(&mut self.crm_commands)),
            Command::LeaseAcquire {
                name,
                holder,
                ttl_ms,
            } => match self.leases.get(name) {
                Some(current) if &current.holder != holder => Outcome::LeaseBusy {
                    name: name.clone(),
                    current: current.clone(),
                },
                _ => self.grant(index, name, holder, *ttl_ms, effects),
            },
            Command::LeaseRenew { name, holder } => match self.leases.get(name) {
                Some(current) if &current.holder == holder => {
                    let ttl_ms = current.ttl_ms;
                    self.grant(index, name, holder, ttl_ms, effects)
                }
                current => Outcome::LeaseNotHolder {
                    name: name.clone(),
                    current: current.cloned(),
                },
            },
            Command::LeaseRelease { name, holder } => match self.leases.get(name) {
                Some(current) if &current.holder == holder => {
                    self.leases.remove(name);
                    effects.push(LeaseEffect::Released { name: name.clone() });
                    Outcome::Done
                }
                current => Outcome::LeaseNotHolder {
                    name: name.clone(),
                    current: current.cloned(),
                },
            },
            Command::LeaseTakeover {
                name,
                new_holder,
                expected_holder,
                expected_seq,
                ttl_ms,
            } => match self.leases.get(name) {
                Some(current)
                    if &current.holder == expected_holder && current.seq == *expected_seq =>
                {
                    self.grant(index, name, new_holder, *ttl_ms, effects)
                }
                current => Outcome::TakeoverRejected {
                    name: name.clone(),
                    current: current.cloned(),
                },
            },
            Command::Batch(commands) => {
                // All-or-nothing: run on a copy and keep it only if every
                // command succeeded.
                let mut scratch = self.clone();
                let mut scratch_effects = Vec::new();
                let mut outcomes = Vec::with_capacity(commands.len());
                for (position, command) in commands.iter().enumerate() {
                    let outcome = scratch.apply_inner(index, command, &mut scratch_effects);
                    if !outcome.is_success() {
                        return Outcome::BatchFailed {
                            position,
                            outcome: Box::new(outcome),
                        };
                    }
                    outcomes.push(outcome);
                }
                *self = scratch;
                effects.extend(scratch_effects);
                Outcome::Batch(outcomes)
            }
        }
    }

    fn grant(
        &mut self,
        index: u64,
        name: &str,
        holder: &str,
        ttl_ms: u64,
        effects: &mut Vec<LeaseEffect>,
    ) -> Outcome {
        let lease = Lease {
            holder: holder.to_string(),
            ttl_ms,
            seq: index,
        };
        self.leases.insert(name.to_string(), lease.clone());
        effects.push(LeaseEffect::Renewed {
            name: name.to_string(),
            ttl_ms,
        });
        Outcome::LeaseHeld(lease)
    }
}

/// `now + ttl`, saturating instead of panicking on absurd ttls (an entry
/// must never be able to crash the replicas that apply it).
fn deadline_after(now: Instant, ttl_ms: u64) -> Instant {
    const CAP: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    now.checked_add(Duration::from_millis(ttl_ms).min(CAP))
        .unwrap_or(now)
}

/// The state machine application: replicated state plus node-local lease
/// deadlines.
#[derive(Debug, Default)]
pub struct ClusterApp {
    state: ClusterState,
    /// Local monotonic deadline of every held lease; meaningful only on the
    /// leader.
    deadlines: HashMap<String, Instant>,
    /// Term of the last blank entry applied: a leader's own blank entry
    /// marks the start of its term.
    blank_term: Option<u64>,
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

    /// The local deadline of a lease.
    pub fn deadline(&self, name: &str) -> Option<Instant> {
        self.deadlines.get(name).copied()
    }

    /// Leases whose local deadline is at or before `now`.
    pub fn expired_at(&self, now: Instant) -> Vec<(String, Lease)> {
        self.state
            .leases
            .iter()
            .filter(|(name, _)| self.deadlines.get(*name).is_some_and(|d| *d <= now))
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect()
    }

    /// Extends every held lease to at least `now + ttl` (never shortens).
    /// Called when a leader's term starts and after a snapshot restore.
    fn extend_all(&mut self, now: Instant) {
        let mut fresh = HashMap::with_capacity(self.state.leases.len());
        for (name, lease) in &self.state.leases {
            let candidate = deadline_after(now, lease.ttl_ms);
            let deadline = match self.deadlines.get(name) {
                Some(existing) if *existing > candidate => *existing,
                _ => candidate,
            };
            fresh.insert(name.clone(), deadline);
        }
        self.deadlines = fresh;
    }
}

impl Application<TypeConfig> for ClusterApp {
    fn apply(&mut self, log_id: &LogId, payload: &EntryPayload<TypeConfig>) -> CommandResponse {
        let index = log_id.index;
        let outcome = match payload {
            EntryPayload::Blank => {
                self.blank_term = Some(log_id.leader_id.term);
                self.extend_all(Instant::now());
                Outcome::Done
            }
            EntryPayload::Membership(_) => Outcome::Done,
            EntryPayload::Normal(command) => {
                let mut effects = Vec::new();
                let outcome = self.state.apply_inner(index, command, &mut effects);
                let now = Instant::now();
                for effect in effects {
                    match effect {
                        LeaseEffect::Renewed { name, ttl_ms } => {
                            self.deadlines.insert(name, deadline_after(now, ttl_ms));
                        }
                        LeaseEffect::Released { name } => {
                            self.deadlines.remove(&name);
                        }
                    }
                }
                outcome
            }
        };
        CommandResponse { index, outcome }
    }

    fn to_snapshot(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode_versioned(STATE_FORMAT_VERSION, "cluster state", &self.state)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CodecError> {
        self.state = codec::decode_versioned(STATE_FORMAT_VERSION, "cluster state", snapshot)?;
        self.extend_all(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: DocKey, expected: Option<u64>, value: &str) -> Command {
        Command::PutDoc {
            key,
            expected_version: expected,
            value: value.into(),
        }
    }

    #[test]
    fn cas_on_documents() {
        let mut s = ClusterState::default();
        let key = DocKey::Config("resources".into());
        assert_eq!(
            s.apply(5, &put(key.clone(), Some(0), "a")),
            Outcome::Written { version: 5 }
        );
        assert_eq!(
            s.apply(6, &put(key.clone(), Some(0), "b")),
            Outcome::VersionConflict {
                key: key.clone(),
                expected: 0,
                current: 5
            }
        );
        assert_eq!(
            s.apply(7, &put(key.clone(), Some(5), "c")),
            Outcome::Written { version: 7 }
        );
        assert_eq!(s.doc(&key).unwrap().value, "c");
        assert!(!s
            .apply(
                8,
                &Command::DeleteDoc {
                    key: key.clone(),
                    expected_version: Some(5)
                }
            )
            .is_success());
        assert_eq!(
            s.apply(
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
        s.apply(
            1,
            &Command::CrmCommandAppend {
                command: "a".into(),
            },
        );
        s.apply(
            2,
            &Command::CrmCommandAppend {
                command: "b".into(),
            },
        );
        assert_eq!(
            s.apply(3, &Command::CrmCommandTake),
            Outcome::CrmCommands(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            s.apply(4, &Command::CrmCommandTake),
            Outcome::CrmCommands(vec![])
        );
    }

    #[test]
    fn lease_rules() {
        let mut s = ClusterState::default();
        let acquire = |h: &str| Command::LeaseAcquire {
            name: "node/a".into(),
            holder: h.into(),
            ttl_ms: 1000,
        };
        assert!(matches!(s.apply(1, &acquire("a")), Outcome::LeaseHeld(l) if l.seq == 1));
        assert!(
            matches!(s.apply(2, &acquire("b")), Outcome::LeaseBusy { current: l, .. } if l.holder == "a")
        );
        let renew = Command::LeaseRenew {
            name: "node/a".into(),
            holder: "a".into(),
        };
        assert!(matches!(s.apply(3, &renew), Outcome::LeaseHeld(l) if l.seq == 3));
        // A take-over that observed seq 1 is stale after the renewal at 3.
        let takeover = |seq| Command::LeaseTakeover {
            name: "node/a".into(),
            new_holder: "crm".into(),
            expected_holder: "a".into(),
            expected_seq: seq,
            ttl_ms: 500,
        };
        assert!(matches!(
            s.apply(4, &takeover(1)),
            Outcome::TakeoverRejected { .. }
        ));
        assert!(matches!(s.apply(5, &takeover(3)), Outcome::LeaseHeld(l) if l.holder == "crm"));
        assert!(matches!(s.apply(6, &renew), Outcome::LeaseNotHolder { .. }));
        let release = Command::LeaseRelease {
            name: "node/a".into(),
            holder: "crm".into(),
        };
        assert_eq!(s.apply(7, &release), Outcome::Done);
        assert!(s.lease("node/a").is_none());
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
            s.apply(1, &batch),
            Outcome::BatchFailed { position: 1, .. }
        ));
        assert_eq!(s, ClusterState::default());
        let batch = Command::Batch(vec![
            Command::CrmCommandAppend {
                command: "x".into(),
            },
            put(key.clone(), Some(0), "yes"),
        ]);
        assert!(s.apply(2, &batch).is_success());
        assert_eq!(s.crm_commands(), ["x".to_string()]);
    }

    #[test]
    fn snapshot_round_trip_and_garbage() {
        let mut app = ClusterApp::default();
        app.state.apply(
            1,
            &Command::LeaseAcquire {
                name: "l".into(),
                holder: "h".into(),
                ttl_ms: 10,
            },
        );
        let bytes = app.to_snapshot().unwrap();
        let mut other = ClusterApp::default();
        other.restore(&bytes).unwrap();
        assert_eq!(other.state, app.state);
        assert!(other.deadline("l").is_some());
        assert!(other.restore(&bytes[..bytes.len() - 1]).is_err());
        assert!(other.restore(&[9, 9, 9]).is_err());
        assert_eq!(other.state, app.state);
    }

    #[test]
    fn absurd_ttl_does_not_panic() {
        let mut app = ClusterApp::default();
        let log_id = openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 1);
        let response = app.apply(
            &log_id,
            &EntryPayload::Normal(Command::LeaseAcquire {
                name: "l".into(),
                holder: "h".into(),
                ttl_ms: u64::MAX,
            }),
        );
        assert!(response.outcome.is_success());
        assert!(app.deadline("l").is_some());
    }

    #[test]
    fn leader_start_extends_but_never_shortens() {
        let mut app = ClusterApp::default();
        app.state.leases.insert(
            "l".into(),
            Lease {
                holder: "h".into(),
                ttl_ms: 60_000,
                seq: 1,
            },
        );
        let far = Instant::now() + Duration::from_secs(3600);
        app.deadlines.insert("l".into(), far);
        app.extend_all(Instant::now());
        assert_eq!(app.deadline("l"), Some(far));
        let past = Instant::now();
        app.deadlines.insert("l".into(), past);
        app.extend_all(Instant::now());
        assert!(app.deadline("l").unwrap() > past + Duration::from_secs(50));
    }
}
