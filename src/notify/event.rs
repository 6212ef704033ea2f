//! What a notification carries: a history event in its JSON form (or the
//! test event, whose kind no history event has), and how an executable
//! hook sees it (environment variables, as Pacemaker's alert agents get
//! theirs).

use serde::{Deserialize, Serialize};

use crate::crm::history::HaEvent;

/// The event as sent: the JSON of `GET /api/v1/history` (fields absent
/// when empty), with the kind as text so `notify test` can send kind
/// `test` through the same path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Position in the history: increases by one per event.
    pub seq: u64,
    /// Wall-clock time of the CRM round that recorded it, unix ms.
    pub time_ms: u64,
    /// `node_state`, `fenced`, `recovery`, `service_state`, `error`, ...
    pub kind: String,
    /// The node it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The service it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The state (or node) before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The state (or node) after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Who asked for it (an API token id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// One line for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The CRM's placement decision, when it chose a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<serde_json::Value>,
}

impl Notice {
    /// The notice of a history event.
    pub fn of(ev: &HaEvent) -> Self {
        Notice {
            seq: ev.seq,
            time_ms: ev.time_ms,
            kind: ev.kind.as_str().to_string(),
            node: ev.node.clone(),
            sid: ev.sid.clone(),
            from: ev.from.clone(),
            to: ev.to.clone(),
            actor: ev.actor.clone(),
            message: Some(ev.message.clone()).filter(|m| !m.is_empty()),
            decision: ev
                .decision
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok()),
        }
    }
}

/// Kind of the event `notify test` sends; no history event has it.
pub const TEST_KIND: &str = "test";

/// The event `ha-manager notify test` sends through the real delivery
/// path: seq 0 (never a history seq), kind [`TEST_KIND`].
pub fn test_event(now_ms: u64, node: &str, actor: &str) -> Notice {
    Notice {
        seq: 0,
        time_ms: now_ms,
        kind: TEST_KIND.to_string(),
        node: Some(node.to_string()),
        sid: None,
        from: None,
        to: None,
        actor: Some(actor.to_string()),
        message: Some(format!(
            "test notification sent by node {node} on request of {actor}"
        )),
        decision: None,
    }
}

/// The kind of `ev` as a string (`node_state`, `fenced`, ...).
pub fn kind_of(ev: &Notice) -> &str {
    ev.kind.as_str()
}

/// The value of `X-HA-Event-Id`: the event's seq, by which a receiver
/// drops a duplicate (delivery is at least once); test events are
/// `test-<time_ms>` so they never collide with a history seq.
pub fn event_id(ev: &Notice) -> String {
    if kind_of(ev) == TEST_KIND {
        format!("test-{}", ev.time_ms)
    } else {
        ev.seq.to_string()
    }
}

/// Environment variables never carry NUL; control characters stay (a hook
/// that prints them is its own business).
fn env_value(s: &str) -> String {
    s.replace('\0', "")
}

/// The environment of an executable hook for `ev` sent to target
/// `target`: `HA_EVENT_KIND`, `HA_EVENT_SEQ`, `HA_EVENT_ID`,
/// `HA_EVENT_TIME_MS`, `HA_EVENT_TARGET`, `HA_EVENT_JSON` always;
/// `HA_EVENT_NODE`, `HA_EVENT_SID`, `HA_EVENT_FROM`, `HA_EVENT_TO`,
/// `HA_EVENT_ACTOR`, `HA_EVENT_MESSAGE` when the event has them.
pub fn hook_env(ev: &Notice, target: &str, json: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("HA_EVENT_KIND".to_string(), env_value(kind_of(ev))),
        ("HA_EVENT_SEQ".to_string(), ev.seq.to_string()),
        ("HA_EVENT_ID".to_string(), event_id(ev)),
        ("HA_EVENT_TIME_MS".to_string(), ev.time_ms.to_string()),
        ("HA_EVENT_TARGET".to_string(), env_value(target)),
        ("HA_EVENT_JSON".to_string(), env_value(json)),
    ];
    let optional = [
        ("HA_EVENT_NODE", &ev.node),
        ("HA_EVENT_SID", &ev.sid),
        ("HA_EVENT_FROM", &ev.from),
        ("HA_EVENT_TO", &ev.to),
        ("HA_EVENT_ACTOR", &ev.actor),
        ("HA_EVENT_MESSAGE", &ev.message),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            env.push((key.to_string(), env_value(v)));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_env_has_the_fields_the_event_has() {
        let ev = Notice {
            seq: 42,
            time_ms: 1_764_160_000_123,
            kind: "node_state".into(),
            node: Some("node2".into()),
            sid: None,
            from: Some("online".into()),
            to: Some("fence".into()),
            actor: None,
            message: Some("a\0b".into()),
            decision: None,
        };
        let env: std::collections::BTreeMap<String, String> =
            hook_env(&ev, "pager", "{}").into_iter().collect();
        assert_eq!(env["HA_EVENT_KIND"], "node_state");
        assert_eq!(env["HA_EVENT_SEQ"], "42");
        assert_eq!(env["HA_EVENT_ID"], "42");
        assert_eq!(env["HA_EVENT_NODE"], "node2");
        assert_eq!(env["HA_EVENT_TO"], "fence");
        assert_eq!(env["HA_EVENT_MESSAGE"], "ab");
        assert_eq!(env["HA_EVENT_TARGET"], "pager");
        assert!(!env.contains_key("HA_EVENT_SID"));
    }

    #[test]
    fn test_events_have_their_own_ids() {
        let ev = test_event(5, "node1", "admin");
        assert_eq!(event_id(&ev), "test-5");
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["kind"], "test");
        assert!(json.get("sid").is_none());
    }

    #[test]
    fn a_notice_has_the_history_event_json() {
        let ev = HaEvent::new(
            1_000,
            crate::crm::history::EventKind::Fenced,
            "lease taken over",
        )
        .node("node2");
        let notice = Notice::of(&ev);
        assert_eq!(
            serde_json::to_value(&notice).unwrap(),
            serde_json::to_value(&ev).unwrap()
        );
        assert_eq!(kind_of(&notice), "fenced");
    }
}
