//! The simulator's JSON form of datacenter.cfg:
//! `{"ha": {"shutdown_policy": "migrate"}, "crs": {"ha": "basic"}, "max_workers": 4}`.
//!
//! The document is walked with serde visitors, so every error carries the
//! line where serde_json found it (the offending key or value). Scalars may
//! be strings, numbers or booleans (`true`/`false` count as 1/0), as in the
//! Proxmox simulator, and go through the same checks as the PVE form.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::datacenter::{
    apply_crs_option, check_fencing, parse_max_workers, parse_shutdown_policy,
};
use super::error::{ConfigError, ConfigErrorKind};
use crate::domain::{CrsOptions, DatacenterOptions, ShutdownPolicy};

/// Parses the JSON datacenter options; an empty (whitespace-only) file
/// gives the defaults. `file` is only used in error messages.
pub fn parse_datacenter_json(text: &str, file: &str) -> Result<DatacenterOptions, ConfigError> {
    if text.trim().is_empty() {
        return Ok(DatacenterOptions::default());
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = ValueSeed {
        slot: Slot::Document,
        path: String::new(),
    };
    seed.deserialize(&mut deserializer)
        .and_then(|parsed| deserializer.end().map(|()| parsed))
        .map(|parsed| {
            let mut options = DatacenterOptions::default();
            apply(&mut options, parsed);
            options
        })
        .map_err(|err| {
            let shown = err.to_string();
            // serde_json appends the position; the line is reported separately.
            let message = match shown.rfind(" at line ") {
                Some(pos) if err.line() > 0 => shown[..pos].to_string(),
                _ => shown,
            };
            ConfigErrorKind::Json(message).at(file, err.line().max(1))
        })
}

/// What a JSON value stands for, by its key path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The top-level object.
    Document,
    /// The `ha` object.
    Ha,
    /// The `crs` object.
    Crs,
    /// `ha.shutdown_policy`.
    ShutdownPolicy,
    /// `max_workers`.
    MaxWorkers,
    /// `fencing`.
    Fencing,
    /// A key of `crs`.
    CrsOption,
    /// A key the enclosing object does not have.
    Unknown,
    /// A key given twice in one object.
    Duplicate,
}

/// What a value contributes to the options.
enum Parsed {
    /// Nothing to store (validated only).
    Nothing,
    /// The shutdown policy.
    Policy(ShutdownPolicy),
    /// The worker limit.
    Workers(u32),
    /// A checked `crs` key and its value.
    Crs(String, String),
    /// An object's contributions.
    Object(Vec<Parsed>),
}

/// Deserializes one value at `path`. Every check runs inside the visitor
/// that serde_json calls for the value itself, so serde_json stamps the
/// error with the value's own line (errors raised later, in an enclosing
/// object's visitor, would get the line of its closing brace).
struct ValueSeed {
    slot: Slot,
    path: String,
}

impl ValueSeed {
    /// The seed for `key` inside an object of kind `parent`.
    fn child(parent: Slot, parent_path: &str, key: &str, duplicate: bool) -> ValueSeed {
        let path = if parent_path.is_empty() {
            key.to_string()
        } else {
            format!("{parent_path}.{key}")
        };
        let slot = match (duplicate, parent, key) {
            (true, _, _) => Slot::Duplicate,
            (_, Slot::Document, "ha") => Slot::Ha,
            (_, Slot::Document, "crs") => Slot::Crs,
            (_, Slot::Document, "max_workers") => Slot::MaxWorkers,
            (_, Slot::Document, "fencing") => Slot::Fencing,
            (_, Slot::Ha, "shutdown_policy") => Slot::ShutdownPolicy,
            (_, Slot::Crs, _) => Slot::CrsOption,
            _ => Slot::Unknown,
        };
        ValueSeed { slot, path }
    }

    /// Checks a scalar given as text.
    fn scalar<E: de::Error>(&self, text: &str) -> Result<Parsed, E> {
        let field = self.path.as_str();
        let result = match self.slot {
            Slot::ShutdownPolicy => parse_shutdown_policy(field, text).map(Parsed::Policy),
            Slot::MaxWorkers => parse_max_workers(field, text).map(Parsed::Workers),
            Slot::Fencing => check_fencing(field, text).map(|()| Parsed::Nothing),
            Slot::CrsOption => {
                let key = field.strip_prefix("crs.").unwrap_or(field);
                apply_crs_option(&mut CrsOptions::default(), key, text)
                    .map(|()| Parsed::Crs(key.to_string(), text.to_string()))
            }
            _ => return Err(self.misplaced(&format!("'{text}'"))),
        };
        result.map_err(E::custom)
    }

    /// The error for a value of the wrong shape (or an unknown/duplicate key).
    fn misplaced<E: de::Error>(&self, got: &str) -> E {
        let field = &self.path;
        E::custom(match self.slot {
            Slot::Unknown => ConfigErrorKind::UnknownKey {
                field: field.clone(),
                section_type: "datacenter".to_string(),
            }
            .to_string(),
            Slot::Duplicate => format!("field '{field}': duplicate key"),
            Slot::Document => format!("expected a JSON object with 'ha', 'crs', 'max_workers' or 'fencing', got {got}"),
            Slot::Ha => format!("field '{field}': expected an object like {{\"shutdown_policy\": \"migrate\"}}, got {got}"),
            Slot::Crs => format!("field '{field}': expected an object like {{\"ha\": \"basic\"}}, got {got}"),
            _ => format!("field '{field}': expected a string, number or boolean, got {got}"),
        })
    }
}

impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value for '{}'", self.path)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Parsed, E> {
        self.scalar(text)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Parsed, E> {
        self.scalar(if flag { "1" } else { "0" })
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Parsed, E> {
        self.scalar(&number.to_string())
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Parsed, E> {
        self.scalar(&number.to_string())
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Parsed, E> {
        self.scalar(&number.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Err(self.misplaced("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<Parsed, A::Error> {
        Err(self.misplaced("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        if !matches!(self.slot, Slot::Document | Slot::Ha | Slot::Crs) {
            return Err(self.misplaced("an object"));
        }
        let mut seen: Vec<String> = Vec::new();
        let mut parts = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = seen.contains(&key);
            let seed = ValueSeed::child(self.slot, &self.path, &key, duplicate);
            parts.push(map.next_value_seed(seed)?);
            seen.push(key);
        }
        Ok(Parsed::Object(parts))
    }
}

/// Stores what a document contributed.
fn apply(options: &mut DatacenterOptions, parsed: Parsed) {
    match parsed {
        Parsed::Nothing => {}
        Parsed::Policy(policy) => options.shutdown_policy = policy,
        Parsed::Workers(workers) => options.max_workers = workers,
        Parsed::Crs(key, text) => {
            // Checked when parsed.
            let _ = apply_crs_option(&mut options.crs, &key, &text);
        }
        Parsed::Object(parts) => parts.into_iter().for_each(|p| apply(options, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_simulator_form() {
        let text = "{\n  \"ha\": { \"shutdown_policy\": \"migrate\" },\n  \"crs\": { \"ha\": \"basic\", \"ha-rebalance-on-start\": 0 },\n  \"max_workers\": 2\n}\n";
        let options = parse_datacenter_json(text, "datacenter.cfg").unwrap();
        assert_eq!(options.shutdown_policy, ShutdownPolicy::Migrate);
        assert_eq!(options.max_workers, 2);
        assert_eq!(
            parse_datacenter_json(" \n", "datacenter.cfg").unwrap(),
            DatacenterOptions::default()
        );
        assert_eq!(
            parse_datacenter_json("{}", "datacenter.cfg").unwrap(),
            DatacenterOptions::default()
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: [(&str, usize, &str); 15] = [
            ("{\n\"crs\": {\n\"ha\": \"basic\",\n\"foo\": 1,\n\"ha-auto-rebalance\": 0\n}\n}", 4, "field 'crs.foo': unknown key for section type 'crs'"),
            ("{\n\"ha\": {\n\"shutdown_policy\": \"freeze\",\n\"shutdown_policy\": \"migrate\"\n}\n}", 4, "field 'ha.shutdown_policy': duplicate key"),
            ("[1]", 1, "expected a JSON object"),
            ("{} {}", 1, "trailing characters"),
            ("{\n\"ha\": {\n\"shutdown_policy\": \"never\"\n}\n}", 3, "field 'ha.shutdown_policy': invalid value 'never'"),
            ("{\n\"ha\": {\"policy\": \"freeze\"}\n}", 2, "field 'ha.policy': unknown key"),
            ("{\"ha\": \"freeze\"}", 1, "field 'ha': expected an object like"),
            ("{\n\n\"crs\": {\"ha\": \"fancy\"}}", 3, "field 'crs.ha': invalid value 'fancy'"),
            ("{\"crs\": {\"ha-rebalance-on-start\": \"maybe\"}}", 1, "field 'crs.ha-rebalance-on-start'"),
            ("{\"crs\": {\"ha-auto-rebalance-method\": \"best\"}}", 1, "field 'crs.ha-auto-rebalance-method': invalid value 'best'"),
            ("{\"max_workers\": 0}", 1, "field 'max_workers': must be at least 1"),
            ("{\"max_workers\": [1]}", 1, "field 'max_workers': expected a string, number or boolean"),
            ("{\n\"cluster\": 1}", 2, "field 'cluster': unknown key"),
            ("{\"max_workers\": 1, \"max_workers\": 2}", 1, "field 'max_workers': duplicate key"),
            ("{\n\"ha\": {\n", 3, "EOF while parsing"),
        ];
        for (text, line, message) in cases {
            let err = parse_datacenter_json(text, "datacenter.cfg").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(
                shown.starts_with(&format!("datacenter.cfg:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }
}
