//! The node CLI verbs: `daemon`, `cluster ...`, and Proxmox's ha-manager
//! verbs over the local daemon's HTTP API. Flattened into the top-level
//! command by `cli/mod.rs`; [`run`] returns the exit code.

pub mod client;
pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::api::cluster::ClusterStatus;
use crate::api::resources::{ResourceView, WriteReply};
use crate::api::rules::RuleView;
use crate::api::status::{StatusEntry, StatusSnapshot};
use crate::daemon::config::{NodeConfig, DEFAULT_CONFIG_PATH};
use crate::domain::{GroupConfig, NodeAffinityRule};
use client::ApiClient;

/// Output format of the query verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Human readable (Proxmox's text).
    #[default]
    Text,
    /// JSON.
    Json,
}

/// Where the node config is: `--config`, else `HA_MANAGER_CONFIG`, else
/// `/etc/ha-manager/node.toml`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The node configuration file (TOML).
    #[arg(long, env = "HA_MANAGER_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}

/// The options given on the command line, by their API names.
fn given_options<const N: usize>(
    options: [(&str, &Option<String>); N],
) -> BTreeMap<String, String> {
    options
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key.to_string(), v.clone())))
        .collect()
}

/// Resource options shared by `add` and `set`.
#[derive(Debug, Clone, Args, Default)]
pub struct ResourceOptions {
    /// Requested state: started, stopped, disabled, ignored.
    #[arg(long)]
    pub state: Option<String>,
    /// Move back to the preferred node when it returns (0/1).
    #[arg(long)]
    pub failback: Option<String>,
    /// Restarts on the same node after a failed start.
    #[arg(long = "max_restart", alias = "max-restart")]
    pub max_restart: Option<String>,
    /// Relocations to other nodes after restarts are exhausted.
    #[arg(long = "max_relocate", alias = "max-relocate")]
    pub max_relocate: Option<String>,
    /// HA group.
    #[arg(long)]
    pub group: Option<String>,
    /// Free text.
    #[arg(long)]
    pub comment: Option<String>,
    /// Agent parameter `key=value` (e.g. `cmd=...` for exec), repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

impl ResourceOptions {
    fn to_map(&self) -> Result<BTreeMap<String, String>, String> {
        let mut m = given_options([
            ("state", &self.state),
            ("failback", &self.failback),
            ("max_restart", &self.max_restart),
            ("max_relocate", &self.max_relocate),
            ("group", &self.group),
            ("comment", &self.comment),
        ]);
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("option '--param': '{p}' is not KEY=VALUE"))?;
            m.insert(k.to_string(), v.to_string());
        }
        Ok(m)
    }
}

/// Group options shared by `groupadd` and `groupset`.
#[derive(Debug, Clone, Args, Default)]
pub struct GroupOptions {
    /// Nodes with optional priority: `node1:2,node2`.
    #[arg(long)]
    pub nodes: Option<String>,
    /// Only run on the listed nodes (0/1).
    #[arg(long)]
    pub restricted: Option<String>,
    /// Never move back to a higher-priority node (0/1).
    #[arg(long)]
    pub nofailback: Option<String>,
    /// Free text.
    #[arg(long)]
    pub comment: Option<String>,
}

impl GroupOptions {
    fn to_map(&self) -> BTreeMap<String, String> {
        given_options([
            ("nodes", &self.nodes),
            ("restricted", &self.restricted),
            ("nofailback", &self.nofailback),
            ("comment", &self.comment),
        ])
    }
}

/// Cluster life-cycle commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a new cluster made of this node (writes root-only secrets).
    Init {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Join the cluster of the member at ADDRESS.
    Join {
        /// `host:port` of a member.
        address: String,
        /// The join token printed by `cluster init`.
        #[arg(long)]
        token: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show Raft state and members.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Remove this node from the cluster.
    Leave {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Rule options shared by `rules add` and `rules set`.
#[derive(Debug, Clone, Args, Default)]
pub struct RuleOptions {
    /// The resources the rule binds: `exec:web,exec:db`.
    #[arg(long)]
    pub resources: Option<String>,
    /// Nodes with optional priority (higher wins): `node1:2,node2`.
    #[arg(long)]
    pub nodes: Option<String>,
    /// Run only on the listed nodes (0/1).
    #[arg(long)]
    pub strict: Option<String>,
    /// Keep the rule but ignore it (0/1).
    #[arg(long)]
    pub disable: Option<String>,
    /// Free text.
    #[arg(long)]
    pub comment: Option<String>,
}

impl RuleOptions {
    fn to_map(&self) -> BTreeMap<String, String> {
        given_options([
            ("resources", &self.resources),
            ("nodes", &self.nodes),
            ("strict", &self.strict),
            ("disable", &self.disable),
            ("comment", &self.comment),
        ])
    }
}

/// Filters and output of `rules config` and `rules list`.
#[derive(Debug, Clone, Args)]
pub struct RulesQuery {
    /// Only rules of this type (node-affinity).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only rules that name this resource.
    #[arg(long)]
    pub resource: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Output format.
    #[arg(long = "output-format", value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

/// `rules` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show the rules as rules.cfg text (or JSON).
    Config {
        #[command(flatten)]
        query: RulesQuery,
    },
    /// Show the rules as a table: enabled, state (in use, ignored),
    /// resources, nodes (or JSON).
    List {
        #[command(flatten)]
        query: RulesQuery,
    },
    /// Create a rule (refused until HA groups are migrated).
    Add {
        /// Rule type: node-affinity.
        kind: String,
        /// Rule id.
        rule: String,
        #[command(flatten)]
        options: RuleOptions,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Change a rule.
    Set {
        /// Rule type: node-affinity.
        kind: String,
        /// Rule id.
        rule: String,
        #[command(flatten)]
        options: RuleOptions,
        /// Comma-separated keys to reset (strict, disable, comment).
        #[arg(long)]
        delete: Option<String>,
        /// Only apply if the rules are still at this digest.
        #[arg(long)]
        digest: Option<u64>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Delete a rule.
    Remove {
        /// Rule id.
        rule: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `crm-command` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum CrmCommand {
    /// Queue a live migration.
    Migrate {
        /// Service.
        sid: String,
        /// Target node.
        node: String,
    },
    /// Queue a relocation (stop, move, start).
    Relocate {
        /// Service.
        sid: String,
        /// Target node.
        node: String,
    },
    /// Queue a stop with a timeout in seconds (0 = hard stop).
    Stop {
        /// Service.
        sid: String,
        /// Seconds.
        timeout: String,
    },
    /// Enable or disable maintenance mode of a node.
    NodeMaintenance {
        /// enable or disable.
        #[arg(value_parser = ["enable", "disable"])]
        action: String,
        /// The node.
        node: String,
    },
}

/// The node verbs (flattened into the top-level command).
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node daemon.
    Daemon {
        /// The node configuration file (TOML).
        #[arg(long, env = "HA_MANAGER_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Cluster life cycle.
    Cluster {
        /// Sub-command.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Create a resource.
    Add {
        /// SID (`exec:web`, `systemd:nginx`, `ocf:vip`).
        sid: String,
        #[command(flatten)]
        options: ResourceOptions,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Change a resource.
    Set {
        /// SID.
        sid: String,
        #[command(flatten)]
        options: ResourceOptions,
        /// Comma-separated keys to reset to their defaults.
        #[arg(long)]
        delete: Option<String>,
        /// Only apply if the configuration is still at this digest.
        #[arg(long)]
        digest: Option<u64>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Delete a resource.
    Remove {
        /// SID.
        sid: String,
        /// Also remove it from every rule, deleting rules left empty (0/1).
        #[arg(long, default_value = "1")]
        purge: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Import resources.cfg / groups.cfg / rules.cfg (for example from a
    /// Proxmox cluster) into documents that are still empty.
    Import {
        /// A resources.cfg file.
        #[arg(long)]
        resources: Option<PathBuf>,
        /// A groups.cfg file (migrated to rules by the CRM).
        #[arg(long)]
        groups: Option<PathBuf>,
        /// A rules.cfg file.
        #[arg(long)]
        rules: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List resources.
    Config {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Show the HA status.
    Status {
        /// Append the full manager status.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Live-migrate a service (alias of `crm-command migrate`).
    Migrate {
        /// SID.
        sid: String,
        /// Target node.
        node: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Relocate a service (alias of `crm-command relocate`).
    Relocate {
        /// SID.
        sid: String,
        /// Target node.
        node: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Create a group.
    Groupadd {
        /// Group id.
        group: String,
        #[command(flatten)]
        options: GroupOptions,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Node-affinity rules (rules.cfg; HA groups are migrated into them).
    Rules {
        /// Sub-command.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// List groups.
    Groupconfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Delete a group.
    Groupremove {
        /// Group id.
        group: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Change a group.
    Groupset {
        /// Group id.
        group: String,
        #[command(flatten)]
        options: GroupOptions,
        /// Comma-separated keys to reset.
        #[arg(long)]
        delete: Option<String>,
        /// Only apply if the configuration is still at this digest.
        #[arg(long)]
        digest: Option<u64>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Queue a command for the CRM.
    CrmCommand {
        /// The command.
        #[command(subcommand)]
        command: CrmCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn split_list(s: &Option<String>) -> Vec<String> {
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

fn client(config: &ConfigArg) -> anyhow::Result<ApiClient> {
    ApiClient::for_node(&load(config)?)
}

/// Runs a node verb; returns the process exit code.
pub fn run(command: NodeCommand) -> i32 {
    match execute(command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ha-manager: {e:#}");
            1
        }
    }
}

fn print_digest(reply: &WriteReply) {
    println!("digest {}", reply.digest);
}

fn execute(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Daemon { config } => {
            let config = NodeConfig::load(&config)?;
            init_tracing();
            crate::daemon::run(config)
        }
        NodeCommand::Cluster { command } => cluster(command),
        NodeCommand::Add {
            sid,
            options,
            config,
        } => {
            let options = options.to_map().map_err(anyhow::Error::msg)?;
            let reply: WriteReply =
                client(&config)?.post("/resources", &json!({"sid": sid, "options": options}))?;
            print_digest(&reply);
            Ok(())
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
                &format!("/resources/{}", client::segment(&sid)?),
                &json!({"options": options, "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply);
            Ok(())
        }
        NodeCommand::Remove { sid, purge, config } => {
            // The daemon validates the value; encoding keeps it one value.
            let reply: WriteReply = client(&config)?.delete(&format!(
                "/resources/{}?purge={}",
                client::segment(&sid)?,
                query_value(&purge)
            ))?;
            print_digest(&reply);
            Ok(())
        }
        NodeCommand::Import {
            resources,
            groups,
            rules,
            config,
        } => import(&config, resources, groups, rules),
        NodeCommand::Config {
            config,
            output_format,
        } => {
            let list: Vec<ResourceView> = client(&config)?.get("/resources")?;
            match output_format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                OutputFormat::Text => print!("{}", output::resources_text(&list)),
            }
            Ok(())
        }
        NodeCommand::Status {
            verbose,
            config,
            output_format,
        } => {
            let c = client(&config)?;
            let entries: Vec<StatusEntry> = c.get("/status/current")?;
            let full: Option<StatusSnapshot> = if verbose {
                Some(c.get("/status/manager_status")?)
            } else {
                None
            };
            match output_format {
                OutputFormat::Json => {
                    let v = match full {
                        Some(f) => json!({"current": entries, "manager_status": f}),
                        None => serde_json::to_value(&entries)?,
                    };
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                OutputFormat::Text => {
                    for e in &entries {
                        println!("{} {}", e.kind, e.status);
                    }
                    if let Some(f) = full {
                        println!("full cluster state:");
                        println!("{}", serde_json::to_string_pretty(&f)?);
                    }
                }
            }
            Ok(())
        }
        NodeCommand::Migrate { sid, node, config } => move_service(&config, "migrate", &sid, &node),
        NodeCommand::Relocate { sid, node, config } => {
            move_service(&config, "relocate", &sid, &node)
        }
        NodeCommand::Groupadd {
            group,
            options,
            config,
        } => {
            let reply: WriteReply = client(&config)?.post(
                "/groups",
                &json!({"group": group, "options": options.to_map()}),
            )?;
            print_digest(&reply);
            Ok(())
        }
        NodeCommand::Rules { command } => rules(command),
        NodeCommand::Groupconfig {
            config,
            output_format,
        } => {
            let groups: Vec<GroupConfig> = client(&config)?.get("/groups")?;
            print_section_config(&groups, output_format, crate::config::write_groups_cfg)
        }
        NodeCommand::Groupremove { group, config } => {
            let reply: WriteReply =
                client(&config)?.delete(&format!("/groups/{}", client::segment(&group)?))?;
            print_digest(&reply);
            Ok(())
        }
        NodeCommand::Groupset {
            group,
            options,
            delete,
            digest,
            config,
        } => {
            let reply: WriteReply = client(&config)?.put(
                &format!("/groups/{}", client::segment(&group)?),
                &json!({"options": options.to_map(), "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply);
            Ok(())
        }
        NodeCommand::CrmCommand { command, config } => match command {
            CrmCommand::Migrate { sid, node } => move_service(&config, "migrate", &sid, &node),
            CrmCommand::Relocate { sid, node } => move_service(&config, "relocate", &sid, &node),
            CrmCommand::Stop { sid, timeout } => {
                let timeout: u64 = timeout.parse().map_err(|_| {
                    anyhow::anyhow!("field 'timeout': '{timeout}' is not an integer >= 0")
                })?;
                client(&config)?.post_empty(
                    "/crm-command",
                    &json!({"command": "stop", "sid": sid, "timeout": timeout}),
                )
            }
            CrmCommand::NodeMaintenance { action, node } => {
                let command = format!("node-maintenance-{action}");
                client(&config)?
                    .post_empty("/crm-command", &json!({"command": command, "node": node}))
            }
        },
    }
}

fn rules(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Config { query } => {
            let views = fetch_rules(&query)?;
            if query.output_format == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&views)?);
                return Ok(());
            }
            // As `config` does for resources: problems as warnings, the
            // rules themselves as rules.cfg text.
            for view in &views {
                for (field, messages) in &view.errors {
                    for message in messages {
                        eprintln!(
                            "warning: rule '{}' is ignored by the CRM: field '{field}': {message}",
                            view.rule.id
                        );
                    }
                }
            }
            let rules: Vec<NodeAffinityRule> = views.into_iter().map(|v| v.rule).collect();
            print!("{}", crate::config::write_rules_cfg(&rules));
            Ok(())
        }
        RulesCommand::List { query } => {
            let views = fetch_rules(&query)?;
            match query.output_format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&views)?),
                OutputFormat::Text => print!("{}", output::rules_table(&views)),
            }
            Ok(())
        }
        RulesCommand::Add {
            kind,
            rule,
            options,
            config,
        } => {
            let reply: WriteReply = client(&config)?.post(
                "/rules",
                &json!({"type": kind, "rule": rule, "options": options.to_map()}),
            )?;
            print_digest(&reply);
            Ok(())
        }
        RulesCommand::Set {
            kind,
            rule,
            options,
            delete,
            digest,
            config,
        } => {
            if kind != crate::config::rules::NODE_AFFINITY_TYPE {
                anyhow::bail!(
                    "field 'type': rule type '{kind}' is not supported (expected node-affinity)"
                );
            }
            let reply: WriteReply = client(&config)?.put(
                &format!("/rules/{}", client::segment(&rule)?),
                &json!({"options": options.to_map(), "delete": split_list(&delete), "digest": digest}),
            )?;
            print_digest(&reply);
            Ok(())
        }
        RulesCommand::Remove { rule, config } => {
            let reply: WriteReply =
                client(&config)?.delete(&format!("/rules/{}", client::segment(&rule)?))?;
            print_digest(&reply);
            Ok(())
        }
    }
}

/// `GET /rules` with the query's filters.
fn fetch_rules(query: &RulesQuery) -> anyhow::Result<Vec<RuleView>> {
    let mut filters = Vec::new();
    if let Some(kind) = &query.kind {
        filters.push(format!("type={}", query_value(kind)));
    }
    if let Some(resource) = &query.resource {
        filters.push(format!("resource={}", query_value(resource)));
    }
    let path = if filters.is_empty() {
        "/rules".to_string()
    } else {
        format!("/rules?{}", filters.join("&"))
    };
    client(&query.config)?.get(&path)
}

/// Percent-encodes a query value (only what could break the query).
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Reads the given files, checks them here so errors name the operator's
/// own file and line, then sends them to the daemon.
fn import(
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
    println!(
        "imported {} resources, {} groups, {} rules",
        reply.resources, reply.groups, reply.rules
    );
    Ok(())
}

fn move_service(config: &ConfigArg, task: &str, sid: &str, node: &str) -> anyhow::Result<()> {
    let _: serde_json::Value = client(config)?.post(
        &format!("/resources/{}/{task}", client::segment(sid)?),
        &json!({"node": node}),
    )?;
    Ok(())
}

fn cluster(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init { config } => {
            let config = load(&config)?;
            let creds = crate::daemon::lifecycle::init(&config)?;
            println!(
                "cluster created; credentials in {} (mode 0600)",
                config.credentials_path().display()
            );
            println!("join token: {}", creds.join_token);
            println!(
                "on another node: ha-manager cluster join {} --token {}",
                config.advertise, creds.join_token
            );
            Ok(())
        }
        ClusterCommand::Join {
            address,
            token,
            config,
        } => {
            let config = load(&config)?;
            let creds = crate::daemon::lifecycle::join(&config, &address, &token)?;
            println!(
                "joined as node id {}; the daemon completes the admission",
                creds.node_id
            );
            Ok(())
        }
        ClusterCommand::Status {
            config,
            output_format,
        } => {
            let status: ClusterStatus = client(&config)?.get("/cluster/status")?;
            match output_format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                OutputFormat::Text => print!("{}", output::cluster_text(&status)),
            }
            Ok(())
        }
        ClusterCommand::Leave { config } => {
            client(&config)?.post_empty("/cluster/leave", &json!({}))?;
            println!("left the cluster");
            Ok(())
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
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(items)?),
        OutputFormat::Text => print!("{}", to_text(items)),
    }
    Ok(())
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
