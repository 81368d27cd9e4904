//! SOQL queries with paging, describe, the replication resources (`updated`, `deleted`), and
//! quoting of SOQL string literals.

use serde_json::{Value, json};

use crate::connectors::client::{self, Inputs, Reply, encode_component};
use crate::connectors::{ConnectorError, Effect, HttpClient, OperationOutput};

use super::{SalesforceConnector, Target, api_name, error_for};

/// `value` as a SOQL string literal: backslash escaped first, then quotes and control characters.
pub fn soql_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

impl SalesforceConnector {
    /// `query` / `query_all`: one GET per page, following `nextRecordsUrl` until `limit`.
    pub(super) async fn query(
        &self,
        http: &HttpClient,
        inputs: &Value,
        all: bool,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let soql = args.str("soql")?;
        let limit = args.opt_u64("limit")?.map(|l| l as usize);
        let mut headers = Vec::new();
        if let Some(size) = args.opt_u64("batch_size")? {
            headers.push(("Sforce-Query-Options", format!("batchSize={}", size.clamp(200, 2000))));
        }
        let resource = if all { "queryAll" } else { "query" };
        let mut target = Target::Rest(format!("/{resource}?q={}", encode_component(&soql)));
        let mut records: Vec<Value> = Vec::new();
        let mut total = None;
        loop {
            let response = match self.send(http, "GET", target, None, &headers, Effect::Read).await? {
                Reply::Answered(r) if (200..300).contains(&r.status) => r,
                Reply::Answered(r) => return Err(error_for(&r)),
                Reply::HeldBack(request) => return Ok(client::dry_run_output(&[request])),
            };
            let page = &response.body;
            if total.is_none() {
                total = page.get("totalSize").cloned();
            }
            let Some(page_records) = page.get("records").and_then(Value::as_array) else {
                return Err(ConnectorError::Transport(
                    "Salesforce answered a query without `records`".into(),
                ));
            };
            let room = limit.map_or(usize::MAX, |l| l.saturating_sub(records.len()));
            records.extend(page_records.iter().take(room).cloned());
            let next = page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let full = limit.is_some_and(|l| records.len() >= l);
            match next {
                Some(next) if !full => target = Target::Instance(instance_path(&next)?),
                next => {
                    let done = next.is_none() && page_records.len() <= room;
                    let mut body = json!({"totalSize": total.unwrap_or(Value::from(records.len())), "done": done, "records": records});
                    if let Some(next) = next {
                        body["nextRecordsUrl"] = Value::String(next);
                    }
                    return Ok(client::output(response, body));
                }
            }
        }
    }

    /// `describe`: one GET.
    pub(super) async fn describe(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let sobject = api_name("object", &Inputs(inputs).str("sobject")?)?;
        let target = Target::Rest(format!("/sobjects/{sobject}/describe"));
        match self.send_ok(http, "GET", target, None, Effect::Read).await? {
            Ok(response) => {
                let body = response.body.clone();
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }

    /// `get_updated` / `get_deleted`: one GET on the replication resource.
    pub(super) async fn replication(
        &self,
        http: &HttpClient,
        inputs: &Value,
        kind: &str,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let sobject = api_name("object", &args.str("sobject")?)?;
        let start = replication_time("start", &args.str("start")?)?;
        let end = replication_time("end", &args.str("end")?)?;
        let path = format!(
            "/sobjects/{sobject}/{kind}/?start={}&end={}",
            encode_component(&start),
            encode_component(&end)
        );
        match self.send_ok(http, "GET", Target::Rest(path), None, Effect::Read).await? {
            Ok(response) => {
                let body = response.body.clone();
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }
}

/// A `nextRecordsUrl` is a path on the instance; anything else is refused.
fn instance_path(next: &str) -> Result<String, ConnectorError> {
    if next.starts_with("/services/") && !next.contains("://") {
        Ok(next.to_string())
    } else {
        Err(ConnectorError::Transport(format!("Salesforce sent an unexpected nextRecordsUrl `{next}`")))
    }
}

/// An ISO-8601 instant in the form the replication resources document (`…+00:00`).
fn replication_time(key: &str, text: &str) -> Result<String, ConnectorError> {
    let at: jiff::Timestamp = text.parse().map_err(|_| {
        ConnectorError::InvalidInput(format!(
            "`{key}` must be an ISO-8601 date-time with an offset, got `{text}`"
        ))
    })?;
    Ok(at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_quote_escapes_backslash_before_quotes() {
        assert_eq!(soql_quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(soql_quote(r"a\'b"), r"'a\\\'b'");
        assert_eq!(soql_quote("line\nnext\t\"q\""), r#"'line\nnext\t\"q\"'"#);
        assert_eq!(soql_quote("x' OR Name != '"), r"'x\' OR Name != \''");
    }

    #[test]
    fn next_records_urls_stay_on_the_instance() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/connectors/sf-query-page.json"))
                .unwrap();
        let next = sample["nextRecordsUrl"].as_str().unwrap();
        assert_eq!(instance_path(next).unwrap(), "/services/data/v59.0/query/01g5g00000Ab1CdAAJ-2000");
        assert!(instance_path("https://evil.example/services/x").is_err());
    }

    #[test]
    fn replication_times_are_normalised_to_utc() {
        assert_eq!(
            replication_time("start", "2024-05-06T02:00:00+02:00").unwrap(),
            "2024-05-06T00:00:00+00:00"
        );
        assert!(replication_time("start", "yesterday").is_err());
    }
}
