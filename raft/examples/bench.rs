//! Throughput and latency of the cluster store, compared with etcd.
//!
//! Starts a three-node cluster on loopback (real sled files, fsync on every
//! acknowledged write), drives it over HTTP through the leader's `/raft/forward`
//! endpoint with 1, 16 and 64 concurrent clients, then measures lease
//! renewals per second. If `etcd` is installed, starts a three-member etcd
//! cluster on loopback and drives it with the same load loop through its v3
//! HTTP/JSON gateway.
//!
//! ```text
//! cargo run --release -p raft --example bench -- [seconds-per-step]
//! ```
//!
//! Environment: `BENCH_DIR` (parent of the data dirs, default: system temp
//! dir), `BENCH_SKIP_ETCD=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use raft::network::client::PeerClient;
use raft::network::wire::{ForwardReply, ForwardRequest, ForwardResult, PATH_FORWARD};
use raft::{ClusterStore, Command, DocKey, LeaseCommand, LeaseOutcome, Outcome, StoreConfig};

/// The CA of the benchmark cluster.
fn bench_ca() -> &'static raft::tls::pki::CaMaterial {
    static CA: std::sync::OnceLock<raft::tls::pki::CaMaterial> = std::sync::OnceLock::new();
    CA.get_or_init(|| raft::tls::pki::new_ca("bench", std::time::SystemTime::now()).expect("a CA"))
}

/// TLS material of bench node `id`.
fn bench_tls(id: u64) -> Result<Arc<raft::tls::NodeTls>> {
    let ca = bench_ca();
    let node =
        raft::tls::pki::issue_node(ca, id, &format!("node{id}"), std::time::SystemTime::now())?;
    Ok(raft::tls::NodeTls::new(raft::tls::TlsMaterial::from_pem(
        &ca.cert_pem,
        &node.cert_pem,
        &node.key_pem,
    )?))
}
const VALUE_BYTES: usize = 128;
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const LEASE_CLIENTS: usize = 16;

/// One load step's result.
struct Stats {
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Stats {
            ops: latencies.len(),
            elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }

    fn line(&self, system: &str, what: &str) -> String {
        format!(
            "| {system} | {what} | {:.0} | {:.2} | {:.2} |",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1000.0,
            self.p99.as_secs_f64() * 1000.0
        )
    }
}

/// Runs `clients` loops calling `op(client, i)` for `duration`.
async fn drive<F, Fut>(clients: usize, duration: Duration, op: F) -> Result<Stats>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < end {
                let t = Instant::now();
                op(client, i).await?;
                latencies.push(t.elapsed());
                i += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(Stats::from(all, start.elapsed()))
}

fn value() -> String {
    "x".repeat(VALUE_BYTES)
}

// ----- our store ---------------------------------------------------------

struct OurCluster {
    stores: Vec<ClusterStore>,
    addrs: Vec<String>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_ours(dir: &Path) -> Result<OurCluster> {
    let mut stores = Vec::new();
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let mut config = StoreConfig::new(id, dir.join(format!("node{id}")), &addr, bench_tls(id)?);
        config.snapshot_every_entries = 20_000;
        let store = ClusterStore::start(config).await?;
        servers.push(store.serve(listener));
        stores.push(store);
        addrs.push(addr);
    }
    stores[0].initialize(&addrs[0]).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stores[0].is_leader() {
        if Instant::now() > deadline {
            bail!("node 1 did not become leader");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in 2..=3u64 {
        stores[0].add_learner(id, &addrs[id as usize - 1]).await?;
        stores[0].promote_voter(id).await?;
    }
    Ok(OurCluster {
        stores,
        addrs,
        servers,
    })
}

async fn forward(client: &PeerClient, addr: &str, command: Command) -> Result<()> {
    forward_outcome(client, addr, command).await.map(|_| ())
}

async fn forward_outcome(client: &PeerClient, addr: &str, command: Command) -> Result<Outcome> {
    let reply: ForwardResult = client
        .post(
            addr,
            PATH_FORWARD,
            "forward",
            &ForwardRequest::Write(command),
            Duration::from_secs(10),
        )
        .await?;
    match reply? {
        ForwardReply::Written(r) if r.outcome.is_success() => Ok(r.outcome),
        other => bail!("write failed: {other:?}"),
    }
}

/// The sequence a lease command was granted at.
fn granted_seq(outcome: &Outcome) -> Result<u64> {
    match outcome {
        Outcome::Lease {
            outcome: LeaseOutcome::Granted(r),
            ..
        } => Ok(r.seq),
        other => bail!("lease not granted: {other:?}"),
    }
}

async fn bench_ours(dir: &Path, step: Duration, out: &mut Vec<String>) -> Result<()> {
    let cluster = start_ours(dir).await?;
    let leader = cluster
        .stores
        .iter()
        .position(|s| s.is_leader())
        .context("no leader")?;
    let addr = Arc::new(cluster.addrs[leader].clone());
    let client = PeerClient::new(bench_tls(1)?, None)?;
    for clients in CONCURRENCY {
        let (client, addr) = (client.clone(), addr.clone());
        let stats = drive(clients, step, move |c, i| {
            let (client, addr) = (client.clone(), addr.clone());
            async move {
                let command = Command::PutDoc {
                    key: DocKey::Config(format!("k{c}-{}", i % 1000)),
                    expected_version: None,
                    value: value(),
                };
                forward(&client, &addr, command).await
            }
        })
        .await?;
        out.push(stats.line("raft+sled (this crate)", &format!("put, {clients} clients")));
        println!("{}", out.last().map(String::as_str).unwrap_or_default());
    }
    // Lease renewals: each client holds its own lease and renews it at the
    // sequence of its last grant.
    let mut seqs = Vec::new();
    for c in 0..LEASE_CLIENTS {
        let command = Command::Lease(LeaseCommand::Acquire {
            name: format!("lease{c}"),
            holder: format!("node{c}"),
            incarnation: 1,
            ttl_ms: 13_000,
        });
        seqs.push(std::sync::atomic::AtomicU64::new(granted_seq(
            &forward_outcome(&client, &addr, command).await?,
        )?));
    }
    let seqs = Arc::new(seqs);
    let (client2, addr2) = (client.clone(), addr.clone());
    let stats = drive(LEASE_CLIENTS, step, move |c, _| {
        let (client, addr, seqs) = (client2.clone(), addr2.clone(), seqs.clone());
        async move {
            let seq = &seqs[c];
            let command = Command::Lease(LeaseCommand::Renew {
                name: format!("lease{c}"),
                holder: format!("node{c}"),
                seq: seq.load(std::sync::atomic::Ordering::Relaxed),
            });
            let granted = granted_seq(&forward_outcome(&client, &addr, command).await?)?;
            seq.store(granted, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    out.push(stats.line(
        "raft+sled (this crate)",
        &format!("lease renew, {LEASE_CLIENTS} clients"),
    ));
    println!("{}", out.last().map(String::as_str).unwrap_or_default());
    for server in &cluster.servers {
        server.abort();
    }
    for store in &cluster.stores {
        store.shutdown().await?;
    }
    Ok(())
}

// ----- etcd --------------------------------------------------------------

struct Etcd {
    children: Vec<Child>,
    client_urls: Vec<String>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_etcd(dir: &Path) -> Result<Etcd> {
    let base = 23000 + (std::process::id() % 1000) as u16 * 10;
    let peer = |i: u16| format!("http://127.0.0.1:{}", base + 2 * i + 1);
    let client = |i: u16| format!("http://127.0.0.1:{}", base + 2 * i);
    let initial: Vec<String> = (0..3).map(|i| format!("e{i}={}", peer(i))).collect();
    let mut etcd = Etcd {
        children: Vec::new(),
        client_urls: Vec::new(),
    };
    for i in 0..3u16 {
        let data = dir.join(format!("etcd{i}"));
        let log = std::fs::File::create(dir.join(format!("etcd{i}.log")))?;
        let child = Process::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client(i)])
            .args(["--advertise-client-urls", &client(i)])
            .args(["--listen-peer-urls", &peer(i)])
            .args(["--initial-advertise-peer-urls", &peer(i)])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "ha-manager-bench"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd")?;
        etcd.children.push(child);
        etcd.client_urls.push(client(i));
    }
    Ok(etcd)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn etcd_post(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("etcd {url}: HTTP {status}: {text}");
    }
    // Streaming endpoints (lease keepalive) answer one JSON object per line.
    let first = text.lines().next().unwrap_or_default();
    Ok(serde_json::from_str(first)?)
}

async fn etcd_leader(http: &reqwest::Client, etcd: &Etcd) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for url in &etcd.client_urls {
            let status = etcd_post(
                http,
                &format!("{url}/v3/maintenance/status"),
                serde_json::json!({}),
            )
            .await;
            if let Ok(status) = status {
                let member = &status["header"]["member_id"];
                if !status["leader"].is_null() && &status["leader"] == member {
                    return Ok(url.clone());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("etcd cluster did not elect a leader");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bench_etcd(dir: &Path, step: Duration, out: &mut Vec<String>) -> Result<()> {
    let etcd = start_etcd(dir)?;
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let leader = Arc::new(etcd_leader(&http, &etcd).await?);
    for clients in CONCURRENCY {
        let (http, leader) = (http.clone(), leader.clone());
        let stats = drive(clients, step, move |c, i| {
            let (http, leader) = (http.clone(), leader.clone());
            async move {
                let body = serde_json::json!({
                    "key": b64(&format!("k{c}-{}", i % 1000)),
                    "value": b64(&value()),
                });
                etcd_post(&http, &format!("{leader}/v3/kv/put"), body).await?;
                Ok(())
            }
        })
        .await?;
        out.push(stats.line(
            "etcd 3.4 (v3 JSON gateway)",
            &format!("put, {clients} clients"),
        ));
        println!("{}", out.last().map(String::as_str).unwrap_or_default());
    }
    let mut lease_ids = Vec::new();
    for _ in 0..LEASE_CLIENTS {
        let grant = etcd_post(
            &http,
            &format!("{leader}/v3/lease/grant"),
            serde_json::json!({"TTL": 13}),
        )
        .await?;
        lease_ids.push(grant["ID"].as_str().context("lease id")?.to_string());
    }
    let lease_ids = Arc::new(lease_ids);
    let (http2, leader2) = (http.clone(), leader.clone());
    let stats = drive(LEASE_CLIENTS, step, move |c, _| {
        let (http, leader, ids) = (http2.clone(), leader2.clone(), lease_ids.clone());
        async move {
            let body = serde_json::json!({"ID": ids[c]});
            let reply = etcd_post(&http, &format!("{leader}/v3/lease/keepalive"), body).await?;
            if reply["result"]["TTL"].is_null() {
                bail!("keepalive failed: {reply}");
            }
            Ok(())
        }
    })
    .await?;
    out.push(stats.line(
        "etcd 3.4 (v3 JSON gateway)",
        &format!("lease keepalive, {LEASE_CLIENTS} clients"),
    ));
    println!("{}", out.last().map(String::as_str).unwrap_or_default());
    drop(etcd);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let step = Duration::from_secs(
        std::env::args()
            .nth(1)
            .map(|s| s.parse())
            .transpose()
            .context("seconds per step must be a number")?
            .unwrap_or(5),
    );
    let parent = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::TempDir::new_in(parent)?;
    println!("data under {} ({step:?} per step)", dir.path().display());
    println!("| system | load | ops/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let mut out = Vec::new();
    bench_ours(dir.path(), step, &mut out).await?;
    let have_etcd = Process::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if std::env::var_os("BENCH_SKIP_ETCD").is_some() {
        println!("etcd skipped (BENCH_SKIP_ETCD)");
    } else if !have_etcd {
        println!("etcd not installed: comparison skipped (apt-get install etcd-server)");
    } else if let Err(e) = bench_etcd(dir.path(), step, &mut out).await {
        println!("etcd comparison failed: {e:#}");
    }
    Ok(())
}
