//! The decisions of notification delivery, sans-IO with `now` passed in:
//! which events go to a target, when to try again after a failure, when
//! the queue is full, what the cursor becomes and when it is worth a
//! write. `daemon/notify_task.rs` carries them out on the leader.
//!
//! Per target, events are delivered one at a time in seq order. The
//! cursor (stored through Raft) says every event up to it is settled:
//! delivered, not wanted by the target, rejected by the receiver, or
//! reported lost. A new leader resumes from it, so an event is sent again
//! only if the old leader crashed between the send and the cursor write
//! (at least once; `X-HA-Event-Id` carries the seq for deduplication).

use std::collections::VecDeque;

use super::config::Target;
use crate::crm::history::HaEvent;

/// Retry timing: the first retry after `first_ms`, doubling, never more
/// than `cap_ms` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub first_ms: u64,
    /// Longest delay.
    pub cap_ms: u64,
}

/// The daemon's retry timing: 0.5 s, 1 s, 2 s, ... up to 30 s.
pub const BACKOFF: Backoff = Backoff {
    first_ms: 500,
    cap_ms: 30_000,
};

/// Events held in memory per target; the rest wait in the history (read
/// when the queue has room), so a dead receiver costs bounded memory.
pub const QUEUE_CAP: usize = 64;

/// A cursor that only moved over events the target does not want is
/// written once it is this far ahead of the stored one (a fifth of the
/// history cap), so no write happens per event, and an idle target is
/// never reported as having lost events it did not want.
pub const SKIP_WRITE_AFTER: u64 = 1000;

/// The delay before retry number `failures` (1 = first retry).
pub fn retry_delay_ms(failures: u32, b: Backoff) -> u64 {
    let shift = failures.saturating_sub(1).min(32);
    b.first_ms.saturating_mul(1u64 << shift).min(b.cap_ms)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver took it (2xx; the hook exited 0).
    Delivered,
    /// Worth another try (no answer, time-out, 5xx, 408, 429, a hook that
    /// failed).
    Retry(String),
    /// The receiver refuses it for good (other 4xx): reported and
    /// skipped, so one bad event does not block the ones after it.
    Rejected(String),
}

/// What an HTTP status means for a webhook delivery: 2xx delivered;
/// 408, 429 and 5xx worth a retry; any other answer (redirects
/// included: they are not followed) a refusal for good.
pub fn http_outcome(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
        _ => Attempt::Rejected(format!("HTTP {status}")),
    }
}

/// What the caller does after [`TargetProgress::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Event `seq` is done; write the cursor [`TargetProgress::cursor_write`] says.
    Settled {
        /// The event.
        seq: u64,
        /// Whether it was delivered (else rejected).
        delivered: bool,
    },
    /// Try event `seq` again at `at_ms`.
    RetryAt {
        /// The event.
        seq: u64,
        /// When.
        at_ms: u64,
        /// Failed attempts so far.
        failures: u32,
    },
    /// Nothing was queued (a stale result).
    Nothing,
}

/// Events the history dropped (its cap) before the target read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// First missing seq.
    pub first: u64,
    /// Last missing seq.
    pub last: u64,
}

impl Lost {
    /// How many.
    pub fn count(self) -> u64 {
        self.last - self.first + 1
    }
}

/// What [`TargetProgress::admit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    /// A gap before the first event read: never delivered, reported.
    pub lost: Option<Lost>,
    /// Events queued.
    pub queued: usize,
    /// Events passed over (not wanted).
    pub skipped: usize,
}

/// One target's delivery state on the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetProgress {
    stored: u64,
    read_up_to: u64,
    queue: VecDeque<HaEvent>,
    failures: u32,
    next_attempt_ms: u64,
}

impl TargetProgress {
    /// Resumes from the stored cursor; a target made after the cursor was
    /// written (a removed and re-added name) starts at its own
    /// `start_after`.
    pub fn resume(stored: u64, start_after: u64) -> Self {
        TargetProgress {
            stored,
            read_up_to: stored.max(start_after),
            queue: VecDeque::new(),
            failures: 0,
            next_attempt_ms: 0,
        }
    }

    /// The seq to read the history after.
    pub fn read_after(&self) -> u64 {
        self.read_up_to
    }

    /// How many events to read now: 0 while the queue is full.
    pub fn fetch_limit(&self) -> usize {
        QUEUE_CAP.saturating_sub(self.queue.len())
    }

    /// Whether the queue holds [`QUEUE_CAP`] events.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= QUEUE_CAP
    }

    /// Events waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes `events` (the history after [`Self::read_after`], oldest
    /// first) in order: a wanted one is queued while there is room (the
    /// rest are read again later), an unwanted one is passed over. A gap
    /// between what was read and the first event given is reported lost.
    pub fn admit(&mut self, target: &Target, events: &[HaEvent]) -> Admitted {
        let mut out = Admitted::default();
        for ev in events {
            if ev.seq <= self.read_up_to {
                continue;
            }
            let wanted = target.wants(ev);
            if wanted && self.is_full() {
                break;
            }
            if ev.seq > self.read_up_to + 1 && out.queued + out.skipped == 0 {
                out.lost = Some(Lost {
                    first: self.read_up_to + 1,
                    last: ev.seq - 1,
                });
            }
            self.read_up_to = ev.seq;
            if wanted {
                self.queue.push_back(ev.clone());
                out.queued += 1;
            } else {
                out.skipped += 1;
            }
        }
        out
    }

    /// The event to send now, if one is queued and its retry time came.
    pub fn due(&self, now_ms: u64) -> Option<&HaEvent> {
        self.queue
            .front()
            .filter(|_| now_ms >= self.next_attempt_ms)
    }

    /// When the head of the queue may be tried, if anything is queued.
    pub fn next_attempt_ms(&self) -> Option<u64> {
        self.queue.front().map(|_| self.next_attempt_ms)
    }

    /// Every event up to this seq is settled.
    pub fn settled(&self) -> u64 {
        self.queue
            .front()
            .map_or(self.read_up_to, |ev| ev.seq.saturating_sub(1))
    }

    /// Takes the result of an attempt on event `seq`.
    pub fn record(&mut self, now_ms: u64, seq: u64, attempt: &Attempt, backoff: Backoff) -> Step {
        if self.queue.front().map(|e| e.seq) != Some(seq) {
            return Step::Nothing;
        }
        match attempt {
            Attempt::Delivered | Attempt::Rejected(_) => {
                self.queue.pop_front();
                self.failures = 0;
                self.next_attempt_ms = 0;
                Step::Settled {
                    seq,
                    delivered: *attempt == Attempt::Delivered,
                }
            }
            Attempt::Retry(_) => {
                self.failures = self.failures.saturating_add(1);
                self.next_attempt_ms =
                    now_ms.saturating_add(retry_delay_ms(self.failures, backoff));
                Step::RetryAt {
                    seq,
                    at_ms: self.next_attempt_ms,
                    failures: self.failures,
                }
            }
        }
    }

    /// The cursor to write now, if any: after an event was settled
    /// (`settled_one`), or once passing over unwanted events put it
    /// [`SKIP_WRITE_AFTER`] ahead. Nothing in between: an idle target
    /// costs no write.
    pub fn cursor_write(&self, settled_one: bool) -> Option<u64> {
        let s = self.settled();
        (s > self.stored && (settled_one || s - self.stored >= SKIP_WRITE_AFTER)).then_some(s)
    }

    /// The cursor `seq` is in the store.
    pub fn cursor_written(&mut self, seq: u64) {
        self.stored = self.stored.max(seq);
    }

    /// The cursor in the store.
    pub fn stored(&self) -> u64 {
        self.stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::{EventClass, Sink};

    fn target(events: &[EventClass]) -> Target {
        Target {
            sink: Sink::Exec {
                path: "/bin/true".into(),
            },
            events: events.to_vec(),
            timeout_secs: 5,
            start_after: 0,
        }
    }

    fn ev(seq: u64, kind: &str, to: Option<&str>) -> HaEvent {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "time_ms": seq * 10, "kind": kind, "node": "node2", "to": to,
            "message": ""
        }))
        .unwrap()
    }

    fn fence(seq: u64) -> HaEvent {
        ev(seq, "node_state", Some("fence"))
    }

    #[test]
    fn http_answers_are_classified() {
        assert_eq!(http_outcome(204), Attempt::Delivered);
        for retry in [408, 429, 500, 503] {
            assert!(matches!(http_outcome(retry), Attempt::Retry(_)), "{retry}");
        }
        for reject in [301, 400, 401, 404] {
            assert!(
                matches!(http_outcome(reject), Attempt::Rejected(_)),
                "{reject}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            first_ms: 500,
            cap_ms: 30_000,
        };
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay_ms(n, b)).collect();
        assert_eq!(
            delays,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(retry_delay_ms(u32::MAX, b), 30_000);
    }

    #[test]
    fn only_wanted_events_are_queued_and_in_order() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        let a = p.admit(
            &t,
            &[
                ev(1, "placement", Some("node1")),
                fence(2),
                ev(3, "fenced", None),
                ev(4, "service_state", Some("started")),
            ],
        );
        assert_eq!((a.queued, a.skipped, a.lost), (2, 2, None));
        assert_eq!(p.read_after(), 4);
        assert_eq!(p.due(0).map(|e| e.seq), Some(2));
        // Everything before the head is settled.
        assert_eq!(p.settled(), 1);
        // Reading again the same events queues nothing twice.
        assert_eq!(p.admit(&t, &[fence(2), ev(3, "fenced", None)]).queued, 0);
        assert_eq!(p.queued(), 2);
    }

    #[test]
    fn a_failure_retries_later_and_blocks_the_next_event() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        p.admit(&t, &[fence(1), fence(2)]);
        let step = p.record(1000, 1, &Attempt::Retry("500".into()), BACKOFF);
        assert_eq!(
            step,
            Step::RetryAt {
                seq: 1,
                at_ms: 1500,
                failures: 1
            }
        );
        assert!(p.due(1499).is_none());
        assert_eq!(p.due(1500).map(|e| e.seq), Some(1));
        assert_eq!(p.cursor_write(false), None);
        let step = p.record(1600, 1, &Attempt::Retry("500".into()), BACKOFF);
        assert_eq!(
            step,
            Step::RetryAt {
                seq: 1,
                at_ms: 2600,
                failures: 2
            }
        );
        assert_eq!(
            p.record(2600, 1, &Attempt::Delivered, BACKOFF),
            Step::Settled {
                seq: 1,
                delivered: true
            }
        );
        assert_eq!(p.cursor_write(true), Some(1));
        p.cursor_written(1);
        // The failure count starts over for the next event.
        assert_eq!(p.due(2600).map(|e| e.seq), Some(2));
        assert_eq!(
            p.record(2600, 2, &Attempt::Retry("x".into()), BACKOFF),
            Step::RetryAt {
                seq: 2,
                at_ms: 3100,
                failures: 1
            }
        );
        // A stale result for another seq changes nothing.
        assert_eq!(
            p.record(3100, 7, &Attempt::Delivered, BACKOFF),
            Step::Nothing
        );
    }

    #[test]
    fn a_rejected_event_is_settled_and_the_next_goes_out() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        p.admit(&t, &[fence(1), fence(2)]);
        assert_eq!(
            p.record(0, 1, &Attempt::Rejected("404".into()), BACKOFF),
            Step::Settled {
                seq: 1,
                delivered: false
            }
        );
        assert_eq!(p.due(0).map(|e| e.seq), Some(2));
    }

    #[test]
    fn the_queue_is_bounded_and_reads_the_rest_later() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        let many: Vec<HaEvent> = (1..=QUEUE_CAP as u64 + 10).map(fence).collect();
        let a = p.admit(&t, &many);
        assert_eq!(a.queued, QUEUE_CAP);
        assert!(p.is_full());
        assert_eq!(p.fetch_limit(), 0);
        assert_eq!(p.read_after(), QUEUE_CAP as u64);
        p.record(0, 1, &Attempt::Delivered, BACKOFF);
        assert_eq!(p.fetch_limit(), 1);
        let a = p.admit(&t, &many[QUEUE_CAP..]);
        assert_eq!(a.queued, 1);
        assert_eq!(a.lost, None);
        assert_eq!(p.read_after(), QUEUE_CAP as u64 + 1);
    }

    #[test]
    fn unwanted_events_pass_even_when_full() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        let mut evs: Vec<HaEvent> = (1..=QUEUE_CAP as u64).map(fence).collect();
        evs.push(ev(QUEUE_CAP as u64 + 1, "placement", None));
        evs.push(fence(QUEUE_CAP as u64 + 2));
        let a = p.admit(&t, &evs);
        assert_eq!((a.queued, a.skipped), (QUEUE_CAP, 1));
        assert_eq!(p.read_after(), QUEUE_CAP as u64 + 1);
    }

    #[test]
    fn a_gap_in_the_history_is_reported_not_skipped_silently() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(10, 0);
        let a = p.admit(&t, &[fence(5_011), fence(5_012)]);
        assert_eq!(
            a.lost,
            Some(Lost {
                first: 11,
                last: 5_010
            })
        );
        assert_eq!(a.lost.map(Lost::count), Some(5_000));
        assert_eq!(a.queued, 2);
        // Contiguous events after it are no gap.
        let a = p.admit(&t, &[fence(5_013)]);
        assert_eq!(a.lost, None);
    }

    #[test]
    fn the_cursor_is_written_after_a_delivery_or_a_long_skip_only() {
        let t = target(&[EventClass::Fence]);
        let mut p = TargetProgress::resume(0, 0);
        let unwanted: Vec<HaEvent> = (1..=SKIP_WRITE_AFTER - 1)
            .map(|s| ev(s, "placement", None))
            .collect();
        p.admit(&t, &unwanted);
        assert_eq!(p.cursor_write(false), None, "no write per unwanted event");
        p.admit(&t, &[ev(SKIP_WRITE_AFTER, "placement", None)]);
        assert_eq!(p.cursor_write(false), Some(SKIP_WRITE_AFTER));
        p.cursor_written(SKIP_WRITE_AFTER);
        assert_eq!(p.cursor_write(false), None);
        assert_eq!(p.cursor_write(true), None, "nothing new is settled");
        // A delivery writes the cursor up to the next queued event.
        let base = SKIP_WRITE_AFTER;
        p.admit(
            &t,
            &[
                fence(base + 1),
                ev(base + 2, "placement", None),
                fence(base + 3),
            ],
        );
        p.record(0, base + 1, &Attempt::Delivered, BACKOFF);
        assert_eq!(p.cursor_write(true), Some(base + 2));
        p.record(0, base + 3, &Attempt::Delivered, BACKOFF);
        assert_eq!(p.cursor_write(true), Some(base + 3));
    }

    #[test]
    fn a_new_leader_resumes_after_the_cursor_and_after_start() {
        let p = TargetProgress::resume(7, 3);
        assert_eq!(p.read_after(), 7);
        assert_eq!(p.stored(), 7);
        // A re-added target with the same name starts at its own start.
        let p = TargetProgress::resume(7, 40);
        assert_eq!(p.read_after(), 40);
        assert_eq!(p.cursor_write(false), None);
    }
}
