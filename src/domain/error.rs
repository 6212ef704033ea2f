//! Validation errors for domain values.

/// Why a domain value (SID, node name, option value) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A SID that does not match `type:name` (see [`super::sid`] for the
    /// character set and lengths). Holds the text as [`shown`] prints it.
    #[error("invalid SID '{0}': expected '<type>:<name>' with a type of 1 to {kind_max} lower-case letters and a name of 1 to {name_max} characters of [A-Za-z0-9._:@+-]", kind_max = super::sid::SID_KIND_MAX, name_max = super::sid::SID_NAME_MAX)]
    InvalidSid(String),
    /// A node name that does not match the host-name rule.
    #[error("invalid node name '{0}': expected 1 to {max} characters of [A-Za-z0-9-], not starting or ending with '-'", max = super::node::NODE_NAME_MAX)]
    InvalidNodeName(String),
    /// A config id (group or rule id) that does not match `^[A-Za-z][A-Za-z0-9_-]+$`.
    #[error("invalid id '{0}': must start with a letter and have 2 to {max} characters of [A-Za-z0-9_-]", max = CONFIG_ID_MAX)]
    InvalidConfigId(String),
    /// A value outside the accepted set for a named field.
    #[error("invalid value '{value}' for '{field}': {reason}")]
    InvalidValue {
        /// The field (property key) the value was given for.
        field: String,
        /// The rejected value.
        value: String,
        /// What was expected instead.
        reason: String,
    },
}

/// Longest config id (group id, rule id). Proxmox sets no limit; ids are
/// short names in practice, and a bound keeps every id usable in a URL.
pub const CONFIG_ID_MAX: usize = 128;

/// Longest excerpt of a rejected value quoted in an error message.
const SHOWN_MAX: usize = 64;

/// A rejected value as error messages quote it: control characters (e.g.
/// terminal escapes) escaped, and cut after 64 characters, so an error
/// about a 100 kB or hostile name stays one readable line.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_MAX {
            out.push_str(&format!("... ({} bytes)", text.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a config id (group id, rule id): `^[A-Za-z][A-Za-z0-9_-]+$`, at
/// most [`CONFIG_ID_MAX`] characters.
pub fn validate_config_id(id: &str) -> Result<(), DomainError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    // `first_ok` first: it makes byte 1 a char boundary for the slice.
    let rest_ok = first_ok
        && id.len() >= 2
        && id[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if first_ok && rest_ok && id.len() <= CONFIG_ID_MAX {
        Ok(())
    } else {
        Err(DomainError::InvalidConfigId(shown(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_ids() {
        assert!(validate_config_id("ab").is_ok());
        assert!(validate_config_id("group_1-x").is_ok());
        assert!(validate_config_id("a").is_err());
        assert!(validate_config_id("1ab").is_err());
        assert!(validate_config_id("a b").is_err());
        assert!(validate_config_id("éa").is_err());
        assert!(validate_config_id("aé").is_err());
        assert!(validate_config_id(&"a".repeat(CONFIG_ID_MAX)).is_ok());
        assert!(validate_config_id(&"a".repeat(CONFIG_ID_MAX + 1)).is_err());
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = shown(&"x".repeat(1000));
        assert!(long.starts_with(&"x".repeat(64)));
        assert!(long.ends_with("... (1000 bytes)"), "{long}");
    }
}
