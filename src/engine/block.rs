//! Running the actions of one block in `run_after` order, and working out a block's status.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use indexmap::IndexMap;

use super::Exec;
use super::record::{ActionError, ActionResult, Status};
use super::state::{BodyOf, Entry, Frame};
use crate::flow::{Action, ActionKind, Block, StatusSet};

/// How a block ended.
#[derive(Debug)]
pub(crate) struct BlockOutcome {
    /// Final status of every action, by index.
    pub statuses: Vec<Status>,
    /// Whether a stop (terminate or cancellation) skipped or cancelled some of its actions.
    pub stopped: bool,
}

/// Successors of each action, in compressed form: `targets[offsets[i]..offsets[i + 1]]`.
struct Successors {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Successors {
    fn of(block: &Block) -> Self {
        let n = block.actions.len();
        let mut counts = vec![0usize; n + 1];
        for action in &block.actions {
            for pred in &action.run_after {
                counts[pred.action + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut targets = vec![0usize; counts[n]];
        for (index, action) in block.actions.iter().enumerate() {
            for pred in &action.run_after {
                targets[fill[pred.action]] = index;
                fill[pred.action] += 1;
            }
        }
        Successors { offsets: counts, targets }
    }

    fn of_action(&self, index: usize) -> &[usize] {
        &self.targets[self.offsets[index]..self.offsets[index + 1]]
    }

    fn is_leaf(&self, index: usize) -> bool {
        self.offsets[index] == self.offsets[index + 1]
    }
}

/// Runs every action of `block`, recording each result in `frame`.
///
/// Simple actions run inline; actions that wait (calls, delays, containers) run as futures
/// polled together, so independent branches overlap without a task per action.
pub(crate) fn run_block<'a>(
    exec: &'a Exec<'a>,
    block: &'a Block,
    frame: &'a Arc<Frame>,
) -> BoxFuture<'a, BlockOutcome> {
    Box::pin(async move {
        let n = block.actions.len();
        let successors = Successors::of(block);
        let mut statuses: Vec<Option<Status>> = vec![None; n];
        let mut waiting: Vec<usize> = block.actions.iter().map(|a| a.run_after.len()).collect();
        let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut running = FuturesUnordered::new();
        let mut stopped = false;
        loop {
            while let Some(index) = ready.pop_front() {
                let action = &block.actions[index];
                let status = if frame.shared.stopping() {
                    stopped = true;
                    skip(exec, action, frame, stop_error(action, frame));
                    Status::Skipped
                } else if let Some(error) = unmet_run_after(block, action, &statuses) {
                    skip(exec, action, frame, error);
                    Status::Skipped
                } else if let Some(result) = resumed(exec, action, frame) {
                    let status = result.status;
                    frame.record(&action.name, result, body_of(&action.kind));
                    status
                } else if let Some((result, body)) = super::actions::run_sync(exec, action, frame) {
                    let status = result.status;
                    frame.record(&action.name, result, body);
                    status
                } else {
                    running
                        .push(async move { (index, super::control::run_async(exec, action, frame).await) });
                    continue;
                };
                settle(index, status, &successors, &mut statuses, &mut waiting, &mut ready);
            }
            let Some((index, (result, body))) = running.next().await else { break };
            let status = result.status;
            stopped |= status == Status::Cancelled;
            frame.record(&block.actions[index].name, result, body);
            settle(index, status, &successors, &mut statuses, &mut waiting, &mut ready);
        }
        let statuses = statuses
            .into_iter()
            .enumerate()
            .map(|(index, status)| {
                status.unwrap_or_else(|| {
                    // Only a stop leaves actions undecided: their predecessors never settled.
                    stopped = true;
                    let action = &block.actions[index];
                    skip(exec, action, frame, stop_error(action, frame));
                    Status::Skipped
                })
            })
            .collect();
        BlockOutcome { statuses, stopped }
    })
}

fn settle(
    index: usize,
    status: Status,
    successors: &Successors,
    statuses: &mut [Option<Status>],
    waiting: &mut [usize],
    ready: &mut VecDeque<usize>,
) {
    statuses[index] = Some(status);
    for &next in successors.of_action(index) {
        waiting[next] -= 1;
        if waiting[next] == 0 {
            ready.push_back(next);
        }
    }
}

fn allows(set: StatusSet, status: Status) -> bool {
    match status {
        Status::Succeeded => set.succeeded,
        Status::Failed => set.failed,
        Status::Skipped => set.skipped,
        Status::TimedOut => set.timed_out,
        Status::Cancelled => false,
    }
}

fn describe(set: StatusSet) -> String {
    let names = [
        (set.succeeded, "succeeded"),
        (set.failed, "failed"),
        (set.skipped, "skipped"),
        (set.timed_out, "timed_out"),
    ];
    names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect::<Vec<_>>().join(", ")
}

/// `run_after` holds when every predecessor's status is in its list (AND across, OR within).
fn unmet_run_after(block: &Block, action: &Action, statuses: &[Option<Status>]) -> Option<ActionError> {
    action.run_after.iter().find_map(|pred| {
        let actual = statuses[pred.action]?;
        if allows(pred.statuses, actual) {
            return None;
        }
        Some(ActionError::new(
            "ActionConditionFailed",
            format!(
                "action '{}' is skipped: the run_after condition for action '{}' is not satisfied \
                 (expected {}, actual {actual})",
                action.name,
                block.actions[pred.action].name,
                describe(pred.statuses)
            ),
        ))
    })
}

fn stop_error(action: &Action, frame: &Frame) -> ActionError {
    let why =
        if super::state::lock(&frame.shared.termination).is_some() { "terminated" } else { "cancelled" };
    ActionError::new("ActionSkipped", format!("action '{}' is skipped: the run was {why}", action.name))
}

/// Records `action` as skipped, and every action inside it (for scope, if and switch) too.
pub(crate) fn skip(exec: &Exec<'_>, action: &Action, frame: &Frame, error: ActionError) {
    let now = exec.clock().now();
    let mut result = ActionResult::new(Status::Skipped);
    result.started_at = Some(now);
    result.ended_at = Some(now);
    result.error = Some(error);
    for block in flat_children(&action.kind) {
        skip_block(exec, block, frame, &action.name);
    }
    frame.record(&action.name, result, body_of(&action.kind));
}

/// Records every action of a block that will not run (branch not taken, container skipped).
pub(crate) fn skip_block(exec: &Exec<'_>, block: &Block, frame: &Frame, container: &str) {
    for action in &block.actions {
        let error = ActionError::new(
            "ActionBranchingConditionNotSatisfied",
            format!("action '{}' is skipped: its branch of '{container}' did not run", action.name),
        );
        skip(exec, action, frame, error);
    }
}

/// Blocks whose actions are recorded in the same flat map as their container.
pub(crate) fn flat_children(kind: &ActionKind) -> Vec<&Block> {
    match kind {
        ActionKind::If { then, otherwise, .. } => vec![then, otherwise],
        ActionKind::Switch { cases, default, .. } => cases.iter().map(|(_, b)| b).chain([default]).collect(),
        ActionKind::Scope { actions } => vec![actions],
        _ => Vec::new(),
    }
}

/// The result of a call that succeeded before the run was interrupted, reused instead of
/// calling again (outside loops only: iterations are not recorded one by one).
fn resumed(exec: &Exec<'_>, action: &Action, frame: &Frame) -> Option<ActionResult> {
    let completed = exec.options.resume.as_ref()?;
    let is_call = matches!(action.kind, ActionKind::Http { .. } | ActionKind::Connector { .. });
    if !is_call || frame.in_loop() {
        return None;
    }
    completed.get(&action.name).filter(|result| result.status == Status::Succeeded).cloned()
}

/// How `body('x')` reads an action of this kind.
pub(crate) fn body_of(kind: &ActionKind) -> BodyOf {
    match kind {
        ActionKind::Http { .. } | ActionKind::Connector { .. } | ActionKind::RunFlow { .. } => BodyOf::Field,
        _ => BodyOf::Outputs,
    }
}

/// The §2.4 walk over a block's leaves: `Err(index)` names the action whose failure nothing
/// handled.
pub(crate) fn block_status(block: &Block, statuses: &[Status]) -> Result<(), usize> {
    let successors = Successors::of(block);
    let mut memo: Vec<Option<Result<(), usize>>> = vec![None; statuses.len()];
    for index in 0..statuses.len() {
        if successors.is_leaf(index) {
            effective(block, statuses, index, &mut memo)?;
        }
    }
    Ok(())
}

/// A leaf's effective status: skipped actions take their predecessors' (a skipped action with
/// none was on a branch not taken, which counts as success).
fn effective(
    block: &Block,
    statuses: &[Status],
    index: usize,
    memo: &mut [Option<Result<(), usize>>],
) -> Result<(), usize> {
    if let Some(known) = memo[index] {
        return known;
    }
    memo[index] = Some(Ok(()));
    let outcome = match statuses[index] {
        Status::Succeeded => Ok(()),
        Status::Skipped => block.actions[index]
            .run_after
            .iter()
            .try_for_each(|pred| effective(block, statuses, pred.action, memo)),
        _ => Err(index),
    };
    memo[index] = Some(outcome);
    outcome
}

/// A container's status from its block: cancelled when a stop cut it short, failed when a
/// failure went unhandled (the error names the failing action), else succeeded.
pub(crate) fn container_status(
    block: &Block,
    outcome: &BlockOutcome,
    frame: &Frame,
) -> (Status, Option<ActionError>) {
    if outcome.stopped {
        let error = ActionError::new("ActionCancelled", "the run was stopped before this action completed");
        return (Status::Cancelled, Some(error));
    }
    match block_status(block, &outcome.statuses) {
        Ok(()) => (Status::Succeeded, None),
        Err(index) => {
            let name = &block.actions[index].name;
            let detail = frame.error_of(name).map(|e| format!(": {}", e.message)).unwrap_or_default();
            let error = ActionError::new("ActionFailed", format!("action '{name}' failed{detail}"));
            (Status::Failed, Some(error))
        }
    }
}

/// Puts a frame's results in written order: each container first, then the actions inside it.
pub(crate) fn ordered(
    block: &Block,
    mut entries: IndexMap<String, Arc<Entry>>,
) -> IndexMap<String, ActionResult> {
    let mut out = IndexMap::with_capacity(entries.len());
    order_into(block, &mut entries, &mut out);
    out.extend(entries.into_iter().map(|(name, entry)| (name, entry.into_result())));
    out
}

fn order_into(
    block: &Block,
    entries: &mut IndexMap<String, Arc<Entry>>,
    out: &mut IndexMap<String, ActionResult>,
) {
    for action in &block.actions {
        if let Some(entry) = entries.swap_remove(&action.name) {
            out.insert(action.name.clone(), entry.into_result());
        }
        for child in flat_children(&action.kind) {
            order_into(child, entries, out);
        }
    }
}
