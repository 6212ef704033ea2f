//! Property tests: every route of the real API router, on a real one-node
//! Raft store (sled in a temp dir), gets arbitrary methods, paths, query
//! strings and bodies (arbitrary JSON with the API's own keys mixed in,
//! and arbitrary bytes). Each answer is a 2xx, or a 4xx in the API's JSON
//! error format (a 400 always names the field) after which the store is
//! exactly as before; never a 5xx, never a panic. The config parsers get
//! arbitrary text and must not panic.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use ha_manager::api::docs::{self, NodeDirectory, NodeEntry};
use ha_manager::api::error::ErrorBody;
use ha_manager::api::tokens::{Role, StoredToken, TokenTable, TOKENS_DOC};
use ha_manager::api::{self, ApiState};
use ha_manager::daemon::credentials::{Credentials, CREDENTIALS_VERSION};
use ha_manager::daemon::tls_files::TlsFiles;
use proptest::prelude::*;
use raft::{ClusterState, ClusterStore, StoreConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The admin token of the fuzzed requests, `<id>.<secret>`.
const TOKEN: &str = "fuzz.fuzz-api-token-secret";

/// One node's router and store, set up once for all cases.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    store: ClusterStore,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let (router, store) = runtime.block_on(start(dir.path()));
        Fixture {
            runtime,
            router,
            store,
            _dir: dir,
        }
    })
}

async fn start(dir: &std::path::Path) -> (Router, ClusterStore) {
    // Nothing listens there: a one-node cluster never sends to itself.
    let addr = "127.0.0.1:9";
    let now = std::time::SystemTime::now();
    let ca = raft::tls::pki::new_ca("fuzz", now).expect("CA");
    let node = raft::tls::pki::issue_node(&ca, 1, "node1", now).expect("node certificate");
    let tls_files = TlsFiles::in_dir(&dir.join("tls"));
    tls_files.write_ca(&ca).expect("CA files");
    tls_files
        .write_node(&node.cert_pem, &node.key_pem)
        .expect("node files");
    let tls = tls_files.load().expect("TLS material");
    let store = ClusterStore::start(StoreConfig::new(1, dir.join("raft"), addr, tls).fast())
        .await
        .expect("store starts");
    store.initialize(addr).await.expect("initialize");
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.leader_term_ready().is_none() {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "node1".to_string(),
        NodeEntry {
            id: 1,
            addr: addr.to_string(),
            certs: Vec::new(),
        },
    );
    docs::put_nodes(&store, &NodeDirectory { next_id: 2, nodes }, 0)
        .await
        .expect("node directory");
    let (id, secret) = TOKEN.split_once('.').expect("token form");
    let mut table = TokenTable::default();
    table.tokens.insert(
        id.to_string(),
        StoredToken {
            role: Role::Admin,
            sha256: Sha256::digest(secret.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            created: 0,
            comment: String::new(),
        },
    );
    docs::put_raw_text(
        &store,
        TOKENS_DOC,
        serde_json::to_string(&table).expect("token table"),
        0,
    )
    .await
    .expect("token table");
    let state = ApiState {
        store: store.clone(),
        node: "node1".parse().expect("node name"),
        creds: Arc::new(Credentials {
            version: CREDENTIALS_VERSION,
            node_id: 1,
            bootstrap_pending: false,
            initial_join_token: None,
            join_via: None,
        }),
        tls_files,
        failovers: Arc::new(AtomicU64::new(0)),
        left: Arc::new(tokio::sync::Notify::new()),
    };
    let router = api::router(state);
    // Something to find, change and remove.
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/resources",
            json!({"sid": "exec:a", "options": {"cmd": "sleep 1000"}}),
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"type": "node-affinity", "rule": "db-strict",
                   "options": {"resources": "exec:a", "nodes": "node1"}}),
        ),
    ] {
        let (status, body) = send(&router, method, path, Some(body.to_string().into_bytes())).await;
        assert!(status < 300, "seeding {path}: {status} {body}");
    }
    (router, store)
}

async fn send(router: &Router, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, String) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or_default()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn state(store: &ClusterStore) -> ClusterState {
    store.read_local(|s| s.clone()).value
}

/// Keys the API knows, so arbitrary objects often reach the handlers.
const KEYS: &[&str] = &[
    "sid",
    "options",
    "delete",
    "digest",
    "node",
    "command",
    "timeout",
    "group",
    "rule",
    "type",
    "resources",
    "groups",
    "rules",
    "nodes",
    "state",
    "max_restart",
    "max_relocate",
    "cmd",
    "node_id",
    "addr",
    "token",
    "comment",
    "strict",
    "purge",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("exec:a".to_string()),
        Just("db-strict".to_string()),
        Just("node1".to_string()),
        Just("stop".to_string()),
        Just("node-affinity".to_string()),
        Just("node-maintenance-enable".to_string()),
        "[a-z]{1,6}:[a-z0-9./#?%@_-]{0,12}",
        "[A-Za-z0-9_.-]{0,12}",
        any::<String>(),
        "x{200,400}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(18446744073709551615u64)),
        name().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![prop::sample::select(KEYS).prop_map(String::from), name()],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        json_value().prop_map(|v| Some(v.to_string().into_bytes())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        "\\{\"[a-z_]{1,10}\": ?[^}]{0,20}\\}".prop_map(|s| Some(s.into_bytes())),
    ]
}

/// Percent-encodes every byte that is not unreserved.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~:@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every route with its methods, plus templates no route matches.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/resources"),
    ("POST", "/api/v1/resources"),
    ("GET", "/api/v1/resources/{}"),
    ("PUT", "/api/v1/resources/{}"),
    ("DELETE", "/api/v1/resources/{}"),
    ("DELETE", "/api/v1/resources/{}?purge={}"),
    ("POST", "/api/v1/resources/{}/migrate"),
    ("POST", "/api/v1/resources/{}/relocate"),
    ("POST", "/api/v1/crm-command"),
    ("GET", "/api/v1/groups"),
    ("POST", "/api/v1/groups"),
    ("PUT", "/api/v1/groups/{}"),
    ("DELETE", "/api/v1/groups/{}"),
    ("GET", "/api/v1/rules"),
    ("GET", "/api/v1/rules?type={}&resource={}"),
    ("POST", "/api/v1/rules"),
    ("GET", "/api/v1/rules/{}"),
    ("PUT", "/api/v1/rules/{}"),
    ("DELETE", "/api/v1/rules/{}"),
    ("POST", "/api/v1/config/import"),
    ("GET", "/api/v1/cluster/status"),
    ("POST", "/api/v1/cluster/members"),
    ("POST", "/api/v1/cluster/join"),
    ("GET", "/api/v1/cluster/join-tokens"),
    ("POST", "/api/v1/cluster/join-tokens"),
    ("DELETE", "/api/v1/cluster/join-tokens/{}"),
    ("POST", "/api/v1/cluster/leave"),
    ("POST", "/api/v1/cluster/delnode"),
    ("POST", "/api/v1/cluster/set-address"),
    ("GET", "/api/v1/backup"),
    ("GET", "/api/v1/notify/targets"),
    ("POST", "/api/v1/notify/targets"),
    ("DELETE", "/api/v1/notify/targets/{}"),
    ("POST", "/api/v1/notify/test"),
    ("GET", "/api/v1/status/current"),
    ("GET", "/api/v1/status/manager_status"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/{}"),
    ("POST", "/api/v1/{}/{}"),
    ("GET", "/{}"),
];

/// A method and a path: mostly a route's own method, sometimes any.
fn request_line() -> impl Strategy<Value = (&'static str, String)> {
    let segment = prop_oneof![name().prop_map(|n| encode(&n)), "[a-z0-9:._%~-]{0,20}"];
    let method = prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]).prop_map(Some),
    ];
    (
        prop::sample::select(ROUTES),
        method,
        segment.clone(),
        segment,
    )
        .prop_map(|((own, template), method, a, b)| {
            let path = template.replacen("{}", &a, 1).replacen("{}", &b, 1);
            (method.unwrap_or(own), path)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_route_answers_2xx_or_a_4xx_naming_the_field(
        (method, path) in request_line(),
        body in body(),
    ) {
        let fx = fixture();
        prop_assume!(path.parse::<axum::http::Uri>().is_ok());
        let before = state(&fx.store);
        let (status, text) = fx.runtime.block_on(send(&fx.router, method, &path, body));
        prop_assert!(status < 500, "{method} {path}: {status} {text}");
        if status >= 400 {
            let error: ErrorBody = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{method} {path}: {status} not the error format ({e}): {text}")))?;
            prop_assert!(!error.error.is_empty());
            if status == 400 {
                prop_assert!(error.field.is_some(), "{method} {path}: 400 without a field: {text}");
                let field = error.field.clone().unwrap_or_default();
                prop_assert!(error.error.contains(&field) || field == "path" || field == "query",
                    "{method} {path}: message does not name '{field}': {text}");
            }
            prop_assert_eq!(state(&fx.store), before, "{} {}: {} changed the store", method, path, status);
        }
    }

    #[test]
    fn config_parsers_never_panic(text in any::<String>(), key in name(), value in name()) {
        use ha_manager::config::*;
        let _ = parse_resources_cfg(&text, "resources.cfg");
        let _ = parse_groups_cfg(&text, "groups.cfg");
        let _ = parse_rules_cfg(&text, "rules.cfg");
        let _ = parse_datacenter_cfg(&text, "datacenter.cfg");
        let _ = parse_datacenter_json(&text, "datacenter.json");
        let section = format!("exec: a\n\t{key} {value}\n\nnode-affinity: r1\n\t{key} {value}\n");
        let _ = parse_resources_cfg(&section, "resources.cfg");
        let _ = parse_rules_cfg(&section, "rules.cfg");
        let _ = parse_groups_cfg(&format!("group: g1\n\t{key} {value}\n"), "groups.cfg");
        let _ = parse_datacenter_cfg(&format!("{key}: {value}\n"), "datacenter.cfg");
    }
}
