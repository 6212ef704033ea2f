//! The `notifications` document: the targets events are sent to, edited
//! with `ha-manager notify target add|list|remove` (`api/notify.rs`).
//!
//! The document is replicated like every other one, so whichever node
//! leads can send. A webhook's HMAC secret is stored as given (the
//! signature needs it); the API never shows it, only whether there is
//! one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crm::history::HaEvent;

/// Name of the replicated document holding the targets.
pub const NOTIFY_DOC: &str = "notifications";
/// Prefix of the per-target delivery cursors (`notify-cursor/<name>`:
/// [`Cursor`] as JSON), written through Raft by the leader after a
/// delivery.
pub const CURSOR_PREFIX: &str = "notify-cursor/";
/// Format of the document this version writes.
pub const FORMAT: u32 = 1;
/// At most this many targets.
pub const MAX_TARGETS: usize = 32;
/// A webhook URL is at most this long.
pub const MAX_URL_LEN: usize = 2048;
/// An HMAC secret is 1 to this many bytes.
pub const MAX_SECRET_LEN: usize = 1024;
/// Per-attempt time limit when none is given, seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Largest per-attempt time limit, seconds: `notify test` waits for the
/// attempt inside one API request (30 s at most).
pub const MAX_TIMEOUT_SECS: u64 = 20;

/// The document name of `target`'s delivery cursor.
pub fn cursor_doc(target: &str) -> String {
    format!("{CURSOR_PREFIX}{target}")
}

/// Which events a target wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub enum EventClass {
    /// A node goes to `fence` (`node_state` to `fence`) and its fencing is
    /// done (`fenced`: its agent lease was taken over).
    Fence,
    /// A service is recovered on another node after fencing.
    Recovery,
    /// A service is in `error`, or failed to start (`error`,
    /// `start_failure`, `service_state` to `error`).
    Error,
    /// Any change of a node's state (`node_state`).
    Node,
}

impl EventClass {
    /// Every class, in the order the CLI lists them.
    pub const ALL: [EventClass; 4] = [
        EventClass::Fence,
        EventClass::Recovery,
        EventClass::Error,
        EventClass::Node,
    ];

    /// Its name in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Fence => "fence",
            EventClass::Recovery => "recovery",
            EventClass::Error => "error",
            EventClass::Node => "node",
        }
    }

    /// Whether `ev` belongs to this class.
    pub fn matches(self, ev: &HaEvent) -> bool {
        let kind = ev.kind.as_str();
        let to = ev.to.as_deref();
        match self {
            EventClass::Fence => kind == "fenced" || (kind == "node_state" && to == Some("fence")),
            EventClass::Recovery => kind == "recovery",
            EventClass::Error => {
                kind == "error"
                    || kind == "start_failure"
                    || (kind == "service_state" && to == Some("error"))
            }
            EventClass::Node => kind == "node_state",
        }
    }
}

/// Parses `fence,recovery,error,node` (any order, no repeats); the error
/// names the field `events`.
pub fn parse_events(text: &str) -> Result<Vec<EventClass>, String> {
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim) {
        let class = EventClass::ALL
            .into_iter()
            .find(|c| c.as_str() == word)
            .ok_or_else(|| {
                format!(
                    "field 'events': '{}' is not an event class (fence, recovery, error, node)",
                    word.escape_default()
                )
            })?;
        if !out.contains(&class) {
            out.push(class);
        }
    }
    out.sort();
    Ok(out)
}

/// Where a target sends: one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", deny_unknown_fields)]
pub enum Sink {
    /// HTTP(S) POST of the event as JSON.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// HMAC-SHA256 key: the body's signature goes in
        /// `X-HA-Signature-256: sha256=<hex>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// PEM of CAs trusted for this URL besides the built-in roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_pem: Option<String>,
    },
    /// An executable run with the event in its environment.
    Exec {
        /// Absolute path of the hook (the same on every node).
        path: String,
    },
}

/// One notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Where it sends.
    pub sink: Sink,
    /// The classes it wants (never empty).
    pub events: Vec<EventClass>,
    /// Time limit of one attempt, seconds.
    pub timeout_secs: u64,
    /// The history seq when the target was made: it gets the events after
    /// it (not the whole history).
    #[serde(default)]
    pub start_after: u64,
}

impl Target {
    /// Whether the target wants `ev`.
    pub fn wants(&self, ev: &HaEvent) -> bool {
        self.events.iter().any(|c| c.matches(ev))
    }
}

/// The `notifications` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyDoc {
    /// [`FORMAT`].
    #[serde(default)]
    pub format: u32,
    /// Targets by name.
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
}

/// Parses the stored document (empty text: no targets). A newer format
/// is refused rather than misread.
pub fn parse_doc(text: &str) -> Result<NotifyDoc, String> {
    if text.trim().is_empty() {
        return Ok(NotifyDoc::default());
    }
    let doc: NotifyDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if doc.format > FORMAT {
        return Err(format!(
            "format {} is newer than this ha-manager's {FORMAT}",
            doc.format
        ));
    }
    Ok(doc)
}

/// A target's delivery cursor: every event up to `seq` was delivered (or
/// not wanted, or reported as lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Last settled history seq.
    pub seq: u64,
}

/// Target names: 1 to 32 of `a-z`, `0-9`, `-`, `_`, a letter first. The
/// error names the field `name`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field 'name': '{}' is not a target name (1 to 32 of a-z, 0-9, '-', '_', a letter first)",
            name.escape_default()
        ))
    }
}

/// Checks a webhook URL: `http://` or `https://`, a host, no whitespace
/// or control characters, at most [`MAX_URL_LEN`]. The error names the
/// field `webhook`.
pub fn check_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "field 'webhook': '{}' {why}",
            url.chars().take(200).collect::<String>().escape_default()
        ))
    };
    if url.len() > MAX_URL_LEN {
        return bad("is longer than 2048 bytes");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return bad("is not an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return bad("has no host");
    }
    Ok(())
}

/// Whether a URL is https (its CA file matters only then).
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// Checks an exec hook path: absolute, no NUL, no `..` component, at most
/// 4096 bytes. The error names the field `exec`.
pub fn check_exec_path(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && path.len() <= 4096
        && !path.contains('\0')
        && !path.ends_with('/')
        && !path.split('/').any(|c| c == "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field 'exec': '{}' is not an absolute path of an executable",
            path.chars().take(200).collect::<String>().escape_default()
        ))
    }
}

/// Checks an HMAC secret. The error names the field `secret`.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "field 'secret': a secret has 1 to {MAX_SECRET_LEN} bytes, not {}",
            secret.len()
        ));
    }
    Ok(())
}

/// Checks a per-attempt time limit. The error names the field
/// `timeout_secs`.
pub fn check_timeout(secs: u64) -> Result<(), String> {
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(format!(
            "field 'timeout_secs': an attempt may take 1 to {MAX_TIMEOUT_SECS} s, not {secs}"
        ))
    }
}

/// A target as `target add` describes it (the API body): exactly one of
/// `webhook` and `exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct NewTarget {
    /// Target name.
    pub name: String,
    /// Webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Hook path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// HMAC secret (webhook only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Extra trusted CAs, PEM (https webhook only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Event classes; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventClass>>,
    /// Per-attempt time limit, seconds; absent: [`DEFAULT_TIMEOUT_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// A refusal naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// The message (names the field too).
    pub message: String,
}

fn field(field: &'static str) -> impl Fn(String) -> FieldError {
    move |message| FieldError { field, message }
}

impl NewTarget {
    /// Checks everything but the CA PEM's contents (the API parses it)
    /// and builds the stored target, starting after history seq
    /// `start_after`.
    pub fn validate(&self, start_after: u64) -> Result<(String, Target), FieldError> {
        check_name(&self.name).map_err(field("name"))?;
        let sink = match (&self.webhook, &self.exec) {
            (Some(url), None) => {
                check_url(url).map_err(field("webhook"))?;
                if let Some(s) = &self.secret {
                    check_secret(s).map_err(field("secret"))?;
                }
                if let Some(pem) = &self.ca_pem {
                    if !is_https(url) {
                        return Err(FieldError {
                            field: "ca_pem",
                            message:
                                "field 'ca_pem': a CA file is used only by an https:// webhook"
                                    .into(),
                        });
                    }
                    if pem.trim().is_empty() || pem.len() > 256 * 1024 {
                        return Err(FieldError {
                            field: "ca_pem",
                            message: "field 'ca_pem': 1 byte to 256 KiB of PEM".into(),
                        });
                    }
                }
                Sink::Webhook {
                    url: url.clone(),
                    secret: self.secret.clone(),
                    ca_pem: self.ca_pem.clone(),
                }
            }
            (None, Some(path)) => {
                check_exec_path(path).map_err(field("exec"))?;
                for (name, given) in [("secret", &self.secret), ("ca_pem", &self.ca_pem)] {
                    if given.is_some() {
                        return Err(FieldError {
                            field: if name == "secret" { "secret" } else { "ca_pem" },
                            message: format!("field '{name}': only a webhook target has one"),
                        });
                    }
                }
                Sink::Exec { path: path.clone() }
            }
            (Some(_), Some(_)) => {
                return Err(FieldError {
                    field: "exec",
                    message: "field 'exec': a target is a webhook or an exec hook, not both".into(),
                })
            }
            (None, None) => {
                return Err(FieldError {
                    field: "webhook",
                    message: "field 'webhook': give a webhook URL or an exec hook path".into(),
                })
            }
        };
        let events = match &self.events {
            None => EventClass::ALL.to_vec(),
            Some(list) if list.is_empty() => {
                return Err(FieldError {
                    field: "events",
                    message: "field 'events': at least one of fence, recovery, error, node".into(),
                })
            }
            Some(list) => {
                let mut l = list.clone();
                l.sort();
                l.dedup();
                l
            }
        };
        let timeout_secs = self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        check_timeout(timeout_secs).map_err(field("timeout_secs"))?;
        Ok((
            self.name.clone(),
            Target {
                sink,
                events,
                timeout_secs,
                start_after,
            },
        ))
    }
}

/// One row of `GET /notify/targets`: never the secret or the CA text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct TargetView {
    /// Target name.
    pub name: String,
    /// `webhook` or `exec`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The URL or the hook path.
    pub destination: String,
    /// Event classes.
    pub events: Vec<EventClass>,
    /// Per-attempt time limit, seconds.
    pub timeout_secs: u64,
    /// Whether requests are signed.
    pub signed: bool,
    /// Whether extra CAs are trusted.
    pub ca: bool,
    /// The history seq the target started after.
    pub start_after: u64,
}

impl TargetView {
    /// The public view of a stored target.
    pub fn of(name: &str, t: &Target) -> Self {
        let (kind, destination, signed, ca) = match &t.sink {
            Sink::Webhook {
                url,
                secret,
                ca_pem,
            } => ("webhook", url.clone(), secret.is_some(), ca_pem.is_some()),
            Sink::Exec { path } => ("exec", path.clone(), false, false),
        };
        TargetView {
            name: name.to_string(),
            kind: kind.to_string(),
            destination,
            events: t.events.clone(),
            timeout_secs: t.timeout_secs,
            signed,
            ca,
            start_after: t.start_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, to: Option<&str>) -> HaEvent {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "time_ms": 0, "kind": kind, "node": "node2", "to": to, "message": ""
        }))
        .unwrap()
    }

    #[test]
    fn classes_pick_their_events() {
        assert!(EventClass::Fence.matches(&ev("node_state", Some("fence"))));
        assert!(EventClass::Fence.matches(&ev("fenced", None)));
        assert!(!EventClass::Fence.matches(&ev("node_state", Some("unknown"))));
        assert!(EventClass::Node.matches(&ev("node_state", Some("unknown"))));
        assert!(EventClass::Recovery.matches(&ev("recovery", Some("node3"))));
        assert!(EventClass::Error.matches(&ev("service_state", Some("error"))));
        assert!(EventClass::Error.matches(&ev("start_failure", None)));
        assert!(!EventClass::Error.matches(&ev("service_state", Some("started"))));
        for c in EventClass::ALL {
            assert!(!c.matches(&ev("placement", Some("node1"))), "{c:?}");
        }
    }

    #[test]
    fn event_lists_parse_and_name_the_field() {
        assert_eq!(
            parse_events("recovery, fence,fence").unwrap(),
            vec![EventClass::Fence, EventClass::Recovery]
        );
        let e = parse_events("fence,boom").unwrap_err();
        assert!(e.starts_with("field 'events'"), "{e}");
        assert!(parse_events("").is_err());
    }

    fn webhook(url: &str) -> NewTarget {
        NewTarget {
            name: "hook".into(),
            webhook: Some(url.into()),
            ..NewTarget::default()
        }
    }

    #[test]
    fn validation_names_the_field() {
        let field_of = |t: NewTarget| t.validate(0).unwrap_err().field;
        assert_eq!(field_of(webhook("ftp://x")), "webhook");
        assert_eq!(field_of(webhook("http://")), "webhook");
        assert_eq!(field_of(webhook("http://a b")), "webhook");
        assert_eq!(
            field_of(NewTarget {
                name: "Bad".into(),
                ..webhook("http://x")
            }),
            "name"
        );
        assert_eq!(
            field_of(NewTarget {
                exec: Some("hook.sh".into()),
                webhook: None,
                ..webhook("http://x")
            }),
            "exec"
        );
        assert_eq!(
            field_of(NewTarget {
                exec: Some("/bin/true".into()),
                ..webhook("http://x")
            }),
            "exec"
        );
        assert_eq!(
            field_of(NewTarget {
                webhook: None,
                ..webhook("http://x")
            }),
            "webhook"
        );
        assert_eq!(
            field_of(NewTarget {
                secret: Some(String::new()),
                ..webhook("http://x")
            }),
            "secret"
        );
        assert_eq!(
            field_of(NewTarget {
                ca_pem: Some("x".into()),
                ..webhook("http://x")
            }),
            "ca_pem"
        );
        assert_eq!(
            field_of(NewTarget {
                events: Some(vec![]),
                ..webhook("http://x")
            }),
            "events"
        );
        assert_eq!(
            field_of(NewTarget {
                timeout_secs: Some(0),
                ..webhook("http://x")
            }),
            "timeout_secs"
        );
        let exec_with_secret = NewTarget {
            name: "h".into(),
            exec: Some("/usr/local/bin/hook".into()),
            secret: Some("s".into()),
            ..NewTarget::default()
        };
        assert_eq!(field_of(exec_with_secret), "secret");
    }

    #[test]
    fn a_valid_target_gets_defaults_and_never_shows_its_secret() {
        let (name, t) = NewTarget {
            secret: Some("s3cret".into()),
            ..webhook("HTTPS://example.org:8443/hook?x=1")
        }
        .validate(17)
        .unwrap();
        assert_eq!(name, "hook");
        assert_eq!(t.events, EventClass::ALL.to_vec());
        assert_eq!(t.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(t.start_after, 17);
        let view = serde_json::to_string(&TargetView::of(&name, &t)).unwrap();
        assert!(!view.contains("s3cret"), "{view}");
        assert!(view.contains("\"signed\":true"), "{view}");
        let doc = NotifyDoc {
            format: FORMAT,
            targets: [(name, t)].into(),
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(parse_doc(&text).unwrap(), doc);
        assert!(parse_doc(r#"{"format":2,"targets":{}}"#).is_err());
        assert_eq!(parse_doc("").unwrap(), NotifyDoc::default());
    }
}
