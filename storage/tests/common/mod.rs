//! A tiny key/value application used to exercise the generic stores.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::{EntryPayload, LogId};
use storage::codec::{self, CodecError};
use storage::Application;

openraft::declare_raft_types!(
    /// Test type config: commands are `key=value` strings.
    pub KvConfig:
);

/// Applies `key=value` strings to a map; responds with the previous value.
#[derive(Default, Debug)]
pub struct KvApp {
    pub map: BTreeMap<String, String>,
}

impl Application<KvConfig> for KvApp {
    fn apply(
        &mut self,
        _log_id: &LogId<u64>,
        payload: &EntryPayload<KvConfig>,
        _now: std::time::Instant,
    ) -> String {
        match payload {
            EntryPayload::Normal(cmd) => {
                let (k, v) = cmd.split_once('=').unwrap_or((cmd.as_str(), ""));
                self.map
                    .insert(k.to_string(), v.to_string())
                    .unwrap_or_default()
            }
            _ => String::new(),
        }
    }

    fn to_snapshot(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode("kv snapshot", &self.map)
    }

    fn restore(&mut self, snapshot: &[u8], _now: std::time::Instant) -> Result<(), CodecError> {
        self.map = codec::decode("kv snapshot", snapshot)?;
        Ok(())
    }
}
