//! What the daemon measures on its host for the `static` and `dynamic`
//! schedulers: the node's capacity (`/proc/cpuinfo`, `/proc/meminfo`),
//! its CPU and memory use (`/proc/stat`, `/proc/meminfo`), and per HA
//! service the CPU time and memory of a systemd unit's cgroup
//! (`cpu.stat`, `memory.current`) or of an exec service's process group
//! (`/proc/<pid>/stat`). The parsers take text, so they are tested on
//! fixtures as well as on this machine's files; every parse error names
//! the file, the line and the field.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file did not have the expected format.
    #[error("{file}:{line}: field '{field}': {message}")]
    Parse {
        /// The file.
        file: String,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn parse_error(file: &str, line: usize, field: &str, message: impl Into<String>) -> StatsError {
    StatsError::Parse {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, StatsError> {
    fs::read_to_string(path).map_err(|source| StatsError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// The number of `processor` entries of `/proc/cpuinfo`.
pub fn parse_cpuinfo_count(text: &str, file: &str) -> Result<usize, StatsError> {
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim() == "processor" {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| parse_error(file, i + 1, "processor", "expected a CPU number"))?;
            count += 1;
        }
    }
    if count == 0 {
        return Err(parse_error(file, 0, "processor", "no processor entries"));
    }
    Ok(count)
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// Memory of the node.
    pub total: u64,
    /// Memory available for new work without swapping.
    pub available: u64,
}

impl MemInfo {
    /// Memory in use: total minus available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

/// Parses `/proc/meminfo` (`MemTotal:  16316412 kB`).
pub fn parse_meminfo(text: &str, file: &str) -> Result<MemInfo, StatsError> {
    let (mut total, mut available) = (None, None);
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        let mut words = value.split_whitespace();
        let number = words.next().and_then(|w| w.parse::<u64>().ok());
        let bytes = match (number, words.next(), words.next()) {
            (Some(n), Some("kB"), None) => n.saturating_mul(1024),
            (Some(n), None, None) => n,
            _ => {
                return Err(parse_error(
                    file,
                    i + 1,
                    key,
                    format!("expected '<number> kB', got '{}'", value.trim()),
                ))
            }
        };
        *slot = Some(bytes);
    }
    let missing = |field: &str| parse_error(file, 0, field, "missing");
    Ok(MemInfo {
        total: total.ok_or_else(|| missing("MemTotal"))?,
        available: available.ok_or_else(|| missing("MemAvailable"))?,
    })
}

/// The aggregate CPU line of `/proc/stat`, in clock ticks summed over
/// every CPU, and the number of per-CPU lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent working (all but idle and iowait).
    pub busy: u64,
    /// All ticks.
    pub total: u64,
    /// `cpuN` lines: CPUs online.
    pub cpus: usize,
}

impl CpuTimes {
    /// Cores in use between `earlier` and `self`: the busy share of the
    /// elapsed ticks times the CPUs.
    pub fn cores_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        busy as f64 / total as f64 * self.cpus as f64
    }
}

/// Parses `/proc/stat`: `cpu  user nice system idle iowait irq softirq
/// steal [guest guest_nice]` (guest time is already in user time).
pub fn parse_proc_stat(text: &str, file: &str) -> Result<CpuTimes, StatsError> {
    const NAMES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    let mut times = None;
    let mut cpus = 0;
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => {
                let mut values = [0u64; 8];
                for (slot, name) in values.iter_mut().zip(NAMES) {
                    let word = words.next();
                    *slot = word.and_then(|w| w.parse().ok()).ok_or_else(|| {
                        parse_error(
                            file,
                            i + 1,
                            &format!("cpu.{name}"),
                            format!("expected a number of ticks, got '{}'", word.unwrap_or("")),
                        )
                    })?;
                }
                let total: u64 = values.iter().sum();
                times = Some((total - values[3] - values[4], total));
            }
            Some(w) if w.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    let (busy, total) = times.ok_or_else(|| parse_error(file, 0, "cpu", "no 'cpu' line"))?;
    Ok(CpuTimes {
        busy,
        total,
        cpus: cpus.max(1),
    })
}

/// The fields of `/proc/<pid>/stat` a process's usage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidUsage {
    /// Process group.
    pub pgrp: i32,
    /// User plus system time, in clock ticks.
    pub ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str, file: &str) -> Result<PidUsage, StatsError> {
    let close = text
        .rfind(')')
        .ok_or_else(|| parse_error(file, 1, "comm", "no ')' after the command name"))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let field = |n: usize, name: &str| -> Result<u64, StatsError> {
        fields
            .get(n - 3)
            .and_then(|w| w.parse::<u64>().ok())
            .ok_or_else(|| parse_error(file, 1, name, format!("field {n} is not a number")))
    };
    let pgrp = fields
        .get(5 - 3)
        .and_then(|w| w.parse::<i32>().ok())
        .ok_or_else(|| parse_error(file, 1, "pgrp", "field 5 is not a number"))?;
    Ok(PidUsage {
        pgrp,
        ticks: field(14, "utime")?.saturating_add(field(15, "stime")?),
        rss_pages: field(24, "rss")?,
        start_time: field(22, "starttime")?,
    })
}

/// `usage_usec` of a cgroup's `cpu.stat`: CPU time in microseconds.
pub fn parse_cgroup_cpu_usec(text: &str, file: &str) -> Result<u64, StatsError> {
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if words.next() == Some("usage_usec") {
            return words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| parse_error(file, i + 1, "usage_usec", "expected a number"));
        }
    }
    Err(parse_error(file, 0, "usage_usec", "missing"))
}

/// A cgroup's `memory.current`: bytes in use.
pub fn parse_memory_current(text: &str, file: &str) -> Result<u64, StatsError> {
    text.trim()
        .parse()
        .map_err(|_| parse_error(file, 1, "memory.current", "expected a number of bytes"))
}

/// What `systemctl show -p ControlGroup,CPUQuotaPerSecUSec,MemoryMax`
/// says about a unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitInfo {
    /// The unit's cgroup below the cgroup root (`None`: not running).
    pub control_group: Option<String>,
    /// `CPUQuota` in cores (`None`: no quota).
    pub cpu_quota: Option<f64>,
    /// `MemoryMax` in bytes (`None`: no limit).
    pub memory_max: Option<u64>,
}

/// A systemd time span (`1s 500ms`, `200ms`, `2s`) in seconds.
fn parse_timespan(text: &str) -> Option<f64> {
    let mut seconds = 0.0;
    for word in text.split_whitespace() {
        let split = word.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit) = word.split_at(split);
        let value: f64 = number.parse().ok()?;
        let scale = match unit {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        seconds += value * scale;
    }
    Some(seconds)
}

/// Parses the `Key=Value` lines of `systemctl show`.
pub fn parse_systemctl_show(text: &str, file: &str) -> Result<UnitInfo, StatsError> {
    let mut info = UnitInfo::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let bad =
            |what: &str| parse_error(file, i + 1, key, format!("expected {what}, got '{value}'"));
        match key {
            "ControlGroup" => {
                info.control_group = Some(value.to_string()).filter(|v| !v.is_empty());
            }
            "CPUQuotaPerSecUSec" if value != "infinity" => {
                let per_second = parse_timespan(value).ok_or_else(|| bad("a time span"))?;
                info.cpu_quota = Some(per_second).filter(|c| *c > 0.0);
            }
            "MemoryMax" if value != "infinity" => {
                info.memory_max = Some(value.parse().map_err(|_| bad("bytes or 'infinity'"))?);
            }
            _ => {}
        }
    }
    Ok(info)
}

/// The node's CPU count (`/proc/cpuinfo`, else the CPUs this process
/// may use) and memory in bytes.
pub fn read_capacity() -> Result<(usize, u64), StatsError> {
    let cpus = read(Path::new("/proc/cpuinfo"))
        .and_then(|t| parse_cpuinfo_count(&t, "/proc/cpuinfo"))
        .or_else(|e| {
            std::thread::available_parallelism()
                .map(usize::from)
                .map_err(|_| e)
        })?;
    let mem = read_meminfo()?;
    Ok((cpus, mem.total))
}

/// Reads `/proc/meminfo`.
pub fn read_meminfo() -> Result<MemInfo, StatsError> {
    parse_meminfo(&read(Path::new("/proc/meminfo"))?, "/proc/meminfo")
}

/// Reads `/proc/stat`.
pub fn read_cpu_times() -> Result<CpuTimes, StatsError> {
    parse_proc_stat(&read(Path::new("/proc/stat"))?, "/proc/stat")
}

/// The summed usage of each process group's live members, from one scan
/// of `/proc` (a process gone while scanning is skipped), and each
/// process's start time (to check a group leader's identity).
#[derive(Debug, Clone, Default)]
pub struct ProcessGroups {
    /// Process group -> (ticks, resident pages).
    pub groups: BTreeMap<i32, (u64, u64)>,
    /// Pid -> start time.
    pub start_times: BTreeMap<i32, u64>,
}

/// Scans `/proc`.
pub fn scan_process_groups() -> Result<ProcessGroups, StatsError> {
    let mut out = ProcessGroups::default();
    let entries = fs::read_dir("/proc").map_err(|source| StatsError::Io {
        file: "/proc".into(),
        source,
    })?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("stat");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(usage) = parse_pid_stat(&text, &path.display().to_string()) else {
            continue;
        };
        let slot = out.groups.entry(usage.pgrp).or_default();
        slot.0 = slot.0.saturating_add(usage.ticks);
        slot.1 = slot.1.saturating_add(usage.rss_pages);
        out.start_times.insert(pid, usage.start_time);
    }
    Ok(out)
}

/// The cgroup v2 hierarchy: `/sys/fs/cgroup` (unified layout) or
/// `/sys/fs/cgroup/unified` (hybrid layout).
pub fn cgroup2_root() -> Option<&'static Path> {
    [CGROUP_ROOT, "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|root| root.join("cgroup.controllers").exists())
}

fn below(root: &Path, control_group: &str) -> PathBuf {
    root.join(control_group.trim_start_matches('/'))
}

/// A cgroup's CPU time (µs, `cpu.stat` of the v2 hierarchy) and memory
/// (bytes: v2 `memory.current`, else the v1 memory controller's
/// `memory.usage_in_bytes` in a hybrid layout, else 0; the root cgroup
/// has neither). `control_group` is systemd's `ControlGroup` path.
pub fn read_cgroup(control_group: &str) -> Result<(u64, u64), StatsError> {
    let root = cgroup2_root().ok_or_else(|| StatsError::Io {
        file: format!("{CGROUP_ROOT}/cgroup.controllers"),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no cgroup v2 hierarchy"),
    })?;
    let dir = below(root, control_group);
    let cpu_path = dir.join("cpu.stat");
    let usec = parse_cgroup_cpu_usec(&read(&cpu_path)?, &cpu_path.display().to_string())?;
    let candidates = [
        dir.join("memory.current"),
        below(&Path::new(CGROUP_ROOT).join("memory"), control_group).join("memory.usage_in_bytes"),
    ];
    for path in candidates {
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mem = parse_memory_current(&text, &path.display().to_string())?;
                return Ok((usec, mem));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StatsError::Io {
                    file: path.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok((usec, 0))
}

#[cfg(test)]
#[path = "host_stats_tests.rs"]
mod tests;
