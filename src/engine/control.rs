//! Actions that wait: containers (scope, if, switch, foreach, until), delay and outbound calls,
//! with per-action timeouts and cancellation when the run stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};

use super::Exec;
use super::actions::{render, template_error};
use super::block::{BlockOutcome, body_of, container_status, ordered, run_block, skip_block};
use super::record::{ActionError, ActionResult, Iteration, Status};
use super::state::{BodyOf, Frame, LoopInfo};
use crate::expr::{Scope, Template};
use crate::flow::{Action, ActionKind, Block};

/// Power Automate's cap on parallel foreach iterations.
const MAX_FOREACH_CONCURRENCY: usize = 50;

/// Runs an action that waits, applying its timeout.
pub(crate) async fn run_async(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Arc<Frame>,
) -> (ActionResult, BodyOf) {
    let started = exec.clock().now();
    let work = dispatch(exec, action, frame);
    let mut result = match action.timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| timed_out(action, limit)),
        None => work.await,
    };
    result.started_at = Some(started);
    result.ended_at = Some(exec.clock().now());
    (result, body_of(&action.kind))
}

async fn dispatch(exec: &Exec<'_>, action: &Action, frame: &Arc<Frame>) -> ActionResult {
    let name = action.name.as_str();
    match &action.kind {
        ActionKind::Scope { actions } => {
            let outcome = run_block(exec, actions, frame).await;
            finished_container(actions, &outcome, frame, None, None)
        }
        ActionKind::If { condition, then, otherwise } => {
            run_if(exec, name, frame, condition, then, otherwise).await
        }
        ActionKind::Switch { on, cases, default } => run_switch(exec, name, frame, on, cases, default).await,
        ActionKind::Foreach { items, actions, concurrency } => {
            run_foreach(exec, name, frame, items, actions, *concurrency).await
        }
        ActionKind::Until { condition, actions, limit_count, limit_timeout } => {
            run_until(exec, name, frame, condition, actions, *limit_count, *limit_timeout).await
        }
        ActionKind::Delay { duration, until } => {
            interruptible(frame, delay(exec, frame, *duration, until.as_ref())).await
        }
        ActionKind::Http { request } => {
            interruptible(frame, super::call::http(exec, action, frame, request)).await
        }
        ActionKind::Connector { connector, operation, connection, inputs } => {
            let call = super::call::Target { connector, operation, connection: connection.as_deref() };
            interruptible(frame, super::call::connector(exec, action, frame, call, inputs)).await
        }
        ActionKind::RunFlow { flow, body } => {
            interruptible(frame, super::child::run_flow(exec, action, frame, flow, body)).await
        }
        _ => {
            failed(None, ActionError::new("InternalError", format!("action '{name}' cannot run as a future")))
        }
    }
}

/// Leaf actions give up as soon as the run stops, recording `cancelled`.
async fn interruptible(frame: &Frame, work: impl Future<Output = ActionResult>) -> ActionResult {
    tokio::select! {
        result = work => result,
        () = frame.shared.stop.cancelled() => {
            let mut result = ActionResult::new(Status::Cancelled);
            result.attempts = 1;
            result.error = Some(ActionError::new("ActionCancelled", "the run was stopped while this action was running"));
            result
        }
    }
}

fn timed_out(action: &Action, limit: Duration) -> ActionResult {
    let mut result = ActionResult::new(Status::TimedOut);
    result.attempts = 1;
    let message =
        format!("action '{}' did not finish within its timeout of {}", action.name, format_duration(limit));
    result.error = Some(ActionError::new("ActionTimedOut", message));
    result
}

/// ISO-8601 text of a duration, as written in flows.
pub(crate) fn format_duration(duration: Duration) -> String {
    jiff::SignedDuration::try_from(duration)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| format!("{duration:?}"))
}

pub(crate) fn failed(inputs: Option<Value>, error: ActionError) -> ActionResult {
    let mut result = ActionResult::new(Status::Failed);
    result.attempts = 1;
    result.inputs = inputs;
    result.error = Some(error);
    result
}

fn finished_container(
    block: &Block,
    outcome: &BlockOutcome,
    frame: &Frame,
    inputs: Option<Value>,
    outputs: Option<Value>,
) -> ActionResult {
    let (status, error) = container_status(block, outcome, frame);
    let mut result = ActionResult::new(status);
    result.attempts = 1;
    result.inputs = inputs;
    result.outputs = outputs;
    result.error = error;
    result
}

fn not_boolean(what: &str, value: &Value) -> ActionError {
    ActionError::new("InvalidTemplate", format!("{what} must give a boolean (true or false), got {value}"))
}

async fn run_if(
    exec: &Exec<'_>,
    name: &str,
    frame: &Arc<Frame>,
    condition: &Template,
    then: &Block,
    otherwise: &Block,
) -> ActionResult {
    let scope: Arc<dyn Scope> = frame.clone();
    let taken = match render(condition, &scope) {
        Ok(Value::Bool(taken)) => taken,
        Ok(other) => return failed(None, not_boolean("the condition", &other)),
        Err(error) => return failed(None, error),
    };
    let (chosen, other) = if taken { (then, otherwise) } else { (otherwise, then) };
    skip_block(exec, other, frame, name);
    let outcome = run_block(exec, chosen, frame).await;
    let inputs = json!({"condition": taken});
    finished_container(chosen, &outcome, frame, Some(inputs), None)
}

/// Switch compares like Power Automate: a string case never matches a number value. Case
/// keys written as YAML map keys arrive as text, so a numeric-looking text case matches the
/// equal number.
fn case_matches(case: &Value, on: &Value) -> bool {
    match (case, on) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(text), Value::Number(n)) => text.parse::<f64>().ok() == n.as_f64(),
        _ => case == on,
    }
}

async fn run_switch(
    exec: &Exec<'_>,
    name: &str,
    frame: &Arc<Frame>,
    on: &Template,
    cases: &[(Value, Block)],
    default: &Block,
) -> ActionResult {
    let scope: Arc<dyn Scope> = frame.clone();
    let value = match render(on, &scope) {
        Ok(value) => value,
        Err(error) => return failed(None, error),
    };
    let matched = cases.iter().position(|(case, _)| case_matches(case, &value));
    for (index, (_, block)) in cases.iter().enumerate() {
        if Some(index) != matched {
            skip_block(exec, block, frame, name);
        }
    }
    let chosen = match matched {
        Some(index) => {
            skip_block(exec, default, frame, name);
            &cases[index].1
        }
        None => default,
    };
    let case = matched.map(|i| cases[i].0.clone()).unwrap_or(Value::String("default".into()));
    let outcome = run_block(exec, chosen, frame).await;
    let inputs = super::actions::object([("on", value)]);
    finished_container(chosen, &outcome, frame, Some(inputs), Some(json!({"case": case})))
}

/// Runs one loop iteration in its own frame.
async fn run_iteration(
    exec: &Exec<'_>,
    frame: Arc<Frame>,
    body: &Block,
) -> (Arc<Frame>, Status, Option<ActionError>, BlockOutcome) {
    let outcome = run_block(exec, body, &frame).await;
    let (status, error) = container_status(body, &outcome, &frame);
    (frame, status, error, outcome)
}

fn iteration_record(frame: &Frame, index: usize, status: Status, body: &Block) -> Iteration {
    Iteration { index, status, actions: ordered(body, frame.take_entries()) }
}

/// A foreach's output: per iteration, the outputs of the body's top-level actions.
fn foreach_outputs(body: &Block, iterations: &[Iteration]) -> Value {
    let per_iteration = iterations
        .iter()
        .map(|iteration| {
            let outputs: Map<String, Value> = body
                .actions
                .iter()
                .filter_map(|a| {
                    let result = iteration.actions.get(&a.name)?;
                    Some((a.name.clone(), result.outputs.clone().unwrap_or(Value::Null)))
                })
                .collect();
            Value::Object(outputs)
        })
        .collect();
    Value::Array(per_iteration)
}

async fn run_foreach(
    exec: &Exec<'_>,
    name: &str,
    frame: &Arc<Frame>,
    items: &Template,
    body: &Block,
    concurrency: usize,
) -> ActionResult {
    let scope: Arc<dyn Scope> = frame.clone();
    let items = match render(items, &scope) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            let message = format!("`items` must give an array, got {other}");
            return failed(None, ActionError::new("InvalidTemplate", message));
        }
        Err(error) => return failed(None, error),
    };
    let inputs = json!({"items": items});
    let total = items.len();
    let limit = concurrency.clamp(1, MAX_FOREACH_CONCURRENCY);
    let mut pending = items.into_iter().enumerate();
    let mut slots: Vec<Option<(Iteration, Option<ActionError>)>> = (0..total).map(|_| None).collect();
    let mut running = FuturesUnordered::new();
    let mut stopped = false;
    loop {
        while running.len() < limit && !frame.shared.stopping() {
            let Some((index, item)) = pending.next() else { break };
            let info = LoopInfo { name: name.to_string(), index, item: Some(item) };
            running.push(run_iteration(exec, Frame::iteration(frame, info), body));
        }
        let Some((iteration_frame, status, error, outcome)) = running.next().await else { break };
        stopped |= outcome.stopped;
        let index = iteration_frame.loop_info.as_ref().map_or(0, |info| info.index);
        slots[index] = Some((iteration_record(&iteration_frame, index, status, body), error));
    }
    stopped |= pending.next().is_some();
    let (iterations, errors): (Vec<Iteration>, Vec<Option<ActionError>>) =
        slots.into_iter().flatten().unzip();
    let outputs = foreach_outputs(body, &iterations);
    let mut result = ActionResult::new(Status::Succeeded);
    result.attempts = 1;
    if stopped {
        result.status = Status::Cancelled;
        result.error =
            Some(ActionError::new("ActionCancelled", "the run was stopped before the loop completed"));
    } else if let Some(position) = iterations.iter().position(|it| it.status == Status::Failed) {
        let detail = errors[position].as_ref().map(|e| format!(": {}", e.message)).unwrap_or_default();
        let message = format!("iteration {} failed{detail}", iterations[position].index);
        result.status = Status::Failed;
        result.error = Some(ActionError::new("ActionFailed", message));
    }
    result.inputs = Some(inputs);
    result.outputs = Some(outputs);
    result.iterations = Some(iterations);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_until(
    exec: &Exec<'_>,
    name: &str,
    frame: &Arc<Frame>,
    condition: &Template,
    body: &Block,
    limit_count: u32,
    limit_timeout: Duration,
) -> ActionResult {
    let started = tokio::time::Instant::now();
    let mut iterations = Vec::new();
    let mut result = ActionResult::new(Status::Succeeded);
    result.attempts = 1;
    result.inputs = Some(json!({"limit": {"count": limit_count, "timeout": format_duration(limit_timeout)}}));
    let mut index = 0usize;
    // Do-while: the body always runs once; the condition is checked after each iteration.
    let (last_status, last_error, reason) = loop {
        let info = LoopInfo { name: name.to_string(), index, item: None };
        let (iteration_frame, status, error, outcome) =
            run_iteration(exec, Frame::iteration(frame, info), body).await;
        let scope: Arc<dyn Scope> = iteration_frame.clone();
        let done = match condition.render(&scope) {
            Ok(Value::Bool(done)) => Ok(done),
            Ok(other) => Err(not_boolean("the until condition", &other)),
            Err(error) => Err(template_error(error)),
        };
        iterations.push(iteration_record(&iteration_frame, index, status, body));
        let done = match done {
            Ok(done) => done,
            Err(error) => break (Status::Failed, Some(error), "error"),
        };
        if outcome.stopped {
            break (Status::Cancelled, None, "stopped");
        }
        if done {
            break (status, error, "condition");
        }
        if index + 1 >= limit_count as usize {
            break (status, error, "count");
        }
        if started.elapsed() >= limit_timeout || frame.shared.stopping() {
            break (status, error, "timeout");
        }
        index += 1;
    };
    result.outputs = Some(json!({"iterations": iterations.len(), "stopped_by": reason}));
    result.iterations = Some(iterations);
    // The loop takes the status of its last iteration (reference §3.5).
    let (status, error) = match (reason, last_status) {
        ("error", _) => (Status::Failed, last_error),
        (_, Status::Cancelled) => (
            Status::Cancelled,
            Some(ActionError::new("ActionCancelled", "the run was stopped before the loop completed")),
        ),
        (_, Status::Failed | Status::TimedOut) => {
            let detail = last_error.as_ref().map(|e| format!(": {}", e.message)).unwrap_or_default();
            (
                Status::Failed,
                Some(ActionError::new("ActionFailed", format!("the last iteration failed{detail}"))),
            )
        }
        _ => (Status::Succeeded, None),
    };
    result.status = status;
    result.error = error;
    result
}

async fn delay(
    exec: &Exec<'_>,
    frame: &Arc<Frame>,
    duration: Option<Duration>,
    until: Option<&Template>,
) -> ActionResult {
    let (wait, inputs) = match (duration, until) {
        (Some(duration), _) => (duration, json!({"duration": format_duration(duration)})),
        (None, Some(until)) => {
            let scope: Arc<dyn Scope> = frame.clone();
            let value = match render(until, &scope) {
                Ok(value) => value,
                Err(error) => return failed(None, error),
            };
            let inputs = json!({"until": value});
            let Some(when) = value.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
                let message = format!(
                    "`until` must be an RFC 3339 timestamp such as 2030-01-01T00:00:00Z, got {value}"
                );
                return failed(Some(inputs), ActionError::new("InvalidInputs", message));
            };
            let wait = Duration::try_from(when.duration_since(exec.clock().now())).unwrap_or(Duration::ZERO);
            (wait, inputs)
        }
        (None, None) => {
            let error = ActionError::new("InvalidInputs", "a delay needs `duration` or `until`");
            return failed(None, error);
        }
    };
    tokio::time::sleep(wait).await;
    let mut result = ActionResult::new(Status::Succeeded);
    result.attempts = 1;
    result.inputs = Some(inputs);
    result
}
