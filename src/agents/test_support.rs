//! Helpers shared by the agent tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::proc_info::{live_group_members, read_stat};
use super::FencingToken;

pub const TOKEN: FencingToken = FencingToken { term: 7, seq: 42 };

pub fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// True while `pid` is a live (not exited) process.
pub fn is_live(pid: i32) -> bool {
    read_stat(pid).unwrap().is_some_and(|s| !s.has_exited())
}

/// Polls `condition` until it holds; panics with `what` after 10 s.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `path` has non-empty content and returns it trimmed.
pub fn read_when_written(path: &Path) -> String {
    let mut text = String::new();
    wait_for(&format!("{} to be written", path.display()), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    text.trim().to_string()
}

/// The live members of process group `pgid`.
pub fn group(pgid: i32) -> Vec<i32> {
    live_group_members(pgid).unwrap()
}
