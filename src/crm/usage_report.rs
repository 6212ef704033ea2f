//! What each node reports about its capacity and load for the `static`
//! and `dynamic` schedulers (spec 3.11), when a report is worth a write,
//! and how the CRM's [`Scheduling`] input is built from the reports and
//! the resources' configured limits. Sans-IO: the daemon measures (see
//! `daemon::host_stats`) and passes the numbers and the time in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::select::used_nodes;
use super::status::{ManagerStatus, NodeState, ServiceRecord, ServiceState};
use super::usage::{Load, NodeStats, Scheduling, ServiceStats, Usage};
use crate::domain::{CrsMode, CrsOptions, NodeName, ResourceConfig, Sid};

/// Bytes in a MiB (`maxmem` is configured in MiB).
pub const MIB: u64 = 1024 * 1024;

/// A node writes its report at most this often.
pub const MIN_REPORT_INTERVAL_MS: u64 = 10_000;

/// A value has changed enough for a new report when it moved by more
/// than this fraction of its last reported value...
pub const RELATIVE_CHANGE: f64 = 0.05;

/// ...and by more than this fraction of the node's capacity (so that
/// small values jittering around zero are not reported).
pub const CAPACITY_CHANGE: f64 = 0.02;

/// One service's usage as measured on the node that runs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct ServiceUsageReport {
    /// CPU in cores, averaged since the node's previous report.
    pub cpu: f64,
    /// Memory in bytes.
    pub mem: u64,
    /// A CPU limit the node found for the service outside resources.cfg
    /// (a systemd unit's `CPUQuota`), in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_cpu: Option<f64>,
    /// A memory limit the node found outside resources.cfg (a systemd
    /// unit's `MemoryMax`), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_mem: Option<u64>,
}

/// What one node publishes (store document `node-usage/<node>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", derive(utoipa::ToSchema))]
pub struct NodeUsageReport {
    /// CPU count of the node (the CPUs this daemon may run on).
    pub maxcpu: f64,
    /// Memory of the node in bytes (`MemTotal`).
    pub maxmem: u64,
    /// CPU used on the node in cores (all processes, HA or not),
    /// averaged since the previous report.
    pub cpu: f64,
    /// Memory used on the node in bytes (`MemTotal - MemAvailable`).
    pub mem: u64,
    /// Usage of the HA services this node runs and could measure.
    #[serde(default)]
    pub services: BTreeMap<Sid, ServiceUsageReport>,
    /// Reports the node's daemon has written since it started, this one
    /// included (how often a node reports can be read from the store).
    #[serde(default)]
    pub seq: u64,
}

/// `new` differs from `old` by more than [`RELATIVE_CHANGE`] of `old`
/// and more than [`CAPACITY_CHANGE`] of `capacity`.
fn moved(old: f64, new: f64, capacity: f64) -> bool {
    let delta = (new - old).abs();
    delta > RELATIVE_CHANGE * old.abs() && delta > CAPACITY_CHANGE * capacity
}

/// Whether `new` is worth writing, given the report last written and when
/// (`now_ms` and `written_ms` on one clock): never sooner than
/// [`MIN_REPORT_INTERVAL_MS`] after the last write; then if the capacity,
/// the set of measured services or their limits changed, or any usage
/// moved meaningfully (see [`RELATIVE_CHANGE`], [`CAPACITY_CHANGE`]).
pub fn report_due(
    last: Option<(&NodeUsageReport, u64)>,
    new: &NodeUsageReport,
    now_ms: u64,
) -> bool {
    let Some((old, written_ms)) = last else {
        return true;
    };
    if now_ms.saturating_sub(written_ms) < MIN_REPORT_INTERVAL_MS {
        return false;
    }
    if old.maxcpu != new.maxcpu || old.maxmem != new.maxmem {
        return true;
    }
    let keys_differ = old.services.len() != new.services.len()
        || old
            .services
            .keys()
            .zip(new.services.keys())
            .any(|(a, b)| a != b);
    if keys_differ {
        return true;
    }
    let (maxcpu, maxmem) = (new.maxcpu, new.maxmem as f64);
    if moved(old.cpu, new.cpu, maxcpu) || moved(old.mem as f64, new.mem as f64, maxmem) {
        return true;
    }
    old.services
        .values()
        .zip(new.services.values())
        .any(|(a, b)| {
            a.limit_cpu != b.limit_cpu
                || a.limit_mem != b.limit_mem
                || moved(a.cpu, b.cpu, maxcpu)
                || moved(a.mem as f64, b.mem as f64, maxmem)
        })
}

/// The scheduler input of a CRM round: the `crs` options, every node's
/// reported capacity and usage, and for every configured resource its
/// limits (resources.cfg's `maxcpu`/`maxmem`, else a limit its node
/// reported, else 0: unlimited CPU, no memory counted) with the usage
/// measured on the node it is placed on (`placed`). A node without a
/// report has no statistics: `static`/`dynamic` then fall back to
/// `basic` with the CRM's warning (spec 3.11.1). `non_ha` stays empty:
/// ha-manager knows no guests outside HA; their load is part of a node's
/// measured usage (`dynamic`), and `static` counts configured limits only.
pub fn scheduling_from_reports<'a>(
    crs: CrsOptions,
    reports: &BTreeMap<NodeName, NodeUsageReport>,
    resources: impl IntoIterator<Item = (&'a ResourceConfig, Option<&'a NodeName>)>,
) -> Scheduling {
    let node_stats = reports
        .iter()
        .map(|(node, r)| {
            let stats = NodeStats {
                maxcpu: r.maxcpu,
                maxmem: r.maxmem as f64,
                cpu: r.cpu,
                mem: r.mem as f64,
            };
            (node.clone(), stats)
        })
        .collect();
    let mut service_stats = BTreeMap::new();
    for (config, placed) in resources {
        let sid = &config.sid;
        let measured = placed
            .and_then(|n| reports.get(n))
            .and_then(|r| r.services.get(sid))
            .or_else(|| reports.values().find_map(|r| r.services.get(sid)));
        let maxcpu = config
            .maxcpu
            .map(|c| c.cores())
            .or_else(|| measured.and_then(|m| m.limit_cpu))
            .unwrap_or(0.0);
        let maxmem = config
            .maxmem
            .map(|mib| mib.saturating_mul(MIB))
            .or_else(|| measured.and_then(|m| m.limit_mem))
            .unwrap_or(0);
        let stats = ServiceStats {
            maxcpu,
            maxmem: maxmem as f64,
            cpu: measured.map_or(0.0, |m| m.cpu),
            mem: measured.map_or(0.0, |m| m.mem as f64),
        };
        service_stats.insert(sid.clone(), stats);
    }
    Scheduling {
        crs,
        node_stats,
        service_stats,
        non_ha: BTreeMap::new(),
    }
}

/// A service counts as running for the usage model (spec 3.11.1):
/// started and reported running, or in another state with a node.
pub fn counts_as_running(sd: &ServiceRecord, has_current: bool) -> bool {
    if sd.state == ServiceState::Started {
        sd.running
    } else {
        has_current
    }
}

/// What `sid` adds to a node in `mode`; `None` when `static`/`dynamic`
/// have no statistics for it.
pub fn service_load(
    mode: CrsMode,
    scheduling: &Scheduling,
    sid: &Sid,
    running: bool,
) -> Option<Load> {
    if mode == CrsMode::Basic {
        return Some(Load::default());
    }
    let stats = scheduling.service_stats.get(sid)?;
    Some(if mode == CrsMode::Dynamic && running {
        Load::measured(stats)
    } else {
        Load::limits(stats)
    })
}

/// The usage model of `online` nodes in `mode` with every tracked
/// service added (spec 3.11.1): its current node and/or target node; in
/// `dynamic` a running service is already in its node's measured usage.
/// Falls back to `basic` if `mode` cannot be initialised.
pub fn usage_model(
    mode: CrsMode,
    online: &[NodeName],
    service_status: &BTreeMap<Sid, ServiceRecord>,
    scheduling: &Scheduling,
) -> Usage {
    let (mode, mut usage) = match Usage::init(mode, online, scheduling) {
        Ok(u) => (mode, u),
        Err(_) => (
            CrsMode::Basic,
            Usage::init(CrsMode::Basic, online, scheduling).unwrap_or_default(),
        ),
    };
    let dynamic = mode == CrsMode::Dynamic;
    for (sid, sd) in service_status {
        let (current, target) = used_nodes(sd, |n| usage.contains_key(n));
        if current.is_none() && target.is_none() {
            continue;
        }
        let running = counts_as_running(sd, current.is_some());
        let load = service_load(mode, scheduling, sid, running).unwrap_or_default();
        let (current, target) = (current.cloned(), target.cloned());
        if let Some(node) = current {
            if !(dynamic && running) {
                usage.add(&node, &load);
            }
        }
        if let Some(node) = target {
            usage.add(&node, &load);
        }
    }
    usage
}

/// The imbalance automatic rebalancing compares with its threshold (spec
/// 3.11.6) for the manager status `ms`: `None` in `basic`, or when the
/// configured mode cannot be initialised (the CRM then schedules `basic`).
pub fn cluster_imbalance(ms: &ManagerStatus, scheduling: &Scheduling) -> Option<f64> {
    let mode = scheduling.crs.mode;
    if mode == CrsMode::Basic {
        return None;
    }
    let online: Vec<NodeName> = ms
        .node_status
        .iter()
        .filter(|(_, s)| **s == NodeState::Online)
        .map(|(n, _)| n.clone())
        .collect();
    Usage::init(mode, &online, scheduling).ok()?;
    Some(usage_model(mode, &online, &ms.service_status, scheduling).imbalance())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resource::CpuLimit;

    const GIB: u64 = 1024 * MIB;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    fn report(cpu: f64, mem: u64) -> NodeUsageReport {
        NodeUsageReport {
            maxcpu: 8.0,
            maxmem: 16 * GIB,
            cpu,
            mem,
            services: BTreeMap::new(),
            seq: 0,
        }
    }

    #[test]
    fn reports_are_rate_limited_and_only_meaningful_changes_count() {
        let old = report(2.0, 4 * GIB);
        assert!(report_due(None, &old, 0));
        // A big change, but too soon.
        assert!(!report_due(
            Some((&old, 1_000)),
            &report(6.0, 4 * GIB),
            10_999
        ));
        assert!(report_due(
            Some((&old, 1_000)),
            &report(6.0, 4 * GIB),
            11_000
        ));
        // 2.0 -> 2.12 cores: 6 % relative but only 1.5 % of 8 cores.
        assert!(!report_due(Some((&old, 0)), &report(2.12, 4 * GIB), 60_000));
        // 2.0 -> 2.2: 10 % and 2.5 % of capacity.
        assert!(report_due(Some((&old, 0)), &report(2.2, 4 * GIB), 60_000));
        // Memory: 4 GiB -> 4.1 GiB is 2.5 % relative, 0.6 % of capacity.
        assert!(!report_due(
            Some((&old, 0)),
            &report(2.0, 4 * GIB + 100 * MIB),
            60_000
        ));
        // Near zero only the capacity floor counts.
        let idle = report(0.0, 0);
        assert!(!report_due(Some((&idle, 0)), &report(0.1, 0), 60_000));
        // A service appearing is always worth a report.
        let mut with = idle.clone();
        with.services
            .insert(sid("exec:a"), ServiceUsageReport::default());
        assert!(report_due(Some((&idle, 0)), &with, 60_000));
        assert!(!report_due(Some((&with, 0)), &with.clone(), 60_000));
        let mut busy = with.clone();
        busy.services.get_mut(&sid("exec:a")).unwrap().cpu = 1.0;
        assert!(report_due(Some((&with, 0)), &busy, 60_000));
    }

    /// Counts the writes of ten minutes of samples every 2 s.
    fn writes(sample: impl Fn(u64) -> NodeUsageReport) -> usize {
        let mut last: Option<(NodeUsageReport, u64)> = None;
        let mut count = 0;
        for step in 0..300u64 {
            let now = step * 2_000;
            let r = sample(step);
            if report_due(last.as_ref().map(|(r, at)| (r, *at)), &r, now) {
                count += 1;
                last = Some((r, now));
            }
        }
        count
    }

    #[test]
    fn write_count_over_ten_minutes() {
        // Steady load with +-3 % noise: the first report only.
        let noisy = |step: u64| {
            let wobble = if step.is_multiple_of(2) { 1.03 } else { 0.97 };
            report(2.0 * wobble, (4.0 * wobble * GIB as f64) as u64)
        };
        assert_eq!(writes(noisy), 1);
        // One step change after 5 minutes: one more.
        assert_eq!(writes(|s| report(if s < 150 { 1.0 } else { 6.0 }, GIB)), 2);
        // The worst case, a big change every sample: one per 10 s.
        assert_eq!(writes(|s| report((s % 2 * 7) as f64, GIB)), 60);
    }

    #[test]
    fn scheduling_takes_configured_limits_first_then_reported_ones() {
        let mut reports = BTreeMap::new();
        let mut r1 = report(3.0, 5 * GIB);
        r1.services.insert(
            sid("systemd:db"),
            ServiceUsageReport {
                cpu: 0.5,
                mem: GIB,
                limit_cpu: Some(2.0),
                limit_mem: Some(2 * GIB),
            },
        );
        reports.insert(n("node1"), r1);
        let mut web = ResourceConfig::with_defaults(sid("exec:web"));
        web.maxcpu = CpuLimit::from_cores(1.5);
        web.maxmem = Some(512);
        let db = ResourceConfig::with_defaults(sid("systemd:db"));
        let mut db_set = db.clone();
        db_set.maxmem = Some(1024);
        let node1 = n("node1");
        let s = scheduling_from_reports(
            CrsOptions::default(),
            &reports,
            [(&web, None), (&db, Some(&node1))],
        );
        assert_eq!(s.node_stats[&node1].maxmem, (16 * GIB) as f64);
        assert_eq!(s.node_stats[&node1].cpu, 3.0);
        let w = s.service_stats[&sid("exec:web")];
        assert_eq!((w.maxcpu, w.maxmem, w.cpu), (1.5, (512 * MIB) as f64, 0.0));
        let d = s.service_stats[&sid("systemd:db")];
        assert_eq!(
            (d.maxcpu, d.maxmem, d.cpu, d.mem),
            (2.0, (2 * GIB) as f64, 0.5, GIB as f64)
        );
        let s = scheduling_from_reports(CrsOptions::default(), &reports, [(&db_set, None)]);
        assert_eq!(s.service_stats[&sid("systemd:db")].maxmem, GIB as f64);
        assert!(s.non_ha.is_empty());
    }

    #[test]
    fn imbalance_needs_a_non_basic_mode_and_every_online_node() {
        let mut ms = ManagerStatus::default();
        for node in ["node1", "node2"] {
            ms.node_status.insert(n(node), NodeState::Online);
        }
        let mut rec = ServiceRecord::new(ServiceState::Started, n("node1"));
        rec.running = true;
        ms.service_status.insert(sid("exec:a"), rec);
        let mut a = ResourceConfig::with_defaults(sid("exec:a"));
        a.maxcpu = CpuLimit::from_cores(4.0);
        a.maxmem = Some(8 * 1024);
        let mut reports = BTreeMap::new();
        reports.insert(n("node1"), report(0.0, 0));
        let mut crs = CrsOptions::default();
        let sched = |crs, reports: &BTreeMap<_, _>| {
            scheduling_from_reports(
                crs,
                reports,
                [(&a, Some(&ms.service_status[&sid("exec:a")].node))],
            )
        };
        assert_eq!(cluster_imbalance(&ms, &sched(crs, &reports)), None);
        crs.mode = CrsMode::Static;
        // node2 has no report: the CRM falls back to basic.
        assert_eq!(cluster_imbalance(&ms, &sched(crs, &reports)), None);
        reports.insert(n("node2"), report(0.0, 0));
        // node1 at half its CPU and memory, node2 empty: CV 1.
        let cv = cluster_imbalance(&ms, &sched(crs, &reports)).unwrap();
        assert!((cv - 1.0).abs() < 1e-9, "{cv}");
    }
}
