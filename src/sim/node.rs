//! One simulated node: hardware (power, network, a hung daemon), the
//! daemons (CRM, LRM), its lease client, watchdog-mux and running guests.

use std::collections::BTreeSet;

use crate::crm::CrmDaemon;
use crate::domain::{NodeName, Sid};
use crate::lrm::{Lrm, NodeShutdown};

use super::cluster::AgentClient;
use super::mux::Mux;
use super::timing::SimTiming;

/// What a node does once the lease of its exited LRM is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDrain {
    /// Carry on with the LRM's exit (restart it, stop the CRM, shut the
    /// node down, stop the daemon), as the LRM's exit asked.
    FinishExit,
}

/// Power/network/cfs state, daemons and guests of one node.
#[derive(Debug)]
pub struct SimNode {
    /// Powered on.
    pub power: bool,
    /// Network up.
    pub network: bool,
    /// The daemon is hung (SIGSTOP): nothing of it runs, neither the CRM
    /// and LRM nor its lease task, watchdog feeding or Raft. The guests and
    /// the watchdog-mux keep running.
    pub paused: bool,
    /// The daemon runs (Raft, CRM, LRM): false after a clean stop.
    pub daemon_up: bool,
    /// A clean stop of the daemon is under way (the LRM stops first, the
    /// CRM next, Raft last).
    pub daemon_stop: bool,
    /// Pending shutdown/reboot.
    pub shutdown: NodeShutdown,
    /// Shared state readable/writable.
    pub cfs_rw: bool,
    /// Cluster-state refresh works.
    pub cfs_update: bool,
    /// The CRM daemon, if running.
    pub crm: Option<CrmDaemon>,
    /// The `Drop rule ...` messages this node's master last logged: a
    /// master logs them when it compiles rules that differ (Proxmox
    /// recompiles only on changes), `None` while it is not master.
    pub logged_rule_drops: Option<Vec<String>>,
    /// The LRM daemon, if running.
    pub lrm: Option<Lrm>,
    /// CRM env clock.
    pub crm_time: u64,
    /// LRM env clock.
    pub lrm_time: u64,
    /// The LRM is restarting (restart-lrm).
    pub lrm_restart: bool,
    /// The CRM was asked to stop.
    pub crm_stop: bool,
    /// Services running on this node.
    pub running: BTreeSet<Sid>,
    /// The lease client of the current (or exiting) LRM run.
    pub agent: AgentClient,
    /// The LRM exited and its lease is being released first.
    pub draining: Option<AfterDrain>,
    /// The node's watchdog-mux and device.
    pub mux: Mux,
    /// Timer epoch: a pause, stop or power-off makes pending timers stale.
    pub timer_epoch: u64,
    /// When the pending watchdog check fires.
    pub watchdog_check_at: Option<u64>,
    /// Since when the node could reach the quorum without a break (for
    /// the liveness check); `None` while it cannot.
    pub standing_since: Option<u64>,
}

impl SimNode {
    /// A node powered off (its daemons start with its power-on).
    pub fn new(name: &NodeName, timing: &SimTiming) -> Self {
        SimNode {
            power: false,
            network: false,
            paused: false,
            daemon_up: false,
            daemon_stop: false,
            shutdown: NodeShutdown::None,
            cfs_rw: true,
            cfs_update: true,
            crm: None,
            logged_rule_drops: None,
            lrm: None,
            crm_time: 0,
            lrm_time: 0,
            lrm_restart: false,
            crm_stop: false,
            running: BTreeSet::new(),
            agent: AgentClient::new(name, 0, 0, timing),
            draining: None,
            mux: Mux::default(),
            timer_epoch: 0,
            watchdog_check_at: None,
            standing_since: None,
        }
    }

    /// Whether the node's daemon runs now (powered, up, not hung).
    pub fn running_daemon(&self) -> bool {
        self.power && self.daemon_up && !self.paused
    }
}
