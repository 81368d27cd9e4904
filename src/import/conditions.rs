//! Conditions of `If`, `Until` and `Query` actions: an expression string, or the designer's
//! condition object (`{"and": [{"equals": [a, b]}, {"not": {"contains": [c, d]}}]}`), turned
//! into one coflow expression.

use serde_json::Value;

use crate::expr::ExprError;
use crate::expr::pa::{translate_function_name, translate_operand};

/// The coflow expression (without `{{ }}`) for a Power Automate condition.
pub(super) fn condition(expression: &Value) -> Result<String, ExprError> {
    match expression {
        Value::Object(map) if map.len() == 1 => {
            let Some((key, operands)) = map.iter().next() else { return Err(shape(expression)) };
            object(key, operands)
        }
        Value::Object(_) | Value::Array(_) => Err(shape(expression)),
        other => translate_operand(other),
    }
}

fn object(key: &str, operands: &Value) -> Result<String, ExprError> {
    match key.to_ascii_lowercase().as_str() {
        "and" => joined(operands, "and", "true"),
        "or" => joined(operands, "or", "false"),
        "not" => Ok(format!("not {}", grouped(operands)?)),
        _ => {
            let function = translate_function_name(key)?;
            let args: Vec<String> = match operands {
                Value::Array(items) => items.iter().map(translate_operand).collect::<Result<_, _>>()?,
                single => vec![translate_operand(single)?],
            };
            Ok(format!("{function}({})", args.join(", ")))
        }
    }
}

/// `and`/`or` over a list of conditions; the designer writes an empty group as `[]`, which
/// Power Automate treats as the operator's identity.
fn joined(operands: &Value, operator: &str, empty: &str) -> Result<String, ExprError> {
    let Value::Array(items) = operands else {
        return Err(ExprError::new(format!("`{operator}` takes a list of conditions"), None));
    };
    if items.is_empty() {
        return Ok(empty.into());
    }
    if let [only] = items.as_slice() {
        return condition(only);
    }
    let parts: Vec<String> = items.iter().map(grouped).collect::<Result<_, _>>()?;
    Ok(parts.join(&format!(" {operator} ")))
}

/// A sub-condition, in parentheses when it is itself an `and` or `or` (`not` binds tighter
/// than both, as in minijinja).
fn grouped(item: &Value) -> Result<String, ExprError> {
    let text = condition(item)?;
    let compound = matches!(item, Value::Object(map)
        if map.keys().any(|k| matches!(k.to_ascii_lowercase().as_str(), "and" | "or")));
    Ok(if compound { format!("({text})") } else { text })
}

fn shape(expression: &Value) -> ExprError {
    ExprError::new(
        "a condition is an expression or one object such as {\"and\": [...]}, {\"equals\": [a, b]}",
        Some(&expression.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn designer_objects_become_one_expression() {
        let designer = json!({"and": [
            {"equals": ["@triggerBody()?['status']", "Active"]},
            {"or": [{"greater": ["@variables('n')", 5]}, {"not": {"contains": ["@body('a')", "x"]}}]},
        ]});
        assert_eq!(
            condition(&designer).unwrap(),
            "equals(opt(triggerBody(), 'status'), 'Active') and (greater(variables('n'), 5) or not contains(body('a'), 'x'))"
        );
        assert_eq!(condition(&json!({"and": []})).unwrap(), "true");
        assert_eq!(
            condition(&json!({"or": [{"equals": ["@true", "@true"]}]})).unwrap(),
            "equals(true, true)"
        );
        assert_eq!(
            condition(&json!({"not": {"and": [{"less": [1, 2]}, {"lessOrEquals": [2, 2]}]}})).unwrap(),
            "not (less(1, 2) and lessOrEquals(2, 2))"
        );
    }

    #[test]
    fn strings_are_expressions_and_errors_name_the_problem() {
        assert_eq!(condition(&json!("@equals(1, 1)")).unwrap(), "equals(1, 1)");
        assert!(condition(&json!({"xpath": ["a", "b"]})).unwrap_err().message.contains("not supported"));
        assert!(condition(&json!({"a": 1, "b": 2})).is_err());
    }
}
