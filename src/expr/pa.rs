//! Power Automate expressions translated to coflow templates, for `coflow eval --pa` and
//! `coflow import`.
//!
//! - A string value starting with `@` is one expression and keeps its type: `@add(1, 2)` →
//!   `{{ add(1, 2) }}`. A value that is exactly `@{expr}` is text: `{{ string(expr) }}`.
//! - `@{…}` inside text is interpolated: `Hi @{triggerBody()?['name']}!` →
//!   `Hi {{ opt(triggerBody(), 'name') }}!`. `@@` is a literal `@`.
//! - Strings use single quotes with `''` for a quote; they become minijinja literals.
//! - `if`, `and`, `or`, `not` become `if_`, `and_`, `or_`, `not_`; `null` becomes `none`;
//!   function names get their canonical case (`utcnow()` → `utcNow()`); the Logic Apps
//!   aliases `actionBody`/`actionOutputs` become `body`/`outputs`.
//! - `x.p` and `x['p']` stay strict; `x?['p']?.q` becomes `opt(x, 'p', 'q')`. A key with `/`
//!   (`outputs('a')?['body/value']`) is a path, as in the Power Automate designer.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::template::{ExprError, function_names};

/// Power Automate functions whose coflow name differs: the PA name is a minijinja keyword, or
/// an older Logic Apps name of the same function (`actionOutputs` is `outputs`).
const RENAMED: &[(&str, &str)] = &[
    ("if", "if_"),
    ("and", "and_"),
    ("or", "or_"),
    ("not", "not_"),
    ("actionbody", "body"),
    ("actionoutputs", "outputs"),
];

/// Power Automate and Logic Apps functions coflow does not provide.
const UNSUPPORTED: &[&str] = &["xpath", "appsetting"];

/// Lowercased Power Automate name → coflow name.
static NAMES: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut map: HashMap<String, &'static str> =
        function_names().filter(|n| !n.ends_with('_')).map(|n| (n.to_lowercase(), n)).collect();
    for (pa, ours) in RENAMED {
        map.insert((*pa).to_string(), ours);
    }
    map
});

/// Translates a whole Power Automate string value into a coflow template string.
pub fn translate_value(value: &str) -> Result<String, ExprError> {
    if let Some(rest) = value.strip_prefix("@@") {
        return Ok(escape_text(&format!("@{}", rest.replace("@@", "@"))));
    }
    if let Some(body) = value.strip_prefix('@') {
        if !body.starts_with('{') {
            let expr = translate_expression(body).map_err(|e| shift(e, 1, value))?;
            return Ok(format!("{{{{ {expr} }}}}"));
        }
    }
    let parts = split_interpolations(value)?;
    if let [Segment::Expr(expr)] = parts.as_slice() {
        // `@{x}` alone is text, whatever the type of x.
        return Ok(format!("{{{{ string({expr}) }}}}"));
    }
    let mut out = String::new();
    for part in parts {
        match part {
            Segment::Text(t) => out.push_str(&escape_text(&t)),
            Segment::Expr(e) => out.push_str(&format!("{{{{ {e} }}}}")),
        }
    }
    Ok(out)
}

/// Translates one Power Automate expression (with or without a leading `@` or `@{…}`) into a
/// coflow expression.
pub fn translate_expression(expr: &str) -> Result<String, ExprError> {
    let trimmed = expr.trim();
    let (inner, offset) = match trimmed.strip_prefix("@{").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => (inner, 2),
        None => match trimmed.strip_prefix('@') {
            Some(inner) => (inner, 1),
            None => (trimmed, 0),
        },
    };
    let mut parser = Parser::new(inner);
    let node = parser.expression().map_err(|e| shift(e, offset, expr))?;
    parser.skip_ws();
    if let Some((pos, c)) = parser.peek() {
        return Err(shift(
            parser.error(pos, format!("unexpected '{c}' after the end of the expression")),
            offset,
            expr,
        ));
    }
    Ok(node)
}

/// Translates a JSON value from a Power Automate definition into one coflow expression, as the
/// designer's condition objects need for their operands: `"@x"` → `x`, `"a@{x}"` →
/// `concat('a', x)`, other text → a quoted literal, numbers, booleans, `null`, arrays and objects
/// → minijinja literals.
pub fn translate_operand(value: &serde_json::Value) -> Result<String, ExprError> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(text) => text_operand(text)?,
        Value::Array(items) => {
            let items: Result<Vec<String>, ExprError> = items.iter().map(translate_operand).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Object(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                entries.push(format!("{}: {}", quote(key), translate_operand(value)?));
            }
            format!("{{{}}}", entries.join(", "))
        }
    })
}

fn text_operand(text: &str) -> Result<String, ExprError> {
    if let Some(rest) = text.strip_prefix("@@") {
        return Ok(quote(&format!("@{}", rest.replace("@@", "@"))));
    }
    if let Some(body) = text.strip_prefix('@') {
        if !body.starts_with('{') {
            return translate_expression(body).map_err(|e| shift(e, 1, text));
        }
    }
    let parts = split_interpolations(text)?;
    let mut pieces: Vec<String> = parts
        .into_iter()
        .map(|part| match part {
            Segment::Text(t) => quote(&t),
            Segment::Expr(e) => e,
        })
        .collect();
    Ok(match pieces.len() {
        0 => "''".into(),
        1 if text.starts_with("@{") => format!("string({})", pieces.remove(0)),
        1 => pieces.remove(0),
        _ => format!("concat({})", pieces.join(", ")),
    })
}

/// The coflow name of a Power Automate function (`utcnow` → `utcNow`, `and` → `and_`), or an
/// error saying it is unknown or unsupported.
pub fn translate_function_name(name: &str) -> Result<&'static str, ExprError> {
    Parser::new(name).function_name(name, 0)
}

/// Moves an error's position by `by` characters and sets its source to `source`.
fn shift(mut e: ExprError, by: usize, source: &str) -> ExprError {
    if by > 0 {
        if let Some(rest) = e.message.strip_prefix("at position ") {
            if let Some((num, tail)) = rest.split_once(':') {
                if let Ok(n) = num.parse::<usize>() {
                    e.message = format!("at position {}:{tail}", n + by);
                }
            }
        }
    }
    e.source_text = Some(source.to_string());
    e
}

/// Literal text for a coflow template: a `{{` must not start an expression.
fn escape_text(text: &str) -> String {
    text.replace("{{", "{{ '{{' }}")
}

enum Segment {
    Text(String),
    Expr(String),
}

/// Splits text with `@{…}` interpolations; `@@` is a literal `@`.
fn split_interpolations(value: &str) -> Result<Vec<Segment>, ExprError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let chars: Vec<(usize, char)> = value.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let next = chars.get(i + 1).map(|(_, c)| *c);
        if c == '@' && next == Some('@') {
            text.push('@');
            i += 2;
            continue;
        }
        if c == '@' && next == Some('{') {
            let start = chars.get(i + 2).map_or(value.len(), |(b, _)| *b);
            let mut parser = Parser::new(&value[start..]);
            let expr = parser.expression().map_err(|e| shift(e, i + 2, value))?;
            parser.skip_ws();
            match parser.peek() {
                Some((_, '}')) => {}
                _ => {
                    let at = i + 3 + parser.char_pos();
                    return Err(ExprError::new(
                        format!("at position {at}: expected '}}' to close the '@{{' at position {}", i + 1),
                        Some(value),
                    ));
                }
            }
            let end_byte = start + parser.pos + 1;
            if !text.is_empty() {
                parts.push(Segment::Text(std::mem::take(&mut text)));
            }
            parts.push(Segment::Expr(expr));
            i = chars.iter().position(|(b, _)| *b >= end_byte).unwrap_or(chars.len());
            continue;
        }
        text.push(c);
        i += 1;
    }
    if !text.is_empty() {
        parts.push(Segment::Text(text));
    }
    Ok(parts)
}

/// A recursive-descent parser that emits coflow syntax as it goes.
struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
}

/// One property or index access after a value.
struct Access {
    safe: bool,
    /// A coflow expression giving the key.
    key: String,
    /// The key is a plain name usable after `.`.
    ident: bool,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn peek(&self) -> Option<(usize, char)> {
        self.src[self.pos..].chars().next().map(|c| (self.pos, c))
    }

    fn char_pos(&self) -> usize {
        self.src[..self.pos].chars().count()
    }

    fn error(&self, byte: usize, message: String) -> ExprError {
        let col = self.src[..byte.min(self.src.len())].chars().count() + 1;
        ExprError::new(format!("at position {col}: {message}"), Some(self.src))
    }

    fn skip_ws(&mut self) {
        while let Some((_, c)) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn eat(&mut self, want: char) -> bool {
        self.skip_ws();
        match self.peek() {
            Some((_, c)) if c == want => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, want: char, context: &str) -> Result<(), ExprError> {
        if self.eat(want) {
            return Ok(());
        }
        let found = self.peek().map_or("the end of the expression".to_string(), |(_, c)| format!("'{c}'"));
        Err(self.error(self.pos, format!("expected '{want}' {context}, found {found}")))
    }

    fn expression(&mut self) -> Result<String, ExprError> {
        let base = self.primary()?;
        self.postfix(base)
    }

    fn primary(&mut self) -> Result<String, ExprError> {
        self.skip_ws();
        let Some((start, c)) = self.peek() else {
            return Err(self.error(self.pos, "expected an expression, found the end".into()));
        };
        match c {
            '\'' => self.string(),
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                let name = self.ident();
                self.skip_ws();
                if self.peek().is_some_and(|(_, c)| c == '(') {
                    return self.call(&name, start);
                }
                match name.to_ascii_lowercase().as_str() {
                    "true" => Ok("true".into()),
                    "false" => Ok("false".into()),
                    "null" => Ok("none".into()),
                    _ => Err(self.error(
                        start,
                        format!("'{name}' is not a function call or literal: write {name}(…)"),
                    )),
                }
            }
            other => Err(self.error(start, format!("unexpected '{other}'"))),
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while let Some((_, c)) = self.peek() {
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.src[start..self.pos].to_string()
    }

    fn number(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        if let Some((_, c @ ('-' | '+'))) = self.peek() {
            self.pos += c.len_utf8();
        }
        while let Some((_, c)) = self.peek() {
            if !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E') {
                break;
            }
            self.pos += 1;
        }
        let text = &self.src[start..self.pos];
        if text.parse::<f64>().is_err() {
            return Err(self.error(start, format!("'{text}' is not a number")));
        }
        let text = text.trim_start_matches('+');
        Ok(match text.strip_prefix('.') {
            Some(frac) => format!("0.{frac}"),
            None => match text.strip_prefix("-.") {
                Some(frac) => format!("-0.{frac}"),
                None => text.to_string(),
            },
        })
    }

    /// A single-quoted literal with `''` for a quote, as a minijinja literal.
    fn string(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some((_, c)) = self.peek() else {
                return Err(self.error(start, "this string is not closed: add the closing '".into()));
            };
            self.pos += c.len_utf8();
            if c == '\'' {
                if self.peek().is_some_and(|(_, n)| n == '\'') {
                    self.pos += 1;
                    value.push('\'');
                    continue;
                }
                break;
            }
            value.push(c);
        }
        Ok(quote(&value))
    }

    fn call(&mut self, name: &str, start: usize) -> Result<String, ExprError> {
        let ours = self.function_name(name, start)?;
        self.expect('(', "after the function name")?;
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.expression()?);
                if self.eat(')') {
                    break;
                }
                self.expect(',', &format!("or ')' in the arguments of {name}()"))?;
            }
        }
        Ok(format!("{ours}({})", args.join(", ")))
    }

    fn function_name(&self, name: &str, start: usize) -> Result<&'static str, ExprError> {
        let lower = name.to_ascii_lowercase();
        if let Some(ours) = NAMES.get(&lower) {
            return Ok(ours);
        }
        if UNSUPPORTED.contains(&lower.as_str()) {
            return Err(self.error(start, format!("the function '{name}' is not supported by coflow")));
        }
        Err(self.error(start, format!("unknown function '{name}'")))
    }

    fn postfix(&mut self, base: String) -> Result<String, ExprError> {
        let mut out = base;
        let mut safe_keys: Vec<String> = Vec::new();
        while let Some(access) = self.access()? {
            if access.safe {
                safe_keys.push(access.key);
                continue;
            }
            if !safe_keys.is_empty() {
                out = format!("opt({out}, {})", std::mem::take(&mut safe_keys).join(", "));
            }
            out = if access.ident {
                format!("{out}.{}", unquote_ident(&access.key))
            } else {
                format!("{out}[{}]", access.key)
            };
        }
        if !safe_keys.is_empty() {
            out = format!("opt({out}, {})", safe_keys.join(", "));
        }
        Ok(out)
    }

    /// Reads `?`, `.name` or `[expr]`; a `/` path key expands into several accesses.
    fn access(&mut self) -> Result<Option<Access>, ExprError> {
        self.skip_ws();
        let save = self.pos;
        let safe = self.eat('?');
        self.skip_ws();
        match self.peek() {
            Some((_, '.')) => {
                self.pos += 1;
                self.skip_ws();
                let at = self.pos;
                let name = self.ident();
                if name.is_empty() {
                    return Err(self.error(at, "expected a property name after '.'".into()));
                }
                Ok(Some(Access { safe, key: quote(&name), ident: is_ident(&name) }))
            }
            Some((_, '[')) => {
                self.pos += 1;
                let key = self.expression()?;
                self.expect(']', "to close '['")?;
                Ok(Some(self.path_access(safe, key)))
            }
            _ if safe => Err(self.error(save, "expected '.' or '[' after '?'".into())),
            _ => {
                self.pos = save;
                Ok(None)
            }
        }
    }

    /// `['body/value']` means `['body']['value']` in Power Automate's designer.
    fn path_access(&mut self, safe: bool, key: String) -> Access {
        let literal = unquote_literal(&key);
        match literal {
            Some(text) if text.contains('/') && !text.starts_with('/') && !text.ends_with('/') => {
                let keys: Vec<String> = text.split('/').map(quote).collect();
                // Rendered as one access whose key lists every step; `postfix` handles the join.
                let joined = keys.join(if safe { ", " } else { "][" });
                Access { safe, key: joined, ident: false }
            }
            Some(text) => Access { safe, key, ident: is_ident(&text) },
            None => Access { safe, key, ident: false },
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(s, "true" | "false" | "none" | "and" | "or" | "not" | "if" | "else" | "in" | "is")
}

/// A minijinja single-quoted literal.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The text of a literal produced by [`quote`], if `key` is exactly one.
fn unquote_literal(key: &str) -> Option<String> {
    let inner = key.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            '\'' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn unquote_ident(key: &str) -> String {
    unquote_literal(key).unwrap_or_else(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_calls_and_access() {
        assert_eq!(
            translate_expression("@concat('a', triggerBody()?['x'])").unwrap(),
            "concat('a', opt(triggerBody(), 'x'))"
        );
        assert_eq!(translate_expression("if(equals(1,1),'y','n')").unwrap(), "if_(equals(1, 1), 'y', 'n')");
        assert_eq!(translate_expression("utcnow()").unwrap(), "utcNow()");
        assert_eq!(translate_expression("body('a')['b'].c").unwrap(), "body('a').b.c");
        assert_eq!(
            translate_expression("outputs('a')?['body/value']").unwrap(),
            "opt(outputs('a'), 'body', 'value')"
        );
        assert_eq!(translate_expression("body('a')?['x']['y']").unwrap(), "opt(body('a'), 'x').y");
        assert_eq!(translate_expression("'it''s'").unwrap(), r"'it\'s'");
    }

    #[test]
    fn translates_values() {
        assert_eq!(translate_value("@add(1, 2)").unwrap(), "{{ add(1, 2) }}");
        assert_eq!(translate_value("@{add(1, 2)}").unwrap(), "{{ string(add(1, 2)) }}");
        assert_eq!(translate_value("n=@{add(1, 2)}!").unwrap(), "n={{ add(1, 2) }}!");
        assert_eq!(translate_value("@@x").unwrap(), "@x");
        assert_eq!(translate_value("a@b.com").unwrap(), "a@b.com");
        assert_eq!(translate_value("{{x}}").unwrap(), "{{ '{{' }}x}}");
    }

    #[test]
    fn translates_operands() {
        use serde_json::json;
        assert_eq!(translate_operand(&json!("@variables('n')")).unwrap(), "variables('n')");
        assert_eq!(translate_operand(&json!("it's")).unwrap(), r"'it\'s'");
        assert_eq!(
            translate_operand(&json!("id-@{item()?['x']}!")).unwrap(),
            "concat('id-', opt(item(), 'x'), '!')"
        );
        assert_eq!(translate_operand(&json!("@{add(1, 2)}")).unwrap(), "string(add(1, 2))");
        assert_eq!(translate_operand(&json!(["@true", 2, null])).unwrap(), "[true, 2, none]");
        assert_eq!(translate_operand(&json!({"a": "b"})).unwrap(), "{'a': 'b'}");
        assert_eq!(translate_operand(&json!("@@home")).unwrap(), "'@home'");
        assert_eq!(translate_function_name("greaterorequals").unwrap(), "greaterOrEquals");
        assert!(translate_function_name("xpath").unwrap_err().message.contains("not supported"));
        assert!(translate_function_name("appsetting").unwrap_err().message.contains("not supported"));
        assert_eq!(
            translate_expression("actionOutputs('A')['statusCode']").unwrap(),
            "outputs('A').statusCode"
        );
        assert_eq!(translate_expression("actionBody('A')").unwrap(), "body('A')");
    }

    #[test]
    fn reports_positions() {
        let e = translate_expression("concat('a', ").unwrap_err();
        assert!(e.message.starts_with("at position 12"), "{}", e.message);
        let e = translate_expression("@concat('a)").unwrap_err();
        assert!(e.message.starts_with("at position 9"), "{}", e.message);
        assert!(translate_expression("foo(1)").unwrap_err().message.contains("unknown function 'foo'"));
    }
}
