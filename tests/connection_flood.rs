//! A connection flood against one node of a real 3-node cluster on
//! loopback (`fast` profile): N idle connections and N slow ones (a
//! started header, or a started POST body that never finishes) held
//! against the node's one port for longer than the lease TTL, re-opened
//! whenever the node closes them. No node may lose its lease or be fenced
//! (the heartbeat service keeps beating from the same process, no test
//! watchdog fires, no "lost lock" or "fenced" in any log), and an
//! authenticated `status` answers throughout.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::start;
use ha_manager::local_cluster::heartbeat::now_ns;
use ha_manager::local_cluster::wait_until;

/// Connections of each kind (idle, slow) wanted; fewer if the open-file
/// limit of this process does not allow them (printed).
const WANTED_PER_KIND: usize = 5_000;

/// How long the flood is held (the `fast` lease TTL is 5 s).
const HOLD: Duration = Duration::from_secs(15);

/// Threads opening and re-opening flood connections.
const FLOOD_THREADS: usize = 8;

/// What a flood connection sends after connecting, then nothing more.
fn opening(kind: usize) -> &'static [u8] {
    match kind % 4 {
        // Idle: nothing at all.
        0 => b"",
        // Headers that never end.
        1 => b"POST /raft/append HTTP/1.1\r\nHost: x\r\nContent-Le",
        // A body that never ends on the join route, without the token.
        2 => b"POST /api/v1/cluster/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"token\": \"",
        // A body that never ends on a Raft route, without the secret.
        _ => b"POST /raft/append HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n\x01\x02",
    }
}

fn open(addr: SocketAddr, kind: usize) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.write_all(opening(kind)).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Whether the node still holds `s` open without having answered.
fn alive(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        // EOF, an answer (401, 408: the node is done with it), or reset.
        _ => false,
    }
}

/// Raises this process's open-file limit to the hard limit; returns it.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    hard
}

#[test]
fn idle_and_slow_connections_cost_no_lease_and_status_still_answers() {
    let nofile = raise_nofile();
    // Keep 1,000 descriptors for the cluster's own processes' pipes, logs
    // and the CLI; the daemons inherit the raised limit.
    let per_kind = WANTED_PER_KIND.min((nofile.saturating_sub(1_000) / 2) as usize);
    eprintln!("open-file limit {nofile}: {per_kind} idle + {per_kind} slow connections");
    assert!(
        per_kind >= 500,
        "open-file limit {nofile} too low for a flood"
    );

    let c = start(3);
    let sid = c.add_heartbeat_service(0, "flood", &[]).expect("add");
    let home = wait_until(Duration::from_secs(60), "heartbeats", || {
        let beats = c.heartbeats("flood").ok()?;
        (beats.beats().len() > 5).then(|| beats.last().map(|b| b.writer.clone()))?
    })
    .expect("the heartbeat service runs");
    let target = c.leader().expect("a leader");
    let addr: SocketAddr = c.nodes[target].addr.parse().expect("addr");
    eprintln!(
        "flooding {} (leader) at {addr}; {sid} runs as {home}",
        c.nodes[target].name
    );
    let resets_before: Vec<usize> = (0..3).map(|i| c.resets(i)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicUsize::new(0));
    // Several threads, so a connect that waits for a full accept queue
    // does not hold up the others.
    let held: Arc<Vec<AtomicUsize>> =
        Arc::new((0..FLOOD_THREADS).map(|_| AtomicUsize::new(0)).collect());
    let flooders: Vec<_> = (0..FLOOD_THREADS)
        .map(|t| {
            let (stop, held, reopened) = (stop.clone(), held.clone(), reopened.clone());
            std::thread::spawn(move || {
                // Half idle (kind 0), half slow (kinds 1..=3).
                let kinds: Vec<usize> = (0..2 * per_kind)
                    .filter(|i| i % FLOOD_THREADS == t)
                    .map(|i| if i < per_kind { 0 } else { 1 + i % 3 })
                    .collect();
                let mut conns: Vec<Option<TcpStream>> = kinds.iter().map(|_| None).collect();
                while !stop.load(Ordering::Relaxed) {
                    let mut open_now = 0;
                    for (conn, &kind) in conns.iter_mut().zip(&kinds) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if conn.as_mut().is_some_and(alive) {
                            open_now += 1;
                        } else {
                            *conn = open(addr, kind);
                            reopened.fetch_add(1, Ordering::Relaxed);
                            if conn.is_some() {
                                open_now += 1;
                            }
                        }
                        if open_now % 100 == 0 {
                            held[t].store(open_now, Ordering::Relaxed);
                        }
                    }
                    held[t].store(open_now, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
                conns.len()
            })
        })
        .collect();
    let held_now = || {
        held.iter()
            .map(|h| h.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    let ramp = Instant::now();
    let flooded = wait_until(Duration::from_secs(30), "the flood to build up", || {
        (held_now() >= per_kind).then_some(())
    });
    eprintln!(
        "flood built up to {} open connections in {:?}",
        held_now(),
        ramp.elapsed()
    );
    flooded.expect("the flood builds up");

    let flood_start = now_ns();
    let started = Instant::now();
    let mut status_times = Vec::new();
    let mut max_held = 0;
    let daemon = c.nodes[target].daemon_pid().expect("daemon pid");
    let mut max_fds = 0;
    while started.elapsed() < HOLD {
        let fds = std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        max_fds = max_fds.max(fds);
        let asked = Instant::now();
        let out = c.cli(target, &["status"]).expect("the CLI runs");
        let took = asked.elapsed();
        assert_eq!(out.code, 0, "status failed under the flood: {}", out.stderr);
        assert!(out.stdout.contains(&sid), "{}", out.stdout);
        status_times.push(took);
        max_held = max_held.max(held_now());
        std::thread::sleep(Duration::from_millis(700));
    }
    let flood_end = now_ns();
    stop.store(true, Ordering::Relaxed);
    let total: usize = flooders
        .into_iter()
        .map(|f| f.join().expect("flooder"))
        .sum();
    eprintln!(
        "held up to {max_held} of {total} flood connections open at once; {} re-opened; status took {:?}",
        reopened.load(Ordering::Relaxed),
        status_times
    );
    assert!(
        max_held >= per_kind,
        "the flood never held even {per_kind} connections ({max_held})"
    );
    assert!(
        status_times.iter().all(|t| *t < Duration::from_secs(5)),
        "{status_times:?}"
    );
    // The daemon's connection limit (half of what its open-file limit
    // leaves after 512 descriptors) held: it never came near the limit.
    let limit = usize::try_from(nofile).expect("fits");
    eprintln!("the flooded daemon had at most {max_fds} descriptors open (limit {limit})");
    assert!(
        max_fds < limit / 2 + 1_000,
        "{max_fds} descriptors open of {limit}"
    );

    // No lease lost, no fencing, no watchdog reset, the service never
    // moved or paused.
    let beats = c.heartbeats("flood").expect("heartbeats");
    let writers = beats.writers_between(flood_start, flood_end);
    assert_eq!(
        writers,
        vec![home.clone()],
        "the service moved or restarted"
    );
    let gaps: Vec<Duration> = beats
        .beats()
        .windows(2)
        .filter(|w| w[1].at >= flood_start && w[0].at <= flood_end)
        .map(|w| Duration::from_nanos(w[1].at.saturating_sub(w[0].at)))
        .collect();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(!gaps.is_empty(), "no beats during the flood");
    assert!(
        longest < Duration::from_secs(2),
        "the service paused {longest:?} during the flood"
    );
    for (i, before) in resets_before.iter().enumerate() {
        assert_eq!(c.resets(i), *before, "node {i}'s watchdog fired");
        let log = std::fs::read_to_string(c.nodes[i].dir.join("daemon.log")).unwrap_or_default();
        for bad in ["lost lock", "fenced:"] {
            assert!(!log.contains(bad), "node {i} logged '{bad}'");
        }
    }
}
