//! Durable storage of events, the work queue, runs and action results.
//!
//! One [`Store`] trait, two implementations: [`sqlite::SqliteStore`] (the embedded default, one
//! file in WAL mode) and [`postgres::PgStore`] (several processes share one database). Both pass
//! the same [`conformance`] suite. [`open`] picks the implementation from a URL and runs the
//! versioned migrations.
//!
//! Conventions shared by both backends, so that they behave identically:
//! - timestamps are stored as microseconds since the Unix epoch (`BIGINT`), ids as UUID text;
//! - JSON (headers, inputs, run records) is stored as text, so a record reads back byte for byte
//!   with its key order (PostgreSQL's `jsonb` would reorder keys);
//! - every time-dependent decision (lease expiry, retry-at, retention) reads the store's
//!   [`Clock`], so tests can move time instead of sleeping. Processes sharing a PostgreSQL
//!   database must have synchronised clocks (NTP); leases are seconds long, skew milliseconds.

mod backend;
pub mod conformance;
pub mod postgres;
mod search;
mod sql;
pub mod sqlite;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// How long runs and events are kept when nothing else is configured (Power Automate's 28 days).
pub const DEFAULT_RETENTION_DAYS: u32 = 28;

/// Longest part of a run's inputs and record kept for the text filter of [`RunFilter::text`].
pub const SEARCH_TEXT_LIMIT: usize = 16 * 1024;

/// Largest page [`Store::list_runs`] returns, whatever the caller asks.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names no supported database.
    #[error(
        "unsupported store URL scheme `{0}`: use `sqlite://PATH`, `sqlite::memory:` or `postgres://USER@HOST/DB`"
    )]
    UnsupportedUrl(String),
    /// The store URL could not be parsed.
    #[error("invalid store URL: {0}")]
    InvalidUrl(String),
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A value to store could not be serialised.
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// Why it failed.
        source: serde_json::Error,
    },
    /// The queue item is no longer leased with this token (the lease expired and another worker
    /// took it, or it was completed already).
    #[error("lease on work item {0} was lost; another worker may be running it")]
    LeaseLost(Uuid),
    /// A referenced run does not exist.
    #[error("run {0} not found")]
    RunNotFound(Uuid),
    /// A page cursor was not produced by [`Store::list_runs`].
    #[error("invalid page cursor `{0}`: pass back the `next` value of the previous page")]
    InvalidCursor(String),
}

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Source of the current time for lease expiry, retries and retention.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; lets tests expire leases without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = add(*now, by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Settings for [`open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Most connections the pool opens (SQLite: readers; there is always one writer).
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), max_connections: 8 }
    }
}

/// Opens the store named by `url` with default options and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(url, OpenOptions::default()).await
}

/// Opens the store named by `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`).
pub async fn open_with(url: &str, options: OpenOptions) -> StoreResult<Arc<dyn Store>> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(postgres::PgStore::open(url, options).await?)),
        other => Err(StoreError::UnsupportedUrl(other.to_owned())),
    }
}

/// A trigger event the server accepted, to be persisted and enqueued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Unique id of the event.
    pub id: Uuid,
    /// Flow the event triggers.
    pub flow: String,
    /// Where it came from (`webhook`, `poll:<trigger>`, `manual`, ...).
    pub source: String,
    /// When the server received it.
    pub received_at: Timestamp,
    /// Request headers worth keeping (never credentials).
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as received (signatures are checked over it).
    pub body: Vec<u8>,
    /// Key under which a redelivery of the same event is recognised, unique per flow.
    pub dedup_key: Option<String>,
    /// How many times the run's work item may be attempted before it is dead-lettered.
    pub max_attempts: u32,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unique id of the event.
    pub id: Uuid,
    /// Flow the event triggers.
    pub flow: String,
    /// Where it came from.
    pub source: String,
    /// When the server received it.
    pub received_at: Timestamp,
    /// Request headers kept.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// Redelivery key.
    pub dedup_key: Option<String>,
}

/// What happened to an event handed to [`Store::accept_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum AcceptOutcome {
    /// Persisted and enqueued as work item `work_id`.
    Accepted {
        /// The event's id.
        event_id: Uuid,
        /// The work item created for it.
        work_id: Uuid,
    },
    /// The flow already has an event with this id or dedup key; nothing was created.
    Duplicate {
        /// The event stored earlier.
        existing: Uuid,
    },
}

/// What [`Store::accept_events_leased`] did with one event: stored (or recognised as a
/// duplicate), and the lease on its work item when one was asked for.
pub type LeasedOutcome = (AcceptOutcome, Option<Claim>);

/// An event the server refused, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Unique id given to the rejected request.
    pub id: Uuid,
    /// Flow addressed, when the path named one.
    pub flow: Option<String>,
    /// Where it came from.
    pub source: String,
    /// When it was received.
    pub received_at: Timestamp,
    /// Request headers kept (never credentials).
    pub headers: Vec<(String, String)>,
    /// The raw body (the server may truncate oversized bodies before storing).
    pub body: Vec<u8>,
    /// HTTP status answered.
    pub status: u16,
    /// Why it was refused.
    pub reason: String,
}

/// A unit of work to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWork {
    /// Unique id of the work item.
    pub id: Uuid,
    /// Flow the work belongs to.
    pub flow: String,
    /// Event to run the flow for, if any.
    pub event_id: Option<Uuid>,
    /// Run to resume or execute, if already created.
    pub run_id: Option<Uuid>,
    /// Anything else the worker needs.
    pub payload: Value,
    /// Attempts before the item is dead-lettered.
    pub max_attempts: u32,
    /// Earliest time it may be claimed; `None` means now.
    pub not_before: Option<Timestamp>,
}

/// A work item as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Unique id of the work item.
    pub id: Uuid,
    /// Flow the work belongs to.
    pub flow: String,
    /// Event to run the flow for.
    pub event_id: Option<Uuid>,
    /// Run to resume or execute.
    pub run_id: Option<Uuid>,
    /// Anything else the worker needs.
    pub payload: Value,
    /// Claims so far, this one included.
    pub attempts: u32,
    /// Attempts before the item is dead-lettered.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// Proof of a claim; every later operation on the item must present it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClaimToken {
    /// The claimed item.
    pub item: Uuid,
    /// Unique to this claim, so a worker whose lease expired cannot touch the next claim.
    pub token: Uuid,
}

/// A work item leased to one worker until `lease_until`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The item.
    pub item: WorkItem,
    /// What the worker presents to heartbeat, complete, fail or release it.
    pub token: ClaimToken,
    /// When the lease expires unless extended.
    pub lease_until: Timestamp,
}

/// What [`Store::fail`] did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum FailOutcome {
    /// It will be claimable again at `retry_at`.
    Retrying {
        /// When.
        retry_at: Timestamp,
    },
    /// It used its last attempt and was dead-lettered.
    DeadLettered,
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    /// Items waiting to be claimed (including ones waiting for a retry).
    pub ready: u64,
    /// Items leased to a worker.
    pub leased: u64,
    /// Dead-lettered items.
    pub dead: u64,
    /// Enqueue time of the oldest item not yet done (ready or leased).
    pub oldest_enqueued_at: Option<Timestamp>,
}

impl QueueStats {
    /// Items waiting or running.
    pub fn depth(&self) -> u64 {
        self.ready + self.leased
    }

    /// How long the oldest unfinished item has been in the queue at `now`.
    pub fn oldest_age(&self, now: Timestamp) -> Option<Duration> {
        let oldest = self.oldest_enqueued_at?;
        Some(Duration::try_from(now.duration_since(oldest)).unwrap_or(Duration::ZERO))
    }
}

/// Exponential back-off for failed work items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { initial: Duration::from_secs(5), max: Duration::from_secs(15 * 60) }
    }
}

impl RetryPolicy {
    /// Wait before the next attempt after `attempts` failed ones (doubling, capped at `max`).
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// Lifecycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is executing it.
    Running,
    /// Finished without a failure.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Stopped by a person or a `terminate` action.
    Cancelled,
    /// Ran out of time.
    TimedOut,
}

impl RunStatus {
    /// Every status, in display order.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
    ];

    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> StoreResult<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{name}`")))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// Unique id of the run (deterministic ids make creation idempotent across retries).
    pub id: Uuid,
    /// Flow it runs.
    pub flow: String,
    /// `Queued` or `Running`.
    pub status: RunStatus,
    /// Event that triggered it.
    pub event_id: Option<Uuid>,
    /// Run this one resubmits.
    pub resubmit_of: Option<Uuid>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The trigger's outputs.
    pub inputs: Value,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// A terminal status.
    pub status: RunStatus,
    /// When it ended.
    pub ended_at: Timestamp,
    /// `{"code", "message"}` when it failed.
    pub error: Option<Value>,
    /// The run record, stored as given (the server stores it without what the run's inputs and
    /// action results hold already: see [`crate::engine::Run::stored_record`]).
    pub record: Value,
}

/// The fields of a run shown in lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Unique id.
    pub id: Uuid,
    /// Flow it runs.
    pub flow: String,
    /// Current status.
    pub status: RunStatus,
    /// Triggering event.
    pub event_id: Option<Uuid>,
    /// Run this one resubmits.
    pub resubmit_of: Option<Uuid>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a worker started it.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Error of a failed run.
    pub error: Option<Value>,
}

/// Everything stored about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The list fields.
    pub summary: RunSummary,
    /// The trigger's outputs.
    pub inputs: Value,
    /// The run record, once finished.
    pub record: Option<Value>,
    /// Action results recorded so far, in the order they first completed.
    pub actions: Vec<ActionRecord>,
    /// Runs that resubmitted this one.
    pub resubmits: Vec<Uuid>,
}

/// The result of one completed action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Action name (unique in a flow).
    pub name: String,
    /// Its status (`succeeded`, `failed`, `skipped`, `timed_out`, `cancelled`).
    pub status: String,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// The action's entry of the run record (inputs, outputs, attempts, error...).
    pub result: Value,
}

/// Which runs [`Store::list_runs`] returns; newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only this flow.
    pub flow: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Case-insensitive text contained in the run's inputs or record.
    pub text: Option<String>,
    /// Page size (capped at [`MAX_PAGE_SIZE`]; 0 means 50).
    pub limit: u32,
    /// `next` of the previous page.
    pub cursor: Option<String>,
}

/// One page of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Cursor of the following page, if there may be one.
    pub next: Option<String>,
}

/// Number of runs of one flow in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCount {
    /// Flow.
    pub flow: String,
    /// Status.
    pub status: RunStatus,
    /// How many.
    pub count: u64,
}

/// The stored position of a polling trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// Whatever the trigger needs to resume (a timestamp, a cursor...).
    pub value: Value,
    /// Incremented by every write; what [`Store::cas_watermark`] compares.
    pub version: i64,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// Who holds a singleton lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// Holder id (typically process id + host).
    pub holder: String,
    /// When the lease lapses unless renewed.
    pub expires_at: Timestamp,
}

/// Whether a flow is enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// Flow name.
    pub flow: String,
    /// Whether triggers fire.
    pub enabled: bool,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// What a retention purge deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PurgeReport {
    /// Finished runs (with their action results).
    pub runs: u64,
    /// Accepted events no longer referenced by pending work.
    pub events: u64,
    /// Rejected events.
    pub rejected: u64,
    /// Dead-lettered work items.
    pub dead_work: u64,
}

/// One write of a run's progress, for [`Store::write_batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum RunWrite {
    /// [`Store::create_run`].
    Create(NewRun),
    /// [`Store::start_run`].
    Start {
        /// The run.
        run: Uuid,
        /// When it started.
        at: Timestamp,
    },
    /// [`Store::record_action`].
    Action {
        /// The run.
        run: Uuid,
        /// The action's result.
        action: ActionRecord,
    },
    /// [`Store::finish_run`].
    Finish {
        /// The run.
        run: Uuid,
        /// How it ended.
        outcome: RunOutcome,
    },
    /// [`Store::complete`].
    Complete(ClaimToken),
}

/// Durable storage of events, the work queue, runs, watermarks and leases.
///
/// Every method is one transaction: it either happened completely or not at all.
pub trait Store: Send + Sync + fmt::Debug {
    /// The store's current time.
    fn now(&self) -> Timestamp;

    /// Persists accepted events and enqueues one work item each, all in one transaction, so the
    /// caller may answer 2xx for every event once this returns. Batching concurrent requests
    /// into one call costs one disk flush for all of them.
    fn accept_events(&self, events: Vec<NewEvent>) -> BoxFuture<'_, StoreResult<Vec<AcceptOutcome>>>;

    /// Persists and enqueues one accepted event (see [`Store::accept_events`]).
    fn accept_event(&self, event: NewEvent) -> BoxFuture<'_, StoreResult<AcceptOutcome>> {
        Box::pin(async move {
            let id = event.id;
            let mut outcomes = self.accept_events(vec![event]).await?;
            outcomes.pop().ok_or_else(|| StoreError::Corrupt(format!("no outcome for event {id}")))
        })
    }

    /// Like [`Store::accept_events`], but the work item of each accepted event whose flag is
    /// set is leased at once to `worker` for `lease` (its first attempt counted), so the process
    /// that received the event runs it without a round trip through the queue. If that process
    /// dies, the lease lapses and any worker takes the item as usual.
    fn accept_events_leased<'a>(
        &'a self,
        events: Vec<(NewEvent, bool)>,
        worker: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<LeasedOutcome>>>;

    /// Keeps a refused event for inspection.
    fn reject_event(&self, event: RejectedEvent) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads an accepted event.
    fn get_event(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<StoredEvent>>>;

    /// The most recent refused events, newest first.
    fn list_rejected(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<RejectedEvent>>>;

    /// Adds a work item.
    fn enqueue(&self, work: NewWork) -> BoxFuture<'_, StoreResult<()>>;

    /// Leases the oldest claimable item (ready and due, or leased with an expired lease) to
    /// `worker` for `lease`. An expired item that used its last attempt is dead-lettered instead.
    fn claim<'a>(&'a self, worker: &'a str, lease: Duration) -> BoxFuture<'a, StoreResult<Option<Claim>>>;

    /// Extends a lease to `lease` from now; fails with [`StoreError::LeaseLost`] if it was lost.
    fn heartbeat(&self, token: ClaimToken, lease: Duration) -> BoxFuture<'_, StoreResult<Timestamp>>;

    /// Removes a finished item.
    fn complete(&self, token: ClaimToken) -> BoxFuture<'_, StoreResult<()>>;

    /// Records a failed attempt: the item becomes claimable at `retry_at`, or is dead-lettered if
    /// it used its last attempt.
    fn fail<'a>(
        &'a self,
        token: ClaimToken,
        error: &'a str,
        retry_at: Timestamp,
    ) -> BoxFuture<'a, StoreResult<FailOutcome>>;

    /// Hands an item back unprocessed (graceful shutdown): claimable now, attempt not counted.
    fn release(&self, token: ClaimToken) -> BoxFuture<'_, StoreResult<()>>;

    /// Queue depth and age.
    fn queue_stats(&self) -> BoxFuture<'_, StoreResult<QueueStats>>;

    /// Dead-lettered items, oldest first.
    fn list_dead(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<WorkItem>>>;

    /// A work item still in the queue (ready, leased or dead), by id.
    fn get_work(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<WorkItem>>>;

    /// Makes a dead-lettered item claimable again with a fresh attempt budget; false if no such
    /// dead item.
    fn requeue_dead(&self, id: Uuid) -> BoxFuture<'_, StoreResult<bool>>;

    /// Creates a run; false (and no change) if a run with this id exists.
    fn create_run(&self, run: NewRun) -> BoxFuture<'_, StoreResult<bool>>;

    /// Marks a run as running (again, when resumed).
    fn start_run(&self, id: Uuid, at: Timestamp) -> BoxFuture<'_, StoreResult<()>>;

    /// Stores or replaces the result of one action of a run, as soon as the action completes.
    fn record_action(&self, run: Uuid, action: ActionRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Action results recorded for a run, in the order they first completed: what a resumed run
    /// need not execute again.
    fn completed_actions(&self, run: Uuid) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>>;

    /// Records how a run ended.
    fn finish_run(&self, id: Uuid, outcome: RunOutcome) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads one run with its action results.
    fn get_run(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<RunDetail>>>;

    /// Lists runs matching `filter`, newest first, one page at a time.
    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'_, StoreResult<RunPage>>;

    /// Runs created in `[since, until)` counted per flow and status.
    fn run_counts(&self, since: Timestamp, until: Timestamp) -> BoxFuture<'_, StoreResult<Vec<RunCount>>>;

    /// Creates run `new_run` as a resubmission of `original` (same flow, event and inputs) and
    /// enqueues its work item, in one transaction.
    fn resubmit(&self, original: Uuid, new_run: Uuid, max_attempts: u32) -> BoxFuture<'_, StoreResult<()>>;

    /// Applies run writes in order, each with its own outcome; backends commit them in one
    /// transaction, so the progress of many concurrent runs costs one disk flush. A write that
    /// fails (a lost lease, a missing run) does not undo the others.
    fn write_batch(&self, writes: Vec<RunWrite>) -> BoxFuture<'_, StoreResult<Vec<StoreResult<()>>>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                outcomes.push(match write {
                    RunWrite::Create(run) => self.create_run(run).await.map(|_| ()),
                    RunWrite::Start { run, at } => self.start_run(run, at).await,
                    RunWrite::Action { run, action } => self.record_action(run, action).await,
                    RunWrite::Finish { run, outcome } => self.finish_run(run, outcome).await,
                    RunWrite::Complete(token) => self.complete(token).await,
                });
            }
            Ok(outcomes)
        })
    }

    /// Reads a trigger's watermark.
    fn get_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Watermark>>>;

    /// Writes a trigger's watermark unconditionally; returns the new version.
    fn set_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
        value: Value,
    ) -> BoxFuture<'a, StoreResult<i64>>;

    /// Writes a trigger's watermark only if its version is still `expected` (`None`: only if
    /// there is none yet); returns the new version, or `None` if someone else wrote first.
    fn cas_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
        expected: Option<i64>,
        value: Value,
    ) -> BoxFuture<'a, StoreResult<Option<i64>>>;

    /// Takes or renews the singleton lease `name` for `holder` until `ttl` from now; false if
    /// another holder's lease has not expired. Renewing is acquiring again.
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Gives a singleton lease up; false if `holder` did not hold it.
    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// The current, unexpired holder of a singleton lease.
    fn lease_holder<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<LeaseHolder>>>;

    /// Deletes finished runs, events, refused events and dead work created before `cutoff`.
    /// Events still referenced by pending work and unfinished runs are kept.
    fn purge(&self, cutoff: Timestamp) -> BoxFuture<'_, StoreResult<PurgeReport>>;

    /// Builds the search text of up to `max` finished runs (their inputs, record and action
    /// results, lowercased) and adds it to the text-search index, which both backends keep up
    /// to date in the background, off the write path of runs; returns how many it added (0
    /// when there is nothing to do). Until then a text search reads a run's data directly.
    fn index_search(&self, max: u32) -> BoxFuture<'_, StoreResult<u64>>;

    /// Purges everything older than `days` days (see [`Store::purge`]).
    fn purge_older_than_days(&self, days: u32) -> BoxFuture<'_, StoreResult<PurgeReport>> {
        let cutoff = sub(self.now(), Duration::from_secs(u64::from(days) * 86_400));
        self.purge(cutoff)
    }

    /// Enables or disables a flow.
    fn set_flow_enabled<'a>(&'a self, flow: &'a str, enabled: bool) -> BoxFuture<'a, StoreResult<()>>;

    /// Whether a flow is enabled (flows never switched are).
    fn flow_enabled<'a>(&'a self, flow: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Every flow whose state was ever switched.
    fn flow_states(&self) -> BoxFuture<'_, StoreResult<Vec<FlowState>>>;
}

// ---- helpers shared by the backends ----

/// Microseconds since the epoch, the stored form of a timestamp.
pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// Reads a stored timestamp.
pub(crate) fn timestamp(micros: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(micros)
        .map_err(|err| StoreError::Corrupt(format!("timestamp {micros} out of range: {err}")))
}

/// Reads an optional stored timestamp.
pub(crate) fn opt_timestamp(micros: Option<i64>) -> StoreResult<Option<Timestamp>> {
    micros.map(timestamp).transpose()
}

/// `at + by`, saturating at the end of time.
pub(crate) fn add(at: Timestamp, by: Duration) -> Timestamp {
    let by = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
    at.saturating_add(by).unwrap_or(Timestamp::MAX)
}

/// `at - by`, saturating at the start of time.
pub(crate) fn sub(at: Timestamp, by: Duration) -> Timestamp {
    let by = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
    at.saturating_sub(by).unwrap_or(Timestamp::MIN)
}

/// Reads a stored UUID.
pub(crate) fn uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|err| StoreError::Corrupt(format!("bad id `{text}`: {err}")))
}

/// Reads an optional stored UUID.
pub(crate) fn opt_uuid(text: Option<String>) -> StoreResult<Option<Uuid>> {
    text.as_deref().map(uuid).transpose()
}

/// Serialises a value for a JSON text column.
pub(crate) fn to_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Serialize { what, source })
}

/// Reads a JSON text column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

/// Reads an optional JSON text column.
pub(crate) fn opt_json(what: &str, text: Option<String>) -> StoreResult<Option<Value>> {
    text.as_deref().map(|text| from_json(what, text)).transpose()
}

/// The lowercased text the run filter searches (JSON texts joined), capped at
/// [`SEARCH_TEXT_LIMIT`] bytes.
pub(crate) fn search_text(parts: &[&str]) -> String {
    let mut text = String::new();
    for part in parts {
        text.push_str(&part.to_lowercase());
        text.push('\n');
    }
    let mut end = text.len().min(SEARCH_TEXT_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The JSON text of a run record as the text search sees it: without its `trigger`, which
/// repeats the run's inputs (searched already).
pub(crate) fn searched_record(record: &Value) -> StoreResult<String> {
    struct WithoutTrigger<'a>(&'a serde_json::Map<String, Value>);
    impl Serialize for WithoutTrigger<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().filter(|(key, _)| key.as_str() != "trigger"))
        }
    }
    match record {
        Value::Object(map) => to_json("run record", &WithoutTrigger(map)),
        other => to_json("run record", other),
    }
}

/// Position in the newest-first run order: `(created_at, id)` of the last run of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Creation time in microseconds.
    pub created_at: i64,
    /// Run id, breaking ties between runs created in the same microsecond.
    pub id: String,
}

impl Cursor {
    /// The cursor after `run`.
    pub(crate) fn after(run: &RunSummary) -> String {
        format!("{}.{}", micros(run.created_at), run.id)
    }

    /// Parses a cursor produced by [`Cursor::after`].
    pub(crate) fn parse(text: &str) -> StoreResult<Self> {
        let invalid = || StoreError::InvalidCursor(text.to_owned());
        let (created_at, id) = text.split_once('.').ok_or_else(invalid)?;
        let created_at = created_at.parse().map_err(|_| invalid())?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self { created_at, id: id.to_string() })
    }
}

/// The page size a filter asks for, within bounds.
pub(crate) fn page_size(filter: &RunFilter) -> u32 {
    match filter.limit {
        0 => 50,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Defines, in a backend module, the functions that turn that backend's rows into store types.
/// The columns are named and typed alike in both schemas, so one body serves both.
macro_rules! row_decoders {
    ($row:ty) => {
        use sqlx::Row as _;

        fn work_item(row: &$row) -> StoreResult<WorkItem> {
            Ok(WorkItem {
                id: crate::store::uuid(row.try_get("id")?)?,
                flow: row.try_get("flow")?,
                event_id: crate::store::opt_uuid(row.try_get("event_id")?)?,
                run_id: crate::store::opt_uuid(row.try_get("run_id")?)?,
                payload: crate::store::from_json("work payload", row.try_get("payload")?)?,
                attempts: crate::store::attempts(row.try_get("attempts")?),
                max_attempts: crate::store::attempts(row.try_get("max_attempts")?),
                enqueued_at: crate::store::timestamp(row.try_get("enqueued_at")?)?,
                last_error: row.try_get("last_error")?,
            })
        }

        fn run_summary(row: &$row) -> StoreResult<RunSummary> {
            Ok(RunSummary {
                id: crate::store::uuid(row.try_get("id")?)?,
                flow: row.try_get("flow")?,
                status: RunStatus::parse(row.try_get("status")?)?,
                event_id: crate::store::opt_uuid(row.try_get("event_id")?)?,
                resubmit_of: crate::store::opt_uuid(row.try_get("resubmit_of")?)?,
                created_at: crate::store::timestamp(row.try_get("created_at")?)?,
                started_at: crate::store::opt_timestamp(row.try_get("started_at")?)?,
                ended_at: crate::store::opt_timestamp(row.try_get("ended_at")?)?,
                error: crate::store::opt_json("run error", row.try_get("error")?)?,
            })
        }

        fn action_record(row: &$row) -> StoreResult<ActionRecord> {
            Ok(ActionRecord {
                name: row.try_get("name")?,
                status: row.try_get("status")?,
                started_at: crate::store::opt_timestamp(row.try_get("started_at")?)?,
                ended_at: crate::store::opt_timestamp(row.try_get("ended_at")?)?,
                result: crate::store::from_json("action result", row.try_get("result")?)?,
            })
        }

        fn stored_event(row: &$row) -> StoreResult<StoredEvent> {
            Ok(StoredEvent {
                id: crate::store::uuid(row.try_get("id")?)?,
                flow: row.try_get("flow")?,
                source: row.try_get("source")?,
                received_at: crate::store::timestamp(row.try_get("received_at")?)?,
                headers: crate::store::from_json("event headers", row.try_get("headers")?)?,
                body: row.try_get("body")?,
                dedup_key: row.try_get("dedup_key")?,
            })
        }

        fn rejected_event(row: &$row) -> StoreResult<RejectedEvent> {
            let status: i64 = row.try_get("status")?;
            Ok(RejectedEvent {
                id: crate::store::uuid(row.try_get("id")?)?,
                flow: row.try_get("flow")?,
                source: row.try_get("source")?,
                received_at: crate::store::timestamp(row.try_get("received_at")?)?,
                headers: crate::store::from_json("event headers", row.try_get("headers")?)?,
                body: row.try_get("body")?,
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Corrupt(format!("HTTP status {status} out of range")))?,
                reason: row.try_get("reason")?,
            })
        }

        fn watermark(row: &$row) -> StoreResult<Watermark> {
            Ok(Watermark {
                value: crate::store::from_json("watermark", row.try_get("value")?)?,
                version: row.try_get("version")?,
                updated_at: crate::store::timestamp(row.try_get("updated_at")?)?,
            })
        }

        fn flow_state(row: &$row) -> StoreResult<FlowState> {
            Ok(FlowState {
                flow: row.try_get("flow")?,
                enabled: row.try_get("enabled")?,
                updated_at: crate::store::timestamp(row.try_get("updated_at")?)?,
            })
        }
    };
}
pub(crate) use row_decoders;

/// Whether a database error is a foreign-key violation (a row names a run that does not exist).
pub(crate) fn is_missing_parent(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| db.is_foreign_key_violation())
}

/// Converts a count read from the database.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Converts a stored attempt count.
pub(crate) fn attempts(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_doubles_and_caps() {
        let policy = RetryPolicy { initial: Duration::from_secs(2), max: Duration::from_secs(10) };
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 10, 10]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn queue_age_is_measured_from_the_oldest_item() {
        let t0 = timestamp(1_700_000_000_000_000).unwrap();
        let stats = QueueStats { ready: 2, leased: 1, dead: 4, oldest_enqueued_at: Some(t0) };
        assert_eq!(stats.depth(), 3);
        assert_eq!(stats.oldest_age(add(t0, Duration::from_secs(90))), Some(Duration::from_secs(90)));
        assert_eq!(stats.oldest_age(sub(t0, Duration::from_secs(1))), Some(Duration::ZERO), "clock skew");
        assert_eq!(QueueStats::default().oldest_age(t0), None);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let id = Uuid::now_v7();
        let run = RunSummary {
            id,
            flow: "f".into(),
            status: RunStatus::Queued,
            event_id: None,
            resubmit_of: None,
            created_at: timestamp(1_700_000_000_123_456).unwrap(),
            started_at: None,
            ended_at: None,
            error: None,
        };
        let cursor = Cursor::parse(&Cursor::after(&run)).unwrap();
        assert_eq!(cursor, Cursor { created_at: 1_700_000_000_123_456, id: id.to_string() });
        assert!(matches!(Cursor::parse("nonsense"), Err(StoreError::InvalidCursor(_))));
        assert!(matches!(Cursor::parse("12.not-a-uuid"), Err(StoreError::InvalidCursor(_))));
    }

    #[test]
    fn search_text_is_lowercase_and_capped_on_a_char_boundary() {
        let long = "É".repeat(SEARCH_TEXT_LIMIT);
        let text = search_text(&[r#"{"Name":"ACME"}"#, &long]);
        assert!(text.starts_with(r#"{"name":"acme"}"#));
        assert!(text.len() <= SEARCH_TEXT_LIMIT);
        assert!(text.ends_with('é'));
    }

    #[test]
    fn unknown_url_scheme_is_refused_without_echoing_credentials() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let err = runtime.block_on(open("mysql://user:secret@localhost/db")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`mysql`"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
