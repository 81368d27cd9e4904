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
}
