//! `ha-manager token add|list|remove`.

use serde_json::json;

use super::client::routes;
use super::{client, say, say_json, OutputFormat, TokenCommand};
use crate::api::tokens::{check_token_id, CreatedToken, TokenView};

/// Runs a token verb.
pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add {
            id,
            role,
            comment,
            config,
        } => {
            check_token_id(&id).map_err(|e| anyhow::anyhow!(e))?;
            let made: CreatedToken = client(&config)?.post(
                routes::TOKEN_CREATE.at(&[])?,
                &json!({ "id": id, "role": role, "comment": comment }),
            )?;
            say(&format!(
                "token '{}' ({}) made; its secret is shown only now:\n{}\n\
                 use it as 'Authorization: Bearer {}', or as HA_MANAGER_TOKEN for the CLI\n",
                made.id,
                made.role.as_str(),
                made.token,
                made.token
            ))
        }
        TokenCommand::List {
            config,
            output_format,
        } => {
            let rows: Vec<TokenView> = client(&config)?.get(routes::TOKENS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&rows),
                OutputFormat::Text => say(&table(&rows)),
            }
        }
        TokenCommand::Remove { id, config } => {
            check_token_id(&id).map_err(|e| anyhow::anyhow!(e))?;
            let _: serde_json::Value = client(&config)?.delete(routes::TOKEN_REMOVE.at(&[&id])?)?;
            say(&format!("token '{id}' removed\n"))
        }
    }
}

fn table(rows: &[TokenView]) -> String {
    let mut out = String::from("id\trole\tcreated\tcomment\n");
    for r in rows {
        let created = if r.created == 0 {
            "-".to_string()
        } else {
            chrono::DateTime::from_timestamp(i64::try_from(r.created).unwrap_or(0), 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| r.created.to_string())
        };
        out.push_str(&format!(
            "{}\t{}\t{created}\t{}\n",
            r.id,
            r.role.as_str(),
            super::output::escape_controls(&r.comment)
        ));
    }
    out
}
