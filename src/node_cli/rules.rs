//! The `rules` verbs: Proxmox's `rules config` and `rules list` tables and
//! the rule edits.

use serde_json::json;

use super::client::routes;
use super::commands::{OutputFormat, RulesCommand, RulesQuery};
use super::{client, output, print_digest, say, say_json, split_list};
use crate::api::resources::WriteReply;
use crate::api::rules::RuleView;

/// Runs a `rules` sub-verb.
pub(super) fn rules(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        // Proxmox: `rules config` is the table with the CRM's verdict on
        // each rule, `rules list` the API's rules as a plain table.
        RulesCommand::Config { query } => {
            let views = fetch_rules(&query)?;
            match query.output_format {
                OutputFormat::Json => say_json(&views),
                OutputFormat::Text => say(&output::rules_config_table(&views)),
            }
        }
        RulesCommand::List { query } => {
            let views = fetch_rules(&query)?;
            match query.output_format {
                OutputFormat::Json => say_json(&views),
                OutputFormat::Text => say(&output::rules_list_table(&views)),
            }
        }
        RulesCommand::Add {
            kind,
            rule,
            options,
            config,
        } => {
            let reply: WriteReply = client(&config)?.post(
                routes::RULE_CREATE.at(&[])?,
                &json!({"type": kind, "rule": rule, "options": options.to_map()}),
            )?;
            print_digest(&reply)
        }
        RulesCommand::Set {
            kind,
            rule,
            options,
            delete,
            digest,
            config,
        } => {
            check_kind(&kind)?;
            let client = client(&config)?;
            // The type is part of Proxmox's `rules set <type> <id>`: a rule
            // of the other type is refused here, before anything is sent.
            let current: RuleView = client.get(routes::RULE.at(&[&rule])?)?;
            if current.kind() != kind {
                anyhow::bail!(
                    "field 'type': rule '{rule}' is a {} rule, not {kind}",
                    current.kind()
                );
            }
            let reply: WriteReply = client.put(
                routes::RULE_UPDATE.at(&[&rule])?,
                &json!({"options": options.to_map(), "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply)
        }
        RulesCommand::Remove { rule, config } => {
            let reply: WriteReply = client(&config)?.delete(routes::RULE_REMOVE.at(&[&rule])?)?;
            print_digest(&reply)
        }
    }
}

/// The two rule types `rules add|set` take.
fn check_kind(kind: &str) -> anyhow::Result<()> {
    use crate::config::rules::{NODE_AFFINITY_TYPE, RESOURCE_AFFINITY_TYPE};
    if kind == NODE_AFFINITY_TYPE || kind == RESOURCE_AFFINITY_TYPE {
        return Ok(());
    }
    anyhow::bail!(
        "field 'type': unknown rule type '{kind}' (expected {NODE_AFFINITY_TYPE} or {RESOURCE_AFFINITY_TYPE})"
    )
}

/// `GET /rules` with the query's filters.
fn fetch_rules(query: &RulesQuery) -> anyhow::Result<Vec<RuleView>> {
    let mut target = routes::RULES.at(&[])?;
    if let Some(kind) = &query.kind {
        target = target.query("type", kind);
    }
    if let Some(resource) = &query.resource {
        target = target.query("resource", resource);
    }
    client(&query.config)?.get(target)
}
