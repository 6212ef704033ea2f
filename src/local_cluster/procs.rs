//! Finds service processes by their command line and tells which local
//! node's cgroup holds each, so tests and the demo check the processes
//! themselves rather than what the status reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agents::proc_info;

/// The command line of the local demo/test service `marker`: `sleep` with a
/// unique argument, exec'd so the supervised pid is the process itself.
pub fn marker_command(marker: u64) -> String {
    format!("exec sleep {marker}")
}

/// Live processes whose argv is exactly `sleep <marker>`.
pub fn marker_pids(marker: u64) -> Vec<u32> {
    let marker = marker.to_string();
    let matches = |pid: i32| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        args.len() == 2
            && args[0].rsplit(|b| *b == b'/').next() == Some(b"sleep".as_slice())
            && args[1] == marker.as_bytes()
    };
    let mut pids: Vec<u32> = proc_info::live_processes(|pid, _| matches(pid))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// One observation: the copies of a service that existed, with the index
/// of the node whose cgroup held each (None: outside every node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When it was seen.
    pub at: Instant,
    /// (pid, node index).
    pub copies: Vec<(u32, Option<usize>)>,
}

/// Samples a service's processes every few milliseconds in a thread and
/// keeps every change, so a test can assert "never two copies" over a
/// whole failover and the benchmark can time it.
pub struct ServiceWatch {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Observation>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the watch samples.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(10);

impl ServiceWatch {
    /// Starts watching `marker`; `node_of` maps a pid to its node index.
    pub fn start(marker: u64, node_of: impl Fn(u32) -> Option<usize> + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::<Observation>::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let copies: Vec<(u32, Option<usize>)> = marker_pids(marker)
                    .into_iter()
                    .map(|pid| (pid, node_of(pid)))
                    .collect();
                let mut log = match log2.lock() {
                    Ok(l) => l,
                    Err(p) => p.into_inner(),
                };
                if log.last().map(|o| &o.copies) != Some(&copies) {
                    log.push(Observation {
                        at: Instant::now(),
                        copies,
                    });
                }
                drop(log);
                std::thread::sleep(WATCH_INTERVAL);
            }
        });
        ServiceWatch {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// Every change seen so far.
    pub fn observations(&self) -> Vec<Observation> {
        match self.log.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The most copies seen at once.
    pub fn max_copies(&self) -> usize {
        self.observations()
            .iter()
            .map(|o| o.copies.len())
            .max()
            .unwrap_or(0)
    }

    /// The first time after `since` a copy ran on a node other than `not`.
    pub fn first_elsewhere(&self, since: Instant, not: usize) -> Option<(Instant, usize)> {
        self.observations().iter().find_map(|o| {
            if o.at < since {
                return None;
            }
            o.copies
                .iter()
                .find_map(|(_, n)| n.filter(|n| *n != not))
                .map(|n| (o.at, n))
        })
    }

    /// The first time after `since` no copy ran on node `node`.
    pub fn first_gone_from(&self, since: Instant, node: usize) -> Option<Instant> {
        self.observations()
            .iter()
            .find(|o| o.at >= since && !o.copies.iter().any(|(_, n)| *n == Some(node)))
            .map(|o| o.at)
    }
}

impl Drop for ServiceWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
