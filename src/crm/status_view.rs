//! What `ha-manager status` shows (spec 7.2), built from a snapshot of the
//! cluster store without IO, so the same entries feed the API's JSON and
//! the CLI's text and the rules can be tested on fixed input.
//!
//! Truthfulness over the plain Proxmox lines: the CRM's view of a node
//! wins over its last LRM report (a fenced node does not stay `active,
//! watchdog active`), the watchdog state comes from the node's agent lease
//! (the daemon arms the watchdog exactly while the node holds a valid
//! lease), a node without quorum does not call the master active, and a
//! service is marked when its node is not known to be up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fencing::AgentLease;
use super::status::{ManagerStatus, NodeState, ServiceState};
use crate::domain::{RequestedState, ResourceConfig};
use crate::lrm::status::{LrmState, LrmStatus};

/// Seconds after which a master or LRM timestamp counts as old (spec 7.2).
pub const FRESH_SECS: u64 = 30;

/// One entry of `GET /status/current`; the CLI prints `<type> <status>`.
/// Every piece of the text is also a typed field (documented in
/// `src/node_cli/README.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct StatusEntry {
    /// Entry id (`quorum`, `master`, `node:<node>`, `lrm:<node>`,
    /// `service:<sid>`).
    pub id: String,
    /// quorum, master, node, lrm or service.
    #[serde(rename = "type")]
    pub kind: String,
    /// Node the entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The status text (times in UTC; the CLI renders local time).
    pub status: String,
    /// Quorum entries: whether the answering node is quorate.
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
    /// The state the text shows: master `active`, `idle`, `old timestamp -
    /// dead?`, `detected time drift!`, `no quorum - not active`; node: its
    /// CRM state (`online`, `maintenance`, `unknown`, `fence`, `fenced`,
    /// `gone`); lrm: `active`, `idle`, `<mode> mode`, `node <state>`, ...;
    /// service: the display state (`started`, `starting`, `queued`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Master and lrm entries: when the manager/LRM status was written
    /// (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Node, lrm and service entries: the CRM's state of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_state: Option<String>,
    /// Lrm entries: the LRM state as the LRM wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lrm_state: Option<String>,
    /// Lrm entries: the LRM mode (`active`, `maintenance`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lrm_mode: Option<String>,
    /// Lrm entries: `active` (holds its lease, watchdog armed), `standby`
    /// (no lease), `released` (disarmed, or lease released unguarded),
    /// `expired` (lease expired or taken over: the watchdog is no longer
    /// fed), `failed` (the watchdog cannot protect the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<String>,
    /// Lrm entries: why the watchdog cannot protect the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_problem: Option<String>,
    /// Master and node entries: whether this is the active master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
    /// Node entries in `fence`: what the CRM waits for before it may
    /// recover the node's services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Node entries: time left on the node's agent lease as the answering
    /// node judges it (milliseconds; exact on the Raft leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_time_left_ms: Option<u64>,
    /// Node, lrm and service entries: why the state shown may not hold
    /// (`node unknown`, `no quorum here`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// Master entries while HA is disarmed or being disarmed:
    /// `<disarming|disarmed> (<freeze|ignore>)`, so a client knows to
    /// offer arming again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disarm: Option<String>,
}

/// A node's agent lease as the answering node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    /// Free, held, unguarded or taken over by a CRM.
    pub lease: AgentLease,
    /// Time left until the local deadline, if held.
    pub time_left_ms: Option<u64>,
}

/// Everything the status is built from; `now` is wall-clock unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct StatusInput<'a> {
    /// The answering node.
    pub local_node: &'a str,
    /// Whether the answering node has quorum.
    pub quorate: bool,
    /// Wall clock (unix seconds).
    pub now: u64,
    /// The manager status.
    pub manager_status: &'a ManagerStatus,
    /// LRM status per node.
    pub lrm_status: &'a BTreeMap<String, LrmStatus>,
    /// Configured resources.
    pub resources: &'a [ResourceConfig],
    /// Cluster members by name.
    pub members: &'a [String],
    /// Agent lease per node.
    pub leases: &'a BTreeMap<String, LeaseView>,
}

impl StatusEntry {
    fn new(kind: &str, id: String, node: Option<String>) -> Self {
        StatusEntry {
            id,
            kind: kind.to_string(),
            node,
            ..StatusEntry::default()
        }
    }
}

/// The CRM's state of `node`, with `fenced` for a node whose lease a CRM
/// took over (Proxmox shows such a node `unknown`). `None` without a
/// record.
fn crm_node_state(input: &StatusInput<'_>, node: &str) -> Option<&'static str> {
    let state = input
        .manager_status
        .node_status
        .iter()
        .find(|(n, _)| n.as_str() == node)
        .map(|(_, s)| *s)?;
    let taken_over = input.leases.get(node).map(|l| l.lease) == Some(AgentLease::FencingHold);
    Some(match state {
        NodeState::Unknown | NodeState::Gone if taken_over => "fenced",
        other => other.as_str(),
    })
}

/// Whether a node in this CRM state is known to be up.
fn node_up(state: Option<&str>) -> bool {
    matches!(state, None | Some("online" | "maintenance"))
}

/// The status entries in Proxmox's order, node lines after the master;
/// `time` writes the times of the `status` texts.
pub fn build(input: &StatusInput<'_>, time: &dyn Fn(u64) -> String) -> Vec<StatusEntry> {
    let mut out = vec![quorum_entry(input)];
    let ms = input.manager_status;
    let master_active = match &ms.master_node {
        Some(master) => {
            let entry = master_entry(input, master.as_str());
            let active = entry.master == Some(true);
            out.push(entry);
            active
        }
        None => false,
    };
    let mut nodes: Vec<String> = input.members.to_vec();
    for n in ms.node_status.keys() {
        if !nodes.iter().any(|m| m == n.as_str()) {
            nodes.push(n.to_string());
        }
    }
    nodes.sort();
    // Without a master nothing judged the nodes yet: no node lines.
    if ms.master_node.is_some() {
        for node in &nodes {
            let is_master =
                master_active && ms.master_node.as_ref().is_some_and(|m| m.as_str() == node);
            out.push(node_entry(input, node, is_master));
        }
    }
    for node in &nodes {
        out.push(lrm_entry(input, node));
    }
    out.extend(service_entries(input));
    for entry in &mut out {
        entry.status = status_text(entry, time);
    }
    out
}

fn quorum_entry(input: &StatusInput<'_>) -> StatusEntry {
    let mut e = StatusEntry::new("quorum", "quorum".into(), Some(input.local_node.into()));
    e.quorate = Some(input.quorate);
    e
}

fn master_entry(input: &StatusInput<'_>, master: &str) -> StatusEntry {
    let ms = input.manager_status;
    let age = input.now.saturating_sub(ms.timestamp);
    let state = if !input.quorate {
        // Whatever the last status says, nothing here is current.
        "no quorum - not active"
    } else if ms.timestamp > input.now + 2 {
        "detected time drift!"
    } else if age <= FRESH_SECS {
        "active"
    } else if input.resources.is_empty() {
        "idle"
    } else {
        "old timestamp - dead?"
    };
    let mut e = StatusEntry::new("master", "master".into(), Some(master.into()));
    e.state = Some(state.into());
    e.timestamp = Some(ms.timestamp);
    e.master = Some(state == "active");
    e.disarm = ms
        .disarm
        .map(|d| format!("{} ({})", d.state.as_str(), d.mode.as_str()));
    e
}

fn node_entry(input: &StatusInput<'_>, node: &str, is_master: bool) -> StatusEntry {
    let state = crm_node_state(input, node).unwrap_or("unknown");
    let lease = input.leases.get(node).copied();
    let mut e = StatusEntry::new("node", format!("node:{node}"), Some(node.into()));
    e.state = Some(state.into());
    e.node_state = Some(state.into());
    e.master = Some(is_master);
    e.lease_time_left_ms = lease.and_then(|l| l.time_left_ms);
    if state == "fence" {
        e.waiting_for = Some(fence_wait(lease));
    }
    if !input.quorate {
        e.mark = Some("no quorum here, last known state".into());
    }
    e
}

/// What the CRM waits for before it may take `node`'s lease over.
fn fence_wait(lease: Option<LeaseView>) -> String {
    match lease.map(|l| (l.lease, l.time_left_ms)) {
        Some((AgentLease::Held { .. }, Some(ms))) if ms > 0 => format!(
            "waiting for its agent lease to expire (in {} s)",
            ms.div_ceil(1000)
        ),
        Some((AgentLease::Held { .. }, Some(_))) => {
            "its agent lease expired: the CRM takes it over".into()
        }
        // Held, but this replica keeps no deadline for it.
        Some((AgentLease::Held { .. }, None)) => "waiting for its agent lease to expire".into(),
        Some((AgentLease::Unguarded, _)) => "never fenced automatically: its lease was released \
             unguarded and its services may still run; check the node"
            .into(),
        Some((AgentLease::FencingHold, _)) => "lease taken over: recovering its services".into(),
        Some((AgentLease::Free, _)) | None => "no agent lease: the CRM takes the lock over".into(),
    }
}

fn lrm_entry(input: &StatusInput<'_>, node: &str) -> StatusEntry {
    let mut e = StatusEntry::new("lrm", format!("lrm:{node}"), Some(node.into()));
    let node_state = crm_node_state(input, node);
    e.node_state = node_state.map(str::to_string);
    let Some(l) = input.lrm_status.get(node) else {
        return e;
    };
    let fresh = input.now.saturating_sub(l.timestamp) <= FRESH_SECS;
    let mode = l.mode_or_active();
    let state = if let Some(problem) = &l.watchdog_problem {
        // Not dead: alive but unprotected, so it runs nothing.
        format!("watchdog cannot protect this node: {problem}; no services")
    } else if !node_up(node_state) {
        // The CRM's view wins over the node's last report.
        format!("node {}", node_state.unwrap_or("unknown"))
    } else if !fresh && !matches!(mode.as_str(), "maintenance" | "disarm") {
        "old timestamp - dead?".to_string()
    } else if mode.as_str() != "active" {
        format!("{mode} mode")
    } else if l.state == Some(LrmState::WaitForAgentLock) {
        "idle".to_string()
    } else {
        l.state.map_or("unknown", |s| s.as_str()).to_string()
    };
    let watchdog = if l.watchdog_problem.is_some() {
        "failed"
    } else if mode.as_str() == "disarm" {
        "released"
    } else {
        let reported_active =
            fresh && matches!(l.state, Some(LrmState::Active | LrmState::Maintenance));
        match input.leases.get(node).map(|v| (v.lease, v.time_left_ms)) {
            Some((AgentLease::Held { expired: false }, Some(ms))) if ms > 0 => "active",
            Some((AgentLease::Held { expired: true }, _) | (AgentLease::FencingHold, _)) => {
                "expired"
            }
            Some((AgentLease::Held { .. }, Some(_))) => "expired",
            Some((AgentLease::Unguarded, _)) => "released",
            Some((AgentLease::Free, _)) => "standby",
            // No lease information (or no local deadline for a held
            // lease): Proxmox's rule on the LRM report.
            Some((AgentLease::Held { .. }, None)) | None if reported_active => "active",
            Some((AgentLease::Held { .. }, None)) | None => "standby",
        }
    };
    e.state = Some(state);
    e.timestamp = Some(l.timestamp);
    e.lrm_state = l.state.map(|s| s.as_str().to_string());
    e.lrm_mode = Some(mode.as_str().to_string());
    e.watchdog = Some(watchdog.to_string());
    e.watchdog_problem.clone_from(&l.watchdog_problem);
    if !input.quorate && node != input.local_node {
        // A report that may have stopped arriving: say so.
        e.mark = Some("no quorum here, last report".into());
    }
    e
}

/// The display state of a tracked service (spec 7.2).
fn display_state(req: Option<RequestedState>, state: ServiceState, running: bool) -> String {
    match (req, state) {
        (None, _) => "deleting".into(),
        (Some(RequestedState::Ignored), _) => "ignored".into(),
        (Some(RequestedState::Started), ServiceState::Stopped) => "starting".into(),
        (Some(RequestedState::Disabled), ServiceState::Stopped) => "disabled".into(),
        (Some(_), ServiceState::Started) if !running => "starting".into(),
        (Some(RequestedState::Stopped | RequestedState::Disabled), ServiceState::Started) => {
            "stopping".into()
        }
        (Some(RequestedState::Disabled), ServiceState::Error) => "clearing error flag".into(),
        (_, s) => s.as_str().to_string(),
    }
}

fn service_entries(input: &StatusInput<'_>) -> Vec<StatusEntry> {
    let ms = input.manager_status;
    let configured: BTreeMap<&str, &ResourceConfig> = input
        .resources
        .iter()
        .map(|r| (r.sid.as_str(), r))
        .collect();
    let mut out = Vec::new();
    for (sid, rec) in &ms.service_status {
        let req = configured.get(sid.as_str()).map(|r| r.state);
        let node_state = crm_node_state(input, rec.node.as_str());
        let mut e = StatusEntry::new(
            "service",
            format!("service:{sid}"),
            Some(rec.node.to_string()),
        );
        e.state = Some(display_state(req, rec.state, rec.running));
        e.sid = Some(sid.to_string());
        e.crm_state = Some(rec.state.as_str().to_string());
        e.request_state = req.map(|r| r.as_str().to_string());
        e.node_state = node_state.map(str::to_string);
        // Fence and recovery already say the node is down.
        let explained = matches!(rec.state, ServiceState::Fence | ServiceState::Recovery);
        if !input.quorate {
            e.mark = Some("no quorum here".into());
        } else if !node_up(node_state) && !explained {
            e.mark = Some(format!("node {}", node_state.unwrap_or("unknown")));
        }
        out.push(e);
    }
    for (sid, r) in &configured {
        if ms.service_status.keys().any(|s| s.as_str() == *sid) {
            continue;
        }
        let mut e = StatusEntry::new("service", format!("service:{sid}"), None);
        e.state = Some("queued".into());
        e.sid = Some((*sid).to_string());
        e.request_state = Some(r.state.as_str().to_string());
        out.push(e);
    }
    out
}

/// The text after `<type> ` of `entry`, with times written by `time`
/// (unix seconds in): the API writes UTC, the CLI local time.
pub fn status_text(entry: &StatusEntry, time: &dyn Fn(u64) -> String) -> String {
    let node = entry.node.as_deref().unwrap_or("none");
    let state = entry.state.as_deref().unwrap_or("unknown");
    let when = entry.timestamp.map(time).unwrap_or_default();
    match entry.kind.as_str() {
        "quorum" if entry.quorate == Some(true) => "OK".into(),
        "quorum" => format!("No quorum on node '{node}'!"),
        "master" => format!("{node} ({state}, {when})"),
        "node" => {
            let mut parts = vec![state.to_string()];
            parts.extend(entry.mark.clone());
            if entry.master == Some(true) {
                parts.push("master".into());
            }
            parts.extend(entry.waiting_for.clone());
            format!("{node} ({})", parts.join(", "))
        }
        "lrm" => match &entry.watchdog {
            Some(watchdog) => match &entry.mark {
                Some(mark) => format!("{node} ({state}, watchdog {watchdog}, {when}, {mark})"),
                None => format!("{node} ({state}, watchdog {watchdog}, {when})"),
            },
            None => format!("{node} (unable to read lrm status)"),
        },
        "service" => {
            let sid = entry.sid.as_deref().unwrap_or("?");
            match &entry.mark {
                Some(mark) => format!("{sid} ({node}, {state} ({mark}))"),
                None => format!("{sid} ({node}, {state})"),
            }
        }
        _ => entry.status.clone(),
    }
}

#[cfg(test)]
#[path = "status_view_tests.rs"]
mod tests;
