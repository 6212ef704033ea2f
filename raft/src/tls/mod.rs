//! Mutual TLS between the nodes of a cluster, and the identity a node
//! certificate carries.
//!
//! Every cluster has its own certificate authority (made by `cluster
//! init`). A node's certificate is signed by it and names the node twice:
//! its common name is the node name, and a URI subject alternative name
//! `urn:ha-manager:node:<raft id>:<node name>` binds that name to the Raft
//! id the node was admitted with. A peer is who its verified certificate
//! says, nothing else: the Raft endpoints accept a request only from a
//! certificate whose id is a current member and is the sender named in the
//! request ([`crate::network::server`]), so a removed node (its id left the
//! membership) is refused from the moment of its removal, and a node that
//! joins again under the same name gets a new id and a new certificate.
//!
//! * [`pki`]: the CA and node certificates (rcgen).
//! * [`config`]: the rustls configurations and verifiers, reloadable
//!   without restarting anything ([`NodeTls::replace`]).
//! * [`accept`]: the server side handshake with its time limit.

pub mod accept;
pub mod config;
pub mod pki;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

pub use config::{NodeTls, TlsMaterial};

/// The DNS name every node certificate carries and every client checks: a
/// server is "a node of this cluster" when its certificate chains to the
/// cluster CA and names this (connections go to addresses, which change
/// with `cluster set-address`; the identity is the id in the URI name).
pub const NODE_DNS_NAME: &str = "node.ha-manager.internal";

/// Prefix of the URI subject alternative name of a node certificate.
pub const NODE_URI_PREFIX: &str = "urn:ha-manager:node:";

/// Who a verified node certificate says its holder is. The HTTP server
/// puts it on every request of a connection whose client presented a
/// certificate of the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The Raft id the node was admitted with.
    pub id: u64,
    /// The node name.
    pub name: String,
    /// SHA-256 of the certificate (hex), for the logs.
    pub fingerprint: String,
}

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate or key is malformed or does not fit.
    #[error("{what}: {message}")]
    Invalid {
        /// Which piece of material.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// rcgen could not make or sign a certificate.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

impl TlsError {
    pub(crate) fn invalid(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        TlsError::Invalid {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Hex SHA-256 of a DER certificate: what `cluster join` pins the CA by.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The node identity a certificate names, from its URI subject
/// alternative name. Says nothing about whether the certificate is valid:
/// call it on certificates rustls has verified.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::invalid("peer certificate", e))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::invalid("peer certificate", e))?
        .ok_or_else(|| TlsError::invalid("peer certificate", "no subject alternative name"))?;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(rest) = uri.strip_prefix(NODE_URI_PREFIX) {
                let (id, node) = rest.split_once(':').ok_or_else(|| {
                    TlsError::invalid("peer certificate", format!("malformed node URI '{uri}'"))
                })?;
                let id = id.parse::<u64>().map_err(|_| {
                    TlsError::invalid("peer certificate", format!("malformed node id in '{uri}'"))
                })?;
                if node.is_empty() {
                    return Err(TlsError::invalid(
                        "peer certificate",
                        format!("no node name in '{uri}'"),
                    ));
                }
                return Ok(PeerIdentity {
                    id,
                    name: node.to_string(),
                    fingerprint: fingerprint(cert),
                });
            }
        }
    }
    Err(TlsError::invalid(
        "peer certificate",
        "it names no ha-manager node (not a node certificate)",
    ))
}

/// The URI name of node `name` with Raft id `id`.
pub fn node_uri(id: u64, name: &str) -> String {
    format!("{NODE_URI_PREFIX}{id}:{name}")
}
