//! Text output of the query verbs (Proxmox's layout).

use std::fmt::Write as _;

use crate::api::cluster::ClusterStatus;
use crate::api::resources::ResourceView;
use crate::api::rules::RuleView;

/// `config`: `type:name`, then `<TAB>key value` per set property, blank line.
pub fn resources_text(list: &[ResourceView]) -> String {
    let mut out = String::new();
    for r in list {
        let c = &r.config;
        let _ = writeln!(out, "{}", c.sid);
        let mut props: Vec<(String, String)> = vec![
            ("failback".into(), u8::from(c.failback).to_string()),
            ("max_relocate".into(), c.max_relocate.to_string()),
            ("max_restart".into(), c.max_restart.to_string()),
            ("state".into(), c.state.as_str().to_string()),
        ];
        if let Some(g) = &c.group {
            props.push(("group".into(), g.clone()));
        }
        if let Some(cm) = &c.comment {
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

/// `rules list`: one row per rule in file order, with whether the CRM uses
/// it (`in use`, `ignored (conflicts)`, or disabled).
pub fn rules_table(views: &[RuleView]) -> String {
    let header = [
        "enabled",
        "state",
        "rule",
        "type",
        "resources",
        "nodes",
        "comment",
    ];
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            let rule = &v.rule;
            let state = if rule.disable {
                "disabled"
            } else if v.errors.is_empty() {
                "in use"
            } else {
                "ignored (conflicts)"
            };
            let join = |items: Vec<String>| items.join(",");
            [
                u8::from(!rule.disable).to_string(),
                state.to_string(),
                rule.id.clone(),
                v.kind.clone(),
                join(rule.resources.iter().map(ToString::to_string).collect()),
                join(
                    rule.nodes
                        .iter()
                        .map(|(node, prio)| match prio {
                            0 => node.to_string(),
                            p => format!("{node}:{p}"),
                        })
                        .collect(),
                ),
                rule.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
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
            rule,
            kind: "node-affinity".into(),
            order: 0,
            digest: 7,
            errors,
        }
    }

    #[test]
    fn rules_table_names_the_state_of_each_rule() {
        let text = rules_table(&[
            view("web", &["exec:a", "exec:b"], false, false),
            view("old", &["exec:c"], true, false),
            view("dup", &["exec:a"], false, true),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("enabled  state"), "{text}");
        assert!(lines[1].starts_with("1        in use"), "{text}");
        assert!(
            lines[1].contains("exec:a,exec:b  node1:2,node2  web tier"),
            "{text}"
        );
        assert!(lines[2].starts_with("0        disabled"), "{text}");
        assert!(lines[3].contains("ignored (conflicts)  dup"), "{text}");
    }
}
