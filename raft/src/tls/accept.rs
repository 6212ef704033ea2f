//! The server side of a TLS connection: the handshake, bounded in time,
//! and the identity of a client that presented a node certificate.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{identity_of, PeerIdentity};

/// Why a connection did not become a TLS session.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish the handshake in time.
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    /// The handshake failed (no TLS, a certificate of another CA, ...).
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// Runs the server handshake on `tcp` within `limit`. The identity is
/// that of the client's certificate, which rustls has verified against
/// the cluster CA; `None` when the client presented none (a CLI or API
/// client with a token).
pub async fn handshake(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    limit: Duration,
) -> Result<(TlsStream<TcpStream>, Option<PeerIdentity>), HandshakeError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = tokio::time::timeout(limit, acceptor.accept(tcp))
        .await
        .map_err(|_| HandshakeError::Timeout(limit))?
        .map_err(HandshakeError::Failed)?;
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| match identity_of(cert) {
            Ok(identity) => Some(identity),
            Err(e) => {
                // Signed by the cluster CA but naming no node: nothing
                // this cluster issues; treat the client as anonymous.
                tracing::warn!(error = %e, "client certificate names no node");
                None
            }
        });
    Ok((stream, identity))
}
