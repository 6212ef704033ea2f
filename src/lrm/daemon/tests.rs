//! Tests of the LRM rounds.

use super::*;
use crate::domain::ResourceConfig;

fn n(s: &str) -> NodeName {
    s.parse().unwrap()
}
fn sid(s: &str) -> Sid {
    s.parse().unwrap()
}

/// Records requests; answers with a fixed code or runs asynchronously.
/// vm:101..103 started with uids a, b, c.
fn three_started() -> (ManagerStatus, BTreeMap<Sid, ConfiguredResource>) {
    let ms = status_with(&[
        ("vm:101", ServiceState::Started, "a"),
        ("vm:102", ServiceState::Started, "b"),
        ("vm:103", ServiceState::Started, "c"),
    ]);
    (ms, resources(&["vm:101", "vm:102", "vm:103"], 1))
}

#[derive(Default)]
struct Recorder {
    calls: Vec<CommandRequest>,
    answer: Option<i32>,
}

impl Recorder {
    /// A recorder whose commands end at once with `code`.
    fn answering(code: i32) -> Self {
        Recorder {
            calls: Vec::new(),
            answer: Some(code),
        }
    }
}

impl Executor for Recorder {
    fn execute(&mut self, request: &CommandRequest, _log: &mut Vec<LrmStep>) -> Option<i32> {
        self.calls.push(request.clone());
        self.answer
    }
}

/// A lock that stands as told, counting the takes.
struct Lock(AgentLock, u32);

impl LockPort for Lock {
    fn take(&mut self) -> AgentLock {
        self.1 += 1;
        self.0
    }
}

fn valid() -> Lock {
    Lock(AgentLock::Valid, 0)
}

fn status_with(services: &[(&str, ServiceState, &str)]) -> ManagerStatus {
    let mut ms = ManagerStatus::default();
    ms.node_status
        .insert(n("node1"), crate::crm::NodeState::Online);
    for (s, st, uid) in services {
        let mut sd = ServiceRecord::new(*st, n("node1"));
        sd.uid = Some(uid.to_string());
        ms.service_status.insert(sid(s), sd);
    }
    ms
}

fn resources(names: &[&str], max_restart: u32) -> BTreeMap<Sid, ConfiguredResource> {
    names
        .iter()
        .map(|s| {
            let mut config = ResourceConfig::with_defaults(sid(s));
            config.max_restart = max_restart;
            (
                sid(s),
                ConfiguredResource {
                    config,
                    node: n("node1"),
                },
            )
        })
        .collect()
}

fn input<'a>(
    ms: &'a ManagerStatus,
    res: &'a BTreeMap<Sid, ConfiguredResource>,
    workers: usize,
) -> LrmInput<'a> {
    LrmInput {
        now_ms: 0,
        quorate: true,
        cluster_state_ok: true,
        cfs_rw_ok: true,
        manager_status: ms,
        resources: res,
        max_workers: workers,
        monitor_interval_ms: 10_000,
        finished: Vec::new(),
        watchdog_problem: None,
    }
}

#[test]
fn takes_lock_arms_watchdog_and_reports_results_by_uid_once() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(exit_code::SUCCESS);
    let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    assert_eq!(lrm.state(), LrmState::Active);
    assert!(out.steps.contains(&LrmStep::Do(LrmAction::WatchdogOpen)));
    let status = out.status.expect("status written");
    assert_eq!(status.results["u1"].exit_code, exit_code::SUCCESS);
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    assert_eq!(exec.calls.len(), 1, "same uid is executed at most once");
}

#[test]
fn workers_are_limited_and_one_command_per_service() {
    let (ms, res) = three_started();
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::default();
    lrm.iterate(&input(&ms, &res, 2), &mut exec, &mut valid());
    assert_eq!(exec.calls.len(), 2);
    lrm.iterate(&input(&ms, &res, 2), &mut exec, &mut valid());
    assert_eq!(exec.calls.len(), 2, "still running: nothing new starts");
    let mut inp = input(&ms, &res, 2);
    inp.finished = vec![(sid("vm:101"), exit_code::SUCCESS)];
    let out = lrm.iterate(&inp, &mut exec, &mut valid());
    assert_eq!(exec.calls.len(), 3);
    assert_eq!(exec.calls[2].sid, sid("vm:103"));
    assert!(out.status.unwrap().results.contains_key("a"));
}

#[test]
fn restart_policy_retries_before_reporting_error() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(exit_code::ERROR);
    let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    assert!(
        out.status.unwrap().results.is_empty(),
        "first failure is retried silently"
    );
    let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    assert_eq!(
        out.status.unwrap().results["u1"].exit_code,
        exit_code::ERROR
    );
    assert_eq!(exec.calls.len(), 2);
}

#[test]
fn fence_request_loses_the_lock_without_closing_the_watchdog() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(0);
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    let ms2 = status_with(&[("vm:101", ServiceState::Fence, "u2")]);
    let out = lrm.iterate(&input(&ms2, &res, 0), &mut exec, &mut valid());
    assert_eq!(lrm.state(), LrmState::LostAgentLock);
    assert!(lrm.watchdog_open());
    assert!(!out.steps.contains(&LrmStep::Do(LrmAction::WatchdogClose)));
    assert!(
        out.steps
            .contains(&LrmStep::Do(LrmAction::AbandonAgentLock)),
        "a fence request stops renewals and feeding"
    );
    // Still fenced next round: the lock is not taken again.
    let mut lock = valid();
    lrm.iterate(&input(&ms2, &res, 0), &mut exec, &mut lock);
    assert_eq!(lock.1, 0);
    assert_eq!(lrm.state(), LrmState::LostAgentLock);
}

#[test]
fn a_stopped_service_costs_nothing_once_its_stop_succeeded() {
    let ms = status_with(&[("vm:101", ServiceState::Stopped, "s1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(exit_code::SUCCESS);
    let mut lock = valid();
    // An LRM with only a stopped service stays idle; make it active.
    lrm.state = LrmState::Active;
    for _ in 0..5 {
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    }
    assert_eq!(exec.calls.len(), 1, "enforced once per uid");
    // A stop that fails is enforced again every round.
    let ms = status_with(&[("vm:101", ServiceState::Stopped, "s2")]);
    exec.answer = Some(exit_code::ERROR);
    for _ in 0..3 {
        lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    }
    assert_eq!(exec.calls.len(), 4);
}

#[test]
fn a_started_service_is_checked_again_only_every_monitor_interval() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(exit_code::SUCCESS);
    let mut lock = valid();
    let at = |t: u64| {
        let mut i = input(&ms, &res, 0);
        i.now_ms = t;
        i
    };
    let first = lrm.iterate(&at(0), &mut exec, &mut lock);
    let status = first.status.expect("status");
    for t in [1_000, 5_000, 9_999] {
        let out = lrm.iterate(&at(t), &mut exec, &mut lock);
        assert_eq!(out.status.unwrap().results, status.results);
    }
    assert_eq!(exec.calls.len(), 1);
    let out = lrm.iterate(&at(10_000), &mut exec, &mut lock);
    assert_eq!(exec.calls.len(), 2, "re-checked after the interval");
    assert_eq!(
        out.status.unwrap().results,
        status.results,
        "a healthy check changes nothing"
    );
}

#[test]
fn a_queued_command_keeps_its_place_while_workers_are_busy() {
    let (ms, res) = three_started();
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::default();
    let mut lock = valid();
    lrm.iterate(&input(&ms, &res, 1), &mut exec, &mut lock);
    lrm.iterate(&input(&ms, &res, 1), &mut exec, &mut lock);
    assert_eq!(lrm.workers[&sid("vm:103")].start_tries, 2);
}

#[test]
fn a_pending_lock_keeps_being_asked_for_but_is_not_used() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(0);
    let mut lock = Lock(AgentLock::Pending, 0);
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    assert_eq!(lrm.state(), LrmState::WaitForAgentLock);
    assert_eq!(lock.1, 1, "asked for");
    assert!(exec.calls.is_empty());
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    assert_eq!(lrm.state(), LrmState::Active);
    // The renewal falls behind: lost, but still asked for (no abandon).
    let mut lock = Lock(AgentLock::Pending, 0);
    let out = lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    assert_eq!(lrm.state(), LrmState::LostAgentLock);
    assert!(!out
        .steps
        .contains(&LrmStep::Do(LrmAction::AbandonAgentLock)));
    let mut lock = Lock(AgentLock::Pending, 0);
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    assert_eq!(lock.1, 1, "lost_agent_lock keeps trying to regain it");
}

#[test]
fn frozen_services_make_a_restarted_lrm_take_its_lock_before_the_crm_unfreezes() {
    let ms = status_with(&[("vm:101", ServiceState::Freeze, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(0);
    let mut lock = valid();
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut lock);
    assert_eq!(lock.1, 1);
    assert_eq!(lrm.state(), LrmState::Active);
    assert!(exec.calls.is_empty(), "frozen services are left alone");
}

#[test]
fn a_restart_releases_the_lock_unguarded_when_frozen_services_keep_running() {
    let ms = status_with(&[("vm:101", ServiceState::Started, "u1")]);
    let res = resources(&["vm:101"], 1);
    let mut lrm = Lrm::new(n("node1"), 0, &mut Vec::new());
    let mut exec = Recorder::answering(0);
    lrm.iterate(&input(&ms, &res, 0), &mut exec, &mut valid());
    lrm.shutdown_request(
        &input(&ms, &res, 0),
        NodeShutdown::None,
        ShutdownPolicy::Conditional,
    );
    let frozen = status_with(&[("vm:101", ServiceState::Freeze, "u2")]);
    let out = lrm.iterate(&input(&frozen, &res, 0), &mut exec, &mut valid());
    assert!(out.exit);
    let release = out
        .steps
        .iter()
        .position(|s| {
            *s == LrmStep::Do(LrmAction::ReleaseAgentLock {
                leave_unguarded: true,
            })
        })
        .expect("released, left unguarded");
    // The shell closes the watchdog only once the release committed
    // (lease core): asked for in either order here.
    assert!(release < out.steps.len());
    assert!(out.steps.contains(&LrmStep::Do(LrmAction::WatchdogClose)));
}
