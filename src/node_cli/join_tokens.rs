//! `ha-manager cluster join-token create|list|revoke`.

use clap::Subcommand;
use serde_json::json;

use super::client::routes;
use super::status::local_ctime;
use super::{client, load, say, say_json, ConfigArg, OutputFormat};
use crate::api::join_tokens::{check_join_token_id, parse_ttl, CreatedJoinToken, JoinTokenView};

/// `ha-manager cluster join-token ...`.
#[derive(Debug, Subcommand)]
pub enum JoinTokenCommand {
    /// Make a join token; it is printed once.
    Create {
        /// Lifetime: a whole number with s, m, h or d, from 5s to 30d.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Free text (who or what the token is for).
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the join tokens (never their secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long = "output-format", value_enum, default_value_t)]
        output_format: OutputFormat,
    },
    /// Revoke a join token: it admits no node from now on.
    Revoke {
        /// The token's id (`join-token list`; the part before the dot).
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Runs a join-token verb.
pub fn run(command: JoinTokenCommand) -> anyhow::Result<()> {
    match command {
        JoinTokenCommand::Create {
            ttl,
            description,
            config,
        } => {
            // Checked before the node is asked: a bad value changes nothing.
            let ttl_secs = parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let advertise = load(&config)?.advertise;
            let made: CreatedJoinToken = client(&config)?.post(
                routes::JOIN_TOKEN_CREATE.at(&[])?,
                &json!({ "ttl_secs": ttl_secs, "description": description }),
            )?;
            say(&format!(
                "join token: {}\nid {}, valid until {} ({}); it is shown only now\n\
                 on another node: ha-manager cluster join {advertise} --token {}\n",
                made.token,
                made.id,
                local_ctime(made.expires),
                ttl.trim(),
                made.token
            ))
        }
        JoinTokenCommand::List {
            config,
            output_format,
        } => {
            let rows: Vec<JoinTokenView> = client(&config)?.get(routes::JOIN_TOKENS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&rows),
                OutputFormat::Text => say(&table(&rows)),
            }
        }
        JoinTokenCommand::Revoke { id, config } => {
            check_join_token_id(&id).map_err(anyhow::Error::msg)?;
            let _: serde_json::Value =
                client(&config)?.delete(routes::JOIN_TOKEN_REVOKE.at(&[&id])?)?;
            say(&format!("join token '{id}' revoked\n"))
        }
    }
}

fn table(rows: &[JoinTokenView]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                local_ctime(r.created),
                local_ctime(r.expires),
                if r.expired { "yes" } else { "no" }.to_string(),
                r.created_by.clone(),
                r.description.clone(),
            ]
        })
        .collect();
    super::output::table(
        &[
            "id",
            "created",
            "expires",
            "expired",
            "created by",
            "description",
        ],
        &cells,
    )
}
