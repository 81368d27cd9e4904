//! The scheduler: fires recurrence triggers, runs Salesforce polls, reloads changed flow files,
//! indexes finished runs for text search and purges old history.
//!
//! Every scheduled trigger is driven by one task per flow. Before each step the task takes (or
//! renews) a lease named after the flow, so when several processes share one database exactly
//! one of them fires or polls a given trigger at a time; if it dies, the lease lapses and another
//! process carries on from the stored watermark. Fired events carry a de-duplication key (the
//! scheduled time, or the record id and stamp) so even a step repeated after a crash enqueues
//! nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::State;
use super::triggers::{Schedule, TriggerPlan};
use crate::connectors::salesforce::poll::{self, PollSpec, Watermark as PollWatermark};
use crate::store::NewEvent;

/// Lease name for a flow's trigger.
pub fn trigger_lease(flow: &str) -> String {
    format!("trigger:{flow}")
}

/// Runs until shutdown: reloads flows, keeps one task per scheduled trigger, purges history.
pub async fn run(state: Arc<State>) {
    let mut tasks: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
    let mut last_purge: Option<tokio::time::Instant> = None;
    let mut indexer = SearchIndexer::default();
    loop {
        if state.options.reload {
            match state.registry.reload_if_changed() {
                Ok(true) => state.metrics.reloaded(),
                Ok(false) => {}
                Err(err) => tracing::error!(error = %err, "cannot read the flows folder"),
            }
        }
        if let Err(err) = state.refresh_disabled().await {
            tracing::warn!(error = %err, "cannot read which flows are switched off");
        }
        if state.options.schedule_triggers {
            sync_tasks(&state, &mut tasks);
        }
        indexer.tick(&state).await;
        if last_purge.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            last_purge = Some(tokio::time::Instant::now());
            purge(&state).await;
        }
        tokio::select! {
            () = tokio::time::sleep(state.options.tick) => {}
            () = state.shutdown.cancelled() => break,
        }
    }
    for (flow, (_, task)) in tasks {
        task.abort();
        let _ = state.store.release_lease(&trigger_lease(&flow), &state.instance).await;
    }
}

/// Starts a task for every scheduled flow that has none, and stops tasks of flows that were
/// removed or whose trigger changed.
fn sync_tasks(state: &Arc<State>, tasks: &mut HashMap<String, (String, JoinHandle<()>)>) {
    let snapshot = state.registry.snapshot();
    let mut wanted = HashMap::new();
    for (name, loaded) in &snapshot.flows {
        if let Ok(plan @ (TriggerPlan::Schedule { .. } | TriggerPlan::SalesforcePoll { .. })) =
            TriggerPlan::of(&loaded.flow)
        {
            // The trigger's settings identify the task: an edited trigger restarts it.
            let key = format!("{:?}", loaded.flow.trigger.settings);
            wanted.insert(name.clone(), (key, plan));
        }
    }
    tasks.retain(|name, (key, task)| {
        let keep = wanted.get(name).is_some_and(|(wanted_key, _)| wanted_key == key) && !task.is_finished();
        if !keep {
            task.abort();
        }
        keep
    });
    for (name, (key, plan)) in wanted {
        if tasks.contains_key(&name) {
            continue;
        }
        let task = tokio::spawn(drive(state.clone(), name.clone(), plan));
        tasks.insert(name, (key, task));
    }
}

/// One trigger's loop: take the lease, do what is due, sleep a tick.
async fn drive(state: Arc<State>, flow: String, plan: TriggerPlan) {
    let lease = trigger_lease(&flow);
    let ttl = (state.options.tick * 3).max(Duration::from_secs(10));
    loop {
        match state.store.acquire_lease(&lease, &state.instance, ttl).await {
            Ok(true) => {
                if let Err(err) = step(&state, &flow, &plan).await {
                    tracing::warn!(%flow, error = %err, "scheduled trigger step failed; retrying next tick");
                    state.metrics.error("trigger");
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(%flow, error = %err, "cannot take the trigger lease"),
        }
        tokio::select! {
            () = tokio::time::sleep(state.options.tick) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Why a trigger step did not complete.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Connector(#[from] crate::connectors::ConnectorError),
    #[error("connection `{0}` is not a Salesforce connection in the connections file")]
    NoConnection(String),
    #[error("stored watermark is unreadable: {0}")]
    Watermark(String),
}

async fn step(state: &State, flow: &str, plan: &TriggerPlan) -> Result<(), StepError> {
    if !state.store.flow_enabled(flow).await? {
        return Ok(());
    }
    match plan {
        TriggerPlan::Schedule { schedule, window } => fire_schedule(state, flow, schedule, *window).await,
        TriggerPlan::SalesforcePoll { connection, spec, every } => {
            let every = state.options.poll_every.unwrap_or(*every);
            poll_salesforce(state, flow, connection, spec, every).await
        }
        _ => Ok(()),
    }
}

/// Fires the latest due time of a schedule, once.
async fn fire_schedule(
    state: &State,
    flow: &str,
    schedule: &Schedule,
    window: bool,
) -> Result<(), StepError> {
    let now = state.store.now();
    let stored = state.store.get_watermark(flow, "schedule").await?;
    let (last, version) = match &stored {
        Some(mark) => {
            let last = mark.value.get("last").and_then(Value::as_str).and_then(|t| t.parse().ok());
            (last.ok_or_else(|| StepError::Watermark(mark.value.to_string()))?, Some(mark.version))
        }
        // A new interval trigger fires at once, like a flow turned on; a cron waits for its time.
        None => match schedule {
            Schedule::Every(every) => (crate::store::sub(now, *every), None),
            Schedule::Cron { .. } => (now, None),
        },
    };
    if stored.is_none() {
        // First sight of this trigger: remember where it starts; the next tick fires.
        state.store.cas_watermark(flow, "schedule", None, json!({"last": last.to_string()})).await?;
        return Ok(());
    }
    let Some(due) = schedule.latest_due(last, now) else { return Ok(()) };
    let mut body = json!({"scheduledTime": due.to_string()});
    if window {
        let start = state.store.get_watermark(flow, WINDOW).await?.and_then(|mark| window_end(&mark.value));
        // Null before any run succeeded: the flow decides how far its first run looks back.
        body["windowStartTime"] = start.map_or(Value::Null, |start| json!(start.to_string()));
        body["windowEndTime"] = json!(due.to_string());
    }
    let event = new_event(state, flow, "schedule", body, format!("schedule:{due}"), now);
    let accepted = state.store.accept_event(event).await?;
    if matches!(accepted, crate::store::AcceptOutcome::Accepted { .. }) {
        state.wake.notify_waiters();
        state.metrics.triggered(flow, "schedule", 1);
    }
    state.store.cas_watermark(flow, "schedule", version, json!({"last": due.to_string()})).await?;
    Ok(())
}

/// The watermark of a sliding-window trigger: where the last succeeded run's window ended.
const WINDOW: &str = "window";

fn window_end(value: &Value) -> Option<Timestamp> {
    value.get("end").and_then(Value::as_str).and_then(|t| t.parse().ok())
}

/// Moves a sliding window on to `end` after a run that covered it succeeded; a later end already
/// stored is kept (runs can finish out of order).
pub async fn advance_window(
    state: &State,
    flow: &str,
    end: Timestamp,
) -> Result<(), crate::store::StoreError> {
    loop {
        let stored = state.store.get_watermark(flow, WINDOW).await?;
        if stored.as_ref().and_then(|m| window_end(&m.value)).is_some_and(|known| known >= end) {
            return Ok(());
        }
        let version = stored.map(|m| m.version);
        if state.store.cas_watermark(flow, WINDOW, version, json!({"end": end.to_string()})).await?.is_some()
        {
            return Ok(());
        }
    }
}

/// Polls Salesforce when due and enqueues one event per new or changed record.
async fn poll_salesforce(
    state: &State,
    flow: &str,
    connection: &str,
    spec: &PollSpec,
    every: Duration,
) -> Result<(), StepError> {
    let now = state.store.now();
    let stored = state.store.get_watermark(flow, "poll").await?;
    let (mark, next_at, version) = match &stored {
        Some(stored) => {
            let mark: PollWatermark = serde_json::from_value(stored.value["watermark"].clone())
                .map_err(|e| StepError::Watermark(e.to_string()))?;
            let next_at: Option<Timestamp> =
                stored.value["next_poll_at"].as_str().and_then(|t| t.parse().ok());
            (mark, next_at, Some(stored.version))
        }
        None => (PollWatermark::starting_at(now), None, None),
    };
    if next_at.is_some_and(|at| at > now) {
        return Ok(());
    }
    let connector = state
        .connections
        .salesforce
        .get(connection)
        .ok_or_else(|| StepError::NoConnection(connection.into()))?;
    let result = poll::poll(connector, &state.run_options.http, spec, &mark).await?;
    state.metrics.connector_call("salesforce", "poll");
    let events: Vec<NewEvent> = result
        .records
        .iter()
        .map(|record| {
            let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
            let stamp = record.get("SystemModstamp").and_then(Value::as_str).unwrap_or_default();
            let source = format!("poll:{}", spec.object);
            new_event(state, flow, &source, record.clone(), format!("{id}@{stamp}"), now)
        })
        .collect();
    let count = events.len();
    if count > 0 {
        state.store.accept_events(events).await?;
        state.wake.notify_waiters();
        state.metrics.triggered(flow, "poll", count as u64);
    }
    let next_poll_at = crate::store::add(now, every);
    let value = json!({"watermark": result.watermark, "next_poll_at": next_poll_at.to_string()});
    state.store.cas_watermark(flow, "poll", version, value).await?;
    Ok(())
}

fn new_event(
    state: &State,
    flow: &str,
    source: &str,
    body: Value,
    dedup_key: String,
    now: Timestamp,
) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        flow: flow.to_string(),
        source: source.to_string(),
        received_at: now,
        headers: Vec::new(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        dedup_key: Some(dedup_key),
        max_attempts: state.options.max_attempts,
    }
}

/// Runs indexed for text search per store transaction: small, so that a run finishing meanwhile
/// waits for the store no longer than a few milliseconds.
const INDEX_BATCH: u32 = 50;

/// Most runs indexed in one idle tick; a larger backlog is worked off over the following ticks.
const INDEX_PER_IDLE_TICK: u64 = 20_000;

/// While busy, one batch is indexed every this many ticks, so a backlog still shrinks.
const BUSY_TICKS_PER_BATCH: u32 = 10;

/// Adds finished runs to the store's text-search index. Indexing a run's text costs more than running most flows, so it waits for
/// ticks in which no run progressed; under steady load it indexes one small batch every
/// [`BUSY_TICKS_PER_BATCH`] ticks. A text search reads the runs not indexed yet directly, so
/// none is missed meanwhile.
#[derive(Debug, Default)]
struct SearchIndexer {
    /// The journal's write count at the last tick.
    seen_writes: u64,
    /// Busy ticks since a batch was last indexed.
    busy_ticks: u32,
}

impl SearchIndexer {
    async fn tick(&mut self, state: &State) {
        let writes = state.journal.written();
        let busy = writes != self.seen_writes;
        self.seen_writes = writes;
        if busy {
            self.busy_ticks += 1;
            if self.busy_ticks >= BUSY_TICKS_PER_BATCH {
                self.busy_ticks = 0;
                index_batch(state).await;
            }
            return;
        }
        let mut indexed = 0;
        while indexed < INDEX_PER_IDLE_TICK && !state.shutdown.is_cancelled() {
            let Some(added) = index_batch(state).await else { return };
            indexed += added;
            if added < u64::from(INDEX_BATCH) || state.journal.written() != self.seen_writes {
                return;
            }
        }
    }
}

/// Indexes one batch; `None` when the store failed.
async fn index_batch(state: &State) -> Option<u64> {
    match state.store.index_search(INDEX_BATCH).await {
        Ok(added) => Some(added),
        Err(err) => {
            tracing::warn!(error = %err, "cannot index finished runs for text search");
            None
        }
    }
}

/// Deletes history older than the retention period; one process does it at a time.
async fn purge(state: &State) {
    let lease = "retention";
    match state.store.acquire_lease(lease, &state.instance, Duration::from_secs(600)).await {
        Ok(true) => match state.store.purge_older_than_days(state.options.retention_days).await {
            Ok(report) if report.runs + report.events + report.rejected + report.dead_work > 0 => {
                tracing::info!(?report, days = state.options.retention_days, "purged old history");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention purge failed"),
        },
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "cannot take the retention lease"),
    }
}
