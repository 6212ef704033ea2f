//! Reopen, corruption and snapshot transfer tests on real sled files.

mod common;

use common::{KvApp, KvConfig};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote,
};
use storage::{SledLogStore, SledStateMachine};
use tempfile::TempDir;

fn entry(index: u64, cmd: &str) -> Entry<KvConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd.to_string()),
    }
}

#[tokio::test]
async fn log_vote_and_committed_survive_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let (mut log, _sm) = storage::open::<KvConfig, _>(dir.path(), KvApp::default()).unwrap();
        log.blocking_append([entry(1, "a=1"), entry(2, "b=2")])
            .await
            .unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        log.save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 2)))
            .await
            .unwrap();
    }
    let (mut log, _sm) = storage::open::<KvConfig, _>(dir.path(), KvApp::default()).unwrap();
    let entries = log.try_get_log_entries(0..10).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].payload, EntryPayload::Normal("b=2".to_string()));
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(
        log.read_committed().await.unwrap().map(|l| l.index),
        Some(2)
    );
}

#[tokio::test]
async fn corrupted_entry_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let mut log = SledLogStore::<KvConfig>::new(db.clone()).unwrap();
    log.blocking_append([entry(1, "a=1")]).await.unwrap();
    let tree = db.open_tree("raft_log").unwrap();
    tree.insert(2u64.to_be_bytes(), vec![1u8, 0xff, 0xff])
        .unwrap();
    tree.insert(3u64.to_be_bytes(), vec![42u8]).unwrap();
    let err = log.try_get_log_entries(1..4).await.unwrap_err();
    assert!(err.to_string().contains("log entry"), "{err}");
    assert!(log.get_log_state().await.is_err());
}

#[tokio::test]
async fn corrupted_snapshot_refuses_to_open() {
    let dir = TempDir::new().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.open_tree("state_machine")
        .unwrap()
        .insert("current_snapshot", vec![1u8, 7, 7])
        .unwrap();
    let err = SledStateMachine::<KvConfig, _>::new(db, KvApp::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("snapshot"), "{err}");
}

#[tokio::test]
async fn snapshot_builds_persists_and_installs() {
    let dir_a = TempDir::new().unwrap();
    let dir_b = TempDir::new().unwrap();
    let snapshot = {
        let (_log, mut sm) = storage::open::<KvConfig, _>(dir_a.path(), KvApp::default()).unwrap();
        sm.apply([entry(1, "a=1"), entry(2, "b=2")]).await.unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap()
    };
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(2));

    // The snapshot is on disk: reopening restores the state from it.
    let (_log, mut reopened) =
        storage::open::<KvConfig, _>(dir_a.path(), KvApp::default()).unwrap();
    let (applied, _) = reopened.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    assert_eq!(reopened.handle().read().app.map.get("b").unwrap(), "2");
    let current = reopened.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);

    // Install on another store.
    let (_log_b, mut sm_b) = storage::open::<KvConfig, _>(dir_b.path(), KvApp::default()).unwrap();
    sm_b.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(sm_b.handle().read().app.map.get("a").unwrap(), "1");
    let (applied, _) = sm_b.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
}

#[tokio::test]
async fn install_of_garbage_snapshot_fails_and_keeps_state() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = storage::open::<KvConfig, _>(dir.path(), KvApp::default()).unwrap();
    sm.apply([entry(1, "a=1")]).await.unwrap();
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 9)),
        last_membership: Default::default(),
        snapshot_id: "bad".into(),
    };
    let bad = Box::new(std::io::Cursor::new(vec![1u8, 200, 1, 2]));
    assert!(sm.install_snapshot(&meta, bad).await.is_err());
    assert_eq!(sm.handle().read().app.map.get("a").unwrap(), "1");
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(1));
}

#[tokio::test]
async fn force_single_member_keeps_the_log_and_appends_a_membership_in_a_new_term() {
    let dir = TempDir::new().unwrap();
    {
        let (mut log, _sm) = storage::open::<KvConfig, _>(dir.path(), KvApp::default()).unwrap();
        log.blocking_append([entry(1, "a=1"), entry(2, "b=2")])
            .await
            .unwrap();
        log.save_vote(&Vote::new(5, 3)).await.unwrap();
        let (term, index) = log
            .force_single_member(2, openraft::BasicNode::new("10.0.0.2:7400"))
            .unwrap();
        // Above every term seen (the vote's 5 beats the entries' 1).
        assert_eq!((term, index), (6, 3));
    }
    let (mut log, _sm) = storage::open::<KvConfig, _>(dir.path(), KvApp::default()).unwrap();
    let entries = log.try_get_log_entries(0..10).await.unwrap();
    assert_eq!(entries.len(), 3, "nothing of the old log is lost");
    assert_eq!(entries[1].payload, EntryPayload::Normal("b=2".to_string()));
    let EntryPayload::Membership(m) = &entries[2].payload else {
        panic!("not a membership entry: {:?}", entries[2]);
    };
    assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        m.get_node(&2).map(|n| n.addr.as_str()),
        Some("10.0.0.2:7400")
    );
    assert_eq!(entries[2].log_id.leader_id.term, 6);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(6, 2)));
}
