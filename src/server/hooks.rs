//! `/hooks/<flow>`: where HTTP-request and Partner Center webhook triggers receive events.
//!
//! Every request is checked (flow, method, size, content type, JSON, schema, signature) before
//! anything is stored; a refused request is answered 4xx with the reason and kept in the store's
//! rejected events for inspection. An accepted event is committed to the store before the 2xx
//! leaves, so nothing acknowledged can be lost. A flow that contains a `response` action answers
//! the request with it; any other flow answers 202 with the run id at once.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::State;
use super::batcher::AcceptError;
use super::triggers::TriggerPlan;
use crate::connectors::partner_center::webhook;
use crate::engine::{ResponseRecord, TriggerEvent};
use crate::flow::{ActionKind, Block, Flow};
use crate::store::{AcceptOutcome, NewEvent, RejectedEvent};

/// Longest part of a refused body kept for inspection.
const KEPT_REJECTED_BODY: usize = 64 * 1024;

/// Headers never stored: they may carry credentials.
const SECRET_HEADERS: [&str; 4] = ["authorization", "cookie", "proxy-authorization", "x-api-key"];

/// A request refused with a reason.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    reason: String,
    /// Whether the refusal is worth storing (events, not probes of a missing flow).
    flow: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal { status, reason: reason.into(), flow: None }
    }

    fn for_flow(mut self, flow: &str) -> Self {
        self.flow = Some(flow.to_string());
        self
    }
}

/// `ANY /hooks/{flow}`.
pub async fn receive(
    AxumState(state): AxumState<Arc<State>>,
    Path(flow): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let received_at = state.store.now();
    let raw = match axum::body::to_bytes(body, state.options.max_body_bytes).await {
        Ok(raw) => raw,
        Err(_) => {
            let reason = format!(
                "the body is larger than the {} byte limit (raise it with --max-body-bytes)",
                state.options.max_body_bytes
            );
            let refusal = Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, reason).for_flow(&flow);
            return refuse(&state, refusal, &parts.headers, Bytes::new(), received_at).await;
        }
    };
    match accept(&state, &flow, &parts.method, &parts.headers, &raw, received_at).await {
        Ok(response) => response,
        Err(refusal) => {
            tracing::info!(%flow, %peer, status = refusal.status.as_u16(), reason = %refusal.reason, "event refused");
            refuse(&state, refusal, &parts.headers, raw, received_at).await
        }
    }
}

async fn accept(
    state: &Arc<State>,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    raw: &Bytes,
    received_at: jiff::Timestamp,
) -> Result<Response, Refusal> {
    let loaded = state.registry.get(name).ok_or_else(|| {
        Refusal::new(StatusCode::NOT_FOUND, format!("no flow named `{name}` is loaded; see GET /api/flows"))
    })?;
    let flow = &loaded.flow;
    let plan = TriggerPlan::of(flow)
        .map_err(|e| Refusal::new(StatusCode::NOT_FOUND, e.to_string()).for_flow(name))?;
    if !plan.is_webhook() {
        let reason =
            format!("flow `{name}` is started by its `{}` trigger, not by HTTP requests", flow.trigger.kind);
        return Err(Refusal::new(StatusCode::NOT_FOUND, reason).for_flow(name));
    }
    if state.is_disabled(name) {
        let reason = format!("flow `{name}` is disabled; enable it with POST /api/flows/{name}/enable");
        return Err(Refusal::new(StatusCode::CONFLICT, reason).for_flow(name));
    }
    let (body, dedup_key, source) = match &plan {
        TriggerPlan::PartnerCenterWebhook { connection, events } => {
            match verify_partner_center(state, connection, events, headers, raw).await? {
                Some(verified) => verified,
                None => {
                    state.metrics.event(name, "ignored");
                    return Ok((StatusCode::OK, axum::Json(json!({"status": "ignored"}))).into_response());
                }
            }
        }
        TriggerPlan::Http { method: expected } => {
            if !method.as_str().eq_ignore_ascii_case(expected) {
                let reason = format!("flow `{name}` takes {expected} requests, not {method}");
                return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, reason).for_flow(name));
            }
            let body = json_body(headers, raw).map_err(|r| r.for_flow(name))?;
            check_schema(state, flow, &body).map_err(|r| r.for_flow(name))?;
            let key = header_text(headers, "idempotency-key");
            (body, key, "webhook".to_string())
        }
        _ => unreachable!("is_webhook() covers only these"),
    };
    let synchronous = has_response(&flow.root);
    if !state.options.history {
        let event = TriggerEvent { headers: header_map(headers), body };
        return Ok(run_unrecorded(state, flow.clone(), event, synchronous).await);
    }
    let event = NewEvent {
        id: Uuid::now_v7(),
        flow: name.to_string(),
        source,
        received_at,
        headers: kept_headers(headers),
        body: raw.to_vec(),
        dedup_key,
        max_attempts: state.options.max_attempts,
    };
    if synchronous {
        // The answer comes from the run, so this process runs it: waiting for a free slot is
        // the back-pressure, and another process's worker can never take the answer away.
        let slot = state.inline_slots.clone().acquire_owned().await.map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; deliver the event again later",
            )
        })?;
        let trigger = TriggerEvent { headers: header_map(headers), body };
        let accepted = state.batcher.accept_leased(event).await.map_err(unavailable)?;
        return Ok(run_here(state, name, accepted, trigger, slot).await);
    }
    let outcome = state.batcher.accept(event).await.map_err(unavailable)?;
    match outcome {
        AcceptOutcome::Accepted { event_id, work_id } => {
            state.metrics.event(name, "accepted");
            if synchronous {
                return Ok(wait_for_response(state, work_id, event_id).await);
            }
            Ok(accepted(work_id, event_id))
        }
        AcceptOutcome::Duplicate { existing } => Ok(duplicate(state, name, existing)),
    }
}

fn unavailable(err: AcceptError) -> Refusal {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
}

fn duplicate(state: &State, flow: &str, existing: Uuid) -> Response {
    state.metrics.event(flow, "duplicate");
    let body = json!({"status": "duplicate", "event_id": existing});
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&existing.to_string()) {
        response.headers_mut().insert(HeaderName::from_static("x-coflow-event-id"), value);
    }
    response
}

/// Runs a just-accepted event in this process, its work item leased to us (no trip through the
/// queue), and answers with the flow's `response` as soon as that action runs.
async fn run_here(
    state: &Arc<State>,
    flow: &str,
    stored: super::batcher::Accepted,
    event: TriggerEvent,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let (event_id, run_id, claim) = match stored {
        (AcceptOutcome::Duplicate { existing }, _) => return duplicate(state, flow, existing),
        (AcceptOutcome::Accepted { event_id, work_id }, claim) => (event_id, work_id, claim),
    };
    state.metrics.event(flow, "accepted");
    let Some(claim) = claim else {
        return wait_for_response(state, run_id, event_id).await;
    };
    let response = state.responders.wait_for(run_id);
    let worker = state.clone();
    let running = tokio::spawn(async move {
        let run = super::worker::process(&worker, claim, Some(event)).await;
        drop(slot);
        run
    });
    let mut answer = match response.await {
        Ok(response) => respond(response),
        // The run ended without answering.
        Err(_) => match running.await.ok().flatten().and_then(|run| run.response) {
            Some(response) => respond(response),
            None => accepted(run_id, event_id),
        },
    };
    identify(&mut answer, run_id, event_id);
    answer
}

/// Names the run and the stored event on an answer, so a caller can find them later.
fn identify(response: &mut Response, run_id: Uuid, event_id: Uuid) {
    for (name, id) in [("x-coflow-run-id", run_id), ("x-coflow-event-id", event_id)] {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
}

/// Runs the flow without queueing or recording it (`--no-history`): a synchronous flow answers
/// with its `response`, any other gets 202 at once while it runs.
async fn run_unrecorded(
    state: &Arc<State>,
    flow: Arc<Flow>,
    event: TriggerEvent,
    synchronous: bool,
) -> Response {
    let run_id = Uuid::now_v7();
    let state = state.clone();
    let work = async move {
        let started = std::time::Instant::now();
        let mut options = state.run_options.clone();
        options.run_id = Some(run_id.to_string());
        let run = crate::engine::run(&flow, event, &options).await;
        state.metrics.run_finished(&flow.name, super::worker::run_status(run.status), started.elapsed());
        run
    };
    if !synchronous {
        tokio::spawn(work);
        return (StatusCode::ACCEPTED, axum::Json(json!({"status": "accepted", "run_id": run_id})))
            .into_response();
    }
    match work.await.response {
        Some(response) => respond(response),
        None => (StatusCode::ACCEPTED, axum::Json(json!({"status": "accepted", "run_id": run_id})))
            .into_response(),
    }
}

fn header_map(headers: &HeaderMap) -> serde_json::Map<String, Value> {
    kept_headers(headers).into_iter().map(|(name, value)| (name, Value::String(value))).collect()
}

fn accepted(run_id: Uuid, event_id: Uuid) -> Response {
    let body = json!({"status": "accepted", "run_id": run_id, "event_id": event_id});
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/runs/{run_id}")) {
        response.headers_mut().insert(axum::http::header::LOCATION, location);
    }
    identify(&mut response, run_id, event_id);
    response
}

/// Waits for the run's `response` action; answers 202 if it does not come in time.
async fn wait_for_response(state: &Arc<State>, run_id: Uuid, event_id: Uuid) -> Response {
    let receiver = state.responders.wait_for(run_id);
    match tokio::time::timeout(state.options.response_timeout, receiver).await {
        Ok(Ok(response)) => {
            let mut answer = respond(response);
            identify(&mut answer, run_id, event_id);
            answer
        }
        _ => {
            state.responders.forget(run_id);
            accepted(run_id, event_id)
        }
    }
}

fn respond(record: ResponseRecord) -> Response {
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::OK);
    let mut builder = Response::builder().status(status);
    let mut has_type = false;
    for (name, value) in &record.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            has_type |= name == axum::http::header::CONTENT_TYPE;
            builder = builder.header(name, value);
        }
    }
    let body = match record.body {
        Value::Null => Body::empty(),
        Value::String(text) if has_type => Body::from(text),
        other => {
            if !has_type {
                builder = builder.header(axum::http::header::CONTENT_TYPE, "application/json");
            }
            Body::from(serde_json::to_vec(&other).unwrap_or_default())
        }
    };
    builder.body(body).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Checks a Partner Center event; `None` for events the flow does not take (acknowledged).
async fn verify_partner_center(
    state: &Arc<State>,
    connection: &str,
    events: &[String],
    headers: &HeaderMap,
    raw: &Bytes,
) -> Result<Option<(Value, Option<String>, String)>, Refusal> {
    let connector = state.connections.partner_center.get(connection).ok_or_else(|| {
        let reason =
            format!("connection `{connection}` is not a Partner Center connection in the connections file");
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    })?;
    let verified =
        webhook::verify(headers, raw, connector.verifier_config(), &state.cert_cache).await.map_err(|e| {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            Refusal::new(status, e.to_string())
        })?;
    let wanted = events.is_empty() || events.iter().any(|e| e.eq_ignore_ascii_case(&verified.event_name));
    if !wanted {
        return Ok(None);
    }
    let body = verified.trigger_body();
    Ok(Some((body, Some(verified.dedup_key), "partner_center.webhook".to_string())))
}

/// The request body as JSON (an empty body is `null`).
fn json_body(headers: &HeaderMap, raw: &Bytes) -> Result<Value, Refusal> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = header_text(headers, "content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/json" && !media.ends_with("+json") {
        let shown = if media.is_empty() { "none".to_string() } else { format!("`{media}`") };
        let reason =
            format!("the body must be JSON sent with `Content-Type: application/json` (got {shown})");
        return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason));
    }
    serde_json::from_slice(raw)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))
}

/// Validates the body against the trigger's `schema`, if it has one.
fn check_schema(state: &State, flow: &crate::flow::Flow, body: &Value) -> Result<(), Refusal> {
    let Some(schema) = flow.trigger.settings.get("schema") else { return Ok(()) };
    let validator = state.schemas.validator(&flow.name, schema).map_err(|e| {
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the trigger's schema does not compile: {e}"))
    })?;
    let problems: Vec<String> = validator
        .iter_errors(body)
        .take(10)
        .map(|error| {
            let at = error.instance_path().to_string();
            if at.is_empty() { error.to_string() } else { format!("{at}: {error}") }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let reason = format!("the body does not match the trigger's schema: {}", problems.join("; "));
    Err(Refusal::new(StatusCode::BAD_REQUEST, reason))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Headers worth keeping with the event, minus credentials.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !SECRET_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_string(), v.to_string())))
        .collect()
}

/// Whether a `response` action answers the triggering request.
pub fn has_response(block: &Block) -> bool {
    block.actions.iter().any(|action| match &action.kind {
        ActionKind::Response { .. } => true,
        kind => kind.blocks().into_iter().any(has_response),
    })
}

async fn refuse(
    state: &Arc<State>,
    refusal: Refusal,
    headers: &HeaderMap,
    raw: Bytes,
    received_at: jiff::Timestamp,
) -> Response {
    let id = Uuid::now_v7();
    if let Some(flow) = &refusal.flow {
        state.metrics.event(flow, "rejected");
    }
    let kept = raw.slice(..raw.len().min(KEPT_REJECTED_BODY)).to_vec();
    let rejected = RejectedEvent {
        id,
        flow: refusal.flow.clone(),
        source: "webhook".into(),
        received_at,
        headers: kept_headers(headers),
        body: kept,
        status: refusal.status.as_u16(),
        reason: refusal.reason.clone(),
    };
    if let Err(err) = state.store.reject_event(rejected).await {
        tracing::warn!(error = %err, "cannot keep a refused event");
    }
    let body = json!({"error": refusal.reason, "status": refusal.status.as_u16(), "rejected_id": id});
    (refusal.status, axum::Json(body)).into_response()
}
