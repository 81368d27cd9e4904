//! The OData subset the Referrals API list accepts: `$filter`, `$orderby`, `$select`.
//!
//! `$filter` grammar:
//!
//! ```text
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")" | call | compare
//! compare := path OP literal            OP: eq ne gt ge lt le
//! call    := path "/any(" var ":" or ")" | path "/all(" var ":" or ")"
//!          | (contains|startswith|endswith) "(" path "," literal ")"
//! literal := 'text' ('' escapes a quote) | number | true | false | null
//!          | 2024-02-24T21:04:06Z (an unquoted DateTimeOffset)
//! path    := name ("/" name)*               e.g. customerProfile/address/country
//! ```
//!
//! Comparisons between a date-time field and a literal that reads as a date-time (quoted or not)
//! compare instants, so `updatedDateTime gt '2024-02-24T21:04:06Z'` works as well.

use std::cmp::Ordering;

use jiff::Timestamp;
use serde_json::Value;

/// Why a query option was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Either side holds.
    Or(Box<Filter>, Box<Filter>),
    /// Both sides hold.
    And(Box<Filter>, Box<Filter>),
    /// The inner filter does not hold.
    Not(Box<Filter>),
    /// A field compared with a literal.
    Compare(Vec<String>, Op, Value),
    /// Some (`any`) or every (`all`) element of an array field satisfies the body.
    Lambda {
        /// True for `all`.
        all: bool,
        /// The array field.
        path: Vec<String>,
        /// The range variable.
        var: String,
        /// The condition on each element.
        body: Box<Filter>,
    },
    /// `contains`, `startswith` or `endswith` on a string field.
    Text(TextFn, Vec<String>, String),
}

/// String functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFn {
    /// Substring.
    Contains,
    /// Prefix.
    StartsWith,
    /// Suffix.
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' | ')' | ',' | ':' => {
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Colon,
                });
                i += 1;
            }
            '\'' => {
                let (text, next) = quoted(&chars, i)?;
                tokens.push(Token::Text(text));
                i = next;
            }
            _ => {
                // Literals starting with a digit or sign may hold ':' (date-times), names may not.
                let literal = c.is_ascii_digit() || c == '-' || c == '+';
                let start = i;
                while i < chars.len() && word_char(chars[i], literal) {
                    i += 1;
                }
                if start == i {
                    return err(format!("unexpected character '{c}' in $filter"));
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

fn word_char(c: char, literal: bool) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '/' | '.' | '-' | '$' | '@')
        || (literal && matches!(c, ':' | '+'))
}

fn quoted(chars: &[char], open: usize) -> Result<(String, usize), QueryError> {
    let mut text = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                text.push('\'');
                i += 2;
                continue;
            }
            return Ok((text, i + 1));
        }
        text.push(chars[i]);
        i += 1;
    }
    err("unterminated string literal in $filter; close it with '")
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// Parses a `$filter` expression.
pub fn parse_filter(input: &str) -> Result<Filter, QueryError> {
    let mut parser = Parser { tokens: tokenize(input)?, pos: 0 };
    let filter = parser.or()?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) => err(format!("unexpected {} after a complete $filter expression", describe(token))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("'{w}'"),
        Token::Text(t) => format!("string '{t}'"),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Comma => "','".into(),
        Token::Colon => "':'".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, expected: Token) -> Result<(), QueryError> {
        match self.next() {
            Some(token) if token == expected => Ok(()),
            Some(token) => {
                err(format!("expected {} in $filter, found {}", describe(&expected), describe(&token)))
            }
            None => err(format!("$filter ends early; expected {}", describe(&expected))),
        }
    }

    fn or(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, QueryError> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) => self.after_word(word),
            Some(token) => err(format!("expected a property name in $filter, found {}", describe(&token))),
            None => err("$filter is empty or ends early; expected a property name"),
        }
    }

    fn after_word(&mut self, word: String) -> Result<Filter, QueryError> {
        if self.peek() == Some(&Token::Open) {
            return self.call(word);
        }
        let op = match self.next() {
            Some(Token::Word(op)) => parse_op(&op)?,
            _ => return err(format!("expected an operator (eq, ne, gt, ge, lt, le) after '{word}'")),
        };
        let literal = self.literal()?;
        Ok(Filter::Compare(split_path(&word), op, literal))
    }

    fn call(&mut self, word: String) -> Result<Filter, QueryError> {
        self.expect(Token::Open)?;
        let lower = word.to_ascii_lowercase();
        if let Some(base) = lower.strip_suffix("/any").or_else(|| lower.strip_suffix("/all")) {
            let path = split_path(&word[..base.len()]);
            let var = match self.next() {
                Some(Token::Word(var)) => var,
                _ => return err("expected a range variable, as in team/any(t:t/email eq 'x')"),
            };
            self.expect(Token::Colon)?;
            let body = self.or()?;
            self.expect(Token::Close)?;
            return Ok(Filter::Lambda { all: lower.ends_with("/all"), path, var, body: Box::new(body) });
        }
        let function = match lower.as_str() {
            "contains" => TextFn::Contains,
            "startswith" => TextFn::StartsWith,
            "endswith" => TextFn::EndsWith,
            _ => {
                return err(format!(
                    "unknown $filter function '{word}'; use contains, startswith, endswith, any or all"
                ));
            }
        };
        let path = match self.next() {
            Some(Token::Word(path)) => split_path(&path),
            _ => return err(format!("{word} takes a property name first")),
        };
        self.expect(Token::Comma)?;
        let text = match self.literal()? {
            Value::String(text) => text,
            _ => return err(format!("{word} takes a string literal second")),
        };
        self.expect(Token::Close)?;
        Ok(Filter::Text(function, path, text))
    }

    fn literal(&mut self) -> Result<Value, QueryError> {
        match self.next() {
            Some(Token::Text(text)) => Ok(Value::String(text)),
            Some(Token::Word(word)) => word_literal(&word),
            Some(token) => err(format!("expected a literal, found {}", describe(&token))),
            None => err("$filter ends early; expected a literal"),
        }
    }
}

fn word_literal(word: &str) -> Result<Value, QueryError> {
    match word {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "null" => return Ok(Value::Null),
        _ => {}
    }
    if let Ok(number) = word.parse::<i64>() {
        return Ok(number.into());
    }
    if let Some(number) = word.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        return Ok(Value::Number(number));
    }
    if word.parse::<Timestamp>().is_ok() {
        return Ok(Value::String(word.to_owned()));
    }
    err(format!(
        "'{word}' is not a literal; quote strings as 'text' and write date-times as 2024-01-31T00:00:00Z"
    ))
}

fn parse_op(op: &str) -> Result<Op, QueryError> {
    Ok(match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return err(format!("unknown operator '{op}'; use eq, ne, gt, ge, lt or le")),
    })
}

fn split_path(path: &str) -> Vec<String> {
    path.split('/').map(str::to_owned).collect()
}

impl Filter {
    /// The first path segment of every property the filter reads (range variables excluded).
    pub fn roots(&self) -> Vec<String> {
        let mut roots = Vec::new();
        self.collect_roots(&[], &mut roots);
        roots
    }

    fn collect_roots(&self, vars: &[&str], roots: &mut Vec<String>) {
        let mut push = |path: &[String]| {
            if let Some(first) = path.first().filter(|f| !vars.contains(&f.as_str())) {
                roots.push(first.clone());
            }
        };
        match self {
            Filter::Or(a, b) | Filter::And(a, b) => {
                a.collect_roots(vars, roots);
                b.collect_roots(vars, roots);
            }
            Filter::Not(inner) => inner.collect_roots(vars, roots),
            Filter::Compare(path, ..) | Filter::Text(_, path, _) => push(path),
            Filter::Lambda { path, var, body, .. } => {
                push(path);
                let mut inner_vars = vars.to_vec();
                inner_vars.push(var);
                body.collect_roots(&inner_vars, roots);
            }
        }
    }

    /// Whether a referral satisfies the filter.
    pub fn matches(&self, item: &Value) -> bool {
        self.eval(item, &[])
    }

    fn eval(&self, item: &Value, scope: &[(&str, &Value)]) -> bool {
        match self {
            Filter::Or(a, b) => a.eval(item, scope) || b.eval(item, scope),
            Filter::And(a, b) => a.eval(item, scope) && b.eval(item, scope),
            Filter::Not(inner) => !inner.eval(item, scope),
            Filter::Compare(path, op, literal) => compare(resolve(item, path, scope), *op, literal),
            Filter::Text(function, path, needle) => match resolve(item, path, scope) {
                Some(Value::String(text)) => match function {
                    TextFn::Contains => text.contains(needle.as_str()),
                    TextFn::StartsWith => text.starts_with(needle.as_str()),
                    TextFn::EndsWith => text.ends_with(needle.as_str()),
                },
                _ => false,
            },
            Filter::Lambda { all, path, var, body } => {
                let Some(Value::Array(elements)) = resolve(item, path, scope) else {
                    return *all;
                };
                let test = |element: &Value| {
                    let mut inner = scope.to_vec();
                    inner.push((var.as_str(), element));
                    body.eval(item, &inner)
                };
                if *all { elements.iter().all(test) } else { elements.iter().any(test) }
            }
        }
    }
}

fn resolve<'a>(item: &'a Value, path: &[String], scope: &[(&str, &'a Value)]) -> Option<&'a Value> {
    let (start, rest) = match path.split_first() {
        Some((first, rest)) => match scope.iter().rev().find(|(var, _)| var == first) {
            Some((_, bound)) => (*bound, rest),
            None => (item, path),
        },
        None => return Some(item),
    };
    rest.iter().try_fold(start, |value, key| value.get(key))
}

fn compare(field: Option<&Value>, op: Op, literal: &Value) -> bool {
    let field = field.unwrap_or(&Value::Null);
    match order(field, literal) {
        Some(ordering) => match op {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
        },
        // Values of different kinds are never equal and never ordered.
        None => op == Op::Ne,
    }
}

/// Orders two JSON values of the same kind; date-time strings compare as instants.
pub fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::Number(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => match (x.parse::<Timestamp>(), y.parse::<Timestamp>()) {
            (Ok(x), Ok(y)) => Some(x.cmp(&y)),
            _ => Some(x.cmp(y)),
        },
        _ => None,
    }
}

/// One `$orderby` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    /// The property path.
    pub path: Vec<String>,
    /// True for `desc`.
    pub descending: bool,
}

/// Parses `$orderby`, e.g. `updatedDateTime desc, createdDateTime`.
pub fn parse_orderby(input: &str) -> Result<Vec<OrderKey>, QueryError> {
    input
        .split(',')
        .map(str::trim)
        .map(|part| {
            let mut words = part.split_whitespace();
            let path = words.next().ok_or_else(|| QueryError("$orderby has an empty key".into()))?;
            let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return err(format!("$orderby direction '{other}' must be asc or desc"));
                }
            };
            if words.next().is_some() {
                return err(format!("$orderby key '{part}' has extra words"));
            }
            Ok(OrderKey { path: split_path(path), descending })
        })
        .collect()
}

/// Compares two referrals by the `$orderby` keys; nulls sort first, as OData does.
pub fn compare_by(keys: &[OrderKey], a: &Value, b: &Value) -> Ordering {
    for key in keys {
        let x = resolve(a, &key.path, &[]).unwrap_or(&Value::Null);
        let y = resolve(b, &key.path, &[]).unwrap_or(&Value::Null);
        let ordering = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => order(x, y).unwrap_or(Ordering::Equal),
        };
        let ordering = if key.descending { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn referral() -> Value {
        json!({
            "status": "New", "substatus": "Pending", "direction": "Incoming",
            "updatedDateTime": "2024-03-01T09:15:00.1234567Z",
            "customerProfile": {"address": {"country": "US"}},
            "details": {"dealValue": 50000},
            "team": [{"email": "r2d2@contoso.com"}, {"email": "c3po@contoso.com"}],
            "name": "Northwind - D365 'FS'"
        })
    }

    fn check(filter: &str) -> bool {
        parse_filter(filter).unwrap().matches(&referral())
    }

    #[test]
    fn documented_examples() {
        assert!(check("status eq 'New' and substatus eq 'Pending'"));
        assert!(check("customerProfile/address/country eq 'US' and direction eq 'Incoming'"));
        assert!(check("(direction eq 'Incoming' and substatus eq 'Pending')"));
        assert!(check("team/any(t:t/email eq 'r2d2@contoso.com')"));
        assert!(!check("team/any(t:t/email eq 'bb8@contoso.com')"));
        assert!(!check("team/all(t:t/email eq 'r2d2@contoso.com')"));
    }

    #[test]
    fn datetimes_numbers_and_logic() {
        assert!(check("updatedDateTime gt 2024-03-01T09:15:00Z"));
        assert!(check("updatedDateTime le '2024-03-01T09:15:00.2Z'"));
        assert!(!check("updatedDateTime lt 2024-03-01T09:15:00+00:00"));
        assert!(check("details/dealValue ge 50000 and details/dealValue lt 50000.5"));
        assert!(check("status eq 'Closed' or not (status eq 'Active')"));
        assert!(check("name eq 'Northwind - D365 ''FS'''"));
        assert!(check("contains(name,'D365') and startswith(name, 'North')"));
        assert!(check("statusReason eq null and status ne null"));
    }

    #[test]
    fn errors_say_what_to_fix() {
        for bad in [
            "status eq",
            "status is 'New'",
            "status eq 'New",
            "status eq New",
            "(status eq 'New'",
            "status eq 'New' extra",
            "",
            "nope(status, 'x')",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roots_skip_range_variables() {
        let filter = parse_filter("team/any(t:t/email eq 'x') and status eq 'New'").unwrap();
        assert_eq!(filter.roots(), vec!["team", "status"]);
    }

    #[test]
    fn orderby() {
        let keys = parse_orderby("updatedDateTime desc, name").unwrap();
        assert!(keys[0].descending && !keys[1].descending);
        assert!(parse_orderby("name sideways").is_err());
        let a = json!({"updatedDateTime": "2024-01-01T00:00:00.0000001Z"});
        let b = json!({"updatedDateTime": "2024-01-01T00:00:00Z"});
        assert_eq!(compare_by(&keys, &a, &b), Ordering::Less);
    }
}
