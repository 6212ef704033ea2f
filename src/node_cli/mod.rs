//! The node CLI verbs: `daemon`, `cluster ...`, and Proxmox's ha-manager
//! verbs over the local daemon's HTTP API. Flattened into the top-level
//! command by `cli/mod.rs`; [`run`] returns the exit code.

pub mod backup;
mod ca;
pub mod client;
mod commands;
mod crs;
mod history;
mod import;
mod join_tokens;
mod notify;
pub mod output;
mod rules;
pub mod status;
mod tokens;

use serde_json::json;

pub use ca::CaCommand;
pub use join_tokens::JoinTokenCommand;
pub use notify::NotifyCommand;

pub use commands::{
    ClusterCommand, ConfigArg, CrmCommand, CrsCommand, GroupOptions, NodeCommand, OutputFormat,
    ResourceOptions, RuleOptions, RulesCommand, RulesQuery, TokenCommand,
};

use crate::api::cluster::ClusterStatus;
use crate::api::resources::{ResourceView, WriteReply};
use crate::daemon::config::NodeConfig;
use crate::domain::GroupConfig;
use client::{routes, ApiClient};

pub(crate) fn split_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn load(config: &ConfigArg) -> anyhow::Result<NodeConfig> {
    Ok(NodeConfig::load(&config.config)?)
}

pub(crate) fn client(config: &ConfigArg) -> anyhow::Result<ApiClient> {
    ApiClient::for_node(&load(config)?)
}

/// Runs a node verb; returns the process exit code.
pub fn run(command: NodeCommand) -> i32 {
    match execute(command) {
        Ok(()) => 0,
        // The reader has what it wanted (`status | head -1`).
        Err(e) if crate::cli::stdout::is_closed_pipe(&e) => 0,
        Err(e) => {
            // Errors quote names and values too: escaped like the output.
            eprintln!("ha-manager: {}", output::escape_controls(&format!("{e:#}")));
            1
        }
    }
}

fn print_digest(reply: &WriteReply) -> anyhow::Result<()> {
    say(&format!("digest {}\n", reply.digest))
}

/// Writes command output (see [`crate::cli::stdout`]): control characters
/// in names and values are escaped, a closed pipe ends the command
/// quietly.
fn say(text: &str) -> anyhow::Result<()> {
    Ok(crate::cli::stdout::write(&output::escape_controls(text))?)
}

/// Writes `value` as pretty JSON (characters a terminal would interpret
/// are `\u` escapes, as JSON allows).
fn say_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(crate::cli::stdout::write(
        &(output::escape_json_controls(&text) + "\n"),
    )?)
}

fn execute(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Openapi => Ok(crate::cli::stdout::write(
            &crate::api::openapi::document_json()?,
        )?),
        NodeCommand::Daemon { config } => {
            let config = NodeConfig::load(&config)?;
            init_tracing();
            crate::daemon::run(config)
        }
        NodeCommand::Cluster { command } => cluster(command),
        NodeCommand::Token { command } => tokens::run(command),
        NodeCommand::Notify { command } => notify::run(command),
        NodeCommand::Add {
            sid,
            options,
            config,
        } => {
            let options = options.to_map().map_err(anyhow::Error::msg)?;
            let reply: WriteReply = client(&config)?.post(
                routes::RESOURCE_CREATE.at(&[])?,
                &json!({"sid": sid, "options": options}),
            )?;
            print_digest(&reply)
        }
        NodeCommand::Set {
            sid,
            options,
            delete,
            digest,
            config,
        } => {
            let options = options.to_map().map_err(anyhow::Error::msg)?;
            let reply: WriteReply = client(&config)?.put(
                routes::RESOURCE_UPDATE.at(&[&sid])?,
                &json!({"options": options, "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply)
        }
        NodeCommand::Remove { sid, purge, config } => {
            // The daemon validates the value; encoding keeps it one value.
            let reply: WriteReply = client(&config)?
                .delete(routes::RESOURCE_REMOVE.at(&[&sid])?.query("purge", &purge))?;
            print_digest(&reply)
        }
        NodeCommand::Import {
            resources,
            groups,
            rules,
            config,
        } => import::import(&config, resources, groups, rules),
        NodeCommand::Backup { file, config } => backup::backup(&client(&config)?, &file),
        NodeCommand::Restore { file, config } => {
            // Check the file before contacting the node: a bad file is
            // reported even when the cluster is down.
            backup::read_backup(&file)?;
            backup::restore(&client(&config)?, &file)
        }
        NodeCommand::Config {
            config,
            output_format,
        } => {
            let list: Vec<ResourceView> = client(&config)?.get(routes::RESOURCES.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&list),
                OutputFormat::Text => say(&output::resources_text(&list)),
            }
        }
        NodeCommand::Status {
            verbose,
            config,
            output_format,
        } => status::status(&client(&config)?, verbose, output_format),
        NodeCommand::History {
            sid,
            node,
            since,
            limit,
            config,
            output_format,
        } => history::history(
            &client(&config)?,
            sid.as_deref(),
            node.as_deref(),
            since.as_deref(),
            limit,
            output_format,
        ),
        NodeCommand::Explain {
            sid,
            config,
            output_format,
        } => history::explain(&client(&config)?, &sid, output_format),
        NodeCommand::Migrate { sid, node, config } => {
            move_service(&config, routes::RESOURCE_MIGRATE, &sid, &node)
        }
        NodeCommand::Relocate { sid, node, config } => {
            move_service(&config, routes::RESOURCE_RELOCATE, &sid, &node)
        }
        NodeCommand::Groupadd {
            group,
            options,
            config,
        } => {
            let reply: WriteReply = client(&config)?.post(
                routes::GROUP_CREATE.at(&[])?,
                &json!({"group": group, "options": options.to_map()}),
            )?;
            print_digest(&reply)
        }
        NodeCommand::Crs { command } => crs::crs(command),
        NodeCommand::Rules { command } => rules::rules(command),
        NodeCommand::Groupconfig {
            config,
            output_format,
        } => {
            let groups: Vec<GroupConfig> = client(&config)?.get(routes::GROUPS.at(&[])?)?;
            print_section_config(&groups, output_format, crate::config::write_groups_cfg)
        }
        NodeCommand::Groupremove { group, config } => {
            let reply: WriteReply = client(&config)?.delete(routes::GROUP_REMOVE.at(&[&group])?)?;
            print_digest(&reply)
        }
        NodeCommand::Groupset {
            group,
            options,
            delete,
            digest,
            config,
        } => {
            let reply: WriteReply = client(&config)?.put(
                routes::GROUP_UPDATE.at(&[&group])?,
                &json!({"options": options.to_map(), "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply)
        }
        NodeCommand::CrmCommand { command, config } => match command {
            CrmCommand::Migrate { sid, node } => {
                move_service(&config, routes::RESOURCE_MIGRATE, &sid, &node)
            }
            CrmCommand::Relocate { sid, node } => {
                move_service(&config, routes::RESOURCE_RELOCATE, &sid, &node)
            }
            CrmCommand::Stop { sid, timeout } => {
                let timeout: u64 = timeout.parse().map_err(|_| {
                    anyhow::anyhow!("field 'timeout': '{timeout}' is not an integer >= 0")
                })?;
                client(&config)?.post_empty(
                    routes::CRM_COMMAND.at(&[])?,
                    &json!({"command": "stop", "sid": sid, "timeout": timeout}),
                )
            }
            CrmCommand::NodeMaintenance { action, node } => {
                let command = format!("node-maintenance-{action}");
                client(&config)?.post_empty(
                    routes::CRM_COMMAND.at(&[])?,
                    &json!({"command": command, "node": node}),
                )
            }
            CrmCommand::DisarmHa { mode } => client(&config)?.post_empty(
                routes::CRM_COMMAND.at(&[])?,
                &json!({"command": "disarm-ha", "mode": mode}),
            ),
            CrmCommand::ArmHa => client(&config)?
                .post_empty(routes::CRM_COMMAND.at(&[])?, &json!({"command": "arm-ha"})),
        },
    }
}

fn move_service(
    config: &ConfigArg,
    route: client::Route,
    sid: &str,
    node: &str,
) -> anyhow::Result<()> {
    let _: serde_json::Value = client(config)?.post(route.at(&[sid])?, &json!({"node": node}))?;
    Ok(())
}

fn cluster(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init { config } => {
            let config = load(&config)?;
            let (_, token) = crate::daemon::lifecycle::init(&config)?;
            say(&format!(
                "cluster created; credentials in {} and {} (keys mode 0600)\njoin token: {}\n\
                 on another node: ha-manager cluster join {} --token {}\n",
                config.credentials_path().display(),
                config.data_dir.join("tls").display(),
                token,
                config.advertise,
                token
            ))
        }
        ClusterCommand::Join {
            address,
            token,
            config,
        } => {
            let config = load(&config)?;
            let creds = crate::daemon::lifecycle::join(&config, &address, &token)?;
            say(&format!(
                "joined as node id {}; the daemon completes the admission\n",
                creds.node_id
            ))
        }
        ClusterCommand::Status {
            config,
            output_format,
        } => {
            let status: ClusterStatus = client(&config)?.get(routes::CLUSTER_STATUS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&status),
                OutputFormat::Text => say(&output::cluster_text(&status)),
            }
        }
        ClusterCommand::Leave { config } => {
            client(&config)?.post_empty(routes::CLUSTER_LEAVE.at(&[])?, &json!({}))?;
            say("left the cluster\n")
        }
        ClusterCommand::Delnode { node, config } => {
            let reply: crate::api::members::DelnodeReply = client(&config)?
                .post(routes::CLUSTER_DELNODE.at(&[])?, &json!({ "node": node }))?;
            say(&format!(
                "node '{}' (id {}) removed from the cluster; a replacement under the same \
                 name joins with an empty data directory\n",
                reply.node, reply.id
            ))
        }
        ClusterCommand::ForceSingleNode { confirmed, config } => {
            let config = load(&config)?;
            eprintln!(
                "WARNING: this makes node '{}' the only member of its cluster, with the state \
                 its own log holds. Use it only when a majority of the members is lost for \
                 good: a member that comes back with its old disk would form a second cluster \
                 view. Wipe the lost members' data directories before they return, and add \
                 them again with `cluster delnode` + `cluster join`.",
                config.node
            );
            if !confirmed {
                anyhow::bail!(
                    "not done: run again with --yes-i-have-lost-the-majority to confirm, with \
                     the daemon stopped"
                );
            }
            let forced = crate::daemon::lifecycle::force_single_node(&config)?;
            say(&format!(
                "node '{}' is now the only voter (membership entry at index {}, term {}); start \
                 its daemon: the CRM fences the lost members and recovers their services here; \
                 then remove them with `ha-manager cluster delnode NODE`\n",
                config.node, forced.index, forced.term
            ))
        }
        ClusterCommand::JoinToken { command } => join_tokens::run(command),
        ClusterCommand::Ca { command } => ca::run(command),
        ClusterCommand::SetAddress {
            node,
            address,
            config,
        } => {
            client(&config)?.post_empty(
                routes::CLUSTER_SET_ADDRESS.at(&[])?,
                &json!({ "node": node, "addr": address }),
            )?;
            say(&format!("node '{node}' is now reached at {address}\n"))
        }
        ClusterCommand::RenewCert { config } => {
            let reply: crate::api::cluster::RenewedCert =
                client(&config)?.post(routes::CLUSTER_RENEW_CERT.at(&[])?, &json!({}))?;
            say(&format!(
                "node '{}' has a new certificate (sha256 {}), valid until {} (unix seconds); \
                 in use for new connections\n",
                reply.node, reply.fingerprint, reply.not_after
            ))
        }
    }
}

/// Prints a list as JSON or in its section-config text form.
fn print_section_config<T: serde::Serialize>(
    items: &[T],
    format: OutputFormat,
    to_text: fn(&[T]) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => say_json(items),
        OutputFormat::Text => say(&to_text(items)),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
