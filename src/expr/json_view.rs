//! JSON maps and lists as templates see them, without converting them.
//!
//! A template usually reads a few properties of a large document (a referral, an action's
//! body). Converting the whole document into minijinja maps costs an allocation and a hash per
//! node; a [`JsonView`] instead keeps the document behind an `Arc` and hands out each property
//! only when it is read. To minijinja a view is a map or a sequence like any other.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr, Value as JinjaValue};
use serde_json::{Number, Value};

/// A map or list inside a shared JSON document, seen as a minijinja map or sequence.
pub(crate) struct JsonView {
    root: Arc<Value>,
    /// The way from the root to the viewed value.
    path: Vec<Step>,
}

/// One step from a value to a value inside it.
#[derive(Clone)]
enum Step {
    /// A property of a map (always a string value).
    Key(JinjaValue),
    /// An item of a list.
    Index(usize),
}

/// What a path that leads nowhere resolves to; a view is only made for a path that exists.
static MISSING: Value = Value::Null;

impl JsonView {
    /// The viewed JSON value.
    pub(crate) fn json(&self) -> &Value {
        let mut node = &*self.root;
        for step in &self.path {
            let next = match (step, node) {
                (Step::Key(key), Value::Object(map)) => key.as_str().and_then(|k| map.get(k)),
                (Step::Index(index), Value::Array(items)) => items.get(*index),
                _ => None,
            };
            node = next.unwrap_or(&MISSING);
        }
        node
    }

    /// `value`, found at `step` from this view, as a minijinja value.
    fn child(&self, step: Step, value: &Value) -> JinjaValue {
        match value {
            Value::Object(_) | Value::Array(_) => {
                let mut path = Vec::with_capacity(self.path.len() + 1);
                path.extend(self.path.iter().cloned());
                path.push(step);
                JinjaValue::from_object(JsonView { root: self.root.clone(), path })
            }
            scalar => scalar_to_jinja(scalar),
        }
    }
}

impl fmt::Debug for JsonView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.json(), f)
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.json() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &JinjaValue) -> Option<JinjaValue> {
        match self.json() {
            Value::Object(map) => {
                let value = map.get(key.as_str()?)?;
                Some(self.child(Step::Key(key.clone()), value))
            }
            Value::Array(items) => {
                let index = key.as_usize()?;
                Some(self.child(Step::Index(index), items.get(index)?))
            }
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<JinjaValue> {
        match self.json() {
            Value::Object(map) => {
                let value = map.get(key)?;
                Some(self.child(Step::Key(JinjaValue::from(key)), value))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.json() {
            Value::Array(items) => Enumerator::Seq(items.len()),
            Value::Object(_) => self.mapped_rev_key_value_enumerator(|this| match this.json() {
                Value::Object(map) => Box::new(map.iter().map(|(k, v)| {
                    let key = JinjaValue::from(k.as_str());
                    (key.clone(), this.child(Step::Key(key), v))
                })),
                _ => Box::new(std::iter::empty()),
            }),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.json() {
            Value::Array(items) => Some(items.len()),
            Value::Object(map) => Some(map.len()),
            _ => Some(0),
        }
    }
}

/// A JSON value as a minijinja value; maps and lists become views of it.
pub(crate) fn view(value: Value) -> JinjaValue {
    match value {
        Value::Object(_) | Value::Array(_) => view_shared(Arc::new(value)),
        scalar => scalar_to_jinja(&scalar),
    }
}

/// Like [`view`], for a borrowed value: a map or list is copied to be viewed, a scalar is
/// converted directly.
pub(crate) fn view_copy(value: &Value) -> JinjaValue {
    match value {
        Value::Object(_) | Value::Array(_) => view(value.clone()),
        scalar => scalar_to_jinja(scalar),
    }
}

/// Like [`view`], for a document that is already shared: maps and lists are viewed in place,
/// so the document is never copied.
pub(crate) fn view_shared(value: Arc<Value>) -> JinjaValue {
    match &*value {
        Value::Object(_) | Value::Array(_) => {
            JinjaValue::from_object(JsonView { root: value, path: Vec::new() })
        }
        scalar => scalar_to_jinja(scalar),
    }
}

/// A JSON scalar as a minijinja value (`null` for maps and lists, which [`view`] handles).
fn scalar_to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Bool(b) => JinjaValue::from(*b),
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Number(n) => number_to_jinja(n),
        Value::Null | Value::Object(_) | Value::Array(_) => JinjaValue::from(()),
    }
}

fn number_to_jinja(n: &Number) -> JinjaValue {
    if let Some(i) = n.as_i64() {
        JinjaValue::from(i)
    } else if let Some(u) = n.as_u64() {
        JinjaValue::from(u)
    } else {
        JinjaValue::from(n.as_f64().unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::value::ValueKind;
    use serde_json::json;

    #[test]
    fn reads_nested_properties_and_items() {
        let v = view(json!({"a": {"b": [10, {"c": "x"}]}, "n": null}));
        assert_eq!(v.kind(), ValueKind::Map);
        let b = v.get_attr("a").and_then(|a| a.get_attr("b")).unwrap_or_default();
        assert_eq!(b.kind(), ValueKind::Seq);
        assert_eq!(b.len(), Some(2));
        assert_eq!(b.get_item(&JinjaValue::from(0)).ok(), Some(JinjaValue::from(10)));
        assert_eq!(b.get_item(&JinjaValue::from(-1)).and_then(|c| c.get_attr("c")).ok(), Some("x".into()));
        assert!(v.get_attr("n").is_ok_and(|n| n.is_none()));
        assert!(v.get_attr("missing").is_ok_and(|m| m.is_undefined()));
    }

    #[test]
    fn iterates_keys_in_written_order_and_prints_like_a_map() {
        let v = view(json!({"z": 1, "a": [true, "s"]}));
        let keys: Vec<String> = v.try_iter().into_iter().flatten().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["z", "a"]);
        let list = JinjaValue::from(vec![JinjaValue::from(true), JinjaValue::from("s")]);
        let eager = JinjaValue::from_pairs([("z", JinjaValue::from(1)), ("a", list)]);
        assert_eq!(v.to_string(), eager.to_string());
        assert_eq!(v, eager);
    }

    #[test]
    fn shared_documents_are_viewed_without_copying() {
        let doc = Arc::new(json!({"a": {"b": 1}}));
        let v = view_shared(doc.clone());
        assert_eq!(Arc::strong_count(&doc), 2);
        let b = v.get_attr("a").and_then(|a| a.get_attr("b")).ok();
        assert_eq!(b, Some(JinjaValue::from(1)));
        assert_eq!(view_shared(Arc::new(json!("s"))), JinjaValue::from("s"));
        assert!(view_shared(Arc::new(Value::Null)).is_none());
    }
}
