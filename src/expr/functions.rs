//! The pure part of the Power Automate function library: string, collection, logical,
//! conversion, math, URI and JSON functions. Each takes JSON arguments and gives JSON back.
//!
//! Date and time functions live in `datetime`, the ones reading the run in `workflow`.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jsonpath_rust::JsonPath as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::numfmt;
use super::values::{describe, float_value, text, type_name};

/// A library function: its name, how many arguments it takes, and its body.
pub(crate) struct Def {
    /// The name flows call it by.
    pub name: &'static str,
    /// Fewest arguments.
    pub min: usize,
    /// Most arguments (`usize::MAX` for any number).
    pub max: usize,
    /// The body.
    pub f: fn(&[Value]) -> Result<Value, String>,
}

const MANY: usize = usize::MAX;

const fn def(name: &'static str, min: usize, max: usize, f: fn(&[Value]) -> Result<Value, String>) -> Def {
    Def { name, min, max, f }
}

/// Every pure function, by the name flows use.
pub(crate) const PURE: &[Def] = &[
    // strings
    def("chunk", 2, 2, chunk),
    def("concat", 1, MANY, concat),
    def("endsWith", 2, 2, ends_with),
    def("formatNumber", 2, 3, format_number),
    def("guid", 0, 1, guid),
    def("indexOf", 2, 2, index_of),
    def("isFloat", 1, 2, is_float),
    def("isInt", 1, 1, is_int),
    def("lastIndexOf", 2, 2, last_index_of),
    def("length", 1, 1, length),
    def("nthIndexOf", 3, 3, nth_index_of),
    def("replace", 3, 3, replace),
    def("slice", 2, 3, slice),
    def("split", 2, 2, split),
    def("startsWith", 2, 2, starts_with),
    def("substring", 2, 3, substring),
    def("toLower", 1, 1, to_lower),
    def("toUpper", 1, 1, to_upper),
    def("trim", 1, 1, trim),
    // collections
    def("contains", 2, 2, contains),
    def("empty", 1, 1, empty),
    def("first", 1, 1, first),
    def("intersection", 1, MANY, intersection),
    def("join", 2, 2, join),
    def("last", 1, 1, last),
    def("reverse", 1, 1, reverse),
    def("skip", 2, 2, skip),
    def("sort", 1, 2, sort),
    def("take", 2, 2, take),
    def("union", 1, MANY, union),
    // logic
    def("and_", 1, MANY, and),
    def("equals", 2, 2, equals),
    def("greater", 2, 2, greater),
    def("greaterOrEquals", 2, 2, greater_or_equals),
    def("if_", 3, 3, if_),
    def("less", 2, 2, less),
    def("lessOrEquals", 2, 2, less_or_equals),
    def("not_", 1, 1, not),
    def("or_", 1, MANY, or),
    // conversions
    def("array", 1, 1, array),
    def("base64", 1, 1, base64),
    def("base64ToBinary", 1, 1, base64_to_binary),
    def("base64ToString", 1, 1, base64_to_string),
    def("binary", 1, 1, binary),
    def("bool", 1, 1, to_bool),
    def("createArray", 0, MANY, create_array),
    def("dataUri", 1, 1, data_uri),
    def("dataUriToBinary", 1, 1, data_uri_to_binary),
    def("dataUriToString", 1, 1, data_uri_to_string),
    def("decimal", 1, 1, decimal),
    def("decodeBase64", 1, 1, base64_to_string),
    def("decodeDataUri", 1, 1, data_uri_to_string),
    def("decodeUriComponent", 1, 1, decode_uri_component),
    def("encodeUriComponent", 1, 1, encode_uri_component),
    def("float", 1, 2, to_float),
    def("int", 1, 1, to_int),
    def("json", 1, 1, to_json),
    def("string", 1, 1, to_string),
    def("uriComponent", 1, 1, encode_uri_component),
    def("uriComponentToBinary", 1, 1, uri_component_to_binary),
    def("uriComponentToString", 1, 1, decode_uri_component),
    def("xml", 1, 1, to_xml),
    // maths
    def("add", 2, 2, add),
    def("div", 2, 2, div),
    def("max", 1, MANY, max),
    def("min", 1, MANY, min),
    def("mod", 2, 2, modulo),
    def("mul", 2, 2, mul),
    def("rand", 2, 2, rand),
    def("range", 2, 2, range),
    def("sub", 2, 2, sub),
    // URIs
    def("uriHost", 1, 1, uri_host),
    def("uriPath", 1, 1, uri_path),
    def("uriPathAndQuery", 1, 1, uri_path_and_query),
    def("uriPort", 1, 1, uri_port),
    def("uriQuery", 1, 1, uri_query),
    def("uriScheme", 1, 1, uri_scheme),
    // JSON
    def("addProperty", 3, 3, add_property),
    def("coalesce", 1, MANY, coalesce),
    def("removeProperty", 2, 2, remove_property),
    def("setProperty", 3, 3, set_property),
    // coflow additions
    def("jsonpath", 2, 2, jsonpath),
    def("soql_quote", 1, 1, soql_quote),
];

type R = Result<Value, String>;

// ---- argument helpers -------------------------------------------------------------------

fn str_arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{what} must be a string, not {} {}", type_name(other), describe(other))),
        None => Err(format!("{what} is missing")),
    }
}

/// A string argument where `null` counts as empty text, as Power Automate's string functions do.
fn text_arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a str, String> {
    match args.get(i) {
        Some(Value::Null) => Ok(""),
        _ => str_arg(args, i, what),
    }
}

pub(crate) fn int_arg(args: &[Value], i: usize, what: &str) -> Result<i64, String> {
    match args.get(i) {
        Some(Value::Number(n)) => {
            n.as_i64().ok_or_else(|| format!("{what} must be an integer, not {}", describe(&args[i])))
        }
        Some(other) => {
            Err(format!("{what} must be an integer, not {} {}", type_name(other), describe(other)))
        }
        None => Err(format!("{what} is missing")),
    }
}

fn index_arg(args: &[Value], i: usize, what: &str) -> Result<usize, String> {
    let n = int_arg(args, i, what)?;
    usize::try_from(n).map_err(|_| format!("{what} must not be negative, got {n}"))
}

fn array_arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a Vec<Value>, String> {
    match args.get(i) {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!("{what} must be an array, not {} {}", type_name(other), describe(other))),
        None => Err(format!("{what} is missing")),
    }
}

fn bool_arg(args: &[Value], i: usize, what: &str) -> Result<bool, String> {
    match args.get(i) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{what} must be a boolean, not {} {}", type_name(other), describe(other))),
        None => Err(format!("{what} is missing")),
    }
}

fn chars_len(s: &str) -> usize {
    s.chars().count()
}

/// The char index of a byte offset.
fn char_index(s: &str, byte: usize) -> usize {
    s[..byte].chars().count()
}

/// Substring by char positions `[start, end)`.
fn char_slice(s: &str, start: usize, end: usize) -> String {
    s.chars().skip(start).take(end.saturating_sub(start)).collect()
}

// ---- strings ----------------------------------------------------------------------------

fn chunk(args: &[Value]) -> R {
    let size = index_arg(args, 1, "the chunk length")?;
    if size == 0 {
        return Err("the chunk length must be greater than 0".into());
    }
    match &args[0] {
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            Ok(Value::Array(chars.chunks(size).map(|c| Value::String(c.iter().collect())).collect()))
        }
        Value::Array(a) => Ok(Value::Array(a.chunks(size).map(|c| Value::Array(c.to_vec())).collect())),
        other => Err(format!("expects a string or an array, not {}", type_name(other))),
    }
}

fn concat(args: &[Value]) -> R {
    let mut out = String::new();
    for a in args {
        out.push_str(&text(a));
    }
    Ok(Value::String(out))
}

fn ends_with(args: &[Value]) -> R {
    let (s, p) = (text_arg(args, 0, "the text")?, text_arg(args, 1, "the search text")?);
    Ok(Value::Bool(s.to_lowercase().ends_with(&p.to_lowercase())))
}

fn starts_with(args: &[Value]) -> R {
    let (s, p) = (text_arg(args, 0, "the text")?, text_arg(args, 1, "the search text")?);
    Ok(Value::Bool(s.to_lowercase().starts_with(&p.to_lowercase())))
}

fn format_number(args: &[Value]) -> R {
    let n = number_arg(&args[0], "the number")?;
    let format = str_arg(args, 1, "the format")?;
    let locale = match args.get(2) {
        Some(Value::Null) | None => "en-US",
        Some(_) => str_arg(args, 2, "the locale")?,
    };
    numfmt::format_number(n, format, locale).map(Value::String)
}

fn guid(args: &[Value]) -> R {
    let id = uuid::Uuid::new_v4();
    let format = match args.first() {
        None | Some(Value::Null) => "D",
        Some(_) => str_arg(args, 0, "the format")?,
    };
    let text = match format {
        "N" | "n" => id.simple().to_string(),
        "D" | "d" => id.hyphenated().to_string(),
        "B" | "b" => id.braced().to_string(),
        "P" | "p" => format!("({})", id.hyphenated()),
        "X" | "x" => {
            let b = id.as_bytes();
            let hex = |r: &[u8]| r.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let tail: Vec<String> = b[8..].iter().map(|x| format!("0x{x:02x}")).collect();
            format!("{{0x{},0x{},0x{},{{{}}}}}", hex(&b[0..4]), hex(&b[4..6]), hex(&b[6..8]), tail.join(","))
        }
        other => return Err(format!("unknown guid format '{other}': use N, D, B, P or X")),
    };
    Ok(Value::String(text))
}

/// Case-insensitive search, as Power Automate's `indexOf` does; the result counts chars.
fn find_ci(text: &str, search: &str) -> Option<usize> {
    let (t, s) = (text.to_lowercase(), search.to_lowercase());
    t.find(&s).map(|b| char_index(&t, b))
}

fn index_of(args: &[Value]) -> R {
    let (t, s) = (text_arg(args, 0, "the text")?, text_arg(args, 1, "the search text")?);
    Ok(json!(find_ci(t, s).map_or(-1, |i| i as i64)))
}

fn last_index_of(args: &[Value]) -> R {
    let (t, s) = (text_arg(args, 0, "the text")?, text_arg(args, 1, "the search text")?);
    if s.is_empty() {
        // Documented: an empty search text gives length - 1 (and 0 when both are empty).
        return Ok(json!((chars_len(t) as i64 - 1).max(0)));
    }
    let (tl, sl) = (t.to_lowercase(), s.to_lowercase());
    Ok(json!(tl.rfind(&sl).map_or(-1, |b| char_index(&tl, b) as i64)))
}

fn nth_index_of(args: &[Value]) -> R {
    let (t, s) = (text_arg(args, 0, "the text")?, text_arg(args, 1, "the search text")?);
    let n = int_arg(args, 2, "the occurrence")?;
    if n == 0 {
        return Err("the occurrence must not be 0".into());
    }
    let (tl, sl) = (t.to_lowercase(), s.to_lowercase());
    let mut hits: Vec<usize> = tl.match_indices(&sl).map(|(b, _)| char_index(&tl, b)).collect();
    if n < 0 {
        hits.reverse();
    }
    let wanted = n.unsigned_abs() as usize - 1;
    Ok(json!(hits.get(wanted).map_or(-1, |i| *i as i64)))
}

fn is_float(args: &[Value]) -> R {
    let locale = match args.get(1) {
        Some(Value::String(l)) => l.as_str(),
        _ => "",
    };
    Ok(Value::Bool(match &args[0] {
        Value::String(s) => parse_float(s, locale).is_ok(),
        Value::Number(_) => true,
        _ => false,
    }))
}

fn is_int(args: &[Value]) -> R {
    Ok(Value::Bool(match &args[0] {
        Value::String(s) => s.trim().parse::<i64>().is_ok(),
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }))
}

fn length(args: &[Value]) -> R {
    match &args[0] {
        Value::String(s) => Ok(json!(chars_len(s))),
        Value::Array(a) => Ok(json!(a.len())),
        Value::Object(o) => Ok(json!(o.len())),
        other => Err(format!("expects a string or an array, not {}", type_name(other))),
    }
}

fn replace(args: &[Value]) -> R {
    let t = text_arg(args, 0, "the text")?;
    let old = str_arg(args, 1, "the old text")?;
    let new = text_arg(args, 2, "the new text")?;
    if old.is_empty() {
        return Err("the old text must not be empty".into());
    }
    Ok(Value::String(t.replace(old, new)))
}

/// Resolves a possibly negative index against a length, clamped to `[0, len]`.
fn clamp_index(i: i64, len: usize) -> usize {
    let len_i = len as i64;
    let v = if i < 0 { len_i + i } else { i };
    v.clamp(0, len_i) as usize
}

fn slice(args: &[Value]) -> R {
    let t = text_arg(args, 0, "the text")?;
    let len = chars_len(t);
    let start = clamp_index(int_arg(args, 1, "the start index")?, len);
    let end = match args.get(2) {
        None | Some(Value::Null) => len,
        Some(_) => clamp_index(int_arg(args, 2, "the end index")?, len),
    };
    Ok(Value::String(if start >= end { String::new() } else { char_slice(t, start, end) }))
}

fn split(args: &[Value]) -> R {
    let t = text_arg(args, 0, "the text")?;
    let d = text_arg(args, 1, "the delimiter")?;
    if d.is_empty() {
        return Ok(json!([t]));
    }
    Ok(Value::Array(t.split(d).map(|p| Value::String(p.to_string())).collect()))
}

fn substring(args: &[Value]) -> R {
    let t = text_arg(args, 0, "the text")?;
    let len = chars_len(t);
    let start = index_arg(args, 1, "the start index")?;
    let count = match args.get(2) {
        None | Some(Value::Null) => len.saturating_sub(start),
        Some(_) => index_arg(args, 2, "the length")?,
    };
    if start > len || start + count > len {
        return Err(format!(
            "the start index {start} plus the length {count} must not exceed the text's length {len}"
        ));
    }
    Ok(Value::String(char_slice(t, start, start + count)))
}

fn to_lower(args: &[Value]) -> R {
    Ok(Value::String(text_arg(args, 0, "the text")?.to_lowercase()))
}

fn to_upper(args: &[Value]) -> R {
    Ok(Value::String(text_arg(args, 0, "the text")?.to_uppercase()))
}

fn trim(args: &[Value]) -> R {
    Ok(Value::String(text_arg(args, 0, "the text")?.trim().to_string()))
}

// ---- collections ------------------------------------------------------------------------

fn contains(args: &[Value]) -> R {
    let needle = &args[1];
    match &args[0] {
        Value::String(s) => Ok(Value::Bool(s.contains(text(needle).as_ref()))),
        Value::Array(a) => Ok(Value::Bool(a.iter().any(|v| loose_eq(v, needle)))),
        Value::Object(o) => Ok(Value::Bool(o.contains_key(text(needle).as_ref()))),
        other => Err(format!(
            "expects its first parameter to be a dictionary, an array, or a string. The provided value is of type '{}'",
            type_name(other)
        )),
    }
}

fn empty(args: &[Value]) -> R {
    match &args[0] {
        Value::Null => Ok(Value::Bool(true)),
        Value::String(s) => Ok(Value::Bool(s.is_empty())),
        Value::Array(a) => Ok(Value::Bool(a.is_empty())),
        Value::Object(o) => Ok(Value::Bool(o.is_empty())),
        other => Err(format!("expects a string, an array or an object, not {}", type_name(other))),
    }
}

fn first(args: &[Value]) -> R {
    match &args[0] {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(s.chars().next().map_or(Value::Null, |c| Value::String(c.to_string()))),
        Value::Array(a) => Ok(a.first().cloned().unwrap_or(Value::Null)),
        other => Err(format!("expects a string or an array, not {}", type_name(other))),
    }
}

fn last(args: &[Value]) -> R {
    match &args[0] {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(s.chars().last().map_or(Value::Null, |c| Value::String(c.to_string()))),
        Value::Array(a) => Ok(a.last().cloned().unwrap_or(Value::Null)),
        other => Err(format!("expects a string or an array, not {}", type_name(other))),
    }
}

fn intersection(args: &[Value]) -> R {
    match &args[0] {
        Value::Array(first) => {
            let mut out: Vec<Value> = Vec::new();
            for v in first {
                let everywhere = args[1..].iter().all(|o| matches!(o, Value::Array(a) if a.contains(v)));
                if everywhere && !out.contains(v) {
                    out.push(v.clone());
                }
            }
            check_all(args, |v| v.is_array(), "arrays")?;
            Ok(Value::Array(out))
        }
        Value::Object(first) => {
            check_all(args, |v| v.is_object(), "objects")?;
            let mut out = Map::new();
            for key in first.keys() {
                let mut value = None;
                for o in args.iter().filter_map(Value::as_object) {
                    value = o.get(key);
                    if value.is_none() {
                        break;
                    }
                }
                if let Some(v) = value {
                    out.insert(key.clone(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        other => Err(format!("expects arrays or objects, not {}", type_name(other))),
    }
}

fn check_all(args: &[Value], ok: fn(&Value) -> bool, what: &str) -> Result<(), String> {
    match args.iter().find(|v| !ok(v)) {
        Some(bad) => Err(format!("expects all parameters to be {what}, but one is {}", type_name(bad))),
        None => Ok(()),
    }
}

fn union(args: &[Value]) -> R {
    match &args[0] {
        Value::Array(_) => {
            check_all(args, |v| v.is_array(), "arrays")?;
            let mut out: Vec<Value> = Vec::new();
            for v in args.iter().filter_map(Value::as_array).flatten() {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        Value::Object(_) => {
            check_all(args, |v| v.is_object(), "objects")?;
            let mut out = Map::new();
            for (k, v) in args.iter().filter_map(Value::as_object).flatten() {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        other => Err(format!("expects arrays or objects, not {}", type_name(other))),
    }
}

fn join(args: &[Value]) -> R {
    let items = array_arg(args, 0, "the collection")?;
    let sep = text_arg(args, 1, "the delimiter")?;
    Ok(Value::String(items.iter().map(|v| text(v).into_owned()).collect::<Vec<_>>().join(sep)))
}

fn reverse(args: &[Value]) -> R {
    let mut items = array_arg(args, 0, "the collection")?.clone();
    items.reverse();
    Ok(Value::Array(items))
}

fn skip(args: &[Value]) -> R {
    let items = array_arg(args, 0, "the collection")?;
    let n = index_arg(args, 1, "the count")?;
    Ok(Value::Array(items.iter().skip(n).cloned().collect()))
}

fn take(args: &[Value]) -> R {
    let n = index_arg(args, 1, "the count")?;
    match &args[0] {
        Value::String(s) => Ok(Value::String(s.chars().take(n).collect())),
        Value::Array(a) => Ok(Value::Array(a.iter().take(n).cloned().collect())),
        other => Err(format!("expects a string or an array, not {}", type_name(other))),
    }
}

fn sort(args: &[Value]) -> R {
    let mut items = array_arg(args, 0, "the collection")?.clone();
    let key = match args.get(1) {
        None | Some(Value::Null) => None,
        Some(_) => Some(str_arg(args, 1, "the sort key")?.to_string()),
    };
    let pick = |v: &Value| -> Value {
        match &key {
            Some(k) => v.get(k.as_str()).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    for v in &items {
        let k = pick(v);
        if !matches!(k, Value::Number(_) | Value::String(_) | Value::Bool(_)) {
            return Err(format!(
                "can only sort by integers, floats, strings or booleans, not {}",
                type_name(&k)
            ));
        }
    }
    let mut failure = None;
    items.sort_by(|a, b| {
        compare(&pick(a), &pick(b)).unwrap_or_else(|e| {
            failure = Some(e);
            Ordering::Equal
        })
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(Value::Array(items)),
    }
}

// ---- logic ------------------------------------------------------------------------------

/// Comparison functions treat `null` as `""` (reference §4.3).
fn null_as_empty(v: &Value) -> &Value {
    static EMPTY: Value = Value::String(String::new());
    if v.is_null() { &EMPTY } else { v }
}

/// `equals`: numbers compare by value, booleans equal 1 and 0, null equals "".
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    let (a, b) = (null_as_empty(a), null_as_empty(b));
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Bool(x), Value::Number(n)) | (Value::Number(n), Value::Bool(x)) => {
            n.as_f64() == Some(if *x { 1.0 } else { 0.0 })
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (null_as_empty(a), null_as_empty(b)) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (x, y) => Err(format!(
            "can only compare two integers, floats or strings, not {} and {}",
            type_name(x),
            type_name(y)
        )),
    }
}

fn equals(args: &[Value]) -> R {
    Ok(Value::Bool(loose_eq(&args[0], &args[1])))
}

fn greater(args: &[Value]) -> R {
    Ok(Value::Bool(compare(&args[0], &args[1])? == Ordering::Greater))
}

fn greater_or_equals(args: &[Value]) -> R {
    Ok(Value::Bool(compare(&args[0], &args[1])? != Ordering::Less))
}

fn less(args: &[Value]) -> R {
    Ok(Value::Bool(compare(&args[0], &args[1])? == Ordering::Less))
}

fn less_or_equals(args: &[Value]) -> R {
    Ok(Value::Bool(compare(&args[0], &args[1])? != Ordering::Greater))
}

fn if_(args: &[Value]) -> R {
    let cond = bool_arg(args, 0, "the condition")?;
    Ok(if cond { args[1].clone() } else { args[2].clone() })
}

fn and(args: &[Value]) -> R {
    let mut all = true;
    for i in 0..args.len() {
        all &= bool_arg(args, i, "each expression")?;
    }
    Ok(Value::Bool(all))
}

fn or(args: &[Value]) -> R {
    let mut any = false;
    for i in 0..args.len() {
        any |= bool_arg(args, i, "each expression")?;
    }
    Ok(Value::Bool(any))
}

fn not(args: &[Value]) -> R {
    Ok(Value::Bool(!bool_arg(args, 0, "the expression")?))
}

// ---- conversions ------------------------------------------------------------------------

fn array(args: &[Value]) -> R {
    Ok(Value::Array(vec![args[0].clone()]))
}

fn create_array(args: &[Value]) -> R {
    Ok(Value::Array(args.to_vec()))
}

/// The bytes a value stands for: a binary envelope's content, else its text.
fn bytes_of(v: &Value) -> Result<Vec<u8>, String> {
    if let Some(content) = v.get("$content").and_then(Value::as_str) {
        return BASE64.decode(content).map_err(|e| format!("the $content is not valid base64: {e}"));
    }
    Ok(text(v).as_bytes().to_vec())
}

fn binary_envelope(content_type: &str, bytes: &[u8]) -> Value {
    json!({"$content-type": content_type, "$content": BASE64.encode(bytes)})
}

fn base64(args: &[Value]) -> R {
    Ok(Value::String(BASE64.encode(bytes_of(&args[0])?)))
}

fn decode_base64(v: &Value) -> Result<Vec<u8>, String> {
    let s = text(v);
    BASE64.decode(s.trim()).map_err(|e| format!("{} is not valid base64: {e}", describe(v)))
}

fn base64_to_binary(args: &[Value]) -> R {
    Ok(binary_envelope("application/octet-stream", &decode_base64(&args[0])?))
}

fn base64_to_string(args: &[Value]) -> R {
    Ok(Value::String(String::from_utf8_lossy(&decode_base64(&args[0])?).into_owned()))
}

fn binary(args: &[Value]) -> R {
    Ok(binary_envelope("application/octet-stream", &bytes_of(&args[0])?))
}

fn to_bool(args: &[Value]) -> R {
    match &args[0] {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::Number(n) => Ok(Value::Bool(n.as_f64() != Some(0.0))),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        other => Err(format!(
            "cannot convert {} to a boolean: use true, false, 'true', 'false' or a number",
            describe(other)
        )),
    }
}

fn data_uri(args: &[Value]) -> R {
    Ok(Value::String(format!("data:text/plain;charset=utf-8;base64,{}", BASE64.encode(bytes_of(&args[0])?))))
}

/// Splits a data URI into its media type and decoded bytes.
fn parse_data_uri(uri: &str) -> Result<(String, Vec<u8>), String> {
    let rest = uri
        .strip_prefix("data:")
        .ok_or_else(|| format!("'{uri}' is not a data URI (it must start with 'data:')"))?;
    let (meta, payload) =
        rest.split_once(',').ok_or_else(|| "the data URI has no ',' before its content".to_string())?;
    let (media, is_base64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let bytes = if is_base64 {
        BASE64.decode(payload).map_err(|e| format!("the data URI's content is not valid base64: {e}"))?
    } else {
        percent_decode_str(payload).collect()
    };
    let media = if media.is_empty() { "text/plain;charset=US-ASCII" } else { media };
    Ok((media.to_string(), bytes))
}

fn data_uri_to_binary(args: &[Value]) -> R {
    let (media, bytes) = parse_data_uri(str_arg(args, 0, "the data URI")?)?;
    let media = media.split(';').next().unwrap_or("application/octet-stream").to_string();
    Ok(binary_envelope(&media, &bytes))
}

fn data_uri_to_string(args: &[Value]) -> R {
    let (_, bytes) = parse_data_uri(str_arg(args, 0, "the data URI")?)?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

fn decimal(args: &[Value]) -> R {
    match &args[0] {
        Value::Number(_) => Ok(args[0].clone()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{} is not a decimal number", describe(&args[0])))
            .and_then(float_value),
        other => Err(format!("cannot convert {} to a decimal number", describe(other))),
    }
}

/// Everything but RFC 3986 unreserved characters, as .NET's `Uri.EscapeDataString`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode_uri_component(args: &[Value]) -> R {
    Ok(Value::String(utf8_percent_encode(&text(&args[0]), URI_COMPONENT).to_string()))
}

fn decode_uri_component(args: &[Value]) -> R {
    let s = text(&args[0]);
    Ok(Value::String(percent_decode_str(&s).decode_utf8_lossy().into_owned()))
}

fn uri_component_to_binary(args: &[Value]) -> R {
    let s = text(&args[0]);
    let bytes: Vec<u8> = percent_decode_str(&s).collect();
    Ok(binary_envelope("application/octet-stream", &bytes))
}

/// Parses a float like .NET does with `NumberStyles.Any`: group separators anywhere, the sign
/// leading or trailing. `de`, `fr`, `es`, `it`, `nl`, `pt`, `is` locales swap `.` and `,`.
pub(crate) fn parse_float(s: &str, locale: &str) -> Result<f64, String> {
    let comma_decimal = numfmt::comma_decimal(locale);
    let (group, point) = if comma_decimal { ('.', ',') } else { (',', '.') };
    let mut negative = false;
    let mut digits = String::new();
    for c in s.trim().chars() {
        match c {
            '-' => negative = !negative,
            '+' => {}
            c if c == group || c == ' ' || c == '\u{a0}' || c == '\u{202f}' => {}
            c if c == point => digits.push('.'),
            c if c.is_ascii_digit() || c == 'e' || c == 'E' => digits.push(c),
            _ => return Err(format!("'{s}' is not a valid number")),
        }
    }
    let value: f64 = digits.parse().map_err(|_| format!("'{s}' is not a valid number"))?;
    Ok(if negative { -value } else { value })
}

fn to_float(args: &[Value]) -> R {
    let locale = match args.get(1) {
        Some(Value::String(l)) => l.as_str(),
        _ => "",
    };
    match &args[0] {
        Value::Number(n) => float_value(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => float_value(parse_float(s, locale)?),
        other => Err(format!("cannot convert {} to a float", describe(other))),
    }
}

fn to_int(args: &[Value]) -> R {
    match &args[0] {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() != 0.0 {
                return Err(format!("{f} is not a whole number: round it first"));
            }
            Ok(json!(f as i64))
        }
        Value::Number(_) => Ok(args[0].clone()),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(|i| json!(i))
            .map_err(|_| format!("the value {} cannot be converted to an integer", describe(&args[0]))),
        other => Err(format!("the value {} cannot be converted to an integer", describe(other))),
    }
}

fn to_json(args: &[Value]) -> R {
    match &args[0] {
        Value::Null => Ok(json!({})),
        Value::String(s) if s.trim_start().starts_with('<') => {
            Err("converting XML to JSON is not supported: pass a JSON string".into())
        }
        Value::String(s) => serde_json::from_str(s).map_err(|e| format!("the text is not valid JSON: {e}")),
        other => Ok(other.clone()),
    }
}

fn to_string(args: &[Value]) -> R {
    Ok(Value::String(text(&args[0]).into_owned()))
}

fn to_xml(args: &[Value]) -> R {
    match &args[0] {
        Value::String(s) if s.trim_start().starts_with('<') => Ok(Value::String(s.clone())),
        Value::String(s) => {
            to_xml(&[serde_json::from_str(s).map_err(|e| format!("the text is neither XML nor JSON: {e}"))?])
        }
        Value::Object(o) if o.len() == 1 => {
            let mut out = String::new();
            for (k, v) in o {
                if v.is_array() {
                    return Err("the root property must not be an array".into());
                }
                write_xml(&mut out, k, v);
            }
            Ok(Value::String(out))
        }
        _ => Err("expects XML text or a JSON object with exactly one root property".into()),
    }
}

fn write_xml(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(|i| write_xml(out, name, i)),
        Value::Object(o) => {
            out.push('<');
            out.push_str(name);
            for (k, v) in o.iter().filter(|(k, _)| k.starts_with('@')) {
                out.push_str(&format!(" {}=\"{}\"", &k[1..], xml_escape(&text(v))));
            }
            out.push('>');
            for (k, v) in o.iter().filter(|(k, _)| !k.starts_with('@')) {
                if k == "#text" {
                    out.push_str(&xml_escape(&text(v)));
                } else {
                    write_xml(out, k, v);
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        other => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(&text(other)))),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

// ---- maths ------------------------------------------------------------------------------

fn number_arg(v: &Value, what: &str) -> Result<f64, String> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        other => Err(format!("{what} must be a number, not {} {}", type_name(other), describe(other))),
    }
}

/// Both operands as integers, when both are.
fn ints(a: &Value, b: &Value) -> Option<(i64, i64)> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if !x.is_f64() && !y.is_f64() => {
            Some((x.as_i64()?, y.as_i64()?))
        }
        _ => None,
    }
}

fn arith(args: &[Value], int: fn(i64, i64) -> Option<i64>, float: fn(f64, f64) -> f64) -> R {
    if let Some((a, b)) = ints(&args[0], &args[1]) {
        return int(a, b)
            .map(|r| json!(r))
            .ok_or_else(|| "the result does not fit in a 64-bit integer".to_string());
    }
    let a = number_arg(&args[0], "the first operand")?;
    let b = number_arg(&args[1], "the second operand")?;
    float_value(float(a, b))
}

fn add(args: &[Value]) -> R {
    arith(args, i64::checked_add, |a, b| a + b)
}

fn sub(args: &[Value]) -> R {
    arith(args, i64::checked_sub, |a, b| a - b)
}

fn mul(args: &[Value]) -> R {
    arith(args, i64::checked_mul, |a, b| a * b)
}

fn check_divisor(args: &[Value]) -> Result<(), String> {
    if number_arg(&args[1], "the divisor")? == 0.0 {
        return Err("cannot divide by zero".into());
    }
    Ok(())
}

fn div(args: &[Value]) -> R {
    check_divisor(args)?;
    arith(args, i64::checked_div, |a, b| a / b)
}

fn modulo(args: &[Value]) -> R {
    check_divisor(args)?;
    arith(args, i64::checked_rem, |a, b| a % b)
}

fn numbers(args: &[Value]) -> Result<Vec<&Value>, String> {
    let items: Vec<&Value> = match args {
        [Value::Array(a)] => a.iter().collect(),
        _ => args.iter().collect(),
    };
    if items.is_empty() {
        return Err("needs at least one number".into());
    }
    for v in &items {
        number_arg(v, "each value")?;
    }
    Ok(items)
}

fn extreme(args: &[Value], want: Ordering) -> R {
    let items = numbers(args)?;
    let mut best = items[0];
    for v in &items[1..] {
        if compare(v, best)? == want {
            best = v;
        }
    }
    Ok(best.clone())
}

fn max(args: &[Value]) -> R {
    extreme(args, Ordering::Greater)
}

fn min(args: &[Value]) -> R {
    extreme(args, Ordering::Less)
}

fn rand(args: &[Value]) -> R {
    let lo = int_arg(args, 0, "the minimum")?;
    let hi = int_arg(args, 1, "the maximum")?;
    if lo >= hi {
        return Err(format!("the minimum {lo} must be less than the maximum {hi}"));
    }
    Ok(json!(::rand::random_range(lo..hi)))
}

fn range(args: &[Value]) -> R {
    let start = int_arg(args, 0, "the start index")?;
    let count = index_arg(args, 1, "the count")?;
    if count > 100_000 {
        return Err(format!("the count {count} exceeds the limit of 100000"));
    }
    Ok(Value::Array((0..count as i64).map(|i| json!(start + i)).collect()))
}

// ---- URIs -------------------------------------------------------------------------------

fn uri(args: &[Value]) -> Result<url::Url, String> {
    let s = str_arg(args, 0, "the URI")?;
    url::Url::parse(s).map_err(|e| format!("'{s}' is not an absolute URI: {e}"))
}

fn uri_host(args: &[Value]) -> R {
    Ok(Value::String(uri(args)?.host_str().unwrap_or_default().to_string()))
}

fn uri_path(args: &[Value]) -> R {
    let u = uri(args)?;
    Ok(Value::String(if u.path().is_empty() { "/".into() } else { u.path().to_string() }))
}

fn uri_path_and_query(args: &[Value]) -> R {
    let u = uri(args)?;
    let path = if u.path().is_empty() { "/" } else { u.path() };
    Ok(Value::String(match u.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }))
}

fn uri_port(args: &[Value]) -> R {
    let u = uri(args)?;
    Ok(u.port_or_known_default().map_or(Value::Null, |p| json!(p)))
}

fn uri_query(args: &[Value]) -> R {
    Ok(Value::String(uri(args)?.query().map(|q| format!("?{q}")).unwrap_or_default()))
}

fn uri_scheme(args: &[Value]) -> R {
    Ok(Value::String(uri(args)?.scheme().to_string()))
}

// ---- JSON -------------------------------------------------------------------------------

fn object_arg(args: &[Value]) -> Result<Map<String, Value>, String> {
    match &args[0] {
        Value::Object(o) => Ok(o.clone()),
        other => Err(format!("expects an object, not {}", type_name(other))),
    }
}

fn add_property(args: &[Value]) -> R {
    let mut o = object_arg(args)?;
    let name = str_arg(args, 1, "the property name")?;
    if o.contains_key(name) {
        return Err(format!("the property '{name}' already exists: use setProperty to change it"));
    }
    o.insert(name.to_string(), args[2].clone());
    Ok(Value::Object(o))
}

fn set_property(args: &[Value]) -> R {
    let mut o = object_arg(args)?;
    o.insert(str_arg(args, 1, "the property name")?.to_string(), args[2].clone());
    Ok(Value::Object(o))
}

fn remove_property(args: &[Value]) -> R {
    let mut o = object_arg(args)?;
    o.shift_remove(str_arg(args, 1, "the property name")?);
    Ok(Value::Object(o))
}

fn coalesce(args: &[Value]) -> R {
    Ok(args.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null))
}

fn jsonpath(args: &[Value]) -> R {
    let path = str_arg(args, 1, "the JSONPath")?;
    let found = args[0].query(path).map_err(|e| format!("'{path}' is not a valid JSONPath: {e}"))?;
    Ok(Value::Array(found.into_iter().cloned().collect()))
}

/// A SOQL string literal: quoted, with `\` and `'` escaped; `null` stays `null`.
/// `soql_quote(value)`: a SOQL literal; a list becomes its quoted items joined by commas, for
/// `IN (…)` (an empty list gives `null`, which matches nothing).
fn soql_quote(args: &[Value]) -> R {
    fn quote(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            v => format!("'{}'", text(v).replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }
    match &args[0] {
        Value::Array(items) if items.is_empty() => Ok(Value::String("null".into())),
        Value::Array(items) => Ok(Value::String(items.iter().map(quote).collect::<Vec<_>>().join(","))),
        v => Ok(Value::String(quote(v))),
    }
}
