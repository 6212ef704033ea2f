//! groups.cfg (spec section 2.3): legacy HA groups, `group: <id>`.

use std::collections::BTreeMap;

use super::error::{ConfigError, ConfigErrorKind};
use super::section::{split_sections, SectionWriter};
use super::values::{parse_bool, parse_comment, parse_node_list};
use crate::domain::error::validate_config_id;
use crate::domain::{GroupConfig, GroupNode};

/// The only section type of groups.cfg.
pub const GROUP_SECTION_TYPE: &str = "group";

/// One validated group option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOption {
    /// `nodes` (required).
    Nodes(Vec<GroupNode>),
    /// `restricted`.
    Restricted(bool),
    /// `nofailback`.
    Nofailback(bool),
    /// `comment`.
    Comment(String),
}

/// Validates one group option (`value` is `None` for a key without value).
pub fn parse_group_option(key: &str, value: Option<&str>) -> Result<GroupOption, ConfigErrorKind> {
    Ok(match key {
        "nodes" => GroupOption::Nodes(
            parse_node_list(key, value)?
                .into_iter()
                .map(|(node, priority)| GroupNode { node, priority })
                .collect(),
        ),
        "restricted" => GroupOption::Restricted(parse_bool(key, value)?),
        "nofailback" => GroupOption::Nofailback(parse_bool(key, value)?),
        "comment" => GroupOption::Comment(parse_comment(key, value)?),
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: GROUP_SECTION_TYPE.to_string(),
            })
        }
    })
}

/// Parses groups.cfg; `file` is only used in error messages.
pub fn parse_groups_cfg(text: &str, file: &str) -> Result<Vec<GroupConfig>, ConfigError> {
    let mut groups = Vec::new();
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    for section in split_sections(text, file)? {
        if section.kind != GROUP_SECTION_TYPE {
            return Err(ConfigErrorKind::UnknownSectionType {
                section_type: section.kind.clone(),
                expected: format!("'{GROUP_SECTION_TYPE}'"),
            }
            .at(file, section.line));
        }
        validate_config_id(section.id).map_err(|e| section.invalid_id(file, e.to_string()))?;
        section.check_unique(section.id.to_string(), &mut first_lines, file)?;
        let mut group = GroupConfig {
            id: section.id.to_string(),
            nodes: Vec::new(),
            restricted: false,
            nofailback: false,
            comment: None,
        };
        let mut has_nodes = false;
        for entry in &section.entries {
            match parse_group_option(entry.key, entry.value).map_err(|e| e.at(file, entry.line))? {
                GroupOption::Nodes(nodes) => {
                    group.nodes = nodes;
                    has_nodes = true;
                }
                GroupOption::Restricted(flag) => group.restricted = flag,
                GroupOption::Nofailback(flag) => group.nofailback = flag,
                GroupOption::Comment(comment) => group.comment = Some(comment),
            }
        }
        if !has_nodes {
            return Err(ConfigErrorKind::MissingKey {
                section: section.label(),
                field: "nodes".to_string(),
            }
            .at(file, section.line));
        }
        groups.push(group);
    }
    Ok(groups)
}

/// `node[:prio]` as written in files.
pub(crate) fn group_node_text(node: &GroupNode) -> String {
    match node.priority {
        Some(priority) => format!("{}:{priority}", node.node),
        None => node.node.to_string(),
    }
}

/// Writes groups.cfg: `comment`, then `nodes` (comma-joined, in the stored
/// order), then `nofailback` and `restricted` when set.
pub fn write_groups_cfg(groups: &[GroupConfig]) -> String {
    let mut writer = SectionWriter::default();
    for group in groups {
        writer.header(GROUP_SECTION_TYPE, &group.id);
        if let Some(comment) = group.comment.as_deref().filter(|c| !c.is_empty()) {
            writer.entry("comment", comment);
        }
        let nodes: Vec<String> = group.nodes.iter().map(group_node_text).collect();
        writer.entry("nodes", &nodes.join(","));
        if group.nofailback {
            writer.entry("nofailback", "1");
        }
        if group.restricted {
            writer.entry("restricted", "1");
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes() {
        let text = "group: prefer_node1\n\tnodes node1:2 node2;node3\n\trestricted 1\n\tcomment  keep it\n\ngroup: any\n\tnodes node2\n\tnofailback\n";
        let groups = parse_groups_cfg(text, "groups.cfg").unwrap();
        assert_eq!(groups.len(), 2);
        let first = &groups[0];
        assert_eq!(first.id, "prefer_node1");
        assert!(first.restricted && !first.nofailback);
        assert_eq!(first.comment.as_deref(), Some("keep it"));
        let nodes: Vec<String> = first.nodes.iter().map(group_node_text).collect();
        assert_eq!(nodes, ["node1:2", "node2", "node3"]);
        assert!(groups[1].nofailback && !groups[1].restricted);
        assert_eq!(
            write_groups_cfg(&groups),
            "group: prefer_node1\n\tcomment keep it\n\tnodes node1:2,node2,node3\n\trestricted 1\n\ngroup: any\n\tnodes node2\n\tnofailback 1\n\n"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: [(&str, usize, &str); 9] = [
            (
                "group: éa\n\tnodes node1\n",
                1,
                "invalid section id 'éa' for type 'group'",
            ),
            (
                "group: g1\n\trestricted 1\n",
                1,
                "section 'group: g1': missing required key 'nodes'",
            ),
            (
                "group: g1\n\tnodes node1:x\n",
                2,
                "field 'nodes': invalid priority 'x' for node 'node1'",
            ),
            (
                "group: g1\n\tnodes node1\n\tstrict 1\n",
                3,
                "field 'strict': unknown key for section type 'group'",
            ),
            (
                "group: g1\n\tnodes node1\n\trestricted 2\n",
                3,
                "field 'restricted': invalid boolean '2'",
            ),
            (
                "grp: g1\n\tnodes node1\n",
                1,
                "unknown section type 'grp' (expected 'group')",
            ),
            (
                "group: 1g\n\tnodes node1\n",
                1,
                "invalid section id '1g' for type 'group'",
            ),
            (
                "group: g1\n\tnodes a\n\ngroup: g1\n\tnodes b\n",
                4,
                "duplicate section 'group: g1' (first defined on line 1)",
            ),
            ("group: g1\n\tnodes\n", 2, "field 'nodes': missing value"),
        ];
        for (text, line, message) in cases {
            let err = parse_groups_cfg(text, "groups.cfg").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(
                shown.starts_with(&format!("groups.cfg:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }
}
