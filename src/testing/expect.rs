//! Checking a run record against a case's expectations.
//!
//! JSON values are compared by meaning, not by spelling: numbers by value (`120000` equals
//! `120000.0`), objects regardless of key order. Every unmet expectation is reported, not only
//! the first.

use std::fmt;

use indexmap::IndexMap;
use jsonpath_rust::JsonPath as _;
use serde_json::{Map, Value};

use crate::engine::{ActionError, ActionResult, Run, Status};

/// What a run must show (compiled from [`super::file::ExpectDef`]).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The run's status.
    pub status: Option<Status>,
    /// The run's error.
    pub error: Option<ErrorExpect>,
    /// Expectations per action.
    pub actions: Vec<(Address, ActionExpect)>,
    /// Actions that must not run.
    pub not_run: Vec<Address>,
    /// Variables' final values.
    pub variables: IndexMap<String, Value>,
}

/// Expectations of one action.
#[derive(Debug, Clone, Default)]
pub struct ActionExpect {
    /// Its status.
    pub status: Option<Status>,
    /// Its exact rendered inputs.
    pub inputs: Option<Value>,
    /// Values in its inputs, by JSONPath.
    pub inputs_at: Vec<(String, Value)>,
    /// Its exact outputs.
    pub outputs: Option<Value>,
    /// Values in its outputs, by JSONPath.
    pub outputs_at: Vec<(String, Value)>,
    /// Its error.
    pub error: Option<ErrorExpect>,
    /// Its number of attempts.
    pub attempts: Option<u32>,
}

/// An expected error.
#[derive(Debug, Clone, Default)]
pub struct ErrorExpect {
    /// The exact code.
    pub code: Option<String>,
    /// Text the message contains.
    pub message_contains: Option<String>,
}

/// Which record of an action: `Loop[0]/Inner[1]/Action` for actions inside loops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Enclosing loops, outermost first, with the iteration meant.
    pub loops: Vec<(String, usize)>,
    /// The action's name.
    pub name: String,
    /// A bare name of an action inside a loop: every iteration is meant (`not_run` only).
    pub any_iteration: bool,
}

impl Address {
    /// Reads `Action` or `Loop[0]/Action`; `None` when the text is not of that form.
    pub fn parse(text: &str) -> Option<Address> {
        let mut parts: Vec<&str> = text.split('/').collect();
        let name = parts.pop().filter(|n| !n.is_empty())?.to_string();
        let loops = parts
            .into_iter()
            .map(|part| {
                let (loop_name, rest) = part.split_once('[')?;
                let index = rest.strip_suffix(']')?.parse::<usize>().ok()?;
                (!loop_name.is_empty()).then(|| (loop_name.to_string(), index))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Address { loops, name, any_iteration: false })
    }

    /// The records this address means in `run` (several only for `any_iteration`), or why
    /// there is none.
    fn find<'r>(&self, run: &'r Run) -> Result<Vec<&'r ActionResult>, String> {
        if self.any_iteration {
            let mut found = Vec::new();
            collect_named(&run.actions, &self.name, &mut found);
            return Ok(found);
        }
        let mut actions = &run.actions;
        for (loop_name, index) in &self.loops {
            let record = actions.get(loop_name).ok_or_else(|| format!("loop `{loop_name}` never ran"))?;
            let iterations = record.iterations.as_deref().unwrap_or_default();
            let iteration = iterations.iter().find(|it| it.index == *index).ok_or_else(|| {
                format!("loop `{loop_name}` has no iteration {index} (it ran {} time(s))", iterations.len())
            })?;
            actions = &iteration.actions;
        }
        actions.get(&self.name).map(|r| vec![r]).ok_or_else(|| "it was never reached".to_string())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (loop_name, index) in &self.loops {
            write!(f, "{loop_name}[{index}]/")?;
        }
        f.write_str(&self.name)
    }
}

/// Every record of `name`, in loop iterations too.
fn collect_named<'r>(
    actions: &'r IndexMap<String, ActionResult>,
    name: &str,
    found: &mut Vec<&'r ActionResult>,
) {
    for (action, result) in actions {
        if action == name {
            found.push(result);
        }
        for iteration in result.iterations.iter().flatten() {
            collect_named(&iteration.actions, name, found);
        }
    }
}

/// One unmet expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What was not as expected.
    pub message: String,
    /// For value comparisons: the expected and the actual value, to show their difference.
    pub values: Option<(Value, Value)>,
}

impl Failure {
    /// A failure with no values to compare.
    pub fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), values: None }
    }

    fn differ(message: impl Into<String>, expected: &Value, actual: &Value) -> Self {
        Failure { message: message.into(), values: Some((expected.clone(), aligned(expected, actual))) }
    }
}

/// Every unmet expectation of `expect` in `run`.
pub fn check(expect: &Expect, run: &Run) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Some(status) = expect.status.filter(|s| *s != run.status) {
        let why = run.error.as_ref().map(|e| format!(" ({}: {})", e.code, e.message)).unwrap_or_default();
        failures.push(Failure::new(format!("the run: expected status {status}, got {}{why}", run.status)));
    }
    if let Some(error) = &expect.error {
        check_error("the run", error, run.error.as_ref(), &mut failures);
    }
    for (address, action) in &expect.actions {
        match address.find(run) {
            Ok(records) => records.into_iter().for_each(|r| check_action(address, action, r, &mut failures)),
            Err(why) => failures.push(Failure::new(format!("action `{address}` has no record: {why}"))),
        }
    }
    for address in &expect.not_run {
        let ran = address.find(run).unwrap_or_default().into_iter().find(|r| r.status != Status::Skipped);
        if let Some(record) = ran {
            failures.push(Failure::new(format!(
                "action `{address}` ran ({}) but should not have",
                record.status
            )));
        }
    }
    for (name, expected) in &expect.variables {
        match run.variables.get(name) {
            Some(actual) if same(expected, actual) => {}
            Some(actual) => failures.push(Failure::differ(format!("variable `{name}`"), expected, actual)),
            None => {
                failures.push(Failure::new(format!("variable `{name}` was never initialized in the run")))
            }
        }
    }
    failures
}

fn check_action(
    address: &Address,
    expect: &ActionExpect,
    record: &ActionResult,
    failures: &mut Vec<Failure>,
) {
    let who = format!("action `{address}`");
    if let Some(status) = expect.status.filter(|s| *s != record.status) {
        let why = record.error.as_ref().map(|e| format!(" ({}: {})", e.code, e.message)).unwrap_or_default();
        failures.push(Failure::new(format!("{who}: expected status {status}, got {}{why}", record.status)));
    }
    compare(&who, "inputs", expect.inputs.as_ref(), &expect.inputs_at, record.inputs.as_ref(), failures);
    compare(&who, "outputs", expect.outputs.as_ref(), &expect.outputs_at, record.outputs.as_ref(), failures);
    if let Some(error) = &expect.error {
        check_error(&who, error, record.error.as_ref(), failures);
    }
    if let Some(attempts) = expect.attempts.filter(|a| *a != record.attempts) {
        failures
            .push(Failure::new(format!("{who}: expected {attempts} attempt(s), got {}", record.attempts)));
    }
}

/// Whole-value and JSONPath comparisons of an action's inputs or outputs.
fn compare(
    who: &str,
    what: &str,
    whole: Option<&Value>,
    at: &[(String, Value)],
    actual: Option<&Value>,
    failures: &mut Vec<Failure>,
) {
    if whole.is_none() && at.is_empty() {
        return;
    }
    let Some(actual) = actual else {
        failures.push(Failure::new(format!("{who}: has no {what}, it did not get as far as rendering them")));
        return;
    };
    if let Some(expected) = whole.filter(|e| !same(e, actual)) {
        failures.push(Failure::differ(format!("{who}: {what}"), expected, actual));
    }
    for (path, expected) in at {
        let found: Vec<Value> = actual.query(path).unwrap_or_default().into_iter().cloned().collect();
        let got = match found.len() {
            0 => {
                failures.push(Failure::new(format!("{who}: {what} have no value at `{path}`")));
                continue;
            }
            1 => found.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(found),
        };
        if !same(expected, &got) {
            failures.push(Failure::differ(format!("{who}: {what} at `{path}`"), expected, &got));
        }
    }
}

fn check_error(who: &str, expect: &ErrorExpect, actual: Option<&ActionError>, failures: &mut Vec<Failure>) {
    let Some(actual) = actual else {
        failures.push(Failure::new(format!("{who}: expected an error, got none")));
        return;
    };
    if let Some(code) = expect.code.as_ref().filter(|c| **c != actual.code) {
        failures.push(Failure::new(format!(
            "{who}: expected error code {code}, got {} ({})",
            actual.code, actual.message
        )));
    }
    if let Some(text) = expect.message_contains.as_ref().filter(|t| !actual.message.contains(t.as_str())) {
        failures.push(Failure::new(format!(
            "{who}: the error message does not contain \"{text}\"; it is \"{}\"",
            actual.message
        )));
    }
}

/// Equal in meaning: numbers by value, objects whatever their key order.
pub fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (a, b) => a == b,
    }
}

/// `actual` written like `expected` where they agree (the expected number's spelling, the
/// expected key order first), so a diff of the two shows only real differences.
fn aligned(expected: &Value, actual: &Value) -> Value {
    match (expected, actual) {
        (e @ Value::Number(_), a @ Value::Number(_)) if same(e, a) => e.clone(),
        (Value::Array(e), Value::Array(a)) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, item)| e.get(i).map_or_else(|| item.clone(), |x| aligned(x, item)))
                .collect(),
        ),
        (Value::Object(e), Value::Object(a)) => {
            let mut out = Map::with_capacity(a.len());
            for (key, value) in e {
                if let Some(actual_value) = a.get(key) {
                    out.insert(key.clone(), aligned(value, actual_value));
                }
            }
            for (key, value) in a {
                if !out.contains_key(key) {
                    out.insert(key.clone(), value.clone());
                }
            }
            Value::Object(out)
        }
        (_, a) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_objects_by_content() {
        assert!(same(&json!({"a": 1, "b": [2.0]}), &json!({"b": [2], "a": 1.0})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
        assert!(!same(&json!("1"), &json!(1)));
    }

    #[test]
    fn alignment_takes_the_expected_spelling_and_order() {
        let aligned = aligned(&json!({"b": 1, "a": 2}), &json!({"a": 2.0, "c": 3, "b": 1.0}));
        assert_eq!(serde_json::to_string(&aligned).unwrap(), r#"{"b":1,"a":2,"c":3}"#);
    }

    #[test]
    fn addresses_name_loop_iterations() {
        let address = Address::parse("Outer[1]/Inner[0]/Create").unwrap();
        assert_eq!(address.loops, vec![("Outer".to_string(), 1), ("Inner".to_string(), 0)]);
        assert_eq!(address.name, "Create");
        assert_eq!(address.to_string(), "Outer[1]/Inner[0]/Create");
        assert!(Address::parse("Outer/Create").is_none());
        assert!(Address::parse("Outer[x]/Create").is_none());
        assert!(Address::parse("Outer[0]/").is_none());
    }
}
