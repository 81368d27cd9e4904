//! Record operations: one record through sObject Rows, many through sObject Collections.

use serde_json::{Map, Value, json};

use crate::connectors::client::{self, Inputs, Reply, encode_component};
use crate::connectors::{ConnectorError, Effect, HttpClient, HttpRequest, OperationOutput};

use super::{SalesforceConnector, Target, api_name, error_for, record_id};

/// Most records one sObject Collections call takes.
pub const COLLECTION_BATCH: usize = 200;

/// Keys that describe a record rather than set its fields.
const NOT_FIELDS: &[&str] = &["attributes", "Id", "id"];

impl SalesforceConnector {
    /// `get_record`: one GET.
    pub(super) async fn get_record(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let id = record_id(&args.str("id")?)?;
        let mut path = format!("/sobjects/{sobject}/{id}");
        if let Some(fields) = args.opt_list("fields")?.filter(|f| !f.is_empty()) {
            let fields: Vec<String> =
                fields.iter().map(|f| api_name("field", f)).collect::<Result<_, _>>()?;
            path = format!("{path}?fields={}", fields.join(","));
        }
        let sent = self.send_ok(http, "GET", Target::Rest(path), None, Effect::Read).await?;
        Ok(client::answered_or_held(sent, |response| response.body.clone()))
    }

    /// `create_record`: one POST, answered `{id, success, errors}`.
    pub(super) async fn create_record(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let record = fields_only(args.object("record")?);
        let path = format!("/sobjects/{sobject}");
        let sent = self.send_ok(http, "POST", Target::Rest(path), Some(record), Effect::Write).await?;
        Ok(client::answered_or_held(sent, |response| response.body.clone()))
    }

    /// `update_record`: one PATCH (204), answered like jsforce: `{id, success, errors}`.
    pub(super) async fn update_record(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let id = record_id(&args.str("id")?)?;
        let record = fields_only(args.object("record")?);
        let path = format!("/sobjects/{sobject}/{id}");
        let sent = self.send_ok(http, "PATCH", Target::Rest(path), Some(record), Effect::Write).await?;
        Ok(client::answered_or_held(sent, |_| json!({"id": id, "success": true, "errors": []})))
    }

    /// `upsert_record`: one PATCH on the external id; 201 created, 200/204 updated, 300 ambiguous.
    /// When the PATCH may already have landed (`may_have_landed`), one GET first: a record that
    /// already holds every field as sent is answered from it, and nothing is written again.
    pub(super) async fn upsert_record(
        &self,
        http: &HttpClient,
        inputs: &Value,
        may_have_landed: bool,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let field = api_name("field", &args.str("external_id_field")?)?;
        let value = args.str("external_id")?;
        let mut record = args.object("record")?;
        // The external id travels in the path; Salesforce refuses it in the body too.
        record.retain(|k, _| !k.eq_ignore_ascii_case(&field));
        let record = fields_only(record);
        let path = format!("/sobjects/{sobject}/{field}/{}", encode_component(&value));
        if may_have_landed && let Some(landed) = self.already_written(http, &path, &record).await? {
            return Ok(landed);
        }
        match self.send(http, "PATCH", Target::Rest(path), Some(record), &[], Effect::Write).await? {
            Reply::HeldBack(request) => Ok(client::dry_run_output(&[request])),
            Reply::Answered(response) if response.status == 204 => {
                // Before v46 an update answers 204 without the id.
                Ok(client::output(response, json!({"success": true, "errors": [], "created": false})))
            }
            Reply::Answered(response) if (200..300).contains(&response.status) => {
                let mut body = response.body.clone();
                if body.get("created").is_none() && body.is_object() {
                    body["created"] = Value::Bool(response.status == 201);
                }
                Ok(client::output(response, body))
            }
            Reply::Answered(response) => Err(error_for(&response)),
        }
    }

    /// The record at `path` when it already holds every field of `record` (compared as
    /// Salesforce answers them), answered as an upsert that updated it; `None` when it is
    /// missing, differs, or cannot be read, and the write must be sent.
    async fn already_written(
        &self,
        http: &HttpClient,
        path: &str,
        record: &Value,
    ) -> Result<Option<OperationOutput>, ConnectorError> {
        let Some(fields) = record.as_object() else { return Ok(None) };
        let names: Vec<&str> = std::iter::once("Id").chain(fields.keys().map(String::as_str)).collect();
        let target = Target::Rest(format!("{path}?fields={}", names.join(",")));
        let Reply::Answered(response) = self.send(http, "GET", target, None, &[], Effect::Read).await? else {
            return Ok(None);
        };
        let Some(found) = response.body.as_object().filter(|_| response.status == 200) else {
            return Ok(None);
        };
        let holds = |name: &String, sent: &Value| {
            let current = found.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            current.is_some_and(|current| same_field_value(current, sent))
        };
        if !fields.iter().all(|(name, sent)| holds(name, sent)) {
            return Ok(None);
        }
        let id = found.get("Id").cloned().unwrap_or(Value::Null);
        Ok(Some(client::output(response, json!({"id": id, "success": true, "errors": [], "created": false}))))
    }

    /// `delete_record`: one DELETE (204).
    pub(super) async fn delete_record(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let id = record_id(&args.str("id")?)?;
        let path = format!("/sobjects/{sobject}/{id}");
        let sent = self.send_ok(http, "DELETE", Target::Rest(path), None, Effect::Write).await?;
        Ok(client::answered_or_held(sent, |_| json!({"id": id, "success": true, "errors": []})))
    }

    /// `create_records` / `update_records`: one call per 200 records; results in input order.
    /// With `all_or_none`, each call is atomic, and a failed call stops the remaining ones.
    pub(super) async fn write_records(
        &self,
        http: &HttpClient,
        inputs: &Value,
        update: bool,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = args.opt_str("sobject")?.map(|s| api_name("object", &s)).transpose()?;
        let all_or_none = args.opt_bool("all_or_none")?.unwrap_or(false);
        let records = collection_records(args.array("records")?, sobject.as_deref(), update)?;
        let method = if update { "PATCH" } else { "POST" };
        let mut results: Vec<Value> = Vec::with_capacity(records.len());
        let mut held: Vec<HttpRequest> = Vec::new();
        let mut last = None;
        for (index, batch) in records.chunks(COLLECTION_BATCH).enumerate() {
            let body = json!({"allOrNone": all_or_none, "records": batch});
            let target = Target::Rest("/composite/sobjects".into());
            match self.send(http, method, target, Some(body), &[], Effect::Write).await? {
                Reply::HeldBack(request) => held.push(request),
                Reply::Answered(response) if (200..300).contains(&response.status) => {
                    let Value::Array(batch_results) = &response.body else {
                        return Err(ConnectorError::Transport(format!(
                            "Salesforce answered batch {} without a result list",
                            index + 1
                        )));
                    };
                    let failed = batch_results.iter().any(|r| r.get("success") != Some(&Value::Bool(true)));
                    results.extend(batch_results.iter().cloned());
                    last = Some(response);
                    if failed && all_or_none {
                        break;
                    }
                }
                Reply::Answered(response) => return Err(error_for(&response)),
            }
        }
        if !held.is_empty() {
            return Ok(client::dry_run_output(&held));
        }
        match last {
            Some(response) => Ok(client::output(response, Value::Array(results))),
            None => Ok(OperationOutput { status: None, body: Value::Array(results), ..Default::default() }),
        }
    }
}

/// Whether a field Salesforce holds has the value a write sent: numbers compare by value,
/// also when sent as text; anything else must be equal JSON.
fn same_field_value(current: &Value, sent: &Value) -> bool {
    match (current, sent) {
        (Value::Number(held), Value::Number(sent)) => held.as_f64() == sent.as_f64(),
        (Value::Number(held), Value::String(sent)) => sent.trim().parse::<f64>().ok() == held.as_f64(),
        _ => current == sent,
    }
}

/// A record body without `attributes` and id keys.
fn fields_only(mut record: Map<String, Value>) -> Value {
    record.retain(|k, _| !NOT_FIELDS.contains(&k.as_str()));
    Value::Object(record)
}

/// Records for sObject Collections: each with `attributes.type`, and for updates an `id`.
pub fn collection_records(
    records: Vec<Value>,
    sobject: Option<&str>,
    update: bool,
) -> Result<Vec<Value>, ConnectorError> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            let Value::Object(mut map) = record else {
                return Err(ConnectorError::InvalidInput(format!("`records[{index}]` must be an object")));
            };
            let declared =
                map.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str).map(str::to_string);
            let Some(kind) = declared.or_else(|| sobject.map(str::to_string)) else {
                return Err(ConnectorError::InvalidInput(format!(
                    "`records[{index}]` has no attributes.type; give `sobject` for all records"
                )));
            };
            api_name("object", &kind)?;
            let id = map.remove("Id").or_else(|| map.remove("id"));
            map.remove("attributes");
            let mut out = Map::new();
            out.insert("attributes".into(), json!({"type": kind}));
            match (update, id) {
                (true, Some(Value::String(id))) => {
                    out.insert("id".into(), Value::String(record_id(&id)?));
                }
                (true, _) => {
                    return Err(ConnectorError::InvalidInput(format!(
                        "`records[{index}]` needs an `id` to update"
                    )));
                }
                (false, Some(_)) => {
                    return Err(ConnectorError::InvalidInput(format!(
                        "`records[{index}]` has an id; new records must not"
                    )));
                }
                (false, None) => {}
            }
            out.extend(map);
            Ok(Value::Object(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_records_get_a_type_and_keep_ids_for_updates() {
        let records = vec![json!({"Name": "A"}), json!({"attributes": {"type": "Account"}, "Name": "B"})];
        let out = collection_records(records, Some("Opportunity"), false).unwrap();
        assert_eq!(out[0], json!({"attributes": {"type": "Opportunity"}, "Name": "A"}));
        assert_eq!(out[1]["attributes"]["type"], "Account");
        let updates = collection_records(
            vec![json!({"Id": "0065g00000Kq1ABAAZ", "StageName": "Closed Won"})],
            Some("Opportunity"),
            true,
        )
        .unwrap();
        assert_eq!(updates[0]["id"], "0065g00000Kq1ABAAZ");
        assert!(updates[0].get("Id").is_none());
        assert!(collection_records(vec![json!({"Name": "A"})], None, false).is_err());
        assert!(collection_records(vec![json!({"Name": "A"})], Some("Opportunity"), true).is_err());
    }
}
