//! The admin JSON API under `/api`: flows, runs, events and the queue.
//!
//! Every route needs `Authorization: Bearer <admin token>`. Without a configured token the API
//! answers only requests from loopback, so a fresh local install works and a server exposed on
//! a network never is open by accident.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, Request, State as AxumState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::triggers::TriggerPlan;
use super::{Cancellation, State};
use crate::store::{NewEvent, RunFilter, RunStatus, StoreError};

/// Errors of the admin API, each with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a wrong token.
    #[error("missing or wrong admin token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// No token is configured and the request is not from loopback.
    #[error("the admin API is open only to loopback when no admin token is set; start with --admin-token")]
    LoopbackOnly,
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// A connected system could not be read.
    #[error("{0}")]
    Upstream(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::LoopbackOnly => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::Store(StoreError::RunNotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) | ApiError::Store(StoreError::InvalidCursor(_)) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The API routes (without authentication; see [`require_admin`]).
pub fn routes() -> axum::Router<Arc<State>> {
    axum::Router::new()
        .route("/api/flows", get(list_flows))
        .route("/api/flows/{name}", get(show_flow))
        .route("/api/flows/{name}/enable", post(enable_flow))
        .route("/api/flows/{name}/disable", post(disable_flow))
        .route("/api/flows/{name}/run", post(run_flow))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/resubmit", post(resubmit_run))
        .route("/api/runs/{id}/cancel", post(cancel_run))
        .route("/api/events/rejected", get(list_rejected))
        .route("/api/queue", get(queue))
        .route("/api/sync/status", get(sync_status))
        .route("/api/queue/dead/{id}/requeue", post(requeue_dead))
}

/// Middleware: the bearer token, or loopback when no token is configured.
pub async fn require_admin(
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(&state, peer, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// Whether a request may use admin routes.
pub fn authorize(state: &State, peer: SocketAddr, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.options.admin_token else {
        return if peer.ip().is_loopback() { Ok(()) } else { Err(ApiError::LoopbackOnly) };
    };
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(sent.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_flows(AxumState(state): AxumState<Arc<State>>) -> ApiResult {
    let snapshot = state.registry.snapshot();
    let disabled: Vec<String> =
        state.store.flow_states().await?.into_iter().filter(|s| !s.enabled).map(|s| s.flow).collect();
    let flows: Vec<Value> = snapshot
        .flows
        .values()
        .map(|loaded| {
            let flow = &loaded.flow;
            json!({
                "name": flow.name,
                "description": flow.description,
                "trigger": flow.trigger.kind,
                "hook": TriggerPlan::of(flow).is_ok_and(|p| p.is_webhook()).then(|| format!("/hooks/{}", flow.name)),
                "enabled": !disabled.contains(&flow.name),
                "file": loaded.path,
            })
        })
        .collect();
    Ok(Json(json!({"flows": flows, "problems": snapshot.problems})))
}

async fn show_flow(AxumState(state): AxumState<Arc<State>>, Path(name): Path<String>) -> ApiResult {
    let loaded = state.registry.get(&name).ok_or_else(|| unknown_flow(&name))?;
    let enabled = state.store.flow_enabled(&name).await?;
    Ok(Json(json!({
        "name": loaded.flow.name,
        "description": loaded.flow.description,
        "trigger": loaded.flow.trigger.kind,
        "enabled": enabled,
        "file": loaded.path,
        "source": loaded.source,
    })))
}

fn unknown_flow(name: &str) -> ApiError {
    ApiError::NotFound(format!("no flow named `{name}` is loaded"))
}

async fn enable_flow(state: AxumState<Arc<State>>, name: Path<String>) -> ApiResult {
    switch_flow(state, name, true).await
}

async fn disable_flow(state: AxumState<Arc<State>>, name: Path<String>) -> ApiResult {
    switch_flow(state, name, false).await
}

async fn switch_flow(
    AxumState(state): AxumState<Arc<State>>,
    Path(name): Path<String>,
    enabled: bool,
) -> ApiResult {
    state.registry.get(&name).ok_or_else(|| unknown_flow(&name))?;
    state.store.set_flow_enabled(&name, enabled).await?;
    state.refresh_disabled().await?;
    tracing::info!(flow = %name, enabled, "flow switched");
    Ok(Json(json!({"name": name, "enabled": enabled})))
}

/// `POST /api/flows/{name}/run`: starts a run with the request body as the trigger event.
async fn run_flow(
    AxumState(state): AxumState<Arc<State>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    state.registry.get(&name).ok_or_else(|| unknown_flow(&name))?;
    let body = body.map(|Json(v)| v).unwrap_or(Value::Null);
    let event = NewEvent {
        id: Uuid::now_v7(),
        flow: name.clone(),
        source: "manual".into(),
        received_at: state.store.now(),
        headers: Vec::new(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        dedup_key: None,
        max_attempts: state.options.max_attempts,
    };
    let outcome = state.batcher.accept(event).await.map_err(|e| ApiError::Conflict(e.to_string()))?;
    let run_id = match outcome {
        crate::store::AcceptOutcome::Accepted { work_id, .. } => work_id,
        crate::store::AcceptOutcome::Duplicate { existing } => existing,
    };
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": run_id}))))
}

/// Query of `GET /api/runs`.
#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl RunsQuery {
    /// The store filter this query asks for.
    pub fn filter(&self) -> Result<RunFilter, ApiError> {
        let time = |name: &str, text: &Option<String>| -> Result<Option<jiff::Timestamp>, ApiError> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "`{name}` must be a timestamp like 2026-01-31T08:00:00Z"
                        ))
                    })
                })
                .transpose()
        };
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(RunStatus::parse(text).map_err(|_| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!("unknown status `{text}`; use one of {}", known.join(", ")))
            })?),
        };
        Ok(RunFilter {
            flow: self.flow.clone().filter(|f| !f.is_empty()),
            status,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            text: self.q.clone().filter(|q| !q.is_empty()),
            limit: self.limit.unwrap_or(50),
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        })
    }
}

async fn list_runs(AxumState(state): AxumState<Arc<State>>, Query(query): Query<RunsQuery>) -> ApiResult {
    let page = state.store.list_runs(query.filter()?).await?;
    Ok(Json(serde_json::to_value(page).unwrap_or_default()))
}

fn run_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::BadRequest(format!("`{text}` is not a run id")))
}

/// `coflow sync status` over the service's own flows and connections.
async fn sync_status(AxumState(state): AxumState<Arc<State>>) -> ApiResult {
    // Held back, not sent: the status only reads.
    let http = crate::connectors::HttpClient::new(reqwest::Client::new(), true);
    let status = crate::cosell::status::sync_status(state.registry.dir(), &state.connections, &http)
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    Ok(Json(serde_json::to_value(status).unwrap_or_default()))
}

async fn show_run(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> ApiResult {
    let id = run_id(&id)?;
    let run = state.run_or_queued(id).await?.ok_or(ApiError::Store(StoreError::RunNotFound(id)))?;
    Ok(Json(serde_json::to_value(run).unwrap_or_default()))
}

async fn resubmit_run(
    AxumState(state): AxumState<Arc<State>>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let original = run_id(&id)?;
    let new_run = Uuid::now_v7();
    state.store.resubmit(original, new_run, state.options.max_attempts).await?;
    state.wake.notify_one();
    tracing::info!(%original, %new_run, "run resubmitted");
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": new_run, "resubmit_of": original}))))
}

async fn cancel_run(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> ApiResult {
    let id = run_id(&id)?;
    match state.cancel_run(id, "through the admin API").await? {
        Cancellation::Stopping => Ok(Json(json!({"run_id": id, "status": "cancelling"}))),
        Cancellation::Ended => Ok(Json(json!({"run_id": id, "status": "cancelled"}))),
        Cancellation::AlreadyEnded(status) => {
            Err(ApiError::Conflict(format!("run {id} has already ended ({status})")))
        }
        Cancellation::NotFound => Err(ApiError::Store(StoreError::RunNotFound(id))),
    }
}

/// Query with a `limit`.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<u32>,
}

async fn list_rejected(
    AxumState(state): AxumState<Arc<State>>,
    Query(query): Query<LimitQuery>,
) -> ApiResult {
    let rejected = state.store.list_rejected(query.limit.unwrap_or(50).min(500)).await?;
    let rejected: Vec<Value> = rejected
        .into_iter()
        .map(|event| {
            json!({
                "id": event.id,
                "flow": event.flow,
                "source": event.source,
                "received_at": event.received_at,
                "status": event.status,
                "reason": event.reason,
                "headers": event.headers,
                "body": String::from_utf8_lossy(&event.body),
            })
        })
        .collect();
    Ok(Json(json!({"rejected": rejected})))
}

async fn queue(AxumState(state): AxumState<Arc<State>>) -> ApiResult {
    let stats = state.store.queue_stats().await?;
    let dead = state.store.list_dead(100).await?;
    let oldest_age_seconds = stats.oldest_age(state.store.now()).map(|age| age.as_secs_f64());
    Ok(Json(json!({
        "ready": stats.ready,
        "leased": stats.leased,
        "dead": stats.dead,
        "oldest_age_seconds": oldest_age_seconds,
        "dead_items": dead,
        "running_here": state.running.len(),
    })))
}

async fn requeue_dead(AxumState(state): AxumState<Arc<State>>, Path(id): Path<String>) -> ApiResult {
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::BadRequest(format!("`{id}` is not a work item id")))?;
    if !state.store.requeue_dead(id).await? {
        return Err(ApiError::NotFound(format!("no dead-lettered work item {id}")));
    }
    state.wake.notify_one();
    Ok(Json(json!({"id": id, "status": "requeued"})))
}
