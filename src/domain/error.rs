//! Validation errors for domain values.

/// Why a domain value (SID, node name, option value) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A SID that does not match `type:name`.
    #[error("invalid SID '{0}': expected '<type>:<name>' with a lower-case type")]
    InvalidSid(String),
    /// A node name that does not match the host-name rule.
    #[error("invalid node name '{0}'")]
    InvalidNodeName(String),
    /// A config id (group or rule id) that does not match `^[A-Za-z][A-Za-z0-9_-]+$`.
    #[error("invalid id '{0}': must start with a letter and have at least two characters of [A-Za-z0-9_-]")]
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

/// Checks a config id (group id, rule id): `^[A-Za-z][A-Za-z0-9_-]+$`.
pub fn validate_config_id(id: &str) -> Result<(), DomainError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    // `first_ok` first: it makes byte 1 a char boundary for the slice.
    let rest_ok = first_ok
        && id.len() >= 2
        && id[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(DomainError::InvalidConfigId(id.to_string()))
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
    }
}
