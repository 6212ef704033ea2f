//! `import`: resources.cfg, groups.cfg and rules.cfg files (for example
//! from a Proxmox cluster) into documents that are still empty.

use std::path::PathBuf;

use serde_json::json;

use super::client::routes;
use super::commands::ConfigArg;
use super::{client, say};
use crate::agents::{AgentSettings, AGENT_KINDS};
use crate::domain::{ResourceConfig, Sid};

/// Reads the given files, checks them here so errors name the operator's
/// own file and line, then sends them to the daemon.
pub(super) fn import(
    config: &ConfigArg,
    resources: Option<PathBuf>,
    groups: Option<PathBuf>,
    rules: Option<PathBuf>,
) -> anyhow::Result<()> {
    fn read(path: &Option<PathBuf>) -> anyhow::Result<Option<(String, String)>> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Some((path.display().to_string(), text)))
    }
    let resources = read(&resources)?;
    let groups = read(&groups)?;
    let rules = read(&rules)?;
    if let Some((file, text)) = &resources {
        let parsed = crate::config::parse_resources_cfg(text, file)?;
        check_agents(file, text, &parsed)?;
    }
    if let Some((file, text)) = &groups {
        crate::config::parse_groups_cfg(text, file)?;
    }
    if let Some((file, text)) = &rules {
        crate::config::parse_rules(text, file)?;
    }
    let text = |doc: Option<(String, String)>| doc.map(|(_, text)| text);
    let reply: crate::api::import::ImportReply = client(config)?.post(
        routes::CONFIG_IMPORT.at(&[])?,
        &json!({"resources": text(resources), "groups": text(groups), "rules": text(rules)}),
    )?;
    say(&format!(
        "imported {} resources, {} groups, {} rules\n",
        reply.resources, reply.groups, reply.rules
    ))
}

/// The line (1-based) of the section header of `sid` in a section-config
/// text (`<type>: <name>`).
fn header_line(text: &str, sid: &Sid) -> Option<usize> {
    text.lines()
        .position(|line| {
            !line.starts_with(char::is_whitespace)
                && line.split_once(':').is_some_and(|(kind, name)| {
                    kind.trim() == sid.kind() && name.trim() == sid.name()
                })
        })
        .map(|i| i + 1)
}

/// What to do with a resource type that has no agent here.
fn agent_hint(kind: &str) -> String {
    let agents = AGENT_KINDS.join(", ");
    match kind {
        "vm" | "ct" => format!(
            "Proxmox guests have no agent here: map each to one of the agents ({agents}), \
             e.g. a section 'exec: <name>' with 'cmd <command that runs the guest>', or \
             'systemd: <name>' with 'unit <the unit that runs it>', keeping its options"
        ),
        _ => format!("the agents are: {agents}"),
    }
}

/// Checks each resource's agent and parameters here, so a problem names
/// the file and line of its section (the daemon only knows the text).
fn check_agents(file: &str, text: &str, resources: &[ResourceConfig]) -> anyhow::Result<()> {
    let settings = AgentSettings::new("/nonexistent");
    let mut problems = Vec::new();
    for r in resources {
        let at = header_line(text, &r.sid).map_or(String::new(), |l| format!(":{l}"));
        let sid = &r.sid;
        if !AGENT_KINDS.contains(&sid.kind()) {
            problems.push(format!(
                "{file}{at}: resource '{sid}': no resource agent for type '{}'; {}",
                sid.kind(),
                agent_hint(sid.kind())
            ));
        } else if let Err(e) = settings.agent_for(sid.kind(), sid.name(), &r.params) {
            problems.push(format!("{file}{at}: {e}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("nothing imported:\n{}", problems.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_are_refused_with_file_line_and_what_to_do() {
        let text = "exec: web\n\tcmd sleep 1\n\nvm: 100\n\tstate started\n\nct: 101\n\nexec: bad\n";
        let parsed = crate::config::parse_resources_cfg(text, "resources.cfg").unwrap();
        let err = check_agents("/tmp/resources.cfg", text, &parsed)
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "nothing imported:");
        assert!(
            lines[1].starts_with("/tmp/resources.cfg:4: resource 'vm:100': no resource agent for type 'vm'; Proxmox guests"),
            "{err}"
        );
        assert!(lines[1].contains("'exec: <name>' with 'cmd"), "{err}");
        assert!(
            lines[2].starts_with("/tmp/resources.cfg:7: resource 'ct:101'"),
            "{err}"
        );
        assert_eq!(
            lines[3],
            "/tmp/resources.cfg:9: exec:bad: missing parameter 'cmd'"
        );
        assert_eq!(lines.len(), 4, "{err}");
        let good = "exec: web\n\tcmd sleep 1\n";
        let parsed = crate::config::parse_resources_cfg(good, "r.cfg").unwrap();
        assert!(check_agents("r.cfg", good, &parsed).is_ok());
    }
}
