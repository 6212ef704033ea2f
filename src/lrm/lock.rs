//! The agent lock as the LRM sees it, from the node-side lease core.
//!
//! One function for the daemon and the simulator: both hand their
//! [`NodeLease`] and what the local replica says of the lease record to
//! [`agent_lock`], and give the answer to the LRM round.

use lease::{LeaseMode, Mono, NodeLease, NodeLeaseState, ReplicaView};

use super::daemon::AgentLock;

/// How the node's agent lock stands for the LRM: valid, acquirable (free
/// or left unguarded by this node), pending (being renewed, or held by an
/// earlier run of this node or a CRM fencing hold that can be taken back
/// once expired), or unavailable (no quorum, the watchdog does not
/// answer, the CRM is fencing this node, or someone else left it
/// unguarded).
pub fn agent_lock(
    lease: &NodeLease,
    now: Mono,
    view: &ReplicaView<'_>,
    quorate: bool,
) -> AgentLock {
    // Without quorum the lock counts as lost even while the lease is
    // still valid (spec 4.8): the LRM stops acting, the lease core keeps
    // renewing and feeding until the window ends.
    if !quorate || lease.watchdog_failed() {
        return AgentLock::Unavailable;
    }
    if lease.valid(now) {
        return AgentLock::Valid;
    }
    if matches!(lease.state(), NodeLeaseState::Held { .. }) {
        return AgentLock::Pending;
    }
    match view.record {
        None => AgentLock::Acquirable,
        Some(r) if r.mode == LeaseMode::Unguarded && r.holder == lease.holder() => {
            AgentLock::Acquirable
        }
        Some(r) if r.mode == LeaseMode::Unguarded => AgentLock::Unavailable,
        Some(_) if view.crm_fencing_me => AgentLock::Unavailable,
        Some(_) => AgentLock::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lease::{LeaseIntent, LeaseRecord, TimingProfile};

    fn view(record: Option<&LeaseRecord>, fencing: bool) -> ReplicaView<'_> {
        ReplicaView {
            record,
            crm_fencing_me: fencing,
            manager_status_version: 1,
        }
    }

    #[test]
    fn the_lock_states() {
        let mut l = NodeLease::new("ha_agent_n1_lock", "n1", 2, &TimingProfile::FAST);
        l.set_intent(LeaseIntent::Hold);
        let rec = |holder: &str, mode| LeaseRecord {
            holder: holder.into(),
            incarnation: 1,
            ttl_ms: 5000,
            seq: 4,
            mode,
        };
        let now = Mono(0);
        assert_eq!(
            agent_lock(&l, now, &view(None, false), true),
            AgentLock::Acquirable
        );
        assert_eq!(
            agent_lock(&l, now, &view(None, false), false),
            AgentLock::Unavailable
        );
        let mine = rec("n1", LeaseMode::Unguarded);
        assert_eq!(
            agent_lock(&l, now, &view(Some(&mine), false), true),
            AgentLock::Acquirable
        );
        let other = rec("n2", LeaseMode::Unguarded);
        assert_eq!(
            agent_lock(&l, now, &view(Some(&other), false), true),
            AgentLock::Unavailable
        );
        let earlier = rec("n1", LeaseMode::Held);
        assert_eq!(
            agent_lock(&l, now, &view(Some(&earlier), false), true),
            AgentLock::Pending
        );
        assert_eq!(
            agent_lock(&l, now, &view(Some(&earlier), true), true),
            AgentLock::Unavailable
        );
    }
}
