//! `POST /api/v1/config/import`: brings an existing configuration (for
//! example a Proxmox cluster's `ha/resources.cfg`, `ha/groups.cfg` and
//! `ha/rules.cfg`) into an empty cluster. It is the only way to create HA
//! groups here: groups are legacy, and the CRM migrates imported ones into
//! node-affinity rules (spec 1.4, 3.20).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs::{self, Versioned};
use super::error::{ApiError, ApiResult, WriteErrors};
use super::extract::ApiJson;
use super::resources::check_agent;
use super::ApiState;
use crate::config::{parse_groups_cfg, parse_resources_cfg, parse_rules, ConfigError};

/// Body of `POST /config/import`: the texts of the files to import.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// resources.cfg text.
    #[serde(default)]
    pub resources: Option<String>,
    /// groups.cfg text.
    #[serde(default)]
    pub groups: Option<String>,
    /// rules.cfg text.
    #[serde(default)]
    pub rules: Option<String>,
}

/// Answer of an import: how many sections of each file were stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReply {
    /// Resources imported.
    pub resources: usize,
    /// Groups imported.
    pub groups: usize,
    /// Rules imported.
    pub rules: usize,
}

fn parse<T>(
    field: &str,
    text: Option<&String>,
    parser: fn(&str, &str) -> Result<Vec<T>, ConfigError>,
) -> ApiResult<Option<Vec<T>>> {
    let Some(text) = text else { return Ok(None) };
    parser(text, &format!("{field}.cfg"))
        .map(Some)
        .map_err(|e| ApiError::field(field, format!("field '{field}': {e}")))
}

/// Refuses to overwrite a document that already has sections: an import
/// completes a new cluster, it never replaces what operators configured.
fn check_empty<T>(field: &str, current: &Versioned<Vec<T>>) -> ApiResult<()> {
    if current.value.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "field '{field}': the cluster already has {} {field} entries; import only into an empty {field}.cfg",
            current.value.len()
        ),
    ))
}

/// `POST /config/import`. Everything is parsed and checked before the
/// first write; the documents are then written groups and rules first, so
/// resources never name a group that is not there yet.
#[utoipa::path(
    post,
    path = "/config/import",
    tag = "config",
    request_body = ImportBody,
    responses(
        (status = 200, description = "How many sections of each file were stored", body = ImportReply),
        WriteErrors
    )
)]
pub async fn import(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<ImportBody>,
) -> ApiResult<Json<ImportReply>> {
    let resources = parse("resources", body.resources.as_ref(), parse_resources_cfg)?;
    let groups = parse("groups", body.groups.as_ref(), parse_groups_cfg)?;
    let rules = parse("rules", body.rules.as_ref(), parse_rules)?;
    if resources.is_none() && groups.is_none() && rules.is_none() {
        return Err(ApiError::field(
            "resources",
            "nothing to import: give at least one of resources, groups, rules",
        ));
    }
    let current_resources = docs::resources(&st.store).await?;
    let current_groups = docs::groups(&st.store).await?;
    let known_groups = groups.as_ref().unwrap_or(&current_groups.value);
    for config in resources.iter().flatten() {
        check_agent(config)?;
        if let Some(group) = config.group.as_deref() {
            if !known_groups.iter().any(|g| g.id == group) {
                return Err(ApiError::field(
                    "resources",
                    format!(
                        "field 'resources': resource '{}' names group '{group}', which is not in groups.cfg",
                        config.sid
                    ),
                ));
            }
        }
    }
    let current_rules = docs::rules(&st.store).await?;
    if resources.is_some() {
        check_empty("resources", &current_resources)?;
    }
    if groups.is_some() {
        check_empty("groups", &current_groups)?;
    }
    if rules.is_some() {
        check_empty("rules", &current_rules)?;
    }

    let mut reply = ImportReply::default();
    if let Some(groups) = groups {
        docs::put_groups(&st.store, &groups, current_groups.version).await?;
        reply.groups = groups.len();
    }
    if let Some(rules) = rules {
        docs::put_rules(&st.store, &rules, current_rules.version).await?;
        reply.rules = rules.len();
    }
    if let Some(resources) = resources {
        docs::put_resources(&st.store, &resources, current_resources.version).await?;
        reply.resources = resources.len();
    }
    Ok(Json(reply))
}
