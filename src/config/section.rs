//! The section-config text format shared by resources.cfg, groups.cfg and
//! rules.cfg (spec section 2.1): splitting text into sections of raw
//! key/value entries, and writing sections back.
//!
//! This layer knows nothing about keys or value types; the per-file parsers
//! validate those. It is strict where Proxmox only warns: see the module
//! documentation of [`crate::config`].

use super::error::{ConfigError, ConfigErrorKind};

/// One `<key>[ <value>]` line of a section body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry<'a> {
    /// The key (first token of the line).
    pub key: &'a str,
    /// The rest of the line, trimmed; `None` when the key stands alone.
    pub value: Option<&'a str>,
    /// 1-based line number.
    pub line: usize,
}

/// One section: the header and its body entries in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSection<'a> {
    /// The section type, lower-cased.
    pub kind: String,
    /// The section id as written.
    pub id: &'a str,
    /// 1-based line number of the header.
    pub line: usize,
    /// The body entries; keys are unique.
    pub entries: Vec<RawEntry<'a>>,
}

impl RawSection<'_> {
    /// `<type>: <id>`, for messages.
    pub fn label(&self) -> String {
        format!("{}: {}", self.kind, self.id)
    }

    /// The error for a section id that fails validation for `reason`.
    pub fn invalid_id(&self, file: &str, reason: impl Into<String>) -> ConfigError {
        ConfigErrorKind::InvalidSectionId {
            section_type: self.kind.clone(),
            id: self.id.to_string(),
            reason: reason.into(),
        }
        .at(file, self.line)
    }

    /// Records this section under `key` in `seen` (key -> header line) and
    /// refuses a key that an earlier section of the file already used.
    pub fn check_unique<K: Ord>(
        &self,
        key: K,
        seen: &mut std::collections::BTreeMap<K, usize>,
        file: &str,
    ) -> Result<(), ConfigError> {
        match seen.insert(key, self.line) {
            Some(first_line) => Err(ConfigErrorKind::DuplicateSection {
                section: self.label(),
                first_line,
            }
            .at(file, self.line)),
            None => Ok(()),
        }
    }
}

/// Splits `text` into sections.
///
/// Comment lines (first non-blank character `#`) are skipped everywhere and
/// never end a section; an empty line ends a section; a trailing `\r` is
/// dropped from every line so CRLF files read like LF files. Whitespace-only
/// lines are tolerated between sections but refused inside one.
pub(crate) fn split_sections<'a>(
    text: &'a str,
    file: &str,
) -> Result<Vec<RawSection<'a>>, ConfigError> {
    let mut sections = Vec::new();
    let mut current: Option<RawSection<'a>> = None;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.is_empty() {
            sections.extend(current.take());
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        let blank = line.trim().is_empty();
        match current.as_mut() {
            Some(section) => {
                if blank {
                    return Err(ConfigErrorKind::WhitespaceLine {
                        section: section.label(),
                    }
                    .at(file, line_no));
                }
                if !indented {
                    return Err(ConfigErrorKind::UnindentedLine {
                        section: section.label(),
                        text: line.to_string(),
                    }
                    .at(file, line_no));
                }
                let entry = split_entry(line.trim(), line_no);
                if let Some(first) = section.entries.iter().find(|e| e.key == entry.key) {
                    return Err(ConfigErrorKind::DuplicateKey {
                        field: entry.key.to_string(),
                        first_line: first.line,
                    }
                    .at(file, line_no));
                }
                section.entries.push(entry);
            }
            None => {
                if blank {
                    continue;
                }
                if indented {
                    return Err(ConfigErrorKind::OrphanLine {
                        text: line.to_string(),
                    }
                    .at(file, line_no));
                }
                let (kind, id) = split_header(line).ok_or_else(|| {
                    ConfigErrorKind::BadHeader {
                        text: line.to_string(),
                    }
                    .at(file, line_no)
                })?;
                current = Some(RawSection {
                    kind: kind.to_ascii_lowercase(),
                    id,
                    line: line_no,
                    entries: Vec::new(),
                });
            }
        }
    }
    sections.extend(current);
    Ok(sections)
}

/// Splits a trimmed, non-empty body line into key and optional value.
fn split_entry(body: &str, line: usize) -> RawEntry<'_> {
    match body.split_once(char::is_whitespace) {
        Some((key, rest)) => {
            let value = rest.trim_start();
            RawEntry {
                key,
                value: (!value.is_empty()).then_some(value),
                line,
            }
        }
        None => RawEntry {
            key: body,
            value: None,
            line,
        },
    }
}

/// Parses a header `<type>:<ws>*<id><ws>*` into (type, id), following the
/// greedy match of Proxmox's `^(\S+):\s*(\S+)\s*$`.
fn split_header(line: &str) -> Option<(&str, &str)> {
    let mut tokens = line.split_whitespace();
    let first = tokens.next()?;
    let second = tokens.next();
    if tokens.next().is_some() {
        return None;
    }
    let (kind, id) = match second {
        Some(id) => (first.strip_suffix(':')?, id),
        // `type:id` without a space: the last colon that still leaves an id.
        None => {
            let colon = first
                .rmatch_indices(':')
                .map(|(pos, _)| pos)
                .find(|pos| pos + 1 < first.len())?;
            (&first[..colon], &first[colon + 1..])
        }
    };
    (!kind.is_empty()).then_some((kind, id))
}

/// Builds section-config text in the writer format of spec section 2.1.
#[derive(Debug, Default)]
pub(crate) struct SectionWriter {
    out: String,
}

impl SectionWriter {
    /// Starts a section `<kind>: <id>`; every section is followed by an
    /// empty line, as Proxmox writes it.
    pub fn header(&mut self, kind: &str, id: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(kind);
        self.out.push_str(": ");
        self.out.push_str(&single_line(id));
        self.out.push('\n');
    }

    /// Writes `\t<key> <value>`.
    pub fn entry(&mut self, key: &str, value: &str) {
        self.out.push('\t');
        self.out.push_str(key);
        self.out.push(' ');
        self.out.push_str(&single_line(value));
        self.out.push('\n');
    }

    /// Writes a key without a value (`\t<key>`).
    pub fn flag(&mut self, key: &str) {
        self.out.push('\t');
        self.out.push_str(key);
        self.out.push('\n');
    }

    /// The finished text.
    pub fn finish(mut self) -> String {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out
    }
}

/// Line breaks in a value would let it inject keys or sections; validated
/// input never has them, and the writer flattens them defensively.
fn single_line(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\n', '\r']) {
        value.replace(['\n', '\r'], " ").into()
    } else {
        value.into()
    }
}

/// `0`/`1` for booleans in files.
pub(crate) fn bool_text(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries = Vec<(String, Option<String>)>;

    fn kinds(text: &str) -> Vec<(String, String, usize, Entries)> {
        split_sections(text, "t.cfg")
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.kind,
                    s.id.to_string(),
                    s.line,
                    s.entries
                        .into_iter()
                        .map(|e| (e.key.to_string(), e.value.map(str::to_string)))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn splits_sections_keys_and_values() {
        let text = "# top comment\nvm: 501\n\tstate started\n  # inner comment\n\tcomment a  b  \n\nCT:102\n\tdisable\n";
        let got = kinds(text);
        assert_eq!(
            got,
            vec![
                (
                    "vm".into(),
                    "501".into(),
                    2,
                    vec![
                        ("state".into(), Some("started".into())),
                        ("comment".into(), Some("a  b".into()))
                    ]
                ),
                ("ct".into(), "102".into(), 7, vec![("disable".into(), None)]),
            ]
        );
    }

    #[test]
    fn header_forms() {
        assert_eq!(split_header("vm: 101"), Some(("vm", "101")));
        assert_eq!(split_header("vm:101  "), Some(("vm", "101")));
        assert_eq!(split_header("exec: web:8080"), Some(("exec", "web:8080")));
        assert_eq!(split_header("a:b:c"), Some(("a:b", "c")));
        assert_eq!(split_header("vm:"), None);
        assert_eq!(split_header(": 101"), None);
        assert_eq!(split_header("vm 101"), None);
        assert_eq!(split_header("vm: 1 01"), None);
    }

    #[test]
    fn crlf_and_blank_lines_between_sections() {
        let got = kinds("vm: 101\r\n\tstate stopped\r\n\r\n   \nvm: 102\r\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].3, vec![("state".into(), Some("stopped".into()))]);
    }

    #[test]
    fn strict_errors_carry_line_numbers() {
        let cases = [
            (
                "vm: 101\n\tstate a\n \t\n",
                3,
                "whitespace-only line inside section 'vm: 101'",
            ),
            (
                "vm: 101\nvm: 102\n",
                2,
                "line 'vm: 102' inside section 'vm: 101' is not indented",
            ),
            (
                "\tstate started\n",
                1,
                "line '\tstate started' is outside any section",
            ),
            (
                "just words here\n",
                1,
                "invalid section header 'just words here'",
            ),
            (
                "vm: 101\n\tstate a\n\tstate b\n",
                3,
                "field 'state': duplicate key (first set on line 2)",
            ),
        ];
        for (text, line, message) in cases {
            let err = split_sections(text, "x.cfg").unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("x.cfg:{line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown}");
        }
    }

    #[test]
    fn writer_format() {
        let mut w = SectionWriter::default();
        w.header("vm", "501");
        w.entry("comment", "two\nlines");
        w.flag("disable");
        w.header("ct", "102");
        assert_eq!(
            w.finish(),
            "vm: 501\n\tcomment two lines\n\tdisable\n\nct: 102\n\n"
        );
        assert_eq!(SectionWriter::default().finish(), "");
    }
}
