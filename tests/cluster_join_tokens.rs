//! Join tokens on real daemons (issue 10): `cluster init` prints the first
//! one and keeps only its digest; a joined node receives none; tokens made
//! with `cluster join-token create` work through any member (a follower
//! too); revoked, expired, wrong and malformed tokens are refused with
//! the reason and change nothing; read-only API tokens get 403 on the
//! join-token routes; bad input is refused naming the field.

mod common;

use std::time::{Duration, Instant};

use common::{bin_dir, cli_ok, make_join_token, make_token};
use ha_manager::api::join_tokens::JoinTokenView;
use ha_manager::local_cluster::{wait_until, CliOutput, LocalCluster, LocalClusterOptions};

const LIMIT: Duration = Duration::from_secs(60);

/// `cluster join` of node `i` through member `via`.
fn join(c: &LocalCluster, i: usize, via: usize, token: &str) -> CliOutput {
    let addr = c.nodes[via].addr.clone();
    c.cli(i, &["cluster", "join", &addr, "--token", token])
        .expect("the CLI runs")
}

/// The join tokens node `via` lists.
fn list(c: &LocalCluster, via: usize) -> Vec<JoinTokenView> {
    let out = cli_ok(
        c,
        via,
        &["cluster", "join-token", "list", "--output-format", "json"],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The token without the CA fingerprint in front: `<id>.<secret>`.
fn bare(token: &str) -> &str {
    token.split_once(':').expect("fingerprint:token").1
}

fn id_of(token: &str) -> &str {
    bare(token).split_once('.').expect("id.secret").0
}

fn secret_of(token: &str) -> &str {
    bare(token).split_once('.').expect("id.secret").1
}

fn cluster_json(c: &LocalCluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].dir.join("data/cluster.json")).unwrap_or_default()
}

/// Voters and LRM statuses node `via` sees.
fn voters_and_lrms(c: &LocalCluster, via: usize) -> Option<(usize, usize)> {
    let cs = c.cluster_status(via).ok()?;
    let st = c.status(via).ok()?;
    Some((
        cs.members.iter().filter(|m| m.voter).count(),
        st.iter().filter(|e| e.kind == "lrm").count(),
    ))
}

/// A join of node4 with `token` is refused, says `reason`, and leaves no
/// trace: node4 has no credentials, the cluster still has three members
/// and its status names no node4.
fn refused(c: &LocalCluster, token: &str, reason: &str) {
    let out = join(c, 3, 0, token);
    assert_ne!(out.code, 0, "the join must be refused: {}", out.stdout);
    assert!(
        out.stderr.contains("join refused") && out.stderr.contains(reason),
        "expected '{reason}': {}",
        out.stderr
    );
    assert!(!c.nodes[3].dir.join("data/cluster.json").exists());
    let cs = c.cluster_status(0).expect("cluster status");
    assert_eq!(cs.members.len(), 3, "{cs:?}");
    let status = cli_ok(c, 0, &["status", "--verbose", "--output-format", "json"]);
    assert!(
        !status.contains("node4"),
        "node4 in the directory: {status}"
    );
}

#[test]
fn join_tokens_expire_are_revoked_and_are_checked_on_every_member() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("hajt")
        .tempdir()
        .expect("temp dir");
    let options = LocalClusterOptions::new(4, "fast", tmp.path().join("c"), bin_dir());
    let mut c = LocalCluster::prepare(options).expect("node directories");
    for i in 0..4 {
        c.start_node(i).expect("node boots");
    }

    // init prints the first token; the credentials keep only its digest,
    // and only until the daemon has stored it.
    let init = cli_ok(&c, 0, &["cluster", "init"]);
    let first = init
        .lines()
        .find_map(|l| l.strip_prefix("join token: "))
        .expect("init prints the token")
        .trim()
        .to_string();
    assert!(init.contains(&format!("--token {first}")), "{init}");
    let secret = secret_of(&first).to_string();
    assert!(!cluster_json(&c, 0).contains(&secret));
    for i in 1..3 {
        wait_until(LIMIT, "join with the init token", || {
            (join(&c, i, 0, &first).code == 0).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    }
    wait_until(LIMIT, "three voters with an LRM", || {
        (voters_and_lrms(&c, 0)? == (3, 3)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    for i in 0..3 {
        let creds = cluster_json(&c, i);
        assert!(
            !creds.contains("join_token") && !creds.contains(&secret),
            "node{}: {creds}",
            i + 1
        );
    }
    let rows = list(&c, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id, id_of(&first));
    assert_eq!(rows[0].created_by, "cluster-init");
    assert!(rows[0].expires >= rows[0].created + 86_400 - 1 && !rows[0].expired);

    // Read-only API tokens get 403 on every join-token route, reads too.
    let ro = make_token(&c, "monitor", "read-only");
    let http = c.https_client(0).expect("client");
    let url = c.url(0, "/api/v1/cluster/join-tokens");
    for (method, target) in [
        (reqwest::Method::GET, url.clone()),
        (reqwest::Method::POST, url.clone()),
        (reqwest::Method::DELETE, format!("{url}/{}", id_of(&first))),
    ] {
        let r = http
            .request(method.clone(), &target)
            .bearer_auth(&ro)
            .json(&serde_json::json!({}))
            .send()
            .expect("answer");
        assert_eq!(r.status().as_u16(), 403, "{method} {target}");
    }
    // Bad input names the field and changes nothing.
    let admin = make_token(&c, "ops", "admin");
    let r = http
        .post(&url)
        .bearer_auth(&admin)
        .json(&serde_json::json!({"ttl": 60}))
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(body["field"], "ttl", "{body}");
    for (args, field) in [
        (&["--ttl", "4s"][..], "field 'ttl'"),
        (&["--ttl", "31d"][..], "field 'ttl'"),
        (&["--ttl", "1w"][..], "field 'ttl'"),
    ] {
        let mut all = vec!["cluster", "join-token", "create"];
        all.extend_from_slice(args);
        let out = c.cli(0, &all).expect("cli");
        assert_ne!(out.code, 0, "{args:?}");
        assert!(out.stderr.contains(field), "{args:?}: {}", out.stderr);
    }
    let out = c
        .cli(1, &["cluster", "join-token", "revoke", "0badc0de"])
        .expect("cli");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no join token '0badc0de'"),
        "{}",
        out.stderr
    );
    assert_eq!(list(&c, 0).len(), 1);

    // Revoked: refused, by reason, with nothing changed.
    let revoked = make_join_token(&c, 1, &["--description", "to be revoked"]);
    cli_ok(&c, 2, &["cluster", "join-token", "revoke", id_of(&revoked)]);
    wait_until(Duration::from_secs(10), "the revocation replicated", || {
        (!list(&c, 0).iter().any(|r| r.id == id_of(&revoked))).then_some(())
    })
    .expect("revoked everywhere");
    refused(
        &c,
        &revoked,
        &format!("unknown join token '{}'", id_of(&revoked)),
    );

    // Expired: the shortest lifetime, then a wait.
    let expiring = make_join_token(&c, 0, &["--ttl", "5s"]);
    let made = Instant::now();
    let row = list(&c, 0)
        .into_iter()
        .find(|r| r.id == id_of(&expiring))
        .expect("listed");
    assert!(!row.expired && row.expires <= row.created + 5, "{row:?}");
    std::thread::sleep(Duration::from_secs(6).saturating_sub(made.elapsed()));
    assert!(
        list(&c, 0)
            .iter()
            .any(|r| r.id == id_of(&expiring) && r.expired),
        "listed as expired"
    );
    refused(
        &c,
        &expiring,
        &format!("join token '{}' expired", id_of(&expiring)),
    );

    // A known id with another secret, and an old-style token.
    let (fingerprint, _) = first.split_once(':').expect("fingerprint:token");
    let id = id_of(&first);
    refused(
        &c,
        &format!("{fingerprint}:{id}.{}", "0".repeat(64)),
        &format!("wrong secret for join token '{id}'"),
    );
    refused(
        &c,
        &format!("{fingerprint}:{secret}"),
        "malformed join token",
    );

    // Made on a follower, used through that follower: node4 joins. The
    // expired token is pruned by this create.
    let leader = c.leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let fresh = make_join_token(&c, follower, &["--description", "node4"]);
    let rows = list(&c, follower);
    assert!(!rows.iter().any(|r| r.id == id_of(&expiring)), "{rows:?}");
    let row = rows.iter().find(|r| r.id == id_of(&fresh)).expect("listed");
    assert_eq!(
        (row.created_by.as_str(), row.description.as_str()),
        (format!("node:node{}", follower + 1).as_str(), "node4")
    );
    let out = join(&c, 3, follower, &fresh);
    assert_eq!(out.code, 0, "join with a fresh token: {}", out.stderr);
    assert!(!cluster_json(&c, 3).contains("join_token"));
    wait_until(LIMIT, "four voters with an LRM", || {
        (voters_and_lrms(&c, 0)? == (4, 4)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));

    // The logs name every refusal's reason and token id, never a secret.
    let logs: String = (0..4)
        .map(|i| std::fs::read_to_string(c.nodes[i].dir.join("daemon.log")).unwrap_or_default())
        .collect();
    for (reason, token) in [("unknown", &revoked), ("expired", &expiring)] {
        assert!(
            logs.lines().any(|l| l.contains("refused cluster join")
                && l.contains(&format!("reason=\"{reason}\""))
                && l.contains(id_of(token))),
            "no log line for the {reason} token"
        );
    }
    for token in [&first, &revoked, &expiring, &fresh] {
        assert!(!logs.contains(secret_of(token)), "a secret was logged");
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("join token created") && l.contains("token=node:node")),
        "no audit line for the created join token"
    );
    eprintln!("join token test took {:?}", started.elapsed());
}
