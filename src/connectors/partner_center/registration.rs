//! Webhook registration on the Partner Center REST API: view, register (overwriting the
//! existing registration like the Salesforce solution's registration flow), update, delete,
//! supported events and test events.

use serde_json::{Value, json};

use crate::connectors::client::{self, Inputs, Reply, encode_component};
use crate::connectors::{ConnectorError, Effect, HttpClient, OperationOutput};

use super::{Api, ApiCall, PartnerCenterConnector, correlation_id, error_for};

/// The events the Salesforce solution registers.
pub const REFERRAL_EVENTS: &[&str] =
    &["referral-created", "referral-updated", "related-referral-created", "related-referral-updated"];

impl PartnerCenterConnector {
    fn registration_url(&self) -> String {
        format!("{}/webhooks/v1/registration", self.settings.webhooks_url)
    }

    async fn simple(
        &self,
        http: &HttpClient,
        call: ApiCall<'_>,
        effect: Effect,
    ) -> Result<OperationOutput, ConnectorError> {
        match self.send_ok(http, Api::Webhooks, call, effect).await? {
            Ok(response) => {
                let body = response.body.clone();
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }

    /// `get_registration`: one GET.
    pub(super) async fn get_registration(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let call = ApiCall::new("GET", self.registration_url(), &correlation_id(inputs));
        self.simple(http, call, Effect::Read).await
    }

    /// `register_webhook`: GET the registration, then POST a new one or PUT over it.
    pub(super) async fn register_webhook(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let wanted = registration_body(inputs, true)?;
        let overwrite = Inputs(inputs).opt_bool("overwrite")?.unwrap_or(true);
        let cid = correlation_id(inputs);
        let existing = match self
            .send(http, Api::Webhooks, ApiCall::new("GET", self.registration_url(), &cid), Effect::Read)
            .await?
        {
            Reply::HeldBack(request) => return Ok(client::dry_run_output(&[request])),
            Reply::Answered(response) if response.status == 404 => None,
            Reply::Answered(response) if (200..300).contains(&response.status) => Some(response.body)
                .filter(|b| b.get("WebhookUrl").and_then(Value::as_str).is_some_and(|u| !u.is_empty())),
            Reply::Answered(response) => return Err(error_for(&response)),
        };
        let method = match &existing {
            None => "POST",
            Some(current) if same_registration(current, &wanted) => {
                return Ok(OperationOutput {
                    status: Some(200),
                    body: current.clone(),
                    ..Default::default()
                });
            }
            Some(_) if overwrite => "PUT",
            Some(current) => {
                return Err(ConnectorError::InvalidInput(format!(
                    "a webhook registration for {} already exists; set `overwrite: true` to replace it",
                    current.get("WebhookUrl").and_then(Value::as_str).unwrap_or("another URL")
                )));
            }
        };
        let call = ApiCall::new(method, self.registration_url(), &cid).body(wanted);
        self.simple(http, call, Effect::Write).await
    }

    /// `update_registration`: one PUT.
    pub(super) async fn update_registration(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let body = registration_body(inputs, false)?;
        let call = ApiCall::new("PUT", self.registration_url(), &correlation_id(inputs)).body(body);
        self.simple(http, call, Effect::Write).await
    }

    /// `delete_registration`: one DELETE (offered by no Microsoft document; see the reference).
    pub(super) async fn delete_registration(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let call = ApiCall::new("DELETE", self.registration_url(), &correlation_id(inputs));
        let mut output = self.simple(http, call, Effect::Write).await?;
        if output.body == Value::String(String::new()) {
            output.body = Value::Null;
        }
        Ok(output)
    }

    /// `list_events`: one GET.
    pub(super) async fn list_events(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let call =
            ApiCall::new("GET", format!("{}/events", self.registration_url()), &correlation_id(inputs));
        self.simple(http, call, Effect::Read).await
    }

    /// `validate`: one POST asking for a test event (Partner Center allows 2 per minute).
    pub(super) async fn validate(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let url = format!("{}/validationEvents", self.registration_url());
        let call = ApiCall::new("POST", url, &correlation_id(inputs));
        self.simple(http, call, Effect::Write).await
    }

    /// `get_validation_status`: one GET.
    pub(super) async fn get_validation_status(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let id = Inputs(inputs).str("correlation_id")?;
        let url = format!("{}/validationEvents/{}", self.registration_url(), encode_component(&id));
        let call = ApiCall::new("GET", url, &uuid::Uuid::new_v4().to_string());
        self.simple(http, call, Effect::Read).await
    }
}

/// The registration body from `url`, `events` and `signature_in_header` inputs.
fn registration_body(inputs: &Value, default_events: bool) -> Result<Value, ConnectorError> {
    let args = Inputs(inputs);
    let url = args.str("url")?;
    match url::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {}
        _ => {
            return Err(ConnectorError::InvalidInput(format!(
                "`url` must be an absolute https URL, got `{url}`"
            )));
        }
    }
    let events = match args.opt_list("events")? {
        Some(events) if !events.is_empty() => events,
        _ if default_events => REFERRAL_EVENTS.iter().map(|e| e.to_string()).collect(),
        _ => return Err(ConnectorError::InvalidInput("`events` must list at least one event".into())),
    };
    let in_header = args.opt_bool("signature_in_header")?.unwrap_or(true);
    Ok(json!({"WebhookUrl": url, "WebhookEvents": events, "SignatureTokenToMsSignatureHeader": in_header}))
}

/// Whether the current registration already has the wanted URL and events (in any order).
fn same_registration(current: &Value, wanted: &Value) -> bool {
    let events = |v: &Value| {
        let mut list: Vec<String> = v
            .get("WebhookEvents")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
            .unwrap_or_default();
        list.sort();
        list
    };
    current.get("WebhookUrl") == wanted.get("WebhookUrl") && events(current) == events(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_body_matches_the_documented_request() {
        let sample: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/connectors/pc-webhook-registration.json"
        ))
        .unwrap();
        let body =
            registration_body(&json!({"url": "https://sync.example.com/partner-center/webhook"}), true)
                .unwrap();
        assert_eq!(body, sample["request"]["body"]);
        assert!(same_registration(&sample["response"]["body"], &body));
        assert!(registration_body(&json!({"url": "https://x"}), false).is_err());
        assert!(registration_body(&json!({"url": "not a url"}), true).is_err());
    }
}
