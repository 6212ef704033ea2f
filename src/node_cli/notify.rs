//! `ha-manager notify target add|list|remove` and `ha-manager notify test`.

use std::path::PathBuf;

use clap::Subcommand;

use super::client::routes;
use super::{client, say, say_json, ConfigArg, OutputFormat};
use crate::api::notify::{TargetRemoved, TestRequest, TestResult};
use crate::notify::config::{parse_events, NewTarget, TargetView};

/// `ha-manager notify ...`.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Notification targets: add, list, remove.
    Target {
        /// Sub-command.
        #[command(subcommand)]
        command: TargetCommand,
    },
    /// Send a test event to every target (or one) now, through the real
    /// delivery path, and report per target what happened (exit 1 if one
    /// failed).
    Test {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
}

/// `ha-manager notify target ...`.
#[derive(Debug, Subcommand)]
pub enum TargetCommand {
    /// Add a target: a webhook (`--webhook URL`) or an executable hook
    /// (`--exec /path`). It gets the events recorded from now on.
    Add {
        /// Target name: a-z, 0-9, '-', '_' (1 to 32, a letter first).
        name: String,
        /// POST each event as JSON to this http:// or https:// URL.
        #[arg(long, conflicts_with = "exec")]
        webhook: Option<String>,
        /// Run this executable (absolute path, on whichever node leads)
        /// with the event in HA_EVENT_* environment variables.
        #[arg(long)]
        exec: Option<String>,
        /// File holding the HMAC-SHA256 secret: requests carry
        /// `X-HA-Signature-256: sha256=<hex>` of the body (a trailing
        /// newline is not part of the secret).
        #[arg(long = "secret-file")]
        secret_file: Option<PathBuf>,
        /// PEM file of CAs to trust for an https:// webhook, besides the
        /// built-in (Mozilla) roots.
        #[arg(long = "ca-file")]
        ca_file: Option<PathBuf>,
        /// Event classes: fence, recovery, error, node (comma-separated;
        /// default all).
        #[arg(long)]
        events: Option<String>,
        /// Time limit of one attempt in seconds (1 to 20, default 10);
        /// a hook still running then is killed.
        #[arg(long)]
        timeout: Option<u64>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the targets (never their secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Remove a target: it gets nothing from now on.
    Remove {
        /// Target name.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn read_file(path: &PathBuf, field: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("field '{field}': cannot read {}: {e}", path.display()))
}

/// Runs a notify verb.
pub fn run(command: NotifyCommand) -> anyhow::Result<()> {
    match command {
        NotifyCommand::Target { command } => target(command),
        NotifyCommand::Test {
            target,
            config,
            output_format,
        } => {
            let results: Vec<TestResult> =
                client(&config)?.post(routes::NOTIFY_TEST.at(&[])?, &TestRequest { target })?;
            match output_format {
                OutputFormat::Json => say_json(&results)?,
                OutputFormat::Text => {
                    let mut text = String::new();
                    if results.is_empty() {
                        text.push_str("no notification targets\n");
                    }
                    for r in &results {
                        text.push_str(&format!("{}: {}", r.target, r.outcome));
                        if !r.detail.is_empty() {
                            text.push_str(&format!(" ({})", r.detail));
                        }
                        text.push('\n');
                    }
                    say(&text)?;
                }
            }
            let failed = results.iter().filter(|r| r.outcome != "delivered").count();
            if failed > 0 {
                anyhow::bail!(
                    "{failed} of {} targets did not take the test event",
                    results.len()
                );
            }
            Ok(())
        }
    }
}

fn target(command: TargetCommand) -> anyhow::Result<()> {
    match command {
        TargetCommand::Add {
            name,
            webhook,
            exec,
            secret_file,
            ca_file,
            events,
            timeout,
            config,
        } => {
            let secret = match &secret_file {
                Some(path) => Some(
                    read_file(path, "secret")?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                ),
                None => None,
            };
            let ca_pem = match &ca_file {
                Some(path) => Some(read_file(path, "ca_pem")?),
                None => None,
            };
            let events = match &events {
                Some(text) => Some(parse_events(text).map_err(anyhow::Error::msg)?),
                None => None,
            };
            let new = NewTarget {
                name,
                webhook,
                exec,
                secret,
                ca_pem,
                events,
                timeout_secs: timeout,
            };
            // Checked before the node is asked: a bad value changes nothing.
            new.validate(0).map_err(anyhow::Error::msg)?;
            let view: TargetView =
                client(&config)?.post(routes::NOTIFY_TARGET_ADD.at(&[])?, &new)?;
            say(&format!(
                "target '{}' added: {} {} (events {})\n",
                view.name,
                view.kind,
                view.destination,
                events_text(&view)
            ))
        }
        TargetCommand::List {
            config,
            output_format,
        } => {
            let rows: Vec<TargetView> = client(&config)?.get(routes::NOTIFY_TARGETS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&rows),
                OutputFormat::Text => say(&table(&rows)),
            }
        }
        TargetCommand::Remove { name, config } => {
            crate::notify::config::check_name(&name).map_err(anyhow::Error::msg)?;
            let removed: TargetRemoved =
                client(&config)?.delete(routes::NOTIFY_TARGET_REMOVE.at(&[&name])?)?;
            say(&format!("target '{}' removed\n", removed.removed))
        }
    }
}

fn events_text(v: &TargetView) -> String {
    v.events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn table(rows: &[TargetView]) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.clone(),
                r.destination.clone(),
                events_text(r),
                format!("{} s", r.timeout_secs),
                yes(r.signed),
                yes(r.ca),
            ]
        })
        .collect();
    super::output::table(
        &[
            "name",
            "type",
            "destination",
            "events",
            "timeout",
            "signed",
            "ca file",
        ],
        &cells,
    )
}
