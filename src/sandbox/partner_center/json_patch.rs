//! JSON Patch (RFC 6902) as the Referrals API accepts it: `add` and `replace` only (reference §2.5).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    error::ApiError,
    model::{READ_ONLY, set},
};

/// One JSON Patch operation.
#[derive(Debug, Deserialize, Serialize)]
pub struct PatchOp {
    /// `add` or `replace`.
    pub op: Option<String>,
    /// JSON Pointer.
    pub path: Option<String>,
    /// New value.
    #[serde(default)]
    pub value: Value,
}

/// Applies JSON Patch `add`/`replace` operations to a copy of `current`.
pub fn apply_patch(current: &Value, ops: &[PatchOp], now: &str) -> Result<Value, ApiError> {
    let mut next = current.clone();
    for (index, op) in ops.iter().enumerate() {
        let target = format!("[{index}]");
        let path = op
            .path
            .as_deref()
            .ok_or_else(|| ApiError::bad("Each patch operation needs a 'path'.", target.clone()))?;
        let add = match op.op.as_deref() {
            Some("add") => true,
            Some("replace") => false,
            Some(other) => {
                return Err(ApiError::bad(
                    format!("Patch operation '{other}' is not supported; only add and replace are."),
                    "op",
                ));
            }
            None => return Err(ApiError::bad("Each patch operation needs an 'op' (add or replace).", "op")),
        };
        let root = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        if READ_ONLY.contains(&root) {
            return Err(ApiError::bad(format!("'{path}' is read-only."), path));
        }
        let mut value = op.value.clone();
        if path == "/registrations/-" {
            prepare_registration(&mut value, now);
            set(&mut next, "registrationStatus", "ReviewPending");
        }
        pointer_apply(&mut next, path, value, add).map_err(|why| ApiError::bad(why, path))?;
    }
    Ok(next)
}

fn prepare_registration(value: &mut Value, now: &str) {
    if let Some(map) = value.as_object_mut() {
        map.entry("id").or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        map.entry("registrationDateTime").or_insert_with(|| now.to_owned().into());
    }
}

fn pointer_apply(doc: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    let tokens: Vec<String> = path
        .strip_prefix('/')
        .ok_or_else(|| format!("'{path}' is not a JSON Pointer; start it with '/'"))?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or_else(|| "the path is empty".to_owned())?;
    let parent = parents
        .iter()
        .try_fold(doc, |node, token| match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        })
        .ok_or_else(|| format!("the parent of '{path}' does not exist"))?;
    match parent {
        Value::Object(map) => {
            if !add && !map.contains_key(last) {
                return Err(format!("'{path}' does not exist; use add to create it"));
            }
            map.insert(last.clone(), value);
        }
        Value::Array(items) if last == "-" && add => items.push(value),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| format!("'{last}' is not an array index"))?;
            match (add, index.cmp(&items.len())) {
                (true, std::cmp::Ordering::Greater)
                | (false, std::cmp::Ordering::Equal | std::cmp::Ordering::Greater) => {
                    return Err(format!("index {index} is out of range"));
                }
                (true, _) => items.insert(index, value),
                (false, _) => items[index] = value,
            }
        }
        _ => return Err(format!("the parent of '{path}' is not an object or array")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_ops() {
        let mut doc = json!({"team": [{"a": 1}], "details": {"notes": null}});
        pointer_apply(&mut doc, "/team/-", json!({"b": 2}), true).unwrap();
        pointer_apply(&mut doc, "/details/notes", json!("x"), false).unwrap();
        pointer_apply(&mut doc, "/team/0", json!({"c": 3}), false).unwrap();
        assert_eq!(doc, json!({"team": [{"c": 3}, {"b": 2}], "details": {"notes": "x"}}));
        assert!(pointer_apply(&mut doc, "/details/missing", json!(1), false).is_err());
        assert!(pointer_apply(&mut doc, "/nothing/here", json!(1), true).is_err());
        assert!(pointer_apply(&mut doc, "/team/5", json!(1), true).is_err());
        assert!(pointer_apply(&mut doc, "team", json!(1), true).is_err());
    }
}
