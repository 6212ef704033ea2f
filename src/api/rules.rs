//! `/api/v1/rules`: the node- and resource-affinity rules of rules.cfg
//! (spec 1.5, 2.4, 2.8, 7.3). Rules can only be edited once the HA groups
//! are migrated (groups.cfg empty), because until then the CRM derives
//! rules from the groups and two sources of node preferences would
//! contradict each other. A rule the CRM would drop (spec 2.4's
//! feasibility checks, judged by `config::compile`) is refused.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult, ErrorBody, ReadErrors, WriteErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::resources::{check_digest, UpdateBody, WriteReply};
use super::ApiState;
use crate::config::compile::feasibility_errors;
use crate::config::rules::{NODE_AFFINITY_TYPE, RESOURCE_AFFINITY_TYPE};
use crate::config::{
    parse_resource_affinity_option, parse_rule_option, ResourceAffinityOption, RuleOption,
};
use crate::domain::error::validate_config_id;
use crate::domain::{
    split_rules, Affinity, NodeAffinityRule, NodeName, ResourceAffinityRule, Rule, Sid,
};

/// Query of `GET /rules`: optional filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RulesQuery {
    /// Only rules of this type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only rules that name this resource.
    pub resource: Option<String>,
}

/// Body of `POST /rules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    /// Rule type: `node-affinity` or `resource-affinity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Rule id (a config id).
    pub rule: String,
    /// node-affinity: `resources` and `nodes` (required), `strict`,
    /// `disable`, `comment`; resource-affinity: `resources` and `affinity`
    /// (required), `disable`, `comment`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// One rule as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleView {
    /// The rule; its `type` key says which kind.
    #[serde(flatten)]
    pub rule: Rule,
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
    /// The rule type as rules.cfg writes it.
    pub fn kind(&self) -> &'static str {
        rule_type(&self.rule)
    }
}

/// The section type of `rule` in rules.cfg.
pub fn rule_type(rule: &Rule) -> &'static str {
    match rule {
        Rule::NodeAffinity(_) => NODE_AFFINITY_TYPE,
        Rule::ResourceAffinity(_) => RESOURCE_AFFINITY_TYPE,
    }
}

/// The property a feasibility reason is about: every check judges the
/// rule's resources, except the node counts of a node-affinity rule.
fn reason_field(rule: &Rule, reason: &str) -> &'static str {
    match rule {
        Rule::NodeAffinity(_)
            if reason == crate::config::compile::NODE_RULE_TOO_FEW_NODES_REASON =>
        {
            "nodes"
        }
        _ => "resources",
    }
}

/// The CRM's verdict on each rule of `rules` (by id), judged against the
/// cluster's nodes by the same checks the CRM runs.
fn verdicts(rules: &[Rule], members: &[NodeName]) -> BTreeMap<String, Vec<String>> {
    let (node, resource) = split_rules(rules.to_vec());
    feasibility_errors(&node, &resource, members)
}

/// The errors map of one view: field -> reasons.
fn view_errors(rule: &Rule, reasons: Option<&Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for reason in reasons.into_iter().flatten() {
        errors
            .entry(reason_field(rule, reason).to_string())
            .or_default()
            .push(reason.clone());
    }
    errors
}

/// The cluster members' names, the node list the CRM compiles rules
/// against.
async fn member_names(st: &ApiState) -> ApiResult<Vec<NodeName>> {
    let members = docs::nodes(&st.store).await?.value;
    Ok(members
        .nodes
        .keys()
        .filter_map(|name| name.parse().ok())
        .collect())
}

fn views(rules: &[Rule], members: &[NodeName], digest: u64) -> Vec<RuleView> {
    let verdicts = verdicts(rules, members);
    rules
        .iter()
        .enumerate()
        .map(|(order, rule)| RuleView {
            errors: view_errors(rule, verdicts.get(rule.id())),
            rule: rule.clone(),
            order,
            digest,
        })
        .collect()
}

/// `GET /rules` (linearizable read), in file order.
#[utoipa::path(
    get,
    path = "/rules",
    tag = "rules",
    params(RulesQuery),
    responses(
        (status = 200, description = "The rules in file order, each with the errors that make the CRM drop it", body = Vec<RuleView>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        ReadErrors
    )
)]
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
    let members = member_names(&st).await?;
    Ok(Json(
        views(&rules.value, &members, rules.version)
            .into_iter()
            .filter(|v| query.kind.as_deref().is_none_or(|k| v.kind() == k))
            .filter(|v| {
                resource
                    .as_ref()
                    .is_none_or(|r| v.rule.resources().contains(r))
            })
            .collect(),
    ))
}

/// `GET /rules/{rule}`.
#[utoipa::path(
    get,
    path = "/rules/{rule}",
    tag = "rules",
    params(("rule" = String, Path, description = "The rule id")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 400, description = "Malformed rule id", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        ReadErrors
    )
)]
pub async fn get_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RuleView>> {
    super::resources::check_path_id("rule", &id)?;
    let rules = docs::rules(&st.store).await?;
    let members = member_names(&st).await?;
    views(&rules.value, &members, rules.version)
        .into_iter()
        .find(|v| v.rule.id() == id)
        .map(Json)
        .ok_or_else(|| no_such_rule(&id))
}

/// A new rule of type `kind` with its required options checked present
/// and every option applied.
fn new_rule(kind: &str, id: &str, options: &BTreeMap<String, String>) -> ApiResult<Rule> {
    let required: &[&str] = match kind {
        NODE_AFFINITY_TYPE => &["resources", "nodes"],
        _ => &["resources", "affinity"],
    };
    for field in required {
        if !options.contains_key(*field) {
            return Err(ApiError::field(
                field,
                format!("field '{field}': missing required option"),
            ));
        }
    }
    let mut rule = if kind == NODE_AFFINITY_TYPE {
        Rule::NodeAffinity(NodeAffinityRule {
            id: id.to_string(),
            resources: BTreeSet::new(),
            nodes: BTreeMap::new(),
            strict: false,
            disable: false,
            comment: None,
        })
    } else {
        Rule::ResourceAffinity(ResourceAffinityRule {
            id: id.to_string(),
            resources: BTreeSet::new(),
            affinity: Affinity::Positive,
            disable: false,
            comment: None,
        })
    };
    apply_rule_options(&mut rule, options)?;
    Ok(rule)
}

/// `POST /rules`: creates a rule at the end of rules.cfg.
#[utoipa::path(
    post,
    path = "/rules",
    tag = "rules",
    request_body = CreateRule,
    responses(
        (status = 200, description = "Created; the new document version", body = WriteReply),
        WriteErrors
    )
)]
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
    let rule = new_rule(&body.kind, &body.rule, &body.options)?;
    check_groups_migrated(&st).await?;
    let mut rules = docs::rules(&st.store).await?;
    if rules.value.iter().any(|r| r.id() == body.rule) {
        return Err(ApiError::field(
            "rule",
            format!("rule '{}' already defined", body.rule),
        ));
    }
    let mut candidate = rules.value.clone();
    candidate.push(rule);
    check_rule(&st, &rules.value, &candidate, &body.rule).await?;
    rules.value = candidate;
    let digest = docs::put_rules(&st.store, &rules.value, rules.version).await?;
    Ok(Json(WriteReply { digest }))
}

/// Resets the optional keys `delete` names; a required or unknown key is
/// refused naming it.
fn delete_rule_options(rule: &mut Rule, delete: &[String]) -> ApiResult<()> {
    for key in delete {
        match (&mut *rule, key.as_str()) {
            (Rule::NodeAffinity(r), "strict") => r.strict = false,
            (Rule::NodeAffinity(r), "disable") => r.disable = false,
            (Rule::NodeAffinity(r), "comment") => r.comment = None,
            (Rule::ResourceAffinity(r), "disable") => r.disable = false,
            (Rule::ResourceAffinity(r), "comment") => r.comment = None,
            (_, other) => {
                return Err(ApiError::field(
                    "delete",
                    format!(
                        "field 'delete': cannot delete '{other}' of a rule (required or unknown)"
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// `PUT /rules/{rule}`.
#[utoipa::path(
    put,
    path = "/rules/{rule}",
    tag = "rules",
    params(("rule" = String, Path, description = "The rule id")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Changed; the new document version", body = WriteReply),
        (status = 404, description = "No such rule", body = ErrorBody),
        WriteErrors
    )
)]
pub async fn update_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<WriteReply>> {
    super::resources::check_path_id("rule", &id)?;
    check_groups_migrated(&st).await?;
    let rules = docs::rules(&st.store).await?;
    let version = check_digest(body.digest, rules.version)?;
    let index = rules
        .value
        .iter()
        .position(|rule| rule.id() == id)
        .ok_or_else(|| no_such_rule(&id))?;
    let mut rule = rules.value[index].clone();
    delete_rule_options(&mut rule, &body.delete)?;
    apply_rule_options(&mut rule, &body.options)?;
    let mut candidate = rules.value.clone();
    candidate[index] = rule;
    check_rule(&st, &rules.value, &candidate, &id).await?;
    let digest = docs::put_rules(&st.store, &candidate, version).await?;
    Ok(Json(WriteReply { digest }))
}

/// `DELETE /rules/{rule}`. Allowed whether or not groups are migrated, so
/// a rule can always be taken away.
#[utoipa::path(
    delete,
    path = "/rules/{rule}",
    tag = "rules",
    params(("rule" = String, Path, description = "The rule id")),
    responses(
        (status = 200, description = "Removed; the new document version", body = WriteReply),
        (status = 404, description = "No such rule", body = ErrorBody),
        WriteErrors
    )
)]
pub async fn remove_rule(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WriteReply>> {
    super::resources::check_path_id("rule", &id)?;
    let mut rules = docs::rules(&st.store).await?;
    let before = rules.value.len();
    rules.value.retain(|rule| rule.id() != id);
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

fn check_type(kind: &str) -> ApiResult<()> {
    match kind {
        NODE_AFFINITY_TYPE | RESOURCE_AFFINITY_TYPE => Ok(()),
        other => Err(ApiError::field(
            "type",
            format!(
                "field 'type': unknown rule type '{other}' (expected {NODE_AFFINITY_TYPE} or {RESOURCE_AFFINITY_TYPE})"
            ),
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

fn option_error(key: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::field(key, e.to_string())
}

/// Applies API options to a rule of either type; an option the rule type
/// does not have is refused naming it. Unlike the file format, where the
/// mere presence of `disable` disables a rule, the API stores `disable 0`
/// as "enabled".
fn apply_rule_options(rule: &mut Rule, options: &BTreeMap<String, String>) -> ApiResult<()> {
    for (key, value) in options {
        if key == "disable" {
            let disable = crate::config::values::parse_bool(key, Some(value))
                .map_err(|e| option_error(key, e))?;
            match rule {
                Rule::NodeAffinity(r) => r.disable = disable,
                Rule::ResourceAffinity(r) => r.disable = disable,
            }
            continue;
        }
        match rule {
            Rule::NodeAffinity(rule) => {
                match parse_rule_option(key, Some(value)).map_err(|e| option_error(key, e))? {
                    RuleOption::Resources(resources) => rule.resources = resources,
                    RuleOption::Nodes(nodes) => rule.nodes = nodes,
                    RuleOption::Strict(strict) => rule.strict = strict,
                    RuleOption::Disable => rule.disable = true,
                    RuleOption::Comment(comment) => rule.comment = Some(comment),
                }
            }
            Rule::ResourceAffinity(rule) => {
                match parse_resource_affinity_option(key, Some(value))
                    .map_err(|e| option_error(key, e))?
                {
                    ResourceAffinityOption::Resources(resources) => rule.resources = resources,
                    ResourceAffinityOption::Affinity(affinity) => rule.affinity = affinity,
                    ResourceAffinityOption::Disable => rule.disable = true,
                    ResourceAffinityOption::Comment(comment) => rule.comment = Some(comment),
                }
            }
        }
    }
    Ok(())
}

/// The API-level checks of spec 2.4 on the rule `id` of `candidate` (the
/// rules as they would be written): resources (and nodes) non-empty and
/// known, and see [`judge_rules`].
async fn check_rule(
    st: &ApiState,
    current: &[Rule],
    candidate: &[Rule],
    id: &str,
) -> ApiResult<()> {
    let Some(rule) = candidate.iter().find(|r| r.id() == id) else {
        return Err(no_such_rule(id));
    };
    let configured = docs::resources(&st.store).await?.value;
    let members = member_names(st).await?;
    check_names(rule, &configured, &members)?;
    judge_rules(current, candidate, id, &members)
}

fn invalid(id: &str, field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::field(
        field,
        format!("Rule '{id}' is invalid: field '{field}': {reason}"),
    )
}

/// Resources (and a node-affinity rule's nodes) given and known.
fn check_names(
    rule: &Rule,
    configured: &[crate::domain::ResourceConfig],
    members: &[NodeName],
) -> ApiResult<()> {
    let id = rule.id();
    if rule.resources().is_empty() {
        return Err(invalid(id, "resources", "no resources given"));
    }
    if let Some(sid) = rule
        .resources()
        .iter()
        .find(|sid| !configured.iter().any(|r| &r.sid == *sid))
    {
        return Err(invalid(
            id,
            "resources",
            format!("resource '{sid}' is not HA managed"),
        ));
    }
    if let Rule::NodeAffinity(rule) = rule {
        if rule.nodes.is_empty() {
            return Err(invalid(id, "nodes", "no nodes given"));
        }
        if let Some(node) = rule.nodes.keys().find(|node| !members.contains(node)) {
            return Err(invalid(
                id,
                "nodes",
                format!("node '{node}' is not a cluster member"),
            ));
        }
    }
    Ok(())
}

/// Refuses an edit the CRM would not follow: the rule `id` fails a
/// feasibility check, or another rule that passes them today would fail
/// one once the edit is written (both are named then).
fn judge_rules(
    current: &[Rule],
    candidate: &[Rule],
    id: &str,
    members: &[NodeName],
) -> ApiResult<()> {
    let after = verdicts(candidate, members);
    let Some(rule) = candidate.iter().find(|r| r.id() == id) else {
        return Ok(());
    };
    if let Some(reason) = after.get(id).and_then(|reasons| reasons.first()) {
        let detail = shared_resource(rule, candidate)
            .filter(|_| reason == crate::config::compile::SHARED_RESOURCE_REASON)
            .map(|(sid, other)| format!(" (resource '{sid}' is also in rule '{other}')"))
            .unwrap_or_default();
        return Err(invalid(
            id,
            reason_field(rule, reason),
            format!("{reason}{detail}"),
        ));
    }
    let before = verdicts(current, members);
    if let Some((other, reason)) = after
        .iter()
        .filter(|(other, _)| !before.contains_key(*other))
        .find_map(|(other, reasons)| reasons.first().map(|r| (other, r)))
    {
        return Err(invalid(
            id,
            "resources",
            format!("rule '{other}' would then be dropped: {reason}"),
        ));
    }
    Ok(())
}

/// For a node-affinity rule, the first resource it shares with another
/// enabled node-affinity rule and that rule's id: what an operator needs
/// to resolve feasibility check 1.
fn shared_resource<'a>(rule: &'a Rule, all: &'a [Rule]) -> Option<(&'a Sid, &'a str)> {
    let Rule::NodeAffinity(rule) = rule else {
        return None;
    };
    all.iter()
        .filter_map(|other| match other {
            Rule::NodeAffinity(other) if !other.disable && other.id != rule.id => Some(other),
            _ => None,
        })
        .find_map(|other| {
            other
                .resources
                .intersection(&rule.resources)
                .next()
                .map(|sid| (sid, other.id.as_str()))
        })
}

/// Removes `sid` from every rule and deletes the rules left without
/// resources (`remove --purge`, spec 2.8). Returns whether anything
/// changed.
pub fn purge_resource(rules: &mut Vec<Rule>, sid: &Sid) -> bool {
    let mut changed = false;
    rules.retain_mut(|rule| {
        let resources = match rule {
            Rule::NodeAffinity(r) => &mut r.resources,
            Rule::ResourceAffinity(r) => &mut r.resources,
        };
        if !resources.remove(sid) {
            return true;
        }
        changed = true;
        !resources.is_empty()
    });
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sids(list: &[&str]) -> BTreeSet<Sid> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn rule(id: &str, list: &[&str]) -> Rule {
        Rule::NodeAffinity(NodeAffinityRule {
            id: id.into(),
            resources: sids(list),
            nodes: [("node1".parse().unwrap(), 1)].into_iter().collect(),
            strict: false,
            disable: false,
            comment: None,
        })
    }

    fn affinity(id: &str, list: &[&str], affinity: Affinity) -> Rule {
        Rule::ResourceAffinity(ResourceAffinityRule {
            id: id.into(),
            resources: sids(list),
            affinity,
            disable: false,
            comment: None,
        })
    }

    fn nodes(n: usize) -> Vec<NodeName> {
        (1..=n)
            .map(|i| format!("node{i}").parse().unwrap())
            .collect()
    }

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn purge_drops_the_sid_and_rules_left_empty_of_both_types() {
        let apart = affinity("apart", &["exec:x", "exec:y"], Affinity::Negative);
        let mut rules = vec![
            rule("a", &["exec:x"]),
            rule("b", &["exec:x", "exec:y"]),
            apart,
        ];
        assert!(purge_resource(&mut rules, &"exec:x".parse().unwrap()));
        assert_eq!(
            rules,
            vec![
                rule("b", &["exec:y"]),
                affinity("apart", &["exec:y"], Affinity::Negative)
            ]
        );
        assert!(!purge_resource(&mut rules, &"exec:x".parse().unwrap()));
    }

    #[test]
    fn api_disable_zero_enables_the_rule() {
        for mut r in [
            rule("a", &["exec:x"]),
            affinity("b", &["exec:x"], Affinity::Positive),
        ] {
            apply_rule_options(&mut r, &options(&[("disable", "1")])).unwrap();
            assert!(is_disabled(&r));
            apply_rule_options(&mut r, &options(&[("disable", "0")])).unwrap();
            assert!(!is_disabled(&r));
            let err = apply_rule_options(&mut r, &options(&[("disable", "maybe")])).unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some("disable"));
            assert!(!is_disabled(&r));
        }
    }

    fn is_disabled(rule: &Rule) -> bool {
        match rule {
            Rule::NodeAffinity(r) => r.disable,
            Rule::ResourceAffinity(r) => r.disable,
        }
    }

    #[test]
    fn new_resource_affinity_rule_needs_resources_and_affinity() {
        let err = new_rule(
            "resource-affinity",
            "apart",
            &options(&[("resources", "exec:a,exec:b")]),
        )
        .unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("affinity"));
        let err = new_rule(
            "resource-affinity",
            "apart",
            &options(&[("resources", "exec:a,exec:b"), ("affinity", "sideways")]),
        )
        .unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("affinity"));
        // `nodes` is a node-affinity option: named, not ignored.
        let err = new_rule(
            "resource-affinity",
            "apart",
            &options(&[
                ("resources", "exec:a,exec:b"),
                ("affinity", "negative"),
                ("nodes", "node1"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("nodes"));
        let rule = new_rule(
            "resource-affinity",
            "apart",
            &options(&[
                ("resources", "exec:a,exec:b"),
                ("affinity", "negative"),
                ("comment", "keep apart"),
            ]),
        )
        .unwrap();
        let Rule::ResourceAffinity(rule) = rule else {
            panic!("wrong type")
        };
        assert_eq!(rule.affinity, Affinity::Negative);
        assert_eq!(rule.resources, sids(&["exec:a", "exec:b"]));
        assert_eq!(rule.comment.as_deref(), Some("keep apart"));
    }

    #[test]
    fn delete_names_keys_a_rule_type_does_not_have() {
        let mut r = affinity("b", &["exec:x", "exec:y"], Affinity::Positive);
        let err = delete_rule_options(&mut r, &["strict".to_string()]).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("delete"));
        let err = delete_rule_options(&mut r, &["affinity".to_string()]).unwrap_err();
        assert!(err.body.error.contains("'affinity'"), "{}", err.body.error);
    }

    #[test]
    fn feasibility_refusal_names_the_rule_and_the_check() {
        let current = vec![];
        // Check 2: one resource only.
        let lone = vec![affinity("lone", &["exec:a"], Affinity::Negative)];
        let err = judge_rules(&current, &lone, "lone", &nodes(3)).unwrap_err();
        assert!(err.body.error.contains("Rule 'lone' is invalid"));
        assert!(err
            .body
            .error
            .contains(crate::config::compile::TOO_FEW_RESOURCES_REASON));
        // Check 3: more resources apart than nodes.
        let wide = vec![affinity(
            "wide",
            &["exec:a", "exec:b", "exec:c"],
            Affinity::Negative,
        )];
        let err = judge_rules(&current, &wide, "wide", &nodes(2)).unwrap_err();
        assert!(err
            .body
            .error
            .contains(crate::config::compile::MORE_RESOURCES_THAN_NODES_REASON));
        assert_eq!(err.body.field.as_deref(), Some("resources"));
        assert!(judge_rules(&current, &wide, "wide", &nodes(3)).is_ok());
    }

    #[test]
    fn a_shared_resource_names_the_other_rule() {
        let current = vec![rule("keep", &["exec:good"])];
        let mut candidate = current.clone();
        candidate.push(rule("r2", &["exec:good"]));
        let err = judge_rules(&current, &candidate, "r2", &nodes(2)).unwrap_err();
        assert!(
            err.body
                .error
                .contains("resource 'exec:good' is also in rule 'keep'"),
            "{}",
            err.body.error
        );
    }

    #[test]
    fn an_edit_that_makes_another_rule_drop_names_it() {
        let together = affinity("together", &["exec:a", "exec:b"], Affinity::Positive);
        let current = vec![together.clone()];
        // Positive and negative on the same pair: both fail check 4.
        let candidate = vec![
            together,
            affinity("apart", &["exec:a", "exec:b"], Affinity::Negative),
        ];
        let err = judge_rules(&current, &candidate, "apart", &nodes(3)).unwrap_err();
        assert!(
            err.body.error.contains("Rule 'apart' is invalid"),
            "{}",
            err.body.error
        );
        // A rule dropped before the edit does not block an unrelated edit.
        let broken = vec![affinity("lone", &["exec:a"], Affinity::Negative)];
        let mut after = broken.clone();
        after.push(affinity("pair", &["exec:c", "exec:d"], Affinity::Negative));
        assert!(judge_rules(&broken, &after, "pair", &nodes(3)).is_ok());
    }

    #[test]
    fn views_carry_the_crms_verdict_per_field() {
        let rules = vec![
            rule("a", &["exec:x"]),
            rule("b", &["exec:x"]),
            affinity("apart", &["exec:y", "exec:z"], Affinity::Negative),
        ];
        let views = views(&rules, &nodes(2), 9);
        assert_eq!(views.len(), 3);
        assert_eq!(
            views[0].errors.get("resources"),
            Some(&vec![
                crate::config::compile::SHARED_RESOURCE_REASON.to_string()
            ])
        );
        assert!(!views[1].errors.is_empty());
        assert!(views[2].errors.is_empty());
        assert_eq!(views[2].kind(), "resource-affinity");
        assert_eq!(views[2].order, 2);
        // The JSON names the type once, from the rule itself.
        let json = serde_json::to_value(&views[2]).unwrap();
        assert_eq!(json["type"], "resource-affinity");
        assert_eq!(json["affinity"], "negative");
        let back: RuleView = serde_json::from_value(json).unwrap();
        assert_eq!(back.rule, rules[2]);
    }

    #[test]
    fn names_must_be_known() {
        let configured = vec![crate::domain::ResourceConfig::with_defaults(
            "exec:a".parse().unwrap(),
        )];
        let r = affinity("apart", &["exec:a", "exec:b"], Affinity::Negative);
        let err = check_names(&r, &configured, &nodes(2)).unwrap_err();
        assert!(err
            .body
            .error
            .contains("resource 'exec:b' is not HA managed"));
        let mut n = rule("n", &["exec:a"]);
        if let Rule::NodeAffinity(n) = &mut n {
            n.nodes = [("node9".parse().unwrap(), 0)].into_iter().collect();
        }
        let err = check_names(&n, &configured, &nodes(2)).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("nodes"));
    }
}
