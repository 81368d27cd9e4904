//! The polling core of the `salesforce.poll` trigger: which records are new since the last poll.
//!
//! Each poll asks for records whose `SystemModstamp` (or `CreatedDate` for `on: created`) is at
//! or after the watermark minus an overlap window, because commits become visible out of order
//! and timestamps are coarse. What was already fired inside the window is remembered by
//! (id, stamp), so a record is fired once per change: never missed, never twice. The
//! [`Watermark`] is plain data for the store to persist between polls.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::connectors::{ConnectorError, HttpClient};

use super::{SalesforceConnector, api_name};

/// Which changes fire the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollOn {
    /// New records only (`CreatedDate`).
    Created,
    /// New and changed records (`SystemModstamp`).
    CreatedOrModified,
}

impl PollOn {
    fn field(self) -> &'static str {
        match self {
            PollOn::Created => "CreatedDate",
            PollOn::CreatedOrModified => "SystemModstamp",
        }
    }
}

/// What to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSpec {
    /// sObject name, e.g. `Opportunity`.
    pub object: String,
    /// Created only, or created and modified.
    pub on: PollOn,
    /// Extra SOQL condition, e.g. `Sync_with_Partner_Center__c = true`.
    pub condition: Option<String>,
    /// Fields to return besides `Id`, `CreatedDate` and `SystemModstamp`.
    pub fields: Vec<String>,
    /// How far before the watermark each poll looks again.
    pub overlap: Duration,
    /// Changes stamped this recently wait for the next poll: Salesforce stamps whole seconds,
    /// so a second still running may see another change under the same stamp.
    pub settle: Duration,
}

impl PollSpec {
    /// Polls `object` for `on` changes with a 5-minute overlap, 2 s settling and no extra fields.
    pub fn new(object: impl Into<String>, on: PollOn) -> Self {
        PollSpec {
            object: object.into(),
            on,
            condition: None,
            fields: Vec::new(),
            overlap: Duration::from_secs(300),
            settle: Duration::from_secs(2),
        }
    }
}

/// Where the last poll got to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Greatest stamp seen (or the start time); the next poll looks from here minus the overlap.
    pub since: Option<jiff::Timestamp>,
    /// Records already fired inside the overlap window: id -> stamp fired.
    pub fired: BTreeMap<String, jiff::Timestamp>,
    /// Changes stamped before this never fire (they predate the trigger).
    #[serde(default)]
    pub started: Option<jiff::Timestamp>,
}

impl Watermark {
    /// A watermark that fires only for changes from `at` on (Power Automate triggers start now).
    /// Salesforce stamps whole seconds, so `at` is rounded down to its second.
    pub fn starting_at(at: jiff::Timestamp) -> Self {
        let at = jiff::Timestamp::from_second(at.as_second()).unwrap_or(at);
        Watermark { since: Some(at), fired: BTreeMap::new(), started: Some(at) }
    }
}

/// Records to fire for, in stamp order, and the watermark to store for the next poll.
#[derive(Debug, Clone, PartialEq)]
pub struct PollResult {
    /// The records, each once.
    pub records: Vec<Value>,
    /// The next watermark.
    pub watermark: Watermark,
}

/// Runs one poll: one query (paged), no writes.
pub async fn poll(
    connector: &SalesforceConnector,
    http: &HttpClient,
    spec: &PollSpec,
    watermark: &Watermark,
) -> Result<PollResult, ConnectorError> {
    let soql = poll_soql(spec, watermark)?;
    let output = connector.query(http, &json!({"soql": soql}), false).await?;
    let rows = output.body.get("records").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(select(spec, watermark, rows, jiff::Timestamp::now()))
}

/// The SOQL of one poll.
pub fn poll_soql(spec: &PollSpec, watermark: &Watermark) -> Result<String, ConnectorError> {
    let object = api_name("object", &spec.object)?;
    let stamp = spec.on.field();
    let mut fields = vec!["Id".to_string(), "CreatedDate".to_string(), "SystemModstamp".to_string()];
    for field in &spec.fields {
        let valid = field.split('.').all(|part| api_name("field", part).is_ok());
        if !valid {
            return Err(ConnectorError::InvalidInput(format!("`{field}` is not a valid field name")));
        }
        if !fields.iter().any(|f| f.eq_ignore_ascii_case(field)) {
            fields.push(field.clone());
        }
    }
    let mut conditions = Vec::new();
    if let Some(since) = watermark.since {
        let from = since - jiff::SignedDuration::try_from(spec.overlap).unwrap_or_default();
        conditions.push(format!("{stamp} >= {}", from.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")));
    }
    if let Some(condition) = spec.condition.as_deref().filter(|c| !c.trim().is_empty()) {
        conditions.push(format!("({condition})"));
    }
    let mut soql = format!("SELECT {} FROM {object}", fields.join(", "));
    if !conditions.is_empty() {
        soql = format!("{soql} WHERE {}", conditions.join(" AND "));
    }
    Ok(format!("{soql} ORDER BY {stamp} ASC, Id ASC"))
}

/// Picks the settled rows not fired yet (as of `now`) and advances the watermark.
pub fn select(spec: &PollSpec, watermark: &Watermark, rows: Vec<Value>, now: jiff::Timestamp) -> PollResult {
    let settled = now - jiff::SignedDuration::try_from(spec.settle).unwrap_or_default();
    let field = spec.on.field();
    let mut next = watermark.clone();
    let mut records = Vec::new();
    for row in rows {
        let Some(id) = row.get("Id").and_then(Value::as_str).map(str::to_string) else { continue };
        let Some(stamp) = row.get(field).and_then(Value::as_str).and_then(parse_stamp) else { continue };
        if watermark.started.is_some_and(|started| stamp < started) || stamp > settled {
            continue;
        }
        let already = match spec.on {
            PollOn::Created => watermark.fired.contains_key(&id),
            PollOn::CreatedOrModified => watermark.fired.get(&id).is_some_and(|fired| *fired >= stamp),
        };
        if already {
            continue;
        }
        next.fired.insert(id, stamp);
        next.since = Some(next.since.map_or(stamp, |s| s.max(stamp)));
        records.push(row);
    }
    if let Some(since) = next.since {
        let keep_from = since - jiff::SignedDuration::try_from(spec.overlap).unwrap_or_default();
        next.fired.retain(|_, stamp| *stamp >= keep_from);
    }
    PollResult { records, watermark: next }
}

/// Reads Salesforce's `2024-05-21T08:02:11.000+0000` (and ISO-8601 with `Z` or `+00:00`).
fn parse_stamp(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok().or_else(|| jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATER: jiff::Timestamp = jiff::Timestamp::constant(1_716_300_000, 0);

    fn row(id: &str, stamp: &str) -> Value {
        json!({"Id": id, "SystemModstamp": stamp, "CreatedDate": stamp})
    }

    fn at(text: &str) -> jiff::Timestamp {
        parse_stamp(text).unwrap()
    }

    #[test]
    fn the_query_looks_back_by_the_overlap() {
        let mut spec = PollSpec::new("Opportunity", PollOn::CreatedOrModified);
        spec.condition = Some("Sync_with_Partner_Center__c = true".into());
        spec.fields = vec!["Name".into(), "Account.Name".into()];
        let soql = poll_soql(&spec, &Watermark::starting_at(at("2024-05-21T08:10:00.000+0000"))).unwrap();
        assert_eq!(
            soql,
            "SELECT Id, CreatedDate, SystemModstamp, Name, Account.Name FROM Opportunity \
             WHERE SystemModstamp >= 2024-05-21T08:05:00.000Z AND (Sync_with_Partner_Center__c = true) \
             ORDER BY SystemModstamp ASC, Id ASC"
        );
    }

    #[test]
    fn each_change_fires_once_and_late_commits_inside_the_overlap_are_caught() {
        let spec = PollSpec::new("Opportunity", PollOn::CreatedOrModified);
        let start = Watermark::starting_at(at("2024-05-21T08:00:00.000+0000"));
        let first = select(
            &spec,
            &start,
            vec![row("A", "2024-05-21T08:01:00.000+0000"), row("B", "2024-05-21T08:02:00.000+0000")],
            LATER,
        );
        assert_eq!(first.records.len(), 2);
        // B again (same stamp), C committed late with an earlier stamp, A changed again.
        let second = select(
            &spec,
            &first.watermark,
            vec![
                row("C", "2024-05-21T08:01:30.000+0000"),
                row("B", "2024-05-21T08:02:00.000+0000"),
                row("A", "2024-05-21T08:03:00.000+0000"),
            ],
            LATER,
        );
        let ids: Vec<&str> = second.records.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["C", "A"]);
        assert_eq!(second.watermark.since, Some(at("2024-05-21T08:03:00.000+0000")));
    }

    #[test]
    fn created_fires_once_per_record_and_the_start_excludes_older_records() {
        let spec = PollSpec::new("Opportunity", PollOn::Created);
        let start = Watermark::starting_at(at("2024-05-21T08:00:00.000+0000"));
        let first = select(
            &spec,
            &start,
            vec![row("OLD", "2024-05-21T07:58:00.000+0000"), row("A", "2024-05-21T08:01:00.000+0000")],
            LATER,
        );
        assert_eq!(first.records.len(), 1);
        let second = select(&spec, &first.watermark, vec![row("A", "2024-05-21T08:01:00.000+0000")], LATER);
        assert!(second.records.is_empty());
    }

    #[test]
    fn a_change_in_the_running_second_waits_until_it_settles() {
        let spec = PollSpec::new("Opportunity", PollOn::CreatedOrModified);
        let start = Watermark::starting_at(at("2024-05-21T08:00:00.000+0000"));
        let rows = || vec![row("A", "2024-05-21T08:01:00.000+0000")];
        let early = select(&spec, &start, rows(), at("2024-05-21T08:01:00.500+0000"));
        assert!(early.records.is_empty());
        assert_eq!(early.watermark, start);
        let settled = select(&spec, &early.watermark, rows(), at("2024-05-21T08:01:03.000+0000"));
        assert_eq!(settled.records.len(), 1);
    }
}
