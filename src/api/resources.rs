//! `/api/v1/resources`, `/api/v1/groups` and the CRM command queue.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::tokens::Caller;
use super::ApiState;
use crate::agents::{agent_for, AgentError, AGENT_KINDS};
use crate::config::{
    parse_group_option, validate_resource_option, validate_resource_sid, GroupOption,
};
use crate::crm::history::command_with_actor;
use crate::crm::{ManagerStatus, ServiceState};
use crate::domain::resource::STOP_TIMEOUT_MAX;
use crate::domain::{GroupConfig, NodeName, ResourceConfig, Sid};
use raft::DocKey;

/// Body of `POST /resources`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    /// The SID (`type:name`).
    pub sid: String,
    /// Options (`state`, `max_restart`, agent parameters, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Body of `PUT /resources/{sid}` and `PUT /groups/{group}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Options to set.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Optional keys to reset to their defaults.
    #[serde(default)]
    pub delete: Vec<String>,
    /// The document version the edit is based on (CAS); `None` = current.
    #[serde(default)]
    pub digest: Option<u64>,
}

/// Answer of a write: the new document version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteReply {
    /// New version (use as `digest` for the next edit).
    pub digest: u64,
}

/// One resource as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceView {
    /// The configuration.
    #[serde(flatten)]
    pub config: ResourceConfig,
    /// The resources document version.
    pub digest: u64,
}

/// Checks a group or rule id named in a URL path: the config id character
/// set and length, without the first-letter rule, so an id stored before
/// that rule (or an internal `_` id) can still be read and removed.
pub(crate) fn check_path_id(field: &str, id: &str) -> ApiResult<()> {
    use crate::domain::error::{shown, CONFIG_ID_MAX};
    let ok = !id.is_empty()
        && id.len() <= CONFIG_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!(
                "field '{field}': invalid id '{}': expected 1 to {CONFIG_ID_MAX} characters of [A-Za-z0-9_-]",
                shown(id)
            ),
        ))
    }
}

fn parse_sid(text: &str) -> ApiResult<Sid> {
    // The domain error already quotes the text ("invalid SID '...': ...").
    let sid: Sid = text
        .parse()
        .map_err(|e| ApiError::field("sid", format!("field 'sid': {e}")))?;
    validate_resource_sid(&sid).map_err(|e| ApiError::field("sid", e.to_string()))?;
    Ok(sid)
}

fn apply_options(
    config: &mut ResourceConfig,
    options: &BTreeMap<String, String>,
    groups: &[GroupConfig],
) -> ApiResult<()> {
    for (key, value) in options {
        let option = validate_resource_option(&config.sid, key, value)
            .map_err(|e| ApiError::field(key, e.to_string()))?;
        option.apply(config);
    }
    if let Some(group) = &config.group {
        if !options.contains_key("group") {
            return Ok(());
        }
        if groups.is_empty() {
            return Err(ApiError::field(
                "group",
                format!(
                    "field 'group': HA groups are migrated to rules; use a node-affinity rule \
                     ('ha-manager rules add node-affinity ... --resources {}') instead of group '{group}'",
                    config.sid
                ),
            ));
        }
        if !groups.iter().any(|g| &g.id == group) {
            return Err(ApiError::field(
                "group",
                format!("field 'group': group '{group}' does not exist"),
            ));
        }
    }
    Ok(())
}

/// Refuses a SID whose type has no resource agent on the node daemons.
fn check_agent_kind(sid: &Sid) -> ApiResult<()> {
    let kind = sid.kind();
    if AGENT_KINDS.contains(&kind) {
        return Ok(());
    }
    Err(ApiError::field(
        "sid",
        format!(
            "field 'sid': no resource agent for type '{kind}' of '{sid}' (expected one of {})",
            AGENT_KINDS.join(", ")
        ),
    ))
}

/// Checks that a node daemon can run the resource as configured: its type
/// has an agent and its agent parameters are complete and valid (`exec`
/// needs `cmd`, unknown parameters are refused). Without this a resource
/// such as `foo:bar` or `exec:web` without `cmd` would be stored and only
/// fail later, on some node, as an error state.
pub(crate) fn check_agent(config: &ResourceConfig) -> ApiResult<()> {
    check_agent_kind(&config.sid)?;
    let (kind, name) = (config.sid.kind(), config.sid.name());
    // Building the agent only validates the parameters: it touches no file
    // (the runtime directory is not used until an operation runs).
    match agent_for(
        kind,
        name,
        &config.params,
        std::path::Path::new("/nonexistent"),
    ) {
        Ok(_) => Ok(()),
        Err(e) => {
            let field = match &e {
                AgentError::MissingParameter { param, .. }
                | AgentError::InvalidParameter { param, .. } => param.clone(),
                _ => "sid".to_string(),
            };
            Err(ApiError::field(&field, format!("field '{field}': {e}")))
        }
    }
}

fn delete_options(config: &mut ResourceConfig, keys: &[String]) -> ApiResult<()> {
    let defaults = ResourceConfig::with_defaults(config.sid.clone());
    for key in keys {
        match key.as_str() {
            "state" => config.state = defaults.state,
            "failback" => config.failback = defaults.failback,
            "max_restart" => config.max_restart = defaults.max_restart,
            "max_relocate" => config.max_relocate = defaults.max_relocate,
            "group" => config.group = None,
            "comment" => config.comment = None,
            "maxcpu" => config.maxcpu = None,
            "maxmem" => config.maxmem = None,
            other if config.params.remove(other).is_some() => {}
            other => {
                return Err(ApiError::field(
                    "delete",
                    format!(
                        "field 'delete': '{other}' is not a set option of '{}'",
                        config.sid
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Refuses a change to a service the CRM holds in `error` unless it
/// disables it (spec 3.14): an errored service must be disabled and fixed
/// before anything else is asked of it.
fn check_not_errored(st: &ApiState, sid: &Sid, requested: Option<&str>) -> ApiResult<()> {
    if requested == Some("disabled") {
        return Ok(());
    }
    let errored = st
        .store
        .read_local(|s| {
            s.doc(&DocKey::ManagerStatus)
                .and_then(|d| serde_json::from_str::<ManagerStatus>(&d.value).ok())
                .and_then(|ms| {
                    ms.service_status
                        .get(sid)
                        .map(|r| r.state == ServiceState::Error)
                })
        })
        .value
        .unwrap_or(false);
    if errored {
        return Err(ApiError::field(
            "sid",
            format!("service '{sid}' in error state, must be disabled and fixed first"),
        ));
    }
    Ok(())
}

pub(crate) fn check_digest(given: Option<u64>, current: u64) -> ApiResult<u64> {
    match given {
        Some(d) if d != current => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("field 'digest': configuration changed meanwhile (digest {d}, current {current}); re-read and retry"),
        )),
        _ => Ok(current),
    }
}

/// `GET /resources`.
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<Vec<ResourceView>>> {
    let res = docs::resources(&st.store).await?;
    let mut out: Vec<ResourceView> = res
        .value
        .into_iter()
        .map(|config| ResourceView {
            config,
            digest: res.version,
        })
        .collect();
    out.sort_by(|a, b| a.config.sid.cmp(&b.config.sid));
    Ok(Json(out))
}

/// `GET /resources/{sid}`.
pub async fn get(
    State(st): State<ApiState>,
    ApiPath(sid): ApiPath<String>,
) -> ApiResult<Json<ResourceView>> {
    let sid = parse_sid(&sid)?;
    let res = docs::resources(&st.store).await?;
    let config = res
        .value
        .into_iter()
        .find(|r| r.sid == sid)
        .ok_or_else(|| ApiError::not_found(format!("no such resource '{sid}'")))?;
    Ok(Json(ResourceView {
        config,
        digest: res.version,
    }))
}

/// `POST /resources`.
pub async fn create(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<CreateResource>,
) -> ApiResult<Json<WriteReply>> {
    let sid = parse_sid(&body.sid)?;
    let groups = docs::groups(&st.store).await?.value;
    let mut res = docs::resources(&st.store).await?;
    if res.value.iter().any(|r| r.sid == sid) {
        return Err(ApiError::field(
            "sid",
            format!("resource ID '{sid}' already defined"),
        ));
    }
    check_agent_kind(&sid)?;
    let mut config = ResourceConfig::with_defaults(sid);
    apply_options(&mut config, &body.options, &groups)?;
    check_agent(&config)?;
    res.value.push(config);
    let digest = docs::put_resources(&st.store, &res.value, res.version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `PUT /resources/{sid}`.
pub async fn update(
    State(st): State<ApiState>,
    ApiPath(sid): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<WriteReply>> {
    let sid = parse_sid(&sid)?;
    let groups = docs::groups(&st.store).await?.value;
    let mut res = docs::resources(&st.store).await?;
    let version = check_digest(body.digest, res.version)?;
    let config = res
        .value
        .iter_mut()
        .find(|r| r.sid == sid)
        .ok_or_else(|| ApiError::not_found(format!("no such resource '{sid}'")))?;
    check_not_errored(&st, &sid, body.options.get("state").map(String::as_str))?;
    let params_before = config.params.clone();
    delete_options(config, &body.delete)?;
    apply_options(config, &body.options, &groups)?;
    // Only an edit of the agent parameters is checked, so a resource stored
    // before these checks existed can still be disabled or removed.
    if config.params != params_before {
        check_agent(config)?;
    }
    let digest = docs::put_resources(&st.store, &res.value, version).await?;
    Ok(Json(WriteReply { digest }))
}

/// Query of `DELETE /resources/{sid}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also remove the SID from every rule and delete the rules left
    /// without resources (`0`/`1`, default 1).
    pub purge: Option<String>,
}

/// `DELETE /resources/{sid}`. With purge (the default) the SID is first
/// taken out of the rules, so no rule is left naming a resource that no
/// longer exists; a later failure leaves the resource configured and the
/// command can simply be repeated.
pub async fn remove(
    State(st): State<ApiState>,
    ApiPath(sid): ApiPath<String>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> ApiResult<Json<WriteReply>> {
    let sid = parse_sid(&sid)?;
    let purge = match query.purge.as_deref() {
        None => true,
        Some(text) => crate::config::values::parse_bool("purge", Some(text))
            .map_err(|e| ApiError::field("purge", e.to_string()))?,
    };
    let mut res = docs::resources(&st.store).await?;
    let before = res.value.len();
    res.value.retain(|r| r.sid != sid);
    if res.value.len() == before {
        return Err(ApiError::not_found(format!(
            "cannot delete service '{sid}', not HA managed!"
        )));
    }
    if purge {
        let mut rules = docs::rules(&st.store).await?;
        if super::rules::purge_resource(&mut rules.value, &sid) {
            docs::put_rules(&st.store, &rules.value, rules.version).await?;
        }
    }
    let digest = docs::put_resources(&st.store, &res.value, res.version).await?;
    Ok(Json(WriteReply { digest }))
}

/// Body of `POST /resources/{sid}/migrate|relocate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Target node.
    pub node: String,
}

/// Answer of a queued move.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveReply {
    /// The resource.
    pub sid: String,
    /// The target node.
    #[serde(rename = "requested-node")]
    pub requested_node: String,
}

async fn check_node(st: &ApiState, node: &str, field: &str) -> ApiResult<NodeName> {
    let name: NodeName = node
        .parse()
        .map_err(|e| ApiError::field(field, format!("field '{field}': {e}")))?;
    let dir = docs::nodes(&st.store).await?.value;
    if !dir.nodes.contains_key(node) {
        return Err(ApiError::field(
            field,
            format!("field '{field}': node '{node}' is not a cluster member"),
        ));
    }
    Ok(name)
}

async fn check_managed(st: &ApiState, sid: &str) -> ApiResult<Sid> {
    let sid = parse_sid(sid)?;
    let res = docs::resources(&st.store).await?;
    if !res.value.iter().any(|r| r.sid == sid) {
        return Err(ApiError::field(
            "sid",
            format!("service '{sid}' is not HA managed"),
        ));
    }
    Ok(sid)
}

async fn queue_move(
    st: &ApiState,
    caller: &Caller,
    task: &str,
    sid: &str,
    node: &str,
) -> ApiResult<Json<MoveReply>> {
    let sid = check_managed(st, sid).await?;
    check_not_errored(st, &sid, None)?;
    let node = check_node(st, node, "node").await?;
    st.store
        .append_crm_command(command_with_actor(
            &format!("{task} {sid} {node}"),
            &caller.id,
        ))
        .await?;
    Ok(Json(MoveReply {
        sid: sid.to_string(),
        requested_node: node.to_string(),
    }))
}

/// `POST /resources/{sid}/migrate`.
pub async fn migrate(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(sid): ApiPath<String>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult<Json<MoveReply>> {
    queue_move(&st, &caller, "migrate", &sid, &body.node).await
}

/// `POST /resources/{sid}/relocate`.
pub async fn relocate(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(sid): ApiPath<String>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult<Json<MoveReply>> {
    queue_move(&st, &caller, "relocate", &sid, &body.node).await
}

/// Body of `POST /crm-command`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CrmCommandBody {
    /// Stop a service with a timeout (0 = hard stop).
    Stop {
        /// The service.
        sid: String,
        /// Seconds, 0 (hard stop) to [`STOP_TIMEOUT_MAX`].
        timeout: u64,
    },
    /// Enable maintenance mode of a node.
    NodeMaintenanceEnable {
        /// The node.
        node: String,
    },
    /// Disable maintenance mode of a node.
    NodeMaintenanceDisable {
        /// The node.
        node: String,
    },
    /// Disarm HA (spec 3.4): `freeze` keeps services as they are and
    /// stops acting on them; `ignore` stops tracking them. The watchdogs
    /// are released once every LRM is idle.
    DisarmHa {
        /// `freeze` or `ignore`.
        mode: String,
    },
    /// Arm HA again after a disarm.
    ArmHa,
}

/// `POST /crm-command`.
pub async fn crm_command(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CrmCommandBody>,
) -> ApiResult<StatusCode> {
    let line = match body {
        CrmCommandBody::Stop { sid, timeout } => {
            if timeout > STOP_TIMEOUT_MAX {
                return Err(ApiError::field(
                    "timeout",
                    format!(
                        "field 'timeout': {timeout} out of range (0..={STOP_TIMEOUT_MAX} seconds)"
                    ),
                ));
            }
            let sid = check_managed(&st, &sid).await?;
            check_not_errored(&st, &sid, None)?;
            format!("stop {sid} {timeout}")
        }
        CrmCommandBody::NodeMaintenanceEnable { node } => {
            let node = check_node(&st, &node, "node").await?;
            format!("enable-node-maintenance {node}")
        }
        CrmCommandBody::NodeMaintenanceDisable { node } => {
            let node = check_node(&st, &node, "node").await?;
            format!("disable-node-maintenance {node}")
        }
        CrmCommandBody::DisarmHa { mode } => {
            if mode != "freeze" && mode != "ignore" {
                return Err(ApiError::field(
                    "mode",
                    format!(
                        "field 'mode': '{}' is not 'freeze' or 'ignore'",
                        crate::domain::error::shown(&mode)
                    ),
                ));
            }
            format!("disarm-ha {mode}")
        }
        CrmCommandBody::ArmHa => "arm-ha".to_string(),
    };
    st.store
        .append_crm_command(command_with_actor(&line, &caller.id))
        .await?;
    Ok(StatusCode::ACCEPTED)
}

// ----- groups --------------------------------------------------------------

/// Body of `POST /groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Group id.
    pub group: String,
    /// Options (`nodes` required, `restricted`, `nofailback`, `comment`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn apply_group_options(
    group: &mut GroupConfig,
    options: &BTreeMap<String, String>,
) -> ApiResult<()> {
    for (key, value) in options {
        match parse_group_option(key, Some(value))
            .map_err(|e| ApiError::field(key, e.to_string()))?
        {
            GroupOption::Nodes(nodes) => group.nodes = nodes,
            GroupOption::Restricted(b) => group.restricted = b,
            GroupOption::Nofailback(b) => group.nofailback = b,
            GroupOption::Comment(c) => group.comment = Some(c),
        }
    }
    Ok(())
}

/// Refuses group edits once groups.cfg is empty (spec 1.4): the groups
/// are then migrated (or there never were any) and node-affinity rules are
/// the one way to express node preferences.
fn check_groups_not_migrated(groups: &[GroupConfig]) -> ApiResult<()> {
    if !groups.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "HA groups are migrated to rules (groups.cfg is empty): use 'ha-manager rules add \
         node-affinity <rule> --resources ... --nodes ...' instead",
    ))
}

/// `GET /groups`.
pub async fn list_groups(State(st): State<ApiState>) -> ApiResult<Json<Vec<GroupConfig>>> {
    Ok(Json(docs::groups(&st.store).await?.value))
}

/// `POST /groups`.
pub async fn create_group(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<Json<WriteReply>> {
    crate::domain::error::validate_config_id(&body.group)
        .map_err(|e| ApiError::field("group", format!("field 'group': {e}")))?;
    if !body.options.contains_key("nodes") {
        return Err(ApiError::field(
            "nodes",
            "field 'nodes': missing required option",
        ));
    }
    let mut groups = docs::groups(&st.store).await?;
    check_groups_not_migrated(&groups.value)?;
    if groups.value.iter().any(|g| g.id == body.group) {
        return Err(ApiError::field(
            "group",
            format!("group '{}' already defined", body.group),
        ));
    }
    let mut group = GroupConfig {
        id: body.group.clone(),
        nodes: Vec::new(),
        restricted: false,
        nofailback: false,
        comment: None,
    };
    apply_group_options(&mut group, &body.options)?;
    groups.value.push(group);
    let digest = docs::put_groups(&st.store, &groups.value, groups.version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `PUT /groups/{group}`.
pub async fn update_group(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<WriteReply>> {
    check_path_id("group", &id)?;
    let mut groups = docs::groups(&st.store).await?;
    check_groups_not_migrated(&groups.value)?;
    let version = check_digest(body.digest, groups.version)?;
    let group = groups
        .value
        .iter_mut()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no such group '{id}'")))?;
    for key in &body.delete {
        match key.as_str() {
            "restricted" => group.restricted = false,
            "nofailback" => group.nofailback = false,
            "comment" => group.comment = None,
            other => {
                return Err(ApiError::field(
                    "delete",
                    format!("field 'delete': cannot delete '{other}' of a group"),
                ))
            }
        }
    }
    apply_group_options(group, &body.options)?;
    let digest = docs::put_groups(&st.store, &groups.value, version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `DELETE /groups/{group}`.
pub async fn remove_group(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WriteReply>> {
    check_path_id("group", &id)?;
    let mut groups = docs::groups(&st.store).await?;
    check_groups_not_migrated(&groups.value)?;
    let res = docs::resources(&st.store).await?;
    if let Some(user) = res
        .value
        .iter()
        .find(|r| r.group.as_deref() == Some(id.as_str()))
    {
        return Err(ApiError::field(
            "group",
            format!("group '{id}' is still used by resource '{}'", user.sid),
        ));
    }
    let before = groups.value.len();
    groups.value.retain(|g| g.id != id);
    if groups.value.len() == before {
        return Err(ApiError::not_found(format!("no such group '{id}'")));
    }
    let digest = docs::put_groups(&st.store, &groups.value, groups.version).await?;
    Ok(Json(WriteReply { digest }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scheduler_limits_are_set_refused_by_field_and_deleted() {
        let sid: Sid = "exec:web".parse().unwrap();
        let mut config = ResourceConfig::with_defaults(sid);
        apply_options(
            &mut config,
            &options(&[("maxcpu", "2.5"), ("maxmem", "1024")]),
            &[],
        )
        .unwrap();
        assert_eq!(config.maxcpu.map(|c| c.cores()), Some(2.5));
        assert_eq!(config.maxmem, Some(1024));
        for (key, bad) in [("maxcpu", "-1"), ("maxcpu", "lots"), ("maxmem", "1.5")] {
            let err = apply_options(&mut config, &options(&[(key, bad)]), &[]).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.body.field.as_deref(), Some(key));
            assert!(
                err.body.error.contains(&format!("field '{key}'")),
                "{}",
                err.body.error
            );
        }
        delete_options(&mut config, &["maxcpu".into(), "maxmem".into()]).unwrap();
        assert_eq!((config.maxcpu, config.maxmem), (None, None));
    }
}
