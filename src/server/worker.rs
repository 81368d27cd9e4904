//! Workers: take work items from the durable queue and run their flow.
//!
//! A work item names a flow and an event (or an existing run, for resubmits). The run's id is
//! the work item's, so a retried item finds the run it created before instead of making a second
//! one. Action results are persisted as the engine reports them, the lease is extended while the
//! run lasts, and only after the run's outcome is stored is the item completed: a process killed
//! at any point leaves an item that another worker claims once its lease expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use super::State;
use crate::engine::{self, ActionEvent, CancelToken, Observer, ResponseRecord, RunOptions, TriggerEvent};
use crate::store::{ActionRecord, Claim, NewRun, RunOutcome, RunStatus, RunWrite, StoreError};

/// Why a work item could not be run (the item is retried later).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The item's flow is not loaded (removed, renamed, or not compiling since start).
    #[error("flow `{0}` is not loaded: restore its file or fix it so it compiles")]
    UnknownFlow(String),
    /// The item names neither an event nor a run, or one that no longer exists.
    #[error("work item {0} has nothing to run: its event or run is gone")]
    NothingToRun(Uuid),
    /// The stored event is not what the flow's trigger reads.
    #[error("stored event {0} is unreadable: {1}")]
    BadEvent(Uuid, String),
}

/// Runs that are executing in this process, so they can be cancelled by id.
#[derive(Debug, Default)]
pub struct RunningRuns {
    runs: Mutex<HashMap<Uuid, CancelToken>>,
}

impl RunningRuns {
    /// Cancels a run executing here; false if it is not.
    pub fn cancel(&self, run: Uuid) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.get(&run).map(CancelToken::cancel).is_some()
    }

    /// How many runs execute here now.
    pub fn len(&self) -> usize {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no run executes here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, run: Uuid, token: CancelToken) {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(run, token);
    }

    fn remove(&self, run: Uuid) {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&run);
    }
}

/// Requests waiting for the `response` action of the run they started.
#[derive(Debug, Default)]
pub struct Responders {
    waiting: Mutex<HashMap<Uuid, oneshot::Sender<ResponseRecord>>>,
}

impl Responders {
    /// Registers interest in the response of run `run`.
    pub fn wait_for(&self, run: Uuid) -> oneshot::Receiver<ResponseRecord> {
        let (sender, receiver) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(run, sender);
        receiver
    }

    /// Gives up waiting (the request timed out or went away).
    pub fn forget(&self, run: Uuid) {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&run);
    }

    fn send(&self, run: Uuid, response: ResponseRecord) {
        let waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&run);
        if let Some(sender) = waiting {
            let _ = sender.send(response);
        }
    }
}

/// Per-flow concurrency limits, created on first use.
#[derive(Debug)]
pub struct FlowLimits {
    limits: HashMap<String, usize>,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl FlowLimits {
    /// Limits by flow name; flows not named run with only the global limit.
    pub fn new(limits: HashMap<String, usize>) -> Self {
        FlowLimits { limits, semaphores: Mutex::default() }
    }

    fn semaphore(&self, flow: &str) -> Option<Arc<Semaphore>> {
        let limit = *self.limits.get(flow)?;
        let mut semaphores = self.semaphores.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(
            semaphores
                .entry(flow.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
                .clone(),
        )
    }
}

/// Claims and runs work items until shutdown is requested.
pub async fn work_loop(state: Arc<State>, index: usize) {
    let worker = format!("{}/{index}", state.instance);
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        let claim = match state.store.claim(&worker, state.options.lease).await {
            Ok(claim) => claim,
            Err(err) => {
                tracing::error!(error = %err, "cannot claim work");
                state.metrics.error("claim");
                None
            }
        };
        match claim {
            Some(claim) => {
                process(&state, claim, None).await;
            }
            None => idle(&state).await,
        }
    }
}

/// Waits for new work: a local commit wakes us at once; other processes' work is seen by polling.
async fn idle(state: &State) {
    tokio::select! {
        () = state.wake.notified() => {}
        () = tokio::time::sleep(state.options.poll_interval) => {}
        () = state.shutdown.cancelled() => {}
    }
}

/// Runs a claimed work item and settles it (completed, handed back, or failed for a retry);
/// returns the run when it ended. `known` is the trigger event when the caller has it in
/// memory (a hook running its own event), which spares reading it back from the store.
pub async fn process(state: &Arc<State>, claim: Claim, known: Option<TriggerEvent>) -> Option<engine::Run> {
    let token = claim.token;
    let limit = state.flow_limits.semaphore(&claim.item.flow);
    let _permit = match &limit {
        Some(semaphore) => semaphore.clone().acquire_owned().await.ok(),
        None => None,
    };
    let heartbeat = tokio::spawn(keep_leased(state.clone(), claim.clone()));
    let outcome = execute(state, &claim, known).await;
    heartbeat.abort();
    let mut ended = None;
    let settled = match outcome {
        Ok(Executed::Finished(run)) => {
            ended = run;
            state.journal.write(RunWrite::Complete(token)).await.map_err(unshare)
        }
        Ok(Executed::HandedBack) => state.store.release(token).await,
        Err(err) => {
            tracing::warn!(item = %claim.item.id, flow = %claim.item.flow, error = %err, "work item failed");
            state.metrics.error("work");
            let retry_at =
                crate::store::add(state.store.now(), state.options.retry.delay(claim.item.attempts));
            state.store.fail(token, &err.to_string(), retry_at).await.map(|_| ())
        }
    };
    if let Err(err) = settled {
        // The lease was lost or the store is down: the item will be claimed again, and the run
        // id it carries keeps the second attempt from creating a second run.
        tracing::warn!(item = %claim.item.id, error = %err, "cannot settle work item");
    }
    ended.map(|run| *run)
}

/// A store error shared by the journal's waiters, for logging.
fn unshare(err: Arc<StoreError>) -> StoreError {
    Arc::try_unwrap(err).unwrap_or_else(|shared| StoreError::Corrupt(shared.to_string()))
}

/// Extends the lease until aborted; cancels the run if the lease is lost.
async fn keep_leased(state: Arc<State>, claim: Claim) {
    let every = state.options.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let run = claim.item.run_id.unwrap_or(claim.item.id);
        if let Err(err) = state.store.heartbeat(claim.token, state.options.lease).await {
            tracing::warn!(item = %claim.item.id, error = %err, "lease lost; stopping the run");
            state.running.cancel(run);
            return;
        }
        // A cancel asked of another process ends the run in the store: stop it here too.
        let ended_elsewhere =
            state.store.get_run(run).await.ok().flatten().is_some_and(|r| r.summary.status.is_terminal());
        if ended_elsewhere {
            tracing::info!(%run, "the run was ended elsewhere; stopping it");
            state.running.cancel(run);
            return;
        }
    }
}

enum Executed {
    /// The run's outcome is on its way to the store (with the run, if it was executed now).
    Finished(Option<Box<engine::Run>>),
    /// Shutdown interrupted the run; the item goes back to the queue.
    HandedBack,
}

async fn execute(
    state: &Arc<State>,
    claim: &Claim,
    known: Option<TriggerEvent>,
) -> Result<Executed, WorkError> {
    let item = &claim.item;
    let loaded = state.registry.get(&item.flow).ok_or_else(|| WorkError::UnknownFlow(item.flow.clone()))?;
    let flow = loaded.flow.clone();
    let run_id = item.run_id.unwrap_or(item.id);
    // Known as running here before the store says so, so a cancel never misses it.
    let cancel = CancelToken::new();
    state.running.insert(run_id, cancel.clone());
    let prepared = match known {
        Some(event) => Ok(Some(new_run(state, claim, run_id, event))),
        None => trigger_event(state, claim, run_id, &flow.trigger.kind).await,
    };
    let Some(prepared) = prepared.inspect_err(|_| state.running.remove(run_id))? else {
        // Finished before (the process died before completing the item) or cancelled while
        // queued: nothing to run again.
        state.running.remove(run_id);
        return Ok(Executed::Finished(None));
    };
    let recorder = Recorder { run: run_id, state: state.clone() };
    let mut options: RunOptions = state.run_options.clone();
    options.cancel = cancel.clone();
    options.run_id = Some(run_id.to_string());
    options.observer = Some(Arc::new(recorder));
    options.resume = prepared.resume;
    // Claimed before: that attempt may have sent writes it never recorded.
    options.recovering = claim.item.attempts > 1;
    let event = prepared.event;
    let window_end = super::triggers::has_window(&flow)
        .then(|| event.body.get("windowEndTime").and_then(Value::as_str).and_then(|t| t.parse().ok()))
        .flatten();
    let started = Instant::now();
    let mut handed_back = false;
    let run = {
        let work = engine::run(&flow, event, &options);
        tokio::pin!(work);
        tokio::select! {
            run = &mut work => run,
            () = state.shutdown.cancelled() => {
                // Let it finish within the grace period, then stop it and hand the item back.
                match tokio::time::timeout(state.options.shutdown_grace, &mut work).await {
                    Ok(run) => run,
                    Err(_) => {
                        handed_back = true;
                        cancel.cancel();
                        work.await
                    }
                }
            }
        }
    };
    drop(options);
    state.running.remove(run_id);
    if handed_back {
        return Ok(Executed::HandedBack);
    }
    let status = run_status(run.status);
    state.metrics.run_finished(&flow.name, status, started.elapsed());
    let error = run.error.as_ref().map(|e| serde_json::json!({"code": e.code, "message": e.message}));
    let record =
        run.stored_record().map_err(|source| StoreError::Serialize { what: "run record", source })?;
    let outcome = RunOutcome { status, ended_at: state.store.now(), error, record };
    // Committed with (or before) the completion of the work item, which waits for it.
    state.journal.send(RunWrite::Finish { run: run_id, outcome });
    if let (Some(end), RunStatus::Succeeded) = (window_end, status) {
        if let Err(err) = super::scheduler::advance_window(state, &flow.name, end).await {
            tracing::warn!(flow = %flow.name, error = %err, "the sliding window could not be moved on; the next run covers it again");
        }
    }
    Ok(Executed::Finished(Some(Box::new(run))))
}

/// The run's trigger event: read back from the run (resumed or resubmitted runs) or from the
/// stored event, creating the run on first execution; `None` if the run has already ended.
async fn trigger_event(
    state: &State,
    claim: &Claim,
    run_id: Uuid,
    trigger_kind: &str,
) -> Result<Option<Prepared>, WorkError> {
    let item = &claim.item;
    if let Some(run) = state.store.get_run(run_id).await? {
        if run.summary.status.is_terminal() {
            return Ok(None);
        }
        state.journal.write(RunWrite::Start { run: run_id, at: state.store.now() }).await.map_err(unshare)?;
        return Ok(Some(Prepared {
            event: TriggerEvent::from_json(run.inputs),
            resume: resume_from(run.actions),
        }));
    }
    let event_id = item.event_id.ok_or(WorkError::NothingToRun(item.id))?;
    let stored = state.store.get_event(event_id).await?.ok_or(WorkError::NothingToRun(item.id))?;
    let headers: Map<String, Value> =
        stored.headers.iter().map(|(name, value)| (name.clone(), Value::String(value.clone()))).collect();
    let body =
        event_body(trigger_kind, &stored.body).map_err(|reason| WorkError::BadEvent(event_id, reason))?;
    let event = TriggerEvent { headers, body };
    let inputs = serde_json::json!({"headers": event.headers, "body": event.body});
    let new_run = NewRun {
        id: run_id,
        flow: item.flow.clone(),
        status: RunStatus::Running,
        event_id: Some(event_id),
        resubmit_of: None,
        created_at: stored.received_at,
        inputs,
    };
    state.journal.send(RunWrite::Create(new_run));
    state.journal.write(RunWrite::Start { run: run_id, at: state.store.now() }).await.map_err(unshare)?;
    Ok(Some(Prepared { event, resume: None }))
}

/// Creates the run of a claimed item whose event is in memory; the writes go through the
/// journal ahead of the run's own.
fn new_run(state: &State, claim: &Claim, run_id: Uuid, event: TriggerEvent) -> Prepared {
    let inputs = serde_json::json!({"headers": event.headers, "body": event.body});
    let now = state.store.now();
    state.journal.send(RunWrite::Create(NewRun {
        id: run_id,
        flow: claim.item.flow.clone(),
        status: RunStatus::Running,
        event_id: claim.item.event_id,
        resubmit_of: None,
        created_at: now,
        inputs,
    }));
    state.journal.send(RunWrite::Start { run: run_id, at: now });
    Prepared { event, resume: None }
}

/// A run ready to execute.
struct Prepared {
    event: TriggerEvent,
    /// Results recorded by an interrupted execution of the same run.
    resume: Option<Arc<HashMap<String, engine::ActionResult>>>,
}

/// The action results an interrupted execution left, for the engine to reuse.
fn resume_from(actions: Vec<ActionRecord>) -> Option<Arc<HashMap<String, engine::ActionResult>>> {
    let completed: HashMap<String, engine::ActionResult> = actions
        .into_iter()
        .filter_map(|record| Some((record.name, serde_json::from_value(record.result).ok()?)))
        .collect();
    (!completed.is_empty()).then(|| Arc::new(completed))
}

/// What `triggerBody()` reads for a stored body.
fn event_body(trigger_kind: &str, raw: &[u8]) -> Result<Value, String> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if trigger_kind == "partner_center.webhook" {
        return crate::connectors::partner_center::webhook::stored_trigger_body(raw)
            .map_err(|e| e.to_string());
    }
    match serde_json::from_slice(raw) {
        Ok(value) => Ok(value),
        // Non-JSON bodies (form posts, text) reach the flow as a string, like Power Automate.
        Err(_) => Ok(Value::String(String::from_utf8_lossy(raw).into_owned())),
    }
}

/// The stored status of a run that ended with `status`.
pub fn run_status(status: engine::Status) -> RunStatus {
    match status {
        engine::Status::Succeeded | engine::Status::Skipped => RunStatus::Succeeded,
        engine::Status::Failed => RunStatus::Failed,
        engine::Status::TimedOut => RunStatus::TimedOut,
        engine::Status::Cancelled => RunStatus::Cancelled,
    }
}

/// Persists action results through the journal as the engine reports them.
#[derive(Debug)]
struct Recorder {
    run: Uuid,
    state: Arc<State>,
}

impl Observer for Recorder {
    fn action_finished(&self, event: &ActionEvent<'_>) {
        // Loop iterations are kept inside their loop's result.
        if !event.iterations.is_empty() {
            return;
        }
        let result = event.result;
        self.state.metrics.action_finished(event.name, result);
        let record = ActionRecord {
            name: event.name.to_string(),
            status: result.status.as_str().to_string(),
            started_at: result.started_at,
            ended_at: result.ended_at,
            result: serde_json::to_value(result).unwrap_or(Value::Null),
        };
        self.state.journal.send(RunWrite::Action { run: self.run, action: record });
    }

    fn response(&self, response: &ResponseRecord) {
        self.state.responders.send(self.run, response.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_json_reach_the_flow_as_text() {
        assert_eq!(event_body("http", b"{\"a\":1}").unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(event_body("http", b"a=1&b=2").unwrap(), Value::String("a=1&b=2".into()));
        assert_eq!(event_body("http", b"").unwrap(), Value::Null);
    }

    #[test]
    fn partner_center_events_carry_the_referral_id() {
        let raw = br#"{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/v1/engagements/referrals/abc-123","ResourceName":"referral"}"#;
        let body = event_body("partner_center.webhook", raw).unwrap();
        assert_eq!(body["referral_id"], "abc-123");
    }

    #[test]
    fn per_flow_limits_apply_only_to_named_flows() {
        let limits = FlowLimits::new(HashMap::from([("slow".to_string(), 2)]));
        assert!(limits.semaphore("other").is_none());
        let semaphore = limits.semaphore("slow").unwrap();
        assert_eq!(semaphore.available_permits(), 2);
        assert!(Arc::ptr_eq(&semaphore, &limits.semaphore("slow").unwrap()), "one semaphore per flow");
    }
}
