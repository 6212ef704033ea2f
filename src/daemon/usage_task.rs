//! The usage reporter of a node: samples the host and the HA services it
//! runs every [`SAMPLE_INTERVAL`] (`host_stats`), averages CPU over the
//! last [`WINDOW`], and writes the report to `node-usage/<node>` when the
//! core's [`report_due`] says so (at most once per 10 s, and only on a
//! meaningful change). The CRM builds its scheduler input from these
//! documents. Measured per service: a systemd unit's cgroup, an exec
//! service's process group; OCF resources are not measured (an agent
//! script's processes cannot be told apart from others honestly), so
//! they count only in the node's usage.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raft::{ClusterStore, DocKey};

use super::config::NodeConfig;
use super::host_stats::{self, CpuTimes, ProcessGroups, UnitInfo};
use super::snapshot;
use crate::agents::{ExecAgent, SystemdAgent};
use crate::api::docs;
use crate::crm::usage_report::report_due;
use crate::crm::{NodeUsageReport, ServiceUsageReport};
use crate::domain::{NodeName, ResourceConfig, Sid};

/// How often the host is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// CPU usage is averaged over this long.
pub const WINDOW: Duration = Duration::from_secs(10);
/// A unit's cgroup and limits are asked of systemd again after this long.
const UNIT_INFO_TTL: Duration = Duration::from_secs(60);
/// Longest `systemctl show` may take.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// Usage reports this daemon wrote (`/metrics`:
/// `ha_node_usage_reports_total`).
pub static REPORTS_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// How a service is measured.
#[derive(Debug, Clone)]
enum Probe {
    /// The process group an exec agent's pid file records.
    Exec(PathBuf),
    /// A systemd unit's cgroup.
    Systemd(String),
}

/// One sample: the host's CPU ticks and each service's CPU time
/// (seconds) and memory (bytes).
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    cpu: CpuTimes,
    services: BTreeMap<Sid, (f64, u64)>,
}

/// Everything one sampling round reads from the host.
struct Measured {
    sample: Sample,
    maxcpu: usize,
    maxmem: u64,
    mem_used: u64,
    limits: BTreeMap<Sid, (Option<f64>, Option<u64>)>,
}

/// What a sampling round remembers between rounds (blocking side).
#[derive(Default)]
struct Prober {
    units: BTreeMap<String, (Instant, UnitInfo)>,
    ticks_per_second: f64,
    page_size: u64,
}

impl Prober {
    fn new() -> Self {
        use nix::unistd::{sysconf, SysconfVar};
        let value = |var, default: i64| {
            sysconf(var)
                .ok()
                .flatten()
                .map_or(default, i64::from)
                .max(1)
        };
        Prober {
            units: BTreeMap::new(),
            ticks_per_second: value(SysconfVar::CLK_TCK, 100) as f64,
            page_size: value(SysconfVar::PAGE_SIZE, 4096) as u64,
        }
    }

    fn unit_info(&mut self, sid: &Sid, unit: &str, agent: &SystemdAgent) -> Option<UnitInfo> {
        if let Some((at, info)) = self.units.get(unit) {
            // A unit that is not running is asked about again sooner.
            let ttl = if info.control_group.is_some() {
                UNIT_INFO_TTL
            } else {
                WINDOW
            };
            if at.elapsed() < ttl {
                return Some(info.clone());
            }
        }
        let text = match agent.show_cgroup_and_limits(SYSTEMCTL_TIMEOUT) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!("{sid}: no usage measured: {e}");
                return None;
            }
        };
        let info = host_stats::parse_systemctl_show(&text, &format!("systemctl show {unit}"))
            .map_err(|e| tracing::warn!("{sid}: {e}"))
            .ok()?;
        self.units
            .insert(unit.to_string(), (Instant::now(), info.clone()));
        Some(info)
    }

    /// Reads the host and every probe; `None` (logged) if the node's own
    /// files cannot be read.
    fn measure(
        &mut self,
        probes: &BTreeMap<Sid, (Probe, Option<SystemdAgent>)>,
    ) -> Option<Measured> {
        let read = || -> Result<_, host_stats::StatsError> {
            let (cpus, total) = host_stats::read_capacity()?;
            let mem = host_stats::read_meminfo()?;
            let cpu = host_stats::read_cpu_times()?;
            Ok((cpus, total.max(mem.total), mem.used(), cpu))
        };
        let (maxcpu, maxmem, mem_used, cpu) = match read() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("node usage not measured: {e}");
                return None;
            }
        };
        let groups = if probes.values().any(|(p, _)| matches!(p, Probe::Exec(_))) {
            host_stats::scan_process_groups()
                .map_err(|e| tracing::warn!("service usage not measured: {e}"))
                .unwrap_or_default()
        } else {
            ProcessGroups::default()
        };
        let mut services = BTreeMap::new();
        let mut limits = BTreeMap::new();
        for (sid, (probe, agent)) in probes {
            match (probe, agent) {
                (Probe::Exec(pid_file), _) => {
                    if let Some(usage) = self.exec_usage(pid_file, &groups) {
                        services.insert(sid.clone(), usage);
                    }
                }
                (Probe::Systemd(unit), Some(agent)) => {
                    let Some(info) = self.unit_info(sid, unit, agent) else {
                        continue;
                    };
                    limits.insert(sid.clone(), (info.cpu_quota, info.memory_max));
                    let Some(cg) = &info.control_group else {
                        continue;
                    };
                    match host_stats::read_cgroup(cg) {
                        Ok((usec, mem)) => {
                            services.insert(sid.clone(), (usec as f64 / 1e6, mem));
                        }
                        // The unit stopped since systemd was asked: ask again.
                        Err(e) => {
                            tracing::debug!("{sid}: {e}");
                            self.units.remove(unit);
                        }
                    }
                }
                (Probe::Systemd(_), None) => {}
            }
        }
        Some(Measured {
            sample: Sample {
                at: Instant::now(),
                cpu,
                services,
            },
            maxcpu,
            maxmem,
            mem_used,
            limits,
        })
    }

    fn exec_usage(&self, pid_file: &Path, groups: &ProcessGroups) -> Option<(f64, u64)> {
        let (pgid, start_time) = ExecAgent::recorded_group_at(pid_file)?;
        // A recycled pid is not our service.
        if groups.start_times.get(&pgid) != Some(&start_time) {
            return None;
        }
        let (ticks, pages) = groups.groups.get(&pgid).copied()?;
        Some((
            ticks as f64 / self.ticks_per_second,
            pages.saturating_mul(self.page_size),
        ))
    }
}

/// How each resource placed on `node` is measured (none for OCF).
fn probes(
    node: &NodeName,
    resources: &BTreeMap<Sid, crate::crm::ConfiguredResource>,
    runtime_dir: &Path,
) -> BTreeMap<Sid, (Probe, Option<SystemdAgent>)> {
    let mut out = BTreeMap::new();
    for (sid, r) in resources.iter().filter(|(_, r)| &r.node == node) {
        if let Some(probe) = probe_of(&r.config, runtime_dir) {
            out.insert(sid.clone(), probe);
        }
    }
    out
}

fn probe_of(config: &ResourceConfig, runtime_dir: &Path) -> Option<(Probe, Option<SystemdAgent>)> {
    let (kind, name) = (config.sid.kind(), config.sid.name());
    match kind {
        "exec" => ExecAgent::from_params(name, &config.params, runtime_dir)
            .ok()
            .map(|a| (Probe::Exec(a.pid_file().to_path_buf()), None)),
        "systemd" => {
            SystemdAgent::from_params(name, &config.params, runtime_dir, Path::new("systemctl"))
                .ok()
                .map(|a| (Probe::Systemd(a.unit().to_string()), Some(a)))
        }
        _ => None,
    }
}

/// The report over the samples in `window` (oldest first, the newest
/// last): the node's CPU averaged between the oldest and the newest
/// sample; a service's between the oldest sample that measured it and the
/// newest (one measured only now has no rate yet and is left out).
fn report_of(window: &VecDeque<Sample>, m: &Measured) -> Option<NodeUsageReport> {
    let (first, last) = (window.front()?, window.back()?);
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let mut services = BTreeMap::new();
    for (sid, (cpu_now, mem)) in &last.services {
        let earlier = window
            .iter()
            .take(window.len() - 1)
            .find_map(|s| s.services.get(sid).map(|(cpu, _)| (s.at, *cpu)));
        let Some((then, cpu_then)) = earlier else {
            continue;
        };
        let span = last.at.duration_since(then).as_secs_f64();
        if span <= 0.0 {
            continue;
        }
        let cpu = ((cpu_now - cpu_then) / span).max(0.0);
        let (limit_cpu, limit_mem) = m.limits.get(sid).copied().unwrap_or_default();
        services.insert(
            sid.clone(),
            ServiceUsageReport {
                cpu,
                mem: *mem,
                limit_cpu,
                limit_mem,
            },
        );
    }
    Some(NodeUsageReport {
        maxcpu: m.maxcpu as f64,
        maxmem: m.maxmem,
        cpu: last.cpu.cores_since(&first.cpu),
        mem: m.mem_used,
        services,
        seq: 0,
    })
}

/// Samples and reports until aborted.
pub async fn run(config: NodeConfig, store: ClusterStore) {
    let source = format!("{}/usage", config.node);
    let started = Instant::now();
    let prober = std::sync::Arc::new(std::sync::Mutex::new(Prober::new()));
    let mut window: VecDeque<Sample> = VecDeque::new();
    let mut last: Option<(NodeUsageReport, u64)> = None;
    let key = DocKey::Config(docs::node_usage_doc(config.node.as_str()));
    // The first report goes out after one second: the shortest window
    // that gives a CPU rate.
    let mut pause = Duration::from_secs(1);
    if let Some(m) = sample(&prober, BTreeMap::new()).await {
        window.push_back(m.sample);
    }
    loop {
        tokio::time::sleep(pause).await;
        pause = SAMPLE_INTERVAL;
        let snap = snapshot::read(&store);
        let probes = probes(&config.node, &snap.resources, &config.agent_runtime_dir);
        let Some(m) = sample(&prober, probes).await else {
            continue;
        };
        window.push_back(m.sample.clone());
        // Keep the newest sample at least WINDOW old, and the ones after it.
        while window.len() > 2 && window[1].at.elapsed() >= WINDOW {
            window.pop_front();
        }
        let Some(mut report) = report_of(&window, &m) else {
            continue;
        };
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !report_due(last.as_ref().map(|(r, at)| (r, *at)), &report, now_ms) {
            continue;
        }
        report.seq = last.as_ref().map_or(0, |(r, _)| r.seq) + 1;
        let text = match serde_json::to_string(&report) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{source}: encoding the usage report: {e}");
                continue;
            }
        };
        match store.put_doc(key.clone(), None, text).await {
            Ok(_) => {
                REPORTS_WRITTEN.fetch_add(1, Ordering::Relaxed);
                last = Some((report, now_ms));
            }
            Err(e) => tracing::debug!("{source}: writing the usage report failed: {e}"),
        }
    }
}

/// One sampling round off the runtime (it reads /proc and may run
/// `systemctl`).
async fn sample(
    prober: &std::sync::Arc<std::sync::Mutex<Prober>>,
    probes: BTreeMap<Sid, (Probe, Option<SystemdAgent>)>,
) -> Option<Measured> {
    let prober = prober.clone();
    tokio::task::spawn_blocking(move || {
        let mut p = match prober.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        p.measure(&probes)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_averages_over_the_window_and_skips_new_services() {
        let t0 = Instant::now();
        let sid: Sid = "exec:a".parse().unwrap();
        let fresh: Sid = "exec:b".parse().unwrap();
        let later: Sid = "exec:c".parse().unwrap();
        let first = Sample {
            at: t0,
            cpu: CpuTimes {
                busy: 0,
                total: 1000,
                cpus: 4,
            },
            services: [(sid.clone(), (10.0, 1))].into(),
        };
        let last = Sample {
            at: t0 + Duration::from_secs(10),
            cpu: CpuTimes {
                busy: 500,
                total: 2000,
                cpus: 4,
            },
            services: [
                (sid.clone(), (25.0, 4096)),
                (fresh.clone(), (3.0, 1)),
                (later.clone(), (3.0, 1)),
            ]
            .into(),
        };
        let m = Measured {
            sample: last.clone(),
            maxcpu: 4,
            maxmem: 1 << 30,
            mem_used: 1 << 29,
            limits: BTreeMap::new(),
        };
        let middle = Sample {
            at: t0 + Duration::from_secs(6),
            cpu: CpuTimes {
                busy: 300,
                total: 1600,
                cpus: 4,
            },
            services: [(sid.clone(), (19.0, 1)), (later.clone(), (1.0, 1))].into(),
        };
        let window: VecDeque<Sample> = [first, middle, last].into();
        let r = report_of(&window, &m).unwrap();
        // Measured from 6 s on: 2 s of CPU in 4 s.
        assert!((r.services[&later].cpu - 0.5).abs() < 1e-9);
        // Half of all ticks busy on 4 CPUs: 2 cores; 15 s CPU in 10 s.
        assert!((r.cpu - 2.0).abs() < 1e-9, "{}", r.cpu);
        assert!((r.services[&sid].cpu - 1.5).abs() < 1e-9);
        assert_eq!(r.services[&sid].mem, 4096);
        assert!(!r.services.contains_key(&fresh));
        assert_eq!((r.maxcpu, r.maxmem, r.mem), (4.0, 1 << 30, 1 << 29));
    }
}
