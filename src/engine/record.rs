//! The run record: what happened in one run, as `coflow run --json`, the store and the admin API
//! show it (FLOW-LANGUAGE.md, "The run record").

use std::collections::BTreeMap;

use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Status of an action, an iteration or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Finished successfully (retries included).
    Succeeded,
    /// Failed after its retries, or its inputs could not be evaluated.
    Failed,
    /// Did not run: `run_after` not met, branch not taken, or the run was terminated first.
    Skipped,
    /// Stopped by its own timeout.
    TimedOut,
    /// Was running when the run was terminated or cancelled.
    Cancelled,
}

impl Status {
    /// The lowercase name used in the run record.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::TimedOut => "timed_out",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the status counts as a failure for the run-status walk (§2.4).
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::TimedOut | Status::Cancelled)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as recorded: a machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionError {
    /// For example `InvalidTemplate`, `ActionTimedOut`, `Http503`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ActionError {
    /// Builds an error from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ActionError { code: code.into(), message: message.into() }
    }
}

/// One failed attempt of an action that retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the attempt started.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Why it failed.
    pub error: ActionError,
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Final status.
    pub status: Status,
    /// The rendered inputs, when they were evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// What the action produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    /// Number of attempts made (1 unless retried; 0 when it never ran).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Failed attempts that were retried, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_history: Vec<Attempt>,
    /// When the action started (or was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Why it failed or was skipped.
    pub error: Option<ActionError>,
    /// For `foreach` and `until`: one record per iteration, in item order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<Vec<Iteration>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ActionResult {
    /// A result with only a status, to be filled in.
    pub fn new(status: Status) -> Self {
        ActionResult {
            status,
            inputs: None,
            outputs: None,
            attempts: 0,
            retry_history: Vec::new(),
            started_at: None,
            ended_at: None,
            error: None,
            iterations: None,
        }
    }

    /// How long the action took, when it ran.
    pub fn duration(&self) -> Option<std::time::Duration> {
        let span = self.ended_at?.duration_since(self.started_at?);
        std::time::Duration::try_from(span).ok()
    }
}

/// One iteration of a loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// 0-based index (the item's position for `foreach`).
    pub index: usize,
    /// The iteration's status, worked out like a scope's.
    pub status: Status,
    /// The loop body's actions in this iteration.
    pub actions: IndexMap<String, ActionResult>,
}

/// What a `response` action answered, for service mode to send back to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: IndexMap<String, String>,
    /// Response body.
    pub body: Value,
}

/// The trigger part of a run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecord {
    /// `{"headers": …, "body": …}` of the event.
    pub outputs: Value,
}

/// The record of one run of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The flow's name.
    pub flow: String,
    /// Unique id of the run.
    pub run_id: String,
    /// Final status (§2.4 of the semantics reference).
    pub status: Status,
    /// The event that started the run.
    pub trigger: TriggerRecord,
    /// When the run started.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Why the run failed (the failing action's error, or a terminate's).
    pub error: Option<ActionError>,
    /// Every action, flat for `if`, `switch` and `scope` children, in written order.
    pub actions: IndexMap<String, ActionResult>,
    /// The answer of the run's `response` action, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseRecord>,
    /// Every variable's value when the run ended, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Value>,
    /// Whether writes were held back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Run {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == Status::Succeeded
    }

    /// The record as run history stores it: without the trigger's outputs and the action
    /// results, which the history keeps as the run's inputs and action rows (one copy of each);
    /// `actions` holds only the action names, in written order. [`assemble_record`] puts the
    /// rest back.
    pub fn stored_record(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(StoredRun {
            flow: &self.flow,
            run_id: &self.run_id,
            status: self.status,
            started_at: self.started_at,
            ended_at: self.ended_at,
            error: self.error.as_ref(),
            actions: self.actions.keys().map(String::as_str).collect(),
            response: self.response.as_ref(),
            variables: &self.variables,
            dry_run: self.dry_run,
        })
    }
}

/// [`Run`] as stored by [`Run::stored_record`].
#[derive(Serialize)]
struct StoredRun<'a> {
    flow: &'a str,
    run_id: &'a str,
    status: Status,
    started_at: Timestamp,
    ended_at: Timestamp,
    error: Option<&'a ActionError>,
    actions: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a ResponseRecord>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    variables: &'a BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
}

/// The full run record from a record stored by [`Run::stored_record`], the run's `inputs`
/// (`{"headers": …, "body": …}`) and its stored action results by name. A record stored whole
/// (by an earlier version, or not a run record at all) is returned as it is.
pub fn assemble_record<'a>(
    mut stored: Value,
    inputs: &Value,
    results: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Value {
    let Some(record) = stored.as_object_mut() else { return stored };
    let Some(Value::Array(names)) = record.get("actions") else { return stored };
    let by_name: std::collections::HashMap<&str, &Value> = results.into_iter().collect();
    let actions: serde_json::Map<String, Value> = names
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|name| by_name.get(name).map(|result| (name.to_string(), (*result).clone())))
        .collect();
    record.insert("actions".into(), Value::Object(actions));
    if !record.contains_key("trigger") {
        let trigger = serde_json::json!({"outputs": inputs});
        // Keep the record's usual key order: the trigger follows the status.
        let mut ordered = serde_json::Map::with_capacity(record.len() + 1);
        for (key, value) in std::mem::take(record) {
            let after_status = key == "status";
            ordered.insert(key, value);
            if after_status {
                ordered.insert("trigger".into(), trigger.clone());
            }
        }
        ordered.entry("trigger").or_insert(trigger);
        *record = ordered;
    }
    stored
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run() -> Run {
        let action = |status: &str| json!({"status": status, "inputs": {"n": 1}, "outputs": {"body": {"id": "006"}}, "attempts": 1});
        serde_json::from_value(json!({
            "flow": "f", "run_id": "r1", "status": "failed",
            "trigger": {"outputs": {"headers": {"x": "1"}, "body": {"id": "ref-1"}}},
            "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:01Z",
            "error": {"code": "ActionFailed", "message": "no"},
            // Written order, which is not the order the actions completed in.
            "actions": {"Second": action("failed"), "First": action("succeeded")},
            "response": {"status": 502, "headers": {}, "body": {"ok": false}},
        }))
        .unwrap()
    }

    #[test]
    fn a_stored_record_leaves_out_the_trigger_and_the_results_and_assembles_back_whole() {
        let run = run();
        let stored = run.stored_record().unwrap();
        assert!(stored.get("trigger").is_none());
        assert_eq!(stored["actions"], json!(["Second", "First"]));
        let results: Vec<(String, Value)> = ["First", "Second"]
            .iter()
            .map(|name| (name.to_string(), serde_json::to_value(&run.actions[*name]).unwrap()))
            .collect();
        let whole = assemble_record(
            stored,
            &run.trigger.outputs,
            results.iter().map(|(name, result)| (name.as_str(), result)),
        );
        let expected = serde_json::to_value(&run).unwrap();
        assert_eq!(whole, expected);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&whole), keys(&expected), "the usual key order");
        assert_eq!(keys(&whole["actions"]), ["Second", "First"]);
    }

    #[test]
    fn a_record_stored_whole_is_read_as_it_is() {
        let whole = serde_json::to_value(run()).unwrap();
        assert_eq!(assemble_record(whole.clone(), &json!({"body": 1}), []), whole);
        assert_eq!(assemble_record(json!({"ok": true}), &Value::Null, []), json!({"ok": true}));
    }
}
