//! Text output of the query verbs (Proxmox's layout).

use std::fmt::Write as _;

use crate::api::cluster::ClusterStatus;
use crate::api::resources::ResourceView;

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
        let _ = writeln!(
            out,
            "member {} (id {}, {}, {})",
            m.name.as_deref().unwrap_or("?"),
            m.id,
            m.addr,
            if m.voter { "voter" } else { "learner" }
        );
    }
    out
}
