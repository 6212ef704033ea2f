//! One LRM round (spec 4.2): the state transitions of the agent lock and
//! the watchdog, then the work of the state reached; and the shutdown
//! request that ends the rounds.

use super::*;

impl Lrm {
    /// Asks the LRM to stop (daemon stop/restart or node shutdown/reboot,
    /// spec sections 3.17 and 4.7).
    pub fn shutdown_request(
        &mut self,
        input: &LrmInput<'_>,
        node_shutdown: NodeShutdown,
        policy: ShutdownPolicy,
    ) -> LrmOutput {
        let mut ctx = Ctx {
            input,
            steps: Vec::new(),
            status: None,
        };
        if self.shutdown_request.is_some() {
            return LrmOutput::default();
        }
        let shutdown = node_shutdown != NodeShutdown::None;
        let reboot = node_shutdown == NodeShutdown::Reboot;
        if shutdown {
            ctx.log(
                Level::Info,
                format!("got shutdown request with shutdown policy '{policy}'"),
            );
        }
        let (freeze_all, maintenance) = match policy {
            ShutdownPolicy::Conditional => (reboot, false),
            ShutdownPolicy::Freeze => (true, false),
            ShutdownPolicy::Failover => (false, false),
            ShutdownPolicy::Migrate => (false, true),
        };
        if shutdown && !maintenance {
            let local: Vec<Sid> = self
                .service_status
                .iter()
                .filter(|(_, sd)| sd.node == self.node)
                .map(|(sid, _)| sid.clone())
                .collect();
            for sid in local {
                self.queue(
                    sid.clone(),
                    None,
                    CommandRequest {
                        sid,
                        command: ServiceState::RequestStop,
                        target: None,
                        timeout: None,
                    },
                );
            }
        }
        if shutdown {
            let kind = if reboot { "reboot" } else { "shutdown" };
            if self.maintenance_requested {
                if maintenance {
                    ctx.log(
                        Level::Info,
                        format!(
                            "{kind} LRM, ignore maintenance policy, already in maintenance mode"
                        ),
                    );
                } else {
                    ctx.log(
                        Level::Info,
                        format!("{kind} LRM, ignore {policy} policy as manual maintenance mode is enabled"),
                    );
                }
            } else if maintenance {
                ctx.log(
                    Level::Info,
                    format!("{kind} LRM, doing maintenance, removing this node from active list"),
                );
                self.mode = LrmMode::Maintenance;
            } else if freeze_all {
                ctx.log(
                    Level::Info,
                    format!("{kind} LRM, stop and freeze all services"),
                );
                self.mode = LrmMode::Restart;
            } else {
                ctx.log(Level::Info, "shutdown LRM, stop all services");
                self.mode = LrmMode::Shutdown;
            }
        } else if self.maintenance_requested {
            ctx.log(
                Level::Info,
                "Restarting LRM in maintenance mode may be delayed until all services are moved",
            );
        } else {
            ctx.log(Level::Info, "restart LRM, freeze all services");
            self.mode = LrmMode::Restart;
        }
        self.shutdown_request = Some(input.now_ms);
        if !self.update_lrm_status(&mut ctx) && input.cfs_rw_ok {
            ctx.log(
                Level::Err,
                "unable to update lrm status file - not quorate?",
            );
        }
        if let Some(status) = ctx.status.as_mut() {
            status.results = self.results.clone();
        }
        LrmOutput {
            steps: ctx.steps,
            status: ctx.status,
            exit: false,
        }
    }

    /// Runs one iteration.
    pub fn iterate(
        &mut self,
        input: &LrmInput<'_>,
        exec: &mut dyn Executor,
        lock: &mut dyn LockPort,
    ) -> LrmOutput {
        let mut ctx = Ctx {
            input,
            steps: Vec::new(),
            status: None,
        };
        let exit = self.work(&mut ctx, exec, lock);
        self.prune_results();
        if let Some(status) = ctx.status.as_mut() {
            status.results = self.results.clone();
        }
        LrmOutput {
            steps: ctx.steps,
            status: ctx.status,
            exit,
        }
    }

    fn work(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        exec: &mut dyn Executor,
        lock: &mut dyn LockPort,
    ) -> bool {
        for (sid, code) in ctx.input.finished.clone() {
            self.command_finished(ctx, &sid, code);
        }
        if !self.wrote_status {
            if self.update_lrm_status(ctx) {
                self.wrote_status = true;
            } else {
                return self.shutdown_request.is_some();
            }
        }
        self.update_service_status(ctx);
        let fence = self.fence_requested();

        match self.state {
            LrmState::WaitForAgentLock => {
                if !fence
                    && self.mode != LrmMode::Disarm
                    && (self.active_service_count() > 0 || self.has_frozen_service())
                    && ctx.input.quorate
                    && self.take_lock(ctx, lock)
                {
                    self.set_state(ctx, LrmState::Active);
                }
            }
            LrmState::LostAgentLock => {
                if fence {
                    ctx.act(LrmAction::AbandonAgentLock);
                } else if ctx.input.quorate && self.take_lock(ctx, lock) {
                    self.set_state(ctx, LrmState::Active);
                }
            }
            LrmState::Active => {
                if fence {
                    ctx.log(Level::Err, "node needs to be fenced - releasing agent_lock");
                    ctx.act(LrmAction::AbandonAgentLock);
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if !self.take_lock(ctx, lock) {
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if self.mode == LrmMode::Maintenance {
                    self.set_state(ctx, LrmState::Maintenance);
                } else if self.mode == LrmMode::Disarm && self.workers.is_empty() {
                    ctx.log(
                        Level::Info,
                        "HA disarm requested, releasing agent lock and watchdog",
                    );
                    self.release_lock(ctx);
                    self.give_up_watchdog(ctx);
                    self.set_state(ctx, LrmState::WaitForAgentLock);
                } else if !self.has_configured_service_on_local_node()
                    && self.run_workers(ctx, exec) == 0
                {
                    self.active_idle_rounds += 1;
                    if self.active_idle_rounds > MAX_ACTIVE_IDLE_ROUNDS {
                        ctx.log(
                            Level::Info,
                            format!("node had no service configured for {MAX_ACTIVE_IDLE_ROUNDS} rounds, going idle."),
                        );
                        self.release_lock(ctx);
                        self.give_up_watchdog(ctx);
                        self.set_state(ctx, LrmState::WaitForAgentLock);
                        self.active_idle_rounds = 0;
                    }
                } else {
                    self.active_idle_rounds = 0;
                }
            }
            LrmState::Maintenance => {
                if fence {
                    ctx.log(
                        Level::Err,
                        "node needs to be fenced during maintenance mode - releasing agent_lock",
                    );
                    ctx.act(LrmAction::AbandonAgentLock);
                    self.set_state(ctx, LrmState::LostAgentLock);
                } else if self.mode == LrmMode::Disarm
                    && self.active_service_count() == 0
                    && self.workers.is_empty()
                {
                    ctx.log(
                        Level::Info,
                        "HA disarm requested during maintenance, releasing agent lock and watchdog",
                    );
                    self.release_lock(ctx);
                    self.give_up_watchdog(ctx);
                    self.set_state(ctx, LrmState::WaitForAgentLock);
                } else if self.active_service_count() > 0 || self.run_workers(ctx, exec) > 0 {
                    if !self.take_lock(ctx, lock) {
                        self.set_state(ctx, LrmState::LostAgentLock);
                    }
                } else if !self.maintenance_requested && self.mode != LrmMode::Maintenance {
                    if self.take_lock(ctx, lock) {
                        self.set_state(ctx, LrmState::Active);
                    } else {
                        self.set_state(ctx, LrmState::LostAgentLock);
                    }
                }
            }
            LrmState::Startup => self.set_state(ctx, LrmState::WaitForAgentLock),
        }

        match self.state {
            LrmState::WaitForAgentLock | LrmState::Startup => {
                if self.shutdown_request.is_some() {
                    return true;
                }
                self.update_lrm_status(ctx);
            }
            LrmState::Active => {
                let mut shutdown = false;
                if self.update_service_status_quiet(ctx) {
                    if self.shutdown_request.is_some() {
                        if self.mode == LrmMode::Restart {
                            let workers = self.run_workers(ctx, exec);
                            if self.active_service_count() == 0 && workers == 0 {
                                self.give_up_watchdog(ctx);
                                shutdown = true;
                                self.release_lock(ctx);
                            }
                        } else if self.run_workers(ctx, exec) == 0 {
                            if self.shutdown_errors == 0 {
                                self.give_up_watchdog(ctx);
                                self.release_lock(ctx);
                            }
                            shutdown = true;
                        }
                    } else if !ctx.input.cluster_state_ok {
                        ctx.log(
                            Level::Notice,
                            "temporary inconsistent cluster state (cfs restart?), skip round",
                        );
                    } else {
                        self.manage_resources(ctx, exec);
                    }
                }
                self.update_lrm_status(ctx);
                if shutdown {
                    return true;
                }
            }
            LrmState::LostAgentLock => {
                if ctx.input.watchdog_problem.is_some() {
                    // Proxmox writes nothing in this state; but a node that
                    // cannot arm its watchdog never gets out of it, and the
                    // CRM must learn why to move its services (the shell
                    // writes only what changed).
                    self.update_lrm_status(ctx);
                }
                if self.shutdown_request.is_some() {
                    let count = self.active_service_count();
                    if count > 0 {
                        ctx.log(
                            Level::Err,
                            format!("got shutdown request in state 'lost_agent_lock' - detected {count} running services"),
                        );
                        if self.mode == LrmMode::Restart
                            && ctx.input.now_ms.saturating_sub(self.state_change_ms)
                                > LOST_LOCK_RESTART_GIVE_UP_MS
                        {
                            ctx.log(
                                Level::Err,
                                "lost lock while restarting, exit and leave services",
                            );
                            return true;
                        }
                    } else {
                        // Nothing runs here: let the lease go (if it is
                        // still ours) so the watchdog can close cleanly.
                        self.release_lock(ctx);
                        self.give_up_watchdog(ctx);
                        return true;
                    }
                }
            }
            LrmState::Maintenance => {
                if !self.update_service_status_quiet(ctx) {
                    return true;
                }
                let mut exit = false;
                if self.active_service_count() == 0 && self.run_workers(ctx, exec) == 0 {
                    self.give_up_watchdog(ctx);
                    self.release_lock(ctx);
                    exit = self.shutdown_request.is_some();
                }
                if !exit {
                    self.manage_resources(ctx, exec);
                }
                self.update_lrm_status(ctx);
                if exit {
                    return true;
                }
            }
        }
        false
    }

    /// The second manager-status read of an iteration (the snapshot is the
    /// same; only a cfs failure matters).
    fn update_service_status_quiet(&mut self, ctx: &mut Ctx<'_, '_>) -> bool {
        // the snapshot is the same as at the start of the iteration
        ctx.input.cfs_rw_ok
    }
}
