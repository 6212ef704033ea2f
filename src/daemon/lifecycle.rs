//! Cluster life cycle: `cluster init` and `cluster join` write the node's
//! credentials; the daemon then finishes what they started (bootstrap of
//! the one-node cluster, or admission as a voter).

use std::time::Duration;

use anyhow::{bail, Context};
use raft::ClusterStore;

use super::config::NodeConfig;
use super::credentials::{random_secret, Credentials, CREDENTIALS_VERSION};
use super::tls_files::TlsFiles;
use crate::api::cluster::{AdmitRequest, JoinReply, JoinRequest, ADMIT_RETRY, JOIN_TOKEN_HEADER};
use crate::api::docs::{self, NodeDirectory, NodeEntry};
use crate::api::error::ErrorBody;
use crate::api::join_tokens::{self, NewJoinToken};

/// Raft id of the node that initializes a cluster.
pub const FIRST_NODE_ID: u64 = 1;

/// Length of a CA fingerprint in a join token (hex SHA-256).
const FINGERPRINT_LEN: usize = 64;

/// The join token as the operator sees it: the fingerprint of the cluster
/// CA, which the joining node pins (it trusts nothing else on its first
/// contact), then the secret the member checks.
pub fn join_token_text(ca_fingerprint: &str, secret: &str) -> String {
    format!("{ca_fingerprint}:{secret}")
}

/// Splits a join token into the CA fingerprint and the secret.
pub fn parse_join_token_text(text: &str) -> anyhow::Result<(String, String)> {
    let text = text.trim();
    match text.split_once(':') {
        Some((fp, secret))
            if fp.len() == FINGERPRINT_LEN
                && fp.bytes().all(|b| b.is_ascii_hexdigit())
                && !secret.is_empty() =>
        {
            Ok((fp.to_ascii_lowercase(), secret.to_string()))
        }
        _ => bail!(
            "field 'token': not a join token (expected '<CA fingerprint, 64 hex digits>:<secret>' \
             as 'cluster init' or 'cluster join-token create' print it)"
        ),
    }
}

fn refuse_if_member(config: &NodeConfig) -> anyhow::Result<()> {
    let path = config.credentials_path();
    if path.exists() || TlsFiles::of(config).any_exists() {
        bail!(
            "{}: this node already belongs to a cluster (remove the data directory to start over)",
            config.data_dir.display()
        );
    }
    Ok(())
}

/// `cluster init`: creates the cluster CA, this node's certificate and a
/// join token for a new cluster made of this node. Refuses if the node
/// already has credentials. Returns the credentials and the join token as
/// the operator gives it to `cluster join`.
pub fn init(config: &NodeConfig) -> anyhow::Result<(Credentials, String)> {
    refuse_if_member(config)?;
    let now = std::time::SystemTime::now();
    let cluster_id = random_secret().context("reading /dev/urandom")?;
    let ca = raft::tls::pki::new_ca(&cluster_id[..16], now).context("creating the cluster CA")?;
    let node = raft::tls::pki::issue_node(&ca, FIRST_NODE_ID, config.node.as_str(), now)
        .context("creating this node's certificate")?;
    let files = TlsFiles::of(config);
    files.write_ca(&ca)?;
    files.write_node(&node.cert_pem, &node.key_pem)?;
    let material = files.load_material()?;
    let join_token = NewJoinToken::generate(
        join_tokens::unix_now(),
        join_tokens::DEFAULT_TTL_SECS,
        join_tokens::INIT_CREATOR,
        "made by cluster init",
    )?;
    let creds = Credentials {
        version: CREDENTIALS_VERSION,
        node_id: FIRST_NODE_ID,
        bootstrap_pending: true,
        initial_join_token: Some(join_token.pending()),
        join_via: None,
    };
    creds.save(&config.credentials_path())?;
    let token = join_token_text(material.ca_fingerprint(), &join_token.display());
    Ok((creds, token))
}

/// `cluster join <address> --token T`: makes this node's key, has a member
/// sign its certificate (over TLS, trusting only the CA the token names),
/// and stores what it answers.
pub fn join(config: &NodeConfig, address: &str, token: &str) -> anyhow::Result<Credentials> {
    refuse_if_member(config)?;
    let (fingerprint, secret) = parse_join_token_text(token)?;
    let (key, csr) = raft::tls::pki::new_node_key().context("creating this node's key")?;
    let tls = raft::tls::config::pinned_client_config(&fingerprint)?;
    // No source address here: this is the operator's CLI, which may run
    // where the node's advertise address does not exist (a container, a
    // network namespace); the daemon's own node-to-node traffic uses it.
    let client = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!(
        "https://{address}/api/v1{}",
        crate::node_cli::client::routes::CLUSTER_JOIN.template
    );
    let response = client
        .post(&url)
        .header(JOIN_TOKEN_HEADER, &secret)
        .json(&JoinRequest {
            node: config.node.to_string(),
            addr: config.advertise.clone(),
            wire_version: raft::network::wire::WIRE_VERSION,
            software: env!("CARGO_PKG_VERSION").to_string(),
            csr,
        })
        .send()
        .map_err(|e| {
            // A daemon that is not in a cluster yet has no certificate and
            // answers in plain HTTP, saying so: ask it (without the token).
            if let Some(refusal) = plain_refusal(address) {
                return anyhow::anyhow!("join refused by {address}: {refusal}");
            }
            // The pinning verifier's refusal is in the error's sources.
            anyhow::anyhow!("contacting {url}: {}", error_chain(&e))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let message = response
            .json::<ErrorBody>()
            .map(|b| b.error)
            .unwrap_or_else(|_| status.to_string());
        bail!("join refused by {address}: {message}");
    }
    let reply: JoinReply = response.json().context("decoding the join reply")?;
    let files = TlsFiles::of(config);
    files.write_ca(&raft::tls::pki::CaMaterial {
        cert_pem: reply.ca_cert,
        key_pem: reply.ca_key,
    })?;
    files.write_node(&reply.node_cert, &key.serialize_pem())?;
    let material = files
        .load_material()
        .context("the certificate the member signed")?;
    if material.identity().name != config.node.as_str() || material.identity().id != reply.node_id {
        bail!(
            "the member signed a certificate for node '{}' (id {}), not for this node '{}' (id {})",
            material.identity().name,
            material.identity().id,
            config.node,
            reply.node_id
        );
    }
    let creds = Credentials {
        version: CREDENTIALS_VERSION,
        node_id: reply.node_id,
        bootstrap_pending: false,
        initial_join_token: None,
        join_via: Some(address.to_string()),
    };
    creds.save(&config.credentials_path())?;
    Ok(creds)
}

/// An error with all its sources, one after the other.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The message of a daemon that answers in plain HTTP (one waiting for
/// `cluster init` or `join`), if `address` has one. Sends nothing secret.
fn plain_refusal(address: &str) -> Option<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let reply = client
        .get(format!(
            "http://{address}/api/v1{}",
            crate::node_cli::client::routes::CLUSTER_STATUS.template
        ))
        .send()
        .ok()?;
    reply.json::<ErrorBody>().ok().map(|b| b.error)
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
                            certs: vec![store.tls().current().identity().fingerprint.clone()],
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
        // Authenticated by this node's certificate, which the member that
        // signed it knows from the node directory.
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(store.tls().client_config()?)
            .timeout(Duration::from_secs(60))
            .build()?;
        let url = format!(
            "https://{via}/api/v1{}",
            crate::node_cli::client::routes::CLUSTER_MEMBERS.template
        );
        loop {
            if store.membership().voters.contains(&creds.node_id) {
                break;
            }
            let result = client
                .post(&url)
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
    for path in [
        config.credentials_path(),
        config.store_dir(),
        config.data_dir.join("tls"),
    ] {
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
