//! Test controls under `/__sandbox/` (no token needed, never faulted).
//!
//! | route | what |
//! |---|---|
//! | `GET /__sandbox/snapshot` | every referral, the registration, the deliveries, the emulated time |
//! | `POST /__sandbox/reset` | back to the start state (seed file reloaded); issued tokens stay valid |
//! | `POST /__sandbox/seed` | add referrals as stored (array or `{"value": [...]}`), no events |
//! | `POST /__sandbox/referrals` | Microsoft shares a referral: incoming, `New/Pending`, emits `referral-created` |
//! | `PATCH /__sandbox/referrals/{id}` | a Partner Center user edits it (JSON Patch array or a partial object to merge); emits `referral-updated` |
//! | `GET/DELETE /__sandbox/deliveries` | webhook deliveries with every attempt |
//! | `GET/POST /__sandbox/clock` | emulated time; `{"advance": "15d"}` moves it (units ms, s, m, h, d) |

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use jiff::SignedDuration;
use serde_json::{Value, json};

use super::{
    PartnerCenter,
    delivery::{self, Event},
    error::{ApiError, ReferralsError, RestError, TokenError},
    format_time,
    referrals::{self, IfMatch, Origin, PatchOp},
};
use crate::sandbox::faults::{self, InjectedFault, InjectedKind};

/// The admin routes.
pub fn routes() -> Router<Arc<PartnerCenter>> {
    Router::new()
        .route("/__sandbox/snapshot", get(snapshot))
        .route("/__sandbox/reset", post(reset))
        .route("/__sandbox/seed", post(seed_route))
        .route("/__sandbox/referrals", post(share_referral))
        .route("/__sandbox/referrals/{id}", patch(edit_referral))
        .route("/__sandbox/deliveries", get(deliveries).delete(clear_deliveries))
        .route("/__sandbox/clock", get(clock).post(advance_clock))
}

async fn snapshot(State(pc): State<Arc<PartnerCenter>>) -> Json<Value> {
    let store = pc.lock_store();
    Json(json!({
        "now": format_time(pc.clock.now()),
        "referrals": store.referrals.values().collect::<Vec<_>>(),
        "registration": store.registration,
        "deliveries": pc.deliveries.all(),
    }))
}

async fn reset(State(pc): State<Arc<PartnerCenter>>) -> Response {
    *pc.lock_store() = super::Store::default();
    pc.deliveries.clear();
    pc.clock.reset();
    match pc.load_seed_file() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error.to_string()}))).into_response()
        }
    }
}

/// Adds referrals as given (ids, times and statuses kept when present); emits no events.
pub fn seed(pc: &PartnerCenter, value: Value) -> Result<usize, ApiError> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("value") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::bad(
                    "Seed data must be an array of referrals or a list body with 'value'.",
                    "value",
                ));
            }
        },
        _ => {
            return Err(ApiError::bad(
                "Seed data must be an array of referrals or a list body with 'value'.",
                "value",
            ));
        }
    };
    let mut store = pc.lock_store();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let referral = seeded(pc, &mut store, item)
            .map_err(|e| ApiError::bad(format!("seed referral {index}: {e}"), format!("[{index}]")))?;
        let id = referral.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        store.referrals.insert(id, referral);
    }
    Ok(count)
}

fn seeded(pc: &PartnerCenter, store: &mut super::Store, item: Value) -> Result<Value, ApiError> {
    if !item.is_object() {
        return Err(ApiError::bad("each seed referral must be an object", "body"));
    }
    let now = format_time(pc.write_time(store));
    let mut referral = referrals::template();
    referrals::deep_merge(&mut referral, item);
    referrals::normalise(&mut referral);
    let id = text_or(&referral, "id", || uuid::Uuid::new_v4().to_string());
    let engagement = text_or(&referral, "engagementId", || uuid::Uuid::new_v4().to_string());
    let fill = [
        ("id", id.clone()),
        ("engagementId", engagement.clone()),
        ("createdDateTime", now.clone()),
        ("updatedDateTime", now),
        ("eTag", format!("\"{}\"", uuid::Uuid::new_v4())),
        ("status", "New".to_owned()),
        ("substatus", "Pending".to_owned()),
        ("type", "Shared".to_owned()),
        ("direction", "Incoming".to_owned()),
    ];
    if let Some(map) = referral.as_object_mut() {
        for (key, value) in fill {
            if map.get(key).is_none_or(Value::is_null) {
                map.insert(key.to_owned(), value.into());
            }
        }
        if map.get("links").is_none_or(|l| l.get("self").is_none_or(Value::is_null)) {
            let base = format!("{}/v1.0/engagements/referrals", pc.config.base());
            map.insert("links".into(), json!({
                "relatedReferrals": {"uri": format!("{base}?$filter=engagementId eq '{engagement}'"), "method": "GET"},
                "self": {"uri": format!("{base}/{id}"), "method": "GET"}
            }));
        }
    }
    referrals::validate(&referral)?;
    let status = |k: &str| referral.get(k).and_then(Value::as_str).unwrap_or_default();
    super::state_machine::check_pair(status("status"), status("substatus"))
        .map_err(|e| ApiError::bad(e.to_string(), "status"))?;
    Ok(referral)
}

fn text_or(value: &Value, key: &str, default: impl FnOnce() -> String) -> String {
    value.get(key).and_then(Value::as_str).map(str::to_owned).unwrap_or_else(default)
}

async fn seed_route(State(pc): State<Arc<PartnerCenter>>, body: Bytes) -> Result<Response, ReferralsError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("The seed body is not valid JSON: {e}."), "body"))?;
    let count = seed(&pc, value)?;
    Ok((StatusCode::CREATED, Json(json!({"loaded": count}))).into_response())
}

async fn share_referral(
    State(pc): State<Arc<PartnerCenter>>,
    body: Bytes,
) -> Result<Response, ReferralsError> {
    let value: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("The body is not valid JSON: {e}."), "body"))?
    };
    let (referral, event) = {
        let mut store = pc.lock_store();
        let referral = pc.new_referral(&mut store, value, Origin::Microsoft)?;
        let id = text_or(&referral, "id", String::new);
        store.referrals.insert(id.clone(), referral.clone());
        let changed = store.last_write.unwrap_or_else(|| pc.clock.now());
        (referral, Event::referral(&pc, "referral-created", &id, changed))
    };
    delivery::emit(&pc, vec![event]);
    Ok((StatusCode::CREATED, Json(referral)).into_response())
}

async fn edit_referral(
    State(pc): State<Arc<PartnerCenter>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ReferralsError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("The body is not valid JSON: {e}."), "body"))?;
    let now = format_time(pc.clock.now());
    let referral = referrals::update(&pc, &id, None, IfMatch::Skip, |current| match value {
        Value::Array(_) => {
            let ops: Vec<PatchOp> = serde_json::from_value(value)
                .map_err(|e| ApiError::bad(format!("Not a JSON Patch array: {e}."), "body"))?;
            referrals::apply_patch(current, &ops, &now)
        }
        partial => {
            let mut next = current.clone();
            referrals::deep_merge(&mut next, partial);
            Ok(next)
        }
    })?;
    Ok(Json(referral).into_response())
}

async fn deliveries(State(pc): State<Arc<PartnerCenter>>) -> Json<Value> {
    Json(json!({"value": pc.deliveries.all()}))
}

async fn clear_deliveries(State(pc): State<Arc<PartnerCenter>>) -> StatusCode {
    pc.deliveries.clear();
    StatusCode::NO_CONTENT
}

async fn clock(State(pc): State<Arc<PartnerCenter>>) -> Json<Value> {
    Json(json!({"now": format_time(pc.clock.now())}))
}

async fn advance_clock(State(pc): State<Arc<PartnerCenter>>, body: Bytes) -> Response {
    let advance = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("advance").and_then(Value::as_str).and_then(parse_span));
    let Some(by) = advance else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "send {\"advance\": \"15d\"} (units ms, s, m, h, d)"})),
        )
            .into_response();
    };
    pc.clock.advance(by);
    referrals::expire_due(&pc);
    clock(State(pc)).await.into_response()
}

fn parse_span(text: &str) -> Option<SignedDuration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(SignedDuration::from_millis(number)),
        "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        "d" => number.checked_mul(86_400)?,
        _ => return None,
    };
    Some(SignedDuration::from_secs(seconds))
}

/// Answers an injected fault in the shape of the API it hit.
pub async fn render_fault(fault: Option<Extension<InjectedFault>>) -> Response {
    let Some(Extension(fault)) = fault else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let error = match fault.kind {
        InjectedKind::TokenExpired => ApiError::Unauthorized(
            "The access token has expired; get a new one with the refresh token.".into(),
        ),
        InjectedKind::Status { status: 429, retry_after } => ApiError::Throttled(retry_after.unwrap_or(1)),
        InjectedKind::Status { status, retry_after } => ApiError::Status {
            status,
            message: StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error")
                .to_owned(),
            retry_after,
        },
    };
    let response = if fault.path.contains("/oauth2/") {
        token_fault(&fault)
    } else if fault.path.starts_with("/webhooks/") {
        RestError(error).into_response()
    } else {
        ReferralsError(error).into_response()
    };
    faults::rendered(response)
}

fn token_fault(fault: &InjectedFault) -> Response {
    let InjectedKind::Status { status, retry_after } = fault.kind else {
        return TokenError::new("invalid_grant", 700082, "The refresh token has expired due to inactivity.")
            .into_response();
    };
    let mut error = TokenError::new(
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
    );
    error.status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    faults::with_retry_after(error.into_response(), retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    #[test]
    fn spans() {
        assert_eq!(parse_span("15d"), Some(SignedDuration::from_hours(360)));
        assert_eq!(parse_span("250ms"), Some(SignedDuration::from_millis(250)));
        assert_eq!(parse_span("2w"), None);
        assert_eq!(parse_span("d"), None);
    }

    #[test]
    fn format_has_seven_digits() {
        let ts: Timestamp = "2024-02-24T21:04:06.0372014Z".parse().unwrap();
        assert_eq!(format_time(ts), "2024-02-24T21:04:06.0372014Z");
    }
}
