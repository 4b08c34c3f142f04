//! YAML with line numbers, for the files people write by hand: the config and the routes.
//!
//! Serde's YAML deserializers stop at the first problem and know only where the parser was
//! when it stopped, so a semantic mistake ("this route sends to a channel that does not
//! exist") cannot be placed on a line. Here the file is read into a small tree of [`Node`]s
//! that each remember their line and column; the config and routes readers walk that tree,
//! collect every [`Problem`] they find, and report them all at once.
//!
//! Scalars keep their text and whether they were quoted; a reader decides what type it
//! wants (a duration, a port, a name), and [`Node::to_json`] applies the YAML 1.2 core schema
//! for values that are passed through untyped, like a plugin's `config`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// One thing wrong with a file, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The line, counted from 1; 0 when the problem is not tied to a line (for example
    /// when the file could not be read at all).
    pub line: usize,
    /// The column, counted from 1; 0 when `line` is 0.
    pub column: usize,
    /// What is wrong, in words for the person who wrote the file.
    pub message: String,
}

impl Problem {
    /// A problem at `node`.
    pub fn at(node: &Node, message: impl Into<String>) -> Self {
        Problem {
            line: node.line,
            column: node.column,
            message: message.into(),
        }
    }

    /// A problem with the whole file rather than one place in it.
    pub fn whole_file(message: impl Into<String>) -> Self {
        Problem {
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// `origin:line:column: message`, or `origin: message` for a whole-file problem.
    pub fn render(&self, origin: &str) -> String {
        if self.line == 0 {
            format!("{origin}: {}", self.message)
        } else {
            format!("{origin}:{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// A YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the value is.
    pub kind: NodeKind,
    /// The line it starts on, counted from 1.
    pub line: usize,
    /// The column it starts at, counted from 1.
    pub column: usize,
}

/// The three shapes a YAML value takes.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A single value, as written.
    Scalar(Scalar),
    /// A list.
    Sequence(Vec<Node>),
    /// A mapping, in file order. Keys are unique scalars: duplicates, lists and mappings are
    /// refused while parsing.
    Mapping(Vec<(Node, Node)>),
}

/// The text of a scalar and how it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The text after YAML's unquoting and folding.
    pub text: String,
    /// True when the scalar was quoted, a block scalar, or tagged `!!str`: then it is a
    /// string even if it reads `true` or `8080`.
    pub quoted: bool,
}

impl Node {
    /// A plain (unquoted) scalar, as a value that came from somewhere other than a file
    /// (an environment variable) would be written.
    pub fn plain(text: impl Into<String>) -> Self {
        Node {
            kind: NodeKind::Scalar(Scalar {
                text: text.into(),
                quoted: false,
            }),
            line: 0,
            column: 0,
        }
    }

    /// The scalar's text, whatever type it would resolve to; `None` for lists and mappings.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(scalar) => Some(&scalar.text),
            _ => None,
        }
    }

    /// True for `null`, `~` and an empty plain scalar (`key:` with nothing after it).
    pub fn is_null(&self) -> bool {
        match &self.kind {
            NodeKind::Scalar(Scalar {
                text,
                quoted: false,
            }) => matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            _ => false,
        }
    }

    /// The entries when this is a mapping.
    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items when this is a list.
    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// What this value is, for messages like "expected a list, found a mapping".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Mapping(_) => "a mapping",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Scalar(_) if self.is_null() => "nothing (null)",
            NodeKind::Scalar(_) => match self.to_json() {
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "a string",
            },
        }
    }

    /// The value as JSON, resolving plain scalars by the YAML 1.2 core schema: `null`, `~`
    /// and nothing are null; `true`/`false` booleans; decimal, `0x` and `0o` integers and
    /// decimal floats are numbers; everything else, and everything quoted, is a string.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(scalar) if scalar.quoted => Value::String(scalar.text.clone()),
            NodeKind::Scalar(scalar) => resolve_plain(&scalar.text),
            NodeKind::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key_text(key), value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A mapping key as a string. [`parse`] refuses lists and mappings as keys; one in a tree
/// built by hand is rendered as JSON rather than lost.
fn key_text(key: &Node) -> String {
    match key.scalar_text() {
        Some(text) => text.to_owned(),
        None => key.to_json().to_string(),
    }
}

fn resolve_plain(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = parse_yaml_int(text) {
        return number;
    }
    if is_yaml_float(text)
        && let Some(number) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

fn parse_yaml_int(text: &str) -> Option<serde_json::Value> {
    let (radix, digits) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = text.strip_prefix("0o") {
        (8, octal)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text
            .parse::<i64>()
            .ok()
            .map(serde_json::Value::from)
            .or_else(|| text.parse::<u64>().ok().map(serde_json::Value::from));
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .map(serde_json::Value::from)
}

/// The core schema's float: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`. Rust's
/// own float parser is more generous (`inf`, `NaN`, `infinity`), which would turn words
/// into numbers.
fn is_yaml_float(text: &str) -> bool {
    let text = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The deepest nesting of lists and mappings read. Hand-written files nest a few levels;
/// the tree is dropped, converted and read recursively, so without a bound a few hundred
/// kilobytes of `- - - ...` would overflow the stack and abort the hub (the admin console
/// checks routes text that a user pastes). serde_json stops at the same depth.
pub const MAX_DEPTH: usize = 128;

/// The most values copied for anchors and aliases, in total. Each alias is a copy of its
/// anchor's value, so nine nested anchors of ten aliases each ("billion laughs") make 10^9
/// values out of 500 bytes; this bound keeps such a file to milliseconds and megabytes,
/// far above what sharing a block between a few dozen channels takes.
pub const MAX_COPIED_VALUES: usize = 100_000;

/// Reads one YAML document. An empty file (or one with only comments) is `Ok(None)`.
///
/// Syntax errors, and going past [`MAX_DEPTH`] or [`MAX_COPIED_VALUES`], stop the reading
/// and come back as one problem; duplicate keys and unsupported tags are collected, so a
/// file with several gets them all reported.
pub fn parse(text: &str) -> Result<Option<Node>, Vec<Problem>> {
    let mut builder = TreeBuilder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| {
            let mark = error.marker();
            vec![Problem {
                line: mark.line(),
                column: mark.col() + 1,
                message: format!("YAML syntax error: {}", error.info()),
            }]
        })?;
        builder
            .on_event(event, span)
            .map_err(|problem| vec![problem])?;
    }
    if builder.problems.is_empty() {
        Ok(builder.root)
    } else {
        Err(builder.problems)
    }
}

enum Frame {
    Sequence {
        start: Node,
        anchor: usize,
        items: Vec<Node>,
    },
    Mapping {
        start: Node,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        /// Each key's text and line, so a duplicate is found without comparing every pair.
        lines_by_key: HashMap<String, usize>,
    },
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    problems: Vec<Problem>,
    /// Values copied so far for anchors and aliases, against [`MAX_COPIED_VALUES`].
    copied_values: usize,
}

impl TreeBuilder {
    /// Adds one parser event to the tree. An `Err` is a limit reached: reading stops.
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), Problem> {
        let line = span.start.line();
        let column = span.start.col() + 1;
        let at = |kind| Node { kind, line, column };
        let problem = |message: String| Problem {
            line,
            column,
            message,
        };
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.problems.push(problem(
                        "this file holds one YAML document; remove the second `---`".into(),
                    ));
                }
            }
            Event::Alias(id) => {
                // An alias is a copy of what its anchor named. The parser refuses an alias
                // to an anchor that does not exist, but not one to an anchor still open
                // (`&a [x, *a]`): that would be a value inside itself.
                match self.anchors.get(&id) {
                    Some(node) => {
                        count_copies(&mut self.copied_values, node, line, column)?;
                        let node = node.clone();
                        self.add(node);
                    }
                    None => self.problems.push(problem(
                        "this alias names the anchor of a value that holds it; a value cannot \
                         contain itself"
                            .into(),
                    )),
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut quoted = style != ScalarStyle::Plain;
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() {
                        quoted |= tag.suffix == "str";
                    } else {
                        self.problems.push(problem(format!(
                            "YAML tags like `{tag}` are not supported here"
                        )));
                    }
                }
                let node = at(NodeKind::Scalar(Scalar {
                    text: text.into_owned(),
                    quoted,
                }));
                self.remember(anchor, &node)?;
                self.add(node);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                return Err(problem(format!(
                    "lists and mappings are nested more than {MAX_DEPTH} deep here"
                )));
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Sequence {
                start: at(NodeKind::Sequence(Vec::new())),
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Mapping {
                start: at(NodeKind::Mapping(Vec::new())),
                anchor,
                entries: Vec::new(),
                pending_key: None,
                lines_by_key: HashMap::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        start,
                        anchor,
                        items,
                    }) => (
                        Node {
                            kind: NodeKind::Sequence(items),
                            ..start
                        },
                        anchor,
                    ),
                    Some(Frame::Mapping {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            kind: NodeKind::Mapping(entries),
                            ..start
                        },
                        anchor,
                    ),
                    // The parser balances starts and ends.
                    None => return Ok(()),
                };
                self.remember(anchor, &node)?;
                self.add(node);
            }
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) -> Result<(), Problem> {
        // Anchor ids start at 1; 0 means the value had no anchor.
        if anchor != 0 {
            // Keeping the anchor's value is a copy too: nested anchors copy the same
            // values once per level.
            count_copies(&mut self.copied_values, node, node.line, node.column)?;
            self.anchors.insert(anchor, node.clone());
        }
        Ok(())
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping {
                entries,
                pending_key,
                lines_by_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                // No file we read has them, JSON has no such keys, and rendering nested ones
                // as text grew exponentially with depth (each level escapes the quotes of
                // the one inside): 171 bytes took 9 s.
                Some(key) if key.scalar_text().is_none() => {
                    self.problems.push(Problem::at(
                        &key,
                        format!("a key must be a single value, not {}", key.describe()),
                    ));
                }
                Some(key) => match lines_by_key.entry(key_text(&key)) {
                    Entry::Occupied(first) => {
                        self.problems.push(Problem::at(
                            &key,
                            format!(
                                "duplicate key `{}` (first at line {})",
                                first.key(),
                                first.get()
                            ),
                        ));
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(key.line);
                        entries.push((key, node));
                    }
                },
            },
        }
    }
}

/// Counts the values in `node` into `copied_values`, against [`MAX_COPIED_VALUES`], before
/// it is copied.
fn count_copies(
    copied_values: &mut usize,
    node: &Node,
    line: usize,
    column: usize,
) -> Result<(), Problem> {
    // Both stop once over budget, so counting costs no more than the copies allowed.
    fn count(node: &Node, budget: usize) -> usize {
        match &node.kind {
            NodeKind::Scalar(_) => 1,
            NodeKind::Sequence(items) => count_all(items.iter(), budget),
            NodeKind::Mapping(entries) => {
                count_all(entries.iter().flat_map(|(key, value)| [key, value]), budget)
            }
        }
    }
    fn count_all<'a>(children: impl Iterator<Item = &'a Node>, budget: usize) -> usize {
        let mut total = 1;
        for child in children {
            if total > budget {
                break;
            }
            total += count(child, budget - total);
        }
        total
    }
    let budget = MAX_COPIED_VALUES - *copied_values;
    let values = count(node, budget);
    if values > budget {
        return Err(Problem {
            line,
            column,
            message: format!(
                "anchors and aliases (`&name`, `*name`) copy more than {MAX_COPIED_VALUES} \
                 values in this file; write the values out, or share fewer"
            ),
        });
    }
    *copied_values += values;
    Ok(())
}

/// A mapping being read by a reader that knows which keys it accepts.
///
/// [`Fields::new`] reports every key it does not know, in serde's words ("unknown field
/// `lisen`, expected one of `listen`, ..."), so a typo is named wherever it is.
pub struct Fields<'a> {
    entries: &'a [(Node, Node)],
}

impl<'a> Fields<'a> {
    /// Reads `node` as a mapping with the keys `known`. A null node (`key:` with nothing
    /// after it) reads as an empty mapping. Returns `None`, with a problem recorded, when
    /// `node` is not a mapping; unknown keys are recorded and otherwise skipped.
    pub fn new(
        node: &'a Node,
        what: &str,
        known: &[&str],
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        if node.is_null() {
            return Some(Fields { entries: &[] });
        }
        let Some(entries) = node.as_mapping() else {
            problems.push(Problem::at(
                node,
                format!("{what} must be a mapping, found {}", node.describe()),
            ));
            return None;
        };
        for (key, _) in entries {
            let name = key_text(key);
            if !known.contains(&name.as_str()) {
                problems.push(Problem::at(key, unknown_field(&name, known)));
            }
        }
        Some(Fields { entries })
    }

    /// The value under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, value)| value)
    }

    /// The key node of `key`, for problems about the key itself.
    pub fn key(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(k, _)| k)
    }
}

/// serde's message for an unknown field, so both kinds of reader speak alike.
pub fn unknown_field(name: &str, known: &[&str]) -> String {
    let expected = match known {
        [] => "there are no fields here".to_owned(),
        [only] => format!("expected `{only}`"),
        _ => format!(
            "expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("unknown field `{name}`, {expected}")
}

/// Reads a duration written for humans: `0`, `100ms`, `5s`, `5m`, `2h`, `1h 30m`, `24h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("invalid duration {text:?}: {error} (write it like 100ms, 5s, 5m or 2h)")
    })
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(duration: std::time::Duration) -> String {
    if duration.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(duration).to_string()
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every scalar value of `node` (not in mapping
/// keys), reading variables through `env`. `$${` writes a literal `${`. A variable that is
/// unset and has no default is a problem at its scalar's line.
///
/// `:-` follows the shell: the default is used when the variable is unset *or empty*.
pub fn interpolate_env(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match &mut node.kind {
        NodeKind::Scalar(scalar) => {
            if scalar.text.contains('$') {
                match interpolate(&scalar.text, env) {
                    Ok(text) => scalar.text = text,
                    Err(message) => problems.push(Problem {
                        line: node.line,
                        column: node.column,
                        message,
                    }),
                }
            }
        }
        NodeKind::Sequence(items) => {
            for item in items {
                interpolate_env(item, env, problems);
            }
        }
        NodeKind::Mapping(entries) => {
            for (_, value) in entries {
                interpolate_env(value, env, problems);
            }
        }
    }
}

fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unclosed `${{` in {text:?}: write `${{VAR}}`, or `$${{` for a literal `${{`"
            ));
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if !is_env_name(name) {
            return Err(format!(
                "`${{{reference}}}` is not a variable reference: write `${{VAR}}` or \
                 `${{VAR:-default}}` with VAR made of letters, digits and `_`"
            ));
        }
        match (
            env(name).filter(|v| !(v.is_empty() && default.is_some())),
            default,
        ) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` \
                     to fall back to a default)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let node = root("a: 1\nb:\n  - x\n  - {c: d}\n");
        let entries = node.as_mapping().unwrap();
        let b = &entries[1].1;
        assert_eq!((b.line, b.column), (3, 3));
        let inner = &b.as_sequence().unwrap()[1];
        assert_eq!((inner.line, inner.column), (4, 5));
        assert_eq!(entries[0].0.line, 1);
    }

    #[test]
    fn an_alias_inside_its_own_anchor_is_a_problem() {
        let problems = parse("list: &loop [a, *loop]\n").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("cannot contain itself"),
            "{problems:?}"
        );
        assert_eq!(problems[0].line, 1);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_root() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# nothing yet\n\n").unwrap(), None);
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let node = root(
            "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: \"8080\"\ng: yes\nh: 0x1f\ni: .inf\nj: 1e3\nk: !!str 12\n",
        );
        assert_eq!(
            node.to_json(),
            json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "8080",
                   "g": "yes", "h": 31, "i": ".inf", "j": 1000.0, "k": "12"})
        );
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let node = root("base: &b {x: 1}\nother: *b\n");
        assert_eq!(node.to_json(), json!({"base": {"x": 1}, "other": {"x": 1}}));
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_carry_lines() {
        let problems = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.starts_with("YAML syntax error"));
        assert!(problems[0].line >= 2);

        let problems = parse("a: 1\nb: 2\na: 3\nb: 4\n").unwrap_err();
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4]);
        assert_eq!(problems[0].message, "duplicate key `a` (first at line 1)");
    }

    // Found with the fuzz/ `yaml` target: the inputs are in fuzz/regressions/yaml/.
    #[test]
    fn nesting_deeper_than_the_limit_is_refused_rather_than_overflowing_the_stack() {
        let nested = |depth: usize| format!("{}x\n", "- ".repeat(depth));
        let deepest = root(&nested(MAX_DEPTH));
        assert_eq!(deepest.line, 1);
        // 200,000 levels overflowed the 8 MiB main thread's stack when the tree was dropped.
        for depth in [MAX_DEPTH + 1, 200_000] {
            let problems = parse(&nested(depth)).unwrap_err();
            assert_eq!(problems.len(), 1);
            assert_eq!(
                problems[0].message,
                "lists and mappings are nested more than 128 deep here"
            );
            assert_eq!(
                (problems[0].line, problems[0].column),
                (1, 2 * MAX_DEPTH + 1)
            );
        }
        assert!(parse(&"[".repeat(200)).is_err());
    }

    #[test]
    fn aliases_that_multiply_are_refused_rather_than_filling_memory() {
        // 511 bytes that expanded to 10^9 values: seconds of CPU and gigabytes, per parse.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let aliases = vec![format!("*a{}", level - 1); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{aliases}]\n"));
        }
        let problems = parse(&text).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .message
                .starts_with("anchors and aliases (`&name`, `*name`) copy more than 100000 values"),
            "{}",
            problems[0].message
        );
        assert_eq!(problems[0].line, 5);

        // Sharing one block between many entries stays well inside the limit.
        let mut text =
            String::from("base: &base {retry: {schedule: [1s, 5s, 30s]}, concurrency: 4}\n");
        for channel in 0..500 {
            text.push_str(&format!("c{channel}: *base\n"));
        }
        let node = root(&text);
        assert_eq!(node.to_json()["c499"]["retry"]["schedule"][2], json!("30s"));
    }

    #[test]
    fn lists_and_mappings_as_keys_are_refused() {
        let problems = parse("? [a, b]\n: 1\nc: {? {x: 1} : 2}\n").unwrap_err();
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.column, p.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (1, 3, "a key must be a single value, not a list"),
                (3, 7, "a key must be a single value, not a mapping"),
            ]
        );
        // Keys nested in keys, from fuzz/regressions/yaml/: this took 9 s and, deeper,
        // exponentially longer.
        let started = std::time::Instant::now();
        assert!(parse(&format!("{}x\n", "? ".repeat(MAX_DEPTH))).is_err());
        assert!(parse(&format!("{}x{}\n", "{".repeat(100), "}".repeat(100))).is_err());
        let elapsed = started.elapsed();
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn duplicate_keys_are_found_in_linear_time() {
        // 20,000 keys took 5.7 s in a release build when every key was compared with every
        // earlier one; now milliseconds, so the bound leaves room for a debug build on a
        // busy machine.
        let text: String = (0..20_000).map(|i| format!("k{i}: {i}\n")).collect();
        let started = std::time::Instant::now();
        let problems = parse(&format!("{text}k7: again\n")).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "duplicate key `k7` (first at line 8)");
        assert_eq!(problems[0].line, 20_001);
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn a_second_document_is_refused() {
        let problems = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn fields_name_unknown_keys() {
        let node = root("listen: x\nlisen: y\n");
        let mut problems = Vec::new();
        let fields = Fields::new(&node, "the config", &["listen", "data_dir"], &mut problems)
            .expect("a mapping");
        assert_eq!(fields.get("listen").unwrap().scalar_text(), Some("x"));
        assert_eq!(
            problems,
            [Problem {
                line: 2,
                column: 1,
                message: "unknown field `lisen`, expected one of `listen`, `data_dir`".into()
            }]
        );
    }

    #[test]
    fn interpolation_reads_variables_and_defaults() {
        let env = |name: &str| match name {
            "HOST" => Some("ops.example.com".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let mut node = root(
            "url: https://${HOST}/x\nport: ${PORT:-8080}\nliteral: $${HOST} costs $5\nempty: ${EMPTY:-fallback}\nkeep: ${EMPTY}\n",
        );
        let mut problems = Vec::new();
        interpolate_env(&mut node, &env, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            node.to_json(),
            json!({"url": "https://ops.example.com/x", "port": 8080,
                   "literal": "${HOST} costs $5", "empty": "fallback", "keep": null})
        );
    }

    #[test]
    fn interpolation_problems_name_the_line() {
        let mut node = root("a: ok\nb: ${MISSING}\nc: ${NOT CLOSED\nd: ${1BAD}\n");
        let mut problems = Vec::new();
        interpolate_env(&mut node, &|_| None, &mut problems);
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(problems[0].message.contains("`MISSING` is not set"));
        assert!(problems[1].message.contains("unclosed"));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        use std::time::Duration;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
