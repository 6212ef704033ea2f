//! Text output of the query verbs (Proxmox's layout).

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::api::cluster::ClusterStatus;
use crate::api::resources::ResourceView;
use crate::api::rules::RuleView;
use crate::domain::{NodeAffinityRule, ResourceConfig, Rule};

/// `config`: `type:name`, then `<TAB>key value` for each key that is set
/// (as in resources.cfg: defaults are not repeated), sorted, blank line.
pub fn resources_text(list: &[ResourceView]) -> String {
    let mut out = String::new();
    for r in list {
        let c = &r.config;
        let default = ResourceConfig::with_defaults(c.sid.clone());
        let _ = writeln!(out, "{}", c.sid);
        let mut props: Vec<(String, String)> = Vec::new();
        let mut set = |key: &str, value: String, is_default: bool| {
            if !is_default {
                props.push((key.to_string(), value));
            }
        };
        set(
            "failback",
            u8::from(c.failback).to_string(),
            c.failback == default.failback,
        );
        set(
            "max_relocate",
            c.max_relocate.to_string(),
            c.max_relocate == default.max_relocate,
        );
        set(
            "max_restart",
            c.max_restart.to_string(),
            c.max_restart == default.max_restart,
        );
        set(
            "state",
            c.state.as_str().to_string(),
            c.state == default.state,
        );
        if let Some(g) = &c.group {
            props.push(("group".into(), g.clone()));
        }
        if let Some(limit) = c.maxcpu {
            props.push(("maxcpu".into(), limit.to_string()));
        }
        if let Some(mib) = c.maxmem {
            props.push(("maxmem".into(), mib.to_string()));
        }
        if let Some(cm) = c.comment.as_ref().filter(|cm| !cm.is_empty()) {
            props.push(("comment".into(), cm.clone()));
        }
        props.extend(c.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        props.sort();
        for (k, v) in props {
            let _ = writeln!(out, "\t{k} {v}");
        }
        out.push('\n');
    }
    out
}

/// `cluster status`.
pub fn cluster_text(s: &ClusterStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node {} (id {}, {})", s.node, s.node_id, s.raft_state);
    let _ = writeln!(
        out,
        "leader {} (term {})",
        s.leader
            .clone()
            .or(s.leader_id.map(|i| format!("id {i}")))
            .unwrap_or_else(|| "none".into()),
        s.term
    );
    for m in &s.members {
        let role = match m.role.as_str() {
            "" if m.voter => "voter",
            "" => "learner",
            r => r,
        };
        // Lag and last contact are the leader's knowledge: shown when
        // the answering node leads.
        let mut extra = String::new();
        if let Some(lag) = m.log_lag {
            let _ = write!(extra, ", log lag {lag}");
        }
        if let Some(ms) = m.last_contact_ms {
            let _ = write!(extra, ", last contact {:.1} s ago", ms as f64 / 1000.0);
        }
        let _ = writeln!(
            out,
            "member {} (id {}, {}, {role}{extra})",
            m.name.as_deref().unwrap_or("?"),
            m.id,
            m.addr,
        );
    }
    out
}

/// Lays rows out under a header, columns padded to their widest cell and
/// two spaces apart, trailing blanks cut.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn join_resources(rule: &Rule) -> String {
    let sids: Vec<String> = rule.resources().iter().map(ToString::to_string).collect();
    sids.join(",")
}

fn join_nodes(rule: &NodeAffinityRule) -> String {
    rule.nodes_text()
}

/// `disable` and `comment`, which both rule types have.
fn disable_and_comment(rule: &Rule) -> (bool, String) {
    match rule {
        Rule::NodeAffinity(r) => (r.disable, r.comment.clone().unwrap_or_default()),
        Rule::ResourceAffinity(r) => (r.disable, r.comment.clone().unwrap_or_default()),
    }
}

/// `rules config` (spec 7.1): one row per rule in file order with the
/// columns enabled, state (`in use`, `ignored (conflicts)`, `disabled`),
/// rule, type, resources, comment.
pub fn rules_config_table(views: &[RuleView]) -> String {
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let (disable, comment) = disable_and_comment(&v.rule);
            let state = if disable {
                "disabled"
            } else if v.errors.is_empty() {
                "in use"
            } else {
                "ignored (conflicts)"
            };
            vec![
                u8::from(!disable).to_string(),
                state.to_string(),
                v.rule.id().to_string(),
                v.kind().to_string(),
                join_resources(&v.rule),
                comment,
            ]
        })
        .collect();
    table(
        &["enabled", "state", "rule", "type", "resources", "comment"],
        &rows,
    )
}

/// `rules list` (spec 7.1): the rules as the API lists them, sorted by
/// order, one column per property (the digest aside). The `affinity`
/// column appears only when a resource-affinity rule is listed, so a
/// list of node-affinity rules keeps its layout.
pub fn rules_list_table(views: &[RuleView]) -> String {
    let mut sorted: Vec<&RuleView> = views.iter().collect();
    sorted.sort_by_key(|v| v.order);
    let with_affinity = sorted
        .iter()
        .any(|v| matches!(v.rule, Rule::ResourceAffinity(_)));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|v| {
            let (disable, comment) = disable_and_comment(&v.rule);
            let (nodes, strict, affinity) = match &v.rule {
                Rule::NodeAffinity(r) => (join_nodes(r), u8::from(r.strict).to_string(), ""),
                Rule::ResourceAffinity(r) => (String::new(), String::new(), r.affinity.as_str()),
            };
            let mut row = vec![
                v.rule.id().to_string(),
                v.kind().to_string(),
                v.order.to_string(),
                join_resources(&v.rule),
                nodes,
            ];
            if with_affinity {
                row.push(affinity.to_string());
            }
            row.extend([strict, u8::from(disable).to_string(), comment]);
            row
        })
        .collect();
    let mut header = vec!["rule", "type", "order", "resources", "nodes"];
    if with_affinity {
        header.push("affinity");
    }
    header.extend(["strict", "disable", "comment"]);
    table(&header, &rows)
}

/// Whether a terminal could act on `c`: C0 controls but newline and tab
/// (the layout's own), DEL and the C1 controls (U+0080..U+009F, where
/// U+009B starts an escape sequence like ESC [).
fn is_terminal_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// Text output with every character a terminal would act on written as
/// `\xNN` (`\u{NNNN}` above U+00FF is never a control): a name holding
/// `ESC [2J` is shown, not executed.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_terminal_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_terminal_control(c) {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text with the controls JSON does not escape itself (DEL, C1) as
/// `\u00NN` escapes; they can only occur inside strings, so the result is
/// the same JSON value.
pub fn escape_json_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_terminal_control(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NodeAffinityRule;

    fn view(id: &str, sids: &[&str], disable: bool, conflict: bool) -> RuleView {
        let rule = NodeAffinityRule {
            id: id.into(),
            resources: sids.iter().map(|s| s.parse().unwrap()).collect(),
            nodes: [("node1".parse().unwrap(), 2), ("node2".parse().unwrap(), 0)]
                .into_iter()
                .collect(),
            strict: false,
            disable,
            comment: Some("web tier".into()),
        };
        let mut errors = std::collections::BTreeMap::new();
        if conflict {
            errors.insert("resources".to_string(), vec!["shared".to_string()]);
        }
        RuleView {
            rule: Rule::NodeAffinity(rule),
            order: 0,
            digest: 7,
            errors,
        }
    }

    #[test]
    fn rules_config_is_proxmoxs_table_with_the_crms_verdict() {
        let text = rules_config_table(&[
            view("web", &["exec:a", "exec:b"], false, false),
            view("old", &["exec:c"], true, false),
            view("dup", &["exec:a"], false, true),
        ]);
        let want = "\
enabled  state                rule  type           resources      comment
1        in use               web   node-affinity  exec:a,exec:b  web tier
0        disabled             old   node-affinity  exec:c         web tier
1        ignored (conflicts)  dup   node-affinity  exec:a         web tier
";
        assert_eq!(text, want);
    }

    #[test]
    fn rules_list_is_the_api_list_by_order() {
        let mut second = view("b", &["exec:b"], false, false);
        second.order = 1;
        let text = rules_list_table(&[second, view("a", &["exec:a"], true, false)]);
        let want = "\
rule  type           order  resources  nodes          strict  disable  comment
a     node-affinity  0      exec:a     node1:2,node2  0       1        web tier
b     node-affinity  1      exec:b     node1:2,node2  0       0        web tier
";
        assert_eq!(text, want);
    }

    #[test]
    fn rules_list_shows_affinity_only_with_resource_affinity_rules() {
        let apart = RuleView {
            rule: Rule::ResourceAffinity(crate::domain::ResourceAffinityRule {
                id: "apart".into(),
                resources: ["exec:a", "exec:b"]
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect(),
                affinity: crate::domain::Affinity::Negative,
                disable: false,
                comment: None,
            }),
            order: 1,
            digest: 7,
            errors: Default::default(),
        };
        let list = rules_list_table(&[view("a", &["exec:a"], false, false), apart.clone()]);
        let want = "\
rule   type               order  resources      nodes          affinity  strict  disable  comment
a      node-affinity      0      exec:a         node1:2,node2            0       0        web tier
apart  resource-affinity  1      exec:a,exec:b                 negative          0
";
        assert_eq!(list, want);
        let config = rules_config_table(&[apart]);
        let want = "\
enabled  state   rule   type               resources      comment
1        in use  apart  resource-affinity  exec:a,exec:b
";
        assert_eq!(config, want);
    }

    #[test]
    fn config_prints_only_the_keys_that_are_set() {
        let sid: crate::domain::Sid = "exec:web".parse().unwrap();
        let plain = ResourceConfig::with_defaults(sid.clone());
        let mut tuned = ResourceConfig::with_defaults("exec:db".parse().unwrap());
        tuned.max_restart = 3;
        tuned.state = crate::domain::RequestedState::Stopped;
        tuned.comment = Some("main db".into());
        tuned.params.insert("cmd".into(), "sleep 1".into());
        let list = [plain, tuned].map(|config| ResourceView { config, digest: 1 });
        let want = "exec:web\n\nexec:db\n\tcmd sleep 1\n\tcomment main db\n\tmax_restart 3\n\tstate stopped\n\n";
        assert_eq!(resources_text(&list), want);
    }

    #[test]
    fn terminal_controls_are_shown_not_sent() {
        assert_eq!(escape_controls("plain\tline\n"), "plain\tline\n");
        assert_eq!(
            escape_controls("exec:\u{1b}[2Jx\r\u{7f}\u{9b}"),
            "exec:\\x1b[2Jx\\x0d\\x7f\\x9b"
        );
        let json = serde_json::to_string("a\u{1b}b\u{9b}").unwrap();
        let safe = escape_json_controls(&json);
        assert_eq!(safe, "\"a\\u001bb\\u009b\"");
        let back: String = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, "a\u{1b}b\u{9b}");
    }
}
