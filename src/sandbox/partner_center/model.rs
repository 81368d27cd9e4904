//! The Referral resource: its fields, defaults, validation and status bookkeeping (reference §2.7–2.8).

use std::sync::LazyLock;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{error::ApiError, state_machine};

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
pub(crate) const READ_ONLY: [&str; 13] = [
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

/// Whether a create body may set `key`: Microsoft's side may also name the owning organisation.
pub(crate) fn settable_on_create(key: &str, origin: Origin) -> bool {
    let owner_field = matches!(key, "organizationId" | "organizationName");
    is_field(key)
        && (!READ_ONLY.contains(&key)
            || key == "engagementId"
            || (owner_field && origin == Origin::Microsoft))
}

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

/// A top-level string field, if set.
pub(crate) fn str_field<'a>(referral: &'a Value, key: &str) -> Option<&'a str> {
    referral.get(key).and_then(Value::as_str)
}

/// Sets a top-level field.
pub(crate) fn set(referral: &mut Value, key: &str, value: impl Into<Value>) {
    if let Some(map) = referral.as_object_mut() {
        map.insert(key.to_owned(), value.into());
    }
}

/// Checks that a request body carries the parts the service requires (reference §2.3).
pub fn require_parts(body: &Map<String, Value>) -> Result<(), ApiError> {
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

/// The status and substatus, both required to be strings.
pub(crate) fn status_pair(referral: &Value) -> Result<(String, String), ApiError> {
    let get = |key: &str| match referral.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::bad(format!("'{key}' must be a string."), key)),
    };
    Ok((get("status")?, get("substatus")?))
}

/// A refused status move as a 400 naming the offending field.
pub(crate) fn transition_error(error: state_machine::TransitionError) -> ApiError {
    let target = match error {
        state_machine::TransitionError::SubstatusNotAllowed { .. } => "substatus",
        _ => "status",
    };
    ApiError::bad(error.to_string(), target)
}

/// A new eTag: quotes included, in the Cosmos-like form Partner Center shows.
pub(crate) fn new_etag(now: Timestamp) -> String {
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

/// Cuts a time to the 100 ns precision of the wire format.
pub(crate) fn truncate(ts: Timestamp) -> Timestamp {
    let nanos = ts.as_nanosecond();
    Timestamp::from_nanosecond(nanos - nanos.rem_euclid(100)).unwrap_or(ts)
}

pub(crate) fn fill_incoming_defaults(referral: &mut Value) {
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
pub(crate) fn initial_status(referral: &Value, origin: Origin) -> Result<(String, String), ApiError> {
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
pub(crate) fn status_effects(referral: &mut Value, before: Option<&str>, stamp: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
