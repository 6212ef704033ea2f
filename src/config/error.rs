//! Errors of the configuration parsers.
//!
//! A [`ConfigError`] always carries the file name given by the caller and
//! the 1-based line of the offending input; its [`ConfigErrorKind`] names
//! the field (key) or token. Displayed as `<file>:<line>: <kind>`, e.g.
//! `resources.cfg:7: field 'max_restart': invalid integer 'abc'`.

/// What is wrong with one piece of configuration input, without its
/// location. Option validators used by the CLI/API return this directly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// A value that does not fit the field's type or format.
    #[error("field '{field}': {reason}")]
    InvalidValue {
        /// The key the value was given for.
        field: String,
        /// What is wrong, quoting the rejected token.
        reason: String,
    },
    /// A non-boolean key written without a value.
    #[error("field '{field}': missing value")]
    MissingValue {
        /// The key.
        field: String,
    },
    /// A key the section type does not know.
    #[error("field '{field}': unknown key for section type '{section_type}'")]
    UnknownKey {
        /// The key.
        field: String,
        /// The type of the section it appeared in.
        section_type: String,
    },
    /// The same key twice in one section.
    #[error("field '{field}': duplicate key (first set on line {first_line})")]
    DuplicateKey {
        /// The key.
        field: String,
        /// Where it was first set.
        first_line: usize,
    },
    /// A required key missing from a section (reported at the header line).
    #[error("section '{section}': missing required key '{field}'")]
    MissingKey {
        /// The section as `<type>: <id>`.
        section: String,
        /// The missing key.
        field: String,
    },
    /// A column-0 line that is not `<type>: <id>`.
    #[error("invalid section header '{text}': expected '<type>: <id>'")]
    BadHeader {
        /// The line as written.
        text: String,
    },
    /// A line of a `key: value` file that is not of that form.
    #[error("invalid line '{text}': expected {expected}")]
    BadLine {
        /// The line as written.
        text: String,
        /// The expected form.
        expected: String,
    },
    /// A section id the section type does not accept.
    #[error("invalid section id '{id}' for type '{section_type}': {reason}")]
    InvalidSectionId {
        /// The section type.
        section_type: String,
        /// The rejected id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A section type this file does not have.
    #[error("unknown section type '{section_type}' (expected {expected})")]
    UnknownSectionType {
        /// The type as written (lower-cased).
        section_type: String,
        /// The accepted types.
        expected: String,
    },
    /// A section id defined twice.
    #[error("duplicate section '{section}' (first defined on line {first_line})")]
    DuplicateSection {
        /// The section as `<type>: <id>`.
        section: String,
        /// The line of the first definition.
        first_line: usize,
    },
    /// A line inside a section body that does not start with whitespace
    /// (often a header written without an empty line before it).
    #[error("line '{text}' inside section '{section}' is not indented: body lines start with whitespace, and an empty line must end a section before the next header")]
    UnindentedLine {
        /// The section the line would belong to.
        section: String,
        /// The line as written.
        text: String,
    },
    /// An indented line before any section header.
    #[error("line '{text}' is outside any section")]
    OrphanLine {
        /// The line as written.
        text: String,
    },
    /// A whitespace-only line inside a section: it does not end the
    /// section (only an empty line does), so it is refused as ambiguous.
    #[error("whitespace-only line inside section '{section}': end a section with an empty line")]
    WhitespaceLine {
        /// The section.
        section: String,
    },
    /// Input that is valid for Proxmox but not implemented here yet.
    #[error("{0} not supported yet")]
    NotSupported(String),
    /// A JSON document that is malformed or has wrong types/unknown keys;
    /// the message names the key or token.
    #[error("{0}")]
    Json(String),
}

impl ConfigErrorKind {
    /// Shorthand for [`ConfigErrorKind::InvalidValue`].
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ConfigErrorKind::InvalidValue {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// Attaches a location.
    pub fn at(self, file: &str, line: usize) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line,
            kind: self,
        }
    }
}

/// A configuration error with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ConfigError {
    /// The file name as given by the caller.
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_field() {
        let err =
            ConfigErrorKind::invalid("max_restart", "invalid integer 'abc'").at("resources.cfg", 7);
        assert_eq!(
            err.to_string(),
            "resources.cfg:7: field 'max_restart': invalid integer 'abc'"
        );
    }
}
