//! The simulated resources `vm`, `ct` and `fa` (spec section 8.5) and the
//! LRM's [`Executor`] over them.
//!
//! As the daemon's executor, a start needs the fencing token: a valid
//! lease and a watchdog that answers (the daemon's `AgentExecutor`
//! answers `ETRY_AGAIN` without one, and the LRM tries again next round).

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::crm::{exit_code, ConfiguredResource, Level, ServiceState};
use crate::domain::{NodeName, Sid};
use crate::lrm::{log_step, CommandRequest, Executor, LrmStep};

use super::node::SimNode;

/// The simulated resources (spec section 8.5) as seen during one LRM
/// iteration: disjoint borrows of the world. Config moves are applied
/// after the iteration (one command per service per iteration, so nothing
/// reads them earlier).
pub struct ResourceSim<'a> {
    /// The nodes (their running guests).
    pub nodes: &'a mut BTreeMap<NodeName, SimNode>,
    /// The service configuration.
    pub services: &'a BTreeMap<Sid, ConfiguredResource>,
    /// Guest config locks.
    pub guest_locks: &'a BTreeMap<Sid, String>,
    /// Failure counters of the `fa` resources.
    pub fa_tries: &'a mut BTreeMap<(Sid, &'static str), u32>,
    /// Safety violations seen.
    pub violations: &'a mut Vec<String>,
    /// The time as the log shows it, for violation texts.
    pub now_label: String,
    /// Config moves done by migrations, applied after the iteration.
    pub moves: Vec<(Sid, NodeName)>,
}

impl ResourceSim<'_> {
    fn violation(&mut self, msg: String) {
        self.violations.push(format!("{}: {msg}", self.now_label));
    }

    fn fa_params(sid: &Sid) -> (u32, u32, u32, u32) {
        let digits: Vec<u32> = sid.name().chars().filter_map(|c| c.to_digit(10)).collect();
        let get = |i: usize, d: u32| digits.get(i).copied().unwrap_or(d);
        (get(1, 0), get(2, 0), get(3, 0), get(5, 0))
    }

    fn fa_fails(&mut self, sid: &Sid, node: &NodeName, what: &'static str) -> bool {
        if sid.kind() != "fa" {
            return false;
        }
        let (start, migrate, _, limit) = Self::fa_params(sid);
        let count = if what == "start" { start } else { migrate };
        if limit == 0 || node.as_str() == format!("node{limit}") {
            let tries = self.fa_tries.entry((sid.clone(), what)).or_insert(0);
            *tries += 1;
            if count >= *tries {
                return true;
            }
        }
        self.fa_tries.insert((sid.clone(), what), 0);
        false
    }

    fn sim_start(&mut self, sid: &Sid, node: &NodeName, log: &mut Vec<LrmStep>) {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to start!"),
            );
            return;
        }
        if self.fa_fails(sid, node, "start") {
            return;
        }
        let others: Vec<NodeName> = self
            .nodes
            .iter()
            .filter(|(n, x)| *n != node && x.power && x.running.contains(sid))
            .map(|(n, _)| n.clone())
            .collect();
        for other in others {
            self.violation(format!(
                "service '{sid}' started on '{node}' while still running on '{other}' (running on two nodes)"
            ));
        }
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.insert(sid.clone());
        }
    }

    fn sim_shutdown(&mut self, sid: &Sid, node: &NodeName, log: &mut Vec<LrmStep>) {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to shutdown!"),
            );
            return;
        }
        if sid.kind() == "fa" && Self::fa_params(sid).2 != 0 {
            return;
        }
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.remove(sid);
        }
    }

    fn sim_migrate(
        &mut self,
        sid: &Sid,
        node: &NodeName,
        target: &NodeName,
        mut online: bool,
        log: &mut Vec<LrmStep>,
    ) -> bool {
        if let Some(lock) = self.guest_locks.get(sid) {
            log_step(
                log,
                Level::Err,
                format!("service '{sid}' locked ({lock}), unable to migrate!"),
            );
            return false;
        }
        if self.fa_fails(sid, node, "migrate") {
            return false;
        }
        let running = self.is_running(sid, node);
        if online && sid.kind() == "ct" && running {
            log_step(
                log,
                Level::Info,
                "unable to live migrate running container, fallback to relocate",
            );
            online = false;
        }
        let cmd = if online { "migrate" } else { "relocate" };
        log_step(
            log,
            Level::Info,
            format!("service {sid} - start {cmd} to node '{target}'"),
        );
        if !online && running {
            log_step(
                log,
                Level::Info,
                format!("stopping service {sid} (relocate)"),
            );
            self.sim_shutdown(sid, node, log);
            log_step(log, Level::Info, format!("service status {sid} stopped"));
        }
        self.moves.push((sid.clone(), target.clone()));
        log_step(
            log,
            Level::Info,
            format!("service {sid} - end {cmd} to node '{target}'"),
        );
        if let Some(x) = self.nodes.get_mut(node) {
            x.running.remove(sid);
        }
        true
    }

    fn is_running(&self, sid: &Sid, node: &NodeName) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|x| x.running.contains(sid))
    }
}

/// The LRM's executor in the simulator.
pub struct SimExecutor<'a> {
    /// The resources.
    pub sim: ResourceSim<'a>,
    /// The node the LRM runs on.
    pub node: NodeName,
    /// Whether the node holds the fencing token now (valid lease, a
    /// watchdog that answers); kept up to date by the lock port.
    pub token: &'a Cell<bool>,
}

impl Executor for SimExecutor<'_> {
    fn execute(&mut self, req: &CommandRequest, log: &mut Vec<LrmStep>) -> Option<i32> {
        let sid = &req.sid;
        let w = &mut self.sim;
        let node = self.node.clone();
        if !matches!(sid.kind(), "vm" | "ct" | "fa") {
            log_step(
                log,
                Level::Err,
                format!("service type '{}' not implemented", sid.kind()),
            );
            return Some(exit_code::EUNKNOWN_SERVICE_TYPE);
        }
        let Some(cfg_node) = w.services.get(sid).map(|e| e.node.clone()) else {
            log_step(
                log,
                Level::Err,
                format!("missing resource configuration for '{sid}'"),
            );
            return Some(exit_code::EUNKNOWN_SERVICE);
        };
        if req.command == ServiceState::Error {
            log_step(
                log,
                Level::Err,
                format!("service {sid} is in an error state and needs manual intervention. Look up 'ERROR RECOVERY' in the documentation."),
            );
            return Some(exit_code::SUCCESS);
        }
        if cfg_node != node {
            log_step(log, Level::Err, format!("service '{sid}' not on this node"));
            return Some(exit_code::EWRONG_NODE);
        }
        let running = w.is_running(sid, &node);
        let code = match req.command {
            ServiceState::Started => {
                if running {
                    exit_code::SUCCESS
                } else if !self.token.get() {
                    // No fencing token (lease not valid yet, or the
                    // watchdog does not answer): try again next round.
                    exit_code::ETRY_AGAIN
                } else {
                    log_step(log, Level::Info, format!("starting service {sid}"));
                    w.sim_start(sid, &node, log);
                    if w.is_running(sid, &node) {
                        log_step(log, Level::Info, format!("service status {sid} started"));
                        exit_code::SUCCESS
                    } else {
                        log_step(
                            log,
                            Level::Warning,
                            format!("unable to start service {sid}"),
                        );
                        exit_code::ERROR
                    }
                }
            }
            ServiceState::RequestStop | ServiceState::Stopped => {
                if !running {
                    exit_code::SUCCESS
                } else {
                    match req.timeout {
                        Some(t) => log_step(
                            log,
                            Level::Info,
                            format!("stopping service {sid} (timeout={t})"),
                        ),
                        None => log_step(log, Level::Info, format!("stopping service {sid}")),
                    }
                    w.sim_shutdown(sid, &node, log);
                    if w.is_running(sid, &node) {
                        log_step(
                            log,
                            Level::Info,
                            format!("unable to stop service {sid} (still running)"),
                        );
                        exit_code::ERROR
                    } else {
                        log_step(log, Level::Info, format!("service status {sid} stopped"));
                        exit_code::SUCCESS
                    }
                }
            }
            ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => {
                match &req.target {
                    None => exit_code::EINVALID_PARAMETER,
                    Some(t) if *t == cfg_node => exit_code::SUCCESS,
                    Some(_) if req.command == ServiceState::RequestStartBalance && running => {
                        log_step(
                            log,
                            Level::Info,
                            format!(
                                "ignoring rebalance-on-start for service {sid} - already running"
                            ),
                        );
                        exit_code::IGNORED
                    }
                    Some(t) => {
                        let online = req.command == ServiceState::Migrate;
                        if w.sim_migrate(sid, &node, t, online, log) {
                            exit_code::SUCCESS
                        } else {
                            log_step(
                                log,
                                Level::Err,
                                format!("service {sid} not moved (migration error)"),
                            );
                            exit_code::ERROR
                        }
                    }
                }
            }
            other => {
                log_step(log, Level::Err, format!("implement me (cmd '{other}')"));
                exit_code::EUNKNOWN_COMMAND
            }
        };
        Some(code)
    }
}
