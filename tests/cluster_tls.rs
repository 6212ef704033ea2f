//! Mutual TLS on real daemons (issue 10): every port speaks TLS only; a
//! Raft request needs a member's certificate of this cluster's CA; a
//! certificate of another CA, of a node that is not a member, naming a
//! member under another id, or even a member's own name and id signed
//! with the CA key outside a join or renewal (the node directory does not
//! list it) is refused, logged, and changes nothing; the
//! CLI verifies the daemon. A node's certificate is renewed on a running
//! cluster while its service keeps running.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{add_sleep_service, client_with_cert, marker, start, wait_running_once};
use ha_manager::local_cluster::procs::{marker_pids, ServiceWatch};
use ha_manager::local_cluster::{wait_until, LocalCluster};
use raft::tls::pki::{self, CaMaterial};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Everything an operator configured, as node `via` lists it.
fn config_snapshot(c: &LocalCluster, via: usize) -> (Value, Value) {
    let res: Value = c.cli_json(via, &["config"]).expect("config");
    let rules: Value = c.cli_json(via, &["rules", "config"]).expect("rules config");
    (res, rules)
}

/// The cluster CA, with its key, as node `i` has it.
fn cluster_ca(c: &LocalCluster, i: usize) -> CaMaterial {
    let dir = c.nodes[i].dir.join("data/tls");
    CaMaterial {
        cert_pem: std::fs::read_to_string(dir.join("ca.crt")).expect("ca.crt"),
        key_pem: std::fs::read_to_string(dir.join("ca.key")).expect("ca.key"),
    }
}

/// A client presenting a certificate for node `name` with id `id`,
/// signed by `ca`.
fn client_of(c: &LocalCluster, ca: &CaMaterial, id: u64, name: &str) -> reqwest::blocking::Client {
    let node = pki::issue_node(ca, id, name, SystemTime::now()).expect("certificate");
    let chain = format!("{}{}", node.cert_pem, ca.cert_pem);
    client_with_cert(c, &chain, &node.key_pem)
}

/// A write of the resources document, as a peer would forward it.
fn forged_write() -> Vec<u8> {
    raft::network::wire::encode(
        "forward",
        &raft::network::wire::ForwardRequest::Write(raft::Command::PutDoc {
            key: raft::DocKey::Config("resources".into()),
            expected_version: None,
            value: "sneaked in".into(),
        }),
    )
    .expect("encode")
}

/// The SHA-256 of the certificate node `i` presents on a new connection.
fn served_fingerprint(c: &LocalCluster, i: usize) -> String {
    use std::sync::Arc;
    let ca = std::fs::read_to_string(c.nodes[0].dir.join("data/tls/ca.crt")).expect("ca.crt");
    let config = raft::tls::config::cli_client_config(&ca, None).expect("config");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("connection");
    let mut tcp = std::net::TcpStream::connect(&c.nodes[i].addr).expect("connect");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    let cert = conn.peer_certificates().expect("a server certificate")[0].clone();
    raft::tls::fingerprint(&cert)
}

fn file_fingerprint(c: &LocalCluster, i: usize) -> String {
    let pem = std::fs::read_to_string(c.nodes[i].dir.join("data/tls/node.crt")).expect("node.crt");
    let der = raft::tls::config::certs_from_pem("node", &pem).expect("PEM");
    raft::tls::fingerprint(&der[0])
}

#[test]
fn only_members_certificates_open_raft_and_nothing_else_changes_anything() {
    let c = start(3);
    let m = marker(1);
    add_sleep_service(&c, 0, "tls", m);
    wait_running_once(&c, m, LIMIT);
    let target = 1;
    let before = config_snapshot(&c, target);
    let raft_url = c.url(target, "/raft/forward");
    let api_url = c.url(target, "/api/v1/resources");
    let ca = cluster_ca(&c, 0);
    let other_ca = pki::new_ca("elsewhere", SystemTime::now()).expect("CA");

    // No client certificate: Raft says so (401); the API wants a token.
    let anonymous = c.https_client(0).expect("client");
    let r = anonymous
        .post(&raft_url)
        .body(forged_write())
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap_or_default().contains("no node certificate"));
    let r = anonymous.get(&api_url).send().expect("answer");
    assert_eq!(r.status().as_u16(), 401);

    // Another cluster's certificate, even naming a member with its id:
    // the handshake fails, no request is read.
    let stranger = client_of(&c, &other_ca, 1, "node1");
    assert!(stranger
        .post(&raft_url)
        .body(forged_write())
        .send()
        .is_err());
    assert!(stranger.get(&api_url).send().is_err());

    // This CA, but not a member (node9), a member's name under an id that
    // is not its own, or even a member's exact name and id signed with the
    // CA key (what a stolen node's disk allows): refused with 403, naming
    // the certificate, because the node directory does not list it.
    for (id, name, why) in [
        (9, "node9", "not a member"),
        (7, "node2", "not a member"),
        (2, "node2", "not one the node directory lists"),
    ] {
        let client = client_of(&c, &ca, id, name);
        let r = client
            .post(&raft_url)
            .body(forged_write())
            .send()
            .expect("answer");
        assert_eq!(r.status().as_u16(), 403, "{name}/{id}");
        let text = r.text().unwrap_or_default();
        assert!(text.contains(name) && text.contains(why), "{text}");
        let r = client.get(&api_url).send().expect("answer");
        assert_eq!(r.status().as_u16(), 403, "{name}/{id}");
    }

    // Plain HTTP gets no answer at all.
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .get(format!("http://{}/api/v1/resources", c.nodes[target].addr))
        .send();
    assert!(
        r.is_err(),
        "plain HTTP answered: {:?}",
        r.map(|r| r.status())
    );

    // A CLI that trusts another CA refuses the daemon.
    let wrong_trust = raft::tls::config::cli_client_config(&other_ca.cert_pem, None).expect("tls");
    let wrong = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(wrong_trust)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(wrong.get(&api_url).send().is_err());

    // Nothing changed, and the refusals are in the log.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(config_snapshot(&c, target), before);
    let log = std::fs::read_to_string(c.nodes[target].dir.join("daemon.log")).unwrap_or_default();
    assert!(log.contains("refused raft request"), "no refusal logged");
    assert!(log.contains("not a member"), "no refusal logged");
    assert!(
        log.contains("not one the node directory lists"),
        "no refusal logged"
    );

    // The members' own certificates work: the cluster still places a new
    // service.
    let m2 = marker(2);
    add_sleep_service(&c, target, "after", m2);
    wait_running_once(&c, m2, LIMIT);
}

#[test]
fn certificates_are_renewed_on_a_running_cluster_while_the_service_runs() {
    let c = start(3);
    let m = marker(3);
    add_sleep_service(&c, 0, "steady", m);
    let on = wait_running_once(&c, m, LIMIT);
    let pid = marker_pids(m);
    assert_eq!(pid.len(), 1);
    let watch = ServiceWatch::start(m, c.pid_locator());
    let started = Instant::now();

    // Twice per node, leader included: the second renewal unlists the
    // certificate the node joined with, which its busy Raft connections
    // (heartbeats keep them open) were opened with, so the node must move
    // its peer traffic to new connections at each renewal or be refused.
    let leader = c.leader().expect("a leader");
    for i in [0, 1, 2, leader, (leader + 1) % 3] {
        let old = file_fingerprint(&c, i);
        assert_eq!(served_fingerprint(&c, i), old);
        let out = c.cli(i, &["cluster", "renew-cert"]).expect("cli");
        assert_eq!(out.code, 0, "renew-cert on node{}: {}", i + 1, out.stderr);
        let new = file_fingerprint(&c, i);
        assert_ne!(
            new,
            old,
            "node{}: the certificate file did not change",
            i + 1
        );
        assert!(out.stdout.contains(&new), "{}", out.stdout);
        // New connections get the new certificate, without a restart.
        assert_eq!(served_fingerprint(&c, i), new, "node{}", i + 1);
    }

    // Peers reconnect with the new certificates (idle connections close
    // after 4-5 s); the cluster keeps working: a new service is placed and
    // started, and the first one never moved or restarted.
    std::thread::sleep(Duration::from_secs(6));
    let m2 = marker(4);
    add_sleep_service(&c, 1, "after-renewal", m2);
    wait_running_once(&c, m2, LIMIT);
    assert_eq!(marker_pids(m), pid, "the service restarted");
    assert_eq!(watch.max_copies(), 1, "{:?}", watch.observations());
    assert!(
        watch.first_elsewhere(started, on).is_none(),
        "the service moved: {:?}",
        watch.observations()
    );
    wait_until(Duration::from_secs(5), "no fencing", || {
        let st = c.status(0).ok()?;
        st.iter().all(|e| !e.status.contains("fence")).then_some(())
    })
    .expect("no node fenced");
}
