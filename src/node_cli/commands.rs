//! The clap definitions of the node verbs and their options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::daemon::config::DEFAULT_CONFIG_PATH;

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
    /// CPUs the service may use, for the static/dynamic schedulers
    /// (decimal cores, 0 = unlimited).
    #[arg(long)]
    pub maxcpu: Option<String>,
    /// Memory the service may use, for the static/dynamic schedulers, in
    /// MiB.
    #[arg(long)]
    pub maxmem: Option<String>,
    /// Agent parameter `key=value` (e.g. `cmd=...` for exec), repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

impl ResourceOptions {
    pub(super) fn to_map(&self) -> Result<BTreeMap<String, String>, String> {
        let mut m = given_options([
            ("state", &self.state),
            ("failback", &self.failback),
            ("max_restart", &self.max_restart),
            ("max_relocate", &self.max_relocate),
            ("group", &self.group),
            ("comment", &self.comment),
            ("maxcpu", &self.maxcpu),
            ("maxmem", &self.maxmem),
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
    pub(super) fn to_map(&self) -> BTreeMap<String, String> {
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
        /// A join token (`cluster init` prints the first one; `cluster
        /// join-token create` makes more).
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
    /// Remove a dead or stopped member (run on another member). Refused
    /// while the node holds its agent lease or still has services.
    Delnode {
        /// The member's node name.
        node: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// DISASTER RECOVERY: make this stopped node a one-node cluster with
    /// the last state it has, when the majority of members is lost for
    /// good (compare `pvecm expected 1`). The daemon must be stopped; the
    /// lost members must never come back with their old disks.
    ForceSingleNode {
        /// Confirms that the other members are gone for good.
        #[arg(long = "yes-i-have-lost-the-majority")]
        confirmed: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Join tokens: create (expiring), list, revoke.
    JoinToken {
        /// Sub-command.
        #[command(subcommand)]
        command: super::JoinTokenCommand,
    },
    /// The cluster CA: rotate it on a running cluster (rotate, status,
    /// finish).
    Ca {
        /// Sub-command.
        #[command(subcommand)]
        command: super::CaCommand,
    },
    /// Tell the cluster that a member now listens at another address.
    SetAddress {
        /// The member's node name.
        node: String,
        /// Its new `host:port`.
        address: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Give this node a new key and certificate (signed by the cluster
    /// CA); the daemon uses them from its next connection on, without a
    /// restart.
    RenewCert {
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
    /// node-affinity: nodes with optional priority (higher wins):
    /// `node1:2,node2`.
    #[arg(long)]
    pub nodes: Option<String>,
    /// resource-affinity: `positive` (same node) or `negative` (different
    /// nodes).
    #[arg(long)]
    pub affinity: Option<String>,
    /// node-affinity: run only on the listed nodes (0/1).
    #[arg(long)]
    pub strict: Option<String>,
    /// Keep the rule but ignore it (0/1; `--disable` alone is 1).
    #[arg(long, num_args = 0..=1, default_missing_value = "1")]
    pub disable: Option<String>,
    /// Free text.
    #[arg(long)]
    pub comment: Option<String>,
}

impl RuleOptions {
    pub(super) fn to_map(&self) -> BTreeMap<String, String> {
        given_options([
            ("resources", &self.resources),
            ("nodes", &self.nodes),
            ("affinity", &self.affinity),
            ("strict", &self.strict),
            ("disable", &self.disable),
            ("comment", &self.comment),
        ])
    }
}

/// Filters and output of `rules config` and `rules list`.
#[derive(Debug, Clone, Args)]
pub struct RulesQuery {
    /// Only rules of this type (node-affinity, resource-affinity).
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
        /// Rule type: node-affinity or resource-affinity.
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
        /// Rule type: node-affinity or resource-affinity.
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

/// `crs` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum CrsCommand {
    /// Show every option with the value in effect (`key value` lines, or
    /// JSON).
    Get {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Change options: `ha=static ha-rebalance-on-start=1`.
    Set {
        /// `KEY=VALUE` pairs (keys as in datacenter.cfg's `crs`).
        settings: Vec<String>,
        /// Comma-separated keys to reset to their defaults.
        #[arg(long)]
        delete: Option<String>,
        /// Only apply if the options are still at this digest.
        #[arg(long)]
        digest: Option<u64>,
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
    /// Disarm HA: `freeze` keeps the services as they are and stops
    /// acting on them, `ignore` stops tracking them; the watchdogs are
    /// released once every LRM is idle (for cluster maintenance).
    DisarmHa {
        /// freeze or ignore.
        #[arg(value_parser = ["freeze", "ignore"])]
        mode: String,
    },
    /// Arm HA again after `disarm-ha`.
    ArmHa,
}

/// The node verbs (flattened into the top-level command).
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Print the OpenAPI document of the API (JSON), as `GET
    /// /api/v1/openapi.json` serves it; `docs/openapi.json` is its output.
    #[command(hide = true)]
    Openapi,
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
    /// API tokens with roles (admin, read-only).
    Token {
        /// Sub-command.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Notifications: webhook and exec hook targets for fence,
    /// recovery, error and node events (target add|list|remove, test).
    Notify {
        /// Sub-command.
        #[command(subcommand)]
        command: super::NotifyCommand,
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
    /// Write the configuration (resources, groups, rules) and the manager
    /// status to FILE: versioned JSON, readable, mode 0600.
    Backup {
        /// Where to write it.
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Restore a backup into an empty cluster (nothing is overwritten).
    Restore {
        /// A file written by `ha-manager backup`.
        file: PathBuf,
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
    /// The CRM's event history (node and service state changes, fencing,
    /// recoveries, moves, commands with the token that issued them),
    /// oldest first.
    History {
        /// Only events of this service.
        sid: Option<String>,
        /// Only events about this node.
        #[arg(long)]
        node: Option<String>,
        /// Only events since: Unix seconds, an age (10m, 2h, 1d) or a
        /// local time (YYYY-MM-DD HH:MM[:SS]).
        #[arg(long)]
        since: Option<String>,
        /// At most this many events (the newest; default 500).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Why a service is on its node: the CRM's last decision about it
    /// (candidates, what each rule and node state excluded, the scores,
    /// the winner), or the command that moved it.
    Explain {
        /// The service.
        sid: String,
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
    /// Cluster resource scheduling options (datacenter.cfg's `crs`).
    Crs {
        /// Sub-command.
        #[command(subcommand)]
        command: CrsCommand,
    },
    /// Node- and resource-affinity rules (rules.cfg; HA groups are
    /// migrated into node-affinity rules).
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

/// `ha-manager token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once.
    Add {
        /// Token id: a-z, 0-9, '-', '_' (1 to 32, a letter first).
        id: String,
        /// `admin` or `read-only` (GET only: status, lists, /metrics).
        #[arg(long, value_parser = ["admin", "read-only"])]
        role: String,
        /// Free text.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the tokens (never their secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Remove a token: it stops working at once.
    Remove {
        /// Token id.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}
