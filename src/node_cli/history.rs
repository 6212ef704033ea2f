//! `ha-manager history [SID] [--node N] [--since T]` and `ha-manager
//! explain SID`: the CRM's event history and its last decision about a
//! service, in local time.

use anyhow::bail;
use chrono::{Local, TimeZone};

use super::client::{segment, ApiClient};
use super::commands::OutputFormat;
use super::{say, say_json};
use crate::api::history::{ExplainReply, HistoryReply};
use crate::crm::history::HaEvent;

/// Unix milliseconds as a local time with seconds: `2026-11-26 14:02:11`.
pub fn local_time(ms: u64) -> String {
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| Local.timestamp_opt(s, 0).single())
        .map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// Parses `--since`: Unix seconds, an age (`90s`, `10m`, `2h`, `1d`), or
/// a local `YYYY-MM-DD HH:MM[:SS]` / `YYYY-MM-DDTHH:MM[:SS]`. Returns Unix
/// milliseconds; `now_ms` is passed in.
pub fn parse_since(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    let unit = |c: char| match c {
        's' => Some(1_000u64),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(last) = t.chars().last() {
        if let (Some(scale), Ok(n)) = (unit(last), t[..t.len() - last.len_utf8()].parse::<u64>()) {
            return Ok(now_ms.saturating_sub(n.saturating_mul(scale)));
        }
    }
    let normalized = t.replacen('T', " ", 1);
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(&normalized, format) {
            if let Some(local) = Local.from_local_datetime(&naive).earliest() {
                return u64::try_from(local.timestamp_millis())
                    .map_err(|_| anyhow::anyhow!("field 'since': '{t}' is before 1970"));
            }
        }
    }
    bail!(
        "field 'since': '{t}' is not Unix seconds, an age such as 10m, 2h or 1d, or a local time YYYY-MM-DD HH:MM[:SS]"
    )
}

/// One history line: time, kind, subject, change, message.
pub fn event_line(e: &HaEvent) -> String {
    let subject = match (&e.sid, &e.node) {
        (Some(sid), Some(node)) => format!("{sid}@{node}"),
        (Some(sid), None) => sid.clone(),
        (None, Some(node)) => node.clone(),
        (None, None) => String::new(),
    };
    let change = match (&e.from, &e.to) {
        (Some(f), Some(t)) => format!("{f} -> {t}"),
        (None, Some(t)) => format!("-> {t}"),
        _ => String::new(),
    };
    let mut line = format!(
        "{}  {:<13} {:<18} {:<22} {}",
        local_time(e.time_ms),
        e.kind.as_str(),
        subject,
        change,
        e.message
    );
    if let Some(actor) = &e.actor {
        line.push_str(&format!(" [by {actor}]"));
    }
    if let Some(d) = &e.decision {
        line.push_str(&format!(" (why: {})", d.summary));
    }
    line
}

/// `ha-manager history`.
pub fn history(
    client: &ApiClient,
    sid: Option<&str>,
    node: Option<&str>,
    since: Option<&str>,
    limit: Option<usize>,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(sid) = sid {
        query.push(format!("sid={}", segment(sid)?));
    }
    if let Some(node) = node {
        query.push(format!("node={}", segment(node)?));
    }
    if let Some(since) = since {
        let now_ms = u64::try_from(Local::now().timestamp_millis()).unwrap_or(0);
        query.push(format!("since={}", parse_since(since, now_ms)?));
    }
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    let path = if query.is_empty() {
        "/history".to_string()
    } else {
        format!("/history?{}", query.join("&"))
    };
    let reply: HistoryReply = client.get(&path)?;
    match format {
        OutputFormat::Json => say_json(&reply),
        OutputFormat::Text => {
            let mut out = String::new();
            for e in &reply.events {
                out.push_str(&event_line(e));
                out.push('\n');
            }
            if reply.events.is_empty() {
                out.push_str("no events\n");
            }
            for bad in &reply.unreadable {
                out.push_str(&format!("warning: {bad}\n"));
            }
            say(&out)
        }
    }
}

/// `ha-manager explain SID`.
pub fn explain(client: &ApiClient, sid: &str, format: OutputFormat) -> anyhow::Result<()> {
    let reply: ExplainReply = client.get(&format!("/explain/{}", segment(sid)?))?;
    match format {
        OutputFormat::Json => say_json(&reply),
        OutputFormat::Text => {
            // The server wrote times in UTC; rewrite the event's in local
            // time for the person at this terminal.
            let text = match &reply.event {
                Some(e) => crate::api::history::explain_text(
                    &reply.sid,
                    reply.node.as_deref().zip(reply.state.as_deref()),
                    Some(e),
                    local_time,
                ),
                None => reply.text.clone(),
            };
            say(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_seconds_ages_and_local_times() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("1700000000", now).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since("10m", now).unwrap(), now - 600_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400_000);
        assert!(parse_since("2026-11-26 13:00", now).is_ok());
        assert!(parse_since("2026-11-26T13:00:05", now).is_ok());
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(err.starts_with("field 'since'"), "{err}");
        assert!(parse_since("5x", now).is_err());
        assert!(parse_since("", now).is_err());
    }
}
