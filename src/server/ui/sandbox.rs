//! `/sandbox` (with `coflow serve --sandbox`): Salesforce opportunities and Partner Center
//! referrals side by side, each pair with its sync state, so a new user watches them converge.
//!
//! A pair is matched the way the flows link records: the opportunity's `Referral_Identifier__c`
//! names the referral, or the referral's `externalReferenceId` names the opportunity. Its state:
//! - **failed** when the opportunity's last `Audit__c` line records a failure (`✘`), which is what
//!   every co-sell flow writes when it cannot sync;
//! - **in sync** when both are linked and agree on name and deal value;
//! - **pending** while one side is missing, the link is not written back yet, or they differ;
//! - **not shared** for an opportunity with Sync with Partner Center off and no referral.

use std::sync::Arc;

use axum::extract::State as AxumState;
use minijinja::context;
use serde::Serialize;
use serde_json::Value;
use tower::ServiceExt as _;

use super::{UiError, UiResult, data, render};
use crate::sandbox::Sandbox;
use crate::sandbox::partner_center::{self, PartnerCenter};
use crate::sandbox::salesforce::Salesforce;
use crate::server::State;

/// Handles on the emulators `coflow serve --sandbox` started, for the sandbox page.
#[derive(Debug, Clone)]
pub struct SandboxView {
    /// Base URL of the Salesforce emulator.
    pub salesforce_url: String,
    /// Base URL of the Partner Center emulator.
    pub partner_center_url: String,
    /// The Salesforce emulator's records.
    pub salesforce: Arc<Salesforce>,
    /// The Partner Center emulator's state.
    pub partner_center: Arc<PartnerCenter>,
}

impl SandboxView {
    /// The view of a running sandbox.
    pub fn of(sandbox: &Sandbox) -> SandboxView {
        SandboxView {
            salesforce_url: sandbox.salesforce_url.clone(),
            partner_center_url: sandbox.partner_center_url.clone(),
            salesforce: sandbox.salesforce.clone(),
            partner_center: sandbox.partner_center.clone(),
        }
    }

    /// Every live Opportunity record.
    pub fn opportunities(&self) -> Vec<Value> {
        match self.salesforce.snapshot(false).get_mut("Opportunity").map(Value::take) {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        }
    }

    /// Every referral, read through the emulator's own snapshot route in-process (no socket,
    /// no fault injection).
    pub async fn referrals(&self) -> Result<Vec<Value>, String> {
        let request = axum::http::Request::get("/__sandbox/snapshot")
            .body(axum::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let response = partner_center::router(self.partner_center.clone())
            .oneshot(request)
            .await
            .map_err(|e| e.to_string())?;
        let body =
            axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024).await.map_err(|e| e.to_string())?;
        let mut snapshot: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match snapshot.get_mut("referrals").map(Value::take) {
            Some(Value::Array(referrals)) => Ok(referrals),
            _ => Ok(Vec::new()),
        }
    }
}

/// How far a pair has converged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Linked and agreeing.
    InSync,
    /// On its way (or drifting until the next poll).
    Pending,
    /// A flow recorded a failure.
    Failed,
    /// Not meant to sync.
    NotShared,
}

impl SyncState {
    fn icon(self) -> &'static str {
        match self {
            SyncState::InSync => "✔",
            SyncState::Pending => "…",
            SyncState::Failed => "✘",
            SyncState::NotShared => "–",
        }
    }

    fn label(self) -> &'static str {
        match self {
            SyncState::InSync => "in sync",
            SyncState::Pending => "pending",
            SyncState::Failed => "failed",
            SyncState::NotShared => "not shared",
        }
    }
}

/// An opportunity and its referral, either possibly missing.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// The Salesforce side.
    pub opportunity: Option<Value>,
    /// The Partner Center side.
    pub referral: Option<Value>,
    /// Where they stand.
    pub state: SyncState,
    /// Why, in words.
    pub reason: String,
}

fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn last_audit_line(opportunity: &Value) -> Option<&str> {
    text(opportunity, "Audit__c")?.lines().rev().find(|line| !line.trim().is_empty())
}

/// Deal values are numbers on both sides; compare them as such (`250000` = `250000.0`).
fn same_amount(a: Option<&Value>, b: Option<&Value>) -> bool {
    let number = |v: Option<&Value>| v.and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
    match (number(a), number(b)) {
        (Some(a), Some(b)) => (a - b).abs() < 0.005,
        (None, None) => true,
        _ => false,
    }
}

/// Matches opportunities with referrals and says how far each pair has converged.
pub fn pairs(opportunities: Vec<Value>, referrals: Vec<Value>) -> Vec<Pair> {
    let mut unmatched: Vec<Option<Value>> = referrals.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for opportunity in opportunities {
        let id = text(&opportunity, "Id").unwrap_or_default().to_string();
        let linked = text(&opportunity, "Referral_Identifier__c").map(str::to_string);
        let found = unmatched.iter().position(|slot| {
            slot.as_ref().is_some_and(|r| {
                linked.as_deref().is_some_and(|l| text(r, "id") == Some(l))
                    || (!id.is_empty() && text(r, "externalReferenceId") == Some(id.as_str()))
            })
        });
        let referral = found.and_then(|index| unmatched[index].take());
        let (state, reason) = judge(&opportunity, referral.as_ref(), linked.as_deref());
        out.push(Pair { opportunity: Some(opportunity), referral, state, reason });
    }
    for referral in unmatched.into_iter().flatten() {
        out.push(Pair {
            opportunity: None,
            referral: Some(referral),
            state: SyncState::Pending,
            reason: "no opportunity yet: the webhook flow creates it".into(),
        });
    }
    out
}

fn judge(opportunity: &Value, referral: Option<&Value>, linked: Option<&str>) -> (SyncState, String) {
    if let Some(line) = last_audit_line(opportunity).filter(|line| line.contains('✘')) {
        return (SyncState::Failed, line.to_string());
    }
    let shared = opportunity.get("Sync_with_Partner_Center__c").and_then(Value::as_bool).unwrap_or(false);
    let Some(referral) = referral else {
        return if shared {
            (SyncState::Pending, "no referral yet: the next poll creates it".into())
        } else {
            (SyncState::NotShared, "Sync with Partner Center is off".into())
        };
    };
    if linked != text(referral, "id") {
        return (SyncState::Pending, "referral created; its identifier is not written back yet".into());
    }
    if text(opportunity, "Name") != text(referral, "name") {
        return (SyncState::Pending, "names differ until the next sync".into());
    }
    let deal_value = referral.get("details").and_then(|d| d.get("dealValue"));
    if !same_amount(opportunity.get("Amount"), deal_value) {
        return (SyncState::Pending, "deal values differ until the next sync".into());
    }
    (SyncState::InSync, "linked both ways, same name and deal value".into())
}

/// A pair as the page shows it.
#[derive(Debug, Serialize)]
struct PairView {
    opportunity: Option<Value>,
    referral: Option<Value>,
    state: SyncState,
    icon: &'static str,
    label: &'static str,
    reason: String,
}

/// `GET /sandbox`.
pub async fn show(AxumState(state): AxumState<Arc<State>>) -> UiResult {
    let Some(sandbox) = &state.options.sandbox else {
        return Err(UiError::NotFound(
            "the sandbox view exists when the server runs with --sandbox (coflow serve --sandbox)".into(),
        ));
    };
    let referrals = sandbox
        .referrals()
        .await
        .map_err(|e| UiError::Conflict(format!("cannot read the Partner Center sandbox: {e}")))?;
    let pairs = pairs(sandbox.opportunities(), referrals);
    let count = |wanted: SyncState| pairs.iter().filter(|p| p.state == wanted).count();
    let totals = context! {
        in_sync => count(SyncState::InSync),
        pending => count(SyncState::Pending),
        failed => count(SyncState::Failed),
        not_shared => count(SyncState::NotShared),
    };
    let views: Vec<PairView> = pairs
        .into_iter()
        .map(|pair| PairView {
            icon: pair.state.icon(),
            label: pair.state.label(),
            opportunity: pair.opportunity.map(|o| summarise_opportunity(&o)),
            referral: pair.referral.map(|r| summarise_referral(&r)),
            state: pair.state,
            reason: pair.reason,
        })
        .collect();
    let values = context! {
        pairs => data(&views),
        totals,
        salesforce_url => &sandbox.salesforce_url,
        partner_center_url => &sandbox.partner_center_url,
    };
    render(&state, "sandbox.html", "Sandbox", "sandbox", values)
}

/// A money amount as people write it: `250000`, `1234.5`.
fn amount(value: Option<&Value>) -> Option<String> {
    let number = value?.as_f64()?;
    if number.fract() == 0.0 && number.abs() < 1e15 {
        return Some(format!("{}", number as i64));
    }
    Some(format!("{number:.2}"))
}

fn summarise_opportunity(opportunity: &Value) -> Value {
    serde_json::json!({
        "id": text(opportunity, "Id"),
        "name": text(opportunity, "Name"),
        "stage": text(opportunity, "StageName"),
        "amount": amount(opportunity.get("Amount")),
        "close_date": text(opportunity, "CloseDate"),
        "shared": opportunity.get("Sync_with_Partner_Center__c").and_then(Value::as_bool).unwrap_or(false),
        "referral_id": text(opportunity, "Referral_Identifier__c"),
        "audit": last_audit_line(opportunity),
    })
}

fn summarise_referral(referral: &Value) -> Value {
    let details = referral.get("details");
    serde_json::json!({
        "id": text(referral, "id"),
        "name": text(referral, "name"),
        "status": format!("{}/{}", text(referral, "status").unwrap_or("?"), text(referral, "substatus").unwrap_or("?")),
        "deal_value": amount(details.and_then(|d| d.get("dealValue"))),
        "currency": details.and_then(|d| d.get("currency")).and_then(Value::as_str),
        "external_id": text(referral, "externalReferenceId"),
        "updated": text(referral, "updatedDateTime"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn states(pairs: &[Pair]) -> Vec<SyncState> {
        pairs.iter().map(|p| p.state).collect()
    }

    #[test]
    fn pairs_are_matched_both_ways_and_judged() {
        let opportunities = vec![
            json!({"Id": "006A", "Name": "Woodgrove", "Amount": 250000, "Sync_with_Partner_Center__c": true,
                   "Referral_Identifier__c": "R1"}),
            json!({"Id": "006B", "Name": "Pilot", "Amount": 1, "Sync_with_Partner_Center__c": false}),
            json!({"Id": "006C", "Name": "Waiting", "Sync_with_Partner_Center__c": true}),
            json!({"Id": "006D", "Name": "Broken", "Sync_with_Partner_Center__c": true,
                   "Audit__c": "2026-01-01 ✔ Created\n2026-01-02 ✘ Partner Center referral not created: 400\n"}),
            json!({"Id": "006E", "Name": "Half", "Amount": 5, "Sync_with_Partner_Center__c": true}),
        ];
        let referrals = vec![
            json!({"id": "R1", "name": "Woodgrove", "details": {"dealValue": 250000.0}}),
            json!({"id": "R2", "name": "Half", "externalReferenceId": "006E", "details": {"dealValue": 5}}),
            json!({"id": "R3", "name": "Fabrikam", "details": {"dealValue": 120000}}),
        ];
        let pairs = pairs(opportunities, referrals);
        assert_eq!(
            states(&pairs),
            [
                SyncState::InSync,
                SyncState::NotShared,
                SyncState::Pending,
                SyncState::Failed,
                SyncState::Pending,
                SyncState::Pending,
            ]
        );
        assert!(pairs[3].reason.contains("not created: 400"), "{}", pairs[3].reason);
        assert!(pairs[4].reason.contains("not written back"), "{}", pairs[4].reason);
        assert_eq!(pairs[4].referral.as_ref().unwrap()["id"], "R2");
        assert!(pairs[5].opportunity.is_none());
        assert_eq!(pairs[5].referral.as_ref().unwrap()["id"], "R3");
    }

    #[test]
    fn amounts_read_like_money() {
        assert_eq!(amount(Some(&json!(250000.0))).as_deref(), Some("250000"));
        assert_eq!(amount(Some(&json!(1234.5))).as_deref(), Some("1234.50"));
        assert_eq!(amount(Some(&json!(null))), None);
        assert_eq!(amount(None), None);
    }

    #[test]
    fn a_changed_deal_value_is_pending_until_synced() {
        let opportunity =
            json!({"Id": "006A", "Name": "W", "Amount": 300000, "Referral_Identifier__c": "R1"});
        let referral = json!({"id": "R1", "name": "W", "details": {"dealValue": 250000}});
        let pairs = pairs(vec![opportunity], vec![referral]);
        assert_eq!(pairs[0].state, SyncState::Pending);
        assert!(pairs[0].reason.contains("deal values differ"));
    }
}
