//! Configuration formats: the section-config text of resources.cfg,
//! groups.cfg and rules.cfg (parse and write, round-trip stable), the
//! datacenter HA options (PVE property-string form and the simulator's
//! JSON form), the conversion of legacy groups into node-affinity rules,
//! and the compilation of rules for the scheduler. No I/O: callers pass
//! text and a file name used in error messages.
//!
//! # Strictness
//!
//! Proxmox's parser logs a warning and carries on for many kinds of bad
//! input (spec section 2.1): it drops an invalid key but keeps the
//! section, skips a section with an unknown type or a bad id, ignores
//! unindented body lines and whitespace-only lines, stores a section that
//! lacks a required key as an empty entry. **Every one of these warnings is
//! an error here**: the whole parse fails with a [`ConfigError`] naming the
//! file, the 1-based line and the field or token, so a typo never silently
//! changes what the cluster does. Also refused: a duplicate section id, a
//! node or SID listed twice in one list. Tolerated: `#` comment lines anywhere, whitespace-only
//! lines *between* sections, CRLF line endings, an upper-case section type
//! (lower-cased, as Proxmox does).
//!
//! See README.md in this directory for the format details.

pub mod compile;
pub mod datacenter;
pub mod datacenter_json;
pub mod error;
pub mod group_conversion;
pub mod groups;
pub mod percent;
pub mod resources;
pub mod rules;
mod section;
pub mod values;

#[cfg(test)]
mod round_trip_tests;

pub use compile::{
    canonicalize_rules, compile_rules, CanonicalRules, CompiledNodeAffinity,
    CompiledResourceAffinity, CompiledRules,
};
pub use datacenter::parse_datacenter_cfg;
pub use datacenter_json::parse_datacenter_json;
pub use error::{ConfigError, ConfigErrorKind};
pub use group_conversion::{effective_failback, migrate_groups, rules_from_groups};
pub use groups::{parse_group_option, parse_groups_cfg, write_groups_cfg, GroupOption};
pub use resources::{
    parse_resource_option, parse_resources_cfg, validate_resource_option, validate_resource_sid,
    write_resources_cfg, ResourceOption,
};
pub use rules::{
    parse_resource_affinity_option, parse_rule_option, parse_rules, parse_rules_cfg, write_rules,
    write_rules_cfg, ResourceAffinityOption, RuleOption,
};
