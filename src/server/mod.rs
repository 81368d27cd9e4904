//! `coflow serve`: flows as a durable service.
//!
//! The pieces, each in its own module:
//! - [`registry`]: the flows of one folder, reloaded when a file changes;
//! - [`hooks`]: `/hooks/<flow>` receives HTTP and Partner Center webhook events and commits them
//!   (grouped by [`batcher`]) before answering;
//! - [`worker`]: workers take work items from the store's queue and run them, persisting each
//!   action result as it completes;
//! - [`scheduler`]: recurrence and polling triggers (one process per trigger, by lease), reload
//!   and retention;
//! - [`admin`]: the JSON API; [`metrics`]: Prometheus; [`triggers`]: how each flow is started;
//! - [`ui`]: the run-history web pages under `/`.
//!
//! [`Server::start`] takes its dependencies (listener, flows, store, connections), so tests run
//! a whole server on port 0 against the sandbox.

pub mod admin;
pub mod batcher;
pub mod hooks;
pub mod journal;
pub mod metrics;
pub mod registry;
pub mod scheduler;
pub mod triggers;
pub mod ui;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connectors::config::{LoadedConnections, Secret};
use crate::connectors::partner_center::webhook::CertCache;
use crate::engine::{CancelToken, RunOptions};
use crate::store::{RetryPolicy, Store};
use batcher::Batcher;
use metrics::Metrics;
use registry::FlowRegistry;
use worker::{FlowLimits, Responders, RunningRuns};

/// How the server behaves; [`Settings::default`] is what `coflow serve` uses without flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Runs executed at once by this process (the global concurrency limit).
    pub workers: usize,
    /// Runs of one flow executed at once by this process, by flow name.
    pub flow_concurrency: HashMap<String, usize>,
    /// How long a claimed work item stays leased without a heartbeat.
    pub lease: Duration,
    /// How often idle workers look for work committed by other processes.
    pub poll_interval: Duration,
    /// How often the scheduler checks triggers and flow files.
    pub tick: Duration,
    /// How long in-flight runs may take to finish after SIGTERM before they are handed back.
    pub shutdown_grace: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a request waits for its flow's `response` action before getting 202.
    pub response_timeout: Duration,
    /// Days of history kept.
    pub retention_days: u32,
    /// Attempts of one work item before it is dead-lettered.
    pub max_attempts: u32,
    /// Back-off between attempts of a failed work item.
    pub retry: RetryPolicy,
    /// Reload flows when their files change.
    pub reload: bool,
    /// Fire recurrence and polling triggers (off: this process only serves hooks and runs).
    pub schedule_triggers: bool,
    /// Bearer token of the admin API; `None`: loopback only.
    pub admin_token: Option<Secret>,
    /// Hold back writes (every run is a dry-run).
    pub dry_run: bool,
    /// Queue and record runs; off: hooks run flows at once in memory, nothing is kept, and an
    /// event is lost if the process dies (like Node-RED).
    pub history: bool,
    /// Poll every Salesforce trigger this often instead of its own `every` (demos, tests).
    pub poll_every: Option<Duration>,
    /// The emulators started by `--sandbox`, shown by the UI's sandbox page.
    pub sandbox: Option<ui::SandboxView>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 32,
            flow_concurrency: HashMap::new(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            tick: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            // Power Automate's limit for a synchronous response.
            response_timeout: Duration::from_secs(120),
            retention_days: crate::store::DEFAULT_RETENTION_DAYS,
            max_attempts: 5,
            retry: RetryPolicy::default(),
            reload: true,
            schedule_triggers: true,
            admin_token: None,
            dry_run: false,
            poll_every: None,
            history: true,
            sandbox: None,
        }
    }
}

/// Everything request handlers, workers and the scheduler share.
#[derive(Debug)]
pub struct State {
    /// Settings.
    pub options: Settings,
    /// The flows.
    pub registry: Arc<FlowRegistry>,
    /// Events, queue and history.
    pub store: Arc<dyn Store>,
    /// Connections from the connections file.
    pub connections: LoadedConnections,
    /// Base options of every run (connections, HTTP client).
    pub run_options: RunOptions,
    /// Group commit of accepted events.
    pub batcher: Batcher,
    /// Group commit of run progress.
    pub journal: journal::Journal,
    /// Wakes idle workers when work was committed here.
    pub wake: Arc<Notify>,
    /// Requests waiting for a `response` action.
    pub responders: Responders,
    /// Runs executing here.
    pub running: RunningRuns,
    /// Per-flow concurrency limits.
    pub flow_limits: FlowLimits,
    /// Runs executed by the request that started them, at most as many as there are workers.
    pub inline_slots: Arc<tokio::sync::Semaphore>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// This process's id in leases and claims.
    pub instance: String,
    /// Cancelled when the server is asked to stop.
    pub shutdown: CancelToken,
    /// Downloaded Partner Center signing certificates.
    pub cert_cache: CertCache,
    /// Compiled JSON Schemas of HTTP triggers.
    pub schemas: SchemaCache,
    /// Flows switched off, as last read from the store (refreshed every scheduler tick and at
    /// once when switched here), so a hook does not ask the store on every request.
    pub disabled: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl State {
    /// Whether a flow is switched off.
    pub fn is_disabled(&self, flow: &str) -> bool {
        self.disabled.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(flow)
    }

    /// A run from the history, or, for a run accepted but not started yet, its queued state:
    /// the id a hook answers with is readable at once.
    pub async fn run_or_queued(
        &self,
        id: uuid::Uuid,
    ) -> crate::store::StoreResult<Option<crate::store::RunDetail>> {
        if let Some(run) = self.store.get_run(id).await? {
            return Ok(Some(with_full_record(run)));
        }
        let Some(item) = self.store.get_work(id).await?.filter(|w| w.run_id.is_none_or(|r| r == id)) else {
            return Ok(None);
        };
        let summary = crate::store::RunSummary {
            id,
            flow: item.flow,
            status: crate::store::RunStatus::Queued,
            event_id: item.event_id,
            resubmit_of: None,
            created_at: item.enqueued_at,
            started_at: None,
            ended_at: None,
            error: None,
        };
        let detail = crate::store::RunDetail {
            summary,
            inputs: serde_json::Value::Null,
            record: None,
            actions: Vec::new(),
            resubmits: Vec::new(),
        };
        Ok(Some(detail))
    }

    /// Cancels a run: stops it if it executes here, else ends it in the store (a worker of
    /// another process notices at its next heartbeat and stops it there). `by` names who asked,
    /// for the run's error.
    pub async fn cancel_run(
        &self,
        id: uuid::Uuid,
        by: &str,
    ) -> Result<Cancellation, crate::store::StoreError> {
        if self.running.cancel(id) {
            return Ok(Cancellation::Stopping);
        }
        let Some(run) = self.store.get_run(id).await? else { return Ok(Cancellation::NotFound) };
        if run.summary.status.is_terminal() {
            return Ok(Cancellation::AlreadyEnded(run.summary.status));
        }
        let error =
            serde_json::json!({"code": "RunCancelled", "message": format!("the run was cancelled {by}")});
        let outcome = crate::store::RunOutcome {
            status: crate::store::RunStatus::Cancelled,
            ended_at: self.store.now(),
            error: Some(error),
            record: run.record.unwrap_or(serde_json::Value::Null),
        };
        self.store.finish_run(id, outcome).await?;
        Ok(Cancellation::Ended)
    }

    /// Reads the switched-off flows from the store.
    pub async fn refresh_disabled(&self) -> Result<(), crate::store::StoreError> {
        let states = self.store.flow_states().await?;
        let disabled = states.into_iter().filter(|s| !s.enabled).map(|s| s.flow).collect();
        *self.disabled.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = disabled;
        Ok(())
    }
}

/// The run with its whole record: history stores the record without the trigger's outputs and
/// the action results (see [`crate::engine::Run::stored_record`]), which it holds besides.
pub fn with_full_record(mut run: crate::store::RunDetail) -> crate::store::RunDetail {
    if let Some(record) = run.record.take() {
        let results = run.actions.iter().map(|action| (action.name.as_str(), &action.result));
        run.record = Some(crate::engine::assemble_record(record, &run.inputs, results));
    }
    run
}

/// What [`State::cancel_run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The run executes here and is stopping.
    Stopping,
    /// The run was ended in the store.
    Ended,
    /// The run had already ended with this status.
    AlreadyEnded(crate::store::RunStatus),
    /// No such run.
    NotFound,
}

/// Compiled trigger schemas by flow, recompiled when the flow's schema changes.
#[derive(Debug, Default)]
pub struct SchemaCache {
    compiled: Mutex<HashMap<String, (serde_json::Value, Arc<jsonschema::Validator>)>>,
}

impl SchemaCache {
    /// The validator of `schema` for `flow`.
    pub fn validator(
        &self,
        flow: &str,
        schema: &serde_json::Value,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((source, validator)) = compiled.get(flow) {
            if source == schema {
                return Ok(validator.clone());
            }
        }
        let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| e.to_string())?);
        compiled.insert(flow.to_string(), (schema.clone(), validator.clone()));
        Ok(validator)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener has no address.
    #[error("cannot read the listening address: {0}")]
    Address(#[from] std::io::Error),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts the HTTP routes, the workers and the scheduler on `listener`.
    pub async fn start(
        listener: TcpListener,
        registry: Arc<FlowRegistry>,
        store: Arc<dyn Store>,
        connections: LoadedConnections,
        options: Settings,
    ) -> Result<Server, ServeError> {
        let addr = listener.local_addr()?;
        let wake = Arc::new(Notify::new());
        let workers = options.workers.max(1);
        let instance = format!("{}-{}", hostname(), std::process::id());
        let batcher = {
            let wake = wake.clone();
            Batcher::start(store.clone(), format!("{instance}/hook"), options.lease, move |enqueued| {
                for _ in 0..enqueued.min(workers) {
                    wake.notify_one();
                }
            })
        };
        let journal = journal::Journal::start(store.clone());
        let mut run_options = RunOptions::new(options.dry_run);
        run_options.connections = connections.connections.clone();
        run_options.flows = Some(registry.clone());
        let state = Arc::new(State {
            flow_limits: FlowLimits::new(options.flow_concurrency.clone()),
            inline_slots: Arc::new(tokio::sync::Semaphore::new(workers)),
            options,
            registry,
            store,
            connections,
            run_options,
            batcher,
            journal,
            wake,
            responders: Responders::default(),
            running: RunningRuns::default(),
            metrics: Metrics::new(),
            instance,
            shutdown: CancelToken::new(),
            cert_cache: CertCache::with_default_client(),
            schemas: SchemaCache::default(),
            disabled: Default::default(),
        });
        if let Err(err) = state.refresh_disabled().await {
            tracing::warn!(error = %err, "cannot read which flows are switched off");
        }
        let mut tasks = Vec::new();
        for index in 0..workers {
            tasks.push(tokio::spawn(worker::work_loop(state.clone(), index)));
        }
        tasks.push(tokio::spawn(scheduler::run(state.clone())));
        let app = router(state.clone());
        let shutdown = state.shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            let serving = axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(err) = serving.await {
                tracing::error!(error = %err, "HTTP server stopped");
            }
        }));
        tracing::info!(%addr, workers, "coflow serve is ready");
        Ok(Server { addr, state, tasks })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Asks everything to stop: no new requests or claims; in-flight runs get the grace period.
    pub fn stop(&self) {
        self.state.shutdown.cancel();
    }

    /// Stops and waits until every task has ended.
    pub async fn shutdown(self) {
        self.stop();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// All routes.
pub fn router(state: Arc<State>) -> axum::Router {
    let admin =
        admin::routes().layer(axum::middleware::from_fn_with_state(state.clone(), admin::require_admin));
    axum::Router::new()
        .route("/hooks/{flow}", any(hooks::receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(admin)
        .merge(ui::routes(state.clone()))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn ready(AxumState(state): AxumState<Arc<State>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store.queue_stats().await {
        Ok(_) => "ready".into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}")).into_response(),
    }
}

async fn metrics_text(AxumState(state): AxumState<Arc<State>>) -> Response {
    let queue = state.store.queue_stats().await.ok().map(|stats| (stats, state.store.now()));
    let text = state.metrics.render(queue);
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "coflow".into())
}
