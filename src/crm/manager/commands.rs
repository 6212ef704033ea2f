//! The CRM command queue (spec 3.4: `migrate`, `relocate`, `stop`,
//! node maintenance, disarm): one manager round's handling of the
//! commands written since the last.

use super::*;
use crate::crm::history::split_command_actor;

impl Manager {
    pub(super) fn apply_crm_commands(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        if input.crm_commands.is_empty() {
            return;
        }
        out.act(CrmAction::ConsumeCrmCommands);
        for line in input.crm_commands {
            let (cmd, actor) = split_command_actor(line.trim_end());
            let cmd = cmd.trim_end();
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let mut event =
                HaEvent::new(self.now_ms, EventKind::Command, format!("command: {cmd}"))
                    .actor(actor);
            if let Some(sid) = words.get(1).and_then(|w| w.parse::<Sid>().ok()) {
                event = event.sid(sid);
            } else if let Some(node) = words.get(1).and_then(|w| w.parse::<NodeName>().ok()) {
                event = event.node(node);
            }
            out.event(event);
            match words.as_slice() {
                [task @ ("migrate" | "relocate"), sid, node] => {
                    let (Ok(sid), Ok(node)) = (sid.parse::<Sid>(), node.parse::<NodeName>()) else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    match self.ms.service_status.get(&sid) {
                        None => out.log(
                            Level::Err,
                            format!("crm command error - no such service: {cmd}"),
                        ),
                        Some(sd) => {
                            if self.ms.node_status.get(&node) != Some(&NodeState::Online) {
                                out.log(
                                    Level::Err,
                                    format!("crm command error - node not online: {cmd}"),
                                );
                            } else if sd.node == node {
                                out.info(format!(
                                    "ignore crm command - service already on target node: {cmd}"
                                ));
                            } else {
                                self.queue_resource_motion(input, cmd, task, &sid, &node, out);
                            }
                        }
                    }
                }
                ["stop", sid, timeout] => {
                    let parsed = sid.parse::<Sid>().ok();
                    match parsed.and_then(|s| self.ms.service_status.get_mut(&s)) {
                        Some(sd) => {
                            out.info(format!("got crm command: {cmd}"));
                            sd.cmd = Some(vec!["stop".into(), timeout.to_string()]);
                        }
                        None => out.log(
                            Level::Err,
                            format!("crm command error - no such service: {cmd}"),
                        ),
                    }
                }
                ["enable-node-maintenance", node] => {
                    let Ok(node) = node.parse::<NodeName>() else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    if self.ms.disarm.is_some() {
                        out.log(
                            Level::Warning,
                            format!("ignoring crm command - HA is disarmed: {cmd}"),
                        );
                        continue;
                    }
                    match self.node_state(&node) {
                        NodeState::Online => {
                            self.ms.node_request.entry(node).or_default().maintenance = true;
                        }
                        NodeState::Maintenance => out.info(format!(
                            "ignoring crm command - node {node} is already in maintenance state"
                        )),
                        _ => out.log(
                            Level::Err,
                            format!("crm command error - node not online: {cmd}"),
                        ),
                    }
                }
                ["disable-node-maintenance", node] => {
                    let Ok(node) = node.parse::<NodeName>() else {
                        out.log(Level::Err, format!("unable to parse crm command: {cmd}"));
                        continue;
                    };
                    let state = self.node_state(&node);
                    if state != NodeState::Maintenance {
                        out.log(
                            Level::Warning,
                            format!(
                                "clearing maintenance of node {node} requested, but it's in state {state}"
                            ),
                        );
                    }
                    if let Some(req) = self.ms.node_request.get_mut(&node) {
                        req.maintenance = false;
                    }
                    self.ms.node_request.retain(|_, r| r.maintenance);
                }
                ["disarm-ha", mode @ ("freeze" | "ignore")] => {
                    if let Some(d) = self.ms.disarm {
                        out.log(
                            Level::Notice,
                            format!(
                                "ignoring disarm-ha command - already in disarm state ({})",
                                d.state.as_str()
                            ),
                        );
                        continue;
                    }
                    let mode = if *mode == "freeze" {
                        DisarmMode::Freeze
                    } else {
                        DisarmMode::Ignore
                    };
                    out.info(format!("got crm command: {cmd}"));
                    if mode == DisarmMode::Ignore {
                        for sid in self.ms.service_status.keys() {
                            out.info(format!(
                                "disarm: suspending HA tracking for service '{sid}'"
                            ));
                        }
                    }
                    self.ms.disarm = Some(Disarm {
                        mode,
                        state: DisarmState::Disarming,
                    });
                    out.event(
                        HaEvent::new(
                            self.now_ms,
                            EventKind::Disarm,
                            format!("HA disarming ({})", mode.as_str()),
                        )
                        .actor(actor),
                    );
                }
                ["arm-ha"] => {
                    let Some(disarm) = self.ms.disarm else {
                        out.log(
                            Level::Notice,
                            "ignoring arm-ha command - HA is not disarmed".to_string(),
                        );
                        continue;
                    };
                    out.info(format!("got crm command: {cmd}"));
                    if disarm.mode == DisarmMode::Ignore {
                        let sids: Vec<Sid> = self.ms.service_status.keys().cloned().collect();
                        for sid in sids {
                            let Some(cfg_node) = input.resources.get(&sid).map(|r| r.node.clone())
                            else {
                                continue;
                            };
                            if let Some(sd) = self.ms.service_status.get_mut(&sid) {
                                if sd.node != cfg_node {
                                    out.info(format!(
                                        "updating node of service '{sid}' from '{}' to '{cfg_node}' (changed while disarmed)",
                                        sd.node
                                    ));
                                    sd.node = cfg_node;
                                }
                            }
                        }
                    }
                    out.info("re-arming HA stack");
                    out.event(
                        HaEvent::new(self.now_ms, EventKind::Arm, "HA re-armed").actor(actor),
                    );
                    self.ms.disarm = None;
                }
                _ => out.log(Level::Err, format!("unable to parse crm command: {cmd}")),
            }
        }
    }

    /// Queues a `migrate`/`relocate` of `sid` to `target` (spec 3.8):
    /// refused when a negative partner is on the target or moving there;
    /// otherwise every positive partner not already there (or heading
    /// there) gets the same move.
    pub(super) fn queue_resource_motion(
        &mut self,
        input: &ManagerInput<'_>,
        cmd: &str,
        task: &str,
        sid: &Sid,
        target: &NodeName,
        out: &mut Steps,
    ) {
        let affinity = input.resource_affinity;
        let there = |sd: &ServiceRecord| sd.node == *target || sd.target.as_ref() == Some(target);
        if let Some(negative) = affinity.negative.get(sid) {
            for partner in negative {
                if self.ms.service_status.get(partner).is_some_and(there) {
                    out.log(
                        Level::Err,
                        format!("crm command '{cmd}' error - service '{partner}' on node '{target}' in negative affinity with service '{sid}'"),
                    );
                    return;
                }
            }
        }
        out.info(format!("got crm command: {cmd}"));
        let move_cmd = vec![task.to_string(), target.to_string()];
        if let Some(sd) = self.ms.service_status.get_mut(sid) {
            sd.cmd = Some(move_cmd.clone());
        }
        let Some(positive) = affinity.positive.get(sid) else {
            return;
        };
        for partner in positive {
            let Some(sd) = self.ms.service_status.get_mut(partner) else {
                continue;
            };
            if there(sd) {
                continue;
            }
            out.info(format!("crm command '{cmd}' - {task} service '{partner}' to node '{target}' (service '{partner}' in positive affinity with service '{sid}')"));
            sd.cmd = Some(move_cmd.clone());
        }
    }

    pub(super) fn disarm_round(
        &mut self,
        input: &ManagerInput<'_>,
        modes: &BTreeMap<NodeName, LrmMode>,
        disarm: Disarm,
        out: &mut Steps,
    ) -> DisarmOutcome {
        let mut deferred = BTreeSet::new();
        for (sid, sd) in &self.ms.service_status {
            let level = match sd.state {
                ServiceState::Fence | ServiceState::Recovery => Level::Warning,
                ServiceState::Migrate | ServiceState::Relocate => Level::Info,
                _ => continue,
            };
            out.log(
                level,
                format!(
                    "deferring disarm - service '{sid}' is in '{}' state",
                    sd.state
                ),
            );
            deferred.insert(sid.clone());
        }
        if !deferred.is_empty() {
            return DisarmOutcome::Deferred(deferred);
        }
        let sids: Vec<Sid> = self.ms.service_status.keys().cloned().collect();
        for sid in sids {
            let uid = self.new_uid();
            let Some(sd) = self.ms.service_status.get_mut(&sid) else {
                continue;
            };
            match disarm.mode {
                DisarmMode::Freeze => {
                    if matches!(
                        sd.state,
                        ServiceState::Started
                            | ServiceState::Stopped
                            | ServiceState::RequestStop
                            | ServiceState::RequestStart
                            | ServiceState::RequestStartBalance
                    ) {
                        out.info(format!(
                            "disarm: freezing service '{sid}' (was '{}')",
                            sd.state
                        ));
                        let mut fresh = ServiceRecord::new(ServiceState::Freeze, sd.node.clone());
                        fresh.maintenance_node = sd.maintenance_node.take();
                        fresh.uid = Some(uid);
                        *sd = fresh;
                    }
                }
                DisarmMode::Ignore => {
                    sd.target = None;
                    sd.timeout = None;
                    sd.running = false;
                    sd.cmd = None;
                }
            }
        }
        if disarm.state == DisarmState::Disarming {
            let all = self
                .ms
                .node_status
                .iter()
                .filter(|(_, s)| **s == NodeState::Online)
                .all(|(n, _)| modes.get(n) == Some(&LrmMode::Disarm));
            if all {
                out.info("all LRMs disarmed, HA stack is now fully disarmed");
                self.ms.disarm = Some(Disarm {
                    mode: disarm.mode,
                    state: DisarmState::Disarmed,
                });
            }
        }
        let _ = input;
        DisarmOutcome::Done
    }
}
