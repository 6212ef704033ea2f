//! The cluster CA and node certificates (ECDSA P-256, made with rcgen).
//!
//! The CA is created once by `cluster init`; its key stays on the members
//! (`tls/ca.key`, mode 0600), which sign the certificate of a node that
//! joins with a valid join token. The joining node makes its own key pair
//! and sends only a certificate signing request, so its private key never
//! leaves it; the member ignores everything the request asks for except
//! the public key, and writes the node's name and Raft id itself.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use super::{node_uri, TlsError, NODE_DNS_NAME};

/// How long a CA certificate is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a node certificate is valid (`cluster renew-cert` makes a new
/// one at any time; the daemon warns when one has less than 30 days left).
pub const NODE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Certificates are valid from this long before they are made, so a peer
/// whose clock is a little behind does not refuse a fresh certificate.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A CA certificate with its private key, both PEM.
#[derive(Clone)]
pub struct CaMaterial {
    /// The CA certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<secret>")
            .finish()
    }
}

/// A node certificate with its private key, both PEM.
#[derive(Clone)]
pub struct NodeMaterial {
    /// The node certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

fn random_serial() -> Result<SerialNumber, TlsError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| TlsError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
    // A positive INTEGER of at most 20 octets (RFC 5280 4.1.2.2).
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, now: SystemTime, valid_for: Duration) {
    let start = now.checked_sub(BACKDATE).unwrap_or(now);
    params.not_before = start.into();
    params.not_after = (now + valid_for).into();
}

/// A new CA for the cluster called `cluster_id` (a random id shown in the
/// CA's name, so two clusters' CAs are told apart in logs and files).
pub fn new_ca(cluster_id: &str, now: SystemTime) -> Result<CaMaterial, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("ha-manager cluster CA {cluster_id}"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    validity(&mut params, now, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(CaMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A fresh private key for a node and a signing request for it (PEM).
/// The request's contents other than the public key are ignored by the
/// signer.
pub fn new_node_key() -> Result<(KeyPair, String), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ha-manager node");
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    let pem = csr.pem()?;
    Ok((key, pem))
}

fn node_params(id: u64, name: &str, now: SystemTime) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName(
            NODE_DNS_NAME
                .try_into()
                .map_err(|e| TlsError::invalid("node DNS name", format!("{e:?}")))?,
        ),
        SanType::URI(
            node_uri(id, name)
                .try_into()
                .map_err(|e| TlsError::invalid("node URI", format!("{e:?}")))?,
        ),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    validity(&mut params, now, NODE_VALIDITY);
    Ok(params)
}

fn issuer(ca: &CaMaterial) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let key = KeyPair::from_pem(&ca.key_pem)
        .map_err(|e| TlsError::invalid("CA key", format!("not a usable private key: {e}")))?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, key)?)
}

/// Signs the certificate of node `name` with Raft id `id` for the public
/// key of `csr_pem` (whose signature is checked: the requester holds the
/// key). Nothing else of the request is used.
pub fn sign_node_csr(
    ca: &CaMaterial,
    csr_pem: &str,
    id: u64,
    name: &str,
    now: SystemTime,
) -> Result<String, TlsError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| TlsError::invalid("csr", format!("not a valid signing request: {e}")))?;
    let params = node_params(id, name, now)?;
    Ok(params.signed_by(&csr.public_key, &issuer(ca)?)?.pem())
}

/// A key and certificate for node `name` (id `id`) made where the CA key
/// is: `cluster init` for the first node, and certificate renewal.
pub fn issue_node(
    ca: &CaMaterial,
    id: u64,
    name: &str,
    now: SystemTime,
) -> Result<NodeMaterial, TlsError> {
    let key = KeyPair::generate()?;
    let params = node_params(id, name, now)?;
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(NodeMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// When a PEM certificate stops being valid.
pub fn not_after(cert_pem: &str) -> Result<SystemTime, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| TlsError::invalid("certificate", format!("{e:?}")))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| TlsError::invalid("certificate", e))?;
    let secs = parsed.validity().not_after.timestamp();
    let secs =
        u64::try_from(secs).map_err(|_| TlsError::invalid("certificate", "expired before 1970"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}
