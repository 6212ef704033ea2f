//! Replicated lease records and the commands that change them.
//!
//! These types are part of the Raft log and snapshot format: changing them
//! requires bumping the state format version of the `raft` crate.

use serde::{Deserialize, Serialize};

/// How a lease is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseMode {
    /// Held with a ttl: the holder renews it and feeds its watchdog while
    /// it may act; the leader judges its expiry.
    Held,
    /// Released by its holder while services it started keep running
    /// without watchdog protection (an LRM restart freezes its services;
    /// a disarmed cluster leaves them running). It never expires and can
    /// never be taken over: nothing proves such a node stopped its
    /// services, so it is never treated as fenced. Only the holder takes
    /// it back ([`LeaseCommand::Acquire`]) or clears it.
    Unguarded,
}

/// The replicated state of one lease. There is no deadline here: expiry is
/// judged only by the leader, on its own monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Current holder.
    pub holder: String,
    /// Which run of the holder took it (a daemon start picks a new one):
    /// tells a holder its own grants from those of an earlier run, for
    /// instance a renewal that committed after the holder gave up waiting.
    pub incarnation: u64,
    /// Time to live after each grant, in milliseconds.
    pub ttl_ms: u64,
    /// Sequence number: the log index of the entry that granted, renewed
    /// or took over the lease. It only grows, so it alone orders two
    /// fencing tokens of the same lease.
    pub seq: u64,
    /// Held or unguarded.
    pub mode: LeaseMode,
}

/// The holder and sequence a take-over (or a release) expects to find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Holder observed.
    pub holder: String,
    /// Sequence observed.
    pub seq: u64,
}

/// A change to one lease, applied identically on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseCommand {
    /// Takes a free lease, or takes back an [`LeaseMode::Unguarded`] one
    /// by its own holder. A lease that is held, by anyone (an earlier
    /// incarnation of the same holder included), is busy.
    Acquire {
        /// Lease name.
        name: String,
        /// Who takes it.
        holder: String,
        /// The taker's run.
        incarnation: u64,
        /// Time to live, ms.
        ttl_ms: u64,
    },
    /// Renews a held lease; only its holder at exactly `seq` may (a new
    /// incarnation does not know `seq` and cannot renew its predecessor's
    /// lease by accident).
    Renew {
        /// Lease name.
        name: String,
        /// Who must hold it.
        holder: String,
        /// The sequence the holder was last granted.
        seq: u64,
    },
    /// Releases a held lease (holder at `seq`). With `leave_unguarded` the
    /// record stays as [`LeaseMode::Unguarded`]: services of the holder
    /// keep running without protection.
    Release {
        /// Lease name.
        name: String,
        /// Who must hold it.
        holder: String,
        /// The sequence the holder was last granted.
        seq: u64,
        /// Services keep running unprotected.
        leave_unguarded: bool,
    },
    /// Takes a lease over for `new_holder`. With `expected: Some` the lease
    /// must still be held by that holder at that sequence (no renewal was
    /// committed since the leader judged it expired; the leader checks the
    /// expiry before proposing this). With `expected: None` the lease must
    /// be free. Never applies to an unguarded lease.
    Takeover {
        /// Lease name.
        name: String,
        /// The new holder.
        new_holder: String,
        /// The new holder's run.
        new_incarnation: u64,
        /// What must be there.
        expected: Option<Expected>,
        /// Time to live for the new holder, ms.
        ttl_ms: u64,
    },
}

impl LeaseCommand {
    /// The lease this command is about.
    pub fn name(&self) -> &str {
        match self {
            LeaseCommand::Acquire { name, .. }
            | LeaseCommand::Renew { name, .. }
            | LeaseCommand::Release { name, .. }
            | LeaseCommand::Takeover { name, .. } => name,
        }
    }

    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            LeaseCommand::Acquire { .. } => "lease-acquire",
            LeaseCommand::Renew { .. } => "lease-renew",
            LeaseCommand::Release { .. } => "lease-release",
            LeaseCommand::Takeover { .. } => "lease-takeover",
        }
    }
}

/// The result of applying one [`LeaseCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseOutcome {
    /// The lease is now held as described (acquire, renew, take-over).
    Granted(LeaseRecord),
    /// Released: removed, or left as unguarded (`Some`).
    Released(Option<LeaseRecord>),
    /// Acquire refused: the lease is held.
    Busy {
        /// The lease as it is.
        current: LeaseRecord,
    },
    /// Renew/release refused: the caller does not hold it at that
    /// sequence.
    NotHolder {
        /// The lease as it is, if any.
        current: Option<LeaseRecord>,
    },
    /// Take-over refused: the lease changed since it was observed.
    TakeoverRejected {
        /// The lease as it is, if any.
        current: Option<LeaseRecord>,
    },
}

impl LeaseOutcome {
    /// Whether the command took effect.
    pub fn is_success(&self) -> bool {
        matches!(self, LeaseOutcome::Granted(_) | LeaseOutcome::Released(_))
    }
}
