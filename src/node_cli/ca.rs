//! `ha-manager cluster ca rotate|status|finish`.

use clap::Subcommand;
use serde_json::json;

use super::client::routes;
use super::{client, say, say_json, ConfigArg, OutputFormat};
use crate::api::ca::{CaChange, CaPhase, CaStatus};

/// `ha-manager cluster ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Start a CA rotation: a new CA is made and every daemon trusts it,
    /// then gives itself a certificate of it. Repeating it during a
    /// rotation changes nothing.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The rotation's phase, and per member which CA signed its
    /// certificate and which CAs it trusts.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// End a rotation: the new CA becomes the only one trusted. Refused
    /// until every member presents a certificate of the new CA.
    Finish {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Runs a `cluster ca` verb.
pub fn run(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Rotate { config } => {
            let change: CaChange = client(&config)?.post(routes::CA_ROTATE.at(&[])?, &json!({}))?;
            let next = change.status.next.clone().unwrap_or_default();
            if change.already {
                say(&format!(
                    "a CA rotation is already in progress (next CA sha256 {next})\n"
                ))?;
            } else {
                say(&format!(
                    "CA rotation started: next CA sha256 {next}; every daemon now trusts it, \
                     then renews its certificate with it. Watch `ha-manager cluster ca status`, \
                     then run `ha-manager cluster ca finish`\n"
                ))?;
            }
            say(&text(&change.status))
        }
        CaCommand::Status {
            config,
            output_format,
        } => {
            let status: CaStatus = client(&config)?.get(routes::CA_STATUS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&status),
                OutputFormat::Text => say(&text(&status)),
            }
        }
        CaCommand::Finish { config } => {
            let change: CaChange = client(&config)?.post(routes::CA_FINISH.at(&[])?, &json!({}))?;
            if change.already {
                say("no CA rotation in progress: nothing to finish\n")?;
            } else {
                say(&format!(
                    "CA rotation finished: the only trusted CA is now sha256 {}. Join tokens \
                     made before this name the old CA and no longer work: create new ones with \
                     `ha-manager cluster join-token create`\n",
                    change.status.current
                ))?;
            }
            say(&text(&change.status))
        }
    }
}

fn short(fp: &str) -> String {
    if fp.is_empty() {
        "-".into()
    } else {
        fp.chars().take(16).collect()
    }
}

/// The status as text: the phase, the CAs, one line a member.
fn text(status: &CaStatus) -> String {
    let phase = match &status.phase {
        CaPhase::Stable => "stable".to_string(),
        CaPhase::Distributing(n) => format!("distributing (waiting for {})", n.join(", ")),
        CaPhase::Renewing(n) => format!("renewing (waiting for {})", n.join(", ")),
        CaPhase::Ready => "ready (run `ha-manager cluster ca finish`)".to_string(),
    };
    let mut out = format!("phase: {phase}\ncurrent CA: {}\n", status.current);
    if let Some(next) = &status.next {
        out.push_str(&format!("next CA: {next}\n"));
    }
    let name_of = |fp: &str| {
        if fp == status.current {
            "current".to_string()
        } else if Some(fp) == status.next.as_deref() {
            "next".to_string()
        } else {
            short(fp)
        }
    };
    let cells: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|m| {
            vec![
                m.node.clone(),
                name_of(&m.cert_ca),
                if m.trusts.is_empty() {
                    "-".to_string()
                } else {
                    m.trusts
                        .iter()
                        .map(|t| name_of(t))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ]
        })
        .collect();
    out.push_str(&super::output::table(
        &["node", "certificate CA", "trusts"],
        &cells,
    ));
    out
}
