//! Writing imported flows as YAML that reads like a hand-written one: templates in double
//! quotes, short maps and lists on one line (`run_after: {Try: [failed, timed_out]}`), plain
//! text unquoted where YAML allows.
//!
//! The text is parsed back and compared with the value; if they ever differ, serde_yaml's own
//! (less readable, always faithful) output is used instead.

use serde_yaml::Value as Yaml;

/// Widest line an inline map or list may make.
const INLINE_WIDTH: usize = 100;
/// Most entries an inline map may have.
const INLINE_ENTRIES: usize = 4;

/// Keys whose value is a block of actions (or, for `cases`, a map of such blocks): actions are
/// never written on one line, so that each starts on its own line as in hand-written flows.
const ACTION_BLOCKS: [&str; 4] = ["actions", "then", "else", "default"];

/// What the entries of a mapping are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// Anything.
    Values,
    /// Actions, by name.
    Actions,
    /// Switch cases, each a block of actions.
    Cases,
}

/// `value` (a mapping) as YAML text.
pub(super) fn to_yaml(value: &Yaml) -> String {
    let mut out = String::new();
    match value {
        Yaml::Mapping(map) if !map.is_empty() => block_mapping(map, 0, Holds::Values, &mut out),
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
    match serde_yaml::from_str::<Yaml>(&out) {
        Ok(parsed) if &parsed == value => out,
        _ => serde_yaml::to_string(value).unwrap_or_default(),
    }
}

fn block_mapping(map: &serde_yaml::Mapping, indent: usize, holds: Holds, out: &mut String) {
    for (key, value) in map {
        let inner = match (holds, key.as_str()) {
            (Holds::Cases, _) => Holds::Actions,
            (_, Some("cases")) => Holds::Cases,
            (_, Some(k)) if ACTION_BLOCKS.contains(&k) && is_nonempty_map(value) => Holds::Actions,
            _ => Holds::Values,
        };
        let may_inline = holds == Holds::Values && inner == Holds::Values;
        let key = scalar(key).unwrap_or_else(|| quoted(&format!("{key:?}")));
        out.push_str(&" ".repeat(indent));
        out.push_str(&key);
        out.push(':');
        value_after_key(value, indent, key.len(), may_inline, inner, out);
    }
}

fn is_nonempty_map(value: &Yaml) -> bool {
    matches!(value, Yaml::Mapping(map) if !map.is_empty())
}

/// A value after `key:` (or `-`): on the same line when it is a scalar or may and does fit
/// inline, else on the following lines.
fn value_after_key(
    value: &Yaml,
    indent: usize,
    key_width: usize,
    may_inline: bool,
    holds: Holds,
    out: &mut String,
) {
    let empty = match value {
        Yaml::Mapping(map) if map.is_empty() => Some("{}".to_string()),
        Yaml::Sequence(items) if items.is_empty() => Some("[]".to_string()),
        _ => None,
    };
    let one_line = scalar(value)
        .or(empty)
        .or_else(|| if may_inline { inline(value, indent + key_width + 2) } else { None });
    if let Some(text) = one_line {
        out.push(' ');
        out.push_str(&text);
        out.push('\n');
        return;
    }
    out.push('\n');
    match value {
        Yaml::Mapping(map) => block_mapping(map, indent + 2, holds, out),
        Yaml::Sequence(items) => block_sequence(items, indent + 2, out),
        Yaml::Tagged(tagged) => value_after_key(&tagged.value, indent, key_width, may_inline, holds, out),
        _ => {}
    }
}

fn block_sequence(items: &[Yaml], indent: usize, out: &mut String) {
    for item in items {
        match item {
            Yaml::Mapping(map) if !map.is_empty() && inline(item, indent + 2).is_none() => {
                let mut nested = String::new();
                block_mapping(map, indent + 2, Holds::Values, &mut nested);
                // The first entry goes on the dash's line.
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(nested.trim_start());
            }
            _ => {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                value_after_key(item, indent, 0, true, Holds::Values, out);
            }
        }
    }
}

/// A map or list on one line, when it is small, flat enough and fits.
fn inline(value: &Yaml, column: usize) -> Option<String> {
    let text = flow(value, 0)?;
    (column + text.len() <= INLINE_WIDTH).then_some(text)
}

fn flow(value: &Yaml, depth: usize) -> Option<String> {
    match value {
        Yaml::Mapping(map) if map.is_empty() => Some("{}".into()),
        Yaml::Sequence(items) if items.is_empty() => Some("[]".into()),
        _ if depth >= 2 => None,
        Yaml::Mapping(map) => {
            if map.len() > INLINE_ENTRIES {
                return None;
            }
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                entries.push(format!(
                    "{}: {}",
                    flow_scalar(key)?,
                    flow_scalar(value).or_else(|| flow(value, depth + 1))?
                ));
            }
            Some(format!("{{{}}}", entries.join(", ")))
        }
        Yaml::Sequence(items) => {
            let items: Option<Vec<String>> = items.iter().map(flow_scalar).collect();
            Some(format!("[{}]", items?.join(", ")))
        }
        _ => None,
    }
}

/// A scalar as written inside `{…}` or `[…]`, where `,[]{}` also need quotes.
fn flow_scalar(value: &Yaml) -> Option<String> {
    let text = scalar(value)?;
    let plain_with_flow_chars = !text.starts_with('"') && text.contains([',', '[', ']', '{', '}']);
    Some(if plain_with_flow_chars { quoted(value.as_str().unwrap_or(&text)) } else { text })
}

/// A scalar's text, `None` for maps and lists.
fn scalar(value: &Yaml) -> Option<String> {
    Some(match value {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) if s.contains("{{") || !plain_safe(s) => quoted(s),
        Yaml::String(s) => s.clone(),
        Yaml::Mapping(_) | Yaml::Sequence(_) | Yaml::Tagged(_) => return None,
    })
}

/// Whether `text` can be written without quotes and still read back as the same text.
fn plain_safe(text: &str) -> bool {
    // YAML 1.2 (coflow's loader and serde_yaml): `yes`, `on`... are plain text.
    const RESERVED: [&str; 4] = ["true", "false", "null", "~"];
    let Some(first) = text.chars().next() else { return false };
    let bad_start = "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace();
    let bad_end = text.ends_with([' ', ':', '\t']);
    let bad_inside = text.contains(": ") || text.contains(" #") || text.chars().any(|c| c.is_control());
    let looks_typed = RESERVED.contains(&text.to_ascii_lowercase().as_str())
        || text.parse::<f64>().is_ok()
        || first.is_ascii_digit()
        || text.starts_with(['+', '.']);
    !(bad_start || bad_end || bad_inside || looks_typed)
}

/// `text` in double quotes.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_readable_yaml_that_reads_back_the_same() {
        let value: Yaml = serde_yaml::from_str(
            r#"
name: x
a: "{{ opt(triggerBody(), 'id') }}"
b: "yes"
c: "12"
d: "- dash"
e: "key: value"
f: "line\nbreak \"quoted\""
run_after: {Try: [failed, timed_out]}
list: [{a: 1, b: {c: [1, 2, 3]}}, plain, "a,b"]
empty: {}
actions: {A: {type: compose, inputs: 1}, B: {type: scope, actions: {C: {type: compose, inputs: 2}}}}
1: one
"#,
        )
        .unwrap();
        let text = to_yaml(&value);
        assert_eq!(serde_yaml::from_str::<Yaml>(&text).unwrap(), value);
        assert!(text.contains("a: \"{{ opt(triggerBody(), 'id') }}\"\n"), "{text}");
        assert!(text.contains("run_after: {Try: [failed, timed_out]}\n"), "{text}");
        assert!(text.contains("b: yes\n"), "{text}");
        assert!(
            text.contains("list: [{a: 1, b: {c: [1, 2, 3]}}, plain, \"a,b\"]") || text.contains("list:\n"),
            "{text}"
        );
        assert!(text.contains("1: one\n"), "{text}");
        assert!(text.contains("actions:\n  A:\n    type: compose\n    inputs: 1\n  B:\n    type: scope\n    actions:\n      C:\n"), "{text}");
    }
}
