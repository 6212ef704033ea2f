//! rules.cfg (spec section 2.4). Only `node-affinity` rules are
//! implemented; a `resource-affinity` section is refused as not supported
//! yet.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{ConfigError, ConfigErrorKind};
use super::percent::{decode_comment, encode_comment};
use super::section::{split_sections, SectionWriter};
use super::values::{
    check_comment_length, parse_bool, parse_node_list, parse_sid_list, require_value,
};
use crate::domain::error::validate_config_id;
use crate::domain::{NodeAffinityRule, NodeName, Sid};

/// The node-affinity section type.
pub const NODE_AFFINITY_TYPE: &str = "node-affinity";
/// The resource-affinity section type (not supported yet).
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
            parse_bool(key, value)?;
            RuleOption::Disable
        }
        "comment" => {
            let raw = require_value(key, value)?;
            let text =
                decode_comment(raw).map_err(|reason| ConfigErrorKind::invalid(key, reason))?;
            // Encoded line breaks are fine: they stay encoded on disk.
            check_comment_length(key, &text)?;
            RuleOption::Comment(text)
        }
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: NODE_AFFINITY_TYPE.to_string(),
            })
        }
    })
}

/// Parses rules.cfg; `file` is only used in error messages.
pub fn parse_rules_cfg(text: &str, file: &str) -> Result<Vec<NodeAffinityRule>, ConfigError> {
    let mut rules = Vec::new();
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    for section in split_sections(text, file)? {
        match section.kind.as_str() {
            NODE_AFFINITY_TYPE => {}
            RESOURCE_AFFINITY_TYPE => {
                return Err(ConfigErrorKind::NotSupported(format!(
                    "section '{}': resource-affinity rules are",
                    section.label()
                ))
                .at(file, section.line))
            }
            other => {
                return Err(ConfigErrorKind::UnknownSectionType {
                    section_type: other.to_string(),
                    expected: format!("'{NODE_AFFINITY_TYPE}' or '{RESOURCE_AFFINITY_TYPE}'"),
                }
                .at(file, section.line))
            }
        }
        validate_config_id(section.id).map_err(|e| section.invalid_id(file, e.to_string()))?;
        section.check_unique(section.id.to_string(), &mut first_lines, file)?;
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
        for (present, key) in [(has_nodes, "nodes"), (has_resources, "resources")] {
            if !present {
                return Err(ConfigErrorKind::MissingKey {
                    section: section.label(),
                    field: key.to_string(),
                }
                .at(file, section.line));
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Writes rules.cfg: `comment` (percent-encoded), the bare `disable` flag,
/// `nodes` (sorted by node, `:prio` only when not 0), `resources` (sorted,
/// comma-joined), then `strict 1` when set. Rules with an internal id
/// (starting with `_`) are never written.
pub fn write_rules_cfg(rules: &[NodeAffinityRule]) -> String {
    let mut writer = SectionWriter::default();
    for rule in rules.iter().filter(|r| !r.id.starts_with('_')) {
        writer.header(NODE_AFFINITY_TYPE, &rule.id);
        if let Some(comment) = rule.comment.as_deref().filter(|c| !c.is_empty()) {
            writer.entry("comment", &encode_comment(comment));
        }
        if rule.disable {
            writer.flag("disable");
        }
        let nodes: Vec<String> = rule
            .nodes
            .iter()
            .map(|(node, priority)| match priority {
                0 => node.to_string(),
                p => format!("{node}:{p}"),
            })
            .collect();
        writer.entry("nodes", &nodes.join(","));
        let resources: Vec<&str> = rule.resources.iter().map(Sid::as_str).collect();
        writer.entry("resources", &resources.join(","));
        if rule.strict {
            writer.entry("strict", "1");
        }
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
                "resource-affinity: r1\n\tresources vm:100,vm:101\n\taffinity positive\n",
                1,
                "resource-affinity rules are not supported yet",
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
