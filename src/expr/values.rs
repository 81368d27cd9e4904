//! Moving values between JSON and minijinja, and Power Automate's rules for turning them into text.

use std::borrow::Cow;
use std::sync::Arc;

use minijinja::value::{Value as JinjaValue, ValueKind};
use serde_json::{Number, Value};

use super::json_view::{JsonView, view, view_copy, view_shared};

/// A minijinja value as JSON (undefined and non-JSON values become `null`).
pub(crate) fn to_json(value: &JinjaValue) -> Value {
    try_to_json(value).unwrap_or(Value::Null)
}

/// A minijinja value as JSON, converting the plain kinds directly (serializing through serde
/// costs an allocation per node) and leaving the rest to serde.
pub(crate) fn try_to_json(value: &JinjaValue) -> Result<Value, serde_json::Error> {
    if let Some(view) = value.downcast_object_ref::<JsonView>() {
        return Ok(view.json().clone());
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(Value::Null),
        ValueKind::Bool => Ok(Value::Bool(value.is_true())),
        ValueKind::String => match value.as_str() {
            Some(s) => Ok(Value::String(s.to_string())),
            None => serde_json::to_value(value),
        },
        ValueKind::Number if value.is_integer() => match value.as_i64() {
            Some(i) => Ok(Value::from(i)),
            None => serde_json::to_value(value),
        },
        ValueKind::Seq => seq_to_json(value),
        ValueKind::Map => map_to_json(value),
        _ => serde_json::to_value(value),
    }
}

fn seq_to_json(value: &JinjaValue) -> Result<Value, serde_json::Error> {
    let Ok(items) = value.try_iter() else {
        return serde_json::to_value(value);
    };
    Ok(Value::Array(items.map(|item| try_to_json(&item)).collect::<Result<_, _>>()?))
}

fn map_to_json(value: &JinjaValue) -> Result<Value, serde_json::Error> {
    let Ok(keys) = value.try_iter() else {
        return serde_json::to_value(value);
    };
    let mut out = serde_json::Map::new();
    for key in keys {
        let (Some(name), Ok(item)) = (key.as_str(), value.get_item(&key)) else {
            return serde_json::to_value(value);
        };
        out.insert(name.to_string(), try_to_json(&item)?);
    }
    Ok(Value::Object(out))
}

/// A JSON value as a minijinja value: scalars are converted, maps and lists are copied once and
/// viewed in place (see [`super::json_view`]).
pub(crate) fn from_json(value: &Value) -> JinjaValue {
    view_copy(value)
}

/// Like [`from_json`], for a value the caller no longer needs: nothing is copied.
pub(crate) fn from_json_owned(value: Value) -> JinjaValue {
    view(value)
}

/// Like [`from_json`], for a shared document: it is viewed in place, nothing is copied.
pub(crate) fn from_json_shared(value: Arc<Value>) -> JinjaValue {
    view_shared(value)
}

/// Power Automate's text form of a value, used by `string()` and by `@{…}` interpolation.
///
/// Strings as they are, `null` as empty text, booleans as .NET prints them (`True`, `False`),
/// numbers in invariant format (a whole float without `.0`), objects and arrays as compact JSON.
pub fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        Value::Bool(true) => Cow::Borrowed(TRUE_TEXT),
        Value::Bool(false) => Cow::Borrowed(FALSE_TEXT),
        Value::Number(n) => Cow::Owned(number_text(n)),
        other => Cow::Owned(other.to_string()),
    }
}

/// How `@{true}` prints: .NET's `Boolean.ToString()` (the reference marks this inferred).
const TRUE_TEXT: &str = "True";
/// How `@{false}` prints.
const FALSE_TEXT: &str = "False";

/// A number in invariant format: integers as they are, floats in the shortest round-trip form.
pub(crate) fn number_text(n: &Number) -> String {
    if n.is_f64() { float_text(n.as_f64().unwrap_or(0.0)) } else { n.to_string() }
}

/// A float as .NET prints it: `3` for 3.0, `2.5` for 2.5.
pub(crate) fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

/// A JSON number from a float, keeping whole results that came from integer maths as floats.
pub(crate) fn float_value(f: f64) -> Result<Value, String> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("the result {f} is not a finite number"))
}

/// The name of a JSON type as Power Automate's messages spell it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_f64() => "Float",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// A short, quoted rendering of a value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    let shown = match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    if shown.chars().count() > 60 {
        let cut: String = shown.chars().take(57).collect();
        format!("{cut}...")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_follows_power_automate() {
        assert_eq!(text(&json!(null)), "");
        assert_eq!(text(&json!(true)), "True");
        assert_eq!(text(&json!(3.0)), "3");
        assert_eq!(text(&json!(2.5)), "2.5");
        assert_eq!(text(&json!(42)), "42");
        assert_eq!(text(&json!({"a": [1, "x"]})), r#"{"a":[1,"x"]}"#);
    }

    #[test]
    fn round_trip_keeps_integers() {
        let v = json!({"n": 1, "f": 1.5, "s": "x", "a": [true, null]});
        assert_eq!(to_json(&from_json(&v)), v);
    }
}
