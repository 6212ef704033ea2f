//! Rebalance on start (spec 3.11.5) and automatic rebalancing (3.11.6).

use super::*;
use crate::crm::usage::{criteria_of, imbalance_of, topsis, NodeUsage};
use crate::domain::RebalanceMethod;

/// One candidate move of a bundle (a started service and its started
/// positive partners, all on one node).
struct Move {
    leader: Sid,
    target: NodeName,
    imbalance: f64,
    criteria: [f64; 4],
}

impl Manager {
    /// `request_start`: with `ha-rebalance-on-start` the best-scored node
    /// is chosen, and a different one becomes a `request_start_balance`
    /// move (the LRM skips it if the service already runs).
    pub(super) fn next_request_start(
        &mut self,
        input: &ManagerInput<'_>,
        sid: &Sid,
        out: &mut Steps,
    ) {
        let node = self.ms.service_status[sid].node.clone();
        if input.scheduling.crs.rebalance_on_start {
            let partners = self.partners(input, sid);
            let failback = input.resources.get(sid).is_none_or(|r| r.config.failback);
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
                DecisionReason::RebalanceOnStart,
            );
            if let Some(target) = &selected {
                let which = if *target == node { "current" } else { "new" };
                let message =
                    format!("service {sid}: re-balance selected {which} node {target} for startup");
                // Only a start elsewhere is worth a history entry.
                if *target != node {
                    out.event(
                        HaEvent::new(self.now_ms, EventKind::Relocate, message.clone())
                            .sid(sid)
                            .change(&node, target)
                            .decision(decision),
                    );
                }
                out.info(message);
            }
            // Later services of this pass see where this one starts.
            let start_on = selected.clone().unwrap_or_else(|| node.clone());
            self.add_usage(&start_on, load.as_ref());
            if let Some(target) = selected.filter(|t| *t != node) {
                self.change_state(
                    out,
                    sid,
                    ServiceState::RequestStartBalance,
                    Some(node),
                    Some(target),
                    None,
                );
                return;
            }
        }
        self.change_state(out, sid, ServiceState::Started, Some(node), None, None);
    }

    /// A move is queued or under way: rebalancing waits, and the hold
    /// counter stays as it is.
    fn motion_pending(&self) -> bool {
        self.ms.service_status.values().any(|sd| {
            matches!(sd.state, ServiceState::Migrate | ServiceState::Relocate)
                || sd
                    .cmd
                    .as_ref()
                    .and_then(|c| c.first())
                    .is_some_and(|t| t == "migrate" || t == "relocate")
        })
    }

    /// One round of automatic rebalancing (spec 3.11.6). Runs before the
    /// state machine; a chosen move is queued as an ordinary
    /// migrate/relocate command.
    pub(super) fn auto_rebalance(&mut self, input: &ManagerInput<'_>, out: &mut Steps) {
        let crs = input.scheduling.crs;
        if !crs.auto_rebalance || self.mode == CrsMode::Basic || self.motion_pending() {
            return;
        }
        self.recompute_usage(input);
        let imbalance = self.usage.imbalance();
        if imbalance <= crs.threshold {
            self.rebalance_hold = 0;
            return;
        }
        self.rebalance_hold += 1;
        if self.rebalance_hold < crs.hold_rounds {
            return;
        }
        self.rebalance_hold = 0;
        let Some(best) = self.best_move(input, crs.method) else {
            return;
        };
        let change = (imbalance - best.imbalance) / imbalance;
        if change < crs.margin {
            return;
        }
        let task = if best.leader.kind() == "vm" {
            "migrate"
        } else {
            "relocate"
        };
        out.info(format!(
            "auto rebalance - {task} {} to {} (expected change for imbalance from {imbalance:.2} to {:.2})",
            best.leader, best.target, best.imbalance
        ));
        let cmd = format!("{task} {} {}", best.leader, best.target);
        self.queue_resource_motion(input, &cmd, task, &best.leader, &best.target, out);
    }

    /// The best move over every bundle and target, by `method`.
    fn best_move(&self, input: &ManagerInput<'_>, method: RebalanceMethod) -> Option<Move> {
        let names: Vec<&NodeName> = self.usage.keys().collect();
        let base: Vec<NodeUsage> = self.usage.nodes().values().copied().collect();
        let index = |n: &NodeName| names.binary_search(&n).ok();
        let mut moves: Vec<Move> = Vec::new();
        let mut scratch = base.clone();
        for (sid, sd) in &self.ms.service_status {
            if sd.state != ServiceState::Started {
                continue;
            }
            let Some(bundle) = self.bundle(input, sid, sd) else {
                continue;
            };
            let Some(src) = index(&sd.node) else {
                continue;
            };
            let mut load = Load::default();
            for member in &bundle {
                let running = self.ms.service_status[*member].running;
                let l = self
                    .service_load(input, member, running)
                    .unwrap_or_default();
                let whole = l.zero_cpu_is_whole_node && l.cpu <= 0.0;
                load.cpu += if whole { base[src].maxcpu } else { l.cpu };
                load.mem += l.mem;
            }
            for target in self.rebalance_targets(input, sid, &bundle, &sd.node) {
                let Some(dst) = index(&target) else {
                    continue;
                };
                scratch[src].cpu -= load.cpu;
                scratch[src].mem -= load.mem;
                scratch[dst].cpu += load.cpu;
                scratch[dst].mem += load.mem;
                let imbalance = imbalance_of(scratch.iter());
                let criteria = if method == RebalanceMethod::Topsis {
                    criteria_of(scratch.iter())
                } else {
                    [0.0; 4]
                };
                scratch[src] = base[src];
                scratch[dst] = base[dst];
                moves.push(Move {
                    leader: sid.clone(),
                    target,
                    imbalance,
                    criteria,
                });
            }
        }
        // `moves` is in (sid, source, target) order: the first of equals wins.
        match method {
            RebalanceMethod::Bruteforce => {
                let mut best: Option<Move> = None;
                for m in moves {
                    if best.as_ref().is_none_or(|b| m.imbalance < b.imbalance) {
                        best = Some(m);
                    }
                }
                best
            }
            RebalanceMethod::Topsis => {
                let rows: Vec<[f64; 4]> = moves.iter().map(|m| m.criteria).collect();
                let scores = topsis(&rows);
                let mut best: Option<(f64, Move)> = None;
                for (score, m) in scores.into_iter().zip(moves) {
                    if best.as_ref().is_none_or(|(s, _)| score > *s) {
                        best = Some((score, m));
                    }
                }
                best.map(|(_, m)| m)
            }
        }
    }

    /// The bundle `sid` leads: itself and its started positive partners,
    /// if none of its partners is moving, all started members share its
    /// node, and `sid` is the alphabetically first member.
    fn bundle<'a>(
        &'a self,
        input: &ManagerInput<'_>,
        sid: &'a Sid,
        sd: &ServiceRecord,
    ) -> Option<Vec<&'a Sid>> {
        let mut bundle = vec![sid];
        if let Some(partners) = input.resource_affinity.positive.get(sid) {
            for partner in partners {
                let Some((key, p)) = self.ms.service_status.get_key_value(partner) else {
                    continue;
                };
                match p.state {
                    ServiceState::Migrate | ServiceState::Relocate => return None,
                    ServiceState::Started if p.node == sd.node => {
                        if key < sid {
                            return None;
                        }
                        bundle.push(key);
                    }
                    ServiceState::Started => return None,
                    _ => {}
                }
            }
        }
        Some(bundle)
    }

    /// Where a bundle may go: the leader's preferred nodes (highest
    /// node-affinity priority class online), minus the nodes negative
    /// partners of any member use, minus its current node.
    fn rebalance_targets(
        &self,
        input: &ManagerInput<'_>,
        leader: &Sid,
        bundle: &[&Sid],
        current: &NodeName,
    ) -> Vec<NodeName> {
        let mut nodes: Vec<NodeName> = match input.node_affinity.get(leader) {
            None => self.usage.keys().cloned().collect(),
            Some(rule) => {
                let online = rule
                    .nodes
                    .iter()
                    .filter(|(n, _)| self.usage.contains_key(n));
                let best = online.clone().map(|(_, p)| *p).max();
                online
                    .filter(|(_, p)| Some(**p) == best)
                    .map(|(n, _)| n.clone())
                    .collect()
            }
        };
        nodes.retain(|n| n != current);
        for member in bundle {
            if !input.resource_affinity.contains(member) {
                continue;
            }
            let partners = self.partners(input, member);
            nodes.retain(|n| !partners.separate.contains(n));
        }
        nodes
    }

    /// The current imbalance of the online nodes (0 in `basic` mode),
    /// for status output.
    pub fn imbalance(&self) -> f64 {
        if self.mode == CrsMode::Basic {
            0.0
        } else {
            self.usage.imbalance()
        }
    }
}
