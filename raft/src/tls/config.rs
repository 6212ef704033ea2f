//! rustls configurations of a node: the server (client certificates
//! optional, so API clients with a bearer token get in too), the client
//! of node-to-node traffic (presents the node certificate), the CLI
//! client, and the one-off client of `cluster join` that pins the CA by
//! the fingerprint in the join token.
//!
//! The node's configurations read the current [`TlsMaterial`] at every
//! handshake, so [`NodeTls::replace`] (a renewed certificate, a rotated
//! CA) takes effect for the next connection without a restart.

use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::{fingerprint, identity_of, PeerIdentity, TlsError, NODE_DNS_NAME};

/// The crypto provider of every configuration (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate of a PEM text.
pub fn certs_from_pem(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::invalid(what, format!("bad PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(TlsError::invalid(what, "no certificate in the PEM text"));
    }
    Ok(certs)
}

/// A trust store of the CA certificates in `ca_pem`.
pub fn roots_from_pem(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem("CA certificate", ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::invalid("CA certificate", e))?;
    }
    Ok(Arc::new(roots))
}

fn server_verifier(roots: Arc<RootCertStore>) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::invalid("CA certificate", e))
}

fn node_dns_name() -> ServerName<'static> {
    // A constant that is a valid DNS name: the conversion cannot fail.
    ServerName::try_from(NODE_DNS_NAME)
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()))
}

/// A node's certificate, key and trusted CAs, parsed and checked.
pub struct TlsMaterial {
    ca_pem: String,
    cert_pem: String,
    certified: Arc<CertifiedKey>,
    identity: PeerIdentity,
    server_verifier: Arc<WebPkiServerVerifier>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    ca_fingerprint: String,
    ca_fingerprints: Vec<String>,
    issuer_fingerprint: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("identity", &self.identity)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

impl TlsMaterial {
    /// Material from PEM texts: `ca_pem` holds the trusted CA certificates
    /// (the first one is the current CA, sent along with the node
    /// certificate so joining nodes can pin it), `cert_pem` the node
    /// certificate, `key_pem` its private key. Refused unless the key fits
    /// the certificate, the certificate chains to a trusted CA and names a
    /// node.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let provider = provider();
        let cas = certs_from_pem("CA certificate", ca_pem)?;
        let roots = roots_from_pem(ca_pem)?;
        let cert = certs_from_pem("node certificate", cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::invalid("node certificate", "empty"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::invalid("node key", format!("bad PEM: {e:?}")))?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::invalid("node key", e))?;
        let identity = identity_of(&cert)?;
        let server_verifier = server_verifier(roots.clone())?;
        // The node's own certificate must pass what its peers will check.
        server_verifier
            .verify_server_cert(&cert, &[], &node_dns_name(), &[], UnixTime::now())
            .map_err(|e| {
                TlsError::invalid("node certificate", format!("not valid for this CA: {e}"))
            })?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::invalid("CA certificate", e))?;
        let ca_fingerprint = fingerprint(&cas[0]);
        // The chain sent with the node certificate ends in the CA that
        // signed it (during a CA rotation that may be the second one).
        let issuer = issuing_ca(&cas, &cert).unwrap_or_else(|| cas[0].clone());
        let issuer_fingerprint = fingerprint(&issuer);
        let ca_fingerprints = cas.iter().map(|c| fingerprint(c)).collect();
        let certified = CertifiedKey::new(vec![cert, issuer], key);
        certified.keys_match().map_err(|e| {
            TlsError::invalid("node key", format!("does not fit the certificate: {e}"))
        })?;
        Ok(TlsMaterial {
            ca_pem: ca_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            certified: Arc::new(certified),
            identity,
            server_verifier,
            client_verifier,
            ca_fingerprint,
            ca_fingerprints,
            issuer_fingerprint,
        })
    }

    /// Hex SHA-256 of every trusted CA certificate, current first.
    pub fn ca_fingerprints(&self) -> &[String] {
        &self.ca_fingerprints
    }

    /// Hex SHA-256 of the trusted CA that signed the node certificate.
    pub fn issuer_fingerprint(&self) -> &str {
        &self.issuer_fingerprint
    }

    /// Hex SHA-256 of the node certificate.
    pub fn cert_fingerprint(&self) -> &str {
        &self.identity.fingerprint
    }

    /// Who this node's certificate says it is.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// Hex SHA-256 of the current CA certificate.
    pub fn ca_fingerprint(&self) -> &str {
        &self.ca_fingerprint
    }

    /// The trusted CA certificates (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The node certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

/// The CA of `cas` that signed `cert`, if any.
fn issuing_ca(
    cas: &[CertificateDer<'static>],
    cert: &CertificateDer<'static>,
) -> Option<CertificateDer<'static>> {
    cas.iter()
        .find(|ca| {
            let mut roots = RootCertStore::empty();
            roots.add((*ca).clone()).is_ok()
                && server_verifier(Arc::new(roots)).is_ok_and(|v| {
                    v.verify_server_cert(cert, &[], &node_dns_name(), &[], UnixTime::now())
                        .is_ok()
                })
        })
        .cloned()
}

/// A node's TLS material, replaceable while connections come and go.
pub struct NodeTls {
    current: RwLock<Arc<TlsMaterial>>,
    /// Bumped by every [`NodeTls::replace`], so clients that keep
    /// connections open know to open new ones with the new certificate.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("current", &*self.current())
            .finish()
    }
}

impl NodeTls {
    /// Shared TLS state starting with `material`.
    pub fn new(material: TlsMaterial) -> Arc<Self> {
        Arc::new(NodeTls {
            current: RwLock::new(Arc::new(material)),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The material in use.
    pub fn current(&self) -> Arc<TlsMaterial> {
        match self.current.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Uses `material` from the next handshake on. It must name the same
    /// node: a node's identity never changes under it.
    pub fn replace(&self, material: TlsMaterial) -> Result<(), TlsError> {
        let old = self.current();
        if old.identity.id != material.identity.id || old.identity.name != material.identity.name {
            return Err(TlsError::invalid(
                "node certificate",
                format!(
                    "names node {} (id {}), this node is {} (id {})",
                    material.identity.name,
                    material.identity.id,
                    old.identity.name,
                    old.identity.id
                ),
            ));
        }
        let mut slot = match self.current.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(material);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many times the material was replaced: a client that pools
    /// connections drops them when this changes (a connection keeps the
    /// certificate it was opened with, which a later renewal unlists).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The server configuration: presents the node certificate, asks for
    /// a client certificate and verifies one if given (peers give one; the
    /// CLI and API clients may authenticate with a token instead).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(CurrentClientVerifier(self.clone())))
            .with_cert_resolver(Arc::new(CurrentCert(self.clone())));
        Ok(Arc::new(config))
    }

    /// The client configuration of node-to-node traffic: presents the
    /// node certificate and accepts only servers with a node certificate
    /// of a trusted CA.
    pub fn client_config(self: &Arc<Self>) -> Result<ClientConfig, TlsError> {
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier(TrustSource::Node(
                self.clone(),
            ))))
            .with_client_cert_resolver(Arc::new(CurrentCert(self.clone()))))
    }
}

/// Checks a server certificate against `verifier`'s CAs and the node DNS
/// name, and that it names a node.
fn verify_node_server(
    verifier: &WebPkiServerVerifier,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    ocsp: &[u8],
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    verifier.verify_server_cert(end_entity, intermediates, &node_dns_name(), ocsp, now)?;
    identity_of(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
    Ok(ServerCertVerified::assertion())
}

fn supported_schemes() -> Vec<SignatureScheme> {
    provider()
        .signature_verification_algorithms
        .supported_schemes()
}

fn tls12_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

fn tls13_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

/// The handshake signature checks of a server or client verifier: the
/// same for both (the provider's algorithms), only the chain checks
/// differ.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            supported_schemes()
        }
    };
}

/// Where a client looks for the CAs it trusts.
#[derive(Debug)]
enum TrustSource {
    /// The node's current material (node-to-node traffic).
    Node(Arc<NodeTls>),
    /// A fixed set (the CLI's `ca.crt`).
    Fixed(Arc<WebPkiServerVerifier>),
    /// The CA, among the certificates the server sends, whose SHA-256 is
    /// this (`cluster join`, which knows nothing but the join token).
    Pinned(String),
}

/// Accepts a server with a node certificate of a CA from its
/// [`TrustSource`], whatever address it was reached at.
#[derive(Debug)]
struct ClusterServerVerifier(TrustSource);

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.0 {
            TrustSource::Node(tls) => {
                let current = tls.current();
                verify_node_server(
                    &current.server_verifier,
                    end_entity,
                    intermediates,
                    ocsp,
                    now,
                )
            }
            TrustSource::Fixed(verifier) => {
                verify_node_server(verifier, end_entity, intermediates, ocsp, now)
            }
            TrustSource::Pinned(pin) => {
                let ca = intermediates
                    .iter()
                    .find(|c| fingerprint(c).eq_ignore_ascii_case(pin))
                    .ok_or_else(|| {
                        rustls::Error::General(
                            "the server's CA is not the one named by the join token (wrong \
                             address, another cluster, or someone in between)"
                                .into(),
                        )
                    })?;
                let mut roots = RootCertStore::empty();
                roots.add(ca.clone().into_owned())?;
                let verifier = server_verifier(Arc::new(roots))
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
                verify_node_server(&verifier, end_entity, &[], ocsp, now)
            }
        }
    }

    signature_checks!();
}

/// Verifies client certificates against the node's current CAs.
#[derive(Debug)]
struct CurrentClientVerifier(Arc<NodeTls>);

impl ClientCertVerifier for CurrentClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let current = self.0.current();
        current
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
    }

    signature_checks!();
}

/// Presents the node's current certificate, as server and as client.
#[derive(Debug)]
struct CurrentCert(Arc<NodeTls>);

impl rustls::server::ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }
}

impl rustls::client::ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client of the cluster's API that trusts the CAs in `ca_pem` and,
/// when `identity` (certificate PEM, key PEM) is given, presents it: the
/// CLI on a node authenticates with the node certificate.
pub fn cli_client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(ClusterServerVerifier(TrustSource::Fixed(server_verifier(
        roots_from_pem(ca_pem)?,
    )?)));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let mut chain = certs_from_pem("node certificate", cert_pem)?;
            chain.extend(
                certs_from_pem("CA certificate", ca_pem)?
                    .into_iter()
                    .take(1),
            );
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| TlsError::invalid("node key", format!("bad PEM: {e:?}")))?;
            builder.with_client_auth_cert(chain, key)?
        }
    })
}

/// The client of `cluster join`: trusts only a server of the CA with
/// SHA-256 `ca_fingerprint` (hex), presents no certificate.
pub fn pinned_client_config(ca_fingerprint: &str) -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier(TrustSource::Pinned(
            ca_fingerprint.to_string(),
        ))))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki;
    use std::time::SystemTime;

    fn fp(pem: &str) -> String {
        fingerprint(&certs_from_pem("test", pem).unwrap()[0])
    }

    #[test]
    fn a_bundle_trusts_every_ca_and_the_chain_ends_in_the_signing_one() {
        let now = SystemTime::now();
        let current = pki::new_ca("current", now).unwrap();
        let next = pki::new_ca("next", now).unwrap();
        let node = pki::issue_node(&next, 2, "node2", now).unwrap();
        let bundle = format!("{}{}", current.cert_pem, next.cert_pem);
        let m = TlsMaterial::from_pem(&bundle, &node.cert_pem, &node.key_pem).unwrap();
        assert_eq!(m.ca_fingerprint(), fp(&current.cert_pem));
        assert_eq!(
            m.ca_fingerprints(),
            [fp(&current.cert_pem), fp(&next.cert_pem)]
        );
        assert_eq!(m.issuer_fingerprint(), fp(&next.cert_pem));
        assert_eq!(m.cert_fingerprint(), fp(&node.cert_pem));
        assert_eq!(fingerprint(&m.certified.cert[1]), fp(&next.cert_pem));
        // Without the CA that signed it, the certificate is refused.
        let only_current = TlsMaterial::from_pem(&current.cert_pem, &node.cert_pem, &node.key_pem);
        assert!(only_current.is_err());
    }
}
