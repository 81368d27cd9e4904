//! The flow definition model: exactly what a flow file may say, typed per action and trigger type.
//!
//! Values are positioned ([`Spanned`], [`Node`]) so that every later check can point at the line
//! that caused it. These types are also the source of `schemas/flow.schema.json` (see
//! [`super::schema`]); [`super::decode`] builds them from YAML, and [`super::compile`] turns a
//! [`FlowDef`] into a runnable [`super::Flow`].

use std::borrow::Cow;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

pub use super::yaml::{Node, Span};

/// Actions of one block (the flow, a scope, a branch, a loop body), in written order.
pub type ActionDefs = IndexMap<String, ActionDef>;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Its position.
    pub span: Span,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A whole flow file.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "coflow flow")]
pub struct FlowDef {
    /// Unique flow name: letters, digits, `-` and `_`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub name: Spanned<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterDef {
    /// The parameter's type.
    #[serde(rename = "type")]
    pub kind: ValueType,
    /// Value used when the run does not supply one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Node>,
    /// Free text for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Types of parameters and variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
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

impl ValueType {
    /// Every type, by its name in flow files.
    pub const ALL: [(&'static str, ValueType); 6] = [
        ("boolean", ValueType::Boolean),
        ("integer", ValueType::Integer),
        ("float", ValueType::Float),
        ("string", ValueType::String),
        ("array", ValueType::Array),
        ("object", ValueType::Object),
    ];
}

/// What starts a run, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TriggerDef {
    /// `type: manual`.
    Manual(ManualTrigger),
    /// `type: http`.
    Http(HttpTrigger),
    /// `type: recurrence`.
    Recurrence(RecurrenceTrigger),
    /// `type: <connector>.<trigger>`.
    Connector(ConnectorTrigger),
    /// `type: unsupported`: a trigger `coflow import` could not translate.
    Unsupported(UnsupportedDef),
}

impl TriggerDef {
    /// The `type` as written.
    pub fn type_name(&self) -> String {
        match self {
            TriggerDef::Manual(_) => "manual".into(),
            TriggerDef::Http(_) => "http".into(),
            TriggerDef::Recurrence(_) => "recurrence".into(),
            TriggerDef::Connector(c) => format!("{}.{}", c.connector, c.trigger),
            TriggerDef::Unsupported(_) => "unsupported".into(),
        }
    }
}

/// Started by `coflow run` or the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualTrigger {
    /// JSON Schema of the event, for documentation and checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Node>,
}

/// Started by a request to `/hooks/<flow name>`; answered by a `response` action, else 202.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Accepted method (default POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// JSON Schema of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Node>,
}

/// HTTP methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl HttpMethod {
    /// Every method, by name.
    pub const ALL: [(&'static str, HttpMethod); 5] = [
        ("GET", HttpMethod::Get),
        ("POST", HttpMethod::Post),
        ("PUT", HttpMethod::Put),
        ("PATCH", HttpMethod::Patch),
        ("DELETE", HttpMethod::Delete),
    ];
}

/// Started on a schedule: `every` (ISO-8601 duration) or `cron`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceTrigger {
    /// Interval between runs, e.g. `PT15M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Spanned<String>>,
    /// Cron expression (minute hour day month weekday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<Spanned<String>>,
    /// IANA time zone the schedule is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Sliding window: each run's trigger body has `windowStartTime` (where the last succeeded
    /// run's window ended; null before any succeeded) and `windowEndTime` (this run's time), so
    /// a run that failed or was missed is covered by the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<bool>,
}

/// A connector's event source, e.g. `partner_center.webhook` or `salesforce.poll`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ConnectorTrigger {
    /// The connector kind (before the dot).
    #[serde(skip)]
    #[schemars(skip)]
    pub connector: String,
    /// The trigger name (after the dot).
    #[serde(skip)]
    #[schemars(skip)]
    pub trigger: String,
    /// Where `type` was written.
    #[serde(skip)]
    #[schemars(skip)]
    pub type_span: Span,
    /// Connection alias (default: the only alias of that connector kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Spanned<String>>,
    /// The connector's own keys (`events`, `object`, `on`, `where`, `every`, ...).
    #[serde(flatten)]
    pub settings: IndexMap<String, Node>,
}

/// Statuses an action can be run after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, JsonSchema)]
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

impl RunAfterStatus {
    /// Every status, by its name in flow files.
    pub const ALL: [(&'static str, RunAfterStatus); 4] = [
        ("succeeded", RunAfterStatus::Succeeded),
        ("failed", RunAfterStatus::Failed),
        ("skipped", RunAfterStatus::Skipped),
        ("timed_out", RunAfterStatus::TimedOut),
    ];
}

/// `run_after`: predecessor name -> statuses it must end in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunAfterDef {
    /// Where the map was written.
    pub span: Span,
    /// One entry per predecessor, in written order.
    pub entries: Vec<RunAfterEntry>,
}

/// One predecessor in `run_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunAfterEntry {
    /// The predecessor's name.
    pub action: Spanned<String>,
    /// Statuses that let the action run.
    pub statuses: Vec<RunAfterStatus>,
}

impl Serialize for RunAfterDef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|e| (&e.action.value, &e.statuses)))
    }
}

impl JsonSchema for RunAfterDef {
    fn schema_name() -> Cow<'static, str> {
        "RunAfter".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let status = generator.subschema_for::<RunAfterStatus>();
        json_schema!({
            "description": "Predecessor action (same block) -> statuses it must end in. `{}` starts the action with its block.",
            "type": "object",
            "additionalProperties": {"type": "array", "items": status, "minItems": 1, "uniqueItems": true}
        })
    }
}

/// Retry policy of an action that calls out (HTTP, connectors).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// `none`, `fixed` or `exponential`.
    #[serde(rename = "type")]
    pub kind: RetryKind,
    /// Number of retries (not attempts), 1..=90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 90))]
    pub count: Option<Spanned<u32>>,
    /// ISO-8601 duration between (fixed) or scaling (exponential) retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Spanned<String>>,
    /// Lower bound of an exponential wait (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<Spanned<String>>,
    /// Upper bound of an exponential wait (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<Spanned<String>>,
}

/// Kinds of retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryKind {
    /// Never retry.
    None,
    /// Wait `interval` between attempts.
    Fixed,
    /// Wait a growing, randomised interval between attempts.
    Exponential,
}

impl RetryKind {
    /// Every kind, by name.
    pub const ALL: [(&'static str, RetryKind); 3] =
        [("none", RetryKind::None), ("fixed", RetryKind::Fixed), ("exponential", RetryKind::Exponential)];
}

/// One action: its name, `type`, the keys every action takes, and the keys of its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionDef {
    /// Where the action's name was written.
    #[serde(skip)]
    pub name_span: Span,
    /// The `type` as written.
    #[serde(rename = "type")]
    pub type_name: Spanned<String>,
    /// Keys every action takes.
    #[serde(flatten)]
    pub common: ActionCommon,
    /// Keys of the action's type.
    #[serde(flatten)]
    pub body: ActionBody,
}

/// Keys every action takes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
pub struct ActionCommon {
    /// Predecessors in the same block and the statuses they must end in. Absent: the action
    /// written just before, `[succeeded]`; `{}`: start with the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<RunAfterDef>,
    /// ISO-8601 duration after which the action is `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Spanned<String>>,
    /// Free text shown in the UI and graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type-specific part of an action.
// Definitions are built once per load and read in place, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ActionBody {
    /// `compose`.
    Compose(ComposeDef),
    /// `parse_json`.
    ParseJson(ParseJsonDef),
    /// `select`.
    Select(SelectDef),
    /// `filter`.
    Filter(FilterDef),
    /// `join`.
    Join(JoinDef),
    /// `initialize_variable`.
    InitializeVariable(InitializeVariableDef),
    /// `set_variable`.
    SetVariable(VariableValueDef),
    /// `increment_variable`.
    IncrementVariable(VariableByDef),
    /// `decrement_variable`.
    DecrementVariable(VariableByDef),
    /// `append_to_array_variable`.
    AppendToArrayVariable(VariableValueDef),
    /// `append_to_string_variable`.
    AppendToStringVariable(VariableValueDef),
    /// `if`.
    If(IfDef),
    /// `switch`.
    Switch(SwitchDef),
    /// `scope`.
    Scope(ScopeDef),
    /// `foreach`.
    Foreach(ForeachDef),
    /// `until`.
    Until(UntilDef),
    /// `delay`.
    Delay(DelayDef),
    /// `terminate`.
    Terminate(TerminateDef),
    /// `response`.
    Response(ResponseDef),
    /// `http`.
    Http(HttpDef),
    /// `run_flow`.
    RunFlow(RunFlowDef),
    /// `<connector>.<operation>`.
    Connector(ConnectorDef),
    /// `unsupported`: an action `coflow import` could not translate.
    Unsupported(UnsupportedDef),
}

impl ActionBody {
    /// The blocks of actions this action contains, each with a label (`then`, `case 1`, ...).
    pub fn blocks(&self) -> Vec<(String, &ActionDefs)> {
        match self {
            ActionBody::If(d) => vec![("then".into(), &d.then), ("else".into(), &d.otherwise)],
            ActionBody::Switch(d) => {
                let mut blocks: Vec<(String, &ActionDefs)> = d
                    .cases
                    .iter()
                    .map(|(value, actions)| (format!("case {}", value.to_json()), actions))
                    .collect();
                blocks.push(("default".into(), &d.default));
                blocks
            }
            ActionBody::Scope(d) => vec![("actions".into(), &d.actions)],
            ActionBody::Foreach(d) => vec![("actions".into(), &d.actions)],
            ActionBody::Until(d) => vec![("actions".into(), &d.actions)],
            _ => Vec::new(),
        }
    }

    /// Whether the action repeats its body (`foreach`, `until`).
    pub fn is_loop(&self) -> bool {
        matches!(self, ActionBody::Foreach(_) | ActionBody::Until(_))
    }
}

/// Runs another flow of the same folder to its end, with `body` as its trigger body, and
/// succeeds when that run does (Power Automate's "Run a Child Flow"). Its outputs are the child
/// run's id, status and response body.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFlowDef {
    /// The `name` of the flow to run.
    pub flow: Spanned<String>,
    /// The child's trigger body (any value; strings are templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Node>,
}

/// Outputs its rendered `inputs`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDef {
    /// Any value; strings are templates. The output keeps the value's type.
    pub inputs: Node,
}

/// Parses `content` and checks it against `schema`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseJsonDef {
    /// JSON text or a value (template).
    pub content: Node,
    /// JSON Schema the parsed value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Node>,
}

/// Maps each item of `from` through `map`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectDef {
    /// The array (template).
    pub from: Node,
    /// Template evaluated per `item()`: one value, or a map of key -> template.
    pub map: Node,
}

/// Keeps the items of `from` for which `where` holds.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    /// The array (template).
    pub from: Node,
    /// Condition per `item()`.
    #[serde(rename = "where")]
    pub condition: Node,
}

/// Joins the items of `from` with `separator`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinDef {
    /// The array (template).
    pub from: Node,
    /// Text between items.
    pub separator: Node,
}

/// Declares a variable. Only allowed at the top level of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitializeVariableDef {
    /// The variable's name, read with `variables('name')`.
    pub name: Spanned<String>,
    /// The variable's type.
    pub variable_type: ValueType,
    /// Initial value (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Node>,
}

/// Sets or appends to a variable.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableValueDef {
    /// The variable's name.
    pub name: Spanned<String>,
    /// The value (template).
    pub value: Node,
}

/// Adds to or subtracts from a numeric variable.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableByDef {
    /// The variable's name.
    pub name: Spanned<String>,
    /// The amount (template), default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Node>,
}

/// Runs `then` or `else`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IfDef {
    /// A `{{ expression }}` that yields true or false.
    pub condition: Node,
    /// Actions run when the condition holds.
    #[serde(default)]
    pub then: ActionDefs,
    /// Actions run otherwise.
    #[serde(default, rename = "else")]
    pub otherwise: ActionDefs,
}

/// Runs the case whose value equals `on`, else `default`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchDef {
    /// The value compared with each case (template).
    pub on: Node,
    /// Case value -> actions.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ActionDefs>")]
    #[serde(serialize_with = "serialize_cases")]
    pub cases: Vec<(Node, ActionDefs)>,
    /// Actions run when no case matches.
    #[serde(default)]
    pub default: ActionDefs,
}

fn serialize_cases<S: Serializer>(cases: &[(Node, ActionDefs)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(cases.iter().map(|(k, v)| (k.key_text().unwrap_or_default(), v)))
}

/// Groups actions; its status summarises theirs.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    /// The grouped actions.
    #[serde(default)]
    pub actions: ActionDefs,
}

/// Runs `actions` once per item of `items`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeachDef {
    /// The array to loop over (template).
    pub items: Node,
    /// Actions run per item; `item()` is the current item.
    #[serde(default)]
    pub actions: ActionDefs,
    /// Iterations run at the same time, 1..=50 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub concurrency: Option<Spanned<u32>>,
}

/// Runs `actions` until `condition` holds or a limit is reached (at least once).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UntilDef {
    /// Checked after each iteration; the loop stops when it is true.
    pub condition: Node,
    /// Actions run per iteration.
    #[serde(default)]
    pub actions: ActionDefs,
    /// Limits on iterations and time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<UntilLimitDef>,
}

/// Limits of an `until` loop.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UntilLimitDef {
    /// Most iterations, 1..=5000 (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5000))]
    pub count: Option<Spanned<u32>>,
    /// Most time, ISO-8601 (default PT1H).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Spanned<String>>,
}

/// Waits for a `duration` or `until` a timestamp (one of the two).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayDef {
    /// ISO-8601 duration, e.g. `PT30S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Spanned<String>>,
    /// Timestamp (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Node>,
}

/// Ends the run with a status. Not allowed inside `foreach` or `until`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateDef {
    /// The run's final status (default failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TerminateStatus>,
    /// Error code (template), for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Node>,
    /// Error message (template), for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Node>,
}

/// Final statuses `terminate` can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerminateStatus {
    /// The run succeeded.
    Succeeded,
    /// The run failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl TerminateStatus {
    /// Every status, by name.
    pub const ALL: [(&'static str, TerminateStatus); 3] = [
        ("succeeded", TerminateStatus::Succeeded),
        ("failed", TerminateStatus::Failed),
        ("cancelled", TerminateStatus::Cancelled),
    ];
}

/// Answers the HTTP request that triggered the run. Needs an `http` trigger.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseDef {
    /// Status code (template), default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Node>,
    /// Response headers (templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Node>,
    /// Response body (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Node>,
}

/// A plain HTTP request. Output: `{status, headers, body}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDef {
    /// HTTP method (template), e.g. `GET`.
    pub method: Node,
    /// URL (template).
    pub url: Node,
    /// Request headers (templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Node>,
    /// Query parameters (templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Node>,
    /// Request body (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Node>,
    /// Authentication settings (templates; use `secret('NAME')`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Node>,
    /// Retry policy (default: 4 exponential retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
}

/// An operation of a connector, `type: <connector>.<operation>`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDef {
    /// The connector kind (before the dot).
    #[serde(skip)]
    #[schemars(skip)]
    pub connector: String,
    /// The operation (after the dot).
    #[serde(skip)]
    #[schemars(skip)]
    pub operation: String,
    /// Connection alias declared in `connections` (default: the only alias of that connector kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Spanned<String>>,
    /// The operation's inputs; strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Node>,
    /// Retry policy (default: 4 exponential retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
}

/// A placeholder `coflow import` writes for a trigger or action it could not translate. A flow
/// holding one does not load: compilation reports it by name with its reason, so nothing of the
/// source is dropped without a trace.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsupportedDef {
    /// Why it was not translated.
    pub reason: Spanned<String>,
    /// The source definition (Power Automate / Logic Apps JSON), for whoever replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Node>,
}
