//! Reading and validating an agent's parameters, naming the field at fault.

use std::collections::{BTreeMap, BTreeSet};

use super::AgentError;

/// Hands out parameters by name and remembers which were used, so that a
/// misspelt parameter is reported instead of silently ignored.
pub(crate) struct ParamReader<'a> {
    resource: &'a str,
    params: &'a BTreeMap<String, String>,
    used: BTreeSet<&'a str>,
}

impl<'a> ParamReader<'a> {
    pub fn new(resource: &'a str, params: &'a BTreeMap<String, String>) -> Self {
        ParamReader {
            resource,
            params,
            used: BTreeSet::new(),
        }
    }

    /// A parameter that must be present and not blank.
    pub fn required(&mut self, key: &'a str) -> Result<&'a str, AgentError> {
        match self.optional(key)? {
            Some(value) => Ok(value),
            None => Err(AgentError::MissingParameter {
                resource: self.resource.to_string(),
                param: key.to_string(),
            }),
        }
    }

    /// A parameter that may be absent; present but blank is an error.
    pub fn optional(&mut self, key: &'a str) -> Result<Option<&'a str>, AgentError> {
        self.used.insert(key);
        match self.params.get(key) {
            None => Ok(None),
            Some(value) if value.trim().is_empty() => Err(self.invalid(key, "must not be empty")),
            Some(value) => Ok(Some(value.as_str())),
        }
    }

    /// An error for `key` with the given reason.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> AgentError {
        AgentError::InvalidParameter {
            resource: self.resource.to_string(),
            param: key.to_string(),
            reason: reason.into(),
        }
    }

    /// Fails on the first parameter that was never asked for.
    pub fn reject_unknown(&self) -> Result<(), AgentError> {
        match self.params.keys().find(|k| !self.used.contains(k.as_str())) {
            Some(key) => Err(self.invalid(key, "unknown parameter for this agent")),
            None => Ok(()),
        }
    }
}
