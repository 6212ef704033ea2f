//! Scheduling statistics of the simulator (spec 8.1, 8.2): node capacity
//! (`maxcpu`, `maxmem` in `hardware_status`), `static_service_stats`,
//! `dynamic_service_stats`, the `set-static-stats` and
//! `set-dynamic-stats` commands, and the scheduler input built from them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::scenario::{parse_sim_sid, ScenarioError};
use super::world::World;
use crate::crm::{NodeStats, Scheduling, ServiceStats};
use crate::domain::{CrsOptions, RequestedState, Sid};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// Node CPU count when `hardware_status` gives none.
pub const DEFAULT_NODE_MAXCPU: f64 = 24.0;
/// Node memory (bytes) when `hardware_status` gives none.
pub const DEFAULT_NODE_MAXMEM: f64 = 128.0 * GIB;
/// Service CPUs without a `static_service_stats` file.
pub const DEFAULT_SERVICE_MAXCPU: f64 = 4.0;
/// Service memory (bytes) without a `static_service_stats` file.
pub const DEFAULT_SERVICE_MAXMEM: f64 = 4096.0 * MIB;
/// Measured service CPU (cores) without a `dynamic_service_stats` file.
pub const DEFAULT_SERVICE_CPU: f64 = 2.0;
/// Measured service memory (bytes) without a `dynamic_service_stats` file.
pub const DEFAULT_SERVICE_MEM: f64 = 2048.0 * MIB;

/// What the scenario says about scheduling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    /// The `crs` options of datacenter.cfg.
    pub crs: CrsOptions,
    /// Node -> (maxcpu, maxmem).
    pub capacity: BTreeMap<crate::domain::NodeName, (f64, f64)>,
    /// Service -> (maxcpu, maxmem); `None` without the file (defaults).
    pub static_stats: Option<BTreeMap<Sid, (f64, f64)>>,
    /// Service -> (cpu, mem); `None` without the file (defaults).
    pub dynamic_stats: Option<BTreeMap<Sid, (f64, f64)>>,
}

fn err(file: &str, line: usize, token: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.into(),
        line,
        token: token.into(),
        message: message.into(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(0, |pos| text[..pos].matches('\n').count() + 1)
}

/// A non-negative number given as a JSON number or numeric string.
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
}

/// A node's `maxcpu`/`maxmem` in `hardware_status` (defaults when
/// absent); `line` is the node's line.
pub fn node_capacity(d: &Value, text: &str, line: usize) -> Result<(f64, f64), ScenarioError> {
    let field = |key: &str, default: f64| -> Result<f64, ScenarioError> {
        match d.get(key) {
            None => Ok(default),
            Some(v) => number(v).filter(|x| *x > 0.0).ok_or_else(|| {
                let shown = v.to_string();
                let at = line_of(text, &format!("\"{key}\"")).max(line);
                err(
                    "hardware_status",
                    at,
                    &shown,
                    format!("field '{key}': expected a positive number, got {shown}"),
                )
            }),
        }
    };
    Ok((
        field("maxcpu", DEFAULT_NODE_MAXCPU)?,
        field("maxmem", DEFAULT_NODE_MAXMEM)?,
    ))
}

/// Parses `static_service_stats` (`{"vm:101": {"maxcpu": 2, "maxmem":
/// 4294967296}}`) or `dynamic_service_stats` (`cpu`, `mem`): both fields
/// are required, numbers of at least 0; errors name file, line and field.
pub fn parse_service_stats(
    file: &str,
    text: &str,
    keys: [&str; 2],
) -> Result<BTreeMap<Sid, (f64, f64)>, ScenarioError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| err(file, e.line(), "", format!("malformed JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(err(file, 1, "", "expected a JSON object of SID -> stats"));
    };
    let mut out = BTreeMap::new();
    // Lines advance through the file, so a key repeated in several entries
    // is found in the right one.
    let mut from = 0;
    for (sid_text, d) in map {
        let needle = format!("\"{sid_text}\"");
        let start = text[from..].find(&needle).map_or(from, |p| from + p);
        from = start;
        let line = text[..start].matches('\n').count() + 1;
        let sid =
            parse_sim_sid(&sid_text).ok_or_else(|| err(file, line, &sid_text, "invalid SID"))?;
        let Value::Object(fields) = &d else {
            return Err(err(
                file,
                line,
                &d.to_string(),
                format!(
                    "'{sid_text}': expected an object with '{}' and '{}'",
                    keys[0], keys[1]
                ),
            ));
        };
        let mut values = [0.0; 2];
        for (slot, key) in keys.iter().enumerate() {
            let at = |text: &str| -> usize {
                text[start..]
                    .find(&format!("\"{key}\""))
                    .map_or(line, |p| text[..start + p].matches('\n').count() + 1)
            };
            values[slot] = match fields.get(*key) {
                None => {
                    return Err(err(
                        file,
                        line,
                        &sid_text,
                        format!("'{sid_text}': field '{key}' is missing"),
                    ))
                }
                Some(v) => number(v).ok_or_else(|| {
                    err(
                        file,
                        at(text),
                        &v.to_string(),
                        format!("'{sid_text}': field '{key}' must be a number of at least 0"),
                    )
                })?,
            };
        }
        if let Some(unknown) = fields.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(err(
                file,
                line,
                unknown,
                format!("'{sid_text}': unknown field '{unknown}'"),
            ));
        }
        out.insert(sid, (values[0], values[1]));
    }
    Ok(out)
}

/// Checks the parameters of `set-static-stats` (`maxcpu <cores>`,
/// `maxmem <MiB>`) or `set-dynamic-stats` (`cpu <cores>`, `mem <MiB>`):
/// key/value pairs, known keys, non-negative numbers.
pub fn check_stats_params(action: &str, params: &[&str]) -> Result<(), (String, String)> {
    let keys: [&str; 2] = if action == "set-static-stats" {
        ["maxcpu", "maxmem"]
    } else {
        ["cpu", "mem"]
    };
    if params.is_empty() || !params.len().is_multiple_of(2) {
        return Err((
            params.join(" "),
            format!("expected '{action} [{} <n>] [{} <MiB>]'", keys[0], keys[1]),
        ));
    }
    for pair in params.chunks(2) {
        if !keys.contains(&pair[0]) {
            return Err((pair[0].to_string(), format!("unknown field for {action}")));
        }
        if pair[1]
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .is_none()
        {
            return Err((
                pair[1].to_string(),
                format!("field '{}' must be a number of at least 0", pair[0]),
            ));
        }
    }
    Ok(())
}

impl World {
    /// Carries out `set-static-stats` / `set-dynamic-stats` (checked when
    /// the scenario was loaded). Memory is given in MiB.
    pub(crate) fn set_service_stats(&mut self, sid: &Sid, action: &str, params: &[&str]) {
        let dynamic = action == "set-dynamic-stats";
        let (defaults, map) = if dynamic {
            (
                (DEFAULT_SERVICE_CPU, DEFAULT_SERVICE_MEM),
                &mut self.stats.dynamic_stats,
            )
        } else {
            (
                (DEFAULT_SERVICE_MAXCPU, DEFAULT_SERVICE_MAXMEM),
                &mut self.stats.static_stats,
            )
        };
        let map = map.get_or_insert_with(BTreeMap::new);
        let entry = map.entry(sid.clone()).or_insert(defaults);
        for pair in params.chunks(2) {
            let [key, value] = pair else { continue };
            let Ok(x) = value.parse::<f64>() else {
                continue;
            };
            match *key {
                "maxcpu" | "cpu" => entry.0 = x,
                "maxmem" | "mem" => entry.1 = x * MIB,
                _ => {}
            }
        }
    }

    /// A service's statistics: its entry in the stats files, the defaults
    /// when a file is absent, `None` when a file lacks it.
    fn service_stats(&self, sid: &Sid) -> Option<ServiceStats> {
        let limits = match &self.stats.static_stats {
            None => Some((DEFAULT_SERVICE_MAXCPU, DEFAULT_SERVICE_MAXMEM)),
            Some(map) => map.get(sid).copied(),
        }?;
        let measured = match &self.stats.dynamic_stats {
            None => Some((DEFAULT_SERVICE_CPU, DEFAULT_SERVICE_MEM)),
            Some(map) => map.get(sid).copied(),
        }
        .unwrap_or_default();
        Some(ServiceStats {
            maxcpu: limits.0,
            maxmem: limits.1,
            cpu: measured.0,
            mem: measured.1,
        })
    }

    /// The scheduler's input: the `crs` options, node capacities with the
    /// measured usage of what runs there (every running guest, HA-managed
    /// or not), service statistics, and the ignored services that run
    /// (they load their node like any guest).
    pub(crate) fn scheduling(&self) -> Scheduling {
        let mut sched = Scheduling {
            crs: self.stats.crs,
            ..Scheduling::default()
        };
        for sid in self.services.keys() {
            if let Some(stats) = self.service_stats(sid) {
                sched.service_stats.insert(sid.clone(), stats);
            }
        }
        for (name, node) in &self.nodes {
            let (maxcpu, maxmem) = self
                .stats
                .capacity
                .get(name)
                .copied()
                .unwrap_or((DEFAULT_NODE_MAXCPU, DEFAULT_NODE_MAXMEM));
            let mut stats = NodeStats {
                maxcpu,
                maxmem,
                ..NodeStats::default()
            };
            for sid in &node.running {
                let s = sched.service_stats.get(sid).copied().unwrap_or_default();
                stats.cpu += s.cpu;
                stats.mem += s.mem;
                let ignored = self
                    .services
                    .get(sid)
                    .is_none_or(|e| e.config.state == RequestedState::Ignored);
                if ignored {
                    sched.non_ha.entry(name.clone()).or_default().push(s);
                }
            }
            sched.node_stats.insert(name.clone(), stats);
        }
        sched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_files_name_file_line_and_field() {
        let ok = "{\n  \"vm:101\": { \"maxcpu\": 2, \"maxmem\": 1024 },\n  \"ct:102\": { \"maxcpu\": \"0.5\", \"maxmem\": 0 }\n}\n";
        let map = parse_service_stats("static_service_stats", ok, ["maxcpu", "maxmem"]).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map[&"ct:102".parse::<Sid>().unwrap()], (0.5, 0.0));
        let cases = [
            ("{\n\"vm:101\": { \"maxcpu\": 2 }\n}", 2, "field 'maxmem' is missing"),
            (
                "{\n\"vm:101\": { \"maxcpu\": 2, \"maxmem\": 1 },\n\"vm:102\": {\n \"maxcpu\": -1, \"maxmem\": 1 }\n}",
                4,
                "field 'maxcpu' must be a number",
            ),
            ("{\n\"vm:101\": { \"maxcpu\": \"x\", \"maxmem\": 1 }\n}", 2, "'vm:101': field 'maxcpu'"),
            ("{\n\"foo\": { \"maxcpu\": 1, \"maxmem\": 1 }\n}", 2, "invalid SID"),
            ("{\n\"vm:105\": { \"maxcpu\": 1, \"maxmem\": 1, \"cores\": 2 }\n}", 2, "unknown field 'cores'"),
            ("{\n\"vm:105\": [1, 2]\n}", 2, "expected an object"),
            ("{\n\"vm:105\": {\n", 3, "malformed JSON"),
        ];
        for (text, line, message) in cases {
            let e = parse_service_stats("static_service_stats", text, ["maxcpu", "maxmem"])
                .unwrap_err();
            assert_eq!(e.file, "static_service_stats");
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().contains(message), "{e} lacks {message}");
        }
    }

    #[test]
    fn stats_commands_are_checked() {
        assert!(check_stats_params("set-static-stats", &["maxcpu", "2", "maxmem", "512"]).is_ok());
        assert!(check_stats_params("set-dynamic-stats", &["mem", "100"]).is_ok());
        assert!(check_stats_params("set-dynamic-stats", &["maxcpu", "2"]).is_err());
        assert!(check_stats_params("set-static-stats", &["maxcpu"]).is_err());
        assert!(check_stats_params("set-static-stats", &["maxcpu", "-2"]).is_err());
        assert!(check_stats_params("set-static-stats", &[]).is_err());
    }
}
