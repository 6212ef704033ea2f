//! openraft's own storage test suite against the sled stores.

mod common;

use common::{KvApp, KvConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use storage::{SledLogStore, SledStateMachine};
use tempfile::TempDir;

struct SledBuilder;

impl StoreBuilder<KvConfig, SledLogStore<KvConfig>, SledStateMachine<KvConfig, KvApp>, TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            TempDir,
            SledLogStore<KvConfig>,
            SledStateMachine<KvConfig, KvApp>,
        ),
        StorageError<u64>,
    > {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) = storage::open(dir.path(), KvApp::default()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("storage suite failed: {e}");
    }
}
