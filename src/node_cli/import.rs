//! `import`: resources.cfg, groups.cfg and rules.cfg files (for example
//! from a Proxmox cluster) into documents that are still empty.

use std::path::PathBuf;

use serde_json::json;

use super::commands::ConfigArg;
use super::{client, say};

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
        crate::config::parse_resources_cfg(text, file)?;
    }
    if let Some((file, text)) = &groups {
        crate::config::parse_groups_cfg(text, file)?;
    }
    if let Some((file, text)) = &rules {
        crate::config::parse_rules_cfg(text, file)?;
    }
    let text = |doc: Option<(String, String)>| doc.map(|(_, text)| text);
    let reply: crate::api::import::ImportReply = client(config)?.post(
        "/config/import",
        &json!({"resources": text(resources), "groups": text(groups), "rules": text(rules)}),
    )?;
    say(&format!(
        "imported {} resources, {} groups, {} rules\n",
        reply.resources, reply.groups, reply.rules
    ))
}
