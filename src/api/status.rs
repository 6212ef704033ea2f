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
use super::error::{ApiResult, ReadErrors};
use super::ApiState;
use crate::config::parse_resources_cfg;
use crate::crm::status_view::{self, LeaseView, StatusInput};
use crate::crm::{agent_lease_name, AgentLease, ManagerStatus};
use crate::domain::{NodeName, ResourceConfig};
use crate::lrm::status::LrmStatus;
use lease::LeaseRecord;

pub use crate::crm::status_view::StatusEntry;

/// A consistent snapshot of what the status endpoints show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Each member's agent lease as this node's replica sees it.
fn lease_views(st: &ApiState, nodes: &[String]) -> BTreeMap<String, LeaseView> {
    let records: BTreeMap<String, LeaseRecord> = st
        .store
        .read_local(|s| {
            s.leases()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect()
        })
        .value;
    nodes
        .iter()
        .filter_map(|node| {
            let name: NodeName = node.parse().ok()?;
            let lease_name = agent_lease_name(node);
            let time_left = st.store.lease_time_left(&lease_name);
            let expired = time_left.is_some_and(|t| t.is_zero());
            let lease = AgentLease::of(&name, records.get(&lease_name), expired);
            let time_left_ms = time_left.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            Some((
                node.clone(),
                LeaseView {
                    lease,
                    time_left_ms,
                },
            ))
        })
        .collect()
}

/// The status lines of spec 7.2 as entries (`crm::status_view`).
pub fn current(st: &ApiState) -> Vec<StatusEntry> {
    let snap = snapshot(st);
    let mut nodes = snap.nodes.clone();
    for n in snap.manager_status.node_status.keys() {
        if !nodes.iter().any(|m| m == n.as_str()) {
            nodes.push(n.to_string());
        }
    }
    let leases = lease_views(st, &nodes);
    let input = StatusInput {
        local_node: st.node.as_str(),
        quorate: quorate(st),
        now: now_secs(),
        manager_status: &snap.manager_status,
        lrm_status: &snap.lrm_status,
        resources: &snap.resources,
        members: &snap.nodes,
        leases: &leases,
    };
    status_view::build(&input, &ctime_utc)
}

/// `GET /status/current`.
#[utoipa::path(
    get,
    path = "/status/current",
    tag = "status",
    responses(
        (status = 200, description = "The status lines `ha-manager status` shows", body = Vec<StatusEntry>),
        ReadErrors
    )
)]
pub async fn status_current(State(st): State<ApiState>) -> Json<Vec<StatusEntry>> {
    Json(current(&st))
}

/// `GET /status/manager_status`.
#[utoipa::path(
    get,
    path = "/status/manager_status",
    tag = "status",
    responses(
        (status = 200, description = "The manager status and every LRM status from this node's replica", body = StatusSnapshot),
        ReadErrors
    )
)]
pub async fn manager_status(State(st): State<ApiState>) -> ApiResult<Json<StatusSnapshot>> {
    Ok(Json(snapshot(&st)))
}

/// `GET /metrics` (Prometheus text exposition format).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String),
        ReadErrors
    )
)]
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
    let _ = writeln!(
        m,
        "# HELP ha_node_usage_reports_total Usage reports (CPU and memory for the static/dynamic schedulers) this node wrote."
    );
    let _ = writeln!(m, "# TYPE ha_node_usage_reports_total counter");
    let _ = writeln!(
        m,
        "ha_node_usage_reports_total {}",
        crate::daemon::usage_task::REPORTS_WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
    );
    {
        use crate::daemon::notify_task::{DELIVERED, FAILED_ATTEMPTS, LOST, REJECTED};
        for (name, help, counter) in [
            (
                "ha_notify_delivered_total",
                "Notifications this node delivered.",
                &DELIVERED,
            ),
            (
                "ha_notify_failed_attempts_total",
                "Notification attempts of this node that failed (retried later).",
                &FAILED_ATTEMPTS,
            ),
            (
                "ha_notify_rejected_total",
                "Notifications a receiver refused for good (4xx), skipped.",
                &REJECTED,
            ),
            (
                "ha_notify_lost_total",
                "History events dropped (history cap) before a target got them.",
                &LOST,
            ),
        ] {
            let _ = writeln!(m, "# HELP {name} {help}");
            let _ = writeln!(m, "# TYPE {name} counter");
            let _ = writeln!(
                m,
                "{name} {}",
                counter.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
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
