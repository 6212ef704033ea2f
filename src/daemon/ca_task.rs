//! The CA task of a node: every [`POLL`] it compares the CA document
//! ([`crate::api::ca`]) in its local replica with the CAs it trusts and
//! the certificate it presents, and does the one step
//! [`ca::next_step`] says: trust the CAs of the document (writes
//! `ca.crt` = the CAs, current first, and `ca.key` = the current CA's key,
//! then replaces the material), report itself in the document, or get a
//! certificate of the next CA (listed in the node directory first, used
//! after a grace period, as `renew-cert`). A failed step is logged and
//! tried again at the next poll; a restarted daemon starts from its files.

use std::time::Duration;

use raft::tls::pki::CaMaterial;
use raft::tls::TlsMaterial;

use crate::api::ca::{self, CaStep, ClusterCa, LocalCa, StoredCa};
use crate::api::docs;
use crate::api::ApiState;

/// How often the local replica's CA document is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs until aborted.
pub async fn run(state: ApiState) {
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(POLL).await;
        match tick(&state).await {
            Ok(()) => last_error.clear(),
            Err(e) if e == last_error => {}
            Err(e) => {
                tracing::warn!(error = %e, "CA rotation step failed (retried)");
                last_error = e;
            }
        }
    }
}

/// What this node trusts and presents now.
fn local(state: &ApiState) -> LocalCa {
    let m = state.store.tls().current();
    LocalCa {
        node: state.node.to_string(),
        trusts: m.ca_fingerprints().to_vec(),
        cert: m.cert_fingerprint().to_string(),
        cert_ca: m.issuer_fingerprint().to_string(),
    }
}

async fn tick(state: &ApiState) -> Result<(), String> {
    let (text, _) = docs::read_local_raw(&state.store, ca::CA_DOC);
    let Some(doc) = ca::parse(&text).map_err(|e| format!("{}: {e}", ca::CA_DOC))? else {
        return Ok(());
    };
    let (dir_text, _) = docs::read_local_raw(&state.store, docs::NODES_DOC);
    let dir = docs::parse_nodes(&dir_text).map_err(|e| format!("node directory: {e}"))?;
    match ca::next_step(&doc, &dir, &local(state)) {
        CaStep::Idle => Ok(()),
        CaStep::Stuck(why) => Err(why),
        CaStep::Trust { cas } => trust(state, &cas),
        CaStep::Report(report) => {
            // Read again with a quorum round: the write is a CAS.
            let (Some(mut fresh), version) = ca::read(state).await.map_err(|e| e.body.error)?
            else {
                return Ok(());
            };
            fresh.members.insert(state.node.to_string(), report);
            ca::write(state, &fresh, version)
                .await
                .map_err(|e| e.body.error)?;
            Ok(())
        }
        CaStep::Renew(next) => renew(state, &doc, &next).await,
    }
}

/// The `ca.crt` text of `cas`.
fn bundle(cas: &[StoredCa]) -> String {
    cas.iter()
        .map(|c| ca::first_pem_block(&c.cert_pem))
        .collect()
}

/// Trusts `cas` (current first): files, then material.
fn trust(state: &ApiState, cas: &[StoredCa]) -> Result<(), String> {
    let current = cas.first().ok_or("the CA document lists no CA")?;
    let bundle = bundle(cas);
    let m = state.store.tls().current();
    let material = TlsMaterial::from_pem(&bundle, m.cert_pem(), &node_key(state)?)
        .map_err(|e| format!("the CAs of the document do not fit this node: {e}"))?;
    state
        .tls_files
        .write_ca(&CaMaterial {
            cert_pem: bundle,
            key_pem: current.key_pem.clone(),
        })
        .map_err(|e| e.to_string())?;
    state
        .store
        .tls()
        .replace(material)
        .map_err(|e| e.to_string())?;
    tracing::info!(target: "audit", cas = ?m_fps(cas), "trusting the CAs of the CA document");
    Ok(())
}

fn m_fps(cas: &[StoredCa]) -> Vec<String> {
    cas.iter().map(StoredCa::fingerprint).collect()
}

fn node_key(state: &ApiState) -> Result<String, String> {
    state
        .tls_files
        .node_pem()
        .map(|(_, key)| key)
        .map_err(|e| e.to_string())
}

/// A certificate signed by `next` for this node, trusting what the
/// document says (see [`crate::api::node_certs::renew_own_certificate`]).
async fn renew(state: &ApiState, doc: &ClusterCa, next: &StoredCa) -> Result<(), String> {
    let renewed = crate::api::node_certs::renew_own_certificate(
        state,
        &next.material(),
        &bundle(&ca::wanted_trust(doc)),
    )
    .await
    .map_err(|e| format!("renewing with the next CA: {e}"))?;
    let new_fp = renewed.fingerprint;
    tracing::info!(target: "audit", fingerprint = %new_fp, ca = %next.fingerprint(), "node certificate renewed with the next CA");
    Ok(())
}
