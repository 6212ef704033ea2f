//! Hostile or broken requests: wrong secret, corrupted or truncated bodies,
//! wrong format version. Each gets a clear refusal and the node keeps
//! working.

mod common;

use std::time::Duration;

use common::{TestCluster, SECRET};
use raft::network::wire::{self, ForwardRequest, SECRET_HEADER, WIRE_VERSION};
use raft::{Command, DocKey};

async fn post(addr: &str, path: &str, secret: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("http://{addr}/raft{path}"))
        .timeout(Duration::from_secs(5))
        .body(body);
    if let Some(secret) = secret {
        req = req.header(SECRET_HEADER, secret);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn valid_forward() -> Vec<u8> {
    wire::encode(
        "forward",
        &ForwardRequest::Write(Command::PutDoc {
            key: DocKey::Config("resources".into()),
            expected_version: None,
            value: "from the wire".into(),
        }),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_bad_requests_and_keeps_running() {
    let cluster = TestCluster::start(1).await;
    let addr = cluster.nodes[&1].addr.clone();

    // Secret missing or wrong: 401, whatever the endpoint.
    for path in ["/append", "/vote", "/snapshot", "/forward"] {
        let (status, text) = post(&addr, path, None, valid_forward()).await;
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("cluster secret"), "{text}");
        let (status, _) = post(&addr, path, Some("wrong"), valid_forward()).await;
        assert_eq!(status, 401);
    }

    // Garbage bodies: 400 naming the request.
    for path in ["/append", "/vote", "/snapshot", "/forward"] {
        let (status, text) =
            post(&addr, path, Some(SECRET), vec![WIRE_VERSION, 0xff, 0xfe, 7]).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("request body"), "{text}");
        let (status, _) = post(&addr, path, Some(SECRET), Vec::new()).await;
        assert_eq!(status, 400);
    }

    // Truncated valid body.
    let mut truncated = valid_forward();
    truncated.truncate(truncated.len() - 3);
    let (status, text) = post(&addr, "/forward", Some(SECRET), truncated).await;
    assert_eq!(status, 400, "{text}");

    // Trailing junk after a valid body.
    let mut trailing = valid_forward();
    trailing.extend_from_slice(b"junk");
    let (status, text) = post(&addr, "/forward", Some(SECRET), trailing).await;
    assert_eq!(status, 400);
    assert!(text.contains("trailing"), "{text}");

    // Wrong format version.
    let mut wrong_version = valid_forward();
    wrong_version[0] = WIRE_VERSION + 1;
    let (status, text) = post(&addr, "/forward", Some(SECRET), wrong_version).await;
    assert_eq!(status, 400);
    assert!(text.contains("unsupported format version"), "{text}");

    // Nothing above changed the state; the node still serves requests,
    // including a correct one over the same HTTP endpoint.
    let store = cluster.node(1);
    assert!(
        store
            .read_linearizable(|s| s.docs().count())
            .await
            .unwrap()
            .value
            == 0
    );
    let (status, _) = post(&addr, "/forward", Some(SECRET), valid_forward()).await;
    assert_eq!(status, 200);
    let doc = store
        .read_linearizable(|s| s.doc(&DocKey::Config("resources".into())).cloned())
        .await
        .unwrap();
    assert_eq!(doc.value.unwrap().value, "from the wire");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_wrong_secret_cannot_join() {
    common::init_tracing();
    let cluster = TestCluster::start(1).await;
    // A node started with another secret: the leader's RPCs to it are
    // refused, so adding it as learner cannot complete.
    let dir = tempfile::TempDir::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = raft::StoreConfig::new(2, dir.path(), &addr, "another-secret").fast();
    config.request_timeout = Duration::from_secs(1);
    let intruder = raft::ClusterStore::start(config).await.unwrap();
    let server = intruder.serve(listener);
    // openraft may report the learner as added (the membership entry is
    // committed by the one voter), but nothing is ever replicated to it.
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        cluster.node(1).add_learner(2, &addr),
    )
    .await;
    cluster
        .node(1)
        .put_doc(DocKey::ManagerStatus, None, "{}".into())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(intruder.read_local(|s| s.docs().count()).applied_index, 0);
    assert!(intruder.membership().voters.is_empty());
    server.abort();
    intruder.shutdown().await.unwrap();
    cluster.shutdown().await;
}

/// Outgoing node-to-node connections leave from the configured source
/// address (by default the IP of the node's advertise address), so a
/// peer's firewall rule on that address applies.
#[tokio::test]
async fn peer_requests_leave_from_the_configured_source_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = tokio::spawn(async move {
        let (mut sock, peer) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            .await;
        peer.ip()
    });
    let source = raft::config::source_of("127.0.0.7:7400");
    assert_eq!(source, Some("127.0.0.7".parse().unwrap()));
    assert_eq!(raft::config::source_of("0.0.0.0:7400"), None);
    assert_eq!(raft::config::source_of("node1.example:7400"), None);
    let client = raft::network::client::PeerClient::with_source("s", source).unwrap();
    let reply: Result<u8, _> = client
        .post(
            &addr,
            "/vote",
            "probe",
            &1u8,
            std::time::Duration::from_secs(5),
        )
        .await;
    assert!(reply.is_err());
    assert_eq!(seen.await.unwrap().to_string(), "127.0.0.7");
}
