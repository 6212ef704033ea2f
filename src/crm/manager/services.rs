//! The service state machine (spec 3.5): one handler per state, fencing
//! of nodes and recovery of their services.

use super::*;

impl Manager {
    pub(super) fn state_machine_loop(
        &mut self,
        input: &ManagerInput<'_>,
        results: &HashMap<&str, &LrmResult>,
        modes: &BTreeMap<NodeName, LrmMode>,
        only: Option<&BTreeSet<Sid>>,
        out: &mut Steps,
    ) {
        loop {
            let mut repeat = false;
            self.recompute_usage(input);
            let todo = self.pass_todo(input, results, modes, only);
            for sid in &todo {
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                let last = sd.state;
                let res = sd.uid.as_deref().and_then(|uid| results.get(uid).copied());
                match last {
                    ServiceState::Stopped => self.next_stopped(input, sid, out),
                    ServiceState::Started => self.next_started(input, sid, res, out),
                    ServiceState::RequestStart => self.next_request_start(input, sid, out),
                    ServiceState::Migrate
                    | ServiceState::Relocate
                    | ServiceState::RequestStartBalance => {
                        self.next_migrate_relocate(input, sid, res, out)
                    }
                    ServiceState::Fence => {}
                    ServiceState::Recovery => self.next_recovery(input, sid, out),
                    ServiceState::RequestStop => self.next_request_stop(input, sid, res, out),
                    ServiceState::Freeze => {
                        let node = self.ms.service_status[sid].node.clone();
                        // Unfreeze only on an online node that holds its
                        // lease: frozen services run unprotected, and a
                        // node seen offline may run them still.
                        if modes.get(&node) == Some(&LrmMode::Active)
                            && self.node_is_online(&node)
                            && Self::agent_lease(input, &node).protects()
                        {
                            let new = if requested(input, sid) == RequestedState::Started {
                                ServiceState::Started
                            } else {
                                ServiceState::RequestStop
                            };
                            self.change_state(out, sid, new, None, None, None);
                        }
                    }
                    ServiceState::Error => {
                        if requested(input, sid) == RequestedState::Disabled {
                            if let Some(sd) = self.ms.service_status.get_mut(sid) {
                                sd.failed_nodes = None;
                            }
                            self.change_state(out, sid, ServiceState::Stopped, None, None, None);
                        }
                    }
                }
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                if modes.get(&sd.node) == Some(&LrmMode::Restart)
                    && matches!(
                        sd.state,
                        ServiceState::Started | ServiceState::Stopped | ServiceState::RequestStop
                    )
                {
                    self.change_state(out, sid, ServiceState::Freeze, None, None, None);
                }
                if self.ms.service_status[sid].state != last {
                    repeat = true;
                }
            }
            // fencing
            let mut fenced: BTreeMap<NodeName, bool> = BTreeMap::new();
            let fence_sids: Vec<Sid> = self
                .ms
                .service_status
                .iter()
                .filter(|(sid, sd)| {
                    sd.state == ServiceState::Fence && only.is_none_or(|o| o.contains(*sid))
                })
                .map(|(sid, _)| sid.clone())
                .collect();
            for sid in &fence_sids {
                let Some(sd) = self.ms.service_status.get(sid) else {
                    continue;
                };
                if sd.state != ServiceState::Fence {
                    continue;
                }
                let node = sd.node.clone();
                if !fenced.contains_key(&node) {
                    let ok = self.fence_node(input, &node, out);
                    fenced.insert(node.clone(), ok);
                }
                if fenced[&node] {
                    self.change_state(out, sid, ServiceState::Recovery, None, None, None);
                    repeat = true;
                }
            }
            let fence_nodes: Vec<NodeName> = self
                .ms
                .node_status
                .iter()
                .filter(|(n, s)| **s == NodeState::Fence && !fenced.contains_key(*n))
                .map(|(n, _)| n.clone())
                .collect();
            for node in fence_nodes {
                out.log(
                    Level::Notice,
                    format!("node '{node}' in fence state but no services to-fence! admin interference?!"),
                );
                if self.fence_node(input, &node, out) {
                    repeat = true;
                }
            }
            if !repeat {
                break;
            }
        }
    }

    /// The services of one state-machine pass, in SID order. A `started`
    /// service whose `next_started` would change nothing (running on an
    /// online node, no command, no result, no rule, no maintenance
    /// fallback, requested started, node not restarting) is left out, so a
    /// steady cluster costs one merge of two sorted maps per pass.
    fn pass_todo(
        &self,
        input: &ManagerInput<'_>,
        results: &HashMap<&str, &LrmResult>,
        modes: &BTreeMap<NodeName, LrmMode>,
        only: Option<&BTreeSet<Sid>>,
    ) -> Vec<Sid> {
        let mut confs = input.resources.iter().peekable();
        let mut todo = Vec::new();
        for (sid, sd) in &self.ms.service_status {
            if only.is_some_and(|o| !o.contains(sid)) {
                continue;
            }
            if sd.state == ServiceState::Started {
                while confs.peek().is_some_and(|(k, _)| *k < sid) {
                    confs.next();
                }
                let requested_started = confs
                    .peek()
                    .is_some_and(|(k, c)| *k == sid && c.config.state == RequestedState::Started);
                // No news: no result, or the success already taken in.
                let settled = sd
                    .uid
                    .as_deref()
                    .and_then(|u| results.get(u))
                    .is_none_or(|r| r.exit_code == exit_code::SUCCESS && sd.running);
                let steady = requested_started
                    && settled
                    && sd.cmd.is_none()
                    && sd.maintenance_node.is_none()
                    && self.usage.contains_key(&sd.node)
                    && modes.get(&sd.node) != Some(&LrmMode::Restart)
                    && !input.node_affinity.contains_key(sid)
                    && !input.resource_affinity.contains(sid);
                if steady {
                    continue;
                }
            }
            todo.push(sid.clone());
        }
        todo
    }

    fn fence_node(&mut self, input: &ManagerInput<'_>, node: &NodeName, out: &mut Steps) -> bool {
        if self.node_state(node) != NodeState::Fence {
            self.set_node_state(out, node, NodeState::Fence);
            out.log(Level::Email, format!("FENCE: Try to fence node '{node}'"));
        }
        match Self::agent_lease(input, node).fence_evidence() {
            FenceEvidence::TakeOver => out.act(CrmAction::TakeAgentLock(node.clone())),
            // Our own take-over committed but the status that followed it
            // did not: the node is fenced already.
            FenceEvidence::AlreadyFenced => {}
            FenceEvidence::Wait => return false,
            FenceEvidence::Never => {
                if self.reported_unguarded.insert(node.clone()) {
                    out.log(
                        Level::Warning,
                        format!("cannot fence node '{node}': it let its agent lock go while its services keep running without watchdog protection (LRM restart or disarm); they stay until the node returns"),
                    );
                }
                return false;
            }
        }
        self.reported_unguarded.remove(node);
        let msg = format!("fencing: acknowledged - got agent lock for node '{node}'");
        out.event(HaEvent::new(self.now_ms, EventKind::Fenced, msg.clone()).node(node));
        out.info(msg.clone());
        self.set_node_state(out, node, NodeState::Unknown);
        out.log(Level::Email, format!("SUCCEED: {msg}"));
        true
    }

    /// A `migrate`/`relocate` command (`cmd`) of a service on `node`: the
    /// state and target to move to, or `None` (logged) when the target is
    /// offline, the node itself, or not a node name.
    fn move_request(
        &self,
        sid: &Sid,
        task: &str,
        cmd: &[String],
        node: &NodeName,
        out: &mut Steps,
    ) -> Option<(ServiceState, NodeName)> {
        let state = if task == "migrate" {
            ServiceState::Migrate
        } else {
            ServiceState::Relocate
        };
        match cmd.get(1).and_then(|t| t.parse::<NodeName>().ok()) {
            Some(t) if !self.node_is_online(&t) => out.log(
                Level::Err,
                format!("ignore service '{sid}' {task} request - node '{t}' not online"),
            ),
            Some(t) if t == *node => out.info(format!(
                "ignore service '{sid}' {task} request - service already on node '{t}'"
            )),
            Some(t) => return Some((state, t)),
            None => out.log(
                Level::Err,
                format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
            ),
        }
        None
    }

    fn next_stopped(&mut self, input: &ManagerInput<'_>, sid: &Sid, out: &mut Steps) {
        let cfg_node = self.config_node(input, sid);
        let Some(sd) = self.ms.service_status.get_mut(sid) else {
            return;
        };
        if let Some(cfg_node) = cfg_node {
            if sd.node != cfg_node {
                out.info(format!(
                    "fixup service '{sid}' location ({} => {cfg_node})",
                    sd.node
                ));
                sd.node = cfg_node;
            }
        }
        if let Some(cmd) = sd.cmd.take() {
            let node = sd.node.clone();
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    if let Some((state, t)) = self.move_request(sid, task, &cmd, &node, out) {
                        self.change_state(out, sid, state, Some(node), Some(t), None);
                        return;
                    }
                }
                Some("stop") => out.info(format!(
                    "ignore service '{sid}' stop request - service already stopped"
                )),
                _ => out.log(
                    Level::Err,
                    format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                ),
            }
        }
        let req = requested(input, sid);
        if req == RequestedState::Disabled {
            return;
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms)
            && self.node_state(&node) != NodeState::Maintenance
        {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
            return;
        }
        if req == RequestedState::Started {
            self.change_state(out, sid, ServiceState::RequestStart, Some(node), None, None);
        }
    }

    fn next_started(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        let node = self.ms.service_status[sid].node.clone();
        if !self.node_is_online(&node) {
            if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
                self.change_state(out, sid, ServiceState::Fence, None, None, None);
            }
            if self.node_state(&node) != NodeState::Maintenance {
                return;
            }
            if let Some(sd) = self.ms.service_status.get_mut(sid) {
                sd.maintenance_node = Some(node.clone());
            }
        }
        let req = requested(input, sid);
        if matches!(req, RequestedState::Disabled | RequestedState::Stopped) {
            self.change_state(out, sid, ServiceState::RequestStop, None, None, None);
            return;
        }
        if req != RequestedState::Started {
            out.log(
                Level::Err,
                format!("service '{sid}' - unknown state '{req}' in service configuration"),
            );
            return;
        }
        let cmd = self
            .ms
            .service_status
            .get_mut(sid)
            .and_then(|sd| sd.cmd.take());
        if let Some(cmd) = cmd {
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    if let Some((state, t)) = self.move_request(sid, task, &cmd, &node, out) {
                        out.info(format!("{task} service '{sid}' to node '{t}'"));
                        self.change_state(out, sid, state, Some(node), Some(t), None);
                    }
                }
                Some("stop") => {
                    let timeout: u64 = cmd.get(1).and_then(|t| t.parse().ok()).unwrap_or(0);
                    if timeout == 0 {
                        out.info(format!(
                            "request immediate service hard-stop for service '{sid}'"
                        ));
                    } else {
                        out.info(format!(
                            "request graceful stop with timeout '{timeout}' for service '{sid}'"
                        ));
                    }
                    self.change_state(
                        out,
                        sid,
                        ServiceState::RequestStop,
                        None,
                        None,
                        Some(timeout),
                    );
                    out.act(CrmAction::SetRequestedState(
                        sid.clone(),
                        RequestedState::Stopped,
                    ));
                }
                _ => out.log(
                    Level::Err,
                    format!("unknown command '{}' for service '{sid}'", cmd.join(" ")),
                ),
            }
            return;
        }
        let Some(conf) = input.resources.get(sid) else {
            return;
        };
        let mut try_next = false;
        if let Some(res) = res {
            let Some(sd) = self.ms.service_status.get_mut(sid) else {
                return;
            };
            match res.exit_code {
                exit_code::SUCCESS => {
                    if let Some(failed) = sd.failed_nodes.take() {
                        out.info(format!(
                            "relocation policy successful for '{sid}' on node '{node}', failed nodes: {}",
                            join_nodes(&failed)
                        ));
                    }
                    sd.running = true;
                }
                exit_code::ERROR | exit_code::EWRONG_NODE => {
                    sd.running = false;
                    let failed = sd.failed_nodes.get_or_insert_with(Vec::new);
                    failed.push(node.clone());
                    if failed.len() <= conf.config.max_relocate as usize {
                        try_next = true;
                        out.log(
                            Level::Warning,
                            format!("starting service {sid} on node '{node}' failed, relocating service."),
                        );
                    } else {
                        out.log(
                            Level::Err,
                            format!(
                                "recovery policy for service {sid} failed, entering error state. Failed nodes: {}",
                                join_nodes(failed)
                            ),
                        );
                        self.change_state(out, sid, ServiceState::Error, None, None, None);
                        return;
                    }
                }
                code => {
                    sd.failed_nodes
                        .get_or_insert_with(Vec::new)
                        .push(node.clone());
                    out.log(
                        Level::Err,
                        format!("service '{sid}' got unrecoverable error (exit code {code}))"),
                    );
                    self.change_state(out, sid, ServiceState::Error, None, None, None);
                    return;
                }
            }
        }
        let pref = if try_next {
            Preference::TryNext
        } else {
            Preference::None
        };
        let partners = self.partners(input, sid);
        let running = self.ms.service_status[sid].running;
        let load = if pref == Preference::None {
            self.service_load(input, sid, running)
        } else {
            self.load_for_selection(input, sid, running, out)
        };
        let selected = select_service_node(
            &self.usage,
            load.as_ref(),
            input.node_affinity.get(sid),
            &partners,
            conf.config.failback,
            &self.ms.service_status[sid],
            pref,
        );
        match selected {
            Some(target) if target != node => {
                // The move is worth explaining: the same selection again,
                // traced (nothing changed in between).
                let reason = if try_next {
                    DecisionReason::StartFailure
                } else {
                    DecisionReason::Rebalance
                };
                let record = self.ms.service_status[sid].clone();
                let (again, decision) = self.select_recorded(
                    input,
                    sid,
                    load.as_ref(),
                    &partners,
                    conf.config.failback,
                    &record,
                    pref,
                    reason,
                );
                debug_assert_eq!(again.as_ref(), Some(&target), "selection is deterministic");
                self.add_usage(&target, load.as_ref());
                if let Some(sd) = self.ms.service_status.get_mut(sid) {
                    if let Some(fallback) = sd.maintenance_node.clone() {
                        if target == fallback {
                            out.info(format!(
                                "moving service '{sid}' back to '{fallback}', node came back from maintenance."
                            ));
                            sd.maintenance_node = None;
                        } else if node != fallback {
                            out.info(format!(
                                "dropping maintenance fallback node '{fallback}' for '{sid}'"
                            ));
                            sd.maintenance_node = None;
                        }
                    }
                }
                let kind = if sid.kind() == "vm" {
                    EventKind::Migrate
                } else {
                    EventKind::Relocate
                };
                let message = if kind == EventKind::Migrate {
                    format!("migrate service '{sid}' to node '{target}' (running)")
                } else {
                    format!("relocate service '{sid}' to node '{target}'")
                };
                out.event(
                    HaEvent::new(self.now_ms, kind, message.clone())
                        .sid(sid)
                        .change(&node, &target)
                        .decision(decision),
                );
                out.info(message);
                if kind == EventKind::Migrate {
                    self.change_state(
                        out,
                        sid,
                        ServiceState::Migrate,
                        Some(node),
                        Some(target),
                        None,
                    );
                } else {
                    self.change_state(
                        out,
                        sid,
                        ServiceState::Relocate,
                        Some(node),
                        Some(target),
                        None,
                    );
                }
            }
            other => {
                let online = self.node_is_online(&node);
                // A new uid only when the LRM must run the command again
                // (a start to retry); a reported success stays as it is,
                // so a healthy service costs no writes. The LRM re-checks
                // started services on its own (monitor interval).
                let uid = res
                    .filter(|r| r.exit_code != exit_code::SUCCESS)
                    .map(|_| self.new_uid());
                let Some(sd) = self.ms.service_status.get_mut(sid) else {
                    return;
                };
                if try_next && other.is_none() {
                    out.log(
                        Level::Warning,
                        format!(
                            "Start Error Recovery: Tried all available nodes for service '{sid}', retry start on current node. Tried nodes: {}",
                            join_nodes(sd.failed_nodes.as_deref().unwrap_or(&[]))
                        ),
                    );
                }
                if sd.maintenance_node.as_ref() == Some(&node) && online {
                    out.info(format!(
                        "service '{sid}': clearing stale maintenance node '{node}' setting (is current node)"
                    ));
                    sd.maintenance_node = None;
                }
                if let Some(uid) = uid {
                    sd.uid = Some(uid);
                }
            }
        }
    }

    fn next_migrate_relocate(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        let sd = &self.ms.service_status[sid];
        let node = sd.node.clone();
        let target = sd.target.clone();
        if let Some(res) = res {
            let req = if requested(input, sid) == RequestedState::Started {
                ServiceState::Started
            } else {
                ServiceState::RequestStop
            };
            match res.exit_code {
                exit_code::SUCCESS => {
                    let to = target.unwrap_or_else(|| node.clone());
                    self.change_state(out, sid, req, Some(to), None, None);
                    return;
                }
                exit_code::EWRONG_NODE => {
                    out.log(
                        Level::Err,
                        format!(
                            "service '{sid}' - migration failed: service registered on wrong node!"
                        ),
                    );
                    self.change_state(out, sid, ServiceState::Error, None, None, None);
                }
                exit_code::IGNORED => {
                    out.info(format!(
                        "service {sid}: rebalance-on-start request ignored - service already running"
                    ));
                    self.change_state(out, sid, req, Some(node), None, None);
                    return;
                }
                code => {
                    out.log(
                        Level::Err,
                        format!("service '{sid}' - migration failed (exit code {code})"),
                    );
                    self.change_state(out, sid, req, Some(node), None, None);
                    return;
                }
            }
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
        }
    }

    fn next_request_stop(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        res: Option<&LrmResult>,
        out: &mut Steps,
    ) {
        if let Some(res) = res {
            if res.exit_code == exit_code::SUCCESS {
                self.change_state(out, sid, ServiceState::Stopped, None, None, None);
            } else {
                out.log(
                    Level::Err,
                    format!("service '{sid}' stop failed (exit code {})", res.exit_code),
                );
                self.change_state(out, sid, ServiceState::Error, None, None, None);
            }
            return;
        }
        let node = self.ms.service_status[sid].node.clone();
        if self.offline_delayed(&node, input.now_ms, input.fence_delay_ms) {
            self.change_state(out, sid, ServiceState::Fence, None, None, None);
        }
    }

    fn next_recovery(&mut self, input: &ManagerInput<'_>, sid: &Sid, out: &mut Steps) {
        self.recompute_usage(input);
        let fenced = self.ms.service_status[sid].node.clone();
        let failback = input.resources.get(sid).is_none_or(|r| r.config.failback);
        let partners = self.partners(input, sid);
        let load = self.load_for_selection(input, sid, false, out);
        let record = self.ms.service_status[sid].clone();
        let (selected, decision) = self.select_recorded(
            input,
            sid,
            load.as_ref(),
            &partners,
            failback,
            &record,
            Preference::BestScore,
            DecisionReason::Recovery,
        );
        let req = requested(input, sid);
        match selected {
            Some(to) => {
                self.reported_unrecoverable.remove(sid);
                let message = if to == fenced {
                    format!("recover service '{sid}' to previous failed and fenced node '{fenced}' again")
                } else {
                    format!("recover service '{sid}' from fenced node '{fenced}' to node '{to}'")
                };
                out.event(
                    HaEvent::new(self.now_ms, EventKind::Recovery, message.clone())
                        .sid(sid)
                        .change(&fenced, &to)
                        .decision(decision),
                );
                out.info(message);
                if let Some(lock) = input.guest_locks.get(sid) {
                    if REMOVABLE_LOCKS.contains(&lock.as_str()) {
                        out.act(CrmAction::RemoveGuestLock(sid.clone()));
                        out.log(
                            Level::Warning,
                            format!("removed leftover lock '{lock}' from recovered service '{sid}' to allow its start."),
                        );
                    }
                }
                out.act(CrmAction::MoveResourceNode {
                    sid: sid.clone(),
                    from: fenced.clone(),
                    to: to.clone(),
                });
                self.add_usage(&to, load.as_ref());
                self.moved.insert(sid.clone(), to.clone());
                if let Some(sd) = self.ms.service_status.get_mut(sid) {
                    sd.node = to.clone();
                }
                let new = if req == RequestedState::Started {
                    ServiceState::Started
                } else {
                    ServiceState::RequestStop
                };
                self.change_state(out, sid, new, Some(to), None, None);
            }
            None => {
                let message = format!("recovering service '{sid}' from fenced node '{fenced}' failed, no recovery node found");
                // Logged every round (as Proxmox does), recorded once
                // until the service is recovered.
                if self.reported_unrecoverable.insert(sid.clone()) {
                    out.event(
                        HaEvent::new(self.now_ms, EventKind::Error, message.clone())
                            .sid(sid)
                            .node(&fenced)
                            .decision(decision),
                    );
                }
                out.log(Level::Err, message);
                if req == RequestedState::Disabled {
                    if let Some(sd) = self.ms.service_status.get_mut(sid) {
                        sd.failed_nodes = None;
                    }
                    self.change_state(out, sid, ServiceState::Stopped, None, None, None);
                }
            }
        }
    }
}
