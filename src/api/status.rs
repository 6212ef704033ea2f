//! `/api/v1/status/*` (spec 7.2/7.3) and `/metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use raft::DocKey;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::ApiResult;
use super::ApiState;
use crate::config::parse_resources_cfg;
use crate::crm::{ManagerStatus, ServiceState};
use crate::domain::{RequestedState, ResourceConfig};
use crate::lrm::status::{LrmState, LrmStatus};

/// One entry of `GET /status/current`; the CLI prints `<type> <status>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEntry {
    /// Entry id (`quorum`, `master`, `lrm:<node>`, `service:<sid>`).
    pub id: String,
    /// quorum, master, lrm or service.
    #[serde(rename = "type")]
    pub kind: String,
    /// Node the entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The status text.
    pub status: String,
    /// Quorum entries: whether the node is quorate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorate: Option<bool>,
    /// Service entries: the SID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Service entries: the CRM state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_state: Option<String>,
    /// Service entries: the requested state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_state: Option<String>,
}

impl StatusEntry {
    fn new(id: String, kind: &str, node: Option<String>, status: String) -> Self {
        StatusEntry {
            id,
            kind: kind.to_string(),
            node,
            status,
            quorate: None,
            sid: None,
            crm_state: None,
            request_state: None,
        }
    }
}

/// A consistent snapshot of what the status endpoints show.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The manager status.
    pub manager_status: ManagerStatus,
    /// LRM status per node.
    pub lrm_status: BTreeMap<String, LrmStatus>,
    /// Configured resources.
    #[serde(skip)]
    pub resources: Vec<ResourceConfig>,
    /// Cluster members by name.
    #[serde(skip)]
    pub nodes: Vec<String>,
}

/// Seconds since the epoch as Proxmox's status shows them (`localtime`
/// in ctime form), in UTC: `Sun Nov 22 22:10:36 2026`.
pub fn ctime_utc(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[usize::try_from((days + 4) % 7).unwrap_or(0)];
    let (year, month, day) = watchdog::civil::civil_from_days(days);
    format!(
        "{weekday} {} {day:2} {:02}:{:02}:{:02} {year}",
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the snapshot from the local replica.
pub fn snapshot(st: &ApiState) -> StatusSnapshot {
    let (ms, lrm) = st
        .store
        .read_local(|s| {
            let ms = s
                .doc(&DocKey::ManagerStatus)
                .and_then(|d| serde_json::from_str::<ManagerStatus>(&d.value).ok())
                .unwrap_or_default();
            let lrm: BTreeMap<String, LrmStatus> = s
                .lrm_statuses()
                .filter_map(|(n, d)| {
                    serde_json::from_str(&d.value)
                        .ok()
                        .map(|v| (n.to_string(), v))
                })
                .collect();
            (ms, lrm)
        })
        .value;
    let (text, _) = docs::read_local_raw(&st.store, docs::RESOURCES_DOC);
    let resources = parse_resources_cfg(&text, "resources.cfg").unwrap_or_default();
    let (text, _) = docs::read_local_raw(&st.store, docs::NODES_DOC);
    let nodes = docs::parse_nodes(&text)
        .unwrap_or_default()
        .nodes
        .into_keys()
        .collect();
    StatusSnapshot {
        manager_status: ms,
        lrm_status: lrm,
        resources,
        nodes,
    }
}

fn quorate(st: &ApiState) -> bool {
    let s = st.store.status();
    match s.leader {
        Some(l) if l == s.id => s.millis_since_quorum_ack.is_some_and(|ms| ms < 3000),
        Some(_) => true,
        None => false,
    }
}

/// The status lines of spec 7.2 as entries.
pub fn current(st: &ApiState) -> Vec<StatusEntry> {
    let snap = snapshot(st);
    let now = now_secs();
    let mut out = Vec::new();
    let q = quorate(st);
    let mut e = StatusEntry::new(
        "quorum".into(),
        "quorum",
        Some(st.node.to_string()),
        if q {
            "OK".into()
        } else {
            format!("No quorum on node '{}'!", st.node)
        },
    );
    e.quorate = Some(q);
    out.push(e);
    let ms = &snap.manager_status;
    if let Some(master) = &ms.master_node {
        let age = now.saturating_sub(ms.timestamp);
        let state = if ms.timestamp > now + 2 {
            "detected time drift!"
        } else if age <= 30 {
            "active"
        } else if q && snap.resources.is_empty() {
            "idle"
        } else {
            "old timestamp - dead?"
        };
        out.push(StatusEntry::new(
            "master".into(),
            "master",
            Some(master.to_string()),
            format!("{master} ({state}, {})", ctime_utc(ms.timestamp)),
        ));
    }
    let mut nodes: Vec<String> = snap.nodes.clone();
    for n in ms.node_status.keys() {
        if !nodes.contains(&n.to_string()) {
            nodes.push(n.to_string());
        }
    }
    nodes.sort();
    for node in &nodes {
        let text = match snap.lrm_status.get(node) {
            None => format!("{node} (unable to read lrm status)"),
            Some(l) => {
                let fresh = now.saturating_sub(l.timestamp) <= 30;
                let state = l.state.map_or("unknown", |s| s.as_str());
                let mode = l.mode_or_active().as_str();
                let s = if let Some(problem) = &l.watchdog_problem {
                    // Not dead: alive but unprotected, so it runs nothing.
                    format!("watchdog cannot protect this node: {problem}; no services")
                } else if !fresh {
                    "old timestamp - dead?".to_string()
                } else if mode != "active" {
                    format!("{mode} mode")
                } else if l.state == Some(LrmState::WaitForAgentLock) {
                    "idle".to_string()
                } else {
                    state.to_string()
                };
                let wd = if l.watchdog_problem.is_some() {
                    "watchdog failed"
                } else if fresh && matches!(l.state, Some(LrmState::Active)) {
                    "watchdog active"
                } else {
                    "watchdog standby"
                };
                format!("{node} ({s}, {wd}, {})", ctime_utc(l.timestamp))
            }
        };
        out.push(StatusEntry::new(
            format!("lrm:{node}"),
            "lrm",
            Some(node.clone()),
            text,
        ));
    }
    let configured: BTreeMap<String, &ResourceConfig> = snap
        .resources
        .iter()
        .map(|r| (r.sid.to_string(), r))
        .collect();
    for (sid, rec) in &ms.service_status {
        let req = configured.get(sid.as_str()).map(|r| r.state);
        let display = match (req, rec.state) {
            (None, _) => "deleting".to_string(),
            (Some(RequestedState::Ignored), _) => "ignored".to_string(),
            (Some(RequestedState::Started), ServiceState::Stopped) => "starting".into(),
            (Some(RequestedState::Disabled), ServiceState::Stopped) => "disabled".into(),
            (Some(_), ServiceState::Started) if !rec.running => "starting".into(),
            (Some(RequestedState::Stopped | RequestedState::Disabled), ServiceState::Started) => {
                "stopping".into()
            }
            (Some(RequestedState::Disabled), ServiceState::Error) => "clearing error flag".into(),
            (_, s) => s.as_str().to_string(),
        };
        let mut e = StatusEntry::new(
            format!("service:{sid}"),
            "service",
            Some(rec.node.to_string()),
            format!("{sid} ({}, {display})", rec.node),
        );
        e.sid = Some(sid.to_string());
        e.crm_state = Some(rec.state.as_str().to_string());
        e.request_state = req.map(|r| r.as_str().to_string());
        out.push(e);
    }
    for (sid, r) in &configured {
        if ms.service_status.keys().any(|s| s.as_str() == sid) {
            continue;
        }
        let mut e = StatusEntry::new(
            format!("service:{sid}"),
            "service",
            None,
            format!("{sid} (none, queued)"),
        );
        e.sid = Some(sid.clone());
        e.request_state = Some(r.state.as_str().to_string());
        out.push(e);
    }
    out
}

/// `GET /status/current`.
pub async fn status_current(State(st): State<ApiState>) -> Json<Vec<StatusEntry>> {
    Json(current(&st))
}

/// `GET /status/manager_status`.
pub async fn manager_status(State(st): State<ApiState>) -> ApiResult<Json<StatusSnapshot>> {
    Ok(Json(snapshot(&st)))
}

/// `GET /metrics` (Prometheus text exposition format).
pub async fn metrics(State(st): State<ApiState>) -> impl IntoResponse {
    let s = st.store.status();
    let snap = snapshot(&st);
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# HELP ha_raft_is_leader 1 if this node is the Raft leader."
    );
    let _ = writeln!(m, "# TYPE ha_raft_is_leader gauge");
    let _ = writeln!(m, "ha_raft_is_leader {}", u8::from(st.store.is_leader()));
    let _ = writeln!(m, "# HELP ha_raft_term Current Raft term.");
    let _ = writeln!(m, "# TYPE ha_raft_term gauge");
    let _ = writeln!(m, "ha_raft_term {}", s.term);
    let _ = writeln!(
        m,
        "# HELP ha_raft_leader_id Raft id of the known leader (0 = none)."
    );
    let _ = writeln!(m, "# TYPE ha_raft_leader_id gauge");
    let _ = writeln!(m, "ha_raft_leader_id {}", s.leader.unwrap_or(0));
    let _ = writeln!(m, "# HELP ha_raft_applied_index Last applied log index.");
    let _ = writeln!(m, "# TYPE ha_raft_applied_index gauge");
    let _ = writeln!(m, "ha_raft_applied_index {}", s.applied_index.unwrap_or(0));
    let _ = writeln!(m, "# HELP ha_services Services per CRM state.");
    let _ = writeln!(m, "# TYPE ha_services gauge");
    let mut per_state: BTreeMap<&str, u64> = BTreeMap::new();
    for rec in snap.manager_status.service_status.values() {
        *per_state.entry(rec.state.as_str()).or_default() += 1;
    }
    for (state, n) in per_state {
        let _ = writeln!(m, "ha_services{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(m, "# HELP ha_lease_time_left_seconds Time left on a lease, judged by this node (meaningful on the leader).");
    let _ = writeln!(m, "# TYPE ha_lease_time_left_seconds gauge");
    let leases: Vec<String> = st
        .store
        .read_local(|s| s.leases().map(|(n, _)| n.to_string()).collect())
        .value;
    for name in leases {
        if let Some(left) = st.store.lease_time_left(&name) {
            let _ = writeln!(
                m,
                "ha_lease_time_left_seconds{{lease=\"{name}\"}} {:.3}",
                left.as_secs_f64()
            );
        }
    }
    let _ = writeln!(
        m,
        "# HELP ha_failovers_total Services this node's CRM recovered after fencing."
    );
    let _ = writeln!(m, "# TYPE ha_failovers_total counter");
    let _ = writeln!(
        m,
        "ha_failovers_total {}",
        st.failovers.load(std::sync::atomic::Ordering::Relaxed)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m)
}

#[cfg(test)]
mod tests {
    use super::ctime_utc;

    #[test]
    fn ctime_matches_known_dates() {
        assert_eq!(ctime_utc(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime_utc(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime_utc(1_795_385_391), "Sun Nov 22 22:09:51 2026");
    }
}
