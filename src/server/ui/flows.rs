//! `/`: every flow with its recent outcomes; `/flows/{name}`: one flow's picture, YAML, mapping
//! files and recent runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use futures::future::try_join_all;
use jiff::{SignedDuration, Timestamp};
use minijinja::{Value, context};
use serde::Serialize;

use super::graph::{self, Decoration};
use super::view::RunRow;
use super::{UiError, UiResult, data, render};
use crate::server::State;
use crate::server::registry::LoadedFlow;
use crate::server::triggers::TriggerPlan;
use crate::store::{RunCount, RunFilter, RunStatus, RunSummary};

/// Runs drawn in a flow's bar of recent outcomes.
pub const RECENT_RUNS: u32 = 20;

/// Runs and failures of one flow over the last day.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DayCounts {
    /// Runs created.
    pub runs: u64,
    /// Of which failed or timed out.
    pub failures: u64,
}

/// Per-flow counts of the last 24 hours.
fn day_counts(counts: &[RunCount]) -> HashMap<&str, DayCounts> {
    let mut by_flow: HashMap<&str, DayCounts> = HashMap::new();
    for count in counts {
        let entry = by_flow.entry(count.flow.as_str()).or_default();
        entry.runs += count.count;
        if matches!(count.status, RunStatus::Failed | RunStatus::TimedOut) {
            entry.failures += count.count;
        }
    }
    by_flow
}

/// The day before `now`, plus a second so a run created this instant counts.
fn last_day(now: Timestamp) -> (Timestamp, Timestamp) {
    let since = now.checked_sub(SignedDuration::from_hours(24)).unwrap_or(now);
    let until = now.checked_add(SignedDuration::from_secs(1)).unwrap_or(now);
    (since, until)
}

/// A flow in the flows table.
#[derive(Debug, Serialize)]
struct FlowRow {
    name: String,
    description: Option<String>,
    trigger: String,
    hook: Option<String>,
    enabled: bool,
    last: Option<RunRow>,
    day: DayCounts,
    /// Oldest first, so the bar reads left to right like time.
    recent: Vec<RunRow>,
}

fn hook_of(loaded: &LoadedFlow) -> Option<String> {
    TriggerPlan::of(&loaded.flow)
        .is_ok_and(|plan| plan.is_webhook())
        .then(|| format!("/hooks/{}", loaded.flow.name))
}

async fn recent_runs(state: &State, flow: &str, limit: u32) -> Result<Vec<RunSummary>, UiError> {
    let filter = RunFilter { flow: Some(flow.to_string()), limit, ..RunFilter::default() };
    Ok(state.store.list_runs(filter).await?.runs)
}

/// `GET /`.
pub async fn index(AxumState(state): AxumState<Arc<State>>) -> UiResult {
    let snapshot = state.registry.snapshot();
    let now = state.store.now();
    let (since, until) = last_day(now);
    let counts = state.store.run_counts(since, until).await?;
    let days = day_counts(&counts);
    let disabled: HashSet<String> =
        state.store.flow_states().await?.into_iter().filter(|s| !s.enabled).map(|s| s.flow).collect();
    let recents =
        try_join_all(snapshot.flows.keys().map(|name| recent_runs(&state, name, RECENT_RUNS))).await?;
    let flows: Vec<FlowRow> = snapshot
        .flows
        .values()
        .zip(recents)
        .map(|(loaded, runs)| {
            let name = loaded.flow.name.clone();
            let mut recent: Vec<RunRow> = runs.iter().map(|run| RunRow::of(run, now)).collect();
            let last = recent.first().cloned();
            recent.reverse();
            FlowRow {
                description: loaded.flow.description.clone(),
                trigger: loaded.flow.trigger.kind.clone(),
                hook: hook_of(loaded),
                enabled: !disabled.contains(&name),
                last,
                day: days.get(name.as_str()).copied().unwrap_or_default(),
                recent,
                name,
            }
        })
        .collect();
    let problems: Vec<Value> = snapshot
        .problems
        .iter()
        .map(|p| context! { path => p.path.display().to_string(), message => &p.message, kept_previous => p.kept_previous })
        .collect();
    let total = days.values().fold(DayCounts::default(), |sum, day| DayCounts {
        runs: sum.runs + day.runs,
        failures: sum.failures + day.failures,
    });
    render(
        &state,
        "flows.html",
        "Flows",
        "flows",
        context! {
            flows => data(&flows),
            problems,
            total => data(total),
        },
    )
}

/// A mapping file shown on the flow page.
#[derive(Debug, Serialize)]
struct MappingFile {
    name: String,
    target: Option<String>,
    path: Option<String>,
    text: String,
}

async fn mapping_files(loaded: &LoadedFlow) -> Vec<MappingFile> {
    let mut files = Vec::new();
    for name in loaded.flow.mappings.names() {
        let Some(mapping) = loaded.flow.mappings.get(name) else { continue };
        let text = match &mapping.path {
            Some(path) => tokio::fs::read_to_string(path)
                .await
                .unwrap_or_else(|err| format!("# cannot read {}: {err}", path.display())),
            None => "# this mapping was not loaded from a file".to_string(),
        };
        files.push(MappingFile {
            name: name.to_string(),
            target: mapping.target.clone(),
            path: mapping.path.as_ref().map(|p| p.display().to_string()),
            text,
        });
    }
    files
}

/// `GET /flows/{name}`.
pub async fn show(AxumState(state): AxumState<Arc<State>>, Path(name): Path<String>) -> UiResult {
    let loaded = state
        .registry
        .get(&name)
        .ok_or_else(|| UiError::NotFound(format!("no flow named `{name}` is loaded; see the flows page")))?;
    let now = state.store.now();
    let enabled = state.store.flow_enabled(&name).await?;
    let (since, until) = last_day(now);
    let counts = state.store.run_counts(since, until).await?;
    let day = day_counts(&counts).get(name.as_str()).copied().unwrap_or_default();
    let runs: Vec<RunRow> =
        recent_runs(&state, &name, 25).await?.iter().map(|run| RunRow::of(run, now)).collect();
    let picture = graph::layout(&loaded.flow, false);
    let svg = picture.svg(&format!("Actions of {name}"), &|_| Decoration::default());
    let flow = &loaded.flow;
    let parameters: Vec<Value> = flow
        .parameters
        .iter()
        .map(|(key, p)| context! { name => key, default => p.default.as_ref().map(|v| v.to_string()) })
        .collect();
    let values = context! {
        name,
        description => &flow.description,
        trigger => &flow.trigger.kind,
        hook => hook_of(&loaded),
        enabled,
        file => loaded.path.display().to_string(),
        source => &loaded.source,
        mappings => data(mapping_files(&loaded).await),
        parameters,
        day => data(day),
        runs => data(&runs),
        svg => Value::from_safe_string(svg),
    };
    render(&state, "flow.html", &format!("Flow {}", flow.name), "flows", values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_failed_and_timed_out_runs() {
        let count = |flow: &str, status, count| RunCount { flow: flow.into(), status, count };
        let counts = [
            count("a", RunStatus::Succeeded, 5),
            count("a", RunStatus::Failed, 2),
            count("a", RunStatus::TimedOut, 1),
            count("a", RunStatus::Cancelled, 4),
            count("b", RunStatus::Queued, 3),
        ];
        let days = day_counts(&counts);
        assert_eq!((days["a"].runs, days["a"].failures), (12, 3));
        assert_eq!((days["b"].runs, days["b"].failures), (3, 0));
    }
}
