//! `ha-manager status`: Proxmox's lines (spec 7.2) in the local time of
//! this process, the node lines and marks of `crm::status_view`, or the
//! typed entries as JSON.

use chrono::{Local, TimeZone};
use serde_json::json;

use super::client::{routes, ApiClient};
use super::commands::OutputFormat;
use super::{say, say_json};
use crate::api::crs::CrsUsageView;
use crate::api::status::{StatusEntry, StatusSnapshot};
use crate::crm::status_view::status_text;

/// Unix seconds as Perl's scalar `localtime` writes them (Proxmox's
/// status): `Sun Nov 22 23:10:36 2026`, in the zone of this process
/// (`TZ`, else `/etc/localtime`).
pub fn local_ctime(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| Local.timestamp_opt(s, 0).single())
        .map_or_else(
            || secs.to_string(),
            |t| t.format("%a %b %e %H:%M:%S %Y").to_string(),
        )
}

/// The status lines, `<type> <status>`, with times written by `time`.
pub fn status_lines(entries: &[StatusEntry], time: &dyn Fn(u64) -> String) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.kind);
        out.push(' ');
        out.push_str(&status_text(e, time));
        out.push('\n');
    }
    out
}

/// The scheduler lines of `status --verbose`: the configured mode; in
/// `static`/`dynamic` each node's reported capacity and usage; with
/// automatic rebalancing on, its settings and the current imbalance (the
/// coefficient of variation the CRM compares with the threshold).
fn scheduling_lines(crs: &crate::api::crs::CrsView, usage: &CrsUsageView) -> String {
    let get = |key: &str| crs.options.get(key).map_or("", String::as_str);
    let mut out = format!(
        "scheduler mode: {} (rebalance on start: {})\n",
        get("ha"),
        get("ha-rebalance-on-start")
    );
    if get("ha") != "basic" {
        const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
        for (node, r) in &usage.nodes {
            out.push_str(&format!(
                "node usage {node}: cpu {:.2} of {} cores, memory {:.2} of {:.2} GiB, {} services measured\n",
                r.cpu,
                r.maxcpu,
                r.mem as f64 / GIB,
                r.maxmem as f64 / GIB,
                r.services.len()
            ));
        }
    }
    if get("ha-auto-rebalance") == "1" {
        out.push_str(&format!(
            "auto rebalance: method {}, threshold {}, margin {}, hold {} rounds\n",
            get("ha-auto-rebalance-method"),
            get("ha-auto-rebalance-threshold"),
            get("ha-auto-rebalance-margin"),
            get("ha-auto-rebalance-hold-duration")
        ));
        match usage.imbalance {
            Some(cv) => out.push_str(&format!("current imbalance: {cv:.2}\n")),
            None => out.push_str(
                "current imbalance: unknown (scheduler mode basic, or an online node without a usage report)\n",
            ),
        }
    }
    out
}

/// Runs `status`: `--verbose` adds the scheduler lines, then "full
/// cluster state:" and the manager status document, as Proxmox does.
pub fn status(client: &ApiClient, verbose: bool, format: OutputFormat) -> anyhow::Result<()> {
    let entries: Vec<StatusEntry> = client.get(routes::STATUS_CURRENT.at(&[])?)?;
    let full: Option<(StatusSnapshot, CrsUsageView)> = if verbose {
        Some((
            client.get(routes::STATUS_MANAGER.at(&[])?)?,
            client.get(routes::CRS_USAGE.at(&[])?)?,
        ))
    } else {
        None
    };
    match format {
        OutputFormat::Json => match full {
            Some((f, usage)) => {
                say_json(&json!({"current": entries, "manager_status": f, "scheduling": usage}))
            }
            None => say_json(&entries),
        },
        OutputFormat::Text => {
            let mut text = status_lines(&entries, &local_ctime);
            if let Some((_, usage)) = &full {
                let crs: crate::api::crs::CrsView = client.get(routes::CRS.at(&[])?)?;
                text.push_str(&scheduling_lines(&crs, usage));
            }
            if let Some((f, _)) = full {
                text.push_str("full cluster state:\n");
                text.push_str(&serde_json::to_string_pretty(&f)?);
                text.push('\n');
            }
            say(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduling_lines_show_rebalancing_only_when_on() {
        let mut crs = crate::domain::CrsOptions::default();
        let view = |crs: &crate::domain::CrsOptions| crate::api::crs::CrsView {
            options: crate::api::crs::crs_values(crs),
            digest: 3,
        };
        let mut usage = CrsUsageView {
            mode: "basic".into(),
            imbalance: None,
            nodes: std::collections::BTreeMap::new(),
        };
        assert_eq!(
            scheduling_lines(&view(&crs), &usage),
            "scheduler mode: basic (rebalance on start: 0)\n"
        );
        crs.mode = crate::domain::CrsMode::Static;
        crs.auto_rebalance = true;
        assert_eq!(
            scheduling_lines(&view(&crs), &usage),
            "scheduler mode: static (rebalance on start: 0)\n\
             auto rebalance: method bruteforce, threshold 0.3, margin 0.1, hold 3 rounds\n\
             current imbalance: unknown (scheduler mode basic, or an online node without a usage report)\n"
        );
        usage.imbalance = Some(1.0 / 3.0);
        usage.nodes.insert(
            "node1".into(),
            crate::crm::NodeUsageReport {
                maxcpu: 2.0,
                maxmem: 8 << 30,
                cpu: 0.5,
                mem: 2 << 30,
                services: std::collections::BTreeMap::new(),
                seq: 1,
            },
        );
        assert_eq!(
            scheduling_lines(&view(&crs), &usage),
            "scheduler mode: static (rebalance on start: 0)\n\
             node usage node1: cpu 0.50 of 2 cores, memory 2.00 of 8.00 GiB, 0 services measured\n\
             auto rebalance: method bruteforce, threshold 0.3, margin 0.1, hold 3 rounds\n\
             current imbalance: 0.33\n"
        );
    }
}
