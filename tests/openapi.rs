//! The OpenAPI document of the API: it parses and validates as OpenAPI
//! 3.1, the committed `docs/openapi.json` is the generated one, the CLI
//! requests only documented routes, and a real node serves every
//! documented GET route and the document itself.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use ha_manager::api::openapi::document_json;
use ha_manager::node_cli::client::routes;

/// How to bring `docs/openapi.json` up to date.
const UPDATE: &str = "cargo run --bin ha-manager -- openapi > docs/openapi.json";

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn generated() -> String {
    document_json().expect("the document serializes")
}

fn generated_value() -> Value {
    serde_json::from_str(&generated()).expect("the document is JSON")
}

/// Every operation: (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method.to_string(), op.clone()));
            }
        }
    }
    out
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    if let Some(target) = v.as_str() {
                        out.push((at.to_string(), target.to_string()));
                    }
                }
                refs(v, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The `{name}` segments of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_document_parses_and_validates_as_openapi_3_1() {
    let text = generated();
    let spec = oas3::from_json(&text).expect("oas3 parses the document");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1), "{version}");
    assert!(spec.operations().count() > 30, "too few operations");
    // Everything oas3 can resolve resolves.
    for (path, method, op) in spec.operations() {
        assert!(
            !op.responses(&spec).is_empty(),
            "{method} {path}: no responses"
        );
        for p in &op.parameters {
            p.resolve(&spec)
                .unwrap_or_else(|e| panic!("{method} {path}: parameter: {e}"));
        }
        if let Some(body) = &op.request_body {
            body.resolve(&spec)
                .unwrap_or_else(|e| panic!("{method} {path}: request body: {e}"));
        }
    }

    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let schemes: BTreeSet<String> = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes")
        .keys()
        .cloned()
        .collect();
    for name in ["bearer", "node_certificate", "join_token"] {
        assert!(schemes.contains(name), "security scheme {name} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["node_certificate"]["type"],
        "mutualTLS"
    );
    let tags: BTreeSet<String> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();

    let mut ids = BTreeMap::new();
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        // Unique operation ids (client generators name functions by them).
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no operationId"));
        if let Some(other) = ids.insert(id.to_string(), what.clone()) {
            panic!("operationId '{id}' of {what} is also that of {other}");
        }
        // Responses: at least one success and, for /api/v1, the JSON
        // error body.
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no 2xx response"
        );
        for (status, r) in responses {
            assert!(
                r["description"].is_string(),
                "{what} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{what} {status}: errors are ErrorBody"
                );
            }
        }
        // Every path template parameter is declared as a path parameter.
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, template_params(&path), "{what}: path parameters");
        // Security names exist; tags are declared.
        for req in op["security"].as_array().into_iter().flatten() {
            for name in req.as_object().expect("requirement").keys() {
                assert!(
                    schemes.contains(name),
                    "{what}: unknown security scheme {name}"
                );
            }
        }
        for tag in op["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("tag name");
            assert!(tags.contains(tag), "{what}: undeclared tag {tag}");
        }
    }

    // Every $ref points at something in the document.
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(!found.is_empty());
    for (at, target) in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: external $ref {target}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {target} points at nothing"
        );
    }
}

#[test]
fn the_security_of_each_route_is_documented() {
    let doc = generated_value();
    let default: Vec<Value> = doc["security"]
        .as_array()
        .expect("default security")
        .clone();
    let names: BTreeSet<&str> = default
        .iter()
        .flat_map(|r| {
            r.as_object()
                .expect("requirement")
                .keys()
                .map(String::as_str)
        })
        .collect();
    assert_eq!(names, BTreeSet::from(["bearer", "node_certificate"]));
    let join = &doc["paths"]["/api/v1/cluster/join"]["post"]["security"];
    assert_eq!(join, &serde_json::json!([{"join_token": []}]));
    let open = &doc["paths"]["/api/v1/openapi.json"]["get"]["security"];
    assert_eq!(
        open,
        &serde_json::json!([{}]),
        "the document needs no token"
    );
    assert!(
        doc["paths"]["/metrics"]["get"].is_object(),
        "/metrics is documented"
    );
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; write it with `{UPDATE}`"));
    assert!(
        committed == generated(),
        "docs/openapi.json is stale: the API changed. Update it with `{UPDATE}` and commit it"
    );
}

#[test]
fn the_cli_requests_only_documented_routes() {
    let doc = generated_value();
    assert!(routes::ALL.len() >= 40, "the route table looks truncated");
    for route in routes::ALL {
        let path = format!("/api/v1{}", route.template);
        let method = route.verb.as_str().to_lowercase();
        assert!(
            doc["paths"][&path][&method].is_object(),
            "the CLI requests {} {path}, which the OpenAPI document does not list",
            route.verb.as_str()
        );
    }
}

/// The dashboard's requests (`api('METHOD', path, ...)` in
/// `src/web/assets/app.js`): each names a documented route. A `${...}`
/// segment of a template literal stands for any one segment; a query
/// added with `+ q` or `?` is not part of the route.
#[test]
fn the_dashboard_requests_only_documented_routes() {
    let doc = generated_value();
    let js = include_str!("../src/web/assets/app.js");
    let documented: Vec<(String, Vec<String>)> = operations(&doc)
        .into_iter()
        .map(|(path, method, _)| {
            let segs = path
                .trim_start_matches("/api/v1")
                .split('/')
                .map(str::to_string)
                .collect();
            (method, segs)
        })
        .collect();
    let mut calls = 0;
    for (i, _) in js.match_indices("api('") {
        let rest = &js[i + 5..];
        let Some((method, rest)) = rest.split_once('\'') else {
            continue;
        };
        let rest = rest.trim_start_matches(',').trim_start();
        let quote = rest.chars().next().expect("a path argument");
        let Some(end) = rest[1..].find(quote) else {
            panic!("unterminated path after api('{method}'")
        };
        let path = &rest[1..=end];
        let path = path.split('?').next().unwrap_or(path);
        calls += 1;
        let wanted: Vec<&str> = path.split('/').collect();
        let found = documented.iter().any(|(m, segs)| {
            *m == method.to_lowercase()
                && segs.len() == wanted.len()
                && segs.iter().zip(&wanted).all(|(doc_seg, js_seg)| {
                    doc_seg == js_seg || (js_seg.starts_with("${") && js_seg.ends_with('}'))
                })
        });
        assert!(
            found,
            "the dashboard requests {method} /api/v1{path}, which the OpenAPI document does not list"
        );
    }
    assert!(calls >= 15, "only {calls} api() calls found in app.js");
}

#[test]
fn a_live_node_serves_every_documented_get_route_and_the_document() {
    let c = common::start(1);
    let http = c.https_client(0).expect("client");
    let admin = common::make_token(&c, "openapi", "admin");
    let doc = generated_value();

    // The served document is the generated one, without a token.
    let served = http
        .get(c.url(0, "/api/v1/openapi.json"))
        .send()
        .expect("answer");
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(
        served
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(served.text().expect("body"), generated());

    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        if method != "get" || path.contains('{') {
            continue;
        }
        let with_token = http
            .get(c.url(0, &path))
            .bearer_auth(&admin)
            .send()
            .expect("answer");
        let status = with_token.status().as_u16();
        assert!(
            with_token.status().is_success(),
            "GET {path} with an admin token: {status} {}",
            with_token.text().unwrap_or_default()
        );
        // What the document says about tokens holds: an operation with
        // the empty requirement answers without one, the others refuse.
        let open = op["security"] == serde_json::json!([{}]);
        let without = http.get(c.url(0, &path)).send().expect("answer");
        let expected = if open { 200 } else { 401 };
        assert_eq!(
            without.status().as_u16(),
            expected,
            "GET {path} without a token"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} GET routes checked");

    // A route that is not documented is not served either.
    let r = http
        .get(c.url(0, "/api/v1/no-such-route"))
        .bearer_auth(&admin)
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 404);
}
