//! Hostile or broken requests: no client certificate, a certificate of
//! another cluster's CA, of a node that is not a member, or of one member
//! speaking for another; corrupted or truncated bodies, wrong format
//! version. Each gets a clear refusal, changes nothing, and the node keeps
//! working.

mod common;

use std::time::{Duration, SystemTime};

use common::{test_ca, TestCluster};
use raft::network::wire::{self, ForwardRequest, WIRE_VERSION};
use raft::tls::config::cli_client_config;
use raft::tls::pki::{self, CaMaterial};
use raft::{Command, DocKey};

/// A client trusting the test CA that presents the certificate of node
/// `id` issued by `ca` (none when `None`).
fn client(ca: Option<(&CaMaterial, u64)>) -> reqwest::Client {
    let tls = match ca {
        None => cli_client_config(&test_ca().cert_pem, None).unwrap(),
        Some((ca, id)) => {
            let node = pki::issue_node(ca, id, &format!("node{id}"), SystemTime::now()).unwrap();
            let chain = format!("{}{}", node.cert_pem, ca.cert_pem);
            cli_client_config(&test_ca().cert_pem, Some((&chain, &node.key_pem))).unwrap()
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    addr: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), reqwest::Error> {
    let resp = client
        .post(format!("https://{addr}/raft{path}"))
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
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

fn vote_from(node: u64) -> Vec<u8> {
    let req = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(99, node), None);
    wire::encode("vote", &req).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_bad_requests_and_keeps_running() {
    let cluster = TestCluster::start(1).await;
    let addr = cluster.nodes[&1].addr.clone();
    let anonymous = client(None);
    let other_ca = pki::new_ca("other", SystemTime::now()).unwrap();
    let stranger = client(Some((&other_ca, 1)));
    let non_member = client(Some((test_ca(), 9)));
    let member = client(Some((test_ca(), 1)));

    for path in ["/append", "/vote", "/snapshot", "/forward"] {
        // No client certificate: 401.
        let (status, text) = post(&anonymous, &addr, path, valid_forward())
            .await
            .unwrap();
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("no node certificate"), "{text}");
        // A certificate of another cluster's CA (even for a member's id):
        // the handshake fails, no request is read.
        let refused = post(&stranger, &addr, path, valid_forward()).await;
        assert!(refused.is_err(), "{path}: {refused:?}");
        // A node of this CA that is not a member: 403 naming it.
        let (status, text) = post(&non_member, &addr, path, valid_forward())
            .await
            .unwrap();
        assert_eq!(status, 403, "{path}: {text}");
        assert!(
            text.contains("node9") && text.contains("not a member"),
            "{text}"
        );
    }

    // A member speaking for another node (a vote for a candidate that is
    // not the certificate's node): 403.
    let (status, text) = post(&member, &addr, "/vote", vote_from(5)).await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("certificate of node 'node1'"), "{text}");

    // Garbage bodies: 400 naming the request.
    for path in ["/append", "/vote", "/snapshot", "/forward"] {
        let (status, text) = post(&member, &addr, path, vec![WIRE_VERSION, 0xff, 0xfe, 7])
            .await
            .unwrap();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("request body"), "{text}");
        let (status, _) = post(&member, &addr, path, Vec::new()).await.unwrap();
        assert_eq!(status, 400);
    }

    // Truncated valid body.
    let mut truncated = valid_forward();
    truncated.truncate(truncated.len() - 3);
    let (status, text) = post(&member, &addr, "/forward", truncated).await.unwrap();
    assert_eq!(status, 400, "{text}");

    // Trailing junk after a valid body.
    let mut trailing = valid_forward();
    trailing.extend_from_slice(b"junk");
    let (status, text) = post(&member, &addr, "/forward", trailing).await.unwrap();
    assert_eq!(status, 400);
    assert!(text.contains("trailing"), "{text}");

    // Wrong format version.
    let mut wrong_version = valid_forward();
    wrong_version[0] = WIRE_VERSION + 1;
    let (status, text) = post(&member, &addr, "/forward", wrong_version)
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(text.contains("unsupported format version"), "{text}");

    // Nothing above changed the state; the node still serves requests,
    // including a correct one over the same HTTPS endpoint.
    let store = cluster.node(1);
    assert!(
        store
            .read_linearizable(|s| s.docs().count())
            .await
            .unwrap()
            .value
            == 0
    );
    let (status, _) = post(&member, &addr, "/forward", valid_forward())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let doc = store
        .read_linearizable(|s| s.doc(&DocKey::Config("resources".into())).cloned())
        .await
        .unwrap();
    assert_eq!(doc.value.unwrap().value, "from the wire");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_of_another_cluster_cannot_join() {
    common::init_tracing();
    let cluster = TestCluster::start(1).await;
    // A node with a certificate of another CA: the TLS handshakes between
    // it and the leader fail both ways, so adding it as learner cannot
    // complete and nothing is replicated to it.
    let dir = tempfile::TempDir::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let other_ca = pki::new_ca("other", SystemTime::now()).unwrap();
    let mut config =
        raft::StoreConfig::new(2, dir.path(), &addr, common::tls_of(&other_ca, 2)).fast();
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
    let client = raft::network::client::PeerClient::new(common::node_tls(1), source).unwrap();
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

/// A removed node keeps a certificate that chains to the CA; its id left
/// the membership, so every member refuses it from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_is_refused() {
    common::init_tracing();
    let cluster = TestCluster::start(3).await;
    let addr = cluster.nodes[&1].addr.clone();
    let removed = client(Some((test_ca(), 3)));
    let (status, text) = post(&removed, &addr, "/forward", valid_forward())
        .await
        .unwrap();
    assert_eq!(status, 200, "a member is served: {text}");
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.node(leader).remove_node(3).await.unwrap();
    let (status, text) = post(&removed, &addr, "/forward", valid_forward())
        .await
        .unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("node3") && text.contains("not a member"),
        "{text}"
    );
    cluster.shutdown().await;
}
