//! `GET /api/v1/history` (the CRM's event history, `crm::history`) and
//! `GET /api/v1/explain/{sid}` (why a service is on its node). Both read
//! the local replica; a read-only token is enough.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::ApiState;
use crate::crm::history::{Filter, HaEvent, CAP};
use crate::crm::{EventKind, ManagerStatus};
use crate::daemon::history;
use crate::domain::{NodeName, Sid};

/// Most events one request returns.
pub const MAX_LIMIT: usize = CAP as usize;

/// Events one request returns unless it asks for another number.
pub const DEFAULT_LIMIT: usize = 500;

/// The query of `GET /history`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events of this service.
    pub sid: Option<String>,
    /// Only events about this node.
    pub node: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    pub since: Option<u64>,
    /// Only events after this sequence number (incremental polling).
    pub after: Option<u64>,
    /// At most this many (the newest), 1..=[`MAX_LIMIT`].
    pub limit: Option<usize>,
}

/// The answer of `GET /history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryReply {
    /// How many events the history keeps at most (older ones are dropped).
    pub cap: u64,
    /// The sequence number the next event will get (poll with
    /// `after = next_seq - 1`).
    pub next_seq: u64,
    /// The events, oldest first.
    pub events: Vec<HaEvent>,
    /// Stored chunks that could not be read (their events are missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// Checks the query; errors name the field.
pub fn filter_of(q: &HistoryQuery) -> ApiResult<(Filter, usize)> {
    if let Some(sid) = &q.sid {
        sid.parse::<Sid>()
            .map_err(|e| ApiError::field("sid", format!("field 'sid': {e}")))?;
    }
    if let Some(node) = &q.node {
        node.parse::<NodeName>()
            .map_err(|e| ApiError::field("node", format!("field 'node': {e}")))?;
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::field(
            "limit",
            format!("field 'limit': {limit} is out of range 1..={MAX_LIMIT}"),
        ));
    }
    Ok((
        Filter {
            sid: q.sid.clone(),
            node: q.node.clone(),
            since_ms: q.since,
            after_seq: q.after,
        },
        limit,
    ))
}

/// `GET /history`.
pub async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryReply>> {
    let (filter, limit) = filter_of(&q)?;
    let read = history::read(&st.store, &filter, limit);
    Ok(Json(HistoryReply {
        cap: CAP,
        next_seq: read.next_seq,
        events: read.events,
        unreadable: read.unreadable,
    }))
}

/// The answer of `GET /explain/{sid}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainReply {
    /// The service.
    pub sid: String,
    /// Its node and state in the CRM's status now (`None`: the CRM does
    /// not track it).
    pub node: Option<String>,
    /// Its CRM state now.
    pub state: Option<String>,
    /// The last event that put it where it is: a decision, or a command
    /// that moved it (`None`: the history holds none).
    pub event: Option<HaEvent>,
    /// The explanation for a person.
    pub text: String,
}

/// The last event that explains where `sid` is: the newest decision, or
/// a newer command naming it (a migrate or relocate by an operator).
pub fn explaining_event<'a>(
    events: impl DoubleEndedIterator<Item = &'a HaEvent>,
    sid: &str,
) -> Option<&'a HaEvent> {
    events.rev().find(|e| {
        e.sid.as_deref() == Some(sid)
            && (e.decision.is_some()
                || (e.kind == EventKind::Command
                    && (e.message.starts_with("command: migrate")
                        || e.message.starts_with("command: relocate"))))
    })
}

/// The explanation text of `sid`, given its current record and the event
/// that explains it.
pub fn explain_text(
    sid: &str,
    now: Option<(&str, &str)>,
    event: Option<&HaEvent>,
    ctime: impl Fn(u64) -> String,
) -> String {
    let mut text = match now {
        Some((node, state)) => format!("{sid} is on {node} ({state}).\n"),
        None => format!("{sid} is not tracked by the CRM (not configured, or ignored).\n"),
    };
    match event {
        None => text.push_str(&format!(
            "The history (the last {CAP} events) holds no decision about it: it has been where it is since before that, or was configured there.\n"
        )),
        Some(e) => {
            text.push_str(&format!("Last decision, {} (event {}):\n", ctime(e.time_ms), e.seq));
            match &e.decision {
                Some(d) => text.push_str(&d.text()),
                None => {
                    let who = e.actor.as_deref().unwrap_or("an operator");
                    text.push_str(&format!(
                        "  {} (issued by token '{who}'): the operator chose the node.\n",
                        e.message
                    ));
                }
            }
        }
    }
    text
}

/// `GET /explain/{sid}`.
pub async fn explain(
    State(st): State<ApiState>,
    ApiPath(sid): ApiPath<String>,
) -> ApiResult<Json<ExplainReply>> {
    let parsed: Sid = sid
        .parse()
        .map_err(|e| ApiError::field("sid", format!("field 'sid': {e}")))?;
    let ms: ManagerStatus = st
        .store
        .read_local(|s| {
            s.manager_status()
                .and_then(|d| serde_json::from_str(&d.value).ok())
        })
        .value
        .unwrap_or_default();
    let record = ms.service_status.get(&parsed);
    let filter = Filter {
        sid: Some(parsed.to_string()),
        ..Filter::default()
    };
    let read = history::read(&st.store, &filter, MAX_LIMIT);
    let configured = super::docs::resources(&st.store)
        .await?
        .value
        .iter()
        .any(|r| r.sid == parsed);
    if record.is_none() && read.events.is_empty() && !configured {
        return Err(ApiError::not_found(format!("no such resource '{parsed}'")));
    }
    let event = explaining_event(read.events.iter(), parsed.as_str()).cloned();
    let now = record.map(|r| (r.node.to_string(), r.state.to_string()));
    let text = explain_text(
        parsed.as_str(),
        now.as_ref().map(|(n, s)| (n.as_str(), s.as_str())),
        event.as_ref(),
        |ms| format!("{} UTC", super::status::ctime_utc(ms / 1000)),
    );
    Ok(Json(ExplainReply {
        sid: parsed.to_string(),
        node: now.as_ref().map(|(n, _)| n.clone()),
        state: now.map(|(_, s)| s),
        event,
        text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_name_the_field() {
        let bad = |q: HistoryQuery| filter_of(&q).unwrap_err().body.error;
        assert!(bad(HistoryQuery {
            sid: Some("nope".into()),
            ..Default::default()
        })
        .starts_with("field 'sid'"));
        assert!(bad(HistoryQuery {
            node: Some("bad node".into()),
            ..Default::default()
        })
        .starts_with("field 'node'"));
        assert!(bad(HistoryQuery {
            limit: Some(0),
            ..Default::default()
        })
        .starts_with("field 'limit'"));
        assert!(filter_of(&HistoryQuery::default()).is_ok());
    }

    #[test]
    fn a_later_operator_move_explains_more_than_an_older_decision() {
        let placed = HaEvent::new(1, EventKind::Placement, "placed")
            .sid("vm:100")
            .to("node1")
            .decision(crate::crm::Decision {
                sid: "vm:100".into(),
                reason: crate::crm::DecisionReason::Placement,
                mode: "basic".into(),
                current: None,
                chosen: Some("node1".into()),
                candidates: Vec::new(),
                summary: "fewest services".into(),
            });
        let moved = HaEvent::new(2, EventKind::Command, "command: migrate vm:100 node2")
            .sid("vm:100")
            .actor(Some("ops"));
        let events = [placed.clone(), moved.clone()];
        assert_eq!(explaining_event(events.iter(), "vm:100"), Some(&moved));
        let text = explain_text("vm:100", Some(("node2", "started")), Some(&moved), |_| {
            "t".into()
        });
        assert!(text.contains("issued by token 'ops'"), "{text}");
        assert_eq!(
            explaining_event(events[..1].iter(), "vm:100"),
            Some(&placed)
        );
        assert_eq!(explaining_event(events.iter(), "vm:101"), None);
    }
}
