//! resources.cfg (spec section 2.2): one section per HA resource,
//! `<type>: <name>` giving the SID `<type>:<name>`.

use std::collections::BTreeMap;

use super::error::{ConfigError, ConfigErrorKind};
use super::section::{bool_text, split_sections, SectionWriter};
use super::values::{parse_bool, parse_comment, parse_config_id, parse_u32_in, require_value};
use crate::domain::resource::{
    CpuLimit, MAXCPU_LIMIT, MAXMEM_LIMIT_MIB, MAX_RELOCATE_LIMIT, MAX_RESTART_LIMIT,
};
use crate::domain::{RequestedState, ResourceConfig, Sid};

/// Resource types whose name must be a number of at least two digits
/// without a leading zero (`vm`, `ct` and the simulator's `fa`).
pub const NUMERIC_NAME_TYPES: [&str; 3] = ["vm", "ct", "fa"];

/// Resource types backed by a local agent, whose sections may carry agent
/// parameters (any key that is not a resource option).
pub const AGENT_PARAM_TYPES: [&str; 3] = ["exec", "systemd", "ocf"];

/// The resource option keys, sorted.
pub const RESOURCE_KEYS: [&str; 8] = [
    "comment",
    "failback",
    "group",
    "max_relocate",
    "max_restart",
    "maxcpu",
    "maxmem",
    "state",
];

/// One validated resource option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceOption {
    /// `state`.
    State(RequestedState),
    /// `failback`.
    Failback(bool),
    /// `max_restart`.
    MaxRestart(u32),
    /// `max_relocate`.
    MaxRelocate(u32),
    /// `group`.
    Group(String),
    /// `comment`.
    Comment(String),
    /// `maxcpu` (cores; 0 = unlimited).
    MaxCpu(CpuLimit),
    /// `maxmem` (MiB).
    MaxMem(u64),
    /// An agent parameter (agent types only).
    Param(String, String),
}

impl ResourceOption {
    /// Stores the option in `config`.
    pub fn apply(self, config: &mut ResourceConfig) {
        match self {
            ResourceOption::State(state) => config.state = state,
            ResourceOption::Failback(failback) => config.failback = failback,
            ResourceOption::MaxRestart(n) => config.max_restart = n,
            ResourceOption::MaxRelocate(n) => config.max_relocate = n,
            ResourceOption::Group(group) => config.group = Some(group),
            ResourceOption::Comment(comment) => config.comment = Some(comment),
            ResourceOption::MaxCpu(limit) => config.maxcpu = Some(limit),
            ResourceOption::MaxMem(mib) => config.maxmem = Some(mib),
            ResourceOption::Param(key, value) => {
                config.params.insert(key, value);
            }
        }
    }
}

/// Checks a SID for use as an HA resource: the generic SID rule plus the
/// numeric name rule of `vm`, `ct` and `fa`.
pub fn validate_resource_sid(sid: &Sid) -> Result<(), ConfigErrorKind> {
    if NUMERIC_NAME_TYPES.contains(&sid.kind()) {
        sid.validate_numeric_name().map_err(|_| {
            ConfigErrorKind::invalid(
                "sid",
                format!(
                    "invalid SID '{sid}': the name of a '{}' resource must be a number of at least two digits without a leading zero",
                    sid.kind()
                ),
            )
        })?;
    }
    Ok(())
}

/// Validates one option of the resource `sid` (`value` is `None` for a
/// key written without value). Used by the parser and by the CLI/API, so
/// `--max_restart abc` gives `field 'max_restart': invalid integer 'abc'`.
pub fn parse_resource_option(
    sid: &Sid,
    key: &str,
    value: Option<&str>,
) -> Result<ResourceOption, ConfigErrorKind> {
    Ok(match key {
        "state" => {
            let text = require_value(key, value)?;
            ResourceOption::State(
                text.parse()
                    .map_err(|_| ConfigErrorKind::invalid(key, format!("invalid state '{text}': expected one of started, stopped, disabled, ignored (or enabled)")))?,
            )
        }
        "failback" => ResourceOption::Failback(parse_bool(key, value)?),
        "max_restart" => {
            ResourceOption::MaxRestart(parse_u32_in(key, value, 0..=MAX_RESTART_LIMIT)?)
        }
        "max_relocate" => {
            ResourceOption::MaxRelocate(parse_u32_in(key, value, 0..=MAX_RELOCATE_LIMIT)?)
        }
        "group" => ResourceOption::Group(parse_config_id(key, value)?),
        "comment" => ResourceOption::Comment(parse_comment(key, value)?),
        "maxcpu" => ResourceOption::MaxCpu(parse_maxcpu(key, value)?),
        "maxmem" => ResourceOption::MaxMem(parse_maxmem(key, value)?),
        _ if AGENT_PARAM_TYPES.contains(&sid.kind()) => {
            validate_param_key(key)?;
            let text = require_value(key, value)?;
            super::values::check_comment(key, text)?;
            ResourceOption::Param(key.to_string(), text.to_string())
        }
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: sid.kind().to_string(),
            })
        }
    })
}

/// `maxcpu`: a decimal number of cores in `0..=8192` (0 = unlimited),
/// kept to a thousandth of a core.
fn parse_maxcpu(key: &str, value: Option<&str>) -> Result<CpuLimit, ConfigErrorKind> {
    let text = require_value(key, value)?;
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|b| *b == b'.').count() <= 1;
    text.parse::<f64>()
        .ok()
        .filter(|_| plain)
        .and_then(CpuLimit::from_cores)
        .ok_or_else(|| {
            ConfigErrorKind::invalid(
                key,
                format!(
                    "invalid number of cores '{}': expected a decimal number in 0..={MAXCPU_LIMIT} (0 = unlimited)",
                    crate::domain::error::shown(text)
                ),
            )
        })
}

/// `maxmem`: whole MiB in `0..=MAXMEM_LIMIT_MIB`.
fn parse_maxmem(key: &str, value: Option<&str>) -> Result<u64, ConfigErrorKind> {
    let text = require_value(key, value)?;
    text.parse::<u64>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .filter(|mib| *mib <= MAXMEM_LIMIT_MIB)
        .ok_or_else(|| {
            ConfigErrorKind::invalid(
                key,
                format!(
                    "invalid memory size '{}': expected whole MiB in 0..={MAXMEM_LIMIT_MIB}",
                    crate::domain::error::shown(text)
                ),
            )
        })
}

/// [`parse_resource_option`] for a CLI/API value that is always present.
pub fn validate_resource_option(
    sid: &Sid,
    key: &str,
    value: &str,
) -> Result<ResourceOption, ConfigErrorKind> {
    parse_resource_option(sid, key, Some(value))
}

/// Longest agent parameter name.
const PARAM_KEY_MAX: usize = 64;

/// Agent parameter names: a letter or `_`, then letters, digits, `_`, `-`
/// or `.`; at most [`PARAM_KEY_MAX`] characters.
fn validate_param_key(key: &str) -> Result<(), ConfigErrorKind> {
    if key.len() > PARAM_KEY_MAX {
        return Err(ConfigErrorKind::invalid(
            &crate::domain::error::shown(key),
            format!("agent parameter name longer than {PARAM_KEY_MAX} characters"),
        ));
    }
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(ConfigErrorKind::invalid(
            key,
            "invalid agent parameter name: expected a letter or '_', then letters, digits, '_', '-' or '.'",
        ))
    }
}

/// Parses resources.cfg; `file` is only used in error messages.
pub fn parse_resources_cfg(text: &str, file: &str) -> Result<Vec<ResourceConfig>, ConfigError> {
    let mut resources: Vec<ResourceConfig> = Vec::new();
    let mut first_lines: BTreeMap<Sid, usize> = BTreeMap::new();
    for section in split_sections(text, file)? {
        let sid = Sid::new(&section.kind, section.id)
            .map_err(|e| section.invalid_id(file, e.to_string()))?;
        validate_resource_sid(&sid).map_err(|e| {
            let reason = match e {
                ConfigErrorKind::InvalidValue { reason, .. } => reason,
                other => other.to_string(),
            };
            section.invalid_id(file, reason)
        })?;
        section.check_unique(sid.clone(), &mut first_lines, file)?;
        let mut config = ResourceConfig::with_defaults(sid);
        for entry in &section.entries {
            parse_resource_option(&config.sid, entry.key, entry.value)
                .map_err(|e| e.at(file, entry.line))?
                .apply(&mut config);
        }
        resources.push(config);
    }
    Ok(resources)
}

/// Writes resources.cfg in the given order. Options at their default are
/// omitted (parsing applies the defaults again); `comment` comes first,
/// then all other keys and agent parameters sorted by key. An empty
/// comment is omitted, i.e. read back as no comment.
pub fn write_resources_cfg(res: &[ResourceConfig]) -> String {
    let defaults = |sid: &Sid| ResourceConfig::with_defaults(sid.clone());
    let mut writer = SectionWriter::default();
    for config in res {
        let default = defaults(&config.sid);
        writer.header(config.sid.kind(), config.sid.name());
        if let Some(comment) = config.comment.as_deref().filter(|c| !c.is_empty()) {
            writer.entry("comment", comment);
        }
        let mut lines: BTreeMap<&str, String> = BTreeMap::new();
        if config.failback != default.failback {
            lines.insert("failback", bool_text(config.failback).to_string());
        }
        if let Some(group) = &config.group {
            lines.insert("group", group.clone());
        }
        if config.max_relocate != default.max_relocate {
            lines.insert("max_relocate", config.max_relocate.to_string());
        }
        if config.max_restart != default.max_restart {
            lines.insert("max_restart", config.max_restart.to_string());
        }
        if config.state != default.state {
            lines.insert("state", config.state.to_string());
        }
        if let Some(limit) = config.maxcpu {
            lines.insert("maxcpu", limit.to_string());
        }
        if let Some(mib) = config.maxmem {
            lines.insert("maxmem", mib.to_string());
        }
        for (key, value) in &config.params {
            // A parameter can never shadow an option: the parser refuses it.
            if !RESOURCE_KEYS.contains(&key.as_str()) {
                lines.insert(key, value.clone());
            }
        }
        for (key, value) in &lines {
            writer.entry(key, value);
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(text: &str) -> Sid {
        text.parse().unwrap()
    }

    #[test]
    fn spec_example() {
        let text = "vm: 501\n\tstate started\n\tmax_relocate 2\n\nct: 102\n";
        let res = parse_resources_cfg(text, "resources.cfg").unwrap();
        assert_eq!(res.len(), 2);
        let mut expected = ResourceConfig::with_defaults(sid("vm:501"));
        expected.max_relocate = 2;
        assert_eq!(res[0], expected);
        assert_eq!(res[1], ResourceConfig::with_defaults(sid("ct:102")));
        assert_eq!(res[1].max_restart, 1);
        assert!(res[1].failback);
        assert_eq!(
            write_resources_cfg(&res),
            "vm: 501\n\tmax_relocate 2\n\nct: 102\n\n"
        );
    }

    #[test]
    fn all_options_and_writer_order() {
        let text = "exec: web\n\tstate enabled\n\tcmd /usr/bin/web --port 80\n\tfailback 0\n\tmax_restart 3\n\tgroup prod\n\tcomment front end\n\tmax_relocate 0\n";
        let res = parse_resources_cfg(text, "resources.cfg").unwrap();
        let web = &res[0];
        assert_eq!(web.state, RequestedState::Started);
        assert!(!web.failback);
        assert_eq!((web.max_restart, web.max_relocate), (3, 0));
        assert_eq!(web.group.as_deref(), Some("prod"));
        assert_eq!(web.comment.as_deref(), Some("front end"));
        assert_eq!(web.params["cmd"], "/usr/bin/web --port 80");
        assert_eq!(
            write_resources_cfg(&res),
            "exec: web\n\tcomment front end\n\tcmd /usr/bin/web --port 80\n\tfailback 0\n\tgroup prod\n\tmax_relocate 0\n\tmax_restart 3\n\n"
        );
    }

    #[test]
    fn states_and_upper_case_type() {
        let text =
            "VM: 100\n\tstate disabled\n\nct: 200\n\tstate ignored\n\nfa: 130\n\tstate stopped\n";
        let res = parse_resources_cfg(text, "r.cfg").unwrap();
        let states: Vec<(String, RequestedState)> =
            res.iter().map(|r| (r.sid.to_string(), r.state)).collect();
        assert_eq!(
            states,
            [
                ("vm:100".to_string(), RequestedState::Disabled),
                ("ct:200".to_string(), RequestedState::Ignored),
                ("fa:130".to_string(), RequestedState::Stopped)
            ]
        );
    }

    fn error(text: &str) -> ConfigError {
        parse_resources_cfg(text, "resources.cfg").unwrap_err()
    }

    #[test]
    fn every_error_names_file_line_and_field() {
        let cases: [(&str, usize, &str); 14] = [
            (
                "vm: 101\n\tmax_restart abc\n",
                2,
                "field 'max_restart': invalid integer 'abc'",
            ),
            (
                "vm: 101\n\tmax_relocate -1\n",
                2,
                "field 'max_relocate': invalid integer '-1'",
            ),
            (
                "vm: 101\n\tstate running\n",
                2,
                "field 'state': invalid state 'running'",
            ),
            (
                "vm: 101\n\tfailback yes\n",
                2,
                "field 'failback': invalid boolean 'yes'",
            ),
            ("vm: 101\n\tgroup 1x\n", 2, "field 'group': invalid id '1x'"),
            ("vm: 101\n\tstate\n", 2, "field 'state': missing value"),
            (
                "vm: 101\n\tcpu 4\n",
                2,
                "field 'cpu': unknown key for section type 'vm'",
            ),
            (
                "vm: 101\n\n\nvm: 101\n",
                4,
                "duplicate section 'vm: 101' (first defined on line 1)",
            ),
            (
                "vm: 101\n\tstate started\n\tstate stopped\n",
                3,
                "field 'state': duplicate key",
            ),
            ("vm: 1\n", 1, "invalid section id '1' for type 'vm'"),
            ("vm: 0100\n", 1, "invalid section id '0100' for type 'vm'"),
            ("v2: 100\n", 1, "invalid section id '100' for type 'v2'"),
            (
                "exec: web\n\tbad/key x\n",
                2,
                "field 'bad/key': invalid agent parameter name",
            ),
            ("exec: web\n\tcmd\n", 2, "field 'cmd': missing value"),
        ];
        for (text, line, message) in cases {
            let err = error(text);
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(
                shown.starts_with(&format!("resources.cfg:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }

    #[test]
    fn maxcpu_and_maxmem_round_trip_and_errors_name_the_field() {
        let text =
            "exec: web\n\tcmd sleep 1\n\tmaxcpu 1.50\n\tmaxmem 2048\n\nvm: 101\n\tmaxcpu 0\n";
        let res = parse_resources_cfg(text, "resources.cfg").unwrap();
        assert_eq!(res[0].maxcpu.map(CpuLimit::cores), Some(1.5));
        assert_eq!(res[0].maxmem, Some(2048));
        assert_eq!(res[1].maxcpu.map(CpuLimit::cores), Some(0.0));
        assert_eq!(
            write_resources_cfg(&res),
            "exec: web\n\tcmd sleep 1\n\tmaxcpu 1.5\n\tmaxmem 2048\n\nvm: 101\n\tmaxcpu 0\n\n"
        );
        for (text, message) in [
            (
                "vm: 101\n\tmaxcpu -1\n",
                "field 'maxcpu': invalid number of cores '-1'",
            ),
            (
                "vm: 101\n\tmaxcpu 1e3\n",
                "field 'maxcpu': invalid number of cores '1e3'",
            ),
            (
                "vm: 101\n\tmaxcpu 9000\n",
                "field 'maxcpu': invalid number of cores '9000'",
            ),
            (
                "vm: 101\n\tmaxcpu NaN\n",
                "field 'maxcpu': invalid number of cores 'NaN'",
            ),
            (
                "vm: 101\n\tmaxmem 1.5\n",
                "field 'maxmem': invalid memory size '1.5'",
            ),
            (
                "vm: 101\n\tmaxmem 2G\n",
                "field 'maxmem': invalid memory size '2G'",
            ),
            ("vm: 101\n\tmaxmem\n", "field 'maxmem': missing value"),
        ] {
            let shown = error(text).to_string();
            assert!(shown.starts_with("resources.cfg:2: "), "{shown}");
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
        assert_eq!(
            validate_resource_option(&sid("exec:x"), "maxcpu", "0.125").unwrap(),
            ResourceOption::MaxCpu(CpuLimit::from_cores(0.125).unwrap())
        );
    }

    #[test]
    fn agent_params_only_for_agent_types() {
        let res = parse_resources_cfg("systemd: nginx\n\tunit nginx.service\n", "r").unwrap();
        assert_eq!(res[0].params["unit"], "nginx.service");
        assert!(parse_resources_cfg("ct: 101\n\tunit nginx.service\n", "r").is_err());
        assert!(parse_resources_cfg("foo: bar\n\tunit x\n", "r").is_err());
        assert!(parse_resources_cfg("foo: bar\n\tstate stopped\n", "r").is_ok());
    }

    #[test]
    fn cli_validation_names_the_field() {
        let vm = sid("vm:100");
        assert_eq!(
            validate_resource_option(&vm, "max_restart", "abc")
                .unwrap_err()
                .to_string(),
            "field 'max_restart': invalid integer 'abc'"
        );
        assert_eq!(
            validate_resource_option(&vm, "max_restart", "5").unwrap(),
            ResourceOption::MaxRestart(5)
        );
        assert!(validate_resource_option(&vm, "comment", "a\nb").is_err());
        assert!(validate_resource_sid(&sid("vm:1")).is_err());
        assert!(validate_resource_sid(&sid("exec:1")).is_ok());
    }
}
