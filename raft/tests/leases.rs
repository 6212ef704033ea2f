//! Lease semantics on a three-node cluster: renew, expire, take-over, the
//! reset of deadlines on leader change, the rejected take-over after a
//! concurrent renewal, the guarded take-back, and bounded attempts.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use raft::{ClusterStore, LeaseCommand, LeaseOutcome, LeaseRecord, StoreError};

const LEASE: &str = "lrm/n3";
const BUDGET: Duration = Duration::from_secs(5);

async fn acquire(s: &ClusterStore, holder: &str, ttl: Duration) -> LeaseOutcome {
    let command = LeaseCommand::Acquire {
        name: LEASE.into(),
        holder: holder.into(),
        incarnation: 1,
        ttl_ms: ttl.as_millis() as u64,
    };
    s.lease(command, None, BUDGET).await.unwrap()
}

async fn renew(s: &ClusterStore, holder: &str, seq: u64) -> LeaseOutcome {
    let command = LeaseCommand::Renew {
        name: LEASE.into(),
        holder: holder.into(),
        seq,
    };
    s.lease(command, None, BUDGET).await.unwrap()
}

fn takeover(new: &str, observed: &LeaseRecord, ttl: Duration) -> LeaseCommand {
    LeaseCommand::Takeover {
        name: LEASE.into(),
        new_holder: new.into(),
        new_incarnation: 9,
        expected: Some(lease::Expected {
            holder: observed.holder.clone(),
            seq: observed.seq,
        }),
        ttl_ms: ttl.as_millis() as u64,
    }
}

fn granted(o: LeaseOutcome) -> LeaseRecord {
    match o {
        LeaseOutcome::Granted(r) => r,
        other => panic!("not granted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_renew_release_and_holder_checks() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let holder = cluster.node(f[0]);

    let first = granted(acquire(holder, "n3", Duration::from_secs(10)).await);
    let renewed = granted(renew(holder, "n3", first.seq).await);
    assert!(renewed.seq > first.seq, "renewal must advance the sequence");
    assert_eq!(renewed.ttl_ms, 10_000);

    let busy = acquire(cluster.node(f[1]), "n2", Duration::from_secs(10)).await;
    assert!(matches!(busy, LeaseOutcome::Busy { ref current } if current.holder == "n3"));
    // The same holder under a new run is busy too (an earlier run's lease
    // is never re-granted under a new sequence).
    let again = acquire(cluster.node(f[1]), "n3", Duration::from_secs(10)).await;
    assert!(matches!(again, LeaseOutcome::Busy { .. }));
    // A renewal with a stale sequence is refused.
    let stale = renew(cluster.node(f[1]), "n3", first.seq).await;
    assert!(matches!(stale, LeaseOutcome::NotHolder { .. }));

    // The renewal index is a read-your-writes point for the holder.
    let seen = holder
        .read_at_least(renewed.seq, |s| s.lease(LEASE).cloned())
        .await
        .unwrap();
    assert_eq!(seen.value, Some(renewed.clone()));

    let release = LeaseCommand::Release {
        name: LEASE.into(),
        holder: "n3".into(),
        seq: renewed.seq,
        leave_unguarded: false,
    };
    assert_eq!(
        holder.lease(release, None, BUDGET).await.unwrap(),
        LeaseOutcome::Released(None)
    );
    let gone = cluster
        .node(leader)
        .read_linearizable(|s| s.lease(LEASE).cloned())
        .await
        .unwrap();
    assert_eq!(gone.value, None);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_takeover() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let ttl = Duration::from_millis(1000);
    let lease = granted(acquire(cluster.node(f[0]), "n3", ttl).await);

    // Not yet expired: the take-over is refused by the leader.
    let early = cluster
        .node(f[1])
        .lease(takeover("crm", &lease, ttl), None, BUDGET)
        .await
        .unwrap_err();
    assert_eq!(early, StoreError::LeaseNotExpired { name: LEASE.into() });
    assert!(cluster
        .node(leader)
        .expired_leases()
        .await
        .unwrap()
        .is_empty());

    // Only the leader judges expiry.
    let err = cluster.node(f[1]).expired_leases().await.unwrap_err();
    assert!(matches!(err, StoreError::NotLeader { .. }), "{err:?}");

    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let expired = cluster.node(leader).expired_leases().await.unwrap();
    assert_eq!(expired, vec![(LEASE.to_string(), lease.clone())]);

    // Take-over through a follower (forwarded) with the observed seq.
    let taken = granted(
        cluster
            .node(f[1])
            .lease(takeover("crm", &lease, BUDGET), None, BUDGET)
            .await
            .unwrap(),
    );
    assert_eq!(taken.holder, "crm");
    assert!(taken.seq > lease.seq);
    // The old holder can no longer renew.
    let refused = renew(cluster.node(f[0]), "n3", lease.seq).await;
    assert!(matches!(refused, LeaseOutcome::NotHolder { .. }));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_rejected_after_concurrent_renewal() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let ttl = Duration::from_millis(300);
    granted(acquire(cluster.node(f[0]), "n3", ttl).await);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let expired = cluster.node(leader).expired_leases().await.unwrap();
    let (_, observed) = expired.into_iter().next().expect("lease expired");

    // The holder renews after the CRM observed expiry but before its
    // take-over is committed.
    let renewed = granted(renew(cluster.node(f[0]), "n3", observed.seq).await);
    assert!(renewed.seq > observed.seq);

    let err = cluster
        .node(leader)
        .lease(takeover("crm", &observed, ttl), None, BUDGET)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TakeoverRejected {
            name: LEASE.into(),
            current: Some(renewed.clone())
        }
    );
    let still = cluster
        .node(f[1])
        .read_linearizable(|s| s.lease(LEASE).cloned())
        .await
        .unwrap();
    assert_eq!(still.value, Some(renewed));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_back_is_guarded_by_the_manager_status_version() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let ttl = Duration::from_millis(300);
    let old = granted(acquire(cluster.node(f[0]), "n3", ttl).await);
    let v = cluster
        .node(f[0])
        .put_doc(raft::DocKey::ManagerStatus, None, "{}".into())
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    // The manager status changed since the node read version v - 1.
    let err = cluster
        .node(f[0])
        .lease(takeover("n3", &old, ttl), Some(v - 1), BUDGET)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err:?}");
    let back = cluster
        .node(f[0])
        .lease(takeover("n3", &old, ttl), Some(v), BUDGET)
        .await
        .unwrap();
    assert!(matches!(back, LeaseOutcome::Granted(ref r) if r.incarnation == 9));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_is_bounded_by_its_budget_without_a_quorum() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    cluster.kill(f[1]).await;
    cluster.kill(leader).await;
    let started = Instant::now();
    let command = LeaseCommand::Acquire {
        name: LEASE.into(),
        holder: "n3".into(),
        incarnation: 1,
        ttl_ms: 1000,
    };
    let budget = Duration::from_millis(400);
    let err = cluster
        .node(f[0])
        .lease(command, None, budget)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < budget + Duration::from_millis(300),
        "took {:?}: {err:?}",
        started.elapsed()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_resets_deadlines_to_full_ttl() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let holder_node = cluster.followers(old_leader)[0];
    let ttl = Duration::from_millis(2000);
    let acquired_at = Instant::now();
    let lease = granted(acquire(cluster.node(holder_node), "n3", ttl).await);
    // Let most of the ttl pass, then kill the leader.
    tokio::time::sleep(Duration::from_millis(1400)).await;
    cluster.kill(old_leader).await;
    let new_leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // Wait until the new leader has confirmed its term (its blank entry is
    // applied); that is when deadlines are reset.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.node(new_leader).expired_leases().await.is_err() {
        assert!(Instant::now() < deadline, "new leader never became ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let became_ready = Instant::now();
    let left = cluster.node(new_leader).lease_time_left(LEASE).unwrap();
    // Without the reset, the deadline inherited from the follower's apply
    // would be at most ttl - 1.4 s away.
    let inherited_max = ttl.saturating_sub(acquired_at.elapsed());
    assert!(
        left > inherited_max + Duration::from_millis(300),
        "deadline not reset: {left:?} left, inherited at most {inherited_max:?}"
    );
    // Past the original deadline the lease is still valid on the new leader.
    let original_deadline = acquired_at + ttl + Duration::from_millis(100);
    tokio::time::sleep_until(original_deadline.max(Instant::now()).into()).await;
    assert!(cluster
        .node(new_leader)
        .expired_leases()
        .await
        .unwrap()
        .is_empty());
    // It expires only a full ttl after the new leader's term started.
    loop {
        let expired = cluster.node(new_leader).expired_leases().await.unwrap();
        if !expired.is_empty() {
            assert_eq!(expired[0].1, lease);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        became_ready.elapsed() + Duration::from_millis(100) >= ttl,
        "expired {:?} after the leader became ready, ttl {ttl:?}",
        became_ready.elapsed()
    );
    cluster.shutdown().await;
}
