//! Which node certificates the cluster accepts: exactly those the node
//! directory lists for the member they name.
//!
//! A certificate of the cluster CA is not enough. Every member holds the
//! CA key (it signs joining nodes), so a node that was removed, or whose
//! disk was stolen, could sign a certificate for another member's name
//! and id; it could not make the directory list it, because writing the
//! directory takes a member's identity. So the directory, replicated by
//! Raft, is the allow-list: the member that signs a joining node's
//! certificate records its SHA-256 with the new entry, a renewal adds the
//! new one before it is used (and forgets all but the previous one), and
//! `cluster delnode`/`leave` drop the entry and with it every certificate
//! of the node.

use std::sync::{Arc, Mutex};

use raft::tls::PeerIdentity;
use raft::ClusterStore;

use super::docs::{self, NodeDirectory};

/// How many certificates a member may have listed at once: the new one,
/// the one in use, and the one before it.
pub const CERTS_PER_NODE: usize = 3;

/// How long a renewing node keeps presenting its old certificate after
/// the directory lists the new one, so every member has applied that
/// change before the new certificate reaches it (a few heartbeats).
pub const RENEWAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `peer` may act as the member it names in `dir`. An empty
/// directory accepts every certificate of the CA: that is a node that
/// has not received the cluster's state yet (a joining node before its
/// first entries; the first node before it registered itself), whose
/// only peers are the ones adding it.
pub fn check_peer(dir: &NodeDirectory, peer: &PeerIdentity) -> Result<(), String> {
    if dir.nodes.is_empty() {
        return Ok(());
    }
    match dir.nodes.get(&peer.name) {
        Some(entry) if entry.id == peer.id && entry.certs.contains(&peer.fingerprint) => Ok(()),
        Some(entry) if entry.id == peer.id => Err(format!(
            "the certificate of node '{}' (id {}, sha256 {}) is not one the node directory \
             lists for it: refused (a certificate signed outside a join or renewal)",
            peer.name, peer.id, peer.fingerprint
        )),
        _ => Err(format!(
            "the certificate of node '{}' (id {}, sha256 {}) is not a member's: refused",
            peer.name, peer.id, peer.fingerprint
        )),
    }
}

/// The local replica's node directory (no quorum round: a peer check must
/// not depend on reaching the leader). An unreadable directory refuses
/// every peer (fails closed).
pub fn local_directory(store: &ClusterStore) -> Result<NodeDirectory, String> {
    let (text, _) = docs::read_local_raw(store, docs::NODES_DOC);
    docs::parse_nodes(&text).map_err(|e| format!("the node directory is unreadable: {e}"))
}

/// The check the Raft endpoints run on every request's certificate.
///
/// Every append and heartbeat passes here, so the parsed directory is
/// kept and parsed again only when the document's version (the log index
/// that wrote it, unique per write) changed.
pub fn raft_peer_check(store: &ClusterStore) -> raft::PeerCheck {
    // A weak handle: the check lives inside the store it reads.
    let store = store.downgrade();
    let key = raft::DocKey::Config(docs::NODES_DOC.to_string());
    type Cached = Option<(u64, Arc<Result<NodeDirectory, String>>)>;
    let cache: Mutex<Cached> = Mutex::new(None);
    Arc::new(move |peer: &PeerIdentity| {
        let store = store
            .upgrade()
            .ok_or_else(|| "the node is shutting down".to_string())?;
        let version = store.read_local(|s| s.doc_version(&key)).value;
        // A poisoned lock only means another check panicked; the cached
        // value is still a whole one.
        let mut slot = cache.lock().unwrap_or_else(|p| p.into_inner());
        let dir = match slot.as_ref() {
            Some((v, dir)) if *v == version => Arc::clone(dir),
            _ => {
                let dir = Arc::new(local_directory(&store));
                *slot = Some((version, Arc::clone(&dir)));
                dir
            }
        };
        drop(slot);
        match dir.as_ref() {
            Ok(dir) => check_peer(dir, peer),
            Err(e) => Err(e.clone()),
        }
    })
}

/// The certificates a member lists when it renews: the ones listed
/// before (a connection opened with an earlier certificate is checked
/// against the list at every request until the node moves its traffic to
/// new connections), the one in use (a retried renewal never unlists it)
/// and the new one, newest last, at most [`CERTS_PER_NODE`].
pub fn renewal_certs(listed: &[String], in_use: &str, new: &str) -> Vec<String> {
    let mut out: Vec<String> = listed
        .iter()
        .filter(|c| *c != in_use && *c != new)
        .cloned()
        .collect();
    out.push(in_use.to_string());
    out.push(new.to_string());
    let drop = out.len().saturating_sub(CERTS_PER_NODE);
    out.drain(..drop);
    out
}

/// A renewed node certificate.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its SHA-256 (hex).
    pub fingerprint: String,
}

/// Gives this node a new key and a certificate signed by `ca`, trusting
/// the CAs of `trust_pem` (`cluster renew-cert` with the current CA; the
/// CA task with the next CA during a rotation). First the node directory
/// lists the new certificate beside the one in use, then, after
/// [`RENEWAL_GRACE`] (every member has applied that), the files are
/// written and the node presents it: no peer ever sees a certificate it
/// does not know. The peer client opens new connections with it.
pub async fn renew_own_certificate(
    st: &super::ApiState,
    ca: &raft::tls::pki::CaMaterial,
    trust_pem: &str,
) -> Result<Renewed, String> {
    let id = st.store.id();
    let node = raft::tls::pki::issue_node(ca, id, st.node.as_str(), std::time::SystemTime::now())
        .map_err(|e| format!("signing: {e}"))?;
    // Checked before anything is written: the new pair must work.
    let material = raft::tls::TlsMaterial::from_pem(trust_pem, &node.cert_pem, &node.key_pem)
        .map_err(|e| format!("checking the new certificate: {e}"))?;
    let fingerprint = material.cert_fingerprint().to_string();
    let in_use = st.store.tls().current().cert_fingerprint().to_string();
    let mut dir = docs::nodes(&st.store).await.map_err(|e| e.body.error)?;
    let entry = dir
        .value
        .nodes
        .get_mut(st.node.as_str())
        .filter(|e| e.id == id)
        .ok_or_else(|| format!("node '{}' is not in the node directory", st.node))?;
    entry.certs = renewal_certs(&entry.certs, &in_use, &fingerprint);
    docs::put_nodes(&st.store, &dir.value, dir.version)
        .await
        .map_err(|e| e.body.error)?;
    tokio::time::sleep(RENEWAL_GRACE).await;
    st.tls_files
        .write_node(&node.cert_pem, &node.key_pem)
        .map_err(|e| format!("writing the files: {e}"))?;
    st.store
        .tls()
        .replace(material)
        .map_err(|e| format!("using the new certificate: {e}"))?;
    Ok(Renewed {
        cert_pem: node.cert_pem,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::docs::NodeEntry;

    fn peer(name: &str, id: u64, fp: &str) -> PeerIdentity {
        PeerIdentity {
            id,
            name: name.into(),
            fingerprint: fp.into(),
        }
    }

    #[test]
    fn only_listed_certificates_of_the_named_member_pass() {
        let mut dir = NodeDirectory::default();
        assert!(check_peer(&dir, &peer("node9", 9, "x")).is_ok(), "empty");
        dir.nodes.insert(
            "node2".into(),
            NodeEntry {
                id: 2,
                addr: "a:1".into(),
                certs: vec!["old".into(), "new".into()],
            },
        );
        assert!(check_peer(&dir, &peer("node2", 2, "new")).is_ok());
        assert!(check_peer(&dir, &peer("node2", 2, "old")).is_ok());
        let forged = check_peer(&dir, &peer("node2", 2, "forged")).unwrap_err();
        assert!(
            forged.contains("not one the node directory lists"),
            "{forged}"
        );
        let other_id = check_peer(&dir, &peer("node2", 7, "new")).unwrap_err();
        assert!(other_id.contains("not a member"), "{other_id}");
        assert!(check_peer(&dir, &peer("node3", 3, "new")).is_err());
    }

    #[test]
    fn a_renewal_keeps_the_one_in_use_and_the_one_before() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(renewal_certs(&[], "a", "b"), l(&["a", "b"]));
        assert_eq!(
            renewal_certs(&l(&["a", "b"]), "b", "c"),
            l(&["a", "b", "c"])
        );
        assert_eq!(
            renewal_certs(&l(&["a", "b", "c"]), "c", "d"),
            l(&["b", "c", "d"])
        );
        // Renewed by hand shortly before: the join certificate may still
        // be on open connections.
        assert_eq!(
            renewal_certs(&l(&["join", "manual"]), "manual", "next"),
            l(&["join", "manual", "next"])
        );
        // A retry after a crash between listing and using: the one in use
        // stays, the oldest goes.
        assert_eq!(
            renewal_certs(&l(&["a", "b", "unused"]), "b", "next2"),
            l(&["unused", "b", "next2"])
        );
    }
}
