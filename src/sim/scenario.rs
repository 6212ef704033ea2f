//! Loading a scenario directory (spec section 8.1) and validating its
//! command list before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::crm::ManagerStatus;
use crate::domain::{
    GroupConfig, NodeAffinityRule, NodeName, RequestedState, ResourceAffinityRule, ShutdownPolicy,
    Sid,
};

/// A scenario input problem: names the file, the line and the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ScenarioError {
    /// The file name inside the scenario directory (empty when the
    /// problem is the directory itself).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// The offending token.
    pub token: String,
    /// What is wrong.
    pub message: String,
}

impl ScenarioError {
    /// `file:line: message ('token')`; without a line `file: message`
    /// (plus the token if it says more than the file name); without a file
    /// just the message.
    fn render(&self) -> String {
        if self.file.is_empty() {
            return self.message.clone();
        }
        let mut text = if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!("{}:{}: {}", self.file, self.line, self.message)
        };
        if !self.token.is_empty() && (self.line != 0 || self.token != self.file) {
            text.push_str(&format!(" ('{}')", self.token));
        }
        text
    }
}

fn err(file: &str, line: usize, token: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.into(),
        line,
        token: token.into(),
        message: message.into(),
    }
}

/// Initial hardware state of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareNode {
    /// Powered on.
    pub power: bool,
    /// Network up.
    pub network: bool,
    /// The pve-manager version the node reports, if given
    /// (`pve-manager-version`; the world's default applies otherwise).
    pub pve_manager_version: Option<String>,
}

/// One entry of `service_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Current node.
    pub node: NodeName,
    /// Requested state (missing = disabled in the simulator).
    pub state: RequestedState,
    /// Failback flag.
    pub failback: bool,
    /// Restart limit.
    pub max_restart: u32,
    /// Relocation limit.
    pub max_relocate: u32,
    /// Legacy group.
    pub group: Option<String>,
}

/// A loaded scenario.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Command batches.
    pub cmdlist: Vec<Vec<String>>,
    /// Nodes (the cluster members).
    pub hardware: BTreeMap<NodeName, HardwareNode>,
    /// Configured services.
    pub services: BTreeMap<Sid, ServiceEntry>,
    /// Initial manager status.
    pub manager_status: ManagerStatus,
    /// Legacy groups.
    pub groups: Vec<GroupConfig>,
    /// Node-affinity rules.
    pub rules: Vec<NodeAffinityRule>,
    /// Resource-affinity rules.
    pub resource_rules: Vec<ResourceAffinityRule>,
    /// Shutdown policy from datacenter.cfg.
    pub shutdown_policy: ShutdownPolicy,
    /// `crs` options, node capacities and service statistics.
    pub stats: super::stats::SimStats,
    /// Profile named by a `profile` file, if any.
    pub profile: Option<String>,
    /// Seed named by a `seed` file, if any.
    pub seed: Option<u64>,
    /// The text of `cmdlist` (for line numbers in errors found once the
    /// profile is known).
    pub cmdlist_text: String,
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(0, |pos| text[..pos].matches('\n').count() + 1)
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<String>, ScenarioError> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| err(name, 0, name, format!("cannot read: {e}")))
}

fn parse_json(name: &str, text: &str) -> Result<Value, ScenarioError> {
    serde_json::from_str(text).map_err(|e| {
        let line = e.line();
        let token = text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim()
            .to_string();
        err(name, line, &token, format!("malformed JSON: {e}"))
    })
}

/// The default services when `service_config` is missing.
fn default_services() -> BTreeMap<Sid, ServiceEntry> {
    let mut map = BTreeMap::new();
    for (i, node) in ["node1", "node2", "node3", "node1", "node2", "node3"]
        .iter()
        .enumerate()
    {
        let sid: Sid = format!("vm:{}", 101 + i)
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let node: NodeName = node.parse().unwrap_or_else(|_| unreachable!());
        map.insert(
            sid,
            ServiceEntry {
                node,
                state: if i % 2 == 0 {
                    RequestedState::Started
                } else {
                    RequestedState::Disabled
                },
                failback: true,
                max_restart: 1,
                max_relocate: 1,
                group: None,
            },
        );
    }
    map
}

/// Checks a pve-manager version (`MAJOR.MINOR.PATCH[~REV]`).
fn check_version(file: &str, line: usize, text: &str) -> Result<String, ScenarioError> {
    text.parse::<crate::crm::pve_version::PveVersion>()
        .map(|_| text.to_string())
        .map_err(|e| err(file, line, text, e.to_string()))
}

/// Validates a simulator SID (`vm:`, `ct:`, `fa:` + at least two digits).
pub fn parse_sim_sid(text: &str) -> Option<Sid> {
    let sid: Sid = text.parse().ok()?;
    if !matches!(sid.kind(), "vm" | "ct" | "fa") {
        return None;
    }
    sid.validate_numeric_name().ok()?;
    Some(sid)
}

/// The files a scenario directory may hold; anything else in it is
/// ignored.
pub const SCENARIO_FILES: [&str; 11] = [
    "cmdlist",
    "hardware_status",
    "service_config",
    "manager_status",
    "datacenter.cfg",
    "static_service_stats",
    "dynamic_service_stats",
    "groups",
    "rules_config",
    "profile",
    "seed",
];

impl Scenario {
    /// Loads and validates a scenario directory.
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::from_files(&Scenario::read_files(dir)?)
    }

    /// Reads the scenario files present in `dir` (see [`SCENARIO_FILES`]):
    /// file name -> text.
    pub fn read_files(dir: &Path) -> Result<BTreeMap<String, String>, ScenarioError> {
        if !dir.exists() {
            return Err(err("", 0, "", "scenario directory does not exist"));
        }
        if !dir.is_dir() {
            return Err(err("", 0, "", "not a directory"));
        }
        let mut files = BTreeMap::new();
        for name in SCENARIO_FILES {
            if let Some(text) = read_opt(dir, name)? {
                files.insert(name.to_string(), text);
            }
        }
        Ok(files)
    }

    /// Parses and validates a scenario from its files' texts (file name ->
    /// text, as [`Scenario::read_files`] returns them).
    pub fn from_files(files: &BTreeMap<String, String>) -> Result<Scenario, ScenarioError> {
        let mut sc = Scenario::default();
        let file = |name: &str| files.get(name).cloned();
        let Some(cmd_text) = file("cmdlist") else {
            return Err(err(
                "cmdlist",
                0,
                "cmdlist",
                "missing required file in the scenario directory",
            ));
        };
        let cmd_json = parse_json("cmdlist", &cmd_text)?;
        let Value::Array(batches) = cmd_json else {
            return Err(err("cmdlist", 1, "", "expected a JSON array of batches"));
        };
        for batch in batches {
            let Value::Array(cmds) = batch else {
                return Err(err(
                    "cmdlist",
                    0,
                    &batch.to_string(),
                    "a batch must be an array of strings",
                ));
            };
            let mut list = Vec::new();
            for c in cmds {
                let Value::String(s) = c else {
                    return Err(err(
                        "cmdlist",
                        line_of(&cmd_text, &c.to_string()),
                        &c.to_string(),
                        "a command must be a string",
                    ));
                };
                list.push(s);
            }
            sc.cmdlist.push(list);
        }

        match file("hardware_status") {
            None => {
                for n in ["node1", "node2", "node3"] {
                    let node: NodeName = n.parse().unwrap_or_else(|_| unreachable!());
                    sc.hardware.insert(
                        node,
                        HardwareNode {
                            power: false,
                            network: false,
                            pve_manager_version: None,
                        },
                    );
                }
            }
            Some(text) => {
                let v = parse_json("hardware_status", &text)?;
                let Value::Object(map) = v else {
                    return Err(err("hardware_status", 1, "", "expected a JSON object"));
                };
                for (name, d) in map {
                    let line = line_of(&text, &format!("\"{name}\""));
                    let node: NodeName = name
                        .parse()
                        .map_err(|_| err("hardware_status", line, &name, "invalid node name"))?;
                    let flag = |key: &str| -> Result<bool, ScenarioError> {
                        match d.get(key).and_then(Value::as_str) {
                            None => Ok(false),
                            Some("on") => Ok(true),
                            Some("off") => Ok(false),
                            Some(other) => Err(err(
                                "hardware_status",
                                line,
                                other,
                                format!("'{key}' must be 'on' or 'off'"),
                            )),
                        }
                    };
                    let pve_manager_version = match d.get("pve-manager-version") {
                        None => None,
                        Some(Value::String(v)) => Some(check_version("hardware_status", line, v)?),
                        Some(other) => {
                            return Err(err(
                                "hardware_status",
                                line,
                                &other.to_string(),
                                "'pve-manager-version' must be a string",
                            ))
                        }
                    };
                    let capacity = super::stats::node_capacity(&d, &text, line)?;
                    sc.stats.capacity.insert(node.clone(), capacity);
                    sc.hardware.insert(
                        node,
                        HardwareNode {
                            power: flag("power")?,
                            network: flag("network")?,
                            pve_manager_version,
                        },
                    );
                }
            }
        }

        match file("service_config") {
            None => sc.services = default_services(),
            Some(text) => {
                let v = parse_json("service_config", &text)?;
                let Value::Object(map) = v else {
                    return Err(err("service_config", 1, "", "expected a JSON object"));
                };
                for (name, d) in map {
                    let line = line_of(&text, &format!("\"{name}\""));
                    let sid = parse_sim_sid(&name).ok_or_else(|| {
                        err(
                            "service_config",
                            line,
                            &name,
                            "invalid SID (expected vm:, ct: or fa: with at least two digits)",
                        )
                    })?;
                    let node_txt = d
                        .get("node")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err("service_config", line, &name, "missing 'node'"))?;
                    let node: NodeName = node_txt
                        .parse()
                        .map_err(|_| err("service_config", line, node_txt, "invalid node name"))?;
                    if !sc.hardware.contains_key(&node) {
                        return Err(err("service_config", line, node_txt, "unknown node"));
                    }
                    let state = match d.get("state").and_then(Value::as_str) {
                        None => RequestedState::Disabled,
                        Some(s) => s
                            .parse()
                            .map_err(|_| err("service_config", line, s, "invalid state"))?,
                    };
                    let num = |key: &str, default: u32| -> Result<u32, ScenarioError> {
                        match d.get(key) {
                            None => Ok(default),
                            Some(v) => v
                                .as_u64()
                                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                                .and_then(|n| u32::try_from(n).ok())
                                .ok_or_else(|| {
                                    err(
                                        "service_config",
                                        line,
                                        &v.to_string(),
                                        format!("'{key}' must be a non-negative integer"),
                                    )
                                }),
                        }
                    };
                    let failback = num("failback", 1)? != 0;
                    sc.services.insert(
                        sid,
                        ServiceEntry {
                            node,
                            state,
                            failback,
                            max_restart: num("max_restart", 1)?,
                            max_relocate: num("max_relocate", 1)?,
                            group: d.get("group").and_then(Value::as_str).map(str::to_string),
                        },
                    );
                }
            }
        }

        if let Some(text) = file("manager_status") {
            let v = parse_json("manager_status", &text)?;
            sc.manager_status = serde_json::from_value(v).map_err(|e| {
                err(
                    "manager_status",
                    0,
                    "",
                    format!("invalid manager status: {e}"),
                )
            })?;
        }

        if let Some(text) = file("datacenter.cfg") {
            let options = crate::config::parse_datacenter_json(&text, "datacenter.cfg")
                .map_err(|e| err("datacenter.cfg", e.line, "", e.kind.to_string()))?;
            sc.shutdown_policy = options.shutdown_policy;
            sc.stats.crs = options.crs;
        }
        if let Some(text) = file("static_service_stats") {
            sc.stats.static_stats = Some(super::stats::parse_service_stats(
                "static_service_stats",
                &text,
                ["maxcpu", "maxmem"],
            )?);
        }
        if let Some(text) = file("dynamic_service_stats") {
            sc.stats.dynamic_stats = Some(super::stats::parse_service_stats(
                "dynamic_service_stats",
                &text,
                ["cpu", "mem"],
            )?);
        }

        sc.load_rules(files)?;

        if let Some(text) = file("profile") {
            let p = text.trim().to_string();
            if !matches!(p.as_str(), "pve" | "default" | "fast") {
                return Err(err("profile", 1, &p, "expected 'pve', 'default' or 'fast'"));
            }
            sc.profile = Some(p);
        }
        if let Some(text) = file("seed") {
            let t = text.trim();
            sc.seed = Some(
                t.parse()
                    .map_err(|_| err("seed", 1, t, "expected a non-negative integer"))?,
            );
        }
        sc.validate_commands(&cmd_text)?;
        sc.cmdlist_text = cmd_text;
        Ok(sc)
    }

    /// Checks what depends on the timing profile: a `net delay` above the
    /// profile's bound (a renewal must fit in half an attempt).
    pub fn validate_for(&self, timing: &super::SimTiming) -> Result<(), ScenarioError> {
        for cmd in self.cmdlist.iter().flatten() {
            check_command_timing(cmd, timing).map_err(|e| {
                err(
                    "cmdlist",
                    line_of(&self.cmdlist_text, &format!("\"{cmd}\"")),
                    &e.token,
                    e.message,
                )
            })?;
        }
        Ok(())
    }

    fn validate_commands(&self, text: &str) -> Result<(), ScenarioError> {
        let mut check =
            CommandCheck::new(self.hardware.keys().cloned(), self.services.keys().cloned());
        for cmd in self.cmdlist.iter().flatten() {
            check.check(cmd).map_err(|e| {
                err(
                    "cmdlist",
                    line_of(text, &format!("\"{cmd}\"")),
                    &e.token,
                    e.message,
                )
            })?;
        }
        Ok(())
    }
}

/// A cmdlist command that cannot run: the word at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ('{token}')")]
pub struct CommandError {
    /// The offending word (the whole command when no single word is).
    pub token: String,
    /// What is wrong.
    pub message: String,
}

/// Checks a `net delay` against the profile's bound (a renewal must fit
/// in half an attempt); every other command passes.
pub fn check_command_timing(cmd: &str, timing: &super::SimTiming) -> Result<(), CommandError> {
    let bound = super::net::NetParams::max_delay_bound(timing);
    let w: Vec<&str> = cmd.split_whitespace().collect();
    if let ["net", "delay", ms] = w.as_slice() {
        if ms.parse::<u64>().is_ok_and(|v| v > bound) {
            return Err(CommandError {
                token: (*ms).to_string(),
                message: format!(
                    "message delay above the '{}' profile's bound of {bound} ms (renew_attempt_timeout / 8)",
                    timing.name
                ),
            });
        }
    }
    Ok(())
}

/// The parser of cmdlist commands: checks one command at a time against
/// the cluster's nodes and the services that exist at that point (a
/// `service <sid> add` or `delete` changes them for the commands after
/// it). `sim run` checks a whole cmdlist with it before the first round;
/// `sim serve` checks each command typed in.
#[derive(Debug, Clone)]
pub struct CommandCheck {
    nodes: BTreeSet<NodeName>,
    sids: BTreeSet<Sid>,
}

impl CommandCheck {
    /// A check for a cluster of `nodes` with the services `sids`.
    pub fn new(
        nodes: impl IntoIterator<Item = NodeName>,
        sids: impl IntoIterator<Item = Sid>,
    ) -> CommandCheck {
        CommandCheck {
            nodes: nodes.into_iter().collect(),
            sids: sids.into_iter().collect(),
        }
    }

    /// Checks one command; a valid `service add`/`delete` updates the
    /// services the next commands are checked against.
    pub fn check(&mut self, cmd: &str) -> Result<(), CommandError> {
        let bad = |token: &str, msg: &str| {
            Err(CommandError {
                token: token.to_string(),
                message: msg.to_string(),
            })
        };
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let nodes = &self.nodes;
        let node_ok = |n: &str| {
            n.parse::<NodeName>()
                .ok()
                .is_some_and(|n| nodes.contains(&n))
        };
        let sids = &mut self.sids;
        match w.as_slice() {
            ["delay", n] => {
                if n.parse::<u64>().is_err() {
                    return bad(n, "delay needs a number of seconds");
                }
            }
            ["skip-round", what, rest @ ..] => {
                if *what != "crm" && *what != "lrm" {
                    return bad(what, "expected crm or lrm");
                }
                if let Some(n) = rest.first() {
                    if n.parse::<u32>().is_err() || rest.len() > 1 {
                        return bad(n, "expected a round count");
                    }
                }
            }
            [kind @ ("power" | "network"), node, action] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                if *action != "on" && *action != "off" {
                    return bad(action, &format!("unknown {kind} action"));
                }
            }
            ["cfs", node, what, action] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                if *what != "rw" && *what != "update" {
                    return bad(what, "expected rw or update");
                }
                if *action != "work" && *action != "fail" {
                    return bad(action, "expected work or fail");
                }
            }
            ["pause", "leader"] | ["resume", "all"] => {}
            ["reboot" | "shutdown" | "restart-lrm" | "pause" | "resume", node] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
            }
            ["daemon", node, action] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                if *action != "stop" && *action != "start" {
                    return bad(action, "expected stop or start");
                }
            }
            ["mux", node, action] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                if !matches!(*action, "restart" | "hang" | "resume") {
                    return bad(action, "expected restart, hang or resume");
                }
            }
            ["link", "all", action] => {
                if *action != "on" {
                    return bad(action, "only 'link all on' heals every link");
                }
            }
            ["link", a, rest @ ..] => {
                let (b, action) = match rest {
                    ["to", b, action] | [b, action] => (*b, *action),
                    _ => return bad(cmd, "expected link <node> [to] <node> on|off"),
                };
                for n in [*a, b] {
                    if !node_ok(n) {
                        return bad(n, "unknown node");
                    }
                }
                if *a == b {
                    return bad(b, "a link needs two different nodes");
                }
                if action != "on" && action != "off" {
                    return bad(action, "expected on or off");
                }
            }
            ["net", what, value] => match *what {
                "delay" => {
                    if value.parse::<u64>().is_err() {
                        return bad(value, "delay needs a number of milliseconds");
                    }
                }
                "loss" => match value.parse::<u32>() {
                    Ok(v) if v <= super::net::MAX_LOSS_PER_MILLE => {}
                    _ => {
                        return bad(
                            value,
                            &format!(
                                "loss needs a per-mille value from 0 to {}",
                                super::net::MAX_LOSS_PER_MILLE
                            ),
                        )
                    }
                },
                other => return bad(other, "expected delay or loss"),
            },
            ["crm", node, rest @ ..] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                match rest {
                    ["stop"]
                    | ["start"]
                    | ["enable-node-maintenance"]
                    | ["disable-node-maintenance"]
                    | ["arm-ha"] => {}
                    ["disarm-ha", "freeze" | "ignore"] => {}
                    [other, ..] => return bad(other, "unknown crm action"),
                    [] => return bad(cmd, "missing crm action"),
                }
            }
            ["pve-manager-version", node, "set", ver] => {
                if !node_ok(node) {
                    return bad(node, "unknown node");
                }
                if let Err(e) = check_version("cmdlist", 0, ver) {
                    return bad(ver, &e.message);
                }
            }
            ["service", sid_txt, action, params @ ..] => {
                let Some(sid) = parse_sim_sid(sid_txt) else {
                    return bad(sid_txt, "invalid SID");
                };
                if *action == "add" {
                    if sids.contains(&sid) {
                        return bad(sid_txt, "service already exists");
                    }
                    match params.first() {
                        Some(n) if node_ok(n) => {}
                        Some(n) => return bad(n, "unknown node"),
                        None => return bad(cmd, "missing node"),
                    }
                    if let Some(st) = params.get(1) {
                        if st.parse::<RequestedState>().is_err() {
                            return bad(st, "invalid state");
                        }
                    }
                    sids.insert(sid);
                    return Ok(());
                }
                if !sids.contains(&sid) {
                    return bad(sid_txt, "unknown service");
                }
                match (*action, params) {
                    ("started" | "stopped" | "disabled" | "ignored" | "enabled", []) => {}
                    ("delete", []) => {
                        sids.remove(&sid);
                    }
                    ("migrate" | "relocate" | "manual-migrate", [n]) => {
                        if !node_ok(n) {
                            return bad(n, "unknown node");
                        }
                    }
                    ("stop", [t]) => {
                        if t.parse::<u64>().is_err() {
                            return bad(t, "timeout must be a non-negative integer");
                        }
                    }
                    ("lock", [] | [_]) | ("unlock", [] | [_]) => {}
                    (action @ ("set-static-stats" | "set-dynamic-stats"), params) => {
                        if let Err((token, msg)) = super::stats::check_stats_params(action, params)
                        {
                            return bad(&token, &msg);
                        }
                    }
                    (other, _) => return bad(other, "unknown service action or wrong parameters"),
                }
            }
            [first, ..] => return bad(first, "unknown command"),
            [] => return bad(cmd, "empty command"),
        }
        Ok(())
    }
}

impl Scenario {
    fn load_rules(&mut self, files: &BTreeMap<String, String>) -> Result<(), ScenarioError> {
        let conv = |e: crate::config::ConfigError| ScenarioError {
            file: e.file.clone(),
            line: e.line,
            token: String::new(),
            message: e.kind.to_string(),
        };
        if let Some(text) = files.get("groups") {
            self.groups = crate::config::parse_groups_cfg(text, "groups").map_err(conv)?;
        }
        if let Some(text) = files.get("rules_config") {
            let rules = crate::config::parse_rules(text, "rules_config").map_err(conv)?;
            (self.rules, self.resource_rules) = crate::domain::split_rules(rules);
        }
        Ok(())
    }
}
