//! The flow definition model: plain serde types, exactly what a flow file says.
//!
//! Nothing here is validated beyond shape; [`crate::flow::compile`] turns a [`FlowDef`] into a
//! runnable [`crate::flow::Flow`].

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Actions of one block (the flow, a scope, a branch, a loop body), in written order.
pub type ActionDefs = IndexMap<String, ActionDef>;

/// A whole flow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    /// Unique flow name: letters, digits, `-` and `_`.
    pub name: String,
    /// What the flow does, shown in `coflow validate`, the graph and the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parameters, read with `parameters('name')`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub parameters: IndexMap<String, ParameterDef>,
    /// Connection alias used in this file -> connection name in `coflow.yaml`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub connections: IndexMap<String, String>,
    /// What starts a run.
    pub trigger: TriggerDef,
    /// The top-level actions, in written order.
    #[serde(default)]
    pub actions: ActionDefs,
}

/// A flow parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterDef {
    /// The parameter's type.
    #[serde(rename = "type")]
    pub kind: ValueType,
    /// Value used when the run does not supply one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Types of parameters and variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// `true` / `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A floating-point number.
    Float,
    /// Text.
    String,
    /// A JSON array.
    Array,
    /// A JSON object.
    Object,
}

/// What starts a run: `manual`, `http`, `recurrence` or `<connector>.<trigger>`.
///
/// Keys other than `type` and `connection` are kept in `settings` and checked by the compiler
/// against what the trigger type accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerDef {
    /// `manual`, `http`, `recurrence`, or `<connector>.<trigger>` such as `salesforce.poll`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Connection alias for a connector trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The trigger's own keys (e.g. `events`, `every`, `method`).
    #[serde(flatten)]
    pub settings: IndexMap<String, Value>,
}

/// Statuses an action can be run after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunAfterStatus {
    /// The predecessor succeeded.
    Succeeded,
    /// The predecessor failed.
    Failed,
    /// The predecessor was skipped.
    Skipped,
    /// The predecessor hit its timeout.
    TimedOut,
}

/// Retry policy of an action that calls out (HTTP, connectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// `none`, `fixed` or `exponential`.
    #[serde(rename = "type")]
    pub kind: RetryKind,
    /// Number of retries (not attempts), 1..=90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// ISO-8601 duration between (fixed) or scaling (exponential) retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Lower bound of an exponential wait (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<String>,
    /// Upper bound of an exponential wait (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<String>,
}

/// Kinds of retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryKind {
    /// Never retry.
    None,
    /// Wait `interval` between attempts.
    Fixed,
    /// Wait a growing, randomised interval between attempts.
    Exponential,
}

/// One action: the keys every action takes, plus the keys of its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionDef {
    /// A built-in type (`compose`, `if`, ...) or `<connector>.<operation>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Connection alias for a connector operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Inputs; strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// Predecessor name -> statuses it must end in. Absent: the action written before, `[succeeded]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<IndexMap<String, Vec<RunAfterStatus>>>,
    /// Retry policy (HTTP and connector actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// ISO-8601 duration after which the action is `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Free text shown in the UI and graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keys of the action's type (e.g. `condition`, `then`, `items`), checked by the compiler.
    #[serde(flatten)]
    pub settings: IndexMap<String, Value>,
}
