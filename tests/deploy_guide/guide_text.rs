//! The deploy guide's text as the test reads it: its commands (with the
//! node they run on and their sample output) and the shape comparison of
//! sample and real output. The conventions are in `tests/deploy_guide.rs`.

/// Which node(s) a command runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum On {
    Node(usize),
    Every,
}

/// One command of the guide.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line in README.md.
    pub line: usize,
    /// The `##` heading it is under.
    pub heading: String,
    pub on: On,
    pub command: String,
    pub sample: Vec<String>,
}

/// Reads the guide's commands (see the module documentation).
pub fn parse_guide(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut heading = String::new();
    let mut in_sh = false;
    let mut in_other = false;
    let mut pending: Option<Step> = None;
    let mut continued: Option<Step> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let trimmed = raw.trim_end();
        if !in_sh && !in_other {
            if let Some(h) = trimmed.strip_prefix("## ") {
                heading = h.to_string();
            }
            if trimmed.trim_start() == "```sh" {
                in_sh = true;
            } else if trimmed.trim_start().starts_with("```") {
                in_other = true;
            }
            continue;
        }
        if trimmed.trim_start().starts_with("```") {
            if let Some(s) = continued.take().or(pending.take()) {
                steps.push(s);
            }
            in_sh = false;
            in_other = false;
            continue;
        }
        if in_other {
            continue;
        }
        if let Some(mut step) = continued.take() {
            let (part, more) = split_continuation(trimmed.trim());
            step.command.push(' ');
            step.command.push_str(part);
            if more {
                continued = Some(step);
            } else {
                pending = Some(step);
            }
            continue;
        }
        let prompt = trimmed.strip_prefix("node").and_then(|rest| {
            let (n, cmd) = rest.split_once("# ")?;
            Some((n.parse::<usize>().ok()?, cmd))
        });
        let (on, command) = match prompt {
            Some((n, cmd)) => (On::Node(n - 1), cmd),
            None if heading.contains("(every node)")
                && !matches!(
                    pending,
                    Some(Step {
                        on: On::Node(_),
                        ..
                    })
                ) =>
            {
                if trimmed.trim().is_empty() || trimmed.trim_start().starts_with('#') {
                    continue;
                }
                (On::Every, trimmed.trim())
            }
            None => {
                match pending.as_mut() {
                    Some(step) if !trimmed.trim().is_empty() => step.sample.push(trimmed.to_string()),
                    Some(_) => {}
                    None => assert!(
                        trimmed.trim().is_empty(),
                        "README.md:{line_no}: a command without a 'nodeN# ' prompt outside an '(every node)' section: {trimmed}"
                    ),
                }
                continue;
            }
        };
        if let Some(s) = pending.take() {
            steps.push(s);
        }
        let (part, more) = split_continuation(command.trim());
        let step = Step {
            line: line_no,
            heading: heading.clone(),
            on,
            command: part.to_string(),
            sample: Vec::new(),
        };
        if more {
            continued = Some(step);
        } else {
            pending = Some(step);
        }
    }
    steps
}

/// A command line without its trailing `\`, and whether it continues.
fn split_continuation(line: &str) -> (&str, bool) {
    match line.strip_suffix('\\') {
        Some(part) => (part.trim_end(), true),
        None => (line, false),
    }
}

/// A piece of a sample line.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(char),
    Number,
    Word,
    Any,
}

/// A sample line as pieces (whitespace already collapsed).
fn pieces(sample: &str) -> Vec<Piece> {
    let chars: Vec<char> = sample.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if chars[i..].starts_with(&['.', '.', '.']) {
            out.push(Piece::Any);
            i += 3;
        } else if c.is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphabetic()) {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Piece::Number);
        } else if c == '<' {
            match chars[i..].iter().position(|&d| d == '>') {
                Some(end)
                    if end > 1
                        && chars[i + 1..i + end]
                            .iter()
                            .all(|d| d.is_ascii_alphanumeric() || *d == '-' || *d == '_') =>
                {
                    out.push(Piece::Word);
                    i += end + 1;
                }
                _ => {
                    out.push(Piece::Text(c));
                    i += 1;
                }
            }
        } else {
            out.push(Piece::Text(c));
            i += 1;
        }
    }
    out
}

/// Whether `text` has the shape of `pattern`.
fn matches(pattern: &[Piece], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(c), rest)) => text.first() == Some(c) && matches(rest, &text[1..]),
        Some((Piece::Number, rest)) => {
            let n = text.iter().take_while(|c| c.is_ascii_digit()).count();
            (1..=n).rev().any(|k| matches(rest, &text[k..]))
        }
        Some((Piece::Word, rest)) => {
            let n = text.iter().take_while(|c| !c.is_whitespace()).count();
            (1..=n).rev().any(|k| matches(rest, &text[k..]))
        }
        Some((Piece::Any, rest)) => (0..=text.len()).any(|k| matches(rest, &text[k..])),
    }
}

fn collapse(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why `output` does not have the shape of `sample`, if it does not.
pub fn shape_mismatch(sample: &[String], output: &str) -> Option<String> {
    let open = sample.iter().any(|l| l.trim() == "...");
    let patterns: Vec<Vec<Piece>> = sample
        .iter()
        .filter(|l| l.trim() != "...")
        .map(|l| pieces(&collapse(l)))
        .collect();
    let lines: Vec<Vec<char>> = output
        .lines()
        .map(collapse)
        .filter(|l| !l.is_empty())
        .map(|l| l.chars().collect())
        .collect();
    let mut next = 0;
    for (k, p) in patterns.iter().enumerate() {
        match (next..lines.len()).find(|&j| matches(p, &lines[j])) {
            Some(j) => next = j + 1,
            None => {
                return Some(format!(
                    "no output line (in order) has the shape of sample line {}",
                    k + 1
                ))
            }
        }
    }
    if !open {
        if let Some(l) = lines
            .iter()
            .find(|l| !patterns.iter().any(|p| matches(p, l)))
        {
            return Some(format!(
                "output line '{}' has no sample line of its shape",
                l.iter().collect::<String>()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn numbers_placeholders_and_ellipses_match_what_varies_only() {
        let sample = lines(&[
            "node node<k> (id 1, leader)",
            "member node1 (id 1, 1.2.3.4:7400, voter)",
        ]);
        let real = "node node2 (id 12, leader)\nmember node1 (id 1, 127.0.0.1:4711, voter)\n";
        assert_eq!(shape_mismatch(&sample, real), None);
        // Node names are literal: a digit after a letter is not a number.
        assert!(shape_mismatch(&lines(&["lrm node1 (idle)"]), "lrm node2 (idle)").is_some());
        // A changed word breaks it.
        assert!(shape_mismatch(
            &lines(&["node node<k> (id 1, leader)"]),
            "node node2 (id 1, follower)"
        )
        .is_some());
        // An unknown extra line breaks it, unless the sample allows any.
        assert!(shape_mismatch(&lines(&["quorum OK"]), "quorum OK\nmaster x\n").is_some());
        assert_eq!(
            shape_mismatch(&lines(&["quorum OK", "..."]), "quorum OK\nmaster x\n"),
            None
        );
        assert_eq!(
            shape_mismatch(
                &lines(&["... listening socket=/x ..."]),
                "t INFO listening socket=/x b=1"
            ),
            None
        );
    }

    #[test]
    fn prompts_samples_and_every_node_sections_are_read() {
        let text = "## 6. Mux (every node)\n\n```sh\nsystemctl start a \\\n    --now\n```\n\n```sh\nnode1# ha-manager status\nquorum OK\n\nnode2# true\n```\n\n```\nnot run\n```\n";
        let steps = parse_guide(text);
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert_eq!(
            (steps[0].on, steps[0].command.as_str()),
            (On::Every, "systemctl start a --now")
        );
        assert_eq!(
            (steps[1].on, steps[1].sample.clone()),
            (On::Node(0), lines(&["quorum OK"]))
        );
        assert_eq!((steps[2].on, steps[2].line), (On::Node(1), 12));
    }
}
