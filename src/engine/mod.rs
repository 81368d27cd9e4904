//! Executing one run of a compiled flow with Power Automate semantics.
//!
//! [`run`] takes a [`Flow`], the [`TriggerEvent`] that started it and [`RunOptions`] (connections,
//! dry-run, parameters, cancellation, clock, observer) and returns the [`Run`] record. Actions run
//! when their `run_after` holds, independent branches overlap, and the run's status is worked out
//! from its leaves (reference §2.4). Nothing here panics or returns early on a flow's own
//! failures: they are all data in the record.

mod actions;
mod block;
mod call;
mod child;
mod clock;
mod control;
mod mock;
mod record;
mod retry;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use child::{FlowFolder, FlowSource, MAX_DEPTH};
pub use clock::{Clock, TokioClock};
pub use mock::{MockAnswer, Mocks, OutboundCall};
pub use record::{
    ActionError, ActionResult, Attempt, Iteration, ResponseRecord, Run, Status, TriggerRecord,
    assemble_record,
};
pub use retry::retry_delay;

use crate::connectors::{Connections, HttpClient};
use crate::expr::secrets;
use crate::flow::{ActionKind, Block, Flow};
use state::{Frame, Shared};

/// The event that starts a run: what `triggerBody()` and `triggerOutputs()` read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerEvent {
    /// Request headers (or connector metadata), as a JSON object.
    pub headers: Map<String, Value>,
    /// The event body.
    pub body: Value,
}

impl TriggerEvent {
    /// An event with only a body.
    pub fn from_body(body: Value) -> Self {
        TriggerEvent { headers: Map::new(), body }
    }

    /// Reads an event file's JSON: an object whose only keys are `body` and optionally
    /// `headers` is the full form; anything else is the body itself.
    pub fn from_json(value: Value) -> Self {
        match value {
            Value::Object(mut map) if is_full_form(&map) => {
                let headers = match map.remove("headers") {
                    Some(Value::Object(h)) => h,
                    _ => Map::new(),
                };
                let body = map.remove("body").unwrap_or(Value::Null);
                TriggerEvent { headers, body }
            }
            other => TriggerEvent::from_body(other),
        }
    }

    /// `{"headers": …, "body": …}`, what `triggerOutputs()` reads; the event is moved in.
    fn into_outputs(self) -> Value {
        let mut outputs = Map::with_capacity(2);
        outputs.insert("headers".into(), Value::Object(self.headers));
        outputs.insert("body".into(), self.body);
        Value::Object(outputs)
    }
}

/// Whether an event file's object is the full form: `body`, and optionally `headers` as an object.
fn is_full_form(map: &Map<String, Value>) -> bool {
    let full_form = map.contains_key("body") && map.keys().all(|k| k == "body" || k == "headers");
    full_form && map.get("headers").is_none_or(Value::is_object)
}

/// A handle that stops a run: running actions are cancelled and the rest skipped.
#[derive(Debug, Clone)]
pub struct CancelToken {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken { sender: Arc::new(watch::channel(false).0) }
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.sender.send_replace(true);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.sender.borrow()
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives as long as `self`, so waiting can only end by cancellation.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

/// One finished action, as an [`Observer`] sees it (secrets already redacted).
#[derive(Debug)]
pub struct ActionEvent<'a> {
    /// The action's name.
    pub name: &'a str,
    /// Enclosing loops, outermost first, as `(loop name, iteration index)`.
    pub iterations: &'a [(String, usize)],
    /// What the action did.
    pub result: &'a ActionResult,
}

/// Hooks called while a run progresses, e.g. to persist results as they complete.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// An action reached its final status.
    fn action_finished(&self, event: &ActionEvent<'_>) {
        let _ = event;
    }

    /// A `response` action produced the answer to the triggering request.
    fn response(&self, response: &ResponseRecord) {
        let _ = response;
    }
}

/// How to run a flow.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Connections for connector actions, by connection name.
    pub connections: Connections,
    /// The client every HTTP call goes through; its dry-run flag holds back writes.
    pub http: HttpClient,
    /// Values for the flow's parameters, overriding their defaults.
    pub parameters: IndexMap<String, Value>,
    /// Stops the run when cancelled.
    pub cancel: CancelToken,
    /// Where timestamps come from.
    pub clock: Arc<dyn Clock>,
    /// Told about each action as it completes.
    pub observer: Option<Arc<dyn Observer>>,
    /// The run's id; a new UUID v7 when `None`.
    pub run_id: Option<String>,
    /// Results of calls (`http` and connector actions outside loops) that succeeded in an
    /// earlier, interrupted execution of this run: they are reused instead of being sent again.
    pub resume: Option<Arc<HashMap<String, ActionResult>>>,
    /// Answers outbound calls instead of the network when set (flow unit tests).
    pub mocks: Option<Arc<dyn Mocks>>,
    /// Where `run_flow` actions find the flows they run.
    pub flows: Option<Arc<dyn FlowSource>>,
    /// How many `run_flow` calls this run is nested in (0 for a run of its own).
    pub depth: u32,
    /// An earlier execution of this run was interrupted and may have sent calls it did not
    /// record: connector writes that can check whether they already landed do so first.
    pub recovering: bool,
}

/// Power Automate's limit for one outbound synchronous request.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl RunOptions {
    /// Options with no connections, a real HTTP client and the system clock.
    pub fn new(dry_run: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(HTTP_REQUEST_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_http(HttpClient::new(client, dry_run))
    }

    /// Options that send HTTP through `http`.
    pub fn with_http(http: HttpClient) -> Self {
        RunOptions {
            connections: Connections::new(),
            http,
            parameters: IndexMap::new(),
            cancel: CancelToken::new(),
            clock: Arc::new(TokioClock::system()),
            observer: None,
            run_id: None,
            resume: None,
            mocks: None,
            flows: None,
            depth: 0,
            recovering: false,
        }
    }

    /// Whether writes are held back.
    pub fn is_dry_run(&self) -> bool {
        self.http.is_dry_run()
    }
}

/// What every action of a run can reach.
pub(crate) struct Exec<'a> {
    pub flow: &'a Flow,
    pub options: &'a RunOptions,
}

impl Exec<'_> {
    pub fn clock(&self) -> &dyn Clock {
        self.options.clock.as_ref()
    }
}

/// Runs `flow` once for `event` and returns the run record.
pub async fn run(flow: &Flow, event: TriggerEvent, options: &RunOptions) -> Run {
    let started_at = options.clock.now();
    let run_id = options.run_id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let shared = Arc::new(Shared {
        flow_name: flow.name.clone(),
        run_id: run_id.clone(),
        trigger: Arc::new(event.into_outputs()),
        parameters: parameters(flow, options),
        mappings: flow.mappings.clone(),
        sync: flow.sync.clone(),
        variables: Mutex::default(),
        latest: Mutex::default(),
        children: container_children(&flow.root),
        stop: CancelToken::new(),
        termination: Mutex::default(),
        response: Mutex::default(),
        observer: options.observer.clone(),
    });
    let root = Frame::root(shared.clone());
    let outcome = {
        let exec = Exec { flow, options };
        let work = block::run_block(&exec, &flow.root, &root);
        tokio::pin!(work);
        // A per-run stop token, so a terminate never trips the caller's token.
        tokio::select! {
            outcome = &mut work => outcome,
            () = options.cancel.cancelled() => {
                shared.stop.cancel();
                work.await
            }
        }
    };
    let (status, error) = run_status(&flow.root, &outcome, &root);
    let actions = block::ordered(&flow.root, root.take_entries());
    drop(root);
    // The run is over: what it kept moves into the record instead of being copied.
    let response = state::lock(&shared.response).take();
    let variables = std::mem::take(&mut *state::lock(&shared.variables))
        .into_iter()
        .map(|(name, v)| (name, v.value))
        .collect();
    let trigger = match Arc::try_unwrap(shared) {
        Ok(shared) => Arc::unwrap_or_clone(shared.trigger),
        Err(shared) => Value::clone(&shared.trigger),
    };
    let mut run = Run {
        flow: flow.name.clone(),
        run_id,
        status,
        trigger: TriggerRecord { outputs: trigger },
        started_at,
        ended_at: options.clock.now(),
        error,
        actions,
        response,
        variables,
        dry_run: options.is_dry_run(),
    };
    redact_run(&mut run);
    run
}

/// §2.4: terminate overrides everything, a cancelled run is cancelled, else the leaf walk.
fn run_status(root: &Block, outcome: &block::BlockOutcome, frame: &Frame) -> (Status, Option<ActionError>) {
    if let Some(termination) = state::lock(&frame.shared.termination).clone() {
        return (termination.status, termination.error);
    }
    if frame.shared.stopping() {
        return (Status::Cancelled, Some(ActionError::new("RunCancelled", "the run was cancelled")));
    }
    match block::block_status(root, &outcome.statuses) {
        Ok(()) => (Status::Succeeded, None),
        Err(index) => {
            let name = &root.actions[index].name;
            let error = frame
                .error_of(name)
                .unwrap_or_else(|| ActionError::new("ActionFailed", format!("action '{name}' failed")));
            (Status::Failed, Some(error))
        }
    }
}

fn parameters(flow: &Flow, options: &RunOptions) -> IndexMap<String, Value> {
    let mut values: IndexMap<String, Value> =
        flow.parameters.iter().filter_map(|(name, p)| p.default.clone().map(|d| (name.clone(), d))).collect();
    values.extend(options.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
    values
}

/// Container name -> its direct children, for `result('x')`.
fn container_children(block: &Block) -> HashMap<String, Vec<String>> {
    let mut map = HashMap::new();
    collect_children(block, &mut map);
    map
}

fn collect_children(block: &Block, map: &mut HashMap<String, Vec<String>>) {
    for action in &block.actions {
        let blocks: Vec<&Block> = match &action.kind {
            ActionKind::Foreach { actions, .. } | ActionKind::Until { actions, .. } => vec![actions],
            kind => block::flat_children(kind),
        };
        if blocks.is_empty() {
            continue;
        }
        let names = blocks.iter().flat_map(|b| b.actions.iter().map(|a| a.name.clone())).collect();
        map.insert(action.name.clone(), names);
        for inner in blocks {
            collect_children(inner, map);
        }
    }
}

fn redact_error(error: &mut Option<ActionError>) {
    if let Some(error) = error {
        error.message = secrets::redact(&error.message);
    }
}

/// Hides secret values in one result (and its iterations) before it leaves the engine.
pub(crate) fn redact_result(result: &mut ActionResult) {
    for value in [&mut result.inputs, &mut result.outputs].into_iter().flatten() {
        secrets::redact_value(value);
    }
    redact_error(&mut result.error);
    for attempt in &mut result.retry_history {
        attempt.error.message = secrets::redact(&attempt.error.message);
    }
    for iteration in result.iterations.iter_mut().flatten() {
        iteration.actions.values_mut().for_each(redact_result);
    }
}

fn redact_run(run: &mut Run) {
    secrets::redact_value(&mut run.trigger.outputs);
    redact_error(&mut run.error);
    run.actions.values_mut().for_each(redact_result);
    run.variables.values_mut().for_each(secrets::redact_value);
    if let Some(response) = &mut run.response {
        secrets::redact_value(&mut response.body);
        for value in response.headers.values_mut() {
            *value = secrets::redact(value);
        }
    }
}
