//! Lease semantics on a three-node cluster: renew, expire, take-over, the
//! reset of deadlines on leader change and the rejected take-over after a
//! concurrent renewal.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use raft::StoreError;

const LEASE: &str = "lrm/n3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_renew_release_and_holder_checks() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let holder = cluster.node(f[0]);

    let first = holder
        .lease_acquire(LEASE, "n3", Duration::from_secs(10))
        .await
        .unwrap();
    let renewed = holder.lease_renew(LEASE, "n3").await.unwrap();
    assert!(renewed.seq > first.seq, "renewal must advance the sequence");
    assert_eq!(renewed.ttl_ms, 10_000);

    let busy = cluster
        .node(f[1])
        .lease_acquire(LEASE, "n2", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        busy,
        StoreError::LeaseBusy {
            name: LEASE.into(),
            holder: "n3".into()
        }
    );
    let not_holder = cluster
        .node(f[1])
        .lease_renew(LEASE, "n2")
        .await
        .unwrap_err();
    assert!(matches!(not_holder, StoreError::LeaseNotHolder { .. }));
    assert!(cluster
        .node(leader)
        .lease_release(LEASE, "n2")
        .await
        .is_err());

    // The renewal index is a read-your-writes point for the holder.
    let seen = holder
        .read_at_least(renewed.seq, |s| s.lease(LEASE).cloned())
        .await
        .unwrap();
    assert_eq!(seen.value, Some(renewed));

    holder.lease_release(LEASE, "n3").await.unwrap();
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
    let lease = cluster
        .node(f[0])
        .lease_acquire(LEASE, "n3", ttl)
        .await
        .unwrap();

    // Not yet expired: the take-over is refused by the leader.
    let early = cluster
        .node(f[1])
        .lease_takeover(LEASE, "crm", "n3", lease.seq, ttl)
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
    let taken = cluster
        .node(f[1])
        .lease_takeover(LEASE, "crm", "n3", lease.seq, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(taken.holder, "crm");
    assert!(taken.seq > lease.seq);
    // The old holder can no longer renew.
    let err = cluster
        .node(f[0])
        .lease_renew(LEASE, "n3")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHolder { .. }));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_rejected_after_concurrent_renewal() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let ttl = Duration::from_millis(300);
    cluster
        .node(f[0])
        .lease_acquire(LEASE, "n3", ttl)
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let expired = cluster.node(leader).expired_leases().await.unwrap();
    let (_, observed) = expired.into_iter().next().expect("lease expired");

    // The holder renews after the CRM observed expiry but before its
    // take-over is committed.
    let renewed = cluster.node(f[0]).lease_renew(LEASE, "n3").await.unwrap();
    assert!(renewed.seq > observed.seq);

    let err = cluster
        .node(leader)
        .lease_takeover(LEASE, "crm", &observed.holder, observed.seq, ttl)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TakeoverRejected {
            name: LEASE.into(),
            current: Some(renewed.clone())
        }
    );
    // The same command sent raw through a follower is rejected as well
    // (the apply-time sequence check itself is covered by the state unit
    // tests, where no leader check stands in front of it).
    let response = cluster
        .node(f[1])
        .write(raft::Command::LeaseTakeover {
            name: LEASE.into(),
            new_holder: "crm".into(),
            expected_holder: "n3".into(),
            expected_seq: observed.seq,
            ttl_ms: 300,
        })
        .await
        .unwrap_err();
    assert!(matches!(response, StoreError::TakeoverRejected { .. }));
    let still = cluster
        .node(f[1])
        .read_linearizable(|s| s.lease(LEASE).cloned())
        .await
        .unwrap();
    assert_eq!(still.value, Some(renewed));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_resets_deadlines_to_full_ttl() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let holder_node = cluster.followers(old_leader)[0];
    let ttl = Duration::from_millis(2000);
    let acquired_at = Instant::now();
    let lease = cluster
        .node(holder_node)
        .lease_acquire(LEASE, "n3", ttl)
        .await
        .unwrap();
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
