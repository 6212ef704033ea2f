//! The daemon's HTTPS server (`/raft`, `/api/v1`, `/metrics` on one port),
//! built so that nothing a client without credentials does costs the node
//! more than a handshake and a header read:
//!
//! * Every connection is TLS. A client may present a certificate; one of
//!   the cluster CA names a node ([`raft::tls::PeerIdentity`], put on every
//!   request of the connection), which `/raft` requires and the API accepts
//!   as a member's admin identity.
//! * Every request is authenticated on its headers (or its connection's
//!   certificate) before a body is read (the API token middleware, the
//!   member middleware of `/raft`); bodies are capped per route after that.
//! * The TLS handshake and then the headers must each arrive within
//!   [`ServerLimits::header_read_timeout`], a whole request within
//!   [`ServerLimits::request_timeout`] (a body that trickles in is cut
//!   off).
//! * Open connections are capped at [`ServerLimits::max_connections`],
//!   sized from the open-file limit so the node always keeps descriptors
//!   for its store, agents and watchdog. A connection that carried an
//!   authenticated request (peers' Raft and lease traffic, the CLI) is
//!   never evicted. When the cap is reached, the oldest connection that
//!   has proven nothing is closed to make room; if every connection is
//!   authenticated, the new one is closed at once. So a flood of idle or
//!   slow connections can occupy only capacity that peers and operators
//!   do not use, and a new peer or CLI connection always gets in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use raft::network::server::ConnectionAuth;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Descriptors kept for everything but client connections (sled, agent
/// pipes and logs, the watchdog-mux socket, outgoing peer connections).
const FILES_RESERVED: u64 = 512;

/// Never more connections than this, whatever the open-file limit.
const MAX_CONNECTIONS_CAP: u64 = 16_384;

/// Never fewer (a node with a tiny limit still serves its peers).
const MAX_CONNECTIONS_FLOOR: u64 = 64;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections at most (see the module doc for who is evicted).
    pub max_connections: usize,
    /// Time a connection has to deliver the headers of a request.
    pub header_read_timeout: Duration,
    /// Time a request has from its headers to its answer, body included.
    pub request_timeout: Duration,
}

impl ServerLimits {
    /// Limits for a process that may open `nofile` descriptors: half of
    /// what is left after [`FILES_RESERVED`], between 64 and 16,384.
    pub fn for_open_files(nofile: u64) -> Self {
        let connections = (nofile.saturating_sub(FILES_RESERVED) / 2)
            .clamp(MAX_CONNECTIONS_FLOOR, MAX_CONNECTIONS_CAP);
        ServerLimits {
            max_connections: usize::try_from(connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Raises the soft open-file limit to the hard limit and returns the
/// resulting soft limit (the old one if raising failed, which is logged).
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            1024
        }
    }
}

/// One open connection as the registry sees it.
struct Entry {
    auth: ConnectionAuth,
    evict: Arc<Notify>,
}

/// The open connections, oldest first (ids grow).
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Entry>,
}

/// Admission of a new connection.
enum Admission {
    /// Serve it; `id` must be released when it closes.
    Admitted {
        id: u64,
        auth: ConnectionAuth,
        evict: Arc<Notify>,
    },
    /// Every slot holds an authenticated connection.
    Full,
}

impl Registry {
    fn admit(&mut self, max: usize) -> Admission {
        if self.open.len() >= max {
            let victim = self
                .open
                .iter()
                .find(|(_, e)| !e.auth.is_authenticated())
                .map(|(id, _)| *id);
            match victim.and_then(|id| self.open.remove(&id)) {
                // notify_one stores a permit, so the victim goes even if
                // it is not waiting at this instant.
                Some(entry) => entry.evict.notify_one(),
                None => return Admission::Full,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let auth = ConnectionAuth::default();
        let evict = Arc::new(Notify::new());
        self.open.insert(
            id,
            Entry {
                auth: auth.clone(),
                evict: evict.clone(),
            },
        );
        Admission::Admitted { id, auth, evict }
    }
}

/// Serves `app` on `listener` under `limits` until `stop` resolves; the
/// connections still open are then dropped with the returned future.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServerLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_full: u64 = 0;
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, _) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the
                // limits above should keep this from happening at all.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admission = match registry.lock() {
            Ok(mut r) => r.admit(limits.max_connections),
            Err(poisoned) => poisoned.into_inner().admit(limits.max_connections),
        };
        let (id, auth, evict) = match admission {
            Admission::Admitted { id, auth, evict } => (id, auth, evict),
            Admission::Full => {
                refused_full += 1;
                if refused_full.is_power_of_two() {
                    tracing::warn!(
                        refused = refused_full,
                        max = limits.max_connections,
                        "connection limit reached with authenticated connections only: refusing new ones"
                    );
                }
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let registry = registry.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            serve_connection(tcp, tls, app, auth, evict, limits).await;
            let mut r = match registry.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            r.open.remove(&id);
        });
    }
    connections.shutdown().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    auth: ConnectionAuth,
    evict: Arc<Notify>,
    limits: ServerLimits,
) {
    let Some(tls) = tls else {
        return serve_http(tcp, None, app, auth, evict, limits).await;
    };
    let handshake = raft::tls::accept::handshake(tls, tcp, limits.header_read_timeout);
    let (stream, identity) = tokio::select! {
        done = handshake => match done {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake refused");
                return;
            }
        },
        _ = evict.notified() => {
            tracing::debug!("connection evicted during its TLS handshake");
            return;
        }
    };
    serve_http(stream, identity, app, auth, evict, limits).await;
}

/// HTTP/1.1 on an established connection (TLS, or plain for the stand-in
/// of a node without a cluster), under the header and request limits.
async fn serve_http<S>(
    stream: S,
    identity: Option<raft::tls::PeerIdentity>,
    app: Router,
    auth: ConnectionAuth,
    evict: Arc<Notify>,
    limits: ServerLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(auth.clone());
        if let Some(identity) = identity.clone() {
            req.extensions_mut().insert(identity);
        }
        let app = app.clone();
        async move {
            let req = req.map(axum::body::Body::new);
            match tokio::time::timeout(limits.request_timeout, app.oneshot(req)).await {
                Ok(response) => response,
                Err(_) => Ok(timeout_response()),
            }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = evict.notified() => {
            tracing::debug!("connection evicted: limit reached and it never authenticated");
        }
    }
}

fn timeout_response() -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = crate::api::error::ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "request not completed in time (slow body?)",
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A server on loopback with short limits: `/open` needs nothing,
    /// `/auth` marks its connection authenticated, `/body` reads a body.
    async fn small_server(
        max_connections: usize,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        use axum::routing::{get, post};
        let app = Router::new()
            .route("/open", get(|| async { "open" }))
            .route(
                "/auth",
                get(|req: Request| async move {
                    if let Some(auth) = req.extensions().get::<ConnectionAuth>() {
                        auth.mark();
                    }
                    "auth"
                }),
            )
            .route(
                "/body",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            max_connections,
            header_read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(600),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tls = test_tls().server_config().unwrap();
        tokio::spawn(serve(listener, app, Some(tls), limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn test_ca() -> &'static raft::tls::pki::CaMaterial {
        static CA: std::sync::OnceLock<raft::tls::pki::CaMaterial> = std::sync::OnceLock::new();
        CA.get_or_init(|| {
            raft::tls::pki::new_ca("http-test", std::time::SystemTime::now()).unwrap()
        })
    }

    fn test_tls() -> Arc<raft::tls::NodeTls> {
        let node = raft::tls::pki::issue_node(test_ca(), 1, "node1", std::time::SystemTime::now())
            .unwrap();
        raft::tls::NodeTls::new(
            raft::tls::TlsMaterial::from_pem(&test_ca().cert_pem, &node.cert_pem, &node.key_pem)
                .unwrap(),
        )
    }

    type TlsConn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// A TLS client connection (no client certificate), handshake done.
    fn tls(addr: std::net::SocketAddr) -> TlsConn {
        let config = raft::tls::config::cli_client_config(&test_ca().cert_pem, None).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        stream.conn.complete_io(&mut stream.sock).unwrap();
        stream
    }

    /// Reads until the peer closes or `limit` passes; returns what came and
    /// whether the peer closed.
    fn read_until_closed(s: &mut TlsConn, limit: Duration) -> (String, bool) {
        s.sock.set_read_timeout(Some(limit)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return (String::from_utf8_lossy(&out).into_owned(), true)
                }
                Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_slow_and_kept_alive_connections_are_closed_in_time() {
        let (addr, _stop) = small_server(100).await;
        tokio::task::spawn_blocking(move || {
            // Nothing sent, not even a TLS hello: closed after the
            // handshake time limit.
            let mut idle = TcpStream::connect(addr).unwrap();
            idle.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 64];
            assert!(
                matches!(idle.read(&mut buf), Ok(0) | Err(_)),
                "an idle connection stays open"
            );
            // A handshake and then nothing: closed after the header read
            // timeout.
            let mut quiet = tls(addr);
            let (_, closed) = read_until_closed(&mut quiet, Duration::from_secs(3));
            assert!(closed, "an idle TLS connection stays open");
            // Headers that never end: the same.
            let mut slow = tls(addr);
            slow.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3));
            assert!(closed, "unfinished headers keep the connection");
            // A body that never ends: cut off by the request timeout.
            let mut body = tls(addr);
            body.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
                .unwrap();
            let (text, closed) = read_until_closed(&mut body, Duration::from_secs(3));
            assert!(closed && text.starts_with("HTTP/1.1 408"), "{text}");
            // Kept alive after an answer, then idle: closed too.
            let mut kept = tls(addr);
            kept.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (text, closed) = read_until_closed(&mut kept, Duration::from_secs(3));
            assert!(closed && text.contains("open"), "{text}");
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_server_makes_room_only_from_unauthenticated_connections() {
        let (addr, _stop) = small_server(2).await;
        tokio::task::spawn_blocking(move || {
            // One authenticated connection, kept alive and reused.
            let mut peer = tls(addr);
            let ask = |s: &mut TlsConn, path: &str| {
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .unwrap();
                s.sock
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).unwrap_or(0);
                String::from_utf8_lossy(&buf[..n]).into_owned()
            };
            assert!(ask(&mut peer, "/auth").contains("auth"));
            // Flood: each new connection evicts the previous unauthenticated one.
            let flood: Vec<TcpStream> =
                (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(100));
            // The authenticated connection still answers, on the same socket.
            assert!(ask(&mut peer, "/auth").contains("auth"));
            // All but the newest flood connection were closed at once.
            let mut open = 0;
            for mut f in flood {
                f.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 8];
                if matches!(f.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                {
                    open += 1;
                }
            }
            assert_eq!(
                open, 1,
                "unauthenticated connections beyond the limit stayed open"
            );
            // A new client gets in (evicting the last flood connection).
            let mut client = tls(addr);
            assert!(ask(&mut client, "/open").contains("open"));
        })
        .await
        .unwrap();
    }

    #[test]
    fn limits_follow_the_open_file_limit() {
        assert_eq!(ServerLimits::for_open_files(1024).max_connections, 256);
        assert_eq!(ServerLimits::for_open_files(20_000).max_connections, 9744);
        assert_eq!(ServerLimits::for_open_files(100).max_connections, 64);
        assert_eq!(
            ServerLimits::for_open_files(1 << 20).max_connections,
            16_384
        );
    }

    #[tokio::test]
    async fn eviction_spares_authenticated_connections() {
        let mut r = Registry::default();
        let first = match r.admit(2) {
            Admission::Admitted { auth, .. } => auth,
            Admission::Full => panic!("room"),
        };
        first.mark();
        let Admission::Admitted {
            evict: second_evict,
            ..
        } = r.admit(2)
        else {
            panic!("room")
        };
        // Full: the unauthenticated second connection makes room.
        let Admission::Admitted { auth: third, .. } = r.admit(2) else {
            panic!("evicts")
        };
        assert_eq!(r.open.len(), 2);
        // The permit stored by notify_one completes it at once.
        tokio::time::timeout(Duration::from_millis(100), second_evict.notified())
            .await
            .expect("the evicted connection is told");
        third.mark();
        assert!(matches!(r.admit(2), Admission::Full));
    }
}
