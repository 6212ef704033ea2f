//! `ha-manager daemon`: the imperative shell of one node (design.md
//! section 2). Runs the Raft node, the HTTP server (`/raft`, `/api/v1`,
//! `/metrics`) and the HA loop (CRM on the leader, LRM everywhere).
//! See README.md for configuration keys, files and ports.

pub mod agent_lease;
pub mod ca_task;
pub mod config;
pub mod credentials;
pub mod crm_task;
pub mod ha_loop;
pub mod history;
pub mod host_stats;
pub mod http_server;
pub mod lifecycle;
pub mod lrm_task;
pub mod no_cluster_yet;
pub mod notify_send;
pub mod notify_task;
pub mod shutdown;
pub mod snapshot;
pub mod tls_files;
pub mod usage_task;
pub mod watchdog_thread;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use raft::{ClusterStore, StoreConfig};

use crate::api::{self, ApiState};
use config::NodeConfig;
use credentials::{Credentials, CredentialsError};

/// An unchanged LRM or manager status is written again after this long, so
/// `status` can tell a live daemon from a dead one (it calls a status
/// older than 30 s stale), at one entry per node per interval whatever the
/// number of services; otherwise only changes are written.
pub const STATUS_REFRESH: Duration = Duration::from_secs(10);

/// How often a daemon without credentials looks for them.
const CREDENTIALS_POLL: Duration = Duration::from_millis(250);

/// Runs the daemon until SIGTERM/SIGINT. Blocks the calling thread.
pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_async(config))
}

async fn wait_for_credentials(config: &NodeConfig) -> anyhow::Result<Credentials> {
    let path = config.credentials_path();
    let mut told = false;
    loop {
        match Credentials::load(&path) {
            Ok(c) => return Ok(c),
            Err(CredentialsError::Missing { .. }) => {
                if !told {
                    tracing::info!(path = %path.display(), "no cluster credentials yet: waiting for 'ha-manager cluster init' or 'cluster join'");
                    told = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(CREDENTIALS_POLL) => {}
            _ = shutdown_signal() => anyhow::bail!("stopped before the node joined a cluster"),
        }
    }
}

async fn run_async(config: NodeConfig) -> anyhow::Result<()> {
    tracing::info!(
        node = %config.node,
        listen = %config.listen,
        timing = config.timing.name,
        "ha-manager daemon starting"
    );
    let open_files = http_server::raise_open_file_limit();
    let limits = http_server::ServerLimits::for_open_files(open_files);
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        "HTTP connection limit"
    );
    // Bind first, so a port clash fails before anything else happens.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding the HTTP listener on {}", config.listen))?;
    // Until the node has credentials, every request is told so at once.
    let (listener, creds) = no_cluster_yet::answer_until(
        listener,
        &config.node,
        limits,
        wait_for_credentials(&config),
    )
    .await?;
    let tls_files = tls_files::TlsFiles::of(&config);
    let tls = tls_files
        .load()
        .context("loading this node's TLS material")?;
    if tls.current().identity().id != creds.node_id
        || tls.current().identity().name != config.node.as_str()
    {
        anyhow::bail!(
            "{}: the node certificate names node '{}' (id {}), but this is node '{}' (id {})",
            tls_files.node_cert().display(),
            tls.current().identity().name,
            tls.current().identity().id,
            config.node,
            creds.node_id
        );
    }
    warn_if_expiring(&tls_files);
    let server_tls = tls.server_config().context("TLS server configuration")?;
    let mut store_config = StoreConfig::new(
        creds.node_id,
        config.store_dir(),
        config.advertise.clone(),
        tls.clone(),
    );
    store_config.source_addr = config.source_address;
    // Raft's timing is part of the one timing rule: a node must be able to
    // renew through a new leader inside its feed window.
    store_config.heartbeat_interval = config.timing.raft_heartbeat;
    store_config.election_timeout = (
        config.timing.election_timeout_min,
        config.timing.election_timeout_max,
    );
    let store = ClusterStore::start(store_config)
        .await
        .context("starting the cluster store")?;
    // Raft accepts only the certificates the node directory lists.
    store.set_peer_check(api::node_certs::raft_peer_check(&store));
    let state = ApiState {
        store: store.clone(),
        node: config.node.clone(),
        creds: Arc::new(creds.clone()),
        tls_files: tls_files.clone(),
        failovers: Arc::new(AtomicU64::new(0)),
        left: Arc::new(tokio::sync::Notify::new()),
    };
    let app = axum::Router::new()
        .nest("/raft", store.router())
        .merge(api::router(state.clone()));
    // The server (Raft RPCs included) stays up until the HA loop has
    // released the lease and the watchdog: a node whose Raft went away
    // first would lose its leader, fail to renew and be reset.
    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http_server::serve(
        listener,
        app,
        Some(server_tls),
        limits,
        async {
            let _ = server_stop_rx.await;
        },
    ));
    lifecycle::finish_pending(&config, creds, &store).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut ha = tokio::spawn(ha_loop::run(config.clone(), state.clone(), stop_rx));
    let mut left = false;
    tokio::select! {
        _ = state.left.notified() => {
            left = true;
            tracing::info!("this node left the cluster: stopping");
            let _ = stop_tx.send(true);
            let _ = (&mut ha).await;
        }
        _ = shutdown_signal() => {
            tracing::info!("stop requested: handing services over before releasing the watchdog");
            let _ = stop_tx.send(true);
            tokio::select! {
                _ = &mut ha => {}
                _ = shutdown_signal() => {
                    // Safety over availability: if the watchdog is armed,
                    // the mux resets this node, so no service can outlive
                    // its protection.
                    tracing::error!("second stop signal: exiting at once (an armed watchdog will reset this node)");
                    ha.abort();
                }
            }
        }
        result = &mut ha => match result {
            Ok(Err(e)) => tracing::error!(error = %e, "the HA loop could not run"),
            _ => tracing::error!("the HA loop ended unexpectedly"),
        },
    }
    let _ = server_stop_tx.send(());
    let _ = store.shutdown().await;
    server.abort();
    if left {
        lifecycle::retire_after_leave(&config)?;
    }
    Ok(())
}

/// Logs a warning when the node certificate expires within 30 days
/// (`ha-manager cluster renew-cert` makes a new one).
fn warn_if_expiring(files: &tls_files::TlsFiles) {
    const SOON: Duration = Duration::from_secs(30 * 24 * 3600);
    let Ok((cert, _)) = files.node_pem() else {
        return;
    };
    if let Ok(end) = raft::tls::pki::not_after(&cert) {
        let left = end
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        if left < SOON {
            tracing::warn!(
                days_left = left.as_secs() / 86_400,
                "the node certificate expires soon: run 'ha-manager cluster renew-cert'"
            );
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
