//! The cmdlist commands (spec 8.2) and the faults of issue #9: power,
//! network, cfs, reboot/shutdown, LRM restart, CRM stop/start, service
//! commands, and a hung (paused) daemon, a clean stop and start of a
//! daemon, cut links (one way or both), message delay and loss, and a
//! restarted or hung watchdog-mux. Commands are validated by `scenario.rs`
//! before the first round.

use crate::domain::{NodeName, RequestedState};
use crate::lrm::NodeShutdown;

use super::mux::Mux;
use super::net::NetParams;
use super::scenario::ServiceEntry;
use super::world::{configured, World};

impl World {
    /// `power <node> on|off`.
    pub fn power(&mut self, node: &NodeName, on: bool, source: &str) {
        self.hw_log(
            source,
            &format!("execute power {node} {}", if on { "on" } else { "off" }),
        );
        self.power_silent(node, on);
    }

    pub(crate) fn power_silent(&mut self, node: &NodeName, on: bool) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        let was_on = n.power;
        if on && !was_on {
            if let Some(n) = self.nodes.get_mut(node) {
                n.daemon_up = true;
                n.daemon_stop = false;
                n.paused = false;
                n.draining = None;
                n.mux = Mux::default();
            }
            self.cluster.raft.forget(node);
            self.start_crm(node);
            self.start_lrm(node);
            if let Some(n) = self.nodes.get_mut(node) {
                n.lrm_restart = false;
                n.cfs_rw = true;
                n.cfs_update = true;
            }
        } else if !on && was_on {
            let (crm_t, lrm_t, had_crm, had_lrm) = {
                let n = &self.nodes[node];
                (n.crm_time, n.lrm_time, n.crm.is_some(), n.lrm.is_some())
            };
            if had_crm {
                self.log_line("info", crm_t, &format!("{node}/crm"), "killed by poweroff");
            }
            if had_lrm {
                self.log_line("info", lrm_t, &format!("{node}/lrm"), "killed by poweroff");
            }
            self.stop_timers(node);
            if let Some(n) = self.nodes.get_mut(node) {
                n.crm = None;
                n.lrm = None;
                n.running.clear();
                n.mux = Mux::default();
                n.watchdog_check_at = None;
                n.daemon_up = false;
                n.daemon_stop = false;
                n.paused = false;
                n.draining = None;
                n.agent.watchdog_wanted = false;
            }
            self.cluster.raft.forget(node);
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.power = on;
            n.network = on;
            n.shutdown = NodeShutdown::None;
        }
        if on && !was_on {
            self.start_timers(node);
        }
    }

    /// `pause <node>`: the daemon hangs (nothing of it runs).
    fn pause(&mut self, node: &NodeName) {
        let live = self.nodes.get(node).is_some_and(|n| n.running_daemon());
        if !live {
            return;
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.paused = true;
        }
        self.stop_timers(node);
    }

    /// `resume <node>`: a hung daemon runs again where it stopped.
    fn resume(&mut self, node: &NodeName) {
        let paused = self.nodes.get(node).is_some_and(|n| n.power && n.paused);
        if !paused {
            return;
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.paused = false;
        }
        self.start_timers(node);
    }

    /// `daemon <node> stop`: a clean stop (SIGTERM). The LRM gets a stop
    /// request (its services are frozen, its lease released as the LRM
    /// core says, its watchdog closed), then the CRM stops, then Raft.
    fn daemon_stop(&mut self, node: &NodeName) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.power || !n.daemon_up || n.daemon_stop {
            return;
        }
        n.daemon_stop = true;
        let (has_lrm, draining, has_crm) = (n.lrm.is_some(), n.draining.is_some(), n.crm.is_some());
        if has_lrm {
            self.lrm_shutdown_request(node);
        } else if draining {
            // The exit under way finishes the stop.
        } else if has_crm {
            self.crm_stop(node);
        } else {
            self.daemon_down(node);
        }
    }

    /// The daemon of `node` is gone (after a clean stop): Raft leaves with
    /// it; guests keep running.
    pub(crate) fn daemon_down(&mut self, node: &NodeName) {
        let now = self.now;
        let mux_timeout = self.timing.mux_client_timeout_ms();
        self.stop_timers(node);
        if let Some(n) = self.nodes.get_mut(node) {
            n.daemon_up = false;
            n.daemon_stop = false;
            n.crm = None;
            n.lrm = None;
            n.draining = None;
            // Whatever is still armed goes away without the magic close.
            for owner in [
                super::mux::WatchdogOwner::Crm,
                super::mux::WatchdogOwner::Lrm,
            ] {
                n.mux.disconnect(owner, now, mux_timeout);
            }
        }
        self.cluster.raft.forget(node);
        self.schedule_watchdog_check(node);
        self.hw_log("hardware", &format!("daemon of '{node}' stopped"));
    }

    /// `daemon <node> start`: a new run of the daemon.
    fn daemon_start(&mut self, node: &NodeName) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.power || n.daemon_up {
            return;
        }
        n.daemon_up = true;
        n.paused = false;
        n.lrm_restart = false;
        self.cluster.raft.forget(node);
        self.start_crm(node);
        self.start_lrm(node);
        self.start_timers(node);
    }

    /// `mux <node> restart|hang|resume`.
    fn mux_command(&mut self, node: &NodeName, what: &str) {
        let now = self.now;
        let mux_timeout = self.timing.mux_client_timeout_ms();
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.power {
            return;
        }
        match what {
            "restart" => n.mux.restart(now, mux_timeout),
            "hang" => n.mux.hang(now, mux_timeout),
            _ => n.mux.resume(),
        }
        self.schedule_watchdog_check(node);
    }

    /// `net delay <ms>` / `net loss <per-mille>`, bounded by the profile.
    fn net_command(&mut self, what: &str, value: u64) {
        let params = &mut self.cluster.net.params;
        if what == "delay" {
            params.max_delay_ms = value.min(NetParams::max_delay_bound(&self.timing));
        } else {
            params.loss_per_mille = u32::try_from(value)
                .map_or(super::net::MAX_LOSS_PER_MILLE, |v| {
                    v.min(super::net::MAX_LOSS_PER_MILLE)
                });
        }
    }

    /// Requested state of a service.
    fn set_service_state(&mut self, sid: &crate::domain::Sid, state: RequestedState) {
        if let Some(e) = self.services.get_mut(sid) {
            e.config.state = state;
        }
    }

    /// Executes one cmdlist command (already validated).
    pub fn execute_command(&mut self, cmd: &str, source: &str) {
        self.hw_log(source, &format!("execute {cmd}"));
        self.run_command(cmd);
    }

    fn run_command(&mut self, cmd: &str) {
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let node_of = |s: &str| s.parse::<NodeName>().ok();
        match w.as_slice() {
            ["power", n, action] => {
                if let Some(n) = node_of(n) {
                    self.power_silent(&n, *action == "on");
                }
            }
            ["network", n, action] => {
                if let Some(node) = node_of(n).and_then(|n| self.nodes.get_mut(&n)) {
                    node.network = *action == "on";
                }
            }
            ["pause", "leader"] => match self.cluster.raft.leader().cloned() {
                Some(leader) => {
                    self.hw_log("hardware", &format!("the leader is '{leader}'"));
                    self.pause(&leader);
                }
                None => self.hw_log("hardware", "no leader to pause"),
            },
            ["pause", n] => {
                if let Some(n) = node_of(n) {
                    self.pause(&n);
                }
            }
            ["resume", "all"] => {
                let paused: Vec<NodeName> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.paused)
                    .map(|(k, _)| k.clone())
                    .collect();
                for n in paused {
                    self.resume(&n);
                }
            }
            ["resume", n] => {
                if let Some(n) = node_of(n) {
                    self.resume(&n);
                }
            }
            ["daemon", n, action] => {
                if let Some(n) = node_of(n) {
                    if *action == "stop" {
                        self.daemon_stop(&n);
                    } else {
                        self.daemon_start(&n);
                    }
                }
            }
            ["mux", n, what] => {
                if let Some(n) = node_of(n) {
                    self.mux_command(&n, what);
                }
            }
            ["link", "all", "on"] => self.cluster.net.heal_all(),
            ["link", a, "to", b, action] => {
                if let (Some(a), Some(b)) = (node_of(a), node_of(b)) {
                    self.cluster.net.set_link(&a, &b, *action == "on");
                }
            }
            ["link", a, b, action] => {
                if let (Some(a), Some(b)) = (node_of(a), node_of(b)) {
                    let up = *action == "on";
                    self.cluster.net.set_link(&a, &b, up);
                    self.cluster.net.set_link(&b, &a, up);
                }
            }
            ["net", what, value] => {
                if let Ok(v) = value.parse::<u64>() {
                    self.net_command(what, v);
                }
            }
            ["cfs", n, what, action] => {
                if let Some(node) = node_of(n).and_then(|n| self.nodes.get_mut(&n)) {
                    let ok = *action == "work";
                    if *what == "rw" {
                        node.cfs_rw = ok;
                    } else {
                        node.cfs_update = ok;
                    }
                }
            }
            [kind @ ("reboot" | "shutdown"), n] => {
                if let Some(n) = node_of(n) {
                    if let Some(node) = self.nodes.get_mut(&n) {
                        node.shutdown = if *kind == "reboot" {
                            NodeShutdown::Reboot
                        } else {
                            NodeShutdown::Shutdown
                        };
                    }
                    self.lrm_shutdown_request(&n);
                }
            }
            ["restart-lrm", n] => {
                if let Some(n) = node_of(n) {
                    if self.nodes.get(&n).is_some_and(|x| x.lrm.is_some()) {
                        if let Some(node) = self.nodes.get_mut(&n) {
                            node.lrm_restart = true;
                        }
                        self.lrm_shutdown_request(&n);
                    }
                }
            }
            ["pve-manager-version", n, "set", version] => {
                if let Some(n) = node_of(n) {
                    self.node_versions.insert(n, version.to_string());
                }
            }
            ["crm", n, rest @ ..] => {
                let Some(n) = node_of(n) else { return };
                match rest {
                    ["stop"] => self.crm_stop(&n),
                    ["start"] => self.start_crm(&n),
                    ["enable-node-maintenance"] => self
                        .crm_commands
                        .push(format!("enable-node-maintenance {n}")),
                    ["disable-node-maintenance"] => self
                        .crm_commands
                        .push(format!("disable-node-maintenance {n}")),
                    ["disarm-ha", mode] => self.crm_commands.push(format!("disarm-ha {mode}")),
                    ["arm-ha"] => self.crm_commands.push("arm-ha".to_string()),
                    _ => {}
                }
            }
            ["service", sid, action, params @ ..] => {
                let Some(sid) = super::scenario::parse_sim_sid(sid) else {
                    return;
                };
                match (*action, params) {
                    (st @ ("started" | "stopped" | "disabled" | "ignored" | "enabled"), _) => {
                        if let Ok(state) = st.parse() {
                            self.set_service_state(&sid, state);
                        }
                    }
                    (task @ ("migrate" | "relocate"), [n]) => {
                        self.crm_commands.push(format!("{task} {sid} {n}"))
                    }
                    ("stop", [t]) => self.crm_commands.push(format!("stop {sid} {t}")),
                    ("add", [n, rest @ ..]) => {
                        let Some(node) = node_of(n) else { return };
                        let state = rest
                            .first()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(RequestedState::Started);
                        let running = rest.get(1).is_some_and(|r| *r == "1");
                        let entry = ServiceEntry {
                            node: node.clone(),
                            state,
                            failback: true,
                            max_restart: 1,
                            max_relocate: 1,
                            group: None,
                        };
                        if let Some(map) = self.stats.static_stats.as_mut() {
                            map.entry(sid.clone()).or_insert((
                                super::stats::DEFAULT_SERVICE_MAXCPU,
                                super::stats::DEFAULT_SERVICE_MAXMEM,
                            ));
                        }
                        let conf = configured(&sid, &entry, &self.groups);
                        self.services.insert(sid.clone(), conf);
                        if running {
                            if let Some(x) = self.nodes.get_mut(&node) {
                                x.running.insert(sid);
                            }
                        }
                    }
                    ("delete", _) => {
                        self.services.remove(&sid);
                        if let Some(map) = self.stats.static_stats.as_mut() {
                            map.remove(&sid);
                        }
                    }
                    (action @ ("set-static-stats" | "set-dynamic-stats"), params) => {
                        self.set_service_stats(&sid, action, params);
                    }
                    ("lock", rest) => {
                        let name = rest.first().copied().unwrap_or("backup").to_string();
                        self.guest_locks.insert(sid, name);
                    }
                    ("unlock", rest) => {
                        let matches = rest.first().is_none_or(|n| {
                            self.guest_locks.get(&sid).map(String::as_str) == Some(*n)
                        });
                        if matches {
                            self.guest_locks.remove(&sid);
                        }
                    }
                    ("manual-migrate", [n]) => {
                        let Some(target) = node_of(n) else { return };
                        let ignored = self
                            .services
                            .get(&sid)
                            .is_some_and(|e| e.config.state == RequestedState::Ignored);
                        let disarm_ignore = self
                            .manager_status
                            .disarm
                            .is_some_and(|d| d.mode == crate::crm::DisarmMode::Ignore);
                        if !(ignored || disarm_ignore) {
                            self.log_line(
                                "err",
                                self.now,
                                "hardware",
                                &format!(
                                    "manual-migrate of '{sid}' refused - service is managed by HA"
                                ),
                            );
                            return;
                        }
                        let Some(from) = self.services.get(&sid).map(|e| e.node.clone()) else {
                            return;
                        };
                        let was_running = self
                            .nodes
                            .get_mut(&from)
                            .is_some_and(|x| x.running.remove(&sid));
                        if let Some(e) = self.services.get_mut(&sid) {
                            e.node = target.clone();
                        }
                        if was_running {
                            if let Some(x) = self.nodes.get_mut(&target) {
                                x.running.insert(sid);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
