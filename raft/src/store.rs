//! [`ClusterStore`]: the typed API the daemon uses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use storage::SmHandle;

use lease::{Expected, LeaseCommand, LeaseOutcome, LeaseRecord, TakeoverRefusal};

use crate::command::{Command, CommandResponse, DocKey, Outcome};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::network::client::{HttpError, NetworkFactory, PeerClient};
use crate::network::wire::{self, ForwardReply, ForwardRequest, ForwardResult};
use crate::state::{ClusterApp, ClusterState};
use crate::tls::{NodeTls, PeerIdentity};
use crate::types::{NodeId, Raft, TypeConfig};

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sled database could not be opened or its snapshot is unreadable.
    #[error("opening store in {dir}: {source}")]
    Storage {
        /// Data directory.
        dir: String,
        /// Cause.
        source: storage::OpenError,
    },
    /// The Raft timing configuration is invalid.
    #[error("invalid raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// A value read from the local replica with the log index it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<T> {
    /// What was read.
    pub value: T,
    /// Last log index applied to the replica when it was read.
    pub applied_index: u64,
}

/// Cluster membership as committed in the local replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    /// Voting members.
    pub voters: BTreeSet<NodeId>,
    /// Non-voting members.
    pub learners: BTreeSet<NodeId>,
    /// HTTP address of every member.
    pub addrs: BTreeMap<NodeId, String>,
}

/// This node's Raft status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Leader, follower, candidate or learner.
    pub state: ServerState,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub applied_index: Option<u64>,
    /// On the leader: how long ago a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
}

/// A check of a peer's certificate beyond "its id is a member" (the
/// daemon's: the certificate is one the node directory lists for that
/// member). `Err` says why the peer is refused.
pub type PeerCheck = Arc<dyn Fn(&PeerIdentity) -> Result<(), String> + Send + Sync>;

struct Inner {
    id: NodeId,
    tls: Arc<NodeTls>,
    peer_check: std::sync::OnceLock<PeerCheck>,
    raft: Raft,
    sm: SmHandle<TypeConfig, ClusterApp>,
    peers: PeerClient,
    request_timeout: Duration,
    membership_timeout: Duration,
}

/// Handle to the local node of the replicated store. Cheap to clone.
#[derive(Clone)]
pub struct ClusterStore {
    inner: Arc<Inner>,
}

/// A handle that does not keep the store alive (for callbacks the store
/// itself holds, such as its [`PeerCheck`]).
#[derive(Clone)]
pub struct WeakClusterStore {
    inner: std::sync::Weak<Inner>,
}

impl WeakClusterStore {
    /// The store, if it is still open.
    pub fn upgrade(&self) -> Option<ClusterStore> {
        self.inner.upgrade().map(|inner| ClusterStore { inner })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn raft_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Raft(e.to_string())
}

impl ClusterStore {
    /// Opens the sled store in `config.data_dir` and starts the Raft node.
    /// The HTTP side must be served separately (see [`ClusterStore::router`]).
    pub async fn start(config: StoreConfig) -> Result<Self, StartError> {
        let raft_config = Arc::new(config.to_openraft()?);
        let (log, sm) = storage::open::<TypeConfig, _>(&config.data_dir, ClusterApp::default())
            .map_err(|source| StartError::Storage {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let handle = sm.handle();
        let peers = PeerClient::new(config.tls.clone(), config.source_addr)
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(
            config.node_id,
            raft_config,
            NetworkFactory::new(peers.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        tracing::info!(node = config.node_id, addr = %config.advertise_addr, "raft node started");
        Ok(Self {
            inner: Arc::new(Inner {
                id: config.node_id,
                tls: config.tls.clone(),
                peer_check: std::sync::OnceLock::new(),
                raft,
                sm: handle,
                peers,
                request_timeout: config.request_timeout,
                membership_timeout: config.membership_timeout,
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The underlying openraft handle (metrics, triggers).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Adds `check` to what a Raft request's certificate must pass (once;
    /// a second call is ignored and answers false). Set it before the
    /// node is reachable.
    pub fn set_peer_check(&self, check: PeerCheck) -> bool {
        self.inner.peer_check.set(check).is_ok()
    }

    /// A handle that does not keep the store alive.
    pub fn downgrade(&self) -> WeakClusterStore {
        WeakClusterStore {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// The extra peer check, if one is set.
    pub(crate) fn peer_check(&self) -> Option<&PeerCheck> {
        self.inner.peer_check.get()
    }

    /// This node's TLS material (shared with its HTTP server; replace it
    /// there to renew the certificate).
    pub fn tls(&self) -> &Arc<NodeTls> {
        &self.inner.tls
    }

    /// Stops the Raft node. The sled database closes when the last handle
    /// is dropped.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.raft.shutdown().await.map_err(raft_err)
    }

    // ----- status and membership -------------------------------------------

    /// Current Raft status of this node.
    pub fn status(&self) -> NodeStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        NodeStatus {
            id: m.id,
            state: m.state,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }

    /// On the leader: how many log entries each member is behind the
    /// leader's last log index (0 for the leader itself). `None` on any
    /// other node: only the leader tracks replication.
    pub fn replication_lag(&self) -> Option<BTreeMap<NodeId, u64>> {
        let m = self.inner.raft.metrics().borrow().clone();
        let replication = m.replication.as_ref()?;
        let last = m.last_log_index.unwrap_or(0);
        Some(
            replication
                .iter()
                .map(|(id, matched)| {
                    let done = matched.map(|l| l.index).unwrap_or(0);
                    (*id, last.saturating_sub(done))
                })
                .collect(),
        )
    }

    /// Whether this node currently believes it is the leader.
    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// `Some(term)` if this node is the leader and has applied the first
    /// entry of its term: from then on its lease deadlines have been reset
    /// and the state reflects everything committed before the term. The
    /// CRM should act only while this is `Some` (and the term unchanged).
    pub fn leader_term_ready(&self) -> Option<u64> {
        let term = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            if m.state != ServerState::Leader || m.current_leader != Some(self.inner.id) {
                return None;
            }
            m.current_term
        };
        let state = self.inner.sm.read();
        (state.app.blank_term() == Some(term)).then_some(term)
    }

    /// Membership as applied in the local replica.
    pub fn membership(&self) -> MembershipView {
        let state = self.inner.sm.read();
        let membership = state.last_membership.membership();
        MembershipView {
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            addrs: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
        }
    }

    /// Whether this node already belongs to a cluster (initialized here or
    /// joined through replication), judged from its persisted log.
    pub async fn is_initialized(&self) -> Result<bool, StoreError> {
        self.inner.raft.is_initialized().await.map_err(raft_err)
    }

    /// Initializes a new one-node cluster made of this node. Fails if the
    /// node already belongs to a cluster.
    pub async fn initialize(&self, advertise_addr: &str) -> Result<(), StoreError> {
        let members = BTreeMap::from([(
            self.inner.id,
            BasicNode {
                addr: advertise_addr.to_string(),
            },
        )]);
        self.inner.raft.initialize(members).await.map_err(raft_err)
    }

    /// Adds a node as non-voting learner and waits until it caught up.
    pub async fn add_learner(&self, id: NodeId, addr: &str) -> Result<u64, StoreError> {
        self.membership_reply(ForwardRequest::AddLearner {
            id,
            addr: addr.to_string(),
        })
        .await
    }

    /// Promotes a learner to voter.
    pub async fn promote_voter(&self, id: NodeId) -> Result<u64, StoreError> {
        self.membership_reply(ForwardRequest::PromoteVoter { id })
            .await
    }

    /// Changes the HTTP address of member `id` (same id, same role).
    pub async fn set_address(&self, id: NodeId, addr: &str) -> Result<u64, StoreError> {
        self.membership_reply(ForwardRequest::SetAddress {
            id,
            addr: addr.to_string(),
        })
        .await
    }

    /// Removes a voter or learner from the cluster.
    pub async fn remove_node(&self, id: NodeId) -> Result<u64, StoreError> {
        self.membership_reply(ForwardRequest::RemoveNode { id })
            .await
    }

    async fn membership_reply(&self, req: ForwardRequest) -> Result<u64, StoreError> {
        match self.route(req).await? {
            ForwardReply::Membership(index) => Ok(index),
            other => Err(StoreError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    // ----- reads -------------------------------------------------------------

    /// Reads the local replica (possibly stale) with the index it reflects.
    pub fn read_local<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> Applied<T> {
        let state = self.inner.sm.read();
        Applied {
            value: f(state.app.state()),
            applied_index: state.last_applied.as_ref().map_or(0, |l| l.index),
        }
    }

    /// Waits until the local replica has applied `index`, then reads it.
    pub async fn read_at_least<T>(
        &self,
        index: u64,
        f: impl FnOnce(&ClusterState) -> T,
    ) -> Result<Applied<T>, StoreError> {
        self.inner
            .raft
            .wait(Some(self.inner.request_timeout))
            .applied_index_at_least(Some(index), "read_at_least")
            .await
            .map_err(|_| StoreError::Timeout {
                what: format!("local replica to apply index {index}"),
                ms: ms(self.inner.request_timeout),
            })?;
        Ok(self.read_local(f))
    }

    /// Linearizable read: reflects every write committed before the call.
    /// Works on followers (asks the leader for its read index).
    pub async fn read_linearizable<T>(
        &self,
        f: impl FnOnce(&ClusterState) -> T,
    ) -> Result<Applied<T>, StoreError> {
        match self.route(ForwardRequest::ReadIndex).await? {
            ForwardReply::ReadIndex(index) => self.read_at_least(index, f).await,
            other => Err(StoreError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    // ----- writes ------------------------------------------------------------

    /// Proposes a command (forwarded to the leader if needed) and returns
    /// the applied response. A CAS or lease refusal is an `Ok` response
    /// with a failed [`Outcome`]; the typed helpers turn it into an error.
    pub async fn write(&self, command: Command) -> Result<CommandResponse, StoreError> {
        match self.route(ForwardRequest::Write(command)).await? {
            ForwardReply::Written(response) => Ok(response),
            other => Err(StoreError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    /// Writes a document with a CAS condition (see [`Command::PutDoc`]);
    /// returns the new version (which is also its log index).
    pub async fn put_doc(
        &self,
        key: DocKey,
        expected_version: Option<u64>,
        value: String,
    ) -> Result<u64, StoreError> {
        let response = self
            .write(Command::PutDoc {
                key,
                expected_version,
                value,
            })
            .await?;
        match outcome_result(response.outcome, "")? {
            Outcome::Written { version } => Ok(version),
            other => Err(StoreError::Raft(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Deletes a document with a CAS condition; returns the log index.
    pub async fn delete_doc(
        &self,
        key: DocKey,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let response = self
            .write(Command::DeleteDoc {
                key,
                expected_version,
            })
            .await?;
        outcome_result(response.outcome, "")?;
        Ok(response.index)
    }

    /// Queues a CRM command; returns the log index.
    pub async fn append_crm_command(&self, command: String) -> Result<u64, StoreError> {
        let response = self.write(Command::CrmCommandAppend { command }).await?;
        Ok(response.index)
    }

    /// Takes and clears the CRM command queue in one log entry.
    pub async fn take_crm_commands(&self) -> Result<Vec<String>, StoreError> {
        match self.write(Command::CrmCommandTake).await?.outcome {
            Outcome::CrmCommands(commands) => Ok(commands),
            other => Err(StoreError::Raft(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Commits a lease command on the current leader (forwarded if this
    /// node does not lead), giving up after `budget`: a node renewing its
    /// lease bounds each attempt, so a hung or partitioned leader costs
    /// one attempt and the next one asks whoever leads then. With
    /// `manager_status_guard` the command commits only if the manager
    /// status still has that version. The state machine's verdict
    /// (granted, released, or refused) is `Ok`; no answer in time, no
    /// leader, a failed guard or a take-over the leader refuses to
    /// propose are errors.
    pub async fn lease(
        &self,
        command: LeaseCommand,
        manager_status_guard: Option<u64>,
        budget: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let command = match manager_status_guard {
            None => Command::Lease(command),
            Some(version) => Command::Batch(vec![
                Command::AssertVersion {
                    key: DocKey::ManagerStatus,
                    version,
                },
                Command::Lease(command),
            ]),
        };
        let reply = self
            .route_within(ForwardRequest::Write(command), budget)
            .await?;
        let ForwardReply::Written(response) = reply else {
            return Err(StoreError::Raft(format!("unexpected reply {reply:?}")));
        };
        lease_outcome(response.outcome)
    }

    /// On the leader: the held leases whose deadline (leader's monotonic
    /// clock) has passed. Errors with `NotLeader` on any other node, and
    /// while the leader has not yet confirmed its term with a quorum.
    pub async fn expired_leases(&self) -> Result<Vec<(String, LeaseRecord)>, StoreError> {
        self.confirm_leadership().await?;
        let term = self.inner.raft.metrics().borrow().current_term;
        let state = self.inner.sm.read();
        if state.app.blank_term() != Some(term) {
            return Err(StoreError::NotLeader { leader: None });
        }
        Ok(state.app.expired_at(Instant::now()))
    }

    /// On this node: time left until the local deadline of a held lease
    /// (only meaningful on the leader). `None` if the lease is not held.
    pub fn lease_time_left(&self, name: &str) -> Option<Duration> {
        let state = self.inner.sm.read();
        let now = state.app.mono(Instant::now());
        state.app.state().lease_table().time_left(name, now)
    }

    /// Commits `command` only if this node is the leader, never forwarding
    /// it: the CRM acts only where it runs, so a deposed leader's round
    /// cannot commit through the new one.
    pub async fn write_here(&self, command: Command) -> Result<CommandResponse, StoreError> {
        match self
            .handle_on_leader(ForwardRequest::Write(command))
            .await?
        {
            ForwardReply::Written(response) => Ok(response),
            other => Err(StoreError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    // ----- routing -------------------------------------------------------------

    /// Confirms with a quorum that this node is the leader and waits until
    /// everything committed is applied; returns the read index.
    async fn confirm_leadership(&self) -> Result<u64, StoreError> {
        let fut = self.inner.raft.ensure_linearizable();
        match tokio::time::timeout(self.inner.request_timeout, fut).await {
            Err(_) => Err(StoreError::Timeout {
                what: "leadership confirmation by a quorum".into(),
                ms: ms(self.inner.request_timeout),
            }),
            Ok(Ok(read_log_id)) => Ok(read_log_id.map_or(0, |l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(StoreError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(StoreError::NoLeader)
            }
            Ok(Err(e)) => Err(raft_err(e)),
        }
    }

    async fn client_write(&self, command: Command) -> Result<CommandResponse, StoreError> {
        let kind = command.kind();
        let fut = self.inner.raft.client_write(command);
        match tokio::time::timeout(self.inner.request_timeout, fut).await {
            Err(_) => Err(StoreError::Timeout {
                what: format!("commit of {kind}"),
                ms: ms(self.inner.request_timeout),
            }),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(StoreError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(e)) => Err(raft_err(e)),
        }
    }

    async fn change_membership(
        &self,
        changes: ChangeMembers<NodeId, BasicNode>,
    ) -> Result<u64, StoreError> {
        let fut = self.inner.raft.change_membership(changes, false);
        self.finish_membership(fut).await
    }

    async fn finish_membership<F>(&self, fut: F) -> Result<u64, StoreError>
    where
        F: std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
            >,
        >,
    {
        match tokio::time::timeout(self.inner.membership_timeout, fut).await {
            Err(_) => Err(StoreError::Timeout {
                what: "membership change".into(),
                ms: ms(self.inner.membership_timeout),
            }),
            Ok(Ok(response)) => Ok(response.log_id.index),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(StoreError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            )))) => Err(StoreError::MembershipChangeInProgress),
            Ok(Err(e)) => Err(raft_err(e)),
        }
    }

    /// Checks on the leader, before proposing, that a take-over names a
    /// lease that is expired right now with exactly the expected holder and
    /// sequence (or, without `expected`, a free lease).
    async fn check_takeover(
        &self,
        name: &str,
        expected: Option<&Expected>,
    ) -> Result<(), StoreError> {
        self.confirm_leadership().await?;
        let term = self.inner.raft.metrics().borrow().current_term;
        let state = self.inner.sm.read();
        if state.app.blank_term() != Some(term) {
            return Err(StoreError::NotLeader { leader: None });
        }
        let now = state.app.mono(Instant::now());
        state
            .app
            .state()
            .lease_table()
            .check_takeover(name, expected, now)
            .map_err(|refusal| match refusal {
                TakeoverRefusal::NotExpired { name, .. } => StoreError::LeaseNotExpired { name },
                TakeoverRefusal::Changed { name, current } => {
                    StoreError::TakeoverRejected { name, current }
                }
            })
    }

    /// Executes a request on this node, which must be the leader. Used both
    /// for local requests and for requests forwarded by followers.
    pub(crate) async fn handle_on_leader(&self, req: ForwardRequest) -> ForwardResult {
        match req {
            ForwardRequest::Write(command) => {
                // Every take-over, also inside a batch, must name a lease
                // this leader sees expired right now.
                for (name, expected) in command.takeovers() {
                    self.check_takeover(name, expected).await?;
                }
                self.client_write(command).await.map(ForwardReply::Written)
            }
            ForwardRequest::ReadIndex => {
                self.confirm_leadership().await.map(ForwardReply::ReadIndex)
            }
            ForwardRequest::AddLearner { id, addr } => {
                let fut = self.inner.raft.add_learner(id, BasicNode { addr }, true);
                self.finish_membership(fut)
                    .await
                    .map(ForwardReply::Membership)
            }
            ForwardRequest::PromoteVoter { id } => self
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                .await
                .map(ForwardReply::Membership),
            ForwardRequest::RemoveNode { id } => {
                let is_voter = {
                    let m = self.inner.raft.metrics();
                    let m = m.borrow();
                    let is_voter = m
                        .membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == id);
                    is_voter
                };
                let changes = if is_voter {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.change_membership(changes)
                    .await
                    .map(ForwardReply::Membership)
            }
            ForwardRequest::SetAddress { id, addr } => {
                let is_member = {
                    let m = self.inner.raft.metrics();
                    let m = m.borrow();
                    let is_member = m.membership_config.membership().get_node(&id).is_some();
                    is_member
                };
                if !is_member {
                    return Err(StoreError::Raft(format!("node id {id} is not a member")));
                }
                // SetNodes only replaces the node's address: ids, roles and
                // quorum stay as they are.
                let nodes = BTreeMap::from([(id, BasicNode { addr })]);
                self.change_membership(ChangeMembers::SetNodes(nodes))
                    .await
                    .map(ForwardReply::Membership)
            }
        }
    }

    fn leader_addr(&self, leader: NodeId) -> Option<String> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Runs `req` on the leader: locally if this node leads, else over HTTP.
    /// Retries while no leader is known, up to the request timeout. A
    /// forwarded write is retried only if the connection was refused (the
    /// leader cannot have seen it), never after a timeout.
    async fn route(&self, req: ForwardRequest) -> ForwardResult {
        let is_membership = matches!(
            req,
            ForwardRequest::AddLearner { .. }
                | ForwardRequest::PromoteVoter { .. }
                | ForwardRequest::RemoveNode { .. }
                | ForwardRequest::SetAddress { .. }
        );
        let budget = if is_membership {
            self.inner.membership_timeout
        } else {
            self.inner.request_timeout
        };
        self.route_within(req, budget).await
    }

    /// [`Self::route`] within `budget`: each try asks the leader known at
    /// that moment, and the whole attempt (a local commit included) ends
    /// when the budget is spent.
    async fn route_within(&self, req: ForwardRequest, budget: Duration) -> ForwardResult {
        match tokio::time::timeout(budget, self.route_loop(req, budget)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout {
                what: "the current leader's answer".into(),
                ms: ms(budget),
            }),
        }
    }

    async fn route_loop(&self, req: ForwardRequest, budget: Duration) -> ForwardResult {
        let deadline = Instant::now() + budget;
        let mut last_error: StoreError;
        loop {
            match self.handle_on_leader(req.clone()).await {
                Err(StoreError::NotLeader {
                    leader: Some(leader),
                }) if leader != self.inner.id => match self.forward(leader, &req, deadline).await {
                    Ok(result) => match result {
                        Err(
                            e @ (StoreError::NotLeader { .. }
                            | StoreError::NoLeader
                            | StoreError::MembershipChangeInProgress),
                        ) => last_error = e,
                        other => return other,
                    },
                    Err(e) => last_error = e,
                },
                Err(
                    e @ (StoreError::NotLeader { .. }
                    | StoreError::NoLeader
                    | StoreError::MembershipChangeInProgress),
                ) => last_error = e,
                other => return other,
            }
            if Instant::now() >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a request to the leader. `Err` means retry is safe.
    async fn forward(
        &self,
        leader: NodeId,
        req: &ForwardRequest,
        deadline: Instant,
    ) -> Result<ForwardResult, StoreError> {
        let Some(addr) = self.leader_addr(leader) else {
            return Err(StoreError::NoLeader);
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = if matches!(
            req,
            ForwardRequest::AddLearner { .. }
                | ForwardRequest::PromoteVoter { .. }
                | ForwardRequest::RemoveNode { .. }
                | ForwardRequest::SetAddress { .. }
        ) {
            self.inner.membership_timeout
        } else {
            remaining.max(Duration::from_millis(50))
        };
        let reply = self
            .inner
            .peers
            .post::<_, ForwardResult>(&addr, wire::PATH_FORWARD, "forward", req, timeout)
            .await;
        match reply {
            Ok(result) => Ok(result),
            Err(HttpError::Connect(message)) => Err(StoreError::Transport {
                node: leader,
                addr,
                message,
            }),
            Err(e) => Ok(Err(StoreError::Transport {
                node: leader,
                addr,
                message: e.to_string(),
            })),
        }
    }
}

fn outcome_result(outcome: Outcome, caller: &str) -> Result<Outcome, StoreError> {
    match outcome {
        Outcome::VersionConflict {
            key,
            expected,
            current,
        } => Err(StoreError::VersionConflict {
            key,
            expected,
            current,
        }),
        Outcome::Lease { name, outcome } if !outcome.is_success() => {
            Err(StoreError::LeaseRefused {
                name,
                caller: caller.to_string(),
                outcome: Box::new(outcome),
            })
        }
        Outcome::BatchFailed { position, outcome } => Err(StoreError::BatchFailed {
            position,
            cause: Box::new(match outcome_result(*outcome, caller) {
                Err(e) => e,
                Ok(o) => StoreError::Raft(format!("unexpected outcome {o:?}")),
            }),
        }),
        ok => Ok(ok),
    }
}

/// The lease outcome in a response: alone, or second in a guarded batch.
fn lease_outcome(outcome: Outcome) -> Result<LeaseOutcome, StoreError> {
    match outcome {
        Outcome::Lease { outcome, .. } => Ok(outcome),
        Outcome::Batch(mut outcomes) => match outcomes.pop() {
            Some(Outcome::Lease { outcome, .. }) => Ok(outcome),
            other => Err(StoreError::Raft(format!("unexpected outcome {other:?}"))),
        },
        Outcome::BatchFailed { outcome, .. } => match *outcome {
            Outcome::Lease { outcome, .. } => Ok(outcome),
            other => Err(outcome_result(other, "")
                .err()
                .unwrap_or_else(|| StoreError::Raft("a failed batch without a cause".into()))),
        },
        other => Err(StoreError::Raft(format!("unexpected outcome {other:?}"))),
    }
}
