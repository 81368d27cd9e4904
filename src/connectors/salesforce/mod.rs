//! Salesforce connector (kind `salesforce`): records, SOQL, describe, sObject Collections and
//! the replication resources of the REST API, signed in with OAuth.
//!
//! API calls per operation (the session is cached; signing in is one more call, and a 401
//! costs one sign-in and one repeat): `get_record`, `create_record`, `update_record`,
//! `upsert_record`, `delete_record`, `describe`, `get_updated`, `get_deleted`: 1.
//! `query`/`query_all`: 1 per page (up to 2000 records). `create_records`/`update_records`:
//! 1 per 200 records.

mod auth;
pub mod poll;
mod query;
mod records;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

pub use auth::{SfAuth, SfAuthDef, SfAuthKind, SfGrant};
pub use query::soql_quote;

use super::client::{self, CachedToken, Reply, TokenCache};
use super::config::{BuildContext, LimitsDef};
use super::limits::{Limiter, Limits};
use super::{
    Connector, ConnectorError, Effect, HttpClient, HttpResponse, OperationCall, OperationOutput,
    OperationSpec,
};

/// API version used when the connection names none.
pub const DEFAULT_API_VERSION: &str = "59.0";

/// Operations of the Salesforce connector.
pub const OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "get_record",
        effect: Effect::Read,
        description: "Get one record by id, optionally only some fields.",
        required_inputs: &["sobject", "id"],
    },
    OperationSpec {
        name: "create_record",
        effect: Effect::Write,
        description: "Create one record.",
        required_inputs: &["sobject", "record"],
    },
    OperationSpec {
        name: "update_record",
        effect: Effect::Write,
        description: "Change fields of one record.",
        required_inputs: &["sobject", "id", "record"],
    },
    OperationSpec {
        name: "upsert_record",
        effect: Effect::Write,
        description: "Create or update one record matched by an external id field.",
        required_inputs: &["sobject", "external_id_field", "external_id", "record"],
    },
    OperationSpec {
        name: "delete_record",
        effect: Effect::Write,
        description: "Delete one record.",
        required_inputs: &["sobject", "id"],
    },
    OperationSpec {
        name: "query",
        effect: Effect::Read,
        description: "Run a SOQL query, following nextRecordsUrl up to `limit` records.",
        required_inputs: &["soql"],
    },
    OperationSpec {
        name: "query_all",
        effect: Effect::Read,
        description: "Run a SOQL query including deleted and archived records, with paging.",
        required_inputs: &["soql"],
    },
    OperationSpec {
        name: "describe",
        effect: Effect::Read,
        description: "Describe an object: fields, picklists, relationships.",
        required_inputs: &["sobject"],
    },
    OperationSpec {
        name: "create_records",
        effect: Effect::Write,
        description: "Create many records through sObject Collections, 200 per call.",
        required_inputs: &["records"],
    },
    OperationSpec {
        name: "update_records",
        effect: Effect::Write,
        description: "Update many records through sObject Collections, 200 per call.",
        required_inputs: &["records"],
    },
    OperationSpec {
        name: "get_updated",
        effect: Effect::Read,
        description: "Ids of records of an object changed between `start` and `end`.",
        required_inputs: &["sobject", "start", "end"],
    },
    OperationSpec {
        name: "get_deleted",
        effect: Effect::Read,
        description: "Records of an object deleted between `start` and `end`.",
        required_inputs: &["sobject", "start", "end"],
    },
];

/// A Salesforce connection as written in `coflow.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceDef {
    /// Where to sign in: `https://login.salesforce.com`, `https://test.salesforce.com` or the
    /// org's My Domain (required for client credentials).
    pub login_url: String,
    /// REST API version, e.g. `59.0`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Sign-in.
    pub auth: SfAuthDef,
    /// Concurrency and call-rate limits (default 900 calls per 60 s, 8 at a time).
    #[serde(default)]
    pub limits: LimitsDef,
}

/// A Salesforce connection, resolved and checked.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Login URL without trailing slash.
    pub login_url: String,
    /// API version without the `v`.
    pub api_version: String,
    /// Sign-in.
    pub auth: SfAuth,
    /// Limits.
    pub limits: Limits,
}

impl SalesforceDef {
    /// Resolves secrets and checks values, recording problems in `cx`.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> SalesforceSettings {
        let login_url = cx.url("login_url", &self.login_url);
        let version = self.api_version.clone().unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let version = version.trim_start_matches(['v', 'V']).to_string();
        let well_formed = version.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
        });
        if !well_formed {
            cx.invalid("api_version", format!("must look like 59.0, got `{version}`"));
        }
        let auth = self.auth.build(format!("{login_url}/services/oauth2/token"), cx);
        SalesforceSettings {
            login_url,
            api_version: version,
            auth,
            limits: self.limits.build(Limits::SALESFORCE, cx),
        }
    }
}

/// Where a call goes: under `/services/data/vXX.X` or a path from the instance root.
#[derive(Debug, Clone)]
enum Target {
    Rest(String),
    Instance(String),
}

/// The Salesforce connector of one connection.
#[derive(Debug)]
pub struct SalesforceConnector {
    settings: SalesforceSettings,
    limiter: Limiter,
    session: TokenCache,
}

impl SalesforceConnector {
    /// A connector for `settings`; no call is made until an operation runs.
    pub fn new(settings: SalesforceSettings) -> Self {
        SalesforceConnector {
            limiter: Limiter::new(settings.limits),
            settings,
            session: TokenCache::default(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &SalesforceSettings {
        &self.settings
    }

    fn url(&self, session: &CachedToken, target: &Target) -> String {
        let instance = session.instance_url.as_deref().unwrap_or(&self.settings.login_url);
        match target {
            Target::Rest(path) => format!("{instance}/services/data/v{}{path}", self.settings.api_version),
            Target::Instance(path) => format!("{instance}{path}"),
        }
    }

    /// Sends one call; on 401 (INVALID_SESSION_ID) signs in again once and repeats it.
    async fn send(
        &self,
        http: &HttpClient,
        method: &str,
        target: Target,
        body: Option<Value>,
        headers: &[(&str, String)],
        effect: Effect,
    ) -> Result<Reply, ConnectorError> {
        let mut renewed = false;
        loop {
            let session = self.session.get(|| self.settings.auth.fetch(http)).await?;
            crate::expr::secrets::register(session.access_token.expose());
            let mut all = vec![
                ("Authorization", format!("Bearer {}", session.access_token.expose())),
                ("Accept", "application/json".to_string()),
            ];
            all.extend(headers.iter().map(|(k, v)| (*k, v.clone())));
            let request = client::request(method, self.url(&session, &target), &all, body.clone());
            let reply = client::send(http, &self.limiter, request, effect).await?;
            if let Reply::Answered(response) = &reply
                && response.status == 401
                && !renewed
            {
                renewed = true;
                self.session.invalidate(&session).await;
                continue;
            }
            return Ok(reply);
        }
    }

    /// Sends a call and insists on a 2xx answer (or a dry-run hold-back).
    async fn send_ok(
        &self,
        http: &HttpClient,
        method: &str,
        target: Target,
        body: Option<Value>,
        effect: Effect,
    ) -> Result<Result<HttpResponse, OperationOutput>, ConnectorError> {
        match self.send(http, method, target, body, &[], effect).await? {
            Reply::HeldBack(request) => Ok(Err(client::dry_run_output(&[request]))),
            Reply::Answered(response) if (200..300).contains(&response.status) => Ok(Ok(response)),
            Reply::Answered(response) => Err(error_for(&response)),
        }
    }
}

/// The error for a Salesforce error answer (`[{message, errorCode, fields}]`).
fn error_for(response: &HttpResponse) -> ConnectorError {
    client::status_error(response, error_message(response.status, &response.body))
}

/// A readable message from Salesforce's error array (or any other body).
fn error_message(status: u16, body: &Value) -> String {
    let entries: Vec<String> = match body {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| {
                let code = item.get("errorCode").and_then(Value::as_str);
                let message = item.get("message").and_then(Value::as_str);
                match (code, message) {
                    (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                    (None, Some(m)) => Some(m.to_string()),
                    (Some(c), None) => Some(c.to_string()),
                    // 300 on upsert: the body lists the matching records' URLs.
                    _ => item.as_str().map(str::to_string),
                }
            })
            .collect(),
        Value::String(text) if !text.is_empty() => vec![text.chars().take(300).collect()],
        _ => Vec::new(),
    };
    let hint = match status {
        300 => "MULTIPLE_CHOICES: more than one record has this external id: ",
        401 => "the session was refused twice; check the connection's credentials: ",
        _ => "",
    };
    if entries.is_empty() {
        format!("{hint}Salesforce answered {status}")
    } else {
        format!("{hint}{}", entries.join("; "))
    }
}

/// Checks an sObject or field API name, so inputs cannot change the URL's path.
fn api_name(kind: &str, name: &str) -> Result<String, ConnectorError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(ConnectorError::InvalidInput(format!("`{name}` is not a valid {kind} API name")))
    }
}

/// Checks a 15- or 18-character record id.
fn record_id(id: &str) -> Result<String, ConnectorError> {
    let ok = (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(id.to_string())
    } else {
        Err(ConnectorError::InvalidInput(format!(
            "`{id}` is not a Salesforce record id (15 or 18 letters and digits)"
        )))
    }
}

impl Connector for SalesforceConnector {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    fn operations(&self) -> &'static [OperationSpec] {
        OPERATIONS
    }

    fn call<'a>(&'a self, call: OperationCall<'a>) -> BoxFuture<'a, Result<OperationOutput, ConnectorError>> {
        Box::pin(async move {
            let http = call.http;
            let inputs = call.inputs;
            match call.operation {
                "get_record" => self.get_record(http, inputs).await,
                "create_record" => self.create_record(http, inputs).await,
                "update_record" => self.update_record(http, inputs).await,
                "upsert_record" => self.upsert_record(http, inputs, call.may_have_landed).await,
                "delete_record" => self.delete_record(http, inputs).await,
                "query" => self.query(http, inputs, false).await,
                "query_all" => self.query(http, inputs, true).await,
                "describe" => self.describe(http, inputs).await,
                "create_records" => self.write_records(http, inputs, false).await,
                "update_records" => self.write_records(http, inputs, true).await,
                "get_updated" => self.replication(http, inputs, "updated").await,
                "get_deleted" => self.replication(http, inputs, "deleted").await,
                other => Err(ConnectorError::UnknownOperation(other.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_arrays_become_readable_messages() {
        let sample: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/connectors/sf-error-invalid-session.json"
        ))
        .unwrap();
        assert_eq!(error_message(400, &sample), "INVALID_SESSION_ID: Session expired or invalid");
        let two = json!([{"errorCode": "A", "message": "x"}, {"errorCode": "B", "message": "y"}]);
        assert_eq!(error_message(400, &two), "A: x; B: y");
        let multiple = json!([
            "/services/data/v59.0/sobjects/Account/001A",
            "/services/data/v59.0/sobjects/Account/001B"
        ]);
        assert!(error_message(300, &multiple).starts_with("MULTIPLE_CHOICES"));
    }

    #[test]
    fn names_and_ids_are_checked() {
        assert!(api_name("object", "Microsoft_Solution__c").is_ok());
        assert!(api_name("object", "Opportunity/../x").is_err());
        assert!(record_id("0065g00000Kq1ABAAZ").is_ok());
        assert!(record_id("0065g00000Kq1AB").is_ok());
        assert!(record_id("006/../../x").is_err());
    }
}
