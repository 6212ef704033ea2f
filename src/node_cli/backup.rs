//! `ha-manager backup FILE` and `ha-manager restore FILE`.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::client::{routes, ApiClient};
use crate::api::backup::Backup;
use crate::api::import::ImportReply;

/// Writes the cluster's backup to `file` (0600: it is the whole
/// configuration), through a temp file so a failed write leaves no half
/// backup under the name.
pub fn backup(client: &ApiClient, file: &Path) -> anyhow::Result<()> {
    let backup: Backup = client.get(routes::BACKUP.at(&[])?)?;
    let text = serde_json::to_string_pretty(&backup)?;
    let tmp = file.with_extension("partial");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
    }
    std::fs::rename(&tmp, file).with_context(|| format!("{}: cannot write", file.display()))?;
    let count = |text: &str, kinds: &[&str]| {
        text.lines()
            .filter(|l| kinds.iter().any(|k| l.starts_with(k)))
            .count()
    };
    super::say(&format!(
        "backup of {} resources and {} rules (format version {}) written to {}\n",
        crate::config::parse_resources_cfg(&backup.files.resources, "resources.cfg")
            .map_or(0, |r| r.len()),
        count(
            &backup.files.rules,
            &["node-affinity:", "resource-affinity:"]
        ),
        backup.version,
        file.display()
    ))
}

/// Reads and checks a backup file; errors name the file and the field or
/// line.
pub fn read_backup(file: &Path) -> anyhow::Result<Backup> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let backup: Backup = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a readable backup: {e}", file.display()))?;
    backup
        .check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let name = |n: &str| format!("{} (files.{n})", file.display());
    crate::config::parse_resources_cfg(&backup.files.resources, &name("resources.cfg"))?;
    crate::config::parse_groups_cfg(&backup.files.groups, &name("groups.cfg"))?;
    crate::config::parse_rules(&backup.files.rules, &name("rules.cfg"))?;
    Ok(backup)
}

/// Restores `file` into an empty cluster (the import route refuses a
/// cluster that already has resources, groups or rules, and writes nothing
/// then). The manager status is not written back: the CRM places the
/// restored services on today's nodes.
pub fn restore(client: &ApiClient, file: &Path) -> anyhow::Result<()> {
    let backup = read_backup(file)?;
    let some = |t: &String| (!t.trim().is_empty()).then(|| t.clone());
    let f = &backup.files;
    if some(&f.resources).is_none() && some(&f.groups).is_none() && some(&f.rules).is_none() {
        anyhow::bail!("{}: the backup holds no configuration", file.display());
    }
    let reply: ImportReply = client.post(
        routes::CONFIG_IMPORT.at(&[])?,
        &json!({
            "resources": some(&f.resources),
            "groups": some(&f.groups),
            "rules": some(&f.rules),
        }),
    )?;
    // The scheduler options, unless the backup has only the defaults.
    let defaults = crate::api::crs::crs_values(&crate::domain::CrsOptions::default());
    if !backup.crs.is_empty() && backup.crs != defaults {
        let _: crate::api::resources::WriteReply =
            client.put(routes::CRS_SET.at(&[])?, &json!({ "options": backup.crs }))?;
    }
    super::say(&format!(
        "restored {} resources, {} groups, {} rules from {} (written by {} on node {}); the CRM \
         places the services on the current nodes\n",
        reply.resources,
        reply.groups,
        reply.rules,
        file.display(),
        backup.written_by,
        backup.node
    ))
}
