//! `/runs/{id}`: one run, its picture coloured by status and every action's inputs, outputs,
//! duration and attempts; the resubmit and cancel forms with their confirmation pages; and the
//! small state document the page polls while the run is going.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path, State as AxumState};
use axum::response::{IntoResponse, Redirect};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::graph::{self, Decoration};
use super::status::Badge;
use super::view::{self, RunRow};
use super::{UiError, UiResult, data, form_token, form_token_ok, render};
use crate::engine::{ActionResult, Status};
use crate::flow::Block;
use crate::server::{Cancellation, State};
use crate::store::{RunDetail, RunStatus, RunSummary};

/// Iterations of one action listed on the page; the rest are counted.
const SHOWN_ITERATIONS: usize = 50;

fn run_id(text: &str) -> Result<Uuid, UiError> {
    Uuid::parse_str(text).map_err(|_| UiError::BadRequest(format!("`{text}` is not a run id")))
}

async fn load(state: &State, id: Uuid) -> Result<RunDetail, UiError> {
    state
        .run_or_queued(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("run {id} is not in the history (it may have been purged)")))
}

/// One result of an action: the action's only one, or one per loop iteration.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// Where in the loops it ran (`For_each_line #2`), empty outside loops.
    pub iteration: Vec<String>,
    /// The result as recorded; `Err` holds an entry that does not read as a result.
    pub result: Result<ActionResult, serde_json::Value>,
}

/// Every recorded result of a run, by action name, in recorded order.
#[derive(Debug, Default)]
pub struct Results {
    by_name: HashMap<String, Vec<Occurrence>>,
    /// Names in the order first seen.
    order: Vec<String>,
}

impl Results {
    /// The results of a run: the record when it has ended, else the actions recorded so far.
    pub fn of(detail: &RunDetail) -> Results {
        let mut results = Results::default();
        let recorded = detail.record.as_ref().and_then(|r| r.get("actions")).and_then(|a| a.as_object());
        for (name, entry) in recorded.into_iter().flatten() {
            results.add_entry(name, entry, &[]);
        }
        for action in &detail.actions {
            if !results.by_name.contains_key(&action.name) {
                results.add_entry(&action.name, &action.result, &[]);
            }
        }
        results
    }

    fn add_entry(&mut self, name: &str, entry: &serde_json::Value, iteration: &[String]) {
        match serde_json::from_value::<ActionResult>(entry.clone()) {
            Ok(result) => self.add(name, result, iteration),
            Err(_) => {
                self.push(name, Occurrence { iteration: iteration.to_vec(), result: Err(entry.clone()) })
            }
        }
    }

    fn add(&mut self, name: &str, result: ActionResult, iteration: &[String]) {
        for round in result.iterations.iter().flatten() {
            let mut inner = iteration.to_vec();
            inner.push(format!("{name} #{}", round.index + 1));
            for (child, child_result) in &round.actions {
                self.add(child, child_result.clone(), &inner);
            }
        }
        self.push(name, Occurrence { iteration: iteration.to_vec(), result: Ok(result) });
    }

    fn push(&mut self, name: &str, occurrence: Occurrence) {
        if !self.by_name.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.by_name.entry(name.to_string()).or_default().push(occurrence);
    }

    /// The results of `name`.
    pub fn get(&self, name: &str) -> &[Occurrence] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The status of `name` over all its results: a failure in any iteration shows.
    pub fn status(&self, name: &str) -> Option<Status> {
        let statuses: Vec<Status> =
            self.get(name).iter().filter_map(|o| o.result.as_ref().ok().map(|r| r.status)).collect();
        [Status::Failed, Status::TimedOut, Status::Cancelled, Status::Succeeded, Status::Skipped]
            .into_iter()
            .find(|wanted| statuses.contains(wanted))
    }
}

/// An action of the flow, in written order, with where it sits.
#[derive(Debug, Clone)]
struct Placed {
    name: String,
    type_name: String,
    /// Containers and branches around it, e.g. `Send › Check_lines › then`.
    path: Vec<String>,
}

fn walk(block: &Block, path: &mut Vec<String>, out: &mut Vec<Placed>) {
    for action in &block.actions {
        out.push(Placed {
            name: action.name.clone(),
            type_name: action.type_name.clone(),
            path: path.clone(),
        });
        for (label, inner) in graph::branches(&action.kind) {
            path.push(match label {
                Some(label) => format!("{} › {label}", action.name),
                None => action.name.clone(),
            });
            walk(inner, path, out);
            path.pop();
        }
    }
}

/// One result as the page shows it.
#[derive(Debug, Serialize)]
struct OccurrenceView {
    label: Option<String>,
    badge: Badge,
    open: bool,
    started: Option<String>,
    duration: Option<String>,
    attempts: u32,
    error: Option<String>,
    /// Why a skipped action did not run.
    note: Option<String>,
    retries: Vec<RetryView>,
    inputs: Option<String>,
    outputs: Option<String>,
    iterations: Option<String>,
    raw: Option<String>,
}

/// A failed attempt that was retried.
#[derive(Debug, Serialize)]
struct RetryView {
    at: String,
    duration: String,
    error: String,
}

fn occurrence_view(occurrence: &Occurrence) -> OccurrenceView {
    let label = (!occurrence.iteration.is_empty()).then(|| occurrence.iteration.join(" › "));
    let result = match &occurrence.result {
        Ok(result) => result,
        Err(raw) => {
            return OccurrenceView {
                label,
                badge: Badge::NOT_RUN,
                open: false,
                started: None,
                duration: None,
                attempts: 0,
                error: None,
                note: None,
                retries: Vec::new(),
                inputs: None,
                outputs: None,
                iterations: None,
                raw: Some(view::pretty(raw)),
            };
        }
    };
    let badge = Badge::for_action(result.status.as_str());
    let skipped = result.status == Status::Skipped;
    OccurrenceView {
        label,
        badge,
        open: result.status.is_failure(),
        started: result.started_at.map(view::when),
        duration: result.duration().map(view::human),
        attempts: result.attempts,
        error: result.error.as_ref().filter(|_| !skipped).map(|e| format!("{}: {}", e.code, e.message)),
        note: result.error.as_ref().filter(|_| skipped).map(|e| skip_reason(&e.message)),
        retries: result
            .retry_history
            .iter()
            .map(|attempt| RetryView {
                at: view::when(attempt.started_at),
                duration: view::span(attempt.started_at, attempt.ended_at),
                error: format!("{}: {}", attempt.error.code, attempt.error.message),
            })
            .collect(),
        inputs: result.inputs.as_ref().map(view::pretty),
        outputs: result.outputs.as_ref().map(view::pretty),
        iterations: result
            .iterations
            .as_ref()
            .map(|rounds| tally(rounds.iter().map(|r| r.status), "iteration")),
        raw: None,
    }
}

/// The reason of a skip without the action's name the engine puts first.
fn skip_reason(message: &str) -> String {
    message.split_once(" is skipped: ").map_or(message, |(_, reason)| reason).to_string()
}

/// `3 iterations: 2 succeeded, 1 failed`.
fn tally(statuses: impl Iterator<Item = Status>, noun: &str) -> String {
    let mut counts: Vec<(Status, usize)> = Vec::new();
    let mut total = 0;
    for status in statuses {
        total += 1;
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    let parts: Vec<String> =
        counts.iter().map(|(s, n)| format!("{n} {}", Badge::for_action(s.as_str()).label)).collect();
    let plural = if total == 1 { "" } else { "s" };
    if parts.is_empty() {
        format!("no {noun}s")
    } else {
        format!("{total} {noun}{plural}: {}", parts.join(", "))
    }
}

/// An action in the page's list.
#[derive(Debug, Serialize)]
struct ActionView {
    anchor: String,
    name: String,
    type_name: String,
    path: String,
    depth: usize,
    badge: Badge,
    open: bool,
    /// Its only result, outside loops.
    single: Option<OccurrenceView>,
    /// Its results inside loops.
    iterations: Vec<OccurrenceView>,
    summary: Option<String>,
    hidden: usize,
}

fn action_view(anchor: String, placed: &Placed, results: &Results, pending: Badge) -> ActionView {
    let occurrences = results.get(&placed.name);
    let badge = results.status(&placed.name).map_or(pending, |s| Badge::for_action(s.as_str()));
    let in_loop = occurrences.iter().any(|o| !o.iteration.is_empty());
    let (single, iterations, summary, hidden) = if in_loop {
        let statuses = occurrences.iter().filter_map(|o| o.result.as_ref().ok().map(|r| r.status));
        let summary = tally(statuses, "run");
        let views: Vec<OccurrenceView> =
            occurrences.iter().take(SHOWN_ITERATIONS).map(occurrence_view).collect();
        (None, views, Some(summary), occurrences.len().saturating_sub(SHOWN_ITERATIONS))
    } else {
        (occurrences.first().map(occurrence_view), Vec::new(), None, 0)
    };
    ActionView {
        anchor,
        name: placed.name.clone(),
        type_name: placed.type_name.clone(),
        path: placed.path.join(" › "),
        depth: placed.path.len().min(4),
        open: badge == Badge::for_action("failed") || badge == Badge::for_action("timed_out"),
        badge,
        single,
        iterations,
        summary,
        hidden,
    }
}

/// `GET /runs/{id}`.
pub async fn show(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> UiResult {
    let id = run_id(&id)?;
    let detail = load(&state, id).await?;
    let now = state.store.now();
    let summary = &detail.summary;
    let loaded = state.registry.get(&summary.flow);
    let results = Results::of(&detail);
    let mut placed = Vec::new();
    if let Some(loaded) = &loaded {
        walk(&loaded.flow.root, &mut Vec::new(), &mut placed);
    }
    // Results of actions the current version of the flow no longer has.
    for name in &results.order {
        if !placed.iter().any(|p| &p.name == name) {
            placed.push(Placed {
                name: name.clone(),
                type_name: "not in the current flow".into(),
                path: Vec::new(),
            });
        }
    }
    let pending = if summary.status.is_terminal() { Badge::NOT_RUN } else { Badge::PENDING };
    let actions: Vec<ActionView> = placed
        .iter()
        .enumerate()
        .map(|(index, p)| action_view(format!("a-{}", index + 1), p, &results, pending))
        .collect();
    let svg = loaded.as_ref().map(|loaded| {
        let anchors: HashMap<&str, (&str, Badge)> =
            actions.iter().map(|a| (a.name.as_str(), (a.anchor.as_str(), a.badge))).collect();
        let picture = graph::layout(&loaded.flow, true);
        let svg = picture.svg(&format!("Actions of run {id}"), &|name| match anchors.get(name) {
            Some((anchor, badge)) => Decoration { badge: Some(*badge), href: Some(format!("#{anchor}")) },
            None => Decoration::default(),
        });
        Value::from_safe_string(svg)
    });
    let terminal = summary.status.is_terminal();
    let id_text = id.to_string();
    let values = context! {
        run => data(RunRow::of(summary, now)),
        event_id => summary.event_id.map(|e| e.to_string()),
        started => summary.started_at.map(view::when),
        ended => summary.ended_at.map(view::when),
        resubmits => detail.resubmits.iter().map(ToString::to_string).collect::<Vec<_>>(),
        inputs => view::pretty(&detail.inputs),
        flow_loaded => loaded.is_some(),
        svg,
        actions => data(&actions),
        live => !terminal,
        can_resubmit => terminal,
        can_cancel => !terminal,
        state_url => format!("/runs/{id_text}/state"),
        state_key => state_key(summary.status, detail.actions.len()),
    };
    render(&state, "run.html", &format!("Run {} of {}", short(&id_text), summary.flow), "runs", values)
}

fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// What the page compares to know it is out of date; the state document gives the same parts.
fn state_key(status: RunStatus, actions: usize) -> String {
    format!("{status}/{actions}")
}

/// `GET /runs/{id}/state`: what the run page polls to know when to refresh.
pub async fn live_state(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> UiResult {
    let detail = load(&state, run_id(&id)?).await?;
    let status = detail.summary.status;
    Ok(Json(json!({
        "status": status,
        "terminal": status.is_terminal(),
        "actions": detail.actions.len(),
    }))
    .into_response())
}

/// What the confirmation page says for an operation.
struct Operation {
    key: &'static str,
    verb: &'static str,
    explain: &'static str,
}

const RESUBMIT: Operation = Operation {
    key: "resubmit",
    verb: "Resubmit",
    explain: "A new run of the flow starts with the same trigger event and inputs. Actions that \
              already wrote to other systems run again: make sure that is safe.",
};

const CANCEL: Operation = Operation {
    key: "cancel",
    verb: "Cancel",
    explain: "The run stops: a running action is interrupted and no further action starts. \
              What it already wrote to other systems stays written.",
};

async fn confirm(state: &State, id: &str, operation: &Operation) -> UiResult {
    let id = run_id(id)?;
    let detail = load(state, id).await?;
    if operation.key == CANCEL.key && detail.summary.status.is_terminal() {
        return Err(ended(&detail.summary));
    }
    let id_text = id.to_string();
    let values = context! {
        run => data(RunRow::of(&detail.summary, state.store.now())),
        verb => operation.verb,
        explain => operation.explain,
        action => format!("/runs/{id_text}/{}", operation.key),
        back => format!("/runs/{id_text}"),
        csrf => form_token(operation.key, &id_text),
    };
    render(state, "confirm.html", &format!("{} run {}?", operation.verb, short(&id_text)), "runs", values)
}

/// `GET /runs/{id}/resubmit`: the confirmation page.
pub async fn confirm_resubmit(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> UiResult {
    confirm(&state, &id, &RESUBMIT).await
}

/// `GET /runs/{id}/cancel`: the confirmation page.
pub async fn confirm_cancel(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> UiResult {
    confirm(&state, &id, &CANCEL).await
}

/// Form of the confirmation pages.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
}

fn check_form(operation: &Operation, id: Uuid, form: &ConfirmForm) -> Result<(), UiError> {
    if form_token_ok(operation.key, &id.to_string(), &form.csrf) {
        return Ok(());
    }
    Err(UiError::BadRequest(format!(
        "this {} form is not one this server made (or the server restarted since): open the run again and confirm from there",
        operation.key
    )))
}

/// `POST /runs/{id}/resubmit`: starts the new run and shows it.
pub async fn resubmit(
    AxumState(state): AxumState<Arc<State>>,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> UiResult {
    let original = run_id(&id)?;
    check_form(&RESUBMIT, original, &form)?;
    let new_run = Uuid::now_v7();
    state.store.resubmit(original, new_run, state.options.max_attempts).await?;
    state.wake.notify_one();
    tracing::info!(%original, %new_run, "run resubmitted from the web UI");
    Ok(Redirect::to(&format!("/runs/{new_run}")).into_response())
}

/// `POST /runs/{id}/cancel`: stops the run (here or, through the store, in another process).
pub async fn cancel(
    AxumState(state): AxumState<Arc<State>>,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> UiResult {
    let id = run_id(&id)?;
    check_form(&CANCEL, id, &form)?;
    match state.cancel_run(id, "from the web UI").await? {
        Cancellation::Stopping | Cancellation::Ended => {}
        Cancellation::AlreadyEnded(_) => return Err(ended(&load(&state, id).await?.summary)),
        Cancellation::NotFound => {
            load(&state, id).await?;
        }
    }
    tracing::info!(%id, "run cancelled from the web UI");
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

fn ended(run: &RunSummary) -> UiError {
    UiError::Conflict(format!(
        "run {} has already ended ({}): there is nothing to cancel",
        run.id, run.status
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(record: serde_json::Value) -> RunDetail {
        let summary: RunSummary = serde_json::from_value(json!({
            "id": Uuid::nil(), "flow": "f", "status": "failed", "event_id": null, "resubmit_of": null,
            "created_at": "2026-01-31T12:00:00Z", "started_at": null, "ended_at": null, "error": null
        }))
        .unwrap();
        RunDetail {
            summary,
            inputs: json!({}),
            record: Some(record),
            actions: Vec::new(),
            resubmits: Vec::new(),
        }
    }

    #[test]
    fn loop_bodies_are_gathered_per_iteration_and_a_failure_shows() {
        let record = json!({"actions": {
            "Loop": {"status": "failed", "error": null, "iterations": [
                {"index": 0, "status": "succeeded", "actions": {"Inner": {"status": "succeeded", "error": null}}},
                {"index": 1, "status": "failed", "actions": {"Inner": {"status": "failed",
                    "error": {"code": "Http500", "message": "boom"}}}}
            ]},
            "After": {"status": "skipped", "error": null}
        }});
        let results = Results::of(&detail(record));
        assert_eq!(results.status("Inner"), Some(Status::Failed));
        assert_eq!(results.status("After"), Some(Status::Skipped));
        assert_eq!(results.status("Missing"), None);
        let inner = results.get("Inner");
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[1].iteration, ["Loop #2"]);
        let placed = Placed { name: "Inner".into(), type_name: "http".into(), path: vec!["Loop".into()] };
        let view = action_view("a-2".into(), &placed, &results, Badge::NOT_RUN);
        assert_eq!(view.summary.as_deref(), Some("2 runs: 1 succeeded, 1 failed"));
        assert_eq!(view.iterations[1].error.as_deref(), Some("Http500: boom"));
        assert!(view.open);
    }

    #[test]
    fn unreadable_entries_are_kept_raw() {
        let results = Results::of(&detail(json!({"actions": {"Odd": {"status": "exploded"}}})));
        assert!(results.get("Odd")[0].result.is_err());
        assert_eq!(results.status("Odd"), None);
        let view = occurrence_view(&results.get("Odd")[0]);
        assert!(view.raw.unwrap().contains("exploded"));
    }
}
