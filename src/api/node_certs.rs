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

use std::sync::Arc;

use raft::tls::PeerIdentity;
use raft::ClusterStore;

use super::docs::{self, NodeDirectory};

/// How many certificates a member may have listed at once: the current
/// one and the one before it (connections opened before a renewal).
pub const CERTS_PER_NODE: usize = 2;

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
pub fn raft_peer_check(store: &ClusterStore) -> raft::PeerCheck {
    // A weak handle: the check lives inside the store it reads.
    let store = store.downgrade();
    Arc::new(move |peer: &PeerIdentity| {
        let store = store
            .upgrade()
            .ok_or_else(|| "the node is shutting down".to_string())?;
        check_peer(&local_directory(&store)?, peer)
    })
}

/// `certs` with `new` added as the newest, keeping at most
/// [`CERTS_PER_NODE`].
pub fn with_cert(certs: &[String], new: &str) -> Vec<String> {
    let mut out: Vec<String> = certs.iter().filter(|c| *c != new).cloned().collect();
    out.push(new.to_string());
    let drop = out.len().saturating_sub(CERTS_PER_NODE);
    out.drain(..drop);
    out
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
    fn a_renewal_keeps_the_previous_certificate_only() {
        let certs = with_cert(&[], "a");
        assert_eq!(certs, ["a"]);
        let certs = with_cert(&certs, "b");
        assert_eq!(certs, ["a", "b"]);
        let certs = with_cert(&certs, "c");
        assert_eq!(certs, ["b", "c"]);
        assert_eq!(with_cert(&certs, "c"), ["b", "c"]);
    }
}
