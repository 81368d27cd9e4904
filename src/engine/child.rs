//! The `run_flow` action: another flow of the folder runs to its end inside this run, with the
//! same connections, clock, dry-run flag and cancellation, and its own record.
//!
//! Its outputs are `{"run": id, "status": …, "body": the child's response body or null}`, and
//! `body('x')` reads that response body, as for a call. It fails when the child run fails, with
//! the child's error. Flows are found through [`super::RunOptions::flows`]: the server's
//! registry, or the flow files of a folder. A manual flow answers with a `response` action.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};

use super::actions::{object, render};
use super::control::failed;
use super::mock::{MockAnswer, OutboundCall};
use super::record::{ActionError, ActionResult, Status};
use super::state::Frame;
use super::{Exec, RunOptions, TriggerEvent};
use crate::expr::{Scope, Template};
use crate::flow::{Action, Flow};

/// How deep child flows may nest (a flow that runs one that runs it back stops here).
pub const MAX_DEPTH: u32 = 8;

/// Where `run_flow` finds the flows it runs, by name.
pub trait FlowSource: Send + Sync + std::fmt::Debug {
    /// The flow called `name`, if there is one.
    fn flow(&self, name: &str) -> Option<Arc<Flow>>;
}

/// The flow files of one folder, loaded when asked for (`coflow run`, `coflow test`).
#[derive(Debug, Clone)]
pub struct FlowFolder(pub PathBuf);

impl FlowSource for FlowFolder {
    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        crate::cosell::usage::flow_files(&self.0)
            .ok()?
            .into_iter()
            .filter_map(|path| crate::flow::load_file(&path).ok())
            .find(|flow| flow.name == name)
            .map(Arc::new)
    }
}

/// Runs the flow `name` with the rendered `body` as its trigger body.
pub(crate) async fn run_flow(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Arc<Frame>,
    name: &str,
    body: &Template,
) -> ActionResult {
    let scope: Arc<dyn Scope> = frame.clone();
    let body = match render(body, &scope) {
        Ok(value) => value,
        Err(error) => return failed(None, error),
    };
    let inputs = json!({"flow": name, "body": body});
    if let Some(mocks) = exec.options.mocks.as_ref() {
        let iterations = frame.iteration_path();
        let call = OutboundCall {
            action: &action.name,
            iterations: &iterations,
            target: "run_flow",
            inputs: &inputs,
            attempt: 1,
        };
        if let Some(answer) = mocks.answer(&call) {
            return mocked(inputs, answer);
        }
    }
    let Some(child) = exec.options.flows.as_ref().and_then(|flows| flows.flow(name)) else {
        let error = ActionError::new(
            "FlowNotFound",
            format!("there is no flow named '{name}' beside this one: check the name of the flow to run"),
        );
        return failed(Some(inputs), error);
    };
    if exec.options.depth >= MAX_DEPTH {
        let error = ActionError::new(
            "ChildFlowTooDeep",
            format!("child flows are nested more than {MAX_DEPTH} deep: does '{name}' run its caller?"),
        );
        return failed(Some(inputs), error);
    }
    let options = RunOptions {
        parameters: Default::default(),
        observer: None,
        run_id: None,
        resume: None,
        depth: exec.options.depth + 1,
        ..exec.options.clone()
    };
    let event = TriggerEvent::from_body(body);
    // Boxed: a child run is a run, whose future cannot contain itself.
    let work: Pin<Box<dyn Future<Output = super::Run> + Send + '_>> =
        Box::pin(super::run(&child, event, &options));
    let mut run = work.await;
    let response = run.response.take().map_or(Value::Null, |r| r.body);
    let mut result = ActionResult::new(if run.succeeded() { Status::Succeeded } else { Status::Failed });
    result.attempts = 1;
    result.inputs = Some(inputs);
    result.outputs =
        Some(object([("run", json!(run.run_id)), ("status", json!(run.status)), ("body", response)]));
    if !run.succeeded() {
        let cause = run.error.as_ref().map_or("it did not succeed".to_string(), |e| e.message.clone());
        result.error = Some(ActionError::new(
            "ChildFlowFailed",
            format!("flow '{name}' ended {}: {cause}", run.status.as_str()),
        ));
    }
    result
}

fn mocked(inputs: Value, answer: MockAnswer) -> ActionResult {
    match answer {
        MockAnswer::Response(response) => {
            let succeeded = response.is_success();
            let mut result = ActionResult::new(if succeeded { Status::Succeeded } else { Status::Failed });
            result.attempts = 1;
            result.inputs = Some(inputs);
            let status = if succeeded { "succeeded" } else { "failed" };
            result.outputs =
                Some(object([("run", Value::Null), ("status", json!(status)), ("body", response.body)]));
            if !succeeded {
                result.error = Some(ActionError::new(
                    "ChildFlowFailed",
                    format!("the child flow answered {}", response.status),
                ));
            }
            result
        }
        MockAnswer::NoAnswer(message) => failed(Some(inputs), ActionError::new("ChildFlowFailed", message)),
        MockAnswer::Refused(error) => failed(Some(inputs), error),
    }
}
