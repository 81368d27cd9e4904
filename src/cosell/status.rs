//! `coflow sync status`: how far Salesforce and Partner Center are in step, read off both
//! systems with list calls only.
//!
//! Every Opportunity with Sync with Partner Center = Yes is one of:
//! - **failed**: the newest line of its Audit field records a failure (`✘`);
//! - **pending**: it has no referral yet, or a side changed since its Last Sync Date and the
//!   mapped fields differ (a webhook or poll that has not run yet);
//! - **drifted**: the fields differ although neither side changed since the last sync, or its
//!   referral no longer exists: only the reconciliation or a person fixes those;
//! - **in sync**: the rest.
//!
//! Open referrals no Opportunity carries count as pending. A Microsoft Solution with Sync = Yes
//! is in sync when its referral lists it, pending when it changed after its Opportunity's Last
//! Sync Date (or the Opportunity has no referral yet), failed with its Opportunity, drifted
//! otherwise. The oldest pending change is the earliest modification time among the pending
//! records. Leads are shared once, not kept in step: they are shown with their direction only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::connectors::config::LoadedConnections;
use crate::connectors::{Connector, ConnectorError, HttpClient, OperationCall};
use crate::expr::sync::plan::{self, Pair};
use crate::expr::sync::{Direction, SyncObject};
use crate::expr::{Mapping, MappingError, Mappings, SyncSettings, SyncSettingsError};

/// What the Opportunity query reads: the fields the two mappings and the plan use.
const OPPORTUNITY_SOQL: &str = "SELECT Id, Name, StageName, CloseDate, Amount, Description, \
     How_can_Microsoft_help__c, Products__c, Sync_with_Partner_Center__c, Referral_Identifier__c, \
     Audit__c, Last_Sync_Date__c, LastModifiedDate, LastModifiedById \
     FROM Opportunity WHERE Sync_with_Partner_Center__c = true";

/// The Microsoft Solutions marked for sync.
const SOLUTION_SOQL: &str = "SELECT Id, Name, Solution_Id__c, Opportunity__c, LastModifiedDate, \
     LastModifiedById FROM Microsoft_Solution__c WHERE Sync_with_Partner_Center__c = true";

/// The state of one synchronised object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectStatus {
    /// `opportunity`, `lead` or `microsoft_solution`.
    pub object: String,
    /// Its direction in `settings/sync.yaml`.
    pub direction: String,
    /// Whether the counts below are tracked for this object.
    pub tracked: bool,
    /// Records in step.
    pub in_sync: u64,
    /// Records with a change not synchronised yet.
    pub pending: u64,
    /// Records whose last synchronisation failed.
    pub failed: u64,
    /// Records out of step with no change to explain it.
    pub drifted: u64,
    /// When the oldest pending change was made.
    pub oldest_pending: Option<String>,
}

/// The state of every object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    /// One entry per object.
    pub objects: Vec<ObjectStatus>,
}

/// Why the status could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No connection of a kind the status needs.
    #[error("no {0} connection in the connections file: add one (see docs/setup.md)")]
    NoConnection(&'static str),
    /// A call failed.
    #[error("{0}")]
    Call(#[from] ConnectorError),
    /// The settings file is broken.
    #[error(transparent)]
    Settings(#[from] SyncSettingsError),
    /// A mapping file is missing or broken.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A mapping cannot be applied to a record.
    #[error("{0}")]
    Render(String),
}

/// Reads both systems and counts, per object, what is in step.
pub async fn sync_status(
    flows_dir: &Path,
    connections: &LoadedConnections,
    http: &HttpClient,
) -> Result<SyncStatus, StatusError> {
    let settings = SyncSettings::load_for(flows_dir)?;
    let salesforce = connections.salesforce.values().next().ok_or(StatusError::NoConnection("salesforce"))?;
    let partner_center =
        connections.partner_center.values().next().ok_or(StatusError::NoConnection("partner_center"))?;
    let inputs = json!({"soql": OPPORTUNITY_SOQL});
    let found = Connector::call(salesforce.as_ref(), OperationCall::new("query", &inputs, http)).await?.body;
    let inputs = json!({"max_items": 1_000_000});
    let listed =
        Connector::call(partner_center.as_ref(), OperationCall::new("list_referrals", &inputs, http))
            .await?
            .body;
    let inputs = json!({"soql": SOLUTION_SOQL});
    let solutions =
        Connector::call(salesforce.as_ref(), OperationCall::new("query", &inputs, http)).await?.body;
    let solutions = solutions["records"].as_array().cloned().unwrap_or_default();
    let opportunities = found["records"].as_array().cloned().unwrap_or_default();
    let referrals = listed["value"].as_array().cloned().unwrap_or_default();
    let mappings = Mappings::load_dir(&flows_dir.join("mappings"))?;
    let mapping = |name: &str| {
        mappings.get(name).cloned().ok_or_else(|| {
            StatusError::Mapping(MappingError::NotFound {
                name: name.into(),
                dir: flows_dir.join("mappings"),
            })
        })
    };
    let counts = count_opportunities(
        &settings,
        &opportunities,
        &referrals,
        (&mapping("referral_to_opportunity")?, &mapping("opportunity_to_referral")?),
    )?;
    let solutions = count_solutions(&settings, &solutions, &opportunities, &referrals);
    let lead = ObjectStatus {
        object: "lead".into(),
        direction: direction_name(settings.direction(SyncObject::Lead)),
        ..ObjectStatus::default()
    };
    Ok(SyncStatus { objects: vec![counts, lead, solutions] })
}

fn count_opportunities(
    settings: &SyncSettings,
    opportunities: &[Value],
    referrals: &[Value],
    (to_opportunity, to_referral): (&Arc<Mapping>, &Arc<Mapping>),
) -> Result<ObjectStatus, StatusError> {
    let mut status = ObjectStatus {
        object: "opportunity".into(),
        direction: direction_name(settings.direction(SyncObject::Opportunity)),
        tracked: true,
        ..ObjectStatus::default()
    };
    let by_id: HashMap<&str, &Value> =
        referrals.iter().filter_map(|r| Some((r.get("id")?.as_str()?, r))).collect();
    let mut carried = std::collections::HashSet::new();
    let mut pending_since: Vec<String> = Vec::new();
    let modified = |o: &Value| o.get("LastModifiedDate").and_then(Value::as_str).map(str::to_string);
    for opportunity in opportunities {
        let audit = opportunity.get("Audit__c").and_then(Value::as_str).unwrap_or_default();
        let referral_id =
            opportunity.get("Referral_Identifier__c").and_then(Value::as_str).unwrap_or_default();
        carried.insert(referral_id);
        if audit.lines().last().is_some_and(|line| line.contains('✘')) {
            status.failed += 1;
            continue;
        }
        if referral_id.is_empty() {
            status.pending += 1;
            pending_since.extend(modified(opportunity));
            continue;
        }
        let Some(referral) = by_id.get(referral_id) else {
            status.drifted += 1;
            continue;
        };
        let render = |mapping: &Arc<Mapping>, source: &Value| {
            mapping.render(source, None).map_err(|e| StatusError::Render(format!("{}: {e}", mapping.name)))
        };
        let pair = Pair {
            referral,
            opportunity,
            referral_as_opportunity: &render(to_opportunity, referral)?,
            opportunity_as_referral: &render(to_referral, opportunity)?,
        };
        let plan = plan::plan(settings, &pair);
        if plan.in_sync {
            status.in_sync += 1;
        } else if plan.partner_center_changed || plan.salesforce_changed {
            status.pending += 1;
            let pc = referral.get("updatedDateTime").and_then(Value::as_str).map(str::to_string);
            let changed = if plan.salesforce_changed { modified(opportunity) } else { pc };
            pending_since.extend(changed);
        } else {
            status.drifted += 1;
        }
    }
    for referral in referrals {
        let id = referral.get("id").and_then(Value::as_str).unwrap_or_default();
        let open = referral.get("status").and_then(Value::as_str) != Some("Closed");
        if open && !carried.contains(id) {
            status.pending += 1;
            pending_since.extend(referral.get("createdDateTime").and_then(Value::as_str).map(str::to_string));
        }
    }
    status.oldest_pending = pending_since
        .into_iter()
        .filter_map(|t| crate::expr::parse_timestamp(&t).map(|at| (at, t)))
        .min_by_key(|(at, _)| *at)
        .map(|(at, _)| at.to_string());
    Ok(status)
}

fn count_solutions(
    settings: &SyncSettings,
    solutions: &[Value],
    opportunities: &[Value],
    referrals: &[Value],
) -> ObjectStatus {
    let mut status = ObjectStatus {
        object: "microsoft_solution".into(),
        direction: direction_name(settings.direction(SyncObject::MicrosoftSolution)),
        tracked: true,
        ..ObjectStatus::default()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let opportunity_of: HashMap<String, &Value> = opportunities.iter().map(|o| (text(o, "Id"), o)).collect();
    let referral_of: HashMap<String, &Value> = referrals.iter().map(|r| (text(r, "id"), r)).collect();
    let grace = jiff::SignedDuration::from_secs(i64::from(settings.own_write_grace_seconds));
    let mut pending_since: Vec<jiff::Timestamp> = Vec::new();
    for solution in solutions {
        let modified = crate::expr::parse_timestamp(&text(solution, "LastModifiedDate"));
        // Only Opportunities with Sync = Yes are read; a 15-character id names the same record.
        let parent = opportunity_of
            .iter()
            .find(|(id, _)| !id.is_empty() && id.get(..15) == text(solution, "Opportunity__c").get(..15))
            .map(|(_, o)| *o);
        let referral = parent.and_then(|o| referral_of.get(&text(o, "Referral_Identifier__c")));
        let (Some(parent), Some(referral)) = (parent, referral) else {
            status.pending += 1;
            pending_since.extend(modified);
            continue;
        };
        if text(parent, "Audit__c").lines().last().is_some_and(|line| line.contains('✘')) {
            status.failed += 1;
            continue;
        }
        let id = Some(text(solution, "Solution_Id__c"))
            .filter(|i| !i.is_empty())
            .unwrap_or(text(solution, "Name"));
        let listed = referral
            .pointer("/details/requirements/solutions")
            .and_then(Value::as_array)
            .is_some_and(|listed| listed.iter().any(|s| s.get("id").and_then(Value::as_str) == Some(&id)));
        let synced = crate::expr::parse_timestamp(&text(parent, "Last_Sync_Date__c"));
        let by_us = settings.is_integration_user(&text(solution, "LastModifiedById"));
        let changed = match (synced, modified) {
            (Some(synced), Some(modified)) => synced.checked_add(grace).is_ok_and(|end| modified > end),
            _ => true,
        };
        if listed {
            status.in_sync += 1;
        } else if changed && !by_us {
            status.pending += 1;
            pending_since.extend(modified);
        } else {
            status.drifted += 1;
        }
    }
    status.oldest_pending = pending_since.into_iter().min().map(|at| at.to_string());
    status
}

fn direction_name(direction: Direction) -> String {
    serde_json::to_value(direction).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

impl SyncStatus {
    /// The status as a table for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{:<20} {:<30} {:>8} {:>8} {:>7} {:>8}  oldest pending change\n",
            "object", "direction", "in sync", "pending", "failed", "drifted"
        );
        for o in &self.objects {
            if o.tracked {
                out += &format!(
                    "{:<20} {:<30} {:>8} {:>8} {:>7} {:>8}  {}\n",
                    o.object,
                    o.direction,
                    o.in_sync,
                    o.pending,
                    o.failed,
                    o.drifted,
                    o.oldest_pending.as_deref().unwrap_or("-")
                );
            } else {
                out += &format!("{:<20} {:<30} {:>8}\n", o.object, o.direction, "(not tracked)");
            }
        }
        out
    }
}
