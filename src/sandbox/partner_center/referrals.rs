//! The Referrals API (reference §2): create, get, list, PUT with `If-Match`, JSON Patch.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::{
    PartnerCenter, Store,
    auth::{self, Caller, REFERRALS_RESOURCE},
    delivery::{self, Event},
    error::{ApiError, ReferralsError},
    format_time,
    json_patch::{PatchOp, apply_patch},
    list::list,
    model::{
        Origin, READ_ONLY, deep_merge, fill_incoming_defaults, initial_status, new_etag, normalise,
        require_parts, set, settable_on_create, status_effects, status_pair, str_field, template,
        transition_error, truncate, validate,
    },
    state_machine,
};

type ApiResult = Result<Response, ReferralsError>;

/// The referral routes, including `/v1.0/referrals` where next links point.
pub fn routes() -> Router<Arc<PartnerCenter>> {
    Router::new()
        .route("/v1.0/engagements/referrals", get(list).post(create))
        .route("/v1.0/engagements/referrals/{id}", get(get_one).put(replace).patch(patch))
        // The connector's deal-registration operation uses a trailing slash.
        .route("/v1.0/engagements/referrals/{id}/", axum::routing::patch(patch))
        .route("/v1.0/referrals", get(list))
}

impl PartnerCenter {
    /// The time of a write: never earlier than, nor equal to, the previous write, and cut to the
    /// 100 ns precision of the wire format so stored and sent times compare equal.
    pub(crate) fn write_time(&self, store: &mut Store) -> Timestamp {
        let now = truncate(self.clock.now());
        let time = match store.last_write {
            Some(last) if now <= last => last.checked_add(SignedDuration::from_nanos(100)).unwrap_or(now),
            _ => now,
        };
        store.last_write = Some(time);
        time
    }

    fn links(&self, id: &str, engagement_id: &str) -> Value {
        let base = format!("{}/v1.0/engagements/referrals", self.config.base());
        json!({
            "relatedReferrals": {"uri": format!("{base}?$filter=engagementId eq '{engagement_id}'"), "method": "GET"},
            "self": {"uri": format!("{base}/{id}"), "method": "GET"}
        })
    }

    /// Builds a stored referral from a create request, filling what the server sets.
    pub(crate) fn new_referral(
        &self,
        store: &mut Store,
        body: Value,
        origin: Origin,
    ) -> Result<Value, ApiError> {
        let mut referral = requested_referral(body, origin)?;
        let (status, substatus) = initial_status(&referral, origin)?;
        let now = self.write_time(store);
        set(&mut referral, "status", status);
        set(&mut referral, "substatus", substatus);
        self.stamp_new(&mut referral, now, origin);
        Ok(referral)
    }

    /// Sets what the server owns on a new referral: ids, times, eTag, links, owner, direction.
    fn stamp_new(&self, referral: &mut Value, now: Timestamp, origin: Origin) {
        let id = uuid::Uuid::new_v4().to_string();
        let engagement_id = str_field(referral, "engagementId")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let stamp = format_time(now);
        set(referral, "id", id.clone());
        set(referral, "engagementId", engagement_id.clone());
        set(referral, "createdDateTime", stamp.clone());
        set(referral, "updatedDateTime", stamp.clone());
        set(referral, "eTag", new_etag(now));
        set(referral, "links", self.links(&id, &engagement_id));
        for (key, value) in [
            ("organizationId", &self.config.organization_id),
            ("organizationName", &self.config.organization_name),
            ("mpnId", &self.config.mpn_id),
        ] {
            if referral.get(key).is_none_or(Value::is_null) {
                set(referral, key, value.clone());
            }
        }
        let incoming = origin == Origin::Microsoft;
        set(referral, "direction", if incoming { "Incoming" } else { "Outgoing" });
        if incoming && str_field(referral, "status") == Some("New") {
            let ttl = SignedDuration::try_from(self.config.expire_after).unwrap_or(SignedDuration::ZERO);
            set(referral, "expirationDateTime", format_time(now.checked_add(ttl).unwrap_or(now)));
        }
        status_effects(referral, None, &stamp);
    }
}

/// The referral a create body asks for: known, client-settable fields over the full template.
fn requested_referral(body: Value, origin: Origin) -> Result<Value, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::bad("The request body must be a referral object.", "body"));
    };
    if origin == Origin::Partner {
        require_parts(&body)?;
    }
    let mut referral = template();
    // Unknown properties are ignored and read-only ones are the server's to set.
    let known: Map<String, Value> = body.into_iter().filter(|(k, _)| settable_on_create(k, origin)).collect();
    deep_merge(&mut referral, Value::Object(known));
    if origin == Origin::Microsoft {
        fill_incoming_defaults(&mut referral);
    }
    normalise(&mut referral);
    validate(&referral)?;
    Ok(referral)
}

/// Whether the caller may see the referral (a Referral User sees only their team's).
pub(crate) fn visible(caller: &Caller, referral: &Value) -> bool {
    let Some(email) = caller.restricted_to() else {
        return true;
    };
    referral.get("team").and_then(Value::as_array).is_some_and(|team| {
        team.iter().any(|member| {
            member.get("email").and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Referral '{id}' was not found."))
}

fn writer(pc: &PartnerCenter, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = auth::authenticate(pc, headers, REFERRALS_RESOURCE)?;
    if !caller.can_write() {
        return Err(ApiError::Forbidden(
            "Creating and updating referrals needs the Referral Admin role.".into(),
        ));
    }
    Ok(caller)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("The request body is not valid JSON: {e}."), "body"))
}

async fn create(State(pc): State<Arc<PartnerCenter>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    writer(&pc, &headers)?;
    expire_due(&pc);
    let request_id = headers.get("ms-requestid").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = parse_json(&body)?;
    let (status, referral, events) = {
        let mut store = pc.lock_store();
        if let Some((status, replay)) = request_id.as_ref().and_then(|id| store.replays.get(id)) {
            // The same MS-RequestId is a retry of the same call: answer it again, create nothing.
            return Ok(respond(*status, replay.clone()));
        }
        let referral = pc.new_referral(&mut store, body, Origin::Partner)?;
        let id = str_field(&referral, "id").unwrap_or_default().to_owned();
        store.referrals.insert(id.clone(), referral.clone());
        let status = pc.config.create_status;
        if let Some(request_id) = request_id {
            store.replays.insert(request_id, (status, referral.clone()));
        }
        let changed = store.last_write.unwrap_or_else(|| pc.clock.now());
        let events = vec![Event::referral(&pc, &referral, true, changed)];
        (status, referral, events)
    };
    delivery::emit(&pc, events);
    Ok(respond(status, referral))
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
    (status, Json(body)).into_response()
}

async fn get_one(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let caller = auth::authenticate(&pc, &headers, REFERRALS_RESOURCE)?;
    expire_due(&pc);
    let store = pc.lock_store();
    let referral = store.referrals.get(&id).filter(|r| visible(&caller, r)).ok_or_else(|| not_found(&id))?;
    Ok(Json(referral.clone()).into_response())
}

/// How `If-Match` is to be checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IfMatch<'a> {
    /// Not checked (admin changes).
    Skip,
    /// Checked when present (PATCH).
    Optional(Option<&'a str>),
    /// Must be present and current (PUT).
    Required(Option<&'a str>),
}

fn check_if_match(expected: IfMatch<'_>, current: &str) -> Result<(), ApiError> {
    let given = match expected {
        IfMatch::Skip | IfMatch::Optional(None) => return Ok(()),
        IfMatch::Required(None) => {
            return Err(ApiError::bad(
                "The If-Match header is required; send the referral's current eTag (quotes included).",
                "If-Match",
            ));
        }
        IfMatch::Optional(Some(given)) | IfMatch::Required(Some(given)) => given.trim(),
    };
    // [inferred] The quotes are part of the eTag; a value sent without them is accepted too.
    let bare = |s: &str| s.trim_matches('"').to_owned();
    if given == "*" || given == current || bare(given) == bare(current) {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

/// Applies a change to a stored referral: checks `If-Match`, the result and the status move,
/// then stamps a new eTag and `updatedDateTime` and emits `referral-updated`.
pub(crate) fn update(
    pc: &Arc<PartnerCenter>,
    id: &str,
    caller: Option<&Caller>,
    if_match: IfMatch<'_>,
    change: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let referral = {
        let mut store = pc.lock_store();
        let current = store
            .referrals
            .get(id)
            .filter(|r| caller.is_none_or(|c| visible(c, r)))
            .ok_or_else(|| not_found(id))?
            .clone();
        let owner = str_field(&current, "organizationId");
        if caller.is_some() && owner.is_some_and(|o| o != pc.config.organization_id) {
            return Err(ApiError::Forbidden(format!(
                "Referral '{id}' belongs to {}; only its owner can change it.",
                str_field(&current, "organizationName").or(owner).unwrap_or_default()
            )));
        }
        check_if_match(if_match, str_field(&current, "eTag").unwrap_or_default())?;
        let mut next = change(&current)?;
        normalise(&mut next);
        for key in READ_ONLY {
            if let Some(value) = current.get(key) {
                set(&mut next, key, value.clone());
            }
        }
        validate(&next)?;
        let before = status_pair(&current).ok();
        let after = status_pair(&next)?;
        match &before {
            Some((status, substatus)) => {
                state_machine::check_transition((status, substatus), (&after.0, &after.1))
            }
            None => state_machine::check_pair(&after.0, &after.1),
        }
        .map_err(transition_error)?;
        let now = pc.write_time(&mut store);
        let stamp = format_time(now);
        status_effects(&mut next, before.as_ref().map(|b| b.0.as_str()), &stamp);
        set(&mut next, "updatedDateTime", stamp);
        set(&mut next, "eTag", new_etag(now));
        store.referrals.insert(id.to_owned(), next.clone());
        next
    };
    let changed = pc.lock_store().last_write.unwrap_or_else(|| pc.clock.now());
    delivery::emit(pc, vec![Event::referral(pc, &referral, false, changed)]);
    Ok(referral)
}

async fn replace(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let caller = writer(&pc, &headers)?;
    expire_due(&pc);
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let body = parse_json(&body)?;
    if !body.is_object() {
        return Err(ApiError::bad("The request body must be a referral object.", "body").into());
    }
    if body.get("links").is_some() {
        return Err(ApiError::bad(
            "Remove the 'links' object from the body of a PUT; it is read-only.",
            "links",
        )
        .into());
    }
    if let Some(map) = body.as_object() {
        require_parts(map)?;
    }
    let referral = update(&pc, &id, Some(&caller), IfMatch::Required(if_match), |_| {
        // PUT replaces every writable field: what the body leaves out becomes empty.
        let mut next = template();
        deep_merge(&mut next, body);
        Ok(next)
    })?;
    Ok(Json(referral).into_response())
}

async fn patch(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let caller = writer(&pc, &headers)?;
    expire_due(&pc);
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let ops: Vec<PatchOp> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            format!("The body must be a JSON Patch array like [{{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"Closed\"}}]: {e}."),
            "body",
        )
    })?;
    let now_stamp = format_time(pc.clock.now());
    let referral = update(&pc, &id, Some(&caller), IfMatch::Optional(if_match), |current| {
        apply_patch(current, &ops, &now_stamp)
    })?;
    let wants_body = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.to_ascii_lowercase().contains("return=representation"));
    if wants_body { Ok(Json(referral).into_response()) } else { Ok(StatusCode::NO_CONTENT.into_response()) }
}

/// Closes incoming referrals left unanswered past `expire_after` as `Closed/Expired`.
pub fn expire_due(pc: &Arc<PartnerCenter>) {
    let now = pc.clock.now();
    let due: Vec<String> = pc
        .lock_store()
        .referrals
        .iter()
        .filter(|(_, r)| {
            str_field(r, "direction") == Some("Incoming") && str_field(r, "status") == Some("New")
        })
        .filter(|(_, r)| {
            str_field(r, "expirationDateTime")
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t <= now)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        let result = update(pc, &id, None, IfMatch::Skip, |current| {
            let mut next = current.clone();
            set(&mut next, "status", "Closed");
            set(&mut next, "substatus", "Expired");
            Ok(next)
        });
        if let Err(error) = result {
            tracing::warn!(%error, referral = %id, "could not expire referral");
        }
    }
}
