//! Crash test: a separate process writes continuously and is killed with
//! SIGKILL at random points; after every restart each acknowledged write
//! must be present and the store must open cleanly.
//!
//! The child is this same test binary re-executed with `CHILD_DIR_ENV` set
//! (see `crash_child_process_entry`). Rounds: `RAFT_CRASH_ROUNDS` (default
//! 20).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

mod common;

use raft::{ClusterStore, DocKey, StoreConfig};

const CHILD_DIR_ENV: &str = "RAFT_CRASH_CHILD_DIR";
const CHILD_START_ENV: &str = "RAFT_CRASH_CHILD_START";
const WRITERS: u64 = 4;

/// Entry point of the child process; does nothing in a normal test run.
#[test]
fn crash_child_process_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_START_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(child(dir, start));
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

async fn child(dir: String, start: u64) {
    let mut config = StoreConfig::new(1, &dir, "127.0.0.1:1", common::node_tls(1)).fast();
    config.request_timeout = Duration::from_secs(10);
    let store = ClusterStore::start(config)
        .await
        .expect("store opens cleanly");
    if !store.is_initialized().await.unwrap() {
        store.initialize("127.0.0.1:1").await.unwrap();
    }
    let present = store
        .read_linearizable(|s| {
            s.docs()
                .filter_map(|(k, d)| match k {
                    DocKey::Config(name) if name.starts_with('w') => {
                        assert_eq!(&name[1..], d.value, "document content");
                        Some(d.value.clone())
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    say(&format!("READY {}", present.value.join(",")));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = start + w;
            loop {
                let key = DocKey::Config(format!("w{i}"));
                store.put_doc(key, Some(0), i.to_string()).await.unwrap();
                say(&format!("ACK {i}"));
                i += WRITERS;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Small xorshift so the kill points vary without a rand dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Round {
    present: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

/// Runs the child until READY, lets it write for `run_for`, kills it with
/// SIGKILL and returns what it reported.
fn run_child(dir: &std::path::Path, start: u64, run_for: Duration) -> Round {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_START_ENV, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("child-stderr.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut present = None;
    let mut acked = BTreeSet::new();
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    while present.is_none() {
        let wait = ready_deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(wait) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("child-stderr.log")).unwrap_or_default();
                panic!("child did not become ready (store failed to open?): {log}");
            }
        };
        // libtest may print "test <name> ... " on the same line first.
        if let Some(pos) = line.find("READY") {
            present = Some(
                line[pos + "READY".len()..]
                    .trim()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u64>().unwrap())
                    .collect::<BTreeSet<_>>(),
            );
        }
    }
    std::thread::sleep(run_for);
    // Child::kill sends SIGKILL on Unix.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    // Every ACK line the child wrote before it died was for a write that
    // had been acknowledged by the store.
    for line in rx.try_iter() {
        if let Some(i) = line.strip_prefix("ACK ") {
            acked.insert(i.parse::<u64>().unwrap());
        }
    }
    Round {
        present: present.unwrap_or_default(),
        acked,
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    let rounds: u64 = std::env::var("RAFT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::TempDir::new().unwrap();
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut all_acked = BTreeSet::new();
    for round in 0..=rounds {
        let run_for = if round == rounds {
            Duration::ZERO
        } else {
            Duration::from_millis(20 + next_random(&mut seed) % 400)
        };
        let outcome = run_child(dir.path(), round * 1_000_000, run_for);
        println!(
            "round {round}: {} present, {} acked in {run_for:?}",
            outcome.present.len(),
            outcome.acked.len()
        );
        let missing: Vec<_> = all_acked.difference(&outcome.present).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged writes lost after SIGKILL: {missing:?}"
        );
        all_acked.extend(outcome.acked);
    }
    assert!(
        all_acked.len() as u64 >= rounds,
        "the child acknowledged only {} writes in {rounds} rounds",
        all_acked.len()
    );
    println!(
        "{} acknowledged writes survived {rounds} SIGKILLs",
        all_acked.len()
    );
}
