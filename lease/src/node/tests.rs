//! Tests of the node-side lease.

use super::*;
use crate::table::LeaseTable;

const T: TimingProfile = TimingProfile::FAST;

fn lease() -> NodeLease {
    NodeLease::new("ha_agent_node1_lock", "node1", 7, &T)
}

fn view(record: Option<&LeaseRecord>) -> ReplicaView<'_> {
    ReplicaView {
        record,
        crm_fencing_me: false,
        manager_status_version: 3,
    }
}

/// Sends what the lease wants to `table` (as leader, committed at
/// `index`, applied at `now`) and feeds the answer back.
fn round_trip(
    l: &mut NodeLease,
    table: &mut LeaseTable,
    index: &mut u64,
    now: Mono,
) -> Option<LeaseEvent> {
    let record = table.record(l.name()).cloned();
    let req = l.poll(now, &view(record.as_ref()))?;
    *index += 1;
    let out = table.apply(*index, &req.command, now);
    l.on_reply(now, Ok(out))
}

#[test]
fn acquire_then_renew_on_its_interval_and_valid_for_the_window() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    assert!(
        round_trip(&mut l, &mut t, &mut i, Mono(0)).is_none(),
        "no intent, no request"
    );
    l.set_intent(LeaseIntent::Hold);
    assert_eq!(
        round_trip(&mut l, &mut t, &mut i, Mono(100)),
        Some(LeaseEvent::Acquired { seq: 1 })
    );
    let window = crate::millis(T.feed_window().unwrap());
    assert!(l.valid(Mono(100 + window - 1)));
    assert!(!l.valid(Mono(100 + window)));
    assert_eq!(l.may_feed(Mono(100 + window)), FeedDecision::Starve);
    // Not due yet.
    assert!(l.poll(Mono(200), &view(t.record(l.name()))).is_none());
    assert!(round_trip(&mut l, &mut t, &mut i, Mono(600)).is_none());
    assert_eq!(l.fencing_token(Mono(601)), Some(2));
    assert!(l.valid(Mono(600 + window - 1)));
}

#[test]
fn validity_counts_from_the_send_time_not_the_answer() {
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    let mut t = LeaseTable::default();
    let req = l.poll(Mono(0), &view(None)).unwrap();
    let out = t.apply(1, &req.command, Mono(400));
    l.on_reply(Mono(450), Ok(out));
    let window = crate::millis(T.feed_window().unwrap());
    assert!(!l.valid(Mono(window)));
    assert!(l.valid(Mono(window - 1)));
}

#[test]
fn a_slow_attempt_times_out_and_the_next_one_goes_out() {
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    assert!(l.poll(Mono(0), &view(None)).is_some());
    assert!(l.poll(Mono(499), &view(None)).is_none(), "still in flight");
    // The 500 ms attempt timeout is over: the retry (to whoever leads
    // now) goes out at once.
    assert!(l.poll(Mono(500), &view(None)).is_some());
    // A refused attempt is retried after the short backoff.
    l.on_reply(
        Mono(510),
        Err(RequestFailure::Unavailable("no leader".into())),
    );
    assert!(l.poll(Mono(599), &view(None)).is_none());
    assert!(l.poll(Mono(600), &view(None)).is_some());
}

#[test]
fn a_late_commit_of_our_own_request_is_adopted_from_its_send_time() {
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    let mut t = LeaseTable::default();
    let first = l.poll(Mono(0), &view(None)).unwrap();
    // It times out on our side but commits at the leader.
    t.apply(1, &first.command, Mono(900));
    let retry = l.poll(Mono(600), &view(None)).unwrap();
    let out = t.apply(2, &retry.command, Mono(950));
    assert!(matches!(out, LeaseOutcome::Busy { .. }));
    assert_eq!(
        l.on_reply(Mono(960), Ok(out)),
        Some(LeaseEvent::Acquired { seq: 1 })
    );
    let window = crate::millis(T.feed_window().unwrap());
    assert!(
        !l.valid(Mono(window)),
        "valid from the FIRST send, not the retry"
    );
    // And it renews at once with the adopted sequence.
    let renew = l.poll(Mono(970), &view(t.record(l.name()))).unwrap();
    assert!(matches!(renew.command, LeaseCommand::Renew { seq: 1, .. }));
}

#[test]
fn an_earlier_run_s_lease_is_taken_back_only_when_not_fenced_and_guarded() {
    let old = LeaseRecord {
        holder: "node1".into(),
        incarnation: 6,
        ttl_ms: 5000,
        seq: 40,
        mode: LeaseMode::Held,
    };
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    let fenced = ReplicaView {
        record: Some(&old),
        crm_fencing_me: true,
        manager_status_version: 9,
    };
    assert!(
        l.poll(Mono(0), &fenced).is_none(),
        "the CRM takes it over itself"
    );
    // Looked at again after the backoff: no longer fenced.
    let req = l.poll(Mono(100), &view(Some(&old))).unwrap();
    assert_eq!(req.manager_status_guard, Some(3));
    assert!(matches!(
        req.command,
        LeaseCommand::Takeover {
            expected: Some(Expected { seq: 40, .. }),
            ..
        }
    ));
    // Never a plain acquire under a new sequence.
    let mut t = LeaseTable::default();
    t.apply(
        40,
        &LeaseCommand::Acquire {
            name: l.name().into(),
            holder: "node1".into(),
            incarnation: 6,
            ttl_ms: 5000,
        },
        Mono(0),
    );
    assert!(matches!(
        t.apply(41, &l.acquire(), Mono(0)),
        LeaseOutcome::Busy { .. }
    ));
}

#[test]
fn the_watchdog_arms_on_a_valid_lease_and_closes_only_after_the_release() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    assert_eq!(
        l.watchdog_action(Mono(0), true, false),
        WatchdogAction::Nothing
    );
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(0));
    assert_eq!(l.watchdog_action(Mono(1), true, false), WatchdogAction::Arm);
    assert_eq!(l.watchdog_action(Mono(1), true, true), WatchdogAction::Feed);
    // Not wanted any more, but still held: keep feeding.
    l.set_intent(LeaseIntent::Release {
        leave_unguarded: true,
    });
    assert_eq!(
        l.watchdog_action(Mono(2), false, true),
        WatchdogAction::Feed
    );
    round_trip(&mut l, &mut t, &mut i, Mono(3));
    assert_eq!(
        l.watchdog_action(Mono(4), false, true),
        WatchdogAction::Release
    );
    // Held but lapsed: starve.
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(10_000));
    let late = Mono(10_000 + crate::millis(T.feed_window().unwrap()));
    assert_eq!(l.watchdog_action(late, true, true), WatchdogAction::Nothing);
    assert_eq!(
        l.watchdog_action(late, false, true),
        WatchdogAction::Nothing
    );
}

#[test]
fn nothing_to_do_means_no_wakeup_and_a_declined_wish_backs_off() {
    let mut l = lease();
    // Release intent, nothing held: nothing until the intent changes.
    assert_eq!(l.next_wakeup(Mono(0)), Mono(u64::MAX));
    // A wish the replica declines (the CRM is fencing this node).
    let old = LeaseRecord {
        holder: "node1".into(),
        incarnation: 6,
        ttl_ms: 5000,
        seq: 40,
        mode: LeaseMode::Held,
    };
    let fenced = ReplicaView {
        record: Some(&old),
        crm_fencing_me: true,
        manager_status_version: 1,
    };
    l.set_intent(LeaseIntent::Hold);
    assert!(l.poll(Mono(0), &fenced).is_none());
    assert!(l.next_wakeup(Mono(0)) > Mono(0), "no busy loop");
    assert!(l.poll(Mono(50), &view(Some(&old))).is_none(), "backing off");
    assert!(l.poll(Mono(100), &view(Some(&old))).is_some());
}

#[test]
fn lost_lock_neither_renews_nor_feeds() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(0));
    l.set_intent(LeaseIntent::Abandon);
    assert!(!l.valid(Mono(1)));
    assert_eq!(l.may_feed(Mono(1)), FeedDecision::Starve);
    assert!(l.poll(Mono(10_000), &view(t.record(l.name()))).is_none());
    assert_eq!(l.next_wakeup(Mono(10_000)), Mono(u64::MAX));
}

#[test]
fn a_broken_watchdog_stops_renewals() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(0));
    l.set_watchdog_failed(true);
    assert!(!l.valid(Mono(1)));
    assert!(l.poll(Mono(5_000), &view(t.record(l.name()))).is_none());
}

#[test]
fn renewal_refused_after_a_takeover_means_lost() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(0));
    i += 1;
    t.apply(
        i,
        &LeaseCommand::Takeover {
            name: l.name().into(),
            new_holder: "crm:node2".into(),
            new_incarnation: 1,
            expected: Some(Expected {
                holder: "node1".into(),
                seq: 1,
            }),
            ttl_ms: 5000,
        },
        Mono(6000),
    );
    let ev = round_trip(&mut l, &mut t, &mut i, Mono(6000));
    assert!(matches!(ev, Some(LeaseEvent::Lost { .. })), "{ev:?}");
    assert_eq!(l.state(), NodeLeaseState::Free);
}

#[test]
fn release_leaves_an_unguarded_record_that_the_next_run_takes_back() {
    let mut l = lease();
    let mut t = LeaseTable::default();
    let mut i = 0;
    l.set_intent(LeaseIntent::Hold);
    round_trip(&mut l, &mut t, &mut i, Mono(0));
    l.set_intent(LeaseIntent::Release {
        leave_unguarded: true,
    });
    assert_eq!(
        round_trip(&mut l, &mut t, &mut i, Mono(100)),
        Some(LeaseEvent::Released)
    );
    assert_eq!(t.record(l.name()).unwrap().mode, LeaseMode::Unguarded);
    let mut next = NodeLease::new("ha_agent_node1_lock", "node1", 8, &T);
    next.set_intent(LeaseIntent::Hold);
    assert!(matches!(
        round_trip(&mut next, &mut t, &mut i, Mono(200)),
        Some(LeaseEvent::Acquired { .. })
    ));
}

fn unguarded_mine() -> LeaseRecord {
    LeaseRecord {
        holder: "node1".into(),
        incarnation: 6,
        ttl_ms: 5000,
        seq: 40,
        mode: LeaseMode::Unguarded,
    }
}

#[test]
fn an_unguarded_lease_is_taken_back_only_under_an_armed_watchdog() {
    let old = unguarded_mine();
    let mut l = lease();
    l.set_watchdog_armed(false);
    l.set_intent(LeaseIntent::Hold);
    assert!(l.poll(Mono(0), &view(Some(&old))).is_none(), "arm first");
    assert!(l.taking_back());
    assert_eq!(l.watchdog_action(Mono(0), true, false), WatchdogAction::Arm);
    // Armed but nothing sent yet: fed (no lease can expire meanwhile).
    assert_eq!(
        l.watchdog_action(Mono(50), true, true),
        WatchdogAction::Feed
    );
    l.set_watchdog_armed(true);
    let req = l.poll(Mono(100), &view(Some(&old))).unwrap();
    assert!(matches!(req.command, LeaseCommand::Acquire { .. }));
    // No answer: fed for one window from the send, then starved; never
    // released while the grant may be outstanding.
    let window = crate::millis(T.feed_window().unwrap());
    assert_eq!(
        l.watchdog_action(Mono(100 + window - 1), true, true),
        WatchdogAction::Feed
    );
    assert_eq!(
        l.watchdog_action(Mono(100 + window), true, true),
        WatchdogAction::Nothing
    );
    assert_eq!(
        l.watchdog_action(Mono(100 + window), false, true),
        WatchdogAction::Nothing
    );
}

#[test]
fn a_shell_that_does_not_report_its_watchdog_is_not_gated() {
    let old = unguarded_mine();
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    assert!(l.poll(Mono(0), &view(Some(&old))).is_some());
}

#[test]
fn a_missed_grant_is_adopted_from_the_replica() {
    let mut l = lease();
    l.set_intent(LeaseIntent::Hold);
    let mut t = LeaseTable::default();
    let first = l.poll(Mono(0), &view(None)).unwrap();
    // Committed, but the answer never comes.
    t.apply(1, &first.command, Mono(10));
    let record = t.record(l.name()).cloned();
    // The attempt times out; the replica shows the grant: adopted from
    // the first send, and renewed at once.
    let renew = l.poll(Mono(500), &view(record.as_ref())).unwrap();
    assert!(matches!(renew.command, LeaseCommand::Renew { seq: 1, .. }));
    assert!(matches!(l.state(), NodeLeaseState::Held { seq: 1, .. }));
    let window = crate::millis(T.feed_window().unwrap());
    assert!(l.valid(Mono(window - 1)));
    assert!(!l.valid(Mono(window)));
}
