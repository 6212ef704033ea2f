//! Fencing you can trust (issue 9): real daemons, three nodes, the `fast`
//! timing profile, each node in a network namespace of its own, and real
//! faults (SIGKILL, SIGSTOP, partitions, clean stops, a hung watchdog-mux).
//!
//! Every test is judged from what the heartbeat service itself wrote (see
//! `ha_manager::local_cluster::heartbeat`): never two writers at once, the
//! old writer gone before the new one starts, no interruption on a healthy
//! node; node resets are read from the test watchdog's log (`TEST BACKEND
//! FIRED` in the node's mux.log), not from `status`.
//!
//! Each test builds its own cluster (formation takes about a second) and
//! prints a `FAULT-RESULT` line with its measurements. Every wait has an
//! explicit bound (recovery: 60 s).
//!
//! What the tests require:
//! - a fault of the service's node (SIGKILL of its daemon, power cut,
//!   SIGSTOP beyond the lease ttl, two-way partition, hung watchdog-mux,
//!   and a partition right after a clean LRM restart): its writer stops
//!   within a bound (the lease ttl + slack at most), its watchdog fired
//!   (except for a power cut), the service comes back on another node
//!   after the old writer's last line, and runs exactly once afterwards;
//! - a fault of the leader while the service runs on a follower (two-way
//!   partition, SIGSTOP for 3 s and beyond the ttl): the follower is not
//!   reset, its writer stays the same and never pauses longer than 1 s;
//! - one-way partitions between the leader and the service's follower:
//!   never two writers, and the service runs exactly once after healing;
//! - clean stops (SIGTERM) and restarts, one node or all in turn: exit
//!   code 0, no reset, the same writer without a gap, and the service back
//!   `started` on its node;
//! - a node that boots again right after it was marked for fencing (before
//!   or after the CRM took its lease over): the service runs exactly once
//!   within the bound.
//!
//! `HA_FAULT_LOOPBACK=1` runs the nodes on loopback instead of namespaces
//! (the partition tests then fail at once), to tell a namespace effect
//! from a daemon bug.

mod common;

use std::time::{Duration, Instant};

use common::{start_netns, TestCluster};
use ha_manager::local_cluster::heartbeat::{now_ns, span, Beat, Heartbeats, Writer};
use ha_manager::local_cluster::wait_until;

/// How long recovery (or a restart) may take before the test fails.
const RECOVERY: Duration = Duration::from_secs(60);
/// The longest silence a healthy service may show.
const HEALTHY_GAP: Duration = Duration::from_secs(1);
/// Scheduling slack added to computed bounds (a busy 2-core machine).
const SLACK: Duration = Duration::from_secs(2);
/// Bound of a CLI call to a node that may be cut off or paused.
const QUICK: Duration = Duration::from_secs(5);
/// How long the single remaining writer is watched after a recovery.
const SETTLE: Duration = Duration::from_secs(3);

/// Where the service should run before the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the Raft leader.
    Leader,
    /// On a follower.
    Follower,
}

/// Collects every breach, so a failing test lists all of them at once.
#[derive(Default)]
struct Verdict {
    breaches: Vec<String>,
}

impl Verdict {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.breaches.push(what());
        }
    }
}

/// One test's cluster, its heartbeat service and the moment of the fault.
struct Run {
    c: TestCluster,
    test: &'static str,
    /// The heartbeat service's name (`exec:<name>`).
    name: String,
    sid: String,
    /// Node index the service ran on before the fault.
    on: usize,
    /// Leader index before the fault.
    leader: usize,
    /// The writer before the fault.
    writer: Writer,
    /// When the fault was injected (ns since the epoch).
    fault_at: u64,
    /// Each node's reset count before the fault.
    resets_before: Vec<usize>,
    verdict: Verdict,
    started: Instant,
}

/// Seconds of `t` relative to `origin`, signed.
fn rel(t: u64, origin: u64) -> String {
    if t >= origin {
        format!("+{:.3}s", span(origin, t).as_secs_f64())
    } else {
        format!("-{:.3}s", span(t, origin).as_secs_f64())
    }
}

/// The leader all live nodes agree on.
fn stable_leader(c: &TestCluster) -> usize {
    try_stable_leader(c, RECOVERY).expect("a leader")
}

/// The leader all live nodes agree on, waiting at most `limit`.
fn try_stable_leader(
    c: &TestCluster,
    limit: Duration,
) -> Result<usize, ha_manager::local_cluster::LocalClusterError> {
    wait_until(limit, "a leader all nodes agree on", || {
        let mut seen = None;
        for i in 0..c.nodes.len() {
            let out = c
                .cli_within(i, &["cluster", "status", "--output-format", "json"], QUICK)
                .ok()?;
            let cs: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            let leader = cs["leader"].as_str()?.to_string();
            if seen.get_or_insert_with(|| leader.clone()) != &leader {
                return None;
            }
        }
        c.index_of(&seen?)
    })
}

/// The status of `sid` as the first answering node among `via` shows it:
/// (crm state, node).
fn service_state(c: &TestCluster, via: &[usize], sid: &str) -> Option<(String, String)> {
    via.iter().find_map(|i| {
        let st = c.status_within(*i, QUICK).ok()?;
        let e = st.into_iter().find(|e| e.sid.as_deref() == Some(sid))?;
        Some((e.crm_state?, e.node?))
    })
}

/// The single writer active right now: exactly one writer in the last
/// second, with a beat in the last 400 ms.
fn single_active_writer(hb: &Heartbeats) -> Option<Writer> {
    let now = now_ns();
    let recent = hb.writers_between(now.saturating_sub(1_000_000_000), now);
    let last = hb.last()?;
    (recent.len() == 1 && now.saturating_sub(last.at) < 400_000_000).then(|| recent[0].clone())
}

/// Waits until heartbeat service `name` runs on exactly one node and
/// returns its writer.
fn wait_single_writer(c: &TestCluster, name: &str, limit: Duration) -> Option<Writer> {
    wait_until(limit, "exactly one heartbeat writer", || {
        single_active_writer(&c.heartbeats(name).ok()?)
    })
    .ok()
}

/// Moves `sid` (heartbeat `name`) to node `target` and waits until it
/// writes there and the CRM shows it `started` there.
fn place(c: &TestCluster, sid: &str, name: &str, target: usize) {
    let target_name = c.nodes[target].name.clone();
    let w = wait_single_writer(c, name, RECOVERY).expect("the service runs");
    if w.node != target_name {
        let out = c.cli(0, &["migrate", sid, &target_name]).expect("cli");
        assert_eq!(out.code, 0, "migrate: {}", out.stderr);
        wait_until(RECOVERY, "the service on its target node", || {
            let w = single_active_writer(&c.heartbeats(name).ok()?)?;
            (w.node == target_name).then_some(())
        })
        .expect("the service moves to its target node");
    }
    wait_until(RECOVERY, "the service started on its node", || {
        let (state, node) = service_state(c, &[0, 1, 2], sid)?;
        (state == "started" && node == target_name).then_some(())
    })
    .expect("the CRM shows the service started");
}

impl Run {
    /// A 3-node netns cluster with heartbeat service `name` running on a
    /// node of kind `place`.
    fn setup(test: &'static str, place_on: Place) -> Run {
        let started = Instant::now();
        let c = start_netns(3);
        let name = "hb".to_string();
        let sid = c.add_heartbeat_service(0, &name, &[]).expect("add");
        let mut placed = None;
        for _ in 0..3 {
            let leader = stable_leader(&c);
            let w = wait_single_writer(&c, &name, RECOVERY).expect("the service runs");
            let on = c.index_of(&w.node).expect("a node");
            let target = match place_on {
                Place::Leader => leader,
                Place::Follower if on != leader => on,
                Place::Follower => (leader + 1) % 3,
            };
            place(&c, &sid, &name, target);
            if stable_leader(&c) == leader {
                placed = Some((target, leader));
                break;
            }
        }
        let (on, leader) = placed.expect("a stable leader during placement");
        // Armed and settled: the LRM shows its watchdog active.
        let on_name = c.nodes[on].name.clone();
        wait_until(RECOVERY, "the service node's watchdog armed", || {
            let st = c.status_within(on, QUICK).ok()?;
            st.iter()
                .any(|e| {
                    e.kind == "lrm"
                        && e.node.as_deref() == Some(on_name.as_str())
                        && e.status.contains("watchdog active")
                })
                .then_some(())
        })
        .expect("watchdog armed");
        std::thread::sleep(Duration::from_millis(500));
        let writer = wait_single_writer(&c, &name, RECOVERY).expect("the service runs");
        assert_eq!(writer.node, on_name);
        let resets_before = (0..3).map(|i| c.resets(i)).collect();
        Run {
            c,
            test,
            name,
            sid,
            on,
            leader,
            writer,
            fault_at: 0,
            resets_before,
            verdict: Verdict::default(),
            started,
        }
    }

    fn on_name(&self) -> String {
        self.c.nodes[self.on].name.clone()
    }

    /// Marks the moment of the fault.
    fn fault_now(&mut self) {
        self.fault_at = now_ns();
    }

    fn hb(&self) -> Heartbeats {
        self.c.heartbeats(&self.name).expect("heartbeat file")
    }

    fn resets_since_fault(&self, i: usize) -> usize {
        self.c.resets(i).saturating_sub(self.resets_before[i])
    }

    /// The nodes other than `not`.
    fn others(&self, not: usize) -> Vec<usize> {
        (0..3).filter(|i| *i != not).collect()
    }

    /// Waits for a writer on another node than the service's.
    fn wait_writer_elsewhere(&self) -> Option<Beat> {
        let on = self.on_name();
        wait_until(RECOVERY, "the service on another node", || {
            self.hb().first_elsewhere(self.fault_at, &on).cloned()
        })
        .ok()
    }

    /// The service ends up started on exactly one node within RECOVERY,
    /// and stays the only writer for SETTLE. Returns that writer.
    fn check_runs_once(&mut self) -> Option<Writer> {
        let sid = self.sid.clone();
        let deadline = Instant::now() + RECOVERY;
        let started = wait_until(RECOVERY, "the CRM shows the service started", || {
            let (state, node) = service_state(&self.c, &[0, 1, 2], &sid)?;
            (state == "started").then_some(node)
        });
        // One bound for both: a stuck service fails after RECOVERY.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let w = wait_single_writer(&self.c, &self.name, left);
        self.verdict.check(started.is_ok(), || {
            format!(
                "the service is not `started` within {RECOVERY:?} (status: {:?})",
                service_state(&self.c, &[0, 1, 2], &sid)
            )
        });
        let Some(w) = w else {
            self.verdict.check(false, || {
                format!("the service does not run on exactly one node within {RECOVERY:?}")
            });
            return None;
        };
        std::thread::sleep(SETTLE);
        let after = single_active_writer(&self.hb());
        self.verdict.check(after.as_ref() == Some(&w), || {
            format!("the single writer {w} did not stay the only one: {after:?}")
        });
        Some(w)
    }

    /// Never two writers, no malformed line, every writer on a node.
    fn check_never_two_writers(&mut self) {
        let hb = self.hb();
        let overlaps = hb.overlaps();
        self.verdict.check(overlaps.is_empty(), || {
            let list: Vec<String> = overlaps
                .iter()
                .map(|o| {
                    format!(
                        "{} and {} from {} to {}",
                        o.earlier,
                        o.later,
                        rel(o.from, self.fault_at),
                        rel(o.to, self.fault_at)
                    )
                })
                .collect();
            format!("TWO WRITERS AT ONCE: {}", list.join("; "))
        });
        let strays: Vec<String> = hb
            .spans()
            .iter()
            .filter(|s| self.c.index_of(&s.writer.node).is_none())
            .map(|s| s.writer.to_string())
            .collect();
        self.verdict.check(strays.is_empty(), || {
            format!("writers outside every node: {strays:?}")
        });
        self.verdict.check(hb.malformed().is_empty(), || {
            format!("malformed heartbeat lines: {:?}", hb.malformed())
        });
    }

    /// The service's node was healthy from the fault until now: no reset,
    /// the same writer, no gap longer than HEALTHY_GAP.
    fn check_undisturbed(&mut self) {
        let hb = self.hb();
        let now = now_ns();
        let gap = hb.longest_gap_in(self.fault_at, now, None);
        self.verdict.check(gap.len() <= HEALTHY_GAP, || {
            format!(
                "heartbeat gap of {:.3}s ({} .. {}) on a healthy node (limit {HEALTHY_GAP:?})",
                gap.len().as_secs_f64(),
                rel(gap.from, self.fault_at),
                rel(gap.to, self.fault_at)
            )
        });
        let writers = hb.writers_since(self.fault_at);
        self.verdict
            .check(writers == vec![self.writer.clone()], || {
                format!(
                    "writers since the fault: {writers:?}, expected only {}",
                    self.writer
                )
            });
        let resets = self.resets_since_fault(self.on);
        let on = self.on_name();
        self.verdict.check(resets == 0, || {
            format!("{on} was RESET {resets} time(s) by its watchdog (mux.log: TEST BACKEND FIRED)")
        });
    }

    /// The service's node was fenced: its writer stopped within
    /// `stop_bound` of the fault (and, with `expect_reset`, its watchdog
    /// fired), the service came back on another node, never two writers.
    /// Returns the new writer's first beat.
    fn check_fenced_failover(&mut self, stop_bound: Duration, expect_reset: bool) -> Option<Beat> {
        let new = self.wait_writer_elsewhere();
        let on = self.on_name();
        self.verdict.check(new.is_some(), || {
            format!("the service was not recovered on another node within {RECOVERY:?}")
        });
        let hb = self.hb();
        let old_last = hb.last_on(&on).map(|b| b.at).unwrap_or(0);
        self.verdict.check(
            old_last <= self.fault_at + stop_bound.as_nanos() as u64,
            || {
                format!(
                    "the old writer on {on} still wrote at {} (bound {:.1}s after the fault)",
                    rel(old_last, self.fault_at),
                    stop_bound.as_secs_f64()
                )
            },
        );
        if let Some(new) = &new {
            self.verdict.check(old_last < new.at, || {
                format!(
                    "the new writer {} started at {} before the old one on {on} stopped ({})",
                    new.writer,
                    rel(new.at, self.fault_at),
                    rel(old_last, self.fault_at)
                )
            });
        }
        if expect_reset {
            let resets = self.resets_since_fault(self.on);
            self.verdict.check(resets >= 1, || {
                format!("{on}'s watchdog never fired (no TEST BACKEND FIRED in its mux.log)")
            });
        }
        new
    }

    /// Boots node `i` again if its daemon is gone (after a reset).
    fn reboot_if_down(&mut self, i: usize) {
        if self.c.daemon_exited(i) || self.c.mux_exited(i) {
            if let Err(e) = self.c.start_node(i) {
                self.verdict.check(false, || {
                    format!("{} does not boot again: {e}", self.c.nodes[i].name)
                });
            }
        }
    }

    /// Starts node `i`'s daemon again after a stop: the daemon alone when
    /// the node was not reset (its mux and services still run), the whole
    /// node (a boot) when its watchdog fired.
    fn restart_daemon(&mut self, i: usize) {
        let result = if self.resets_since_fault(i) > 0 || self.c.mux_exited(i) {
            self.c.start_node(i)
        } else if self.c.daemon_exited(i) {
            self.c.start_daemon(i)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.verdict.check(false, || {
                format!("{} does not start again: {e}", self.c.nodes[i].name)
            });
        }
    }

    /// Prints the measurements and fails with every breach found.
    fn finish(mut self, extra: &str) {
        self.check_never_two_writers();
        let hb = self.hb();
        let origin = self.fault_at;
        let segments: Vec<String> = hb
            .segments()
            .iter()
            .map(|s| {
                format!(
                    "{}[{} .. {}]",
                    s.writer,
                    rel(s.first, origin),
                    rel(s.last, origin)
                )
            })
            .collect();
        let resets: Vec<String> = (0..3)
            .map(|i| format!("{}={}", self.c.nodes[i].name, self.resets_since_fault(i)))
            .collect();
        let gap = hb
            .longest_gap_in(origin, now_ns(), None)
            .len()
            .as_secs_f64();
        let summary = format!(
            "FAULT-RESULT {}: {} | service on {} (leader {}) | segments {} | longest gap after fault {:.3}s | resets {} | {} | took {:.1}s",
            self.test,
            if self.verdict.breaches.is_empty() { "PASS" } else { "FAIL" },
            self.on_name(),
            self.c.nodes[self.leader].name,
            segments.join(", "),
            gap,
            resets.join(" "),
            extra,
            self.started.elapsed().as_secs_f64()
        );
        eprintln!("{summary}");
        if !self.verdict.breaches.is_empty() {
            panic!(
                "{} breach(es):\n- {}\n{summary}\n{}",
                self.verdict.breaches.len(),
                self.verdict.breaches.join("\n- "),
                hb.describe(origin)
            );
        }
    }
}

/// Upper bound for the old writer to stop after a fault that silences the
/// daemon's lease keeper: the lease ttl (the node must be reset strictly
/// before the leader can see its lease expire) plus slack.
fn lease_bound(r: &Run) -> Duration {
    r.c.profile().lease_ttl + SLACK
}

/// Upper bound after a fault that breaks the watchdog client at once.
fn client_bound(r: &Run) -> Duration {
    let p = r.c.profile();
    p.mux_client_timeout + p.device_timeout + SLACK
}

// ---------------------------------------------------------------- kills

fn sigkill_daemon(test: &'static str, place: Place) {
    let mut r = Run::setup(test, place);
    r.fault_now();
    let on = r.on;
    r.c.kill_daemon(on).expect("kill");
    let bound = client_bound(&r);
    r.check_fenced_failover(bound, true);
    r.reboot_if_down(on);
    r.check_runs_once();
    r.finish("SIGKILL of the service node's daemon");
}

#[test]
fn sigkill_daemon_of_follower_running_the_service() {
    sigkill_daemon("sigkill_daemon_follower", Place::Follower);
}

#[test]
fn sigkill_daemon_of_leader_running_the_service() {
    sigkill_daemon("sigkill_daemon_leader", Place::Leader);
}

fn power_cut(test: &'static str, place: Place) {
    let mut r = Run::setup(test, place);
    r.fault_now();
    let on = r.on;
    r.c.kill_node(on);
    r.check_fenced_failover(SLACK, false);
    // The node boots again: the service must not run twice.
    r.c.start_node(on).expect("boot");
    r.check_runs_once();
    r.finish("SIGKILL of the whole service node, then boot");
}

#[test]
fn power_cut_of_follower_running_the_service() {
    power_cut("power_cut_follower", Place::Follower);
}

#[test]
fn power_cut_of_leader_running_the_service() {
    power_cut("power_cut_leader", Place::Leader);
}

fn hang_beyond_ttl(test: &'static str, place: Place) {
    let mut r = Run::setup(test, place);
    let on = r.on;
    let hold = r.c.profile().lease_ttl + Duration::from_secs(3);
    r.fault_now();
    r.c.pause_daemon(on).expect("SIGSTOP");
    std::thread::sleep(hold);
    r.c.resume_daemon(on).expect("SIGCONT");
    let bound = client_bound(&r);
    r.check_fenced_failover(bound, true);
    r.reboot_if_down(on);
    r.check_runs_once();
    r.finish(&format!(
        "SIGSTOP of the service node's daemon for {hold:?}"
    ));
}

#[test]
fn sigstop_beyond_ttl_of_follower_running_the_service() {
    hang_beyond_ttl("sigstop_beyond_ttl_follower", Place::Follower);
}

#[test]
fn sigstop_beyond_ttl_of_leader_running_the_service() {
    hang_beyond_ttl("sigstop_beyond_ttl_leader", Place::Leader);
}

// ------------------------------------------------------------ partitions

fn partition_service_node(test: &'static str, place: Place) {
    let mut r = Run::setup(test, place);
    let on = r.on;
    r.fault_now();
    r.c.partition(on).expect("partition");
    let bound = lease_bound(&r);
    let new = r.check_fenced_failover(bound, true);
    if new.is_some() {
        std::thread::sleep(SLACK);
    }
    r.c.heal().expect("heal");
    r.reboot_if_down(on);
    r.check_runs_once();
    r.finish("two-way partition of the service node");
}

#[test]
fn partition_of_follower_running_the_service() {
    partition_service_node("partition_follower_with_service", Place::Follower);
}

#[test]
fn partition_of_leader_running_the_service() {
    partition_service_node("partition_leader_with_service", Place::Leader);
}

/// A fault of the leader while the service runs on a follower: the
/// follower must not notice (no reset, no gap).
fn leader_fault_spares_follower(test: &'static str, what: &str, fault: impl FnOnce(&mut Run)) {
    let mut r = Run::setup(test, Place::Follower);
    r.fault_now();
    fault(&mut r);
    r.c.heal().expect("heal");
    std::thread::sleep(SETTLE);
    r.check_undisturbed();
    let leader = r.leader;
    r.reboot_if_down(leader);
    r.check_runs_once();
    let leader_resets = r.resets_since_fault(leader);
    r.finish(&format!("{what}; leader resets {leader_resets}"));
}

#[test]
fn partition_of_leader_spares_the_follower_running_the_service() {
    leader_fault_spares_follower(
        "partition_leader_service_on_follower",
        "two-way partition of the leader for ttl*2",
        |r| {
            r.c.partition(r.leader).expect("partition");
            std::thread::sleep(r.c.profile().lease_ttl * 2);
        },
    );
}

#[test]
fn sigstop_of_leader_for_3s_spares_the_follower_running_the_service() {
    leader_fault_spares_follower(
        "sigstop_leader_3s_service_on_follower",
        "SIGSTOP of the leader for 3 s",
        |r| {
            let leader = r.leader;
            r.c.pause_daemon(leader).expect("SIGSTOP");
            std::thread::sleep(Duration::from_secs(3));
            r.c.resume_daemon(leader).expect("SIGCONT");
        },
    );
}

#[test]
fn sigstop_of_leader_beyond_ttl_spares_the_follower_running_the_service() {
    leader_fault_spares_follower(
        "sigstop_leader_beyond_ttl_service_on_follower",
        "SIGSTOP of the leader for ttl + 3 s",
        |r| {
            let leader = r.leader;
            r.c.pause_daemon(leader).expect("SIGSTOP");
            std::thread::sleep(r.c.profile().lease_ttl + Duration::from_secs(3));
            r.c.resume_daemon(leader).expect("SIGCONT");
        },
    );
}

/// One-way partition between the leader and the follower that runs the
/// service. With TCP a one-way loss stalls the connections of both
/// directions, so the follower may be fenced: only safety and recovery
/// are required.
fn one_way(test: &'static str, leader_to_follower: bool) {
    let mut r = Run::setup(test, Place::Follower);
    let (on, leader) = (r.on, r.leader);
    let hold = r.c.profile().lease_ttl * 2;
    r.fault_now();
    if leader_to_follower {
        r.c.partition_one_way(leader, on).expect("rule");
    } else {
        r.c.partition_one_way(on, leader).expect("rule");
    }
    std::thread::sleep(hold);
    // If the follower was fenced, let the recovery finish before healing.
    let hb = r.hb();
    if hb
        .last_on(&r.on_name())
        .is_some_and(|b| b.at < now_ns() - 1_000_000_000)
    {
        r.wait_writer_elsewhere();
    }
    r.c.heal().expect("heal");
    r.reboot_if_down(on);
    r.check_runs_once();
    let hb = r.hb();
    let gap = hb.longest_gap_in(r.fault_at, now_ns(), None).len();
    let moved = hb
        .writers_since(r.fault_at)
        .iter()
        .any(|w| w.node != r.on_name());
    let resets = r.resets_since_fault(on);
    r.finish(&format!(
        "one-way partition {} for {hold:?}: follower resets {resets}, service moved {moved}, longest gap {:.3}s",
        if leader_to_follower { "leader->follower" } else { "follower->leader" },
        gap.as_secs_f64()
    ));
}

#[test]
fn one_way_partition_leader_to_follower_running_the_service() {
    one_way("one_way_leader_to_follower", true);
}

#[test]
fn one_way_partition_follower_running_the_service_to_leader() {
    one_way("one_way_follower_to_leader", false);
}

// ----------------------------------------------------------- clean stops

fn clean_restart(test: &'static str, place: Place) {
    let mut r = Run::setup(test, place);
    let on = r.on;
    r.fault_now();
    let code = r.c.stop_daemon_clean(on, RECOVERY);
    r.verdict.check(matches!(code, Ok(0)), || {
        format!(
            "clean stop of {}: expected exit 0, got {code:?}",
            r.c.nodes[on].name
        )
    });
    let sid = r.sid.clone();
    let others = r.others(on);
    let frozen = wait_until(Duration::from_secs(20), "the service frozen", || {
        let (state, _) = service_state(&r.c, &others, &sid)?;
        (state == "freeze").then_some(())
    });
    // Stopped for a while: longer than the lease ttl.
    std::thread::sleep(r.c.profile().lease_ttl + Duration::from_secs(1));
    r.restart_daemon(on);
    let on_name = r.on_name();
    let back = wait_until(RECOVERY, "the service started on its node again", || {
        let (state, node) = service_state(&r.c, &[0, 1, 2], &sid)?;
        (state == "started" && node == on_name).then_some(())
    });
    r.verdict.check(back.is_ok(), || {
        format!(
            "after the restart the service is not `started` on {on_name} within {RECOVERY:?}: {:?}",
            service_state(&r.c, &[0, 1, 2], &sid)
        )
    });
    std::thread::sleep(SETTLE);
    r.check_undisturbed();
    r.finish(&format!(
        "clean stop (exit {code:?}), frozen seen {}, restart",
        frozen.is_ok()
    ));
}

#[test]
fn clean_stop_and_restart_of_follower_running_the_service() {
    clean_restart("clean_restart_follower", Place::Follower);
}

#[test]
fn clean_stop_and_restart_of_leader_running_the_service() {
    clean_restart("clean_restart_leader", Place::Leader);
}

#[test]
fn rolling_restart_resets_no_node_and_interrupts_no_service() {
    let started = Instant::now();
    let mut c = start_netns(3);
    let names = ["roll1", "roll2", "roll3"];
    let sids: Vec<String> = names
        .iter()
        .map(|n| c.add_heartbeat_service(0, n, &[]).expect("add"))
        .collect();
    for (k, (sid, name)) in sids.iter().zip(names).enumerate() {
        place(&c, sid, name, k);
    }
    std::thread::sleep(Duration::from_secs(1));
    let writers: Vec<Writer> = names
        .iter()
        .map(|n| wait_single_writer(&c, n, RECOVERY).expect("runs"))
        .collect();
    let resets_before: Vec<usize> = (0..3).map(|i| c.resets(i)).collect();
    let t0 = now_ns();
    let mut breaches = Vec::new();
    let mut codes = Vec::new();
    for i in 0..3 {
        let code = c.stop_daemon_clean(i, RECOVERY);
        if !matches!(code, Ok(0)) {
            breaches.push(format!("clean stop of {}: {code:?}", c.nodes[i].name));
        }
        codes.push(code);
        std::thread::sleep(Duration::from_secs(1));
        if c.resets(i) > resets_before[i] || c.mux_exited(i) {
            c.start_node(i).expect("boot");
        } else {
            c.start_daemon(i).expect("restart");
        }
        let node = c.nodes[i].name.clone();
        let sid = sids[i].clone();
        // Wait until the node's service is back under HA control and the
        // nodes agree on a leader; another node reset meanwhile boots
        // again (its reset is a breach counted below).
        let deadline = Instant::now() + RECOVERY;
        let settled = loop {
            for j in (0..3).filter(|j| *j != i) {
                if c.daemon_exited(j) || c.mux_exited(j) {
                    c.start_node(j).expect("boot");
                }
            }
            let back = service_state(&c, &[0, 1, 2], &sid)
                .is_some_and(|(state, n)| state == "started" && n == node);
            if back && try_stable_leader(&c, QUICK).is_ok() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if !settled {
            breaches.push(format!(
                "after the restart of {node}: within {RECOVERY:?} no agreed leader or {sid} not `started` on {node} ({:?})",
                service_state(&c, &[0, 1, 2], &sid)
            ));
        }
    }
    std::thread::sleep(SETTLE);
    let now = now_ns();
    let mut summary = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let hb = c.heartbeats(name).expect("file");
        for o in hb.overlaps() {
            breaches.push(format!(
                "{name}: TWO WRITERS AT ONCE {} and {}",
                o.earlier, o.later
            ));
        }
        let gap = hb.longest_gap_in(t0, now, None);
        if gap.len() > HEALTHY_GAP {
            breaches.push(format!(
                "{name}: heartbeat gap {:.3}s ({} .. {})",
                gap.len().as_secs_f64(),
                rel(gap.from, t0),
                rel(gap.to, t0)
            ));
        }
        let ws = hb.writers_since(t0);
        if ws != vec![writers[k].clone()] {
            breaches.push(format!(
                "{name}: writers {ws:?}, expected only {}",
                writers[k]
            ));
        }
        summary.push(format!(
            "{name} gap {:.3}s writers {}",
            gap.len().as_secs_f64(),
            ws.len()
        ));
    }
    for (i, before) in resets_before.iter().enumerate() {
        let resets = c.resets(i) - before;
        if resets > 0 {
            breaches.push(format!("{} was RESET {resets} time(s)", c.nodes[i].name));
        }
    }
    let line = format!(
        "FAULT-RESULT rolling_restart: {} | exits {codes:?} | {} | took {:.1}s",
        if breaches.is_empty() { "PASS" } else { "FAIL" },
        summary.join(", "),
        started.elapsed().as_secs_f64()
    );
    eprintln!("{line}");
    assert!(
        breaches.is_empty(),
        "{} breach(es):\n- {}\n{line}",
        breaches.len(),
        breaches.join("\n- ")
    );
}

#[test]
fn lrm_restart_then_partition_never_runs_two_copies() {
    let mut r = Run::setup("lrm_restart_then_partition", Place::Follower);
    let on = r.on;
    let code = r.c.stop_daemon_clean(on, RECOVERY);
    let reset = r.c.resets(on) > r.resets_before[on];
    assert!(
        matches!(code, Ok(0)) && !reset,
        "precondition: the LRM restart must be clean (exit 0, no reset) to test what follows; \
         got exit {code:?}, {} reset(s) of {}",
        r.c.resets(on) - r.resets_before[on],
        r.on_name()
    );
    std::thread::sleep(Duration::from_secs(1));
    r.restart_daemon(on);
    let sid = r.sid.clone();
    let on_name = r.on_name();
    let back = wait_until(RECOVERY, "the service under HA control on its node", || {
        let (state, node) = service_state(&r.c, &[0, 1, 2], &sid)?;
        (state == "started" && node == on_name).then_some(())
    });
    let still = wait_until(RECOVERY, "the service writing on its node", || {
        single_active_writer(&r.hb()).filter(|w| w.node == on_name)
    })
    .ok();
    assert!(
        back.is_ok() && still.as_ref().is_some_and(|w| w.node == on_name),
        "precondition: after the LRM restart (exit {code:?}) the service must run under HA control on {on_name}; status {:?}, writer {still:?}",
        service_state(&r.c, &[0, 1, 2], &sid)
    );
    std::thread::sleep(Duration::from_secs(1));
    r.resets_before = (0..3).map(|i| r.c.resets(i)).collect();
    r.fault_now();
    r.c.partition(on).expect("partition");
    let bound = lease_bound(&r);
    let new = r.check_fenced_failover(bound, true);
    if new.is_some() {
        std::thread::sleep(SLACK);
    }
    r.c.heal().expect("heal");
    r.reboot_if_down(on);
    r.check_runs_once();
    r.finish(&format!(
        "clean stop (exit {code:?}) + start, then two-way partition"
    ));
}

// ------------------------------------------- quick return after a fence

/// Waits until the CRM (on a survivor) shows the service in `fence`.
fn wait_fence(r: &Run) -> Result<(), String> {
    let others = r.others(r.on);
    let sid = r.sid.clone();
    wait_until(Duration::from_secs(30), "the service in fence", || {
        let (state, _) = service_state(&r.c, &others, &sid)?;
        (state == "fence").then_some(())
    })
    .map_err(|e| e.to_string())
}

/// Whether a survivor's daemon log (past `log_offsets`) says it took over
/// the service node's agent lease.
fn takeover_logged(r: &Run, log_offsets: &[u64]) -> bool {
    let on = r.on_name();
    r.others(r.on).into_iter().any(|i| {
        let Ok(log) = std::fs::read(r.c.nodes[i].dir.join("daemon.log")) else {
            return false;
        };
        let start = usize::try_from(log_offsets[i]).unwrap_or(0).min(log.len());
        String::from_utf8_lossy(&log[start..])
            .lines()
            .any(|l| l.contains("took over the expired agent lease") && l.contains(&on))
    })
}

/// Waits until a survivor's daemon log says it took over the node's lease.
fn wait_takeover(r: &Run, log_offsets: &[u64]) -> Result<(), String> {
    wait_until(Duration::from_secs(30), "the lease take-over", || {
        takeover_logged(r, log_offsets).then_some(())
    })
    .map_err(|e| e.to_string())
}

fn quick_return(test: &'static str, after_takeover: bool) {
    let mut r = Run::setup(test, Place::Follower);
    let on = r.on;
    let offsets: Vec<u64> = (0..3)
        .map(|i| {
            std::fs::metadata(r.c.nodes[i].dir.join("daemon.log"))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .collect();
    r.fault_now();
    r.c.kill_node(on);
    let fence = wait_fence(&r);
    r.verdict.check(fence.is_ok(), || {
        format!("the CRM never showed the service in fence: {fence:?}")
    });
    let takeover = if after_takeover {
        let t = wait_takeover(&r, &offsets);
        r.verdict
            .check(t.is_ok(), || format!("no lease take-over logged: {t:?}"));
        t.is_ok()
    } else {
        false
    };
    let boot_at = now_ns();
    r.c.start_node(on).expect("boot");
    r.check_runs_once();
    let taken_over_at_all = takeover_logged(&r, &offsets);
    let boot = rel(boot_at, r.fault_at);
    r.finish(&format!(
        "power cut, boot {boot} after the fault ({} the lease take-over; take-over logged before boot {takeover}, at all {taken_over_at_all})",
        if after_takeover { "after" } else { "before" }
    ));
}

#[test]
fn node_returning_before_the_lease_takeover_runs_the_service_once() {
    quick_return("quick_return_before_takeover", false);
}

#[test]
fn node_returning_after_the_lease_takeover_runs_the_service_once() {
    quick_return("quick_return_after_takeover", true);
}

// ------------------------------------------------------ hung watchdog-mux

#[test]
fn hung_watchdog_mux_stops_the_node_and_the_service_moves() {
    let mut r = Run::setup("hung_mux", Place::Follower);
    let on = r.on;
    let hold = r.c.profile().lease_ttl * 2;
    r.fault_now();
    r.c.pause_mux(on).expect("SIGSTOP mux");
    let bound = r.c.profile().device_timeout + SLACK;
    let new = r.check_fenced_failover(bound, true);
    let elapsed = span(r.fault_at, now_ns());
    if elapsed < hold {
        std::thread::sleep(hold - elapsed);
    }
    r.c.resume_mux(on).expect("SIGCONT mux");
    // A hung mux is a broken node: power-cycle it.
    r.c.kill_node(on);
    r.c.start_node(on).expect("boot");
    r.check_runs_once();
    r.finish(&format!(
        "SIGSTOP of the service node's watchdog-mux (recovered elsewhere: {})",
        new.is_some()
    ));
}
