//! `/api/v1/rules`: the node-affinity rules of rules.cfg (spec 1.5, 2.4,
//! 2.8, 7.3). Rules can only be edited once the HA groups are migrated
//! (groups.cfg empty), because until then the CRM derives rules from the
//! groups and two sources of node preferences would contradict each other.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::resources::{check_digest, UpdateBody, WriteReply};
use super::ApiState;
use crate::config::rules::{NODE_AFFINITY_TYPE, RESOURCE_AFFINITY_TYPE};
use crate::config::{parse_rule_option, RuleOption};
use crate::domain::error::validate_config_id;
use crate::domain::{NodeAffinityRule, Sid};

/// Query of `GET /rules`: optional filters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesQuery {
    /// Only rules of this type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only rules that name this resource.
    pub resource: Option<String>,
}

/// Body of `POST /rules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    /// Rule type; only `node-affinity` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// Rule id (a config id).
    pub rule: String,
    /// `resources` and `nodes` (required), `strict`, `disable`, `comment`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// One rule as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleView {
    /// The rule.
    #[serde(flatten)]
    pub rule: NodeAffinityRule,
    /// Always `node-affinity` for now.
    #[serde(rename = "type")]
    pub kind: String,
    /// Position in rules.cfg (0 = first).
    pub order: usize,
    /// The rules document version (use as `digest` for an edit).
    pub digest: u64,
    /// Why the CRM drops this rule (property -> messages); empty for a
    /// rule in use. Hand-edited or imported files can hold such rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<String>>,
}

impl RuleView {
    fn new(rule: NodeAffinityRule, order: usize, all: &[NodeAffinityRule], digest: u64) -> Self {
        let mut errors = BTreeMap::new();
        if let Some((sid, other)) = shared_resource(&rule, all) {
            errors.insert(
                "resources".to_string(),
                vec![shared_resource_message(sid, other)],
            );
        }
        RuleView {
            rule,
            kind: NODE_AFFINITY_TYPE.to_string(),
            order,
            digest,
            errors,
        }
    }
}

fn shared_resource_message(sid: &Sid, other: &str) -> String {
    format!(
        "{} (resource '{sid}' is also in rule '{other}')",
        crate::config::compile::SHARED_RESOURCE_REASON
    )
}

/// The first resource `rule` shares with another enabled rule of `all`
/// (feasibility check 1, which drops both), and that rule's id. A
/// disabled rule conflicts with nothing.
fn shared_resource<'a>(
    rule: &'a NodeAffinityRule,
    all: &'a [NodeAffinityRule],
) -> Option<(&'a Sid, &'a str)> {
    if rule.disable {
        return None;
    }
    all.iter()
        .filter(|other| !other.disable && other.id != rule.id)
        .find_map(|other| {
            other
                .resources
                .intersection(&rule.resources)
                .next()
                .map(|sid| (sid, other.id.as_str()))
        })
}

/// `GET /rules` (linearizable read), in file order.
pub async fn list_rules(
    State(st): State<ApiState>,
    ApiQuery(query): ApiQuery<RulesQuery>,
) -> ApiResult<Json<Vec<RuleView>>> {
    let resource = query
        .resource
        .as_deref()
        .map(|text| parse_field_sid("resource", text))
        .transpose()?;
    if let Some(kind) = query.kind.as_deref() {
        check_type(kind)?;
    }
    let rules = docs::rules(&st.store).await?;
    Ok(Json(
        rules
            .value
            .iter()
            .enumerate()
            .filter(|(_, rule)| resource.as_ref().is_none_or(|r| rule.resources.contains(r)))
            .map(|(order, rule)| RuleView::new(rule.clone(), order, &rules.value, rules.version))
            .collect(),
    ))
}

/// `GET /rules/{rule}`.
pub async fn get_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RuleView>> {
    super::resources::check_path_id("rule", &id)?;
    let rules = docs::rules(&st.store).await?;
    let (order, rule) = rules
        .value
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.id == id)
        .ok_or_else(|| no_such_rule(&id))?;
    Ok(Json(RuleView::new(
        rule.clone(),
        order,
        &rules.value,
        rules.version,
    )))
}

/// `POST /rules`: creates a rule at the end of rules.cfg.
pub async fn create_rule(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<CreateRule>,
) -> ApiResult<Json<WriteReply>> {
    check_type(&body.kind)?;
    validate_config_id(&body.rule)
        .map_err(|e| ApiError::field("rule", format!("field 'rule': {e}")))?;
    if body.rule.starts_with('_') {
        return Err(ApiError::field(
            "rule",
            format!(
                "field 'rule': '{}': ids starting with '_' are reserved for internal rules",
                body.rule
            ),
        ));
    }
    for required in ["resources", "nodes"] {
        if !body.options.contains_key(required) {
            return Err(ApiError::field(
                required,
                format!("field '{required}': missing required option"),
            ));
        }
    }
    check_groups_migrated(&st).await?;
    let mut rules = docs::rules(&st.store).await?;
    if rules.value.iter().any(|rule| rule.id == body.rule) {
        return Err(ApiError::field(
            "rule",
            format!("rule '{}' already defined", body.rule),
        ));
    }
    let mut rule = NodeAffinityRule {
        id: body.rule.clone(),
        resources: Default::default(),
        nodes: Default::default(),
        strict: false,
        disable: false,
        comment: None,
    };
    apply_rule_options(&mut rule, &body.options)?;
    check_rule(&st, &rule, &rules.value).await?;
    rules.value.push(rule);
    let digest = docs::put_rules(&st.store, &rules.value, rules.version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `PUT /rules/{rule}`.
pub async fn update_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<WriteReply>> {
    super::resources::check_path_id("rule", &id)?;
    check_groups_migrated(&st).await?;
    let mut rules = docs::rules(&st.store).await?;
    let version = check_digest(body.digest, rules.version)?;
    let index = rules
        .value
        .iter()
        .position(|rule| rule.id == id)
        .ok_or_else(|| no_such_rule(&id))?;
    let mut rule = rules.value[index].clone();
    for key in &body.delete {
        match key.as_str() {
            "strict" => rule.strict = false,
            "disable" => rule.disable = false,
            "comment" => rule.comment = None,
            other => {
                return Err(ApiError::field(
                    "delete",
                    format!(
                        "field 'delete': cannot delete '{other}' of a rule (required or unknown)"
                    ),
                ))
            }
        }
    }
    apply_rule_options(&mut rule, &body.options)?;
    let others: Vec<NodeAffinityRule> = rules
        .value
        .iter()
        .filter(|other| other.id != id)
        .cloned()
        .collect();
    check_rule(&st, &rule, &others).await?;
    rules.value[index] = rule;
    let digest = docs::put_rules(&st.store, &rules.value, version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `DELETE /rules/{rule}`. Allowed whether or not groups are migrated, so
/// a rule can always be taken away.
pub async fn remove_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WriteReply>> {
    super::resources::check_path_id("rule", &id)?;
    let mut rules = docs::rules(&st.store).await?;
    let before = rules.value.len();
    rules.value.retain(|rule| rule.id != id);
    if rules.value.len() == before {
        return Err(no_such_rule(&id));
    }
    let digest = docs::put_rules(&st.store, &rules.value, rules.version).await?;
    Ok(Json(WriteReply { digest }))
}

fn no_such_rule(id: &str) -> ApiError {
    ApiError::not_found(format!("no such rule '{id}'"))
}

fn parse_field_sid(field: &str, text: &str) -> ApiResult<Sid> {
    text.parse()
        .map_err(|e| ApiError::field(field, format!("field '{field}': {e}")))
}

/// Only node-affinity rules exist here; resource-affinity is named as not
/// supported rather than unknown.
fn check_type(kind: &str) -> ApiResult<()> {
    match kind {
        NODE_AFFINITY_TYPE => Ok(()),
        RESOURCE_AFFINITY_TYPE => Err(ApiError::field(
            "type",
            "field 'type': resource-affinity rules are not supported yet",
        )),
        other => Err(ApiError::field(
            "type",
            format!("field 'type': unknown rule type '{other}' (expected {NODE_AFFINITY_TYPE})"),
        )),
    }
}

/// Refuses rule edits while groups.cfg still has groups (spec 1.4).
async fn check_groups_migrated(st: &ApiState) -> ApiResult<()> {
    let groups = docs::groups(&st.store).await?.value;
    if groups.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "rules cannot be edited until the {} HA group(s) are migrated to rules \
             (the CRM does this once every node runs a rules-capable version)",
            groups.len()
        ),
    ))
}

/// Applies API options. Unlike the file format, where the mere presence of
/// `disable` disables a rule, the API stores `disable 0` as "enabled".
fn apply_rule_options(
    rule: &mut NodeAffinityRule,
    options: &BTreeMap<String, String>,
) -> ApiResult<()> {
    for (key, value) in options {
        if key == "disable" {
            rule.disable = crate::config::values::parse_bool(key, Some(value))
                .map_err(|e| ApiError::field(key, e.to_string()))?;
            continue;
        }
        match parse_rule_option(key, Some(value))
            .map_err(|e| ApiError::field(key, e.to_string()))?
        {
            RuleOption::Resources(resources) => rule.resources = resources,
            RuleOption::Nodes(nodes) => rule.nodes = nodes,
            RuleOption::Strict(strict) => rule.strict = strict,
            RuleOption::Disable => rule.disable = true,
            RuleOption::Comment(comment) => rule.comment = Some(comment),
        }
    }
    Ok(())
}

/// The API-level checks of spec 2.4: resources and nodes non-empty and
/// known, and the rule must not be dropped by the feasibility check (a
/// resource in two enabled node-affinity rules drops both).
async fn check_rule(
    st: &ApiState,
    rule: &NodeAffinityRule,
    others: &[NodeAffinityRule],
) -> ApiResult<()> {
    let invalid = |field: &str, reason: String| {
        ApiError::field(
            field,
            format!("Rule '{}' is invalid: field '{field}': {reason}", rule.id),
        )
    };
    if rule.resources.is_empty() {
        return Err(invalid("resources", "no resources given".into()));
    }
    if rule.nodes.is_empty() {
        return Err(invalid("nodes", "no nodes given".into()));
    }
    let configured = docs::resources(&st.store).await?.value;
    if let Some(sid) = rule
        .resources
        .iter()
        .find(|sid| !configured.iter().any(|r| &r.sid == *sid))
    {
        return Err(invalid(
            "resources",
            format!("resource '{sid}' is not HA managed"),
        ));
    }
    let members = docs::nodes(&st.store).await?.value;
    if let Some(node) = rule
        .nodes
        .keys()
        .find(|node| !members.nodes.contains_key(node.as_str()))
    {
        return Err(invalid(
            "nodes",
            format!("node '{node}' is not a cluster member"),
        ));
    }
    match shared_resource(rule, others) {
        Some((sid, other)) => Err(invalid("resources", shared_resource_message(sid, other))),
        None => Ok(()),
    }
}

/// Removes `sid` from every rule and deletes the rules left without
/// resources (`remove --purge`, spec 2.8). Returns whether anything
/// changed.
pub fn purge_resource(rules: &mut Vec<NodeAffinityRule>, sid: &Sid) -> bool {
    let mut changed = false;
    rules.retain_mut(|rule| {
        if !rule.resources.remove(sid) {
            return true;
        }
        changed = true;
        !rule.resources.is_empty()
    });
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, sids: &[&str]) -> NodeAffinityRule {
        NodeAffinityRule {
            id: id.into(),
            resources: sids.iter().map(|s| s.parse().unwrap()).collect(),
            nodes: [("node1".parse().unwrap(), 1)].into_iter().collect(),
            strict: false,
            disable: false,
            comment: None,
        }
    }

    #[test]
    fn purge_drops_the_sid_and_rules_left_empty() {
        let mut rules = vec![rule("a", &["exec:x"]), rule("b", &["exec:x", "exec:y"])];
        assert!(purge_resource(&mut rules, &"exec:x".parse().unwrap()));
        assert_eq!(rules, vec![rule("b", &["exec:y"])]);
        assert!(!purge_resource(&mut rules, &"exec:x".parse().unwrap()));
    }

    #[test]
    fn api_disable_zero_enables_the_rule() {
        let mut r = rule("a", &["exec:x"]);
        r.disable = true;
        let options = [("disable".to_string(), "0".to_string())].into();
        apply_rule_options(&mut r, &options).unwrap();
        assert!(!r.disable);
        let options = [("disable".to_string(), "maybe".to_string())].into();
        let err = apply_rule_options(&mut r, &options).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("disable"));
    }
}
