//! Three-node clusters on loopback: election, replication, failover,
//! snapshot catch-up, CAS and membership.

mod common;

use std::time::Duration;

use common::TestCluster;
use raft::{DocKey, StoreError};

fn cfg(name: &str) -> DocKey {
    DocKey::Config(name.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_replication_and_forwarding() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let followers = cluster.followers(leader);
    assert_eq!(cluster.node(leader).membership().voters.len(), 3);
    assert!(cluster.node(leader).leader_term_ready().is_some());
    assert!(cluster.node(followers[0]).leader_term_ready().is_none());

    // A write sent to a follower is forwarded to the leader.
    let version = cluster
        .node(followers[0])
        .put_doc(cfg("resources"), Some(0), "exec:web\n".into())
        .await
        .unwrap();
    // The other follower sees it with a linearizable read...
    let read = cluster
        .node(followers[1])
        .read_linearizable(|s| s.doc(&cfg("resources")).cloned())
        .await
        .unwrap();
    let doc = read.value.expect("replicated");
    assert_eq!(doc.version, version);
    assert_eq!(doc.value, "exec:web\n");
    assert!(read.applied_index >= version);
    // ...and every node has it locally once it applied that index.
    for id in [leader, followers[0], followers[1]] {
        let local = cluster
            .node(id)
            .read_at_least(version, |s| s.doc(&cfg("resources")).map(|d| d.version))
            .await
            .unwrap();
        assert_eq!(local.value, Some(version));
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_and_writes_continue() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let v1 = cluster
        .node(old_leader)
        .put_doc(cfg("groups"), None, "one".into())
        .await
        .unwrap();
    cluster.kill(old_leader).await;
    let new_leader = cluster.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, old_leader);
    let survivor = cluster.followers(new_leader)[0];
    // Writes continue, through either survivor.
    let v2 = cluster
        .node(survivor)
        .put_doc(cfg("groups"), Some(v1), "two".into())
        .await
        .unwrap();
    assert!(v2 > v1);
    let read = cluster
        .node(new_leader)
        .read_linearizable(|s| s.doc(&cfg("groups")).cloned())
        .await
        .unwrap();
    assert_eq!(read.value.unwrap().value, "two");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_writes_one_wins() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    let base = cluster
        .node(leader)
        .put_doc(DocKey::ManagerStatus, Some(0), "{}".into())
        .await
        .unwrap();
    let a = cluster
        .node(f[0])
        .put_doc(DocKey::ManagerStatus, Some(base), "a".into());
    let b = cluster
        .node(f[1])
        .put_doc(DocKey::ManagerStatus, Some(base), "b".into());
    let (a, b) = tokio::join!(a, b);
    let (winner, loser) = match (&a, &b) {
        (Ok(v), Err(e)) | (Err(e), Ok(v)) => (*v, e.clone()),
        other => panic!("exactly one CAS write must win: {other:?}"),
    };
    assert_eq!(
        loser,
        StoreError::VersionConflict {
            key: DocKey::ManagerStatus,
            expected: base,
            current: winner
        }
    );
    // Creating an existing document with expected version 0 conflicts too.
    let err = cluster
        .node(leader)
        .put_doc(DocKey::ManagerStatus, Some(0), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::VersionConflict { expected: 0, .. }
    ));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_queue_and_lrm_status() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let f = cluster.followers(leader);
    cluster
        .node(f[0])
        .append_crm_command("migrate exec:web n2".into())
        .await
        .unwrap();
    cluster
        .node(f[1])
        .append_crm_command("stop exec:db 0".into())
        .await
        .unwrap();
    let taken = cluster.node(leader).take_crm_commands().await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(cluster
        .node(leader)
        .take_crm_commands()
        .await
        .unwrap()
        .is_empty());

    for (i, id) in [leader, f[0], f[1]].into_iter().enumerate() {
        cluster
            .node(id)
            .put_doc(
                DocKey::LrmStatus(format!("n{id}")),
                None,
                format!("{{\"i\":{i}}}"),
            )
            .await
            .unwrap();
    }
    let statuses = cluster
        .node(f[0])
        .read_linearizable(|s| s.lrm_statuses().count())
        .await
        .unwrap();
    assert_eq!(statuses.value, 3);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start_tuned(3, |mut c| {
        c.snapshot_every_entries = 20;
        c.keep_entries_behind_snapshot = 0;
        c
    })
    .await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    for i in 0..60 {
        cluster
            .node(leader)
            .put_doc(cfg(&format!("doc{i}")), Some(0), format!("v{i}"))
            .await
            .unwrap();
    }
    // Wait until the leader has snapshotted and purged its log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let purged = cluster.node(leader).raft().metrics().borrow().purged;
        if purged.is_some_and(|p| p.index >= 20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leader never purged its log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new node needs entries the leader no longer has: it must be sent a
    // snapshot.
    cluster.add_node(4, leader).await;
    let newcomer = cluster.node(4);
    let last = cluster
        .node(leader)
        .put_doc(cfg("after"), None, "x".into())
        .await
        .unwrap();
    let read = newcomer
        .read_at_least(last, |s| (s.docs().count(), s.doc(&cfg("doc0")).cloned()))
        .await
        .unwrap();
    assert_eq!(read.value.0, 61);
    assert_eq!(read.value.1.unwrap().value, "v0");
    let snapshot = newcomer.raft().metrics().borrow().snapshot;
    assert!(
        snapshot.is_some(),
        "newcomer must have installed a snapshot"
    );
    assert_eq!(newcomer.membership().learners.len(), 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_remove_node() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let victim = cluster.followers(leader)[0];
    cluster.node(victim).remove_node(victim).await.unwrap();
    let view = cluster.node(leader).membership();
    assert!(!view.voters.contains(&victim));
    assert!(!view.addrs.contains_key(&victim));
    assert_eq!(view.voters.len(), 2);
    // The remaining two still commit.
    cluster
        .node(leader)
        .put_doc(cfg("rules"), None, "r".into())
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_reopens_its_store_and_catches_up() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    let follower = cluster.followers(leader)[0];
    let before = cluster
        .node(leader)
        .put_doc(cfg("resources"), Some(0), "before".into())
        .await
        .unwrap();
    cluster
        .node(follower)
        .read_at_least(before, |_| ())
        .await
        .unwrap();
    cluster.restart(follower).await;
    // It reopens its sled store cleanly and has the earlier write...
    let local = cluster
        .node(follower)
        .read_at_least(before, |s| s.doc(&cfg("resources")).cloned())
        .await
        .unwrap();
    assert_eq!(local.value.unwrap().value, "before");
    // ...and it follows new writes.
    let after = cluster
        .node(leader)
        .put_doc(cfg("resources"), Some(before), "after".into())
        .await
        .unwrap();
    let local = cluster
        .node(follower)
        .read_at_least(after, |s| s.doc(&cfg("resources")).cloned())
        .await
        .unwrap();
    assert_eq!(local.value.unwrap().value, "after");
    cluster.shutdown().await;
}
