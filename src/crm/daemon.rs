//! The CRM daemon state machine (spec sections 3.1-3.3): who is master,
//! the manager lock, the CRM watchdog, going idle and shutting down.

use crate::domain::NodeName;

use super::history::{EventKind, HaEvent};
use super::manager::{Manager, ManagerInput};
use super::output::{CrmAction, CrmStep, Level, Steps};
use super::status::{DisarmState, ManagerStatus, NodeState, ServiceState};

/// Master rounds without any service before the CRM goes idle.
pub const MAX_IDLE_ROUNDS: u32 = 90;

/// The message of a failed cluster-store read.
pub const CFS_ERROR: &str = "cfs connection refused - not mounted?";

/// The CRM daemon state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmDaemonState {
    /// Before the first transition.
    Startup,
    /// Idle: no lock, no watchdog.
    WaitForQuorum,
    /// Another node is master.
    Slave,
    /// Holds the manager lock and runs the manager.
    Master,
    /// Transient: lock renewal failed.
    LostManagerLock,
}

impl CrmDaemonState {
    /// The state name.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmDaemonState::Startup => "startup",
            CrmDaemonState::WaitForQuorum => "wait_for_quorum",
            CrmDaemonState::Slave => "slave",
            CrmDaemonState::Master => "master",
            CrmDaemonState::LostManagerLock => "lost_manager_lock",
        }
    }
}

/// Everything one CRM iteration reads.
#[derive(Debug, Clone, Copy)]
pub struct CrmInput<'a> {
    /// This node is in a quorate partition.
    pub quorate: bool,
    /// The per-iteration cluster-state refresh worked (`cfs update`).
    pub cluster_state_ok: bool,
    /// Shared state can be read and written (`cfs rw`).
    pub cfs_rw_ok: bool,
    /// The stored manager status (empty if none).
    pub stored_status: &'a ManagerStatus,
    /// The manager lock is free, expired or already ours.
    pub manager_lock_available: bool,
    /// The snapshot for the manager round.
    pub manager: ManagerInput<'a>,
}

/// What one CRM iteration produces.
#[derive(Debug, Default)]
pub struct CrmOutput {
    /// Ordered log events and actions.
    pub steps: Vec<CrmStep>,
    /// The new manager status to write, if any.
    pub manager_status: Option<ManagerStatus>,
    /// The daemon exits (after a shutdown request).
    pub exit: bool,
}

/// The CRM daemon of one node.
#[derive(Debug)]
pub struct CrmDaemon {
    node: NodeName,
    state: CrmDaemonState,
    manager: Option<Manager>,
    watchdog_open: bool,
    disarmed_watchdog: bool,
    idle_rounds: u32,
    shutdown_request: bool,
    leader_only: bool,
}

impl CrmDaemon {
    /// Creates the daemon; logs `status change startup => wait_for_quorum`
    /// into `steps`.
    pub fn new(node: NodeName, steps: &mut Vec<CrmStep>) -> Self {
        let mut daemon = CrmDaemon {
            node,
            state: CrmDaemonState::Startup,
            manager: None,
            watchdog_open: false,
            disarmed_watchdog: false,
            idle_rounds: 0,
            shutdown_request: false,
            leader_only: false,
        };
        let mut out = Steps::default();
        daemon.set_state(&mut out, CrmDaemonState::WaitForQuorum, None);
        steps.extend(out.0);
        daemon
    }

    /// Marks this CRM as running only on the Raft leader, where the
    /// manager "lock" is leadership itself (default and fast profiles): no
    /// other node can become master while this one leads. Then services
    /// of its own node in `fence` do not keep it from becoming master
    /// (Proxmox's rule assumes another node takes the lock; here none can,
    /// and the services would stay in `fence` for good). Fencing its own
    /// node stays safe: the take-over needs the node's lease expired on
    /// this leader, which the timing rule allows only after the watchdog
    /// of the lease's holder fired, so no earlier run of this node still
    /// runs services; its current LRM takes no lock while it is fenced.
    pub fn set_leader_only(&mut self, leader_only: bool) {
        self.leader_only = leader_only;
    }

    /// The current state.
    pub fn state(&self) -> CrmDaemonState {
        self.state
    }

    /// True while the CRM watchdog is open.
    pub fn watchdog_open(&self) -> bool {
        self.watchdog_open
    }

    /// Forgets the decisions of a round whose writes did not all commit:
    /// the master continues from the manager status as stored.
    pub fn resync(&mut self, stored: &ManagerStatus) {
        if let Some(manager) = self.manager.as_mut() {
            manager.resync(stored);
        }
    }

    /// Asks the daemon to exit (it does so at its next iteration).
    pub fn shutdown_request(&mut self, steps: &mut Vec<CrmStep>) {
        steps.push(CrmStep::Log(super::LogEvent {
            level: Level::Info,
            message: "server received shutdown request".into(),
        }));
        self.shutdown_request = true;
    }

    fn set_state(&mut self, out: &mut Steps, new: CrmDaemonState, status: Option<&ManagerStatus>) {
        if self.state == new {
            return;
        }
        out.info(format!(
            "status change {} => {}",
            self.state.as_str(),
            new.as_str()
        ));
        if new == CrmDaemonState::Master {
            let empty = ManagerStatus::default();
            let mut manager = Manager::new(self.node.clone(), status.unwrap_or(&empty));
            manager.set_leader_only(self.leader_only);
            self.manager = Some(manager);
        } else {
            self.manager = None;
        }
        self.state = new;
    }

    fn can_get_active(&self, input: &CrmInput<'_>, out: &mut Steps) -> bool {
        if !input.quorate || !input.cluster_state_ok {
            return false;
        }
        if !input.cfs_rw_ok {
            out.log(
                Level::Err,
                format!("could not read manager status: {CFS_ERROR}"),
            );
            return false;
        }
        let ms = input.stored_status;
        let fenced = ms
            .service_status
            .values()
            .any(|sd| sd.node == self.node && sd.state == ServiceState::Fence);
        if fenced && !self.leader_only {
            return false;
        }
        if !input.manager.resources.is_empty() || !input.manager.unplaced.is_empty() {
            return true;
        }
        let master_ok = match &ms.master_node {
            None => true,
            Some(m) => m == &self.node || ms.node_status.get(m) != Some(&NodeState::Online),
        };
        if !master_ok {
            return false;
        }
        let stale_maintenance = ms
            .node_status
            .iter()
            .any(|(n, s)| *s == NodeState::Maintenance && !ms.maintenance_requested(n));
        stale_maintenance
            || !input.manager.crm_commands.is_empty()
            || !ms.service_status.is_empty()
            || ms.disarm.is_some()
    }

    fn take_lock(&mut self, input: &CrmInput<'_>, out: &mut Steps) -> bool {
        if !input.manager_lock_available {
            return false;
        }
        out.act(CrmAction::TakeManagerLock);
        if self.watchdog_open {
            out.act(CrmAction::WatchdogUpdate);
        } else if !self.disarmed_watchdog {
            if input
                .stored_status
                .disarm
                .is_some_and(|d| d.state == DisarmState::Disarmed)
            {
                out.info("taking over as disarmed master, skipping watchdog");
                self.disarmed_watchdog = true;
            } else {
                out.act(CrmAction::WatchdogOpen);
                self.watchdog_open = true;
            }
        }
        true
    }

    fn close_watchdog(&mut self, out: &mut Steps) {
        if self.watchdog_open {
            out.act(CrmAction::WatchdogClose);
            self.watchdog_open = false;
        }
    }

    /// Runs one iteration.
    pub fn iterate(&mut self, input: &CrmInput<'_>) -> CrmOutput {
        let mut out = Steps::default();
        let mut result = CrmOutput::default();
        let stored = input.stored_status;
        let was = self.state;
        match self.state {
            CrmDaemonState::WaitForQuorum | CrmDaemonState::Startup => {
                if self.can_get_active(input, &mut out) {
                    if self.take_lock(input, &mut out) {
                        self.set_state(&mut out, CrmDaemonState::Master, Some(stored));
                    } else {
                        self.set_state(&mut out, CrmDaemonState::Slave, None);
                    }
                }
            }
            CrmDaemonState::Slave => {
                if self.can_get_active(input, &mut out) {
                    if self.take_lock(input, &mut out) {
                        self.set_state(&mut out, CrmDaemonState::Master, Some(stored));
                    }
                } else {
                    self.set_state(&mut out, CrmDaemonState::WaitForQuorum, None);
                }
            }
            CrmDaemonState::LostManagerLock => {}
            CrmDaemonState::Master => {
                if !self.take_lock(input, &mut out) {
                    self.set_state(&mut out, CrmDaemonState::LostManagerLock, None);
                } else if input.quorate
                    && input.cluster_state_ok
                    && stored.disarm.is_none()
                    && input.manager.resources.is_empty()
                    && input.manager.unplaced.is_empty()
                    && stored.service_status.is_empty()
                {
                    self.idle_rounds += 1;
                    if self.idle_rounds > MAX_IDLE_ROUNDS {
                        out.info(format!(
                            "cluster had no service configured for {MAX_IDLE_ROUNDS} rounds, going idle."
                        ));
                        out.act(CrmAction::ReleaseManagerLock);
                        self.close_watchdog(&mut out);
                        self.idle_rounds = 0;
                        self.set_state(&mut out, CrmDaemonState::WaitForQuorum, None);
                    }
                } else {
                    self.idle_rounds = 0;
                }
            }
        }

        if self.state == CrmDaemonState::Master && was != CrmDaemonState::Master {
            out.event(
                HaEvent::new(
                    input.manager.now_ms,
                    EventKind::Master,
                    format!("node '{}' became the CRM master", self.node),
                )
                .node(&self.node),
            );
        }
        match self.state {
            CrmDaemonState::WaitForQuorum | CrmDaemonState::Slave | CrmDaemonState::Startup => {
                result.exit = self.shutdown_request;
            }
            CrmDaemonState::LostManagerLock => {
                self.close_watchdog(&mut out);
                if self.shutdown_request {
                    result.exit = true;
                } else {
                    self.set_state(&mut out, CrmDaemonState::WaitForQuorum, None);
                }
            }
            CrmDaemonState::Master => {
                if self.shutdown_request {
                    self.close_watchdog(&mut out);
                    out.info("voluntary release CRM lock");
                    out.act(CrmAction::ReleaseManagerLock);
                    result.exit = true;
                } else if !input.cluster_state_ok {
                    out.log(
                        Level::Notice,
                        "temporary inconsistent cluster state (cfs restart?), skip round",
                    );
                } else if !input.cfs_rw_ok {
                    // Every round the master re-reads the manager status
                    // (for the disarm state) and then fails its round, as
                    // Proxmox's CRM does while pmxcfs is unreachable.
                    out.log(
                        Level::Err,
                        format!("could not read manager status: {CFS_ERROR}"),
                    );
                    out.log(Level::Err, format!("got unexpected error - {CFS_ERROR}"));
                } else if let Some(manager) = self.manager.as_mut() {
                    if manager.manage(&input.manager, &mut out) {
                        result.manager_status = Some(manager.status().clone());
                    }
                    let disarmed = manager
                        .status()
                        .disarm
                        .is_some_and(|d| d.state == DisarmState::Disarmed);
                    if disarmed && self.watchdog_open {
                        out.info("HA stack fully disarmed, releasing CRM watchdog");
                        self.close_watchdog(&mut out);
                        self.disarmed_watchdog = true;
                    } else if manager.status().disarm.is_none() {
                        self.disarmed_watchdog = false;
                    }
                }
            }
        }
        result.steps = out.0;
        result
    }
}
