//! Value parsers shared by the section types: booleans, integers, strings,
//! config ids, node-priority lists and SID lists. Each names the field in
//! its error.

use std::collections::BTreeSet;

use super::error::ConfigErrorKind;
use crate::domain::error::validate_config_id;
use crate::domain::{NodeName, Sid};

/// Longest accepted `comment`, in characters (Proxmox's schema limit).
pub const MAX_COMMENT_CHARS: usize = 4096;

/// The value of a key that needs one.
pub fn require_value<'a>(field: &str, value: Option<&'a str>) -> Result<&'a str, ConfigErrorKind> {
    value.ok_or_else(|| ConfigErrorKind::MissingValue {
        field: field.to_string(),
    })
}

/// A boolean: exactly `0` or `1`; a key without value means `1`.
pub fn parse_bool(field: &str, value: Option<&str>) -> Result<bool, ConfigErrorKind> {
    match value {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(ConfigErrorKind::invalid(
            field,
            format!("invalid boolean '{other}': expected 0 or 1"),
        )),
    }
}

/// A non-negative decimal integer that fits `u32`.
pub fn parse_u32(field: &str, value: Option<&str>) -> Result<u32, ConfigErrorKind> {
    let text = require_value(field, value)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigErrorKind::invalid(
            field,
            format!("invalid integer '{text}'"),
        ));
    }
    text.parse().map_err(|_| {
        ConfigErrorKind::invalid(
            field,
            format!("integer '{text}' out of range (0..={})", u32::MAX),
        )
    })
}

/// A non-negative decimal integer in `range` (the documented range of the
/// field), so no later arithmetic on it can overflow.
pub fn parse_u32_in(
    field: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigErrorKind> {
    let number = parse_u32(field, value)?;
    if range.contains(&number) {
        Ok(number)
    } else {
        Err(ConfigErrorKind::invalid(
            field,
            format!(
                "integer '{number}' out of range ({}..={})",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// A single-line string of at most [`MAX_COMMENT_CHARS`] characters.
pub fn parse_comment(field: &str, value: Option<&str>) -> Result<String, ConfigErrorKind> {
    let text = require_value(field, value)?;
    check_comment(field, text)?;
    Ok(text.to_string())
}

/// Checks the length and single-line rule of a comment.
pub fn check_comment(field: &str, text: &str) -> Result<(), ConfigErrorKind> {
    if text.contains(['\n', '\r']) {
        return Err(ConfigErrorKind::invalid(
            field,
            "must not contain line breaks",
        ));
    }
    check_comment_length(field, text)
}

/// Checks the length limit of a comment.
pub fn check_comment_length(field: &str, text: &str) -> Result<(), ConfigErrorKind> {
    let chars = text.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(ConfigErrorKind::invalid(
            field,
            format!("too long ({chars} characters, at most {MAX_COMMENT_CHARS})"),
        ));
    }
    Ok(())
}

/// A config id (`^[A-Za-z][A-Za-z0-9_-]+$`), e.g. a group name.
pub fn parse_config_id(field: &str, value: Option<&str>) -> Result<String, ConfigErrorKind> {
    let text = require_value(field, value)?;
    validate_config_id(text).map_err(|e| ConfigErrorKind::invalid(field, e.to_string()))?;
    Ok(text.to_string())
}

/// Splits a list on runs of `,`, `;` and whitespace, dropping empty items.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|item| !item.is_empty())
}

/// A `node[:prio]` list (groups `nodes`, rules `nodes`), in written order.
/// Refuses an empty list and a node listed twice.
pub fn parse_node_list(
    field: &str,
    value: Option<&str>,
) -> Result<Vec<(NodeName, Option<u32>)>, ConfigErrorKind> {
    let text = require_value(field, value)?;
    let mut nodes: Vec<(NodeName, Option<u32>)> = Vec::new();
    for item in split_list(text) {
        let (name, priority) = match item.split_once(':') {
            Some((name, prio)) => (name, Some(prio)),
            None => (item, None),
        };
        let node: NodeName = name.parse().map_err(|_| {
            ConfigErrorKind::invalid(field, format!("invalid node name '{name}' in '{item}'"))
        })?;
        let priority = match priority {
            Some(prio) => Some(parse_u32(field, Some(prio)).map_err(|_| {
                ConfigErrorKind::invalid(
                    field,
                    format!("invalid priority '{prio}' for node '{name}': expected a non-negative integer"),
                )
            })?),
            None => None,
        };
        if nodes.iter().any(|(known, _)| *known == node) {
            return Err(ConfigErrorKind::invalid(
                field,
                format!("node '{name}' listed twice"),
            ));
        }
        nodes.push((node, priority));
    }
    if nodes.is_empty() {
        return Err(ConfigErrorKind::invalid(field, "empty node list"));
    }
    Ok(nodes)
}

/// A SID list (rules `resources`): each `^[a-z]+:\S+$`; refuses an empty
/// list and a SID listed twice.
pub fn parse_sid_list(field: &str, value: Option<&str>) -> Result<BTreeSet<Sid>, ConfigErrorKind> {
    let text = require_value(field, value)?;
    let mut sids = BTreeSet::new();
    for item in split_list(text) {
        let sid: Sid = item.parse().map_err(|e: crate::domain::DomainError| {
            ConfigErrorKind::invalid(field, e.to_string())
        })?;
        if !sids.insert(sid) {
            return Err(ConfigErrorKind::invalid(
                field,
                format!("resource '{item}' listed twice"),
            ));
        }
    }
    if sids.is_empty() {
        return Err(ConfigErrorKind::invalid(field, "empty resource list"));
    }
    Ok(sids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ConfigErrorKind) -> String {
        err.to_string()
    }

    #[test]
    fn booleans() {
        assert!(parse_bool("strict", None).unwrap());
        assert!(parse_bool("strict", Some("1")).unwrap());
        assert!(!parse_bool("strict", Some("0")).unwrap());
        assert_eq!(
            message(parse_bool("strict", Some("yes")).unwrap_err()),
            "field 'strict': invalid boolean 'yes': expected 0 or 1"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u32("max_restart", Some("007")).unwrap(), 7);
        for bad in ["abc", "-1", "+1", "1.5", ""] {
            assert_eq!(
                message(parse_u32("max_restart", Some(bad)).unwrap_err()),
                format!("field 'max_restart': invalid integer '{bad}'")
            );
        }
        assert!(
            message(parse_u32("max_restart", Some("99999999999")).unwrap_err())
                .contains("out of range")
        );
        assert_eq!(
            message(parse_u32("max_restart", None).unwrap_err()),
            "field 'max_restart': missing value"
        );
    }

    #[test]
    fn bounded_integers() {
        assert_eq!(parse_u32_in("max_restart", Some("10"), 0..=10).unwrap(), 10);
        assert_eq!(
            message(parse_u32_in("max_restart", Some("11"), 0..=10).unwrap_err()),
            "field 'max_restart': integer '11' out of range (0..=10)"
        );
        assert!(parse_u32_in("max_workers", Some("0"), 1..=10).is_err());
    }

    #[test]
    fn comments() {
        assert_eq!(parse_comment("comment", Some("a b")).unwrap(), "a b");
        let long = "x".repeat(MAX_COMMENT_CHARS + 1);
        assert!(message(parse_comment("comment", Some(&long)).unwrap_err())
            .starts_with("field 'comment': too long"));
        assert!(parse_comment("comment", Some(&long[1..])).is_ok());
    }

    #[test]
    fn node_lists() {
        let nodes = parse_node_list("nodes", Some("node1:2, node2;node3:0  node4")).unwrap();
        let shown: Vec<String> = nodes.iter().map(|(n, p)| format!("{n}={p:?}")).collect();
        assert_eq!(
            shown,
            ["node1=Some(2)", "node2=None", "node3=Some(0)", "node4=None"]
        );
        let cases = [
            ("node_1", "invalid node name 'node_1'"),
            ("node1:x", "invalid priority 'x' for node 'node1'"),
            ("node1:-1", "invalid priority '-1'"),
            ("node1,node1:2", "node 'node1' listed twice"),
            (" , ", "empty node list"),
        ];
        for (text, reason) in cases {
            let shown = message(parse_node_list("nodes", Some(text)).unwrap_err());
            assert!(shown.starts_with("field 'nodes': "), "{shown}");
            assert!(shown.contains(reason), "{shown}");
        }
    }

    #[test]
    fn sid_lists() {
        let sids = parse_sid_list("resources", Some("vm:102,ct:101 exec:web")).unwrap();
        let shown: Vec<&str> = sids.iter().map(Sid::as_str).collect();
        assert_eq!(shown, ["ct:101", "exec:web", "vm:102"]);
        for (text, reason) in [
            ("vm", "invalid SID 'vm'"),
            ("vm:1,vm:1", "resource 'vm:1' listed twice"),
            (";", "empty resource list"),
        ] {
            let shown = message(parse_sid_list("resources", Some(text)).unwrap_err());
            assert!(shown.starts_with("field 'resources': "), "{shown}");
            assert!(shown.contains(reason), "{shown}");
        }
    }
}
