//! Building the agent for a SID from its type and parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{exec, ocf, systemd, AgentError, ExecAgent, OcfAgent, ResourceAgent, SystemdAgent};

/// Node-wide settings the agents need besides a resource's own parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// Directory for agent state, normally `<data_dir>/run`: exec pid and log
    /// files go to `exec/`, systemd fencing environment files to `systemd/`.
    pub runtime_dir: PathBuf,
    /// The systemctl program; a bare name is looked up in PATH.
    pub systemctl: PathBuf,
    /// OCF_ROOT: where `resource.d/<provider>/<type>` scripts live.
    pub ocf_root: PathBuf,
    /// Time limit for start and migrate (systemctl start, OCF start/migrate_*).
    pub operation_timeout: Duration,
    /// Time limit for a status check (systemctl is-active, OCF monitor).
    pub status_timeout: Duration,
    /// The node the services run on, handed to them as `HA_NODE`.
    pub node: Option<String>,
}

impl AgentSettings {
    /// Defaults: `systemctl` from PATH, OCF_ROOT `/usr/lib/ocf`, 120 s for
    /// start/migrate, 30 s for status checks.
    pub fn new(runtime_dir: impl Into<PathBuf>) -> Self {
        AgentSettings {
            runtime_dir: runtime_dir.into(),
            systemctl: PathBuf::from("systemctl"),
            ocf_root: PathBuf::from(ocf::DEFAULT_OCF_ROOT),
            operation_timeout: Duration::from_secs(120),
            status_timeout: Duration::from_secs(30),
            node: None,
        }
    }

    /// The same settings for the services of `node` (`HA_NODE`).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// The agent for SID `<kind>:<name>`, with its parameters validated.
    /// Errors name the resource and the parameter, e.g.
    /// `exec:web: missing parameter 'cmd'`.
    pub fn agent_for(
        &self,
        kind: &str,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Box<dyn ResourceAgent>, AgentError> {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(AgentError::InvalidParameter {
                resource: format!("{kind}:{name}"),
                param: "name".to_string(),
                reason: "a resource name must be non-empty without whitespace".to_string(),
            });
        }
        let node = self.node.as_deref();
        Ok(match kind {
            exec::KIND => {
                let agent = ExecAgent::from_params(name, params, &self.runtime_dir)?;
                Box::new(match node {
                    Some(n) => agent.with_node(n),
                    None => agent,
                })
            }
            systemd::KIND => {
                let agent =
                    SystemdAgent::from_params(name, params, &self.runtime_dir, &self.systemctl)?
                        .with_timeouts(self.operation_timeout, self.status_timeout);
                Box::new(match node {
                    Some(n) => agent.with_node(n),
                    None => agent,
                })
            }
            ocf::KIND => {
                let agent = OcfAgent::from_params(name, params, &self.ocf_root)?
                    .with_timeouts(self.operation_timeout, self.status_timeout);
                Box::new(match node {
                    Some(n) => agent.with_node(n),
                    None => agent,
                })
            }
            other => {
                return Err(AgentError::UnknownType {
                    resource: format!("{other}:{name}"),
                    kind: other.to_string(),
                })
            }
        })
    }
}

/// The SID types that have an agent.
pub const AGENT_KINDS: [&str; 3] = [exec::KIND, systemd::KIND, ocf::KIND];

/// [`AgentSettings::agent_for`] with default settings for `runtime_dir`.
pub fn agent_for(
    sid_kind: &str,
    name: &str,
    params: &BTreeMap<String, String>,
    runtime_dir: &Path,
) -> Result<Box<dyn ResourceAgent>, AgentError> {
    AgentSettings::new(runtime_dir).agent_for(sid_kind, name, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(kind: &str, name: &str, pairs: &[(&str, &str)]) -> AgentError {
        match agent_for(kind, name, &params(pairs), Path::new("/tmp/unused")) {
            Ok(agent) => panic!("expected an error, got {agent:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_name_the_resource_and_field() {
        // (kind, name, params, expected message)
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("exec", "web", &[], "exec:web: missing parameter 'cmd'"),
            ("exec", "web", &[("cmd", "  ")], "exec:web: invalid parameter 'cmd': must not be empty"),
            ("exec", "web", &[("cmd", "x"), ("cmdd", "y")], "exec:web: invalid parameter 'cmdd': unknown parameter for this agent"),
            ("exec", "web", &[("cmd", "x"), ("cwd", "rel")], "exec:web: invalid parameter 'cwd': 'rel' is not an absolute path"),
            ("exec", "web", &[("cmd", "x"), ("stop_signal", "NOPE")], "exec:web: invalid parameter 'stop_signal': unknown signal 'NOPE'"),
            ("systemd", "nginx", &[("unit", "-f.service")], "systemd:nginx: invalid parameter 'unit': '-f.service' must not start with '-'"),
            ("systemd", "nginx", &[("unit", "x.service"), ("foo", "1")], "systemd:nginx: invalid parameter 'foo': unknown parameter for this agent"),
            ("ocf", "vip", &[], "ocf:vip: missing parameter 'agent'"),
            ("ocf", "vip", &[("agent", "IPaddr2")], "ocf:vip: invalid parameter 'agent': 'IPaddr2' is not of the form provider/type (e.g. heartbeat/IPaddr2)"),
            ("ocf", "vip", &[("agent", "../x")], "ocf:vip: invalid parameter 'agent': '../x' is not of the form provider/type (e.g. heartbeat/IPaddr2)"),
            ("ocf", "vip", &[("agent", "heartbeat/IPaddr2"), ("cidr-netmask", "24")], "ocf:vip: invalid parameter 'cidr-netmask': OCF parameter names may only contain letters, digits and '_'"),
            ("ocf", "vip", &[("agent", "heartbeat/IPaddr2"), ("CRM_meta_x", "1")], "ocf:vip: invalid parameter 'CRM_meta_x': CRM_meta_* names are reserved for the cluster manager"),
            ("vm", "100", &[], "vm:100: no resource agent for type 'vm'"),
        ];
        for (kind, name, pairs, expected) in cases {
            assert_eq!(error(kind, name, pairs).to_string(), *expected);
        }
        assert_eq!(error("vm", "100", &[]).exit_code().code(), 4);
        assert_eq!(error("exec", "web", &[]).exit_code().code(), 6);
    }

    #[test]
    fn builds_each_kind() {
        let dir = Path::new("/tmp/unused");
        let exec = agent_for("exec", "web", &params(&[("cmd", "sleep 1")]), dir).unwrap();
        assert_eq!(exec.resource(), "exec:web");
        let unit =
            SystemdAgent::from_params("nginx", &BTreeMap::new(), dir, Path::new("systemctl"))
                .unwrap();
        assert_eq!(unit.unit(), "nginx.service");
        let unit =
            SystemdAgent::from_params("x.socket", &BTreeMap::new(), dir, Path::new("systemctl"))
                .unwrap();
        assert_eq!(unit.unit(), "x.socket");
        let ocf = agent_for(
            "ocf",
            "vip",
            &params(&[("agent", "heartbeat/IPaddr2"), ("ip", "10.0.0.1")]),
            dir,
        )
        .unwrap();
        assert_eq!(ocf.resource(), "ocf:vip");
        assert_eq!(AGENT_KINDS, ["exec", "systemd", "ocf"]);
    }
}
