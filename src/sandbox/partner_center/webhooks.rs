//! Webhook registration API (reference §3.1), on the Partner Center REST audience and error shape.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    PartnerCenter,
    auth::{self, REST_RESOURCE},
    delivery::{self, DeliveryState, Event},
    error::{ApiError, RestError},
};

/// Events this Partner Center can send.
pub const SUPPORTED_EVENTS: [&str; 5] = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
    "test-created",
];

/// The partner's registration: one URL for every registered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// Id returned on create and update.
    pub subscriber_id: String,
    /// Where events go.
    pub url: String,
    /// Registered event names.
    pub events: Vec<String>,
    /// Send the signature in `x-ms-signature` instead of `Authorization`.
    pub ms_signature_header: bool,
}

/// Body of register and update calls.
#[derive(Debug, Deserialize)]
struct RegistrationBody {
    #[serde(rename = "WebhookUrl", alias = "webhookUrl")]
    url: Option<String>,
    #[serde(rename = "WebhookEvents", alias = "webhookEvents", default)]
    events: Vec<String>,
    #[serde(
        rename = "SignatureTokenToMsSignatureHeader",
        alias = "signatureTokenToMsSignatureHeader",
        default
    )]
    ms_signature_header: bool,
}

type RestResult = Result<Response, RestError>;

/// The registration routes.
pub fn routes() -> Router<Arc<PartnerCenter>> {
    Router::new()
        .route("/webhooks/v1/registration", get(view).post(register).put(update).delete(remove))
        .route("/webhooks/v1/registration/events", get(events))
        .route("/webhooks/v1/registration/validationEvents", axum::routing::post(post_validation))
        .route("/webhooks/v1/registration/validationEvents/{correlation_id}", get(get_validation))
}

fn authorize(pc: &PartnerCenter, headers: &HeaderMap) -> Result<(), RestError> {
    auth::authenticate(pc, headers, REST_RESOURCE)?;
    Ok(())
}

async fn events(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap) -> RestResult {
    authorize(&pc, &headers)?;
    Ok(Json(SUPPORTED_EVENTS).into_response())
}

async fn view(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap) -> RestResult {
    authorize(&pc, &headers)?;
    let registration = pc.lock_store().registration.clone().ok_or_else(|| {
        ApiError::NotFound(
            "No webhook registration exists for this partner; register with POST /webhooks/v1/registration."
                .into(),
        )
    })?;
    Ok(Json(json!({"WebhookUrl": registration.url, "WebhookEvents": registration.events})).into_response())
}

async fn register(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap, body: String) -> RestResult {
    authorize(&pc, &headers)?;
    let body = parse_body(&body)?;
    let mut store = pc.lock_store();
    // [inferred] A second registration is refused; the update call replaces one.
    if store.registration.is_some() {
        return Err(ApiError::Conflict(
            "A webhook registration already exists for this partner; update it with PUT /webhooks/v1/registration.".into(),
        )
        .into());
    }
    let registration = into_registration(body, uuid::Uuid::new_v4().to_string())?;
    store.registration = Some(registration.clone());
    Ok(registration_response(&registration))
}

async fn update(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap, body: String) -> RestResult {
    authorize(&pc, &headers)?;
    let body = parse_body(&body)?;
    let mut store = pc.lock_store();
    let subscriber_id = store
        .registration
        .as_ref()
        .map(|r| r.subscriber_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let registration = into_registration(body, subscriber_id)?;
    store.registration = Some(registration.clone());
    Ok(registration_response(&registration))
}

/// Not a Microsoft operation (no source documents it); offered so tests can unregister.
async fn remove(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap) -> RestResult {
    authorize(&pc, &headers)?;
    match pc.lock_store().registration.take() {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::NotFound("No webhook registration exists for this partner.".into()).into()),
    }
}

fn parse_body(body: &str) -> Result<RegistrationBody, RestError> {
    serde_json::from_str(body).map_err(|e| {
        ApiError::bad(
            format!("The request body is not a registration ({e}); send {{\"WebhookUrl\": \"https://...\", \"WebhookEvents\": [\"referral-created\"]}}."),
            "body",
        )
        .into()
    })
}

fn into_registration(body: RegistrationBody, subscriber_id: String) -> Result<Registration, RestError> {
    let url = body
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad("WebhookUrl is required.", "WebhookUrl"))?;
    match url::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        _ => {
            return Err(ApiError::bad(
                format!("WebhookUrl '{url}' is not an absolute http(s) URL."),
                "WebhookUrl",
            )
            .into());
        }
    }
    if body.events.is_empty() {
        return Err(ApiError::bad(
            "WebhookEvents must name at least one event; GET /webhooks/v1/registration/events lists them.",
            "WebhookEvents",
        )
        .into());
    }
    if let Some(unknown) = body.events.iter().find(|e| !SUPPORTED_EVENTS.contains(&e.as_str())) {
        return Err(ApiError::bad(
            format!("'{unknown}' is not a supported event; GET /webhooks/v1/registration/events lists them."),
            "WebhookEvents",
        )
        .into());
    }
    let mut events = body.events;
    events.dedup();
    Ok(Registration { subscriber_id, url, events, ms_signature_header: body.ms_signature_header })
}

fn registration_response(registration: &Registration) -> Response {
    Json(json!({
        "SubscriberId": registration.subscriber_id,
        "WebhookUrl": registration.url,
        "WebhookEvents": registration.events,
    }))
    .into_response()
}

async fn post_validation(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap) -> RestResult {
    authorize(&pc, &headers)?;
    let now = pc.clock.now();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    {
        let mut store = pc.lock_store();
        let registered =
            store.registration.as_ref().is_some_and(|r| r.events.iter().any(|e| e == "test-created"));
        if !registered {
            return Err(ApiError::bad(
                "Register for the test-created event before posting validation events.",
                "WebhookEvents",
            )
            .into());
        }
        let minute_ago = now.saturating_sub(jiff::SignedDuration::from_mins(1)).unwrap_or(now);
        store.validation_posts.retain(|t| *t > minute_ago);
        if store.validation_posts.len() >= pc.config.validation_events_per_minute {
            let oldest = store.validation_posts.first().copied().unwrap_or(now);
            let wait = 60 - now.duration_since(oldest).as_secs().clamp(0, 59);
            return Err(ApiError::Throttled(wait.max(1) as u64).into());
        }
        store.validation_posts.push(now);
    }
    let event = Event {
        name: "test-created",
        resource_name: "test",
        resource_uri: format!(
            "{}/webhooks/v1/registration/validationEvents/{correlation_id}",
            pc.config().base()
        ),
        changed: now,
        correlation_id: Some(correlation_id.clone()),
    };
    delivery::emit(&pc, vec![event]);
    Ok(Json(json!({"correlationId": correlation_id})).into_response())
}

async fn get_validation(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    Path(correlation_id): Path<String>,
) -> RestResult {
    authorize(&pc, &headers)?;
    let delivery = pc.deliveries.by_correlation(&correlation_id).ok_or_else(|| {
        ApiError::NotFound(format!("No validation event with correlation id {correlation_id}."))
    })?;
    let results: Vec<Value> = delivery
        .attempts
        .iter()
        .map(|attempt| {
            let code = attempt
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .map(|reason| reason.replace([' ', '-'], ""))
                .unwrap_or_default();
            json!({
                "responseCode": code,
                "responseMessage": attempt.error.clone().unwrap_or_default(),
                "systemError": attempt.status.is_none(),
                "dateTimeUtc": attempt.at.trim_end_matches('Z'),
            })
        })
        .collect();
    let status = match delivery.state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered | DeliveryState::Failed => "completed",
    };
    Ok(Json(json!({
        "correlationId": correlation_id,
        "partnerId": pc.config().organization_id,
        "status": status,
        "callbackUrl": delivery.url,
        "results": results,
    }))
    .into_response())
}
