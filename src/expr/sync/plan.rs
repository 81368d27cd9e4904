//! `sync_plan()`: what to write on each side to bring a referral and its Opportunity back in step.
//!
//! Only the fields listed under `fields` in the settings are compared, in Salesforce's terms: the
//! Opportunity's value against the value the referral maps to (`referral_to_opportunity`). A
//! field whose values differ there, and whose referral paths also differ from what the
//! Opportunity maps to (`opportunity_to_referral`), is out of step; a stage that means the same
//! status as the referral's is therefore in step.
//!
//! **Which side wins.** A side *changed since the last sync* when its modification time is later
//! than the Opportunity's `Last_Sync_Date__c` (or there was no sync yet); a Salesforce change
//! by the integration user does not count, nor one within `own_write_grace_seconds` of the
//! stamp (that is coflow's own write of it). When one side changed, its value wins; when both
//! did (a conflict) or neither did (drift), the field's conflict policy decides, newest wins by
//! default (Partner Center's `updatedDateTime` against Salesforce's `LastModifiedDate`; a tie
//! goes to Partner Center). A winner whose direction is off is held back, not written.
//!
//! Partner Center's own rule is kept: a Closed referral's status and substatus are final.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{ConflictPolicy, SyncObject, SyncSettings, Way};
use crate::expr::datetime;
use crate::expr::functions::loose_eq;

/// The two records of a pair, and each mapped into the other's terms.
#[derive(Debug)]
pub struct Pair<'a> {
    /// The referral as Partner Center returns it.
    pub referral: &'a Value,
    /// The Opportunity, with `LastModifiedDate`, `LastModifiedById` and `Last_Sync_Date__c`.
    pub opportunity: &'a Value,
    /// `mapping('referral_to_opportunity', referral)`.
    pub referral_as_opportunity: &'a Value,
    /// `mapping('opportunity_to_referral', opportunity)`.
    pub opportunity_as_referral: &'a Value,
}

/// What `sync_plan()` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Nothing differs (held-back differences count as differences).
    pub in_sync: bool,
    /// Opportunity fields to write, with their new values.
    pub salesforce: Map<String, Value>,
    /// JSON Patch operations for the referral.
    pub partner_center: Vec<Value>,
    /// Fields both sides changed since the last sync, and how each was resolved.
    pub conflicts: Vec<Conflict>,
    /// Fields out of step, in Salesforce's terms.
    pub differing: Vec<String>,
    /// Differences not written because their direction is off.
    pub held_back: Vec<String>,
    /// Partner Center changed the referral since the last sync.
    pub partner_center_changed: bool,
    /// Someone other than coflow changed the Opportunity since the last sync.
    pub salesforce_changed: bool,
    /// One Audit entry describing the above; empty when in step.
    pub audit: String,
}

/// A field both sides changed since the last sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// The Opportunity field.
    pub field: String,
    /// The value Partner Center's side means.
    pub partner_center: Value,
    /// Salesforce's value.
    pub salesforce: Value,
    /// The policy applied.
    pub policy: ConflictPolicy,
    /// `partner_center` or `salesforce`.
    pub winner: &'static str,
}

/// Works out the plan for one pair.
pub fn plan(settings: &SyncSettings, pair: &Pair) -> Plan {
    let facts = Facts::of(settings, pair);
    let direction = settings.direction(SyncObject::Opportunity);
    let mut plan = Plan {
        partner_center_changed: facts.pc_changed,
        salesforce_changed: facts.sf_changed,
        ..Plan::default()
    };
    let mut to_sf = Vec::new();
    let mut to_pc = Vec::new();
    for (field, sync) in &settings.fields {
        let Some(from_pc) = pair.referral_as_opportunity.get(field).filter(|v| !v.is_null()) else {
            continue; // the mapping leaves this field alone
        };
        let current = pair.opportunity.get(field).unwrap_or(&Value::Null);
        if same(from_pc, current) {
            continue;
        }
        let paths: Vec<(&str, Value, Value)> = sync
            .partner_center
            .iter()
            .map(|p| {
                let held = pair.referral.pointer(p).cloned().unwrap_or(Value::Null);
                let meant = pair.opportunity_as_referral.pointer(p).cloned().unwrap_or(Value::Null);
                (p.as_str(), held, meant)
            })
            .filter(|(_, held, meant)| !same(held, meant))
            .collect();
        if paths.is_empty() {
            continue; // both values mean the same to Partner Center
        }
        plan.differing.push(field.clone());
        let policy = settings.policy(field);
        let winner = match (facts.pc_changed, facts.sf_changed) {
            (true, false) => Side::PartnerCenter,
            (false, true) => Side::Salesforce,
            _ => facts.by_policy(policy),
        };
        if facts.pc_changed && facts.sf_changed {
            plan.conflicts.push(Conflict {
                field: field.clone(),
                partner_center: from_pc.clone(),
                salesforce: current.clone(),
                policy,
                winner: winner.name(),
            });
        }
        match winner {
            Side::PartnerCenter if direction.allows(Way::ToSalesforce) => {
                plan.salesforce.insert(field.clone(), from_pc.clone());
                to_sf.push(field.as_str());
            }
            Side::Salesforce if direction.allows(Way::ToPartnerCenter) => {
                let closed = pair.referral.get("status").and_then(Value::as_str) == Some("Closed");
                let mut sent = false;
                for (path, _, meant) in paths {
                    if closed && matches!(path, "/status" | "/substatus") {
                        continue;
                    }
                    plan.partner_center.push(json!({"op": "replace", "path": path, "value": meant}));
                    sent = true;
                }
                if sent {
                    to_pc.push(field.as_str());
                } else {
                    plan.held_back.push(field.clone());
                }
            }
            _ => plan.held_back.push(field.clone()),
        }
    }
    plan.in_sync = plan.differing.is_empty();
    plan.audit = audit_entry(pair, &to_sf, &to_pc, &plan);
    plan
}

#[derive(Debug, Clone, Copy)]
enum Side {
    PartnerCenter,
    Salesforce,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::PartnerCenter => "partner_center",
            Side::Salesforce => "salesforce",
        }
    }
}

/// When each side last changed, read off the records.
struct Facts {
    pc_changed: bool,
    sf_changed: bool,
    pc_newer_or_same: bool,
}

impl Facts {
    fn of(settings: &SyncSettings, pair: &Pair) -> Facts {
        let time = |record: &Value, key: &str| {
            record.get(key).and_then(Value::as_str).and_then(datetime::parse).map(|s| s.dt)
        };
        let last_sync = time(pair.opportunity, "Last_Sync_Date__c");
        let grace = jiff::SignedDuration::from_secs(i64::from(settings.own_write_grace_seconds));
        let sf_after_sync = match (last_sync, time(pair.opportunity, "LastModifiedDate")) {
            (None, _) => true,
            (Some(sync), Some(t)) => sync.checked_add(grace).is_ok_and(|end| t > end),
            (Some(_), None) => false,
        };
        let pc_time = time(pair.referral, "updatedDateTime");
        let sf_time = time(pair.opportunity, "LastModifiedDate");
        let by_us = pair
            .opportunity
            .get("LastModifiedById")
            .and_then(Value::as_str)
            .is_some_and(|id| settings.is_integration_user(id));
        let after_sync = |t: Option<jiff::civil::DateTime>| match (last_sync, t) {
            (None, _) => true,
            (Some(sync), Some(t)) => t > sync,
            (Some(_), None) => false,
        };
        Facts {
            pc_changed: after_sync(pc_time),
            sf_changed: !by_us && sf_after_sync,
            pc_newer_or_same: match (pc_time, sf_time) {
                (Some(pc), Some(sf)) => pc >= sf,
                (_, None) => true,
                (None, Some(_)) => false,
            },
        }
    }

    fn by_policy(&self, policy: ConflictPolicy) -> Side {
        match policy {
            ConflictPolicy::PartnerCenterWins => Side::PartnerCenter,
            ConflictPolicy::SalesforceWins => Side::Salesforce,
            ConflictPolicy::NewestWins if self.pc_newer_or_same => Side::PartnerCenter,
            ConflictPolicy::NewestWins => Side::Salesforce,
        }
    }
}

/// Whether two values mean the same: loosely equal, or the same instant or day when both are
/// dates (`2026-12-31` and `2026-12-31T00:00:00Z`).
fn same(a: &Value, b: &Value) -> bool {
    if loose_eq(a, b) {
        return true;
    }
    match (a.as_str().and_then(datetime::parse), b.as_str().and_then(datetime::parse)) {
        (Some(x), Some(y)) => x.dt == y.dt,
        _ => false,
    }
}

fn audit_entry(pair: &Pair, to_sf: &[&str], to_pc: &[&str], plan: &Plan) -> String {
    if plan.in_sync {
        return String::new();
    }
    let id = pair.referral.get("id").and_then(Value::as_str).unwrap_or("?");
    let mut parts = Vec::new();
    if !to_sf.is_empty() {
        parts.push(format!("{} from Partner Center", to_sf.join(", ")));
    }
    if !to_pc.is_empty() {
        parts.push(format!("{} to Partner Center", to_pc.join(", ")));
    }
    for c in &plan.conflicts {
        parts.push(format!(
            "conflict on {} (Partner Center {}, Salesforce {}): {} wins by {}",
            c.field,
            short(&c.partner_center),
            short(&c.salesforce),
            if c.winner == "partner_center" { "Partner Center" } else { "Salesforce" },
            policy_name(c.policy)
        ));
    }
    if !plan.held_back.is_empty() {
        parts.push(format!(
            "{} left as is (direction off, or the referral is closed)",
            plan.held_back.join(", ")
        ));
    }
    format!("⟳ Reconciled with referral {id}: {}", parts.join("; "))
}

fn short(value: &Value) -> String {
    let text = crate::expr::text(value);
    if text.chars().count() > 40 {
        text.chars().take(39).collect::<String>() + "…"
    } else {
        text.into_owned()
    }
}

fn policy_name(policy: ConflictPolicy) -> &'static str {
    match policy {
        ConflictPolicy::NewestWins => "newest_wins",
        ConflictPolicy::PartnerCenterWins => "partner_center_wins",
        ConflictPolicy::SalesforceWins => "salesforce_wins",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn referral(deal: f64, updated: &str) -> Value {
        json!({"id": "r1", "status": "Active", "substatus": "Accepted", "updatedDateTime": updated,
               "details": {"dealValue": deal, "notes": "n", "closingDateTime": "2026-12-31T00:00:00Z"}})
    }

    fn opportunity(amount: f64, modified: &str, by: &str, synced: &str) -> Value {
        json!({"Id": "006A", "Amount": amount, "Description": "n", "CloseDate": "2026-12-31",
               "StageName": "Negotiation/Review", "LastModifiedDate": modified,
               "LastModifiedById": by, "Last_Sync_Date__c": synced})
    }

    /// The two mappings, reduced to the fields the settings compare.
    fn run(settings: &SyncSettings, referral: &Value, opportunity: &Value) -> Plan {
        let as_opportunity = json!({
            "Amount": referral["details"]["dealValue"], "Description": referral["details"]["notes"],
            "CloseDate": "2026-12-31", "StageName": "Qualification"});
        let as_referral = json!({"status": "Active", "substatus": "Accepted",
            "details": {"dealValue": opportunity["Amount"], "notes": opportunity["Description"],
                        "closingDateTime": "2026-12-31T00:00:00Z"}});
        plan(
            settings,
            &Pair {
                referral,
                opportunity,
                referral_as_opportunity: &as_opportunity,
                opportunity_as_referral: &as_referral,
            },
        )
    }

    const SYNC: &str = "2026-11-01T10:00:00.000Z";

    #[test]
    fn a_pair_in_step_needs_nothing_and_a_stage_meaning_the_same_status_is_in_step() {
        let p = run(
            &SyncSettings::default(),
            &referral(100.0, "2026-11-02T00:00:00Z"),
            &opportunity(100.0, "2026-11-03T00:00:00.000+0000", "005U", SYNC),
        );
        assert!(p.in_sync, "{p:?}");
        assert!(p.salesforce.is_empty() && p.partner_center.is_empty() && p.audit.is_empty());
    }

    #[test]
    fn the_side_that_changed_alone_wins() {
        let s = SyncSettings::default();
        let p = run(
            &s,
            &referral(200.0, "2026-11-02T00:00:00Z"),
            &opportunity(100.0, "2026-11-01T09:00:00Z", "005U", SYNC),
        );
        assert_eq!(p.salesforce, *json!({"Amount": 200.0}).as_object().unwrap());
        assert!(p.partner_center.is_empty() && p.conflicts.is_empty());
        let p = run(
            &s,
            &referral(200.0, "2026-11-01T09:00:00Z"),
            &opportunity(100.0, "2026-11-02T00:00:00Z", "005U", SYNC),
        );
        assert_eq!(
            p.partner_center,
            vec![json!({"op": "replace", "path": "/details/dealValue", "value": 100.0})]
        );
        assert!(p.audit.contains("Amount to Partner Center"), "{}", p.audit);
    }

    #[test]
    fn conflicts_follow_the_field_policy_and_are_audited() {
        let newest = SyncSettings::default();
        let pc = referral(200.0, "2026-11-02T00:00:00Z");
        let sf = opportunity(100.0, "2026-11-03T00:00:00Z", "005U", SYNC);
        let p = run(&newest, &pc, &sf);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].winner, "salesforce");
        assert_eq!(p.partner_center.len(), 1);
        assert!(
            p.audit.contains(
                "conflict on Amount (Partner Center 200, Salesforce 100): Salesforce wins by newest_wins"
            ),
            "{}",
            p.audit
        );
        let pc_wins = SyncSettings::parse(
            "fields:\n  Amount: {partner_center: [/details/dealValue], conflict: partner_center_wins}\n",
            Path::new("s"),
        )
        .unwrap();
        let p = run(&pc_wins, &pc, &sf);
        assert_eq!(p.conflicts[0].winner, "partner_center");
        assert_eq!(p.salesforce.get("Amount"), Some(&json!(200.0)));
    }

    #[test]
    fn integration_user_changes_do_not_count_as_salesforce_changes() {
        let s = SyncSettings::parse("integration_user: 005INT000000001", Path::new("s")).unwrap();
        let p = run(
            &s,
            &referral(200.0, "2026-11-02T00:00:00Z"),
            &opportunity(100.0, "2026-11-03T00:00:00Z", "005INT000000001AAA", SYNC),
        );
        assert!(p.conflicts.is_empty());
        assert_eq!(p.salesforce.get("Amount"), Some(&json!(200.0)));
    }

    #[test]
    fn a_direction_that_is_off_holds_its_writes_back() {
        let s =
            SyncSettings::parse("directions: {opportunity: salesforce_to_partner_center}", Path::new("s"))
                .unwrap();
        let p = run(
            &s,
            &referral(200.0, "2026-11-02T00:00:00Z"),
            &opportunity(100.0, "2026-11-01T09:00:00Z", "005U", SYNC),
        );
        assert!(p.salesforce.is_empty() && p.partner_center.is_empty());
        assert_eq!(p.held_back, vec!["Amount".to_string()]);
        assert!(!p.in_sync);
    }

    #[test]
    fn a_closed_referral_keeps_its_status() {
        let mut pc = referral(100.0, "2026-11-01T09:00:00Z");
        pc["status"] = json!("Closed");
        pc["substatus"] = json!("Won");
        let sf = opportunity(100.0, "2026-11-02T00:00:00Z", "005U", SYNC);
        let p = run(&SyncSettings::default(), &pc, &sf);
        assert!(p.partner_center.is_empty(), "{p:?}");
        assert_eq!(p.held_back, vec!["StageName".to_string()]);
    }
}
