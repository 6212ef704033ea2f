//! Cluster life cycle: `cluster init` and `cluster join` write the node's
//! credentials; the daemon then finishes what they started (bootstrap of
//! the one-node cluster, or admission as a voter).

use std::time::Duration;

use anyhow::{bail, Context};
use raft::ClusterStore;

use super::config::NodeConfig;
use super::credentials::{random_secret, Credentials, CREDENTIALS_VERSION};
use crate::api::cluster::{AdmitRequest, JoinReply, JoinRequest, ADMIT_RETRY, JOIN_TOKEN_HEADER};
use crate::api::docs::{self, NodeDirectory, NodeEntry};
use crate::api::error::ErrorBody;
use crate::api::join_tokens::{self, NewJoinToken};

/// Raft id of the node that initializes a cluster.
pub const FIRST_NODE_ID: u64 = 1;

/// `cluster init`: creates fresh secrets for a new cluster made of this
/// node, and its first join token (valid for the default lifetime; the
/// daemon stores it when it bootstraps). Answers the credentials and the
/// join token to show. Refuses if the node already has credentials.
pub fn init(config: &NodeConfig) -> anyhow::Result<(Credentials, String)> {
    let path = config.credentials_path();
    if path.exists() {
        bail!(
            "{}: this node already belongs to a cluster (remove the data directory to start over)",
            path.display()
        );
    }
    let join_token = NewJoinToken::generate(
        join_tokens::unix_now(),
        join_tokens::DEFAULT_TTL_SECS,
        join_tokens::INIT_CREATOR,
        "made by cluster init",
    )?;
    let creds = Credentials {
        version: CREDENTIALS_VERSION,
        node_id: FIRST_NODE_ID,
        cluster_secret: random_secret().context("reading /dev/urandom")?,
        api_token: random_secret().context("reading /dev/urandom")?,
        bootstrap_pending: true,
        initial_join_token: Some(join_token.pending()),
        join_via: None,
    };
    creds.save(&path)?;
    Ok((creds, join_token.display()))
}

/// `cluster join <address> --token T`: registers this node with a member
/// and stores the credentials it answers with.
pub fn join(config: &NodeConfig, address: &str, token: &str) -> anyhow::Result<Credentials> {
    let path = config.credentials_path();
    if path.exists() {
        bail!(
            "{}: this node already belongs to a cluster (remove the data directory to start over)",
            path.display()
        );
    }
    // No source address here: this is the operator's CLI, which may run
    // where the node's advertise address does not exist (a container, a
    // network namespace); the daemon's own node-to-node traffic uses it.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("http://{address}/api/v1/cluster/join");
    let response = client
        .post(&url)
        .header(JOIN_TOKEN_HEADER, token)
        .json(&JoinRequest {
            node: config.node.to_string(),
            addr: config.advertise.clone(),
            wire_version: raft::network::wire::WIRE_VERSION,
            software: env!("CARGO_PKG_VERSION").to_string(),
        })
        .send()
        .with_context(|| format!("contacting {url}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let message = response
            .json::<ErrorBody>()
            .map(|b| b.error)
            .unwrap_or_else(|_| status.to_string());
        bail!("join refused by {address}: {message}");
    }
    let reply: JoinReply = response.json().context("decoding the join reply")?;
    let creds = Credentials {
        version: CREDENTIALS_VERSION,
        node_id: reply.node_id,
        cluster_secret: reply.cluster_secret,
        api_token: reply.api_token,
        bootstrap_pending: false,
        initial_join_token: None,
        join_via: Some(address.to_string()),
    };
    creds.save(&path)?;
    Ok(creds)
}

/// In the daemon, after the store and the HTTP server are up: bootstraps
/// the cluster or asks for admission, then clears the pending marker.
pub async fn finish_pending(
    config: &NodeConfig,
    mut creds: Credentials,
    store: &ClusterStore,
) -> anyhow::Result<()> {
    if creds.bootstrap_pending {
        if store.membership().voters.is_empty() {
            store
                .initialize(&config.advertise)
                .await
                .context("initializing the cluster")?;
        }
        // The first join token before the directory: a join is retried
        // until the directory exists, and then its token is known.
        if let Some(first) = &creds.initial_join_token {
            join_tokens::store_initial(store, first).await?;
        }
        // Register this node in the directory (CAS, so a concurrent write
        // is never overwritten; joins wait until this entry exists).
        let mut attempts = 0;
        loop {
            match docs::nodes(store).await {
                Ok(current) if current.value.nodes.contains_key(config.node.as_str()) => break,
                Ok(current) => {
                    let mut dir: NodeDirectory = current.value;
                    dir.next_id = dir.next_id.max(FIRST_NODE_ID + 1);
                    dir.nodes.insert(
                        config.node.to_string(),
                        NodeEntry {
                            id: creds.node_id,
                            addr: config.advertise.clone(),
                        },
                    );
                    match docs::put_nodes(store, &dir, current.version).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e.body.error, "writing the node directory")
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e.body.error, "reading the node directory"),
            }
            attempts += 1;
            if attempts > 120 {
                bail!("could not write the node directory after initializing the cluster");
            }
            tokio::time::sleep(ADMIT_RETRY).await;
        }
        creds.bootstrap_pending = false;
        creds.initial_join_token = None;
        creds.save(&config.credentials_path())?;
        tracing::info!(node = %config.node, "cluster initialized");
    }
    if let Some(via) = creds.join_via.clone() {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let url = format!("http://{via}/api/v1/cluster/members");
        loop {
            if store.membership().voters.contains(&creds.node_id) {
                break;
            }
            let result = client
                .post(&url)
                .bearer_auth(&creds.api_token)
                .json(&AdmitRequest {
                    node_id: creds.node_id,
                    addr: config.advertise.clone(),
                })
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(%status, %text, "admission refused, retrying");
                }
                Err(e) => tracing::warn!(error = %e, "admission request failed, retrying"),
            }
            tokio::time::sleep(ADMIT_RETRY).await;
        }
        creds.join_via = None;
        creds.save(&config.credentials_path())?;
        tracing::info!(node = %config.node, "admitted to the cluster as voter");
    }
    Ok(())
}

/// After `cluster leave`: moves the credentials and the Raft data aside
/// (`*.left-<unix seconds>`), so a restarted daemon waits for a fresh
/// `cluster init` or `join` instead of campaigning in a cluster that
/// removed it.
pub fn retire_after_leave(config: &NodeConfig) -> anyhow::Result<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for path in [config.credentials_path(), config.store_dir()] {
        if path.exists() {
            let mut aside = path.clone().into_os_string();
            aside.push(format!(".left-{stamp}"));
            std::fs::rename(&path, &aside)
                .with_context(|| format!("moving {} aside", path.display()))?;
        }
    }
    tracing::info!("credentials and raft data moved aside; the node can init or join again");
    Ok(())
}

/// `cluster force-single-node`: disaster recovery when the majority is
/// lost for good. Rewrites this (stopped) node's Raft store so that it is
/// the only voter, keeping every entry of its log; at its next start it
/// leads a one-node cluster with the last state it has. The other members
/// stay in the node directory: the CRM fences them (takes over their
/// expired agent leases) and recovers their services here, and the
/// operator removes them with `cluster delnode` once they are gone.
pub fn force_single_node(config: &NodeConfig) -> anyhow::Result<raft::recovery::ForcedMembership> {
    let path = config.credentials_path();
    let creds = Credentials::load(&path)
        .with_context(|| format!("{}: this node is not part of a cluster", path.display()))?;
    if creds.bootstrap_pending || creds.join_via.is_some() {
        bail!("this node has not finished its init or join: there is nothing to recover");
    }
    let forced =
        raft::recovery::force_single_member(&config.store_dir(), creds.node_id, &config.advertise)
            .context("is the daemon still running? stop it first (systemctl stop ha-manager)")?;
    tracing::warn!(
        term = forced.term,
        index = forced.index,
        "this node is now the only voter of its cluster (force-single-node)"
    );
    Ok(forced)
}
