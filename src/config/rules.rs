//! rules.cfg (spec section 2.4): `node-affinity` and `resource-affinity`
//! sections, parsed and written in file order. Properties are isolated per
//! type: a key of one type is unknown for the other.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{ConfigError, ConfigErrorKind};
use super::percent::{decode_comment, encode_comment};
use super::section::{split_sections, RawSection, SectionWriter};
use super::values::{
    check_comment_length, parse_bool, parse_node_list, parse_sid_list, require_value,
};
use crate::domain::error::validate_config_id;
use crate::domain::{Affinity, NodeAffinityRule, NodeName, ResourceAffinityRule, Rule, Sid};

/// The node-affinity section type.
pub const NODE_AFFINITY_TYPE: &str = "node-affinity";
/// The resource-affinity section type.
pub const RESOURCE_AFFINITY_TYPE: &str = "resource-affinity";

/// One validated node-affinity rule option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOption {
    /// `resources` (required).
    Resources(BTreeSet<Sid>),
    /// `nodes` (required): node -> priority, missing priority = 0.
    Nodes(BTreeMap<NodeName, u32>),
    /// `strict`.
    Strict(bool),
    /// `disable`: the mere presence of the key disables the rule, so this
    /// is `true` even for `disable 0` **[quirk]**; the value must still be
    /// a valid boolean.
    Disable,
    /// `comment`, decoded.
    Comment(String),
}

/// One validated resource-affinity rule option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceAffinityOption {
    /// `resources` (required).
    Resources(BTreeSet<Sid>),
    /// `affinity` (required): `positive` or `negative`.
    Affinity(Affinity),
    /// `disable` (same quirk as [`RuleOption::Disable`]).
    Disable,
    /// `comment`, decoded.
    Comment(String),
}

fn parse_rule_comment(key: &str, value: Option<&str>) -> Result<String, ConfigErrorKind> {
    let raw = require_value(key, value)?;
    let text = decode_comment(raw).map_err(|reason| ConfigErrorKind::invalid(key, reason))?;
    // Encoded line breaks are fine: they stay encoded on disk.
    check_comment_length(key, &text)?;
    Ok(text)
}

fn parse_disable(key: &str, value: Option<&str>) -> Result<(), ConfigErrorKind> {
    // Only the presence counts, but a malformed value is still refused.
    parse_bool(key, value).map(|_| ())
}

/// Validates one node-affinity option as it appears in rules.cfg (`value`
/// is `None` for a key without value; comments are percent-decoded).
pub fn parse_rule_option(key: &str, value: Option<&str>) -> Result<RuleOption, ConfigErrorKind> {
    Ok(match key {
        "resources" => RuleOption::Resources(parse_sid_list(key, value)?),
        "nodes" => RuleOption::Nodes(
            parse_node_list(key, value)?
                .into_iter()
                .map(|(node, priority)| (node, priority.unwrap_or(0)))
                .collect(),
        ),
        "strict" => RuleOption::Strict(parse_bool(key, value)?),
        "disable" => {
            parse_disable(key, value)?;
            RuleOption::Disable
        }
        "comment" => RuleOption::Comment(parse_rule_comment(key, value)?),
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: NODE_AFFINITY_TYPE.to_string(),
            })
        }
    })
}

/// Validates one resource-affinity option as it appears in rules.cfg.
pub fn parse_resource_affinity_option(
    key: &str,
    value: Option<&str>,
) -> Result<ResourceAffinityOption, ConfigErrorKind> {
    Ok(match key {
        "resources" => ResourceAffinityOption::Resources(parse_sid_list(key, value)?),
        "affinity" => ResourceAffinityOption::Affinity(match require_value(key, value)? {
            "positive" => Affinity::Positive,
            "negative" => Affinity::Negative,
            other => {
                return Err(ConfigErrorKind::invalid(
                    key,
                    format!("invalid affinity '{other}': expected positive or negative"),
                ))
            }
        }),
        "disable" => {
            parse_disable(key, value)?;
            ResourceAffinityOption::Disable
        }
        "comment" => ResourceAffinityOption::Comment(parse_rule_comment(key, value)?),
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: RESOURCE_AFFINITY_TYPE.to_string(),
            })
        }
    })
}

fn missing_keys(
    section: &RawSection<'_>,
    file: &str,
    keys: &[(bool, &str)],
) -> Result<(), ConfigError> {
    match keys.iter().find(|(present, _)| !present) {
        Some((_, key)) => Err(ConfigErrorKind::MissingKey {
            section: section.label(),
            field: key.to_string(),
        }
        .at(file, section.line)),
        None => Ok(()),
    }
}

fn node_affinity_section(
    section: &RawSection<'_>,
    file: &str,
) -> Result<NodeAffinityRule, ConfigError> {
    let mut rule = NodeAffinityRule {
        id: section.id.to_string(),
        resources: BTreeSet::new(),
        nodes: BTreeMap::new(),
        strict: false,
        disable: false,
        comment: None,
    };
    let (mut has_resources, mut has_nodes) = (false, false);
    for entry in &section.entries {
        match parse_rule_option(entry.key, entry.value).map_err(|e| e.at(file, entry.line))? {
            RuleOption::Resources(resources) => {
                rule.resources = resources;
                has_resources = true;
            }
            RuleOption::Nodes(nodes) => {
                rule.nodes = nodes;
                has_nodes = true;
            }
            RuleOption::Strict(strict) => rule.strict = strict,
            RuleOption::Disable => rule.disable = true,
            RuleOption::Comment(comment) => rule.comment = Some(comment),
        }
    }
    missing_keys(
        section,
        file,
        &[(has_nodes, "nodes"), (has_resources, "resources")],
    )?;
    Ok(rule)
}

fn resource_affinity_section(
    section: &RawSection<'_>,
    file: &str,
) -> Result<ResourceAffinityRule, ConfigError> {
    let mut resources = None;
    let mut affinity = None;
    let mut disable = false;
    let mut comment = None;
    for entry in &section.entries {
        match parse_resource_affinity_option(entry.key, entry.value)
            .map_err(|e| e.at(file, entry.line))?
        {
            ResourceAffinityOption::Resources(r) => resources = Some(r),
            ResourceAffinityOption::Affinity(a) => affinity = Some(a),
            ResourceAffinityOption::Disable => disable = true,
            ResourceAffinityOption::Comment(c) => comment = Some(c),
        }
    }
    missing_keys(
        section,
        file,
        &[
            (affinity.is_some(), "affinity"),
            (resources.is_some(), "resources"),
        ],
    )?;
    Ok(ResourceAffinityRule {
        id: section.id.to_string(),
        resources: resources.unwrap_or_default(),
        affinity: affinity.unwrap_or(Affinity::Positive),
        disable,
        comment,
    })
}

/// Parses rules.cfg with both rule types, in file order; `file` is only
/// used in error messages.
pub fn parse_rules(text: &str, file: &str) -> Result<Vec<Rule>, ConfigError> {
    Ok(parse_located(text, file)?
        .into_iter()
        .map(|(rule, _)| rule)
        .collect())
}

/// Each rule with the line of its header.
fn parse_located(text: &str, file: &str) -> Result<Vec<(Rule, usize)>, ConfigError> {
    let mut rules = Vec::new();
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    for section in split_sections(text, file)? {
        let kind = section.kind.as_str();
        if kind != NODE_AFFINITY_TYPE && kind != RESOURCE_AFFINITY_TYPE {
            return Err(ConfigErrorKind::UnknownSectionType {
                section_type: kind.to_string(),
                expected: format!("'{NODE_AFFINITY_TYPE}' or '{RESOURCE_AFFINITY_TYPE}'"),
            }
            .at(file, section.line));
        }
        validate_config_id(section.id).map_err(|e| section.invalid_id(file, e.to_string()))?;
        // Rule ids are unique across both types (one id namespace).
        section.check_unique(section.id.to_string(), &mut first_lines, file)?;
        let rule = if kind == NODE_AFFINITY_TYPE {
            Rule::NodeAffinity(node_affinity_section(&section, file)?)
        } else {
            Rule::ResourceAffinity(resource_affinity_section(&section, file)?)
        };
        rules.push((rule, section.line));
    }
    Ok(rules)
}

/// The node-affinity view of rules.cfg, for callers that edit only
/// node-affinity rules (the rules API and CLI): a file that holds a
/// resource-affinity rule is refused rather than read without it, so that
/// writing the file back can never lose such a rule.
pub fn parse_rules_cfg(text: &str, file: &str) -> Result<Vec<NodeAffinityRule>, ConfigError> {
    let mut out = Vec::new();
    for (rule, line) in parse_located(text, file)? {
        match rule {
            Rule::NodeAffinity(r) => out.push(r),
            Rule::ResourceAffinity(r) => {
                return Err(ConfigErrorKind::NotSupported(format!(
                    "section '{RESOURCE_AFFINITY_TYPE}: {}': resource-affinity rules in the node-affinity rules API are",
                    r.id
                ))
                .at(file, line))
            }
        }
    }
    Ok(out)
}

fn write_node_affinity(writer: &mut SectionWriter, rule: &NodeAffinityRule) {
    writer.header(NODE_AFFINITY_TYPE, &rule.id);
    if let Some(comment) = rule.comment.as_deref().filter(|c| !c.is_empty()) {
        writer.entry("comment", &encode_comment(comment));
    }
    if rule.disable {
        writer.flag("disable");
    }
    writer.entry("nodes", &rule.nodes_text());
    let resources: Vec<&str> = rule.resources.iter().map(Sid::as_str).collect();
    writer.entry("resources", &resources.join(","));
    if rule.strict {
        writer.entry("strict", "1");
    }
}

fn write_resource_affinity(writer: &mut SectionWriter, rule: &ResourceAffinityRule) {
    writer.header(RESOURCE_AFFINITY_TYPE, &rule.id);
    if let Some(comment) = rule.comment.as_deref().filter(|c| !c.is_empty()) {
        writer.entry("comment", &encode_comment(comment));
    }
    if rule.disable {
        writer.flag("disable");
    }
    writer.entry("affinity", rule.affinity.as_str());
    let resources: Vec<&str> = rule.resources.iter().map(Sid::as_str).collect();
    writer.entry("resources", &resources.join(","));
}

/// Writes rules.cfg with both rule types in the given order: `comment`
/// (percent-encoded), the bare `disable` flag, then the required keys
/// sorted (`nodes`, `resources` / `affinity`, `resources`), then `strict 1`
/// when set. Rules with an internal id (starting with `_`) are never
/// written.
pub fn write_rules(rules: &[Rule]) -> String {
    let mut writer = SectionWriter::default();
    for rule in rules.iter().filter(|r| !r.id().starts_with('_')) {
        match rule {
            Rule::NodeAffinity(r) => write_node_affinity(&mut writer, r),
            Rule::ResourceAffinity(r) => write_resource_affinity(&mut writer, r),
        }
    }
    writer.finish()
}

/// Writes node-affinity rules only (see [`write_rules`] for the format).
pub fn write_rules_cfg(rules: &[NodeAffinityRule]) -> String {
    let mut writer = SectionWriter::default();
    for rule in rules.iter().filter(|r| !r.id.starts_with('_')) {
        write_node_affinity(&mut writer, rule);
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes() {
        let text = "node-affinity: keep-db\n\tresources vm:102 vm:101\n\tnodes node2,node1:3;node3:0\n\tstrict 1\n\tcomment db%3A primary %25 %C3%A9\n\nnode-affinity: off\n\tdisable 0\n\tnodes node1\n\tresources ct:200\n";
        let rules = parse_rules_cfg(text, "rules.cfg").unwrap();
        assert_eq!(rules.len(), 2);
        let db = &rules[0];
        let resources: Vec<&str> = db.resources.iter().map(Sid::as_str).collect();
        assert_eq!(resources, ["vm:101", "vm:102"]);
        let nodes: Vec<(String, u32)> = db.nodes.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(
            nodes,
            [
                ("node1".into(), 3),
                ("node2".into(), 0),
                ("node3".into(), 0)
            ]
        );
        assert!(db.strict && !db.disable);
        assert_eq!(db.comment.as_deref(), Some("db: primary % é"));
        // The disable quirk: `disable 0` still disables.
        assert!(rules[1].disable && !rules[1].strict);
        assert_eq!(
            write_rules_cfg(&rules),
            "node-affinity: keep-db\n\tcomment db%3A primary %25 %C3%A9\n\tnodes node1:3,node2,node3\n\tresources vm:101,vm:102\n\tstrict 1\n\nnode-affinity: off\n\tdisable\n\tnodes node1\n\tresources ct:200\n\n"
        );
    }

    #[test]
    fn internal_rules_are_not_written() {
        let mut rules =
            parse_rules_cfg("node-affinity: ab\n\tnodes n1\n\tresources vm:100\n", "r").unwrap();
        let mut internal = rules[0].clone();
        internal.id = "_merged-ab".into();
        rules.push(internal);
        assert_eq!(
            write_rules_cfg(&rules),
            "node-affinity: ab\n\tnodes n1\n\tresources vm:100\n\n"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: [(&str, usize, &str); 10] = [
            (
                "node-affinity: a1\n\tnodes n1\n\tresources vm:1\n\nresource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity positive\n",
                5,
                "section 'resource-affinity: r1': resource-affinity rules in the node-affinity rules API are not supported yet",
            ),
            ("location: r1\n", 1, "unknown section type 'location'"),
            (
                "node-affinity: r1\n\tresources vm:100\n",
                1,
                "section 'node-affinity: r1': missing required key 'nodes'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n",
                1,
                "section 'node-affinity: r1': missing required key 'resources'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n\tresources vm:100\n\taffinity positive\n",
                4,
                "field 'affinity': unknown key for section type 'node-affinity'",
            ),
            (
                "node-affinity: r1\n\tnodes n1:high\n\tresources vm:100\n",
                2,
                "field 'nodes': invalid priority 'high'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n\tresources 100\n",
                3,
                "field 'resources': invalid SID '100'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n\tresources vm:100\n\tdisable yes\n",
                4,
                "field 'disable': invalid boolean 'yes'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n\tresources vm:100\n\tcomment 100%\n",
                4,
                "field 'comment': invalid percent escape '%'",
            ),
            (
                "node-affinity: r\n",
                1,
                "invalid section id 'r' for type 'node-affinity'",
            ),
        ];
        for (text, line, message) in cases {
            let err = parse_rules_cfg(text, "rules.cfg").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(shown.starts_with(&format!("rules.cfg:{line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }

    #[test]
    fn resource_affinity_parses_and_writes_in_file_order() {
        let text = "resource-affinity: apart\n\tresources vm:103;vm:101 vm:102\n\taffinity negative\n\tcomment keep%3A apart\n\nnode-affinity: pin\n\tnodes node1\n\tresources vm:101\n\nresource-affinity: together\n\tdisable 0\n\taffinity positive\n\tresources ct:200,vm:104\n";
        let rules = parse_rules(text, "rules.cfg").unwrap();
        let ids: Vec<&str> = rules.iter().map(Rule::id).collect();
        assert_eq!(ids, ["apart", "pin", "together"]);
        let Rule::ResourceAffinity(apart) = &rules[0] else {
            panic!("{:?}", rules[0]);
        };
        assert_eq!(apart.affinity, Affinity::Negative);
        let sids: Vec<&str> = apart.resources.iter().map(Sid::as_str).collect();
        assert_eq!(sids, ["vm:101", "vm:102", "vm:103"]);
        assert_eq!(apart.comment.as_deref(), Some("keep: apart"));
        assert!(!apart.disable);
        let Rule::ResourceAffinity(together) = &rules[2] else {
            panic!("{:?}", rules[2]);
        };
        // The disable quirk holds for resource affinity too.
        assert!(together.disable);
        assert_eq!(together.affinity, Affinity::Positive);
        let written = write_rules(&rules);
        assert_eq!(
            written,
            "resource-affinity: apart\n\tcomment keep%3A apart\n\taffinity negative\n\tresources vm:101,vm:102,vm:103\n\nnode-affinity: pin\n\tnodes node1\n\tresources vm:101\n\nresource-affinity: together\n\tdisable\n\taffinity positive\n\tresources ct:200,vm:104\n\n"
        );
        assert_eq!(parse_rules(&written, "rules.cfg").unwrap(), rules);
    }

    #[test]
    fn resource_affinity_errors_name_file_line_and_field() {
        let cases: [(&str, usize, &str); 7] = [
            (
                "resource-affinity: r1\n\tresources vm:100,vm:101\n",
                1,
                "section 'resource-affinity: r1': missing required key 'affinity'",
            ),
            (
                "resource-affinity: r1\n\taffinity negative\n",
                1,
                "section 'resource-affinity: r1': missing required key 'resources'",
            ),
            (
                "resource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity together\n",
                3,
                "field 'affinity': invalid affinity 'together': expected positive or negative",
            ),
            (
                "resource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity\n",
                3,
                "field 'affinity': missing value",
            ),
            (
                "resource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity positive\n\tnodes node1\n",
                4,
                "field 'nodes': unknown key for section type 'resource-affinity'",
            ),
            (
                "resource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity positive\n\tstrict 1\n",
                4,
                "field 'strict': unknown key for section type 'resource-affinity'",
            ),
            (
                "node-affinity: r1\n\tnodes n1\n\tresources vm:100\n\nresource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity positive\n",
                5,
                "duplicate section 'resource-affinity: r1' (first defined on line 1)",
            ),
        ];
        for (text, line, message) in cases {
            let err = parse_rules(text, "rules.cfg").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(shown.starts_with(&format!("rules.cfg:{line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }

    #[test]
    fn encoded_line_breaks_in_comments_survive() {
        let rules = parse_rules_cfg(
            "node-affinity: r1\n\tcomment two%0Alines\n\tnodes n1\n\tresources vm:100\n",
            "r",
        )
        .unwrap();
        assert_eq!(rules[0].comment.as_deref(), Some("two\nlines"));
        assert!(write_rules_cfg(&rules).contains("\tcomment two%0Alines\n"));
    }
}
