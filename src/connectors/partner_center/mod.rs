//! Partner Center connector (kind `partner_center`): co-sell referrals on
//! `api.partner.microsoft.com` and webhook registration on `api.partnercenter.microsoft.com`,
//! each with its own token audience.
//!
//! API calls per operation (a cached token costs nothing; a token fetch is one more call):
//! `get_referral`, `create_referral`, `patch_referral`, every registration call: 1.
//! `update_referral`: 1 GET + 1 PUT, or only the GET when the changes are already there; the GET
//! is skipped when the referral just read is passed as `current`; a 412 adds one more GET + PUT. `list_referrals`: 1 per page of up to 100. `register_webhook`:
//! 1 GET + 1 POST or PUT.

mod auth;
mod referrals;
mod registration;
pub mod webhook;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

pub use auth::{AadAuth, AadGrant};
pub use webhook::{CertCache, VerifiedEvent, VerifierConfig, WebhookError};

use super::client::{self, CachedToken, Reply, TokenCache};
use super::config::{BuildContext, LimitsDef};
use super::limits::{Limiter, Limits};
use super::{
    Connector, ConnectorError, Effect, HttpClient, HttpResponse, OperationCall, OperationOutput,
    OperationSpec,
};

/// Where the Referrals API lives.
pub const DEFAULT_REFERRALS_URL: &str = "https://api.partner.microsoft.com";
/// Where webhook registration lives.
pub const DEFAULT_WEBHOOKS_URL: &str = "https://api.partnercenter.microsoft.com";
/// Token audience of the Referrals API.
pub const REFERRALS_RESOURCE: &str = "https://api.partner.microsoft.com";
/// Token audience of the Partner Center REST API (webhooks).
pub const WEBHOOKS_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
/// Azure AD v1 token endpoint used by the Referrals API documentation.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/common/oauth2/token";

/// Operations of the Partner Center connector.
pub const OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "list_referrals",
        effect: Effect::Read,
        description: "List referrals ($filter, $orderby, ...), following next links up to `max_items`.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "get_referral",
        effect: Effect::Read,
        description: "Get one referral by id.",
        required_inputs: &["id"],
    },
    OperationSpec {
        name: "create_referral",
        effect: Effect::Write,
        description: "Create a referral.",
        required_inputs: &["referral"],
    },
    OperationSpec {
        name: "update_referral",
        effect: Effect::Write,
        description: "Read a referral, merge `changes` into it and PUT it with If-Match; re-read and retry once on 412.",
        required_inputs: &["id", "changes"],
    },
    OperationSpec {
        name: "patch_referral",
        effect: Effect::Write,
        description: "Change fields of a referral with JSON Patch `replace`/`add` operations.",
        required_inputs: &["id", "operations"],
    },
    OperationSpec {
        name: "get_registration",
        effect: Effect::Read,
        description: "The tenant's webhook registration.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "register_webhook",
        effect: Effect::Write,
        description: "Register a webhook URL for events, replacing an existing registration when `overwrite`.",
        required_inputs: &["url"],
    },
    OperationSpec {
        name: "update_registration",
        effect: Effect::Write,
        description: "Replace the webhook registration.",
        required_inputs: &["url", "events"],
    },
    OperationSpec {
        name: "delete_registration",
        effect: Effect::Write,
        description: "Delete the webhook registration.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "list_events",
        effect: Effect::Read,
        description: "Event names webhooks can register for.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "validate",
        effect: Effect::Write,
        description: "Ask Partner Center to send a test event to the registered URL.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "get_validation_status",
        effect: Effect::Read,
        description: "Delivery results of a test event.",
        required_inputs: &["correlation_id"],
    },
];

/// A Partner Center connection as written in `coflow.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerCenterDef {
    /// Sign-in for the Referrals API (App+User).
    pub auth: auth::AadAuthDef,
    /// Sign-in for webhook registration; defaults to `auth`.
    #[serde(default)]
    pub webhook_auth: Option<auth::AadAuthDef>,
    /// Referrals API base URL.
    #[serde(default)]
    pub referrals_url: Option<String>,
    /// Webhook registration base URL.
    #[serde(default)]
    pub webhooks_url: Option<String>,
    /// Token audience of the Referrals API.
    #[serde(default)]
    pub referrals_resource: Option<String>,
    /// Token audience of webhook registration.
    #[serde(default)]
    pub webhooks_resource: Option<String>,
    /// Most referrals `list_referrals` collects unless the action says otherwise.
    #[serde(default)]
    pub max_items: Option<u64>,
    /// Concurrency and call-rate limits.
    #[serde(default)]
    pub limits: LimitsDef,
    /// How the webhook trigger checks event signatures.
    #[serde(default)]
    pub webhook: webhook::VerifierDef,
}

/// A Partner Center connection, resolved and checked.
#[derive(Debug, Clone)]
pub struct PartnerCenterSettings {
    /// Referrals API base URL, without trailing slash.
    pub referrals_url: String,
    /// Webhook registration base URL, without trailing slash.
    pub webhooks_url: String,
    /// Sign-in for the Referrals API.
    pub auth: AadAuth,
    /// Sign-in for webhook registration.
    pub webhook_auth: AadAuth,
    /// Default cap of `list_referrals`.
    pub max_items: u64,
    /// Limits.
    pub limits: Limits,
    /// Webhook signature checks.
    pub webhook: VerifierConfig,
}

impl PartnerCenterDef {
    /// Resolves secrets and checks values, recording problems in `cx`.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> PartnerCenterSettings {
        let referrals_resource = self.referrals_resource.as_deref().unwrap_or(REFERRALS_RESOURCE);
        let webhooks_resource = self.webhooks_resource.as_deref().unwrap_or(WEBHOOKS_RESOURCE);
        let auth = self.auth.build("auth", referrals_resource, cx);
        let webhook_auth = match &self.webhook_auth {
            Some(def) => def.build("webhook_auth", webhooks_resource, cx),
            None => auth.for_resource(webhooks_resource),
        };
        if matches!(auth.grant, AadGrant::ClientCredentials) {
            cx.invalid(
                "auth.type",
                "the Referrals API accepts App+User tokens only: use refresh_token or password",
            );
        }
        let max_items = self.max_items.unwrap_or(1000);
        if max_items == 0 {
            cx.invalid("max_items", "must be at least 1");
        }
        PartnerCenterSettings {
            referrals_url: cx
                .url("referrals_url", self.referrals_url.as_deref().unwrap_or(DEFAULT_REFERRALS_URL)),
            webhooks_url: cx
                .url("webhooks_url", self.webhooks_url.as_deref().unwrap_or(DEFAULT_WEBHOOKS_URL)),
            auth,
            webhook_auth,
            max_items,
            limits: self.limits.build(Limits::PARTNER_CENTER, cx),
            webhook: self.webhook.build(cx),
        }
    }
}

/// Which of the two Partner Center APIs a call goes to (each has its own token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Referrals,
    Webhooks,
}

/// The Partner Center connector of one connection.
#[derive(Debug)]
pub struct PartnerCenterConnector {
    settings: PartnerCenterSettings,
    limiter: Limiter,
    referrals_token: TokenCache,
    webhooks_token: TokenCache,
}

impl PartnerCenterConnector {
    /// A connector for `settings`; no call is made until an operation runs.
    pub fn new(settings: PartnerCenterSettings) -> Self {
        PartnerCenterConnector {
            limiter: Limiter::new(settings.limits),
            settings,
            referrals_token: TokenCache::default(),
            webhooks_token: TokenCache::default(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &PartnerCenterSettings {
        &self.settings
    }

    /// Signature checks for this connection's webhook trigger.
    pub fn verifier_config(&self) -> &VerifierConfig {
        &self.settings.webhook
    }

    fn cache(&self, api: Api) -> &TokenCache {
        match api {
            Api::Referrals => &self.referrals_token,
            Api::Webhooks => &self.webhooks_token,
        }
    }

    async fn token(&self, http: &HttpClient, api: Api) -> Result<CachedToken, ConnectorError> {
        let auth = match api {
            Api::Referrals => &self.settings.auth,
            Api::Webhooks => &self.settings.webhook_auth,
        };
        self.cache(api).get(|| auth.fetch(http)).await
    }

    /// Sends one authenticated call; a 401 drops the cached token and tries once more.
    async fn send(
        &self,
        http: &HttpClient,
        api: Api,
        call: ApiCall<'_>,
        effect: Effect,
    ) -> Result<Reply, ConnectorError> {
        let mut renewed = false;
        // One logical call keeps its MS-RequestId when repeated (Partner Center's idempotency key).
        let request_id = uuid::Uuid::new_v4().to_string();
        loop {
            let token = self.token(http, api).await?;
            crate::expr::secrets::register(token.access_token.expose());
            let mut headers = vec![
                ("Authorization", format!("Bearer {}", token.access_token.expose())),
                ("Accept", "application/json".to_string()),
                // The certified connector sends it on every call, GET included.
                ("Content-Type", "application/json".to_string()),
                ("MS-RequestId", request_id.clone()),
                ("MS-CorrelationId", call.correlation_id.clone()),
            ];
            headers.extend(call.headers.iter().map(|(k, v)| (*k, v.clone())));
            let request = client::request(call.method, call.url.clone(), &headers, call.body.clone());
            let reply = client::send(http, &self.limiter, request, effect).await?;
            if let Reply::Answered(response) = &reply
                && response.status == 401
                && !renewed
            {
                renewed = true;
                self.cache(api).invalidate(&token).await;
                continue;
            }
            return Ok(reply);
        }
    }

    /// Sends a call and insists on a 2xx answer (or a dry-run hold-back).
    async fn send_ok(
        &self,
        http: &HttpClient,
        api: Api,
        call: ApiCall<'_>,
        effect: Effect,
    ) -> Result<Result<HttpResponse, OperationOutput>, ConnectorError> {
        match self.send(http, api, call, effect).await? {
            Reply::HeldBack(request) => Ok(Err(client::dry_run_output(&[request]))),
            Reply::Answered(response) if (200..300).contains(&response.status) => Ok(Ok(response)),
            Reply::Answered(response) => Err(error_for(&response)),
        }
    }
}

/// One call to send: method, URL, body and extra headers.
#[derive(Debug, Clone)]
struct ApiCall<'a> {
    method: &'a str,
    url: String,
    body: Option<Value>,
    headers: Vec<(&'a str, String)>,
    correlation_id: String,
}

impl<'a> ApiCall<'a> {
    fn new(method: &'a str, url: String, correlation_id: &str) -> Self {
        ApiCall { method, url, body: None, headers: Vec::new(), correlation_id: correlation_id.to_string() }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn header(mut self, name: &'a str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// The error for a Partner Center error answer, whichever of its error shapes the body uses.
fn error_for(response: &HttpResponse) -> ConnectorError {
    client::status_error(response, error_message(response.status, &response.body))
}

/// A readable message from the Referrals (`{"error":{code,message}}`), Partner Center REST
/// (`{code, description}`) or throttling (`{statusCode, message}`) error bodies.
fn error_message(status: u16, body: &Value) -> String {
    let pick = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let error = body.get("error").unwrap_or(body);
    let code = pick(error, "code");
    let message = pick(error, "message").or_else(|| pick(error, "description"));
    let summary = match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (None, Some(message)) => message,
        (Some(code), None) => code,
        (None, None) => match body {
            Value::String(text) if !text.is_empty() => text.chars().take(300).collect(),
            _ => String::new(),
        },
    };
    let hint = match status {
        401 => " (the token was refused: check the connection's credentials)",
        403 => " (the signed-in user needs the Referral Admin or Referral User role)",
        412 => " (the referral changed since it was read)",
        429 => " (throttled by Partner Center)",
        _ => "",
    };
    if summary.is_empty() {
        format!("Partner Center answered {status}{hint}")
    } else {
        format!("{summary}{hint}")
    }
}

fn correlation_id(inputs: &Value) -> String {
    inputs
        .get("correlation_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

impl Connector for PartnerCenterConnector {
    fn kind(&self) -> &'static str {
        "partner_center"
    }

    fn operations(&self) -> &'static [OperationSpec] {
        OPERATIONS
    }

    fn call<'a>(&'a self, call: OperationCall<'a>) -> BoxFuture<'a, Result<OperationOutput, ConnectorError>> {
        Box::pin(async move {
            let http = call.http;
            let inputs = call.inputs;
            match call.operation {
                "list_referrals" => self.list_referrals(http, inputs).await,
                "get_referral" => self.get_referral(http, inputs).await,
                "create_referral" => self.create_referral(http, inputs, call.may_have_landed).await,
                "update_referral" => self.update_referral(http, inputs).await,
                "patch_referral" => self.patch_referral(http, inputs).await,
                "get_registration" => self.get_registration(http, inputs).await,
                "register_webhook" => self.register_webhook(http, inputs).await,
                "update_registration" => self.update_registration(http, inputs).await,
                "delete_registration" => self.delete_registration(http, inputs).await,
                "list_events" => self.list_events(http, inputs).await,
                "validate" => self.validate(http, inputs).await,
                "get_validation_status" => self.get_validation_status(http, inputs).await,
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
    fn error_messages_read_every_documented_shape() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/connectors/pc-error-412.json"))
                .unwrap();
        let msg = error_message(412, &sample);
        assert!(msg.starts_with("preconditionFailed: A precondition"), "{msg}");
        assert!(msg.contains("changed since it was read"));
        let rest = json!({"code": "2000", "description": "Registration not found"});
        assert_eq!(error_message(404, &rest), "2000: Registration not found");
        let throttled =
            json!({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."});
        assert!(error_message(429, &throttled).starts_with("Rate limit is exceeded"));
        assert_eq!(error_message(500, &Value::Null), "Partner Center answered 500");
    }
}
