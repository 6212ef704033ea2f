//! The simulated cluster store's leases: the lease core's leader-side
//! [`LeaseTable`] and the delivery of each node's requests to it, as the
//! daemon's store does (the leader checks a take-over's expiry and a
//! take-back's manager-status guard before proposing; only a quorate node
//! reaches the leader).

use lease::{
    LeaseCommand, LeaseEvent, LeaseOutcome, LeaseRequest, LeaseTable, Mono, NodeLease, ReplicaView,
    RequestFailure,
};

use crate::crm::{agent_lease_name, AgentLease};
use crate::domain::NodeName;
use crate::lrm::{agent_lock, AgentLock, LockPort};

/// The leases of the simulated cluster.
#[derive(Debug, Default)]
pub struct SimLeases {
    /// The replicated table (the leader's deadlines: the simulated store
    /// commits at once).
    pub table: LeaseTable,
    /// The log index of the last lease command.
    index: u64,
}

impl SimLeases {
    /// Delivers a node's request to the leader and returns its answer.
    pub fn deliver(
        &mut self,
        now: u64,
        quorate: bool,
        manager_status_version: u64,
        request: &LeaseRequest,
    ) -> Result<LeaseOutcome, RequestFailure> {
        if !quorate {
            return Err(RequestFailure::Unavailable("no quorum".into()));
        }
        if let Some(v) = request.manager_status_guard {
            if v != manager_status_version {
                return Err(RequestFailure::Unavailable(
                    "the manager status changed".into(),
                ));
            }
        }
        if let LeaseCommand::Takeover { name, expected, .. } = &request.command {
            if let Err(e) = self
                .table
                .check_takeover(name, expected.as_ref(), Mono(now))
            {
                return Err(RequestFailure::Unavailable(e.to_string()));
            }
        }
        Ok(self.commit(now, &request.command))
    }

    /// Commits a command (on the leader, at `now`).
    pub fn commit(&mut self, now: u64, command: &LeaseCommand) -> LeaseOutcome {
        self.index += 1;
        self.table.apply(self.index, command, Mono(now))
    }

    /// One poll of a node's lease client: what it wants to send goes to
    /// the leader at once and the answer comes back.
    pub fn exchange(
        &mut self,
        lease: &mut NodeLease,
        now: u64,
        quorate: bool,
        view: &ReplicaView<'_>,
    ) -> Option<LeaseEvent> {
        let request = lease.poll(Mono(now), view)?;
        let answer = self.deliver(now, quorate, view.manager_status_version, &request);
        lease.on_reply(Mono(now), answer)
    }

    /// `node`'s agent lease as the CRM sees it on the leader at `now`.
    pub fn agent_lease(&self, node: &NodeName, now: u64) -> AgentLease {
        let name = agent_lease_name(node.as_str());
        let record = self.table.record(&name);
        let expired = self.table.deadline(&name).is_some_and(|d| d < Mono(now));
        AgentLease::of(node, record, expired)
    }
}

/// The LRM's [`LockPort`] in the simulator: a take goes to the leader at
/// once (the daemon's lease task does the same asynchronously).
pub struct SimLockPort<'a> {
    /// The cluster's leases.
    pub leases: &'a mut SimLeases,
    /// The node's lease client.
    pub lease: &'a mut NodeLease,
    /// Simulated time.
    pub now: u64,
    /// The node reaches a quorum.
    pub quorate: bool,
    /// The CRM is fencing this node (as the manager status says).
    pub fencing_me: bool,
    /// The manager status version the node read.
    pub manager_status_version: u64,
    /// What happened (for the log).
    pub events: Vec<LeaseEvent>,
}

impl LockPort for SimLockPort<'_> {
    fn take(&mut self) -> AgentLock {
        self.lease.set_intent(lease::LeaseIntent::Hold);
        let name = self.lease.name().to_string();
        let record = self.leases.table.record(&name).cloned();
        let view = ReplicaView {
            record: record.as_ref(),
            crm_fencing_me: self.fencing_me,
            manager_status_version: self.manager_status_version,
        };
        if let Some(ev) = self
            .leases
            .exchange(self.lease, self.now, self.quorate, &view)
        {
            self.events.push(ev);
        }
        let record = self.leases.table.record(&name).cloned();
        let view = ReplicaView {
            record: record.as_ref(),
            ..view
        };
        agent_lock(self.lease, Mono(self.now), &view, self.quorate)
    }
}
