//! A YAML document as a tree of nodes that remember where they were written.
//!
//! serde-based YAML loading forgets positions and stops at the first problem; flow diagnostics
//! need both the line and column of every node and all problems of a file, so flow text is read
//! into this tree first and decoded from it.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use serde::Serialize;
use serde_json::Value;

use super::diagnostic::Diagnostic;

/// Where a node was written: 1-based line and column (in characters), start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// Line of the first character, from 1.
    pub line: usize,
    /// Column of the first character, from 1.
    pub column: usize,
    /// Line just after the last character.
    pub end_line: usize,
    /// Column just after the last character.
    pub end_column: usize,
}

impl Span {
    fn from_markers(start: Marker, end: Marker) -> Self {
        Span { line: start.line(), column: start.col() + 1, end_line: end.line(), end_column: end.col() + 1 }
    }

    /// A span of `width` characters at one position.
    pub fn at(line: usize, column: usize, width: usize) -> Self {
        Span { line, column, end_line: line, end_column: column + width }
    }

    /// Characters underlined by a caret: the span's width when it stays on one line, else 1.
    pub fn width(&self) -> usize {
        if self.end_line == self.line && self.end_column > self.column {
            self.end_column - self.column
        } else {
            1
        }
    }
}

/// One YAML node and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's value.
    pub value: NodeValue,
    /// Where it was written.
    pub span: Span,
}

/// The value of a YAML node, resolved with the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or a float.
    Number(serde_json::Number),
    /// Text (every quoted or block scalar, and plain scalars that are nothing else).
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in written order; keys are nodes so that their positions are kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A null node at `span`, used where a value is missing.
    pub fn null(span: Span) -> Self {
        Node { value: NodeValue::Null, span }
    }

    /// The text of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping node.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a scalar used as a mapping key (`1:` and `true:` are keys too).
    pub fn key_text(&self) -> Option<String> {
        self.key_str().map(Cow::into_owned)
    }

    /// Like [`Node::key_text`], borrowing the text of a string key instead of copying it.
    pub fn key_str(&self) -> Option<Cow<'_, str>> {
        match &self.value {
            NodeValue::String(s) => Some(Cow::Borrowed(s)),
            NodeValue::Number(n) => Some(Cow::Owned(n.to_string())),
            NodeValue::Bool(true) => Some(Cow::Borrowed("true")),
            NodeValue::Bool(false) => Some(Cow::Borrowed("false")),
            NodeValue::Null => Some(Cow::Borrowed("null")),
            NodeValue::Seq(_) | NodeValue::Map(_) => None,
        }
    }

    /// How a node is described in messages: "a map", "a list", "text", ...
    pub fn describe(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "nothing (null)",
            NodeValue::Bool(_) => "true/false",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "text",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a map",
        }
    }

    /// The node as a JSON value (positions dropped, keys as text).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries.iter().map(|(k, v)| (k.key_text().unwrap_or_default(), v.to_json())).collect(),
            ),
        }
    }

    /// Whether any string inside the node contains `{{`.
    pub fn has_template(&self) -> bool {
        match &self.value {
            NodeValue::String(s) => s.contains("{{"),
            NodeValue::Seq(items) => items.iter().any(Node::has_template),
            NodeValue::Map(entries) => entries.iter().any(|(_, v)| v.has_template()),
            _ => false,
        }
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl schemars::JsonSchema for Node {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AnyValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::Schema::from(true)
    }
}

/// Alias expansion stops past this many nodes, so a few nested aliases cannot blow up memory.
const MAX_ALIAS_NODES: usize = 100_000;

/// Parses one YAML document. Problems that do not stop parsing (duplicate keys) are pushed to
/// `diagnostics`; a syntax error returns `None` with the parser's position.
pub fn parse(text: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Node> {
    let mut builder =
        Builder { stack: Vec::new(), anchors: HashMap::new(), root: None, expanded: 0, documents: 0 };
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = match event {
            Ok(ok) => ok,
            Err(err) => {
                let marker = err.marker();
                diagnostics.push(
                    Diagnostic::error(
                        "yaml_syntax",
                        Span::at(marker.line().max(1), marker.col() + 1, 1),
                        format!("invalid YAML: {}", err.info()),
                    )
                    .with_hint("check indentation, quotes and `:` after keys near this position"),
                );
                return None;
            }
        };
        let span = Span::from_markers(span.start, span.end);
        if let Err(diagnostic) = builder.on_event(event, span, diagnostics) {
            diagnostics.push(*diagnostic);
            return None;
        }
    }
    Some(builder.root.unwrap_or_else(|| Node::null(Span::at(1, 1, 1))))
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        span: Span,
        anchor: usize,
        lines: HashMap<String, usize>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    expanded: usize,
    documents: usize,
}

impl Builder {
    fn on_event(
        &mut self,
        event: Event<'_>,
        span: Span,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    let diagnostic =
                        Diagnostic::error("yaml_syntax", span, "a flow file holds one YAML document")
                            .with_hint(
                                "remove the second `---` and what follows, or move it to its own file",
                            );
                    return Err(Box::new(diagnostic));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    NodeValue::String(text.into_owned())
                };
                self.complete(Node { value, span }, anchor, diagnostics);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq { items: Vec::new(), span, anchor })
            }
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                key: None,
                span,
                anchor,
                lines: HashMap::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => self.close(span, diagnostics),
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    Box::new(Diagnostic::error(
                        "yaml_syntax",
                        span,
                        "this alias names no anchor defined before it",
                    ))
                })?;
                self.expanded += count_nodes(&node);
                if self.expanded > MAX_ALIAS_NODES {
                    return Err(Box::new(
                        Diagnostic::error("yaml_syntax", span, "aliases expand to too many nodes")
                            .with_hint("write the values out instead of nesting aliases"),
                    ));
                }
                self.complete(Node { value: node.value, span }, 0, diagnostics);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn close(&mut self, end: Span, diagnostics: &mut Vec<Diagnostic>) {
        let Some(frame) = self.stack.pop() else { return };
        let (node, anchor) = match frame {
            Frame::Seq { items, span, anchor } => {
                (Node { value: NodeValue::Seq(items), span: join(span, end) }, anchor)
            }
            Frame::Map { entries, span, anchor, .. } => {
                (Node { value: NodeValue::Map(entries), span: join(span, end) }, anchor)
            }
        };
        self.complete(node, anchor, diagnostics);
    }

    fn complete(&mut self, node: Node, anchor: usize, diagnostics: &mut Vec<Diagnostic>) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, lines, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => add_entry(entries, lines, k, node, diagnostics),
            },
        }
    }
}

/// Maps with fewer entries than this find duplicate keys by scanning; bigger ones keep an index.
const SCANNED_MAP_LEN: usize = 16;

/// Adds one entry, reporting a key the map already has. `lines` indexes the keys of a big map
/// (text to line), so duplicates are found without rescanning it; it is empty for small maps.
fn add_entry(
    entries: &mut Vec<(Node, Node)>,
    lines: &mut HashMap<String, usize>,
    key: Node,
    value: Node,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(text) = key.key_str() else {
        diagnostics.push(Diagnostic::error(
            "yaml_key",
            key.span,
            "keys must be plain text, not a list or a map",
        ));
        return;
    };
    let first_line = if entries.len() < SCANNED_MAP_LEN {
        entries.iter().find(|(k, _)| k.key_str().as_deref() == Some(&*text)).map(|(k, _)| k.span.line)
    } else {
        if lines.is_empty() {
            for (k, _) in entries.iter() {
                if let Some(t) = k.key_text() {
                    lines.entry(t).or_insert(k.span.line);
                }
            }
        }
        lines.get(&*text).copied()
    };
    if let Some(first_line) = first_line {
        diagnostics.push(
            Diagnostic::error("duplicate_key", key.span, format!("duplicate key `{text}`"))
                .with_hint(format!("`{text}` is already set at line {first_line}; keep one of them")),
        );
        return;
    }
    if entries.len() >= SCANNED_MAP_LEN {
        lines.insert(text.into_owned(), key.span.line);
    }
    entries.push((key, value));
}

fn join(start: Span, end: Span) -> Span {
    Span { end_line: end.end_line, end_column: end.end_column, ..start }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        NodeValue::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeValue::Map(entries) => {
            1 + entries.iter().map(|(k, v)| count_nodes(k) + count_nodes(v)).sum::<usize>()
        }
        _ => 1,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema, as serde_yaml does.
fn resolve_plain(text: &str) -> NodeValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(number) = resolve_number(text) {
        return NodeValue::Number(number);
    }
    NodeValue::String(text.to_string())
}

fn resolve_number(text: &str) -> Option<serde_json::Number> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |prefix: &str, radix: u32| {
        let body = digits.strip_prefix(prefix)?;
        let n = i64::from_str_radix(body, radix).ok()?;
        Some(serde_json::Number::from(if negative { -n } else { n }))
    };
    if let Some(n) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return Some(n);
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(n.into());
        }
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_float {
        return text.parse::<f64>().ok().and_then(serde_json::Number::from_f64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        let mut diagnostics = Vec::new();
        let node = parse(text, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        node.unwrap_or_else(|| Node::null(Span::default()))
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = parse_ok("a: 1\nb:\n  c: hello\n");
        let entries = node.as_map().unwrap_or_default();
        assert_eq!(entries[1].0.span.line, 2);
        let inner = entries[1].1.as_map().unwrap_or_default();
        assert_eq!((inner[0].1.span.line, inner[0].1.span.column), (3, 6));
        assert_eq!(inner[0].1.span.width(), 5);
    }

    #[test]
    fn resolves_scalars_like_the_core_schema() {
        let node = parse_ok("[1, -2, 1.5, true, null, '1', x, 0x10, 1e3]");
        assert_eq!(node.to_json(), serde_json::json!([1, -2, 1.5, true, null, "1", "x", 16, 1000.0]));
    }

    #[test]
    fn reports_duplicate_keys_and_keeps_the_first() {
        let mut diagnostics = Vec::new();
        let node = parse("a: 1\na: 2\n", &mut diagnostics);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].line, 2);
        assert_eq!(node.map(|n| n.to_json()), Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn reports_duplicate_keys_in_big_maps() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k3: again\nk39: again\n");
        let mut diagnostics = Vec::new();
        let node = parse(&text, &mut diagnostics);
        let lines: Vec<usize> = diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, [41, 42]);
        assert!(diagnostics[0].hint.as_deref().is_some_and(|h| h.contains("line 4")), "{diagnostics:?}");
        assert_eq!(node.and_then(|n| n.as_map().map(<[_]>::len)), Some(40));
    }

    #[test]
    fn syntax_errors_carry_the_parser_position() {
        let mut diagnostics = Vec::new();
        assert!(parse("a: [1, 2\nb: 3\n", &mut diagnostics).is_none());
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].line >= 2, "{diagnostics:?}");
    }

    #[test]
    fn expands_aliases() {
        let node = parse_ok("a: &x {k: 1}\nb: *x\n");
        assert_eq!(node.to_json(), serde_json::json!({"a": {"k": 1}, "b": {"k": 1}}));
    }
}
