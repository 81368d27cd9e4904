//! The compiled flow: what the engine runs. Built only by [`super::compile`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use petgraph::graph::DiGraph;
use serde_json::Value;

use super::def::RunAfterStatus;
pub use super::def::ValueType as VariableType;
use crate::expr::{Mappings, SyncSettings, Template};

/// A validated flow, with every template precompiled.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow's unique name.
    pub name: String,
    /// What the flow does.
    pub description: Option<String>,
    /// The file it was loaded from, if any.
    pub source: Option<PathBuf>,
    /// Parameters with their defaults.
    pub parameters: IndexMap<String, Parameter>,
    /// Connection alias -> connection name in `coflow.yaml`.
    pub connections: IndexMap<String, String>,
    /// What starts a run.
    pub trigger: Trigger,
    /// The top-level actions.
    pub root: Block,
    /// Mapping files the flow uses (`mapping('name', value)`).
    pub mappings: Arc<Mappings>,
    /// The sync settings beside the flow (`settings/sync.yaml`; defaults when absent).
    pub sync: Arc<SyncSettings>,
}

/// A flow parameter after compilation.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Declared type.
    pub kind: VariableType,
    /// Default value, if any.
    pub default: Option<Value>,
}

/// The trigger of a flow.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `manual`, `http`, `recurrence` or `<connector>.<trigger>`.
    pub kind: String,
    /// Connection alias for connector triggers.
    pub connection: Option<String>,
    /// The trigger's own settings, as written.
    pub settings: IndexMap<String, Value>,
}

/// The actions of one container (flow, scope, branch, loop body) and their `run_after` graph.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Actions in written order.
    pub actions: Vec<Action>,
    /// Edge `a -> b` means `b` runs after `a`; node weights are indexes into `actions`.
    pub graph: DiGraph<usize, StatusSet>,
}

/// Statuses of a predecessor that let an action run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    /// Run if the predecessor succeeded.
    pub succeeded: bool,
    /// Run if the predecessor failed.
    pub failed: bool,
    /// Run if the predecessor was skipped.
    pub skipped: bool,
    /// Run if the predecessor timed out.
    pub timed_out: bool,
}

impl StatusSet {
    /// Only `succeeded`: the default.
    pub const SUCCEEDED: StatusSet =
        StatusSet { succeeded: true, failed: false, skipped: false, timed_out: false };

    /// Builds a set from a `run_after` list.
    pub fn from_list(statuses: &[RunAfterStatus]) -> Self {
        let mut set = StatusSet::default();
        for status in statuses {
            match status {
                RunAfterStatus::Succeeded => set.succeeded = true,
                RunAfterStatus::Failed => set.failed = true,
                RunAfterStatus::Skipped => set.skipped = true,
                RunAfterStatus::TimedOut => set.timed_out = true,
            }
        }
        set
    }
}

/// One predecessor an action waits for.
#[derive(Debug, Clone)]
pub struct RunAfter {
    /// Index of the predecessor in the same block.
    pub action: usize,
    /// Statuses that let this action run.
    pub statuses: StatusSet,
}

/// How an action retries failed calls.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryPolicy {
    /// No retries.
    None,
    /// `count` retries, `interval` apart.
    Fixed {
        /// Number of retries.
        count: u32,
        /// Wait between attempts.
        interval: Duration,
    },
    /// `count` retries with randomised exponential back-off.
    Exponential {
        /// Number of retries.
        count: u32,
        /// Scaling interval.
        interval: Duration,
        /// Lower bound of one wait.
        min_interval: Duration,
        /// Upper bound of one wait.
        max_interval: Duration,
    },
}

impl Default for RetryPolicy {
    /// Logic Apps' default: 4 exponential retries scaled by 7 s, between 5 s and 1 h.
    fn default() -> Self {
        RetryPolicy::Exponential {
            count: 4,
            interval: Duration::from_secs(7),
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(3600),
        }
    }
}

/// A compiled action.
#[derive(Debug, Clone)]
pub struct Action {
    /// Unique name in the flow.
    pub name: String,
    /// The `type` as written, for display.
    pub type_name: String,
    /// Predecessors in the same block. Empty: starts when the block starts.
    pub run_after: Vec<RunAfter>,
    /// Retry policy (only used by actions that call out).
    pub retry: RetryPolicy,
    /// Per-action timeout.
    pub timeout: Option<Duration>,
    /// Free text.
    pub description: Option<String>,
    /// What the action does.
    pub kind: ActionKind,
}

/// What an action does, with its templates compiled.
#[derive(Debug, Clone)]
pub enum ActionKind {
    /// Outputs its rendered inputs.
    Compose { inputs: Template },
    /// Parses `content` (a string or value) and checks it against `schema`.
    ParseJson { content: Template, schema: Option<Value> },
    /// Maps each item of `from` through `map`.
    Select { from: Template, map: Template },
    /// Keeps the items of `from` for which `condition` holds.
    Filter { from: Template, condition: Template },
    /// Joins the items of `from` with `separator`.
    Join { from: Template, separator: Template },
    /// Declares a variable.
    InitializeVariable { name: String, kind: VariableType, value: Option<Template> },
    /// Sets a variable.
    SetVariable { name: String, value: Template },
    /// Adds `by` to a numeric variable.
    IncrementVariable { name: String, by: Template },
    /// Subtracts `by` from a numeric variable.
    DecrementVariable { name: String, by: Template },
    /// Appends to an array variable.
    AppendToArrayVariable { name: String, value: Template },
    /// Appends to a string variable.
    AppendToStringVariable { name: String, value: Template },
    /// Runs `then` or `else`.
    If { condition: Template, then: Block, otherwise: Block },
    /// Runs the case whose value equals `on`, else `default`.
    Switch { on: Template, cases: Vec<(Value, Block)>, default: Block },
    /// Groups actions; its status summarises theirs.
    Scope { actions: Block },
    /// Runs `actions` once per item, `concurrency` at a time.
    Foreach { items: Template, actions: Block, concurrency: usize },
    /// Runs `actions` until `condition` holds or a limit is reached.
    Until { condition: Template, actions: Block, limit_count: u32, limit_timeout: Duration },
    /// Waits for a duration or until a timestamp.
    Delay { duration: Option<Duration>, until: Option<Template> },
    /// Ends the run with a status.
    Terminate { status: String, code: Option<Template>, message: Option<Template> },
    /// Answers the HTTP request that triggered the run.
    Response { status: Template, headers: Template, body: Template },
    /// A plain HTTP request.
    Http { request: Template },
    /// Runs another flow of the folder to its end (`run_flow`).
    RunFlow { flow: String, body: Template },
    /// An operation of a connector.
    Connector { connector: String, operation: String, connection: Option<String>, inputs: Template },
}

impl ActionKind {
    /// The blocks nested in this action (branches, cases, scope and loop bodies), in written order.
    pub fn blocks(&self) -> Vec<&Block> {
        match self {
            ActionKind::If { then, otherwise, .. } => vec![then, otherwise],
            ActionKind::Switch { cases, default, .. } => {
                cases.iter().map(|(_, b)| b).chain([default]).collect()
            }
            ActionKind::Scope { actions }
            | ActionKind::Foreach { actions, .. }
            | ActionKind::Until { actions, .. } => {
                vec![actions]
            }
            _ => Vec::new(),
        }
    }
}
