//! `/api/v1/cluster/ca/*`: rotating the cluster CA on a running cluster.
//!
//! The replicated document [`CA_DOC`] holds the CA set: the `current` CA
//! and, during a rotation, the `next` one (certificate and key each: every
//! member holds the CA key anyway, it signs joins), and per member what
//! its daemon last reported (the CAs it trusts, its certificate and the
//! CA that signed it). The keys of the CAs stay in the document; on disk a
//! node has `ca.crt` (the CAs it trusts, current first) and `ca.key` (the
//! current CA's key, which signs joins and `renew-cert`).
//!
//! A rotation, driven by each daemon's CA task ([`crate::daemon::ca_task`])
//! from its local replica:
//!
//! 1. `rotate` stores a new CA as `next`.
//! 2. Every daemon trusts both (`ca.crt` = [current, next], material
//!    replaced) and reports it.
//! 3. Once every member of the node directory reports trusting `next`,
//!    each daemon gives itself a certificate signed by `next` (listed in
//!    the directory first, used after a grace period) and reports it. No
//!    node ever presents a certificate of a CA a member does not trust.
//! 4. `finish`, allowed once every member's listed certificate is from
//!    `next`, makes `next` the current CA; every daemon then trusts only
//!    it (`ca.crt` = [next], `ca.key` = its key), and certificates of the
//!    old CA are refused. Join tokens pin the CA: those made before
//!    `finish` no longer work.
//!
//! Every step is idempotent, and a restarted daemon converges from its
//! files and the document.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use raft::tls::pki::CaMaterial;
use serde::{Deserialize, Serialize};

use super::docs::{self, NodeDirectory};
use super::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use super::ApiState;

/// Document name of the CA set ([`docs::CA_DOC`]). Not part of `backup`
/// (it holds keys, and a restored cluster has its own CA).
pub const CA_DOC: &str = docs::CA_DOC;

/// A CA certificate and its key, as the document stores them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for StoredCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCa")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl StoredCa {
    /// Hex SHA-256 of the certificate ("" if it does not parse).
    pub fn fingerprint(&self) -> String {
        pem_fingerprint(&self.cert_pem).unwrap_or_default()
    }

    /// As the pki module takes it.
    pub fn material(&self) -> CaMaterial {
        CaMaterial {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// What a member's daemon last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaReport {
    /// SHA-256 of the CAs it trusts, current first.
    pub trusts: Vec<String>,
    /// SHA-256 of the certificate it presents.
    pub cert: String,
    /// SHA-256 of the CA that signed that certificate.
    pub cert_ca: String,
}

/// The CA set ([`CA_DOC`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCa {
    /// The CA whose certificates everyone accepts.
    pub current: StoredCa,
    /// During a rotation, the CA that replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<StoredCa>,
    /// Reports by node name.
    #[serde(default)]
    pub members: BTreeMap<String, CaReport>,
}

/// Where a rotation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", tag = "phase", content = "waiting_for")]
pub enum CaPhase {
    /// No rotation.
    Stable,
    /// Members still have to trust the next CA (these ones).
    Distributing(Vec<String>),
    /// Members still present a certificate of the old CA (these ones).
    Renewing(Vec<String>),
    /// Every member presents a certificate of the next CA: `finish` may
    /// run.
    Ready,
}

/// Hex SHA-256 of the first certificate of a PEM text.
pub fn pem_fingerprint(pem: &str) -> Option<String> {
    raft::tls::config::certs_from_pem("certificate", pem)
        .ok()
        .and_then(|c| c.first().map(|c| raft::tls::fingerprint(c)))
}

/// The members (directory names) that do not report trusting `next_fp`.
fn not_trusting(ca: &ClusterCa, dir: &NodeDirectory, next_fp: &str) -> Vec<String> {
    dir.nodes
        .keys()
        .filter(|n| {
            !ca.members
                .get(*n)
                .is_some_and(|r| r.trusts.iter().any(|t| t == next_fp))
        })
        .cloned()
        .collect()
}

/// The members whose listed current certificate is not reported as one
/// of `ca_fp`.
fn not_presenting(ca: &ClusterCa, dir: &NodeDirectory, ca_fp: &str) -> Vec<String> {
    dir.nodes
        .iter()
        .filter(|(n, e)| {
            !ca.members
                .get(*n)
                .is_some_and(|r| r.cert_ca == ca_fp && e.certs.last().is_some_and(|c| *c == r.cert))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// The phase of a rotation, from the document and the node directory.
pub fn phase(ca: &ClusterCa, dir: &NodeDirectory) -> CaPhase {
    let Some(next) = &ca.next else {
        return CaPhase::Stable;
    };
    let next_fp = next.fingerprint();
    let waiting = not_trusting(ca, dir, &next_fp);
    if !waiting.is_empty() {
        return CaPhase::Distributing(waiting);
    }
    let waiting = not_presenting(ca, dir, &next_fp);
    if !waiting.is_empty() {
        return CaPhase::Renewing(waiting);
    }
    CaPhase::Ready
}

/// The document after `finish`, or why not yet (naming the members).
pub fn finished(ca: &ClusterCa, dir: &NodeDirectory) -> Result<Option<ClusterCa>, String> {
    let Some(next) = &ca.next else {
        return Ok(None);
    };
    match phase(ca, dir) {
        CaPhase::Ready => Ok(Some(ClusterCa {
            current: next.clone(),
            next: None,
            members: ca.members.clone(),
        })),
        CaPhase::Distributing(nodes) | CaPhase::Renewing(nodes) => Err(format!(
            "not every member presents a certificate of the next CA yet: waiting for {} \
             (see `ha-manager cluster ca status`; their daemons must be running)",
            nodes.join(", ")
        )),
        CaPhase::Stable => Ok(None),
    }
}

/// What a daemon sees of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCa {
    /// This node's name.
    pub node: String,
    /// The CAs it trusts (SHA-256, in `ca.crt` order).
    pub trusts: Vec<String>,
    /// Its certificate.
    pub cert: String,
    /// The CA that signed it.
    pub cert_ca: String,
}

/// The next thing a daemon's CA task does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaStep {
    /// Nothing: consistent with the document.
    Idle,
    /// Trust exactly these CAs (current first) with this CA key beside
    /// them: write `ca.crt`/`ca.key`, replace the material.
    Trust {
        /// The CAs, in order.
        cas: Vec<StoredCa>,
    },
    /// Get a certificate signed by this CA.
    Renew(StoredCa),
    /// Write this report of ours into the document.
    Report(CaReport),
    /// The document asks for something impossible here (our certificate
    /// is of a CA it no longer lists): the node needs a new certificate
    /// by hand (`cluster delnode` + join).
    Stuck(String),
}

/// The CAs a node trusts for the document: [current, next] during a
/// rotation, [current] otherwise.
pub fn wanted_trust(ca: &ClusterCa) -> Vec<StoredCa> {
    let mut cas = vec![ca.current.clone()];
    cas.extend(ca.next.clone());
    cas
}

/// What a daemon does next, in order: trust what the document says, tell
/// the others, and during a rotation (once every member trusts the next
/// CA) present a certificate of the next CA.
pub fn next_step(ca: &ClusterCa, dir: &NodeDirectory, me: &LocalCa) -> CaStep {
    let wanted = wanted_trust(ca);
    let wanted_fps: Vec<String> = wanted.iter().map(StoredCa::fingerprint).collect();
    if me.trusts != wanted_fps {
        if !wanted_fps.contains(&me.cert_ca) {
            return CaStep::Stuck(format!(
                "this node's certificate is signed by CA {} which the cluster no longer \
                 trusts: remove the node (`cluster delnode`) and join it again",
                me.cert_ca
            ));
        }
        return CaStep::Trust { cas: wanted };
    }
    let report = CaReport {
        trusts: me.trusts.clone(),
        cert: me.cert.clone(),
        cert_ca: me.cert_ca.clone(),
    };
    if ca.members.get(&me.node) != Some(&report) {
        return CaStep::Report(report);
    }
    if let Some(next) = &ca.next {
        let next_fp = next.fingerprint();
        if me.cert_ca != next_fp && not_trusting(ca, dir, &next_fp).is_empty() {
            return CaStep::Renew(next.clone());
        }
    }
    CaStep::Idle
}

/// One member in `GET /cluster/ca`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaMemberView {
    /// Node name.
    pub node: String,
    /// SHA-256 of the CA that signed its certificate ("" = not reported).
    pub cert_ca: String,
    /// SHA-256 of the CAs it trusts.
    pub trusts: Vec<String>,
}

/// `GET /cluster/ca`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaStatus {
    /// Where the rotation stands.
    #[serde(flatten)]
    pub phase: CaPhase,
    /// SHA-256 of the current CA.
    pub current: String,
    /// SHA-256 of the next CA, during a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The members of the node directory.
    pub members: Vec<CaMemberView>,
}

/// The status view of the document (no keys).
pub fn status_of(ca: &ClusterCa, dir: &NodeDirectory) -> CaStatus {
    CaStatus {
        phase: phase(ca, dir),
        current: ca.current.fingerprint(),
        next: ca.next.as_ref().map(StoredCa::fingerprint),
        members: dir
            .nodes
            .keys()
            .map(|n| {
                let r = ca.members.get(n).cloned().unwrap_or_default();
                CaMemberView {
                    node: n.clone(),
                    cert_ca: r.cert_ca,
                    trusts: r.trusts,
                }
            })
            .collect(),
    }
}

/// Parses the document ("" = no document).
pub fn parse(text: &str) -> Result<Option<ClusterCa>, serde_json::Error> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some)
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("stored document '{CA_DOC}' is invalid: {e}"),
    )
}

/// The next CA's SHA-256 if the local replica's document says a rotation
/// is in progress.
pub fn rotation_in_progress(store: &raft::ClusterStore) -> Option<String> {
    let (text, _) = docs::read_local_raw(store, CA_DOC);
    parse(&text)
        .ok()
        .flatten()
        .and_then(|ca| ca.next.as_ref().map(StoredCa::fingerprint))
}

/// Reads the document (linearizable) and its version.
pub async fn read(st: &ApiState) -> ApiResult<(Option<ClusterCa>, u64)> {
    let (text, version) = docs::read_raw_text(&st.store, CA_DOC).await?;
    Ok((parse(&text).map_err(corrupt)?, version))
}

/// Writes the document with CAS on `version`.
pub async fn write(st: &ApiState, ca: &ClusterCa, version: u64) -> ApiResult<u64> {
    let text = serde_json::to_string(ca).map_err(corrupt)?;
    docs::put_raw_text(&st.store, CA_DOC, text, version).await
}

/// The document, or the one a cluster that never rotated has implicitly:
/// the CA of this node's files.
async fn read_or_initial(st: &ApiState) -> ApiResult<(ClusterCa, u64)> {
    if let (Some(ca), version) = read(st).await? {
        return Ok((ca, version));
    }
    let files = st.tls_files.load_ca().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading this node's CA: {e}"),
        )
    })?;
    let cert_pem = first_pem_block(&files.cert_pem);
    if pem_fingerprint(&cert_pem).is_none() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this node's ca.crt holds no certificate",
        ));
    }
    Ok((
        ClusterCa {
            current: StoredCa {
                cert_pem,
                key_pem: files.key_pem,
            },
            next: None,
            members: BTreeMap::new(),
        },
        0,
    ))
}

/// The first PEM block of a text (the current CA of a `ca.crt` bundle).
pub fn first_pem_block(text: &str) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    match text.find(END) {
        Some(at) => format!("{}\n", &text[..at + END.len()].trim_start()),
        None => text.to_string(),
    }
}

/// Answer of `POST /cluster/ca/rotate` and `/cluster/ca/finish`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaChange {
    /// What the cluster is at now.
    pub status: CaStatus,
    /// True if nothing had to change (a repeated command).
    pub already: bool,
}

/// `POST /cluster/ca/rotate`: stores a new CA as the next one; the
/// daemons take it from there. A rotation in progress is left as it is.
#[utoipa::path(
    post,
    path = "/cluster/ca/rotate",
    tag = "ca",
    responses(
        (status = 200, description = "A new CA is the next one (or a rotation was already under way)", body = CaChange),
        WriteErrors
    )
)]
pub async fn rotate(State(st): State<ApiState>) -> ApiResult<Json<CaChange>> {
    let (mut ca, version) = read_or_initial(&st).await?;
    let dir = docs::nodes(&st.store).await?.value;
    if ca.next.is_some() {
        return Ok(Json(CaChange {
            status: status_of(&ca, &dir),
            already: true,
        }));
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let new = raft::tls::pki::new_ca(&format!("rotated-{secs}"), now).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("making the new CA: {e}"),
        )
    })?;
    ca.next = Some(StoredCa {
        cert_pem: new.cert_pem,
        key_pem: new.key_pem,
    });
    write(&st, &ca, version).await?;
    tracing::info!(target: "audit", next = %ca.next.as_ref().map(StoredCa::fingerprint).unwrap_or_default(), "CA rotation started");
    Ok(Json(CaChange {
        status: status_of(&ca, &dir),
        already: false,
    }))
}

/// `POST /cluster/ca/finish`: makes the next CA the current one, once
/// every member presents a certificate of it (409 naming the others).
#[utoipa::path(
    post,
    path = "/cluster/ca/finish",
    tag = "ca",
    responses(
        (status = 200, description = "The next CA is the current one (or no rotation was under way)", body = CaChange),
        WriteErrors
    )
)]
pub async fn finish(State(st): State<ApiState>) -> ApiResult<Json<CaChange>> {
    let (ca, version) = read_or_initial(&st).await?;
    let dir = docs::nodes(&st.store).await?.value;
    match finished(&ca, &dir).map_err(|e| ApiError::new(StatusCode::CONFLICT, e))? {
        None => Ok(Json(CaChange {
            status: status_of(&ca, &dir),
            already: true,
        })),
        Some(done) => {
            write(&st, &done, version).await?;
            tracing::info!(target: "audit", current = %done.current.fingerprint(), "CA rotation finished");
            Ok(Json(CaChange {
                status: status_of(&done, &dir),
                already: false,
            }))
        }
    }
}

/// `GET /cluster/ca`: the phase, and per member which CA signed its
/// certificate and which CAs it trusts.
#[utoipa::path(
    get,
    path = "/cluster/ca",
    tag = "ca",
    operation_id = "ca_status",
    responses(
        (status = 200, description = "Where a CA rotation stands, per member", body = CaStatus),
        ReadErrors
    )
)]
pub async fn status(State(st): State<ApiState>) -> ApiResult<Json<CaStatus>> {
    let (ca, _) = read_or_initial(&st).await?;
    let dir = docs::nodes(&st.store).await?.value;
    Ok(Json(status_of(&ca, &dir)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::docs::NodeEntry;

    fn new_ca(name: &str) -> StoredCa {
        let m = raft::tls::pki::new_ca(name, SystemTime::now()).unwrap();
        StoredCa {
            cert_pem: m.cert_pem,
            key_pem: m.key_pem,
        }
    }

    fn dir(nodes: &[(&str, &str)]) -> NodeDirectory {
        let mut d = NodeDirectory::default();
        for (i, (n, cert)) in nodes.iter().enumerate() {
            d.nodes.insert(
                n.to_string(),
                NodeEntry {
                    id: i as u64 + 1,
                    addr: "a:1".into(),
                    certs: vec!["older".into(), cert.to_string()],
                },
            );
        }
        d
    }

    fn report(trusts: &[&StoredCa], cert: &str, cert_ca: &StoredCa) -> CaReport {
        CaReport {
            trusts: trusts.iter().map(|c| c.fingerprint()).collect(),
            cert: cert.into(),
            cert_ca: cert_ca.fingerprint(),
        }
    }

    fn me(node: &str, trusts: &[&StoredCa], cert: &str, cert_ca: &StoredCa) -> LocalCa {
        let r = report(trusts, cert, cert_ca);
        LocalCa {
            node: node.into(),
            trusts: r.trusts,
            cert: r.cert,
            cert_ca: r.cert_ca,
        }
    }

    #[test]
    fn a_rotation_goes_through_its_phases_and_finishes_only_when_all_are_on_the_next_ca() {
        let old = new_ca("old");
        let next = new_ca("next");
        let d = dir(&[("node1", "c1"), ("node2", "c2")]);
        let mut ca = ClusterCa {
            current: old.clone(),
            next: None,
            members: BTreeMap::new(),
        };
        assert_eq!(phase(&ca, &d), CaPhase::Stable);
        assert_eq!(finished(&ca, &d), Ok(None), "nothing to finish");
        ca.next = Some(next.clone());
        assert_eq!(
            phase(&ca, &d),
            CaPhase::Distributing(vec!["node1".into(), "node2".into()])
        );
        ca.members
            .insert("node1".into(), report(&[&old, &next], "c1", &old));
        assert_eq!(phase(&ca, &d), CaPhase::Distributing(vec!["node2".into()]));
        ca.members
            .insert("node2".into(), report(&[&old, &next], "c2", &old));
        assert_eq!(
            phase(&ca, &d),
            CaPhase::Renewing(vec!["node1".into(), "node2".into()])
        );
        let refused = finished(&ca, &d).unwrap_err();
        assert!(refused.contains("node1, node2"), "{refused}");
        ca.members
            .insert("node1".into(), report(&[&old, &next], "c1", &next));
        // A report of a certificate the directory does not list as the
        // newest does not count.
        ca.members
            .insert("node2".into(), report(&[&old, &next], "other", &next));
        assert_eq!(phase(&ca, &d), CaPhase::Renewing(vec!["node2".into()]));
        ca.members
            .insert("node2".into(), report(&[&old, &next], "c2", &next));
        assert_eq!(phase(&ca, &d), CaPhase::Ready);
        let done = finished(&ca, &d).unwrap().unwrap();
        assert_eq!(done.current, next);
        assert_eq!(done.next, None);
        assert_eq!(phase(&done, &d), CaPhase::Stable);
        // A member that joined and has not reported holds everything up.
        let d3 = dir(&[("node1", "c1"), ("node2", "c2"), ("node3", "c3")]);
        assert_eq!(phase(&ca, &d3), CaPhase::Distributing(vec!["node3".into()]));
    }

    #[test]
    fn a_daemon_trusts_reports_waits_for_all_then_renews_and_at_the_end_trusts_only_the_new_ca() {
        let old = new_ca("old");
        let next = new_ca("next");
        let d = dir(&[("node1", "c1"), ("node2", "c2")]);
        let mut ca = ClusterCa {
            current: old.clone(),
            next: Some(next.clone()),
            members: BTreeMap::new(),
        };
        // Trust both, current first.
        let local = me("node1", &[&old], "c1", &old);
        assert_eq!(
            next_step(&ca, &d, &local),
            CaStep::Trust {
                cas: vec![old.clone(), next.clone()]
            }
        );
        // Then say so.
        let local = me("node1", &[&old, &next], "c1", &old);
        let CaStep::Report(r) = next_step(&ca, &d, &local) else {
            panic!("a report expected");
        };
        ca.members.insert("node1".into(), r);
        // node2 does not trust the next CA yet: no renewal.
        assert_eq!(next_step(&ca, &d, &local), CaStep::Idle);
        ca.members
            .insert("node2".into(), report(&[&old, &next], "c2", &old));
        assert_eq!(next_step(&ca, &d, &local), CaStep::Renew(next.clone()));
        // Renewed: report the new certificate, then nothing.
        let local = me("node1", &[&old, &next], "n1", &next);
        let CaStep::Report(r) = next_step(&ca, &d, &local) else {
            panic!("a report expected");
        };
        ca.members.insert("node1".into(), r);
        assert_eq!(next_step(&ca, &d, &local), CaStep::Idle);
        // After finish: the new CA only.
        ca.current = next.clone();
        ca.next = None;
        assert_eq!(
            next_step(&ca, &d, &local),
            CaStep::Trust {
                cas: vec![next.clone()]
            }
        );
        // A node still on the old CA cannot follow (finish would not have
        // let it happen; a node restored from an old disk could).
        let stale = me("node2", &[&old, &next], "c2", &old);
        assert!(matches!(next_step(&ca, &d, &stale), CaStep::Stuck(_)));
    }

    #[test]
    fn the_document_and_the_bundle_parse() {
        assert_eq!(parse("").unwrap(), None);
        assert!(parse("{").is_err());
        let a = new_ca("a");
        let b = new_ca("b");
        let both = format!("{}{}", a.cert_pem, b.cert_pem);
        assert_eq!(
            pem_fingerprint(&first_pem_block(&both)),
            Some(a.fingerprint())
        );
        let ca = ClusterCa {
            current: a,
            next: Some(b),
            members: BTreeMap::new(),
        };
        let text = serde_json::to_string(&ca).unwrap();
        assert_eq!(parse(&text).unwrap(), Some(ca.clone()));
        // The status shows no key.
        let status = serde_json::to_string(&status_of(&ca, &NodeDirectory::default())).unwrap();
        assert!(!status.contains("PRIVATE KEY"), "{status}");
        assert!(status.contains("\"phase\":\"ready\""), "{status}");
        let back: CaStatus = serde_json::from_str(&status).unwrap();
        assert_eq!(back.phase, CaPhase::Ready);
        let d = dir(&[("node1", "c1")]);
        let text = serde_json::to_string(&status_of(&ca, &d)).unwrap();
        let back: CaStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.phase,
            CaPhase::Distributing(vec!["node1".into()]),
            "{text}"
        );
    }
}
