//! The `crs` verbs: the cluster resource scheduling options over
//! `/api/v1/crs`.

use std::collections::BTreeMap;

use serde_json::json;

use super::client::routes;
use super::commands::{CrsCommand, OutputFormat};
use super::{client, print_digest, say, say_json, split_list};
use crate::api::crs::{CrsView, CRS_KEYS};
use crate::api::resources::WriteReply;

/// Runs a `crs` sub-verb.
pub(super) fn crs(command: CrsCommand) -> anyhow::Result<()> {
    match command {
        CrsCommand::Get {
            config,
            output_format,
        } => {
            let view: CrsView = client(&config)?.get(routes::CRS.at(&[])?)?;
            match output_format {
                OutputFormat::Json => say_json(&view),
                OutputFormat::Text => say(&crs_text(&view)),
            }
        }
        CrsCommand::Set {
            settings,
            delete,
            digest,
            config,
        } => {
            let options = parse_settings(&settings)?;
            let delete = split_list(&delete);
            if options.is_empty() && delete.is_empty() {
                anyhow::bail!(
                    "field 'settings': nothing to change: give KEY=VALUE or --delete KEY"
                );
            }
            let reply: WriteReply = client(&config)?.put(
                routes::CRS_SET.at(&[])?,
                &json!({"options": options, "delete": delete, "digest": digest}),
            )?;
            print_digest(&reply)
        }
    }
}

/// `KEY=VALUE` arguments as options; a malformed or repeated one is
/// refused naming it.
fn parse_settings(settings: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    for item in settings {
        let Some((key, value)) = item.split_once('=') else {
            anyhow::bail!("field 'settings': '{item}' is not KEY=VALUE");
        };
        if options
            .insert(key.trim().to_string(), value.trim().to_string())
            .is_some()
        {
            anyhow::bail!("field '{key}': given twice");
        }
    }
    Ok(options)
}

/// One `key value` line per option, in the documented key order.
fn crs_text(view: &CrsView) -> String {
    let mut out = String::new();
    for key in CRS_KEYS {
        if let Some(value) = view.options.get(key) {
            out.push_str(&format!("{key} {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_key_value_pairs() {
        let options =
            parse_settings(&["ha=static".into(), "ha-rebalance-on-start = 1".into()]).unwrap();
        assert_eq!(options["ha"], "static");
        assert_eq!(options["ha-rebalance-on-start"], "1");
        let err = parse_settings(&["static".into()]).unwrap_err().to_string();
        assert!(err.contains("'static'"), "{err}");
        let err = parse_settings(&["ha=static".into(), "ha=basic".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'ha'"), "{err}");
    }

    #[test]
    fn text_lists_every_key_in_order() {
        let view = CrsView {
            options: crate::api::crs::crs_values(&Default::default()),
            digest: 0,
        };
        let text = crs_text(&view);
        assert!(
            text.starts_with("ha basic\nha-rebalance-on-start 0\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), CRS_KEYS.len());
    }
}
