//! The Referrals API (reference §2): create, get, list, PUT with `If-Match`, JSON Patch.

use std::sync::{Arc, LazyLock};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    PartnerCenter, Store,
    auth::{self, Caller, REFERRALS_RESOURCE},
    delivery::{self, Event},
    error::{ApiError, ReferralsError},
    format_time, odata, state_machine,
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

/// Every field of a referral, in the order Partner Center returns them, with empty values.
pub fn template() -> Value {
    TEMPLATE.clone()
}

static TEMPLATE: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(TEMPLATE_JSON).unwrap_or(Value::Null));

const TEMPLATE_JSON: &str = r#"{
    "id": null, "engagementId": null, "name": null, "organizationId": null,
    "organizationName": null, "lastModifiedVia": null, "lastRunId": null,
    "externalReferenceId": null, "createdDateTime": null, "updatedDateTime": null,
    "expirationDateTime": null, "status": null, "substatus": null, "statusReason": null,
    "qualification": null, "type": null, "referralSource": null, "eTag": null,
    "favorite": false, "campaignId": null, "salesStage": null, "quality": "Unknown",
    "isSpam": false, "direction": null, "mpnId": null, "referralProgram": null,
    "dealSensitivity": "None", "createdVia": null, "tags": [], "acceptedDateTime": null,
    "closedDateTime": null, "callToAction": null, "registrationStatus": "None",
    "target": [],
    "customerProfile": {
        "name": null, "size": null, "isMatchingComplete": false,
        "address": {"addressLine1": null, "addressLine2": null, "city": null, "state": null,
                    "postalCode": null, "country": null, "region": null},
        "team": [], "ids": []
    },
    "consent": {
        "consentToToShareInfoWithOthers": null, "consentToContact": null,
        "consentToMicrosoftToContactSpecificPartners": null,
        "consentToShareReferralWithMicrosoftSellers": null
    },
    "details": {
        "notes": null, "dealValue": null, "currency": null, "closingDateTime": null,
        "customerRequestedContact": null, "customerAction": null, "incentiveLevel": null,
        "requirements": {
            "industries": [], "products": [], "services": [], "solutions": [], "offers": [],
            "salesPlays": [],
            "additionalRequirements": {
                "iot": {"customerLicenseAgreementNumber": null, "deviceCategory": null,
                        "siliconType": null, "azureCertifiedDevice": false, "attachServices": false},
                "attributes": []
            }
        }
    },
    "team": [],
    "inviteContext": {
        "notes": null, "assistanceRequestCode": null, "invitedMpnId": null,
        "invitedBy": {"organizationId": null, "organizationName": null}
    },
    "links": {"relatedReferrals": null, "self": null},
    "trackingInfo": {
        "microsoftMsxId": null, "microsoftUSFedOpportunityId": null,
        "microsoftUSFedLeadId": null, "migratedPSCDealId": null, "migratedPSCPartnerDealId": null
    },
    "registrations": []
}"#;

/// Fields the server sets; a client cannot change them.
const READ_ONLY: [&str; 13] = [
    "id",
    "engagementId",
    "createdDateTime",
    "updatedDateTime",
    "expirationDateTime",
    "acceptedDateTime",
    "closedDateTime",
    "eTag",
    "links",
    "direction",
    "quality",
    "isSpam",
    "organizationId",
];

/// Whether `name` is a top-level referral property.
pub fn is_field(name: &str) -> bool {
    template().get(name).is_some()
}

/// Element shapes of the typed arrays, in the order Partner Center serialises their fields.
const ELEMENTS: [(&str, &str); 9] = [
    ("/team", MEMBER),
    ("/customerProfile/team", MEMBER),
    ("/customerProfile/ids", r#"{"profileType": null, "id": null}"#),
    ("/target", r#"{"type": null, "id": null}"#),
    ("/details/requirements/industries", r#"{"id": null}"#),
    ("/details/requirements/products", r#"{"id": null}"#),
    ("/details/requirements/services", r#"{"id": null}"#),
    (
        "/details/requirements/solutions",
        r#"{"id": null, "name": null, "type": null, "price": null, "quantity": null, "currency": null, "publisherName": null, "solutionType": null, "closingDateTime": null}"#,
    ),
    ("/details/requirements/additionalRequirements/attributes", r#"{"type": null, "id": null}"#),
];

const MEMBER: &str = r#"{"firstName": null, "lastName": null, "phoneNumber": null, "email": null, "title": null, "contactPreference": {"locale": null, "disableNotifications": null}}"#;

/// Gives every element of the typed arrays all of its fields, as the service's serializer does.
pub fn normalise(referral: &mut Value) {
    for (pointer, shape) in ELEMENTS {
        let Ok(shape) = serde_json::from_str::<Value>(shape) else {
            continue;
        };
        let Some(Value::Array(items)) = referral.pointer_mut(pointer) else {
            continue;
        };
        for item in items.iter_mut().filter(|item| item.is_object()) {
            let mut full = shape.clone();
            deep_merge(&mut full, item.take());
            *item = full;
        }
    }
}

/// Who a referral is created for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The partner, through the API: an outgoing referral.
    Partner,
    /// Microsoft (or another partner) inviting this partner: an incoming referral.
    Microsoft,
}

/// Copies `patch` onto `base`: objects merge key by key, anything else replaces.
pub fn deep_merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) if slot.is_object() && value.is_object() => deep_merge(slot, value),
                    Some(slot) => *slot = value,
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn str_field<'a>(referral: &'a Value, key: &str) -> Option<&'a str> {
    referral.get(key).and_then(Value::as_str)
}

fn set(referral: &mut Value, key: &str, value: impl Into<Value>) {
    if let Some(map) = referral.as_object_mut() {
        map.insert(key.to_owned(), value.into());
    }
}

/// Checks that a request body carries the parts the service requires (reference §2.3).
pub fn require_parts(body: &Value) -> Result<(), ApiError> {
    if body.get("type").is_none_or(Value::is_null) {
        return Err(ApiError::bad("The referral must include 'type' (Independent or Shared).", "type"));
    }
    for part in ["customerProfile", "consent", "details"] {
        if !body.get(part).is_some_and(Value::is_object) {
            return Err(ApiError::bad(format!("The referral must include '{part}' as an object."), part));
        }
    }
    Ok(())
}

/// Checks the enumerations and shapes the service knows.
pub fn validate(referral: &Value) -> Result<(), ApiError> {
    for part in ["customerProfile", "consent", "details"] {
        if !referral.get(part).is_some_and(Value::is_object) {
            return Err(ApiError::bad(format!("'{part}' must be an object."), part));
        }
    }
    match str_field(referral, "type") {
        Some("Independent" | "Shared") => {}
        Some(other) => {
            return Err(ApiError::bad(
                format!("'{other}' is not a referral type; use Independent or Shared."),
                "type",
            ));
        }
        None => {
            return Err(ApiError::bad("The referral must include 'type' (Independent or Shared).", "type"));
        }
    }
    if let Some(q) = referral.get("qualification").filter(|q| !q.is_null()) {
        if !matches!(q.as_str(), Some("None" | "Direct" | "MarketingQualified" | "SalesQualified")) {
            return Err(ApiError::bad(
                format!(
                    "{q} is not a qualification; use None, Direct, MarketingQualified or SalesQualified."
                ),
                "qualification",
            ));
        }
    }
    for array in ["team", "target", "registrations"] {
        if !referral.get(array).is_some_and(Value::is_array) {
            return Err(ApiError::bad(format!("'{array}' must be an array."), array));
        }
    }
    Ok(())
}

fn status_pair(referral: &Value) -> Result<(String, String), ApiError> {
    let get = |key: &str| match referral.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::bad(format!("'{key}' must be a string."), key)),
    };
    Ok((get("status")?, get("substatus")?))
}

fn transition_error(error: state_machine::TransitionError) -> ApiError {
    let target = match error {
        state_machine::TransitionError::SubstatusNotAllowed { .. } => "substatus",
        _ => "status",
    };
    ApiError::bad(error.to_string(), target)
}

/// A new eTag: quotes included, in the Cosmos-like form Partner Center shows.
fn new_etag(now: Timestamp) -> String {
    let random = uuid::Uuid::new_v4();
    let bytes = random.as_bytes();
    format!(
        "\"{:02x}{:02x}{:02x}{:02x}-0000-0800-0000-{:08x}0000\"",
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3],
        now.as_second()
    )
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
        let now = self.write_time(store);
        let mut referral = template();
        if !body.is_object() {
            return Err(ApiError::bad("The request body must be a referral object.", "body"));
        }
        if origin == Origin::Partner {
            require_parts(&body)?;
        }
        let Value::Object(body) = body else {
            return Ok(Value::Null);
        };
        // Unknown properties are ignored and read-only ones are the server's to set.
        let known: Map<String, Value> = body
            .into_iter()
            .filter(|(k, _)| is_field(k) && !READ_ONLY.contains(&k.as_str()) || k == "engagementId")
            .collect();
        deep_merge(&mut referral, Value::Object(known));
        if origin == Origin::Microsoft {
            fill_incoming_defaults(&mut referral);
        }
        normalise(&mut referral);
        validate(&referral)?;
        let id = uuid::Uuid::new_v4().to_string();
        let engagement_id = str_field(&referral, "engagementId")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (status, substatus) = initial_status(&referral, origin)?;
        let stamp = format_time(now);
        set(&mut referral, "id", id.clone());
        set(&mut referral, "engagementId", engagement_id.clone());
        set(&mut referral, "createdDateTime", stamp.clone());
        set(&mut referral, "updatedDateTime", stamp.clone());
        set(&mut referral, "status", status.clone());
        set(&mut referral, "substatus", substatus);
        set(&mut referral, "eTag", new_etag(now));
        set(&mut referral, "links", self.links(&id, &engagement_id));
        for (key, value) in [
            ("organizationId", &self.config.organization_id),
            ("organizationName", &self.config.organization_name),
            ("mpnId", &self.config.mpn_id),
        ] {
            if referral.get(key).is_none_or(Value::is_null) {
                set(&mut referral, key, value.clone());
            }
        }
        match origin {
            Origin::Partner => {
                set(&mut referral, "direction", "Outgoing");
            }
            Origin::Microsoft => {
                set(&mut referral, "direction", "Incoming");
                let expires = now
                    .checked_add(
                        SignedDuration::try_from(self.config.expire_after).unwrap_or(SignedDuration::ZERO),
                    )
                    .unwrap_or(now);
                if status == "New" {
                    set(&mut referral, "expirationDateTime", format_time(expires));
                }
            }
        }
        status_effects(&mut referral, None, &stamp);
        Ok(referral)
    }
}

fn truncate(ts: Timestamp) -> Timestamp {
    let nanos = ts.as_nanosecond();
    Timestamp::from_nanosecond(nanos - nanos.rem_euclid(100)).unwrap_or(ts)
}

fn fill_incoming_defaults(referral: &mut Value) {
    let defaults = json!({
        "type": "Shared",
        "qualification": "SalesQualified",
        "inviteContext": {
            "assistanceRequestCode": "Unknown",
            "invitedBy": {"organizationId": "msft", "organizationName": "Microsoft"}
        },
        "consent": {"consentToToShareInfoWithOthers": true, "consentToContact": true,
                    "consentToShareReferralWithMicrosoftSellers": true}
    });
    fill_nulls(referral, &defaults);
}

/// Sets every null or missing leaf of `value` that `defaults` has.
fn fill_nulls(value: &mut Value, defaults: &Value) {
    let (Some(map), Some(defaults)) = (value.as_object_mut(), defaults.as_object()) else {
        return;
    };
    for (key, default) in defaults {
        match map.get_mut(key) {
            Some(slot) if slot.is_object() => fill_nulls(slot, default),
            Some(slot) if !slot.is_null() => {}
            _ => {
                map.insert(key.clone(), default.clone());
            }
        }
    }
}

/// The status a new referral gets: partner-created `New` becomes `Active/Accepted`, as the
/// documented create response shows [inferred]; incoming referrals start `New/Pending`.
fn initial_status(referral: &Value, origin: Origin) -> Result<(String, String), ApiError> {
    let status = str_field(referral, "status").filter(|s| *s != "None");
    let substatus = str_field(referral, "substatus").filter(|s| *s != "None");
    let (status, substatus) = match (origin, status, substatus) {
        (Origin::Partner, None | Some("New"), _) => ("Active", Some("Accepted")),
        (Origin::Microsoft, None, _) => ("New", Some("Pending")),
        (_, Some(status), substatus) => (status, substatus),
    };
    let substatus = substatus.unwrap_or(match status {
        "New" => "Pending",
        "Active" => "Accepted",
        _ => "",
    });
    state_machine::check_pair(status, substatus).map_err(transition_error)?;
    Ok((status.to_owned(), substatus.to_owned()))
}

/// Stamps acceptance and closing times when the status first reaches them.
fn status_effects(referral: &mut Value, before: Option<&str>, stamp: &str) {
    let status = str_field(referral, "status").unwrap_or_default().to_owned();
    if before == Some(status.as_str()) {
        return;
    }
    let key = match status.as_str() {
        "Active" => "acceptedDateTime",
        "Closed" => "closedDateTime",
        _ => return,
    };
    if referral.get(key).is_none_or(Value::is_null) {
        set(referral, key, stamp.to_owned());
    }
    if status == "Closed" || status == "Active" {
        set(referral, "expirationDateTime", Value::Null);
    }
}

fn visible(caller: &Caller, referral: &Value) -> bool {
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
        let events = vec![Event::referral(&pc, "referral-created", &id, changed)];
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
    delivery::emit(pc, vec![Event::referral(pc, "referral-updated", id, changed)]);
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
    require_parts(&body)?;
    let referral = update(&pc, &id, Some(&caller), IfMatch::Required(if_match), |_| {
        // PUT replaces every writable field: what the body leaves out becomes empty.
        let mut next = template();
        deep_merge(&mut next, body);
        Ok(next)
    })?;
    Ok(Json(referral).into_response())
}

/// One JSON Patch operation.
#[derive(Debug, Deserialize, Serialize)]
pub struct PatchOp {
    /// `add` or `replace`.
    pub op: Option<String>,
    /// JSON Pointer.
    pub path: Option<String>,
    /// New value.
    #[serde(default)]
    pub value: Value,
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

/// Applies JSON Patch `add`/`replace` operations to a copy of `current`.
pub fn apply_patch(current: &Value, ops: &[PatchOp], now: &str) -> Result<Value, ApiError> {
    let mut next = current.clone();
    for (index, op) in ops.iter().enumerate() {
        let target = format!("[{index}]");
        let path = op
            .path
            .as_deref()
            .ok_or_else(|| ApiError::bad("Each patch operation needs a 'path'.", target.clone()))?;
        let add = match op.op.as_deref() {
            Some("add") => true,
            Some("replace") => false,
            Some(other) => {
                return Err(ApiError::bad(
                    format!("Patch operation '{other}' is not supported; only add and replace are."),
                    "op",
                ));
            }
            None => return Err(ApiError::bad("Each patch operation needs an 'op' (add or replace).", "op")),
        };
        let root = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        if READ_ONLY.contains(&root) {
            return Err(ApiError::bad(format!("'{path}' is read-only."), path));
        }
        let mut value = op.value.clone();
        if path == "/registrations/-" {
            prepare_registration(&mut value, now);
            set(&mut next, "registrationStatus", "ReviewPending");
        }
        pointer_apply(&mut next, path, value, add).map_err(|why| ApiError::bad(why, path))?;
    }
    Ok(next)
}

fn prepare_registration(value: &mut Value, now: &str) {
    if let Some(map) = value.as_object_mut() {
        map.entry("id").or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        map.entry("registrationDateTime").or_insert_with(|| now.to_owned().into());
    }
}

fn pointer_apply(doc: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    let tokens: Vec<String> = path
        .strip_prefix('/')
        .ok_or_else(|| format!("'{path}' is not a JSON Pointer; start it with '/'"))?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or_else(|| "the path is empty".to_owned())?;
    let parent = parents
        .iter()
        .try_fold(doc, |node, token| match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        })
        .ok_or_else(|| format!("the parent of '{path}' does not exist"))?;
    match parent {
        Value::Object(map) => {
            if !add && !map.contains_key(last) {
                return Err(format!("'{path}' does not exist; use add to create it"));
            }
            map.insert(last.clone(), value);
        }
        Value::Array(items) if last == "-" && add => items.push(value),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| format!("'{last}' is not an array index"))?;
            match (add, index.cmp(&items.len())) {
                (true, std::cmp::Ordering::Greater)
                | (false, std::cmp::Ordering::Equal | std::cmp::Ordering::Greater) => {
                    return Err(format!("index {index} is out of range"));
                }
                (true, _) => items.insert(index, value),
                (false, _) => items[index] = value,
            }
        }
        _ => return Err(format!("the parent of '{path}' is not an object or array")),
    }
    Ok(())
}

/// A list request, also carried inside `$skiptoken`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ListQuery {
    filter: Option<String>,
    orderby: Option<String>,
    select: Option<String>,
    top: Option<usize>,
    skip: usize,
    count: bool,
}

impl ListQuery {
    fn from_query(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut query = ListQuery::default();
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned();
        for (key, value) in pairs {
            match key.as_str() {
                "$skiptoken" => return decode_token(&value),
                "$filter" => query.filter = Some(value),
                "$orderby" => query.orderby = Some(value),
                "$select" => query.select = Some(value),
                "$top" => query.top = Some(number(&value, "$top")?),
                "$skip" => query.skip = number(&value, "$skip")?,
                "$count" => {
                    query.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ApiError::bad("$count must be true or false.", "$count")),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

fn number(value: &str, name: &str) -> Result<usize, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad(format!("{name} must be a whole number of 0 or more, not '{value}'."), name)
    })
}

fn encode_token(query: &ListQuery) -> String {
    let json = serde_json::to_vec(query).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(token: &str) -> Result<ListQuery, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::bad(
                "The $skiptoken is not valid; follow @odata.nextLink exactly as returned.",
                "$skiptoken",
            )
        })
}

fn unknown_property(name: &str, option: &str) -> ApiError {
    ApiError::bad(
        format!("Could not find a property named '{name}' on type 'Referral' (in {option})."),
        option,
    )
}

async fn list(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let caller = auth::authenticate(&pc, &headers, REFERRALS_RESOURCE)?;
    expire_due(&pc);
    let query = ListQuery::from_query(raw.as_deref())?;
    let filter = match &query.filter {
        Some(text) => {
            let filter = odata::parse_filter(text)
                .map_err(|e| ApiError::bad(format!("Invalid $filter: {e}."), "$filter"))?;
            if let Some(root) = filter.roots().into_iter().find(|r| !is_field(r)) {
                return Err(unknown_property(&root, "$filter").into());
            }
            Some(filter)
        }
        None => None,
    };
    let order = match &query.orderby {
        Some(text) => odata::parse_orderby(text).map_err(|e| ApiError::bad(e.to_string(), "$orderby"))?,
        None => Vec::new(),
    };
    if let Some(key) = order.iter().find(|k| !k.path.first().is_some_and(|f| is_field(f))) {
        return Err(unknown_property(&key.path.join("/"), "$orderby").into());
    }
    let select: Vec<String> = query
        .select
        .as_deref()
        .map(|s| s.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect())
        .unwrap_or_default();
    if let Some(field) = select.iter().find(|f| !is_field(f)) {
        return Err(unknown_property(field, "$select").into());
    }
    let store = pc.lock_store();
    let mut items: Vec<&Value> = store
        .referrals
        .values()
        .filter(|r| visible(&caller, r))
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect();
    items.sort_by(|a, b| odata::compare_by(&order, a, b));
    let total = items.len();
    let start = query.skip.min(total);
    let budget = query.top.unwrap_or(usize::MAX);
    let take = (total - start).min(budget).min(pc.config.page_size.max(1));
    let page: Vec<Value> = items[start..start + take].iter().map(|r| project(r, &select)).collect();
    let more = start + take < total && budget > take;
    let mut body = Map::new();
    body.insert("@odata.context".into(), format!("{}/v1.0/$metadata#Referrals", pc.config.base()).into());
    body.insert("@odata.count".into(), (if query.count { total } else { page.len() }).into());
    body.insert("value".into(), Value::Array(page));
    if more {
        let next = ListQuery { skip: start + take, top: query.top.map(|t| t - take), ..query.clone() };
        // The real next link leaves out `/engagements`; the sandbox serves that path too.
        body.insert(
            "@odata.nextLink".into(),
            format!("{}/v1.0/referrals?$skiptoken={}", pc.config.base(), encode_token(&next)).into(),
        );
    }
    Ok(Json(Value::Object(body)).into_response())
}

fn project(referral: &Value, select: &[String]) -> Value {
    if select.is_empty() {
        return referral.clone();
    }
    let Some(map) = referral.as_object() else {
        return referral.clone();
    };
    Value::Object(
        map.iter()
            .filter(|(k, _)| select.iter().any(|s| s == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_ops() {
        let mut doc = json!({"team": [{"a": 1}], "details": {"notes": null}});
        pointer_apply(&mut doc, "/team/-", json!({"b": 2}), true).unwrap();
        pointer_apply(&mut doc, "/details/notes", json!("x"), false).unwrap();
        pointer_apply(&mut doc, "/team/0", json!({"c": 3}), false).unwrap();
        assert_eq!(doc, json!({"team": [{"c": 3}, {"b": 2}], "details": {"notes": "x"}}));
        assert!(pointer_apply(&mut doc, "/details/missing", json!(1), false).is_err());
        assert!(pointer_apply(&mut doc, "/nothing/here", json!(1), true).is_err());
        assert!(pointer_apply(&mut doc, "/team/5", json!(1), true).is_err());
        assert!(pointer_apply(&mut doc, "team", json!(1), true).is_err());
    }

    #[test]
    fn skiptoken_round_trips() {
        let query = ListQuery {
            filter: Some("status eq 'New'".into()),
            top: Some(5),
            skip: 100,
            ..Default::default()
        };
        assert_eq!(decode_token(&encode_token(&query)).unwrap(), query);
        assert!(decode_token("not-a-token").is_err());
    }

    #[test]
    fn template_is_the_sample_field_set() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/sandbox/pc/pc-referral.json"))
                .unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&template()), keys(&sample));
    }

    #[test]
    fn etag_keeps_its_quotes() {
        let etag = new_etag(Timestamp::UNIX_EPOCH);
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_eq!(etag.len(), 38);
    }
}
