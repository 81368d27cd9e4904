//! The Partner Center emulator and fault injection, driven over HTTP on loopback.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use coflow::sandbox::{
    faults::{self, Faults},
    partner_center::{self, PartnerCenter, PartnerCenterConfig},
};
use reqwest::{Client, Response};
use serde_json::{Value, json};

const ADMIN: &str = "admin@coflow-sandbox.onmicrosoft.com";
const ADMIN_PASSWORD: &str = "sandbox-admin-password";
const REFERRALS: &str = "https://api.partner.microsoft.com";
const REST: &str = "https://api.partnercenter.microsoft.com";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/sandbox/pc/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A running emulator.
struct Sandbox {
    base: String,
    pc: Arc<PartnerCenter>,
    faults: Arc<Faults>,
    http: Client,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn start_with(configure: impl FnOnce(&mut PartnerCenterConfig)) -> Sandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = PartnerCenterConfig {
        base_url: base.clone(),
        delivery_retry_interval: Duration::from_millis(20),
        ..Default::default()
    };
    configure(&mut config);
    let pc = PartnerCenter::try_new(config).unwrap();
    let faults = Faults::new(7);
    let app = faults::apply(partner_center::router(pc.clone()), faults.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Sandbox { base, pc, faults, http: Client::new() }
}

async fn start() -> Sandbox {
    start_with(|_| {}).await
}

impl Sandbox {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn token_form(&self, version: &str, form: &[(&str, &str)]) -> Response {
        let path = match version {
            "v2" => "/common/oauth2/v2.0/token",
            _ => "/common/oauth2/token",
        };
        self.http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish())
            .send()
            .await
            .unwrap()
    }

    async fn user_token(&self, user: &str, password: &str, resource: &str) -> String {
        let response = self
            .token_form(
                "v1",
                &[
                    ("grant_type", "password"),
                    ("client_id", "coflow-sandbox-app"),
                    ("client_secret", "coflow-sandbox-secret"),
                    ("username", user),
                    ("password", password),
                    ("resource", resource),
                    ("scope", "openid"),
                ],
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn admin_token(&self) -> String {
        self.user_token(ADMIN, ADMIN_PASSWORD, REFERRALS).await
    }

    async fn app_token(&self, resource: &str) -> String {
        let body: Value = self
            .token_form(
                "v1",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "coflow-sandbox-app"),
                    ("client_secret", "coflow-sandbox-secret"),
                    ("resource", resource),
                ],
            )
            .await
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn create(&self, token: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(self.url("/v1.0/engagements/referrals"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn get_referral(&self, token: &str, id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/v1.0/engagements/referrals/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn patch(&self, token: &str, id: &str, ops: &Value) -> Response {
        self.http
            .patch(self.url(&format!("/v1.0/engagements/referrals/{id}")))
            .bearer_auth(token)
            .json(ops)
            .send()
            .await
            .unwrap()
    }

    async fn list(&self, token: &str, query: &[(&str, &str)]) -> Response {
        let mut url = url::Url::parse(&self.url("/v1.0/engagements/referrals")).unwrap();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }

    async fn register(&self, token: &str, url: &str, events: &[&str], ms_header: bool) -> Value {
        let response = self
            .http
            .post(self.url("/webhooks/v1/registration"))
            .bearer_auth(token)
            .json(&json!({"WebhookUrl": url, "WebhookEvents": events, "SignatureTokenToMsSignatureHeader": ms_header}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn admin_json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn deliveries(&self) -> Vec<Value> {
        let body = self.admin_json(reqwest::Method::GET, "/__sandbox/deliveries", None).await;
        body["value"].as_array().unwrap().clone()
    }

    /// Waits (bounded) until every delivery has finished.
    async fn settled_deliveries(&self, expected: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let deliveries = self.deliveries().await;
            let done = deliveries.len() >= expected && deliveries.iter().all(|d| d["state"] != "pending");
            if done || Instant::now() > deadline {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A minimal valid create body, like the documented private-deal example.
fn new_referral(name: &str) -> Value {
    json!({
        "name": name,
        "externalReferenceId": "0068d00000AbCdEAAV",
        "qualification": "SalesQualified",
        "type": "Independent",
        "customerProfile": {"name": "Fabrikam Inc", "size": "1001to5000employees",
            "address": {"addressLine1": "1 Fabrikam Way", "city": "Seattle", "state": "WA",
                        "postalCode": "98101", "country": "US"},
            "team": [{"firstName": "Dana", "lastName": "Reyes", "email": "dana.reyes@fabrikam.com", "phoneNumber": "+12065550100"}]},
        "consent": {"consentToShareReferralWithMicrosoftSellers": false, "consentToContact": true,
                    "consentToToShareInfoWithOthers": false},
        "details": {"notes": "PoC first", "dealValue": 120000, "currency": "USD",
                    "closingDateTime": "2024-06-30T00:00:00Z"},
        "team": [{"firstName": "Priya", "lastName": "Natarajan", "email": "priya.natarajan@contoso.com"}],
        "target": []
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Asserts `actual` has the keys of `sample`, and the same JSON types where both are non-null.
fn assert_shape(actual: &Value, sample: &Value, at: &str) {
    match (actual, sample) {
        (Value::Object(a), Value::Object(s)) => {
            let (ak, sk): (Vec<_>, Vec<_>) = (a.keys().collect(), s.keys().collect());
            assert_eq!(ak, sk, "keys at {at}");
            for (key, sample_value) in s {
                assert_shape(&a[key], sample_value, &format!("{at}/{key}"));
            }
        }
        (Value::Array(a), Value::Array(s)) => {
            if let (Some(a), Some(s)) = (a.first(), s.first()) {
                assert_shape(a, s, &format!("{at}/0"));
            }
        }
        (a, s) if a.is_null() || s.is_null() => {}
        (a, s) => assert_eq!(kind(a), kind(s), "type at {at}"),
    }
}

fn assert_odata_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let keys: Vec<_> = error.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["code", "message", "target", "innerError"]);
}

fn assert_rest_error(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["code", "description", "data", "source"]);
}

// ---------------------------------------------------------------- tokens and bearer check

#[tokio::test]
async fn token_endpoint_v1_returns_numbers_as_strings_and_a_refresh_token() {
    let sb = start().await;
    let response = sb
        .token_form(
            "v1",
            &[
                ("grant_type", "password"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("resource", REFERRALS),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    for key in ["expires_in", "ext_expires_in", "expires_on", "not_before"] {
        assert!(body[key].is_string(), "{key} must be a string: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], REFERRALS);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    let refresh = body["refresh_token"].as_str().unwrap();

    let refreshed = sb
        .token_form(
            "v2",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("refresh_token", refresh),
                ("scope", "https://api.partnercenter.microsoft.com/.default offline_access"),
            ],
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    assert!(body["expires_in"].is_number(), "v2 returns numbers: {body}");
    assert!(body["refresh_token"].is_string());

    let configured = sb
        .token_form(
            "v1",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("refresh_token", "coflow-sandbox-refresh-token"),
                ("resource", REFERRALS),
            ],
        )
        .await;
    assert_eq!(configured.status(), 200);
}

/// Form, expected status, OAuth error, AADSTS number.
type TokenCase<'a> = (&'a [(&'a str, &'a str)], u16, &'a str, u64);

#[tokio::test]
async fn token_endpoint_errors_use_the_azure_ad_shape() {
    let sb = start().await;
    let cases: [TokenCase; 5] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "wrong"),
                ("resource", REFERRALS),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("username", ADMIN),
                ("password", "nope"),
                ("resource", REFERRALS),
            ],
            400,
            "invalid_grant",
            50126,
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("resource", "https://graph.microsoft.com"),
            ],
            400,
            "invalid_resource",
            500011,
        ),
        (
            &[
                ("grant_type", "device_code"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("resource", REFERRALS),
            ],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("refresh_token", "stolen"),
                ("resource", REFERRALS),
            ],
            400,
            "invalid_grant",
            9002313,
        ),
    ];
    for (form, status, error, code) in cases {
        let response = sb.token_form("v1", form).await;
        assert_eq!(response.status(), status, "{error}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error);
        assert_eq!(body["error_codes"], json!([code]));
        assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}:")));
        assert!(!body.to_string().contains("coflow-sandbox-secret"));
    }
}

#[tokio::test]
async fn every_api_call_needs_a_valid_token_for_its_audience() {
    let sb = start().await;
    let referrals = sb.url("/v1.0/engagements/referrals");

    let missing = sb.http.get(&referrals).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    assert_odata_error(&missing.json().await.unwrap(), "unauthorized");

    let bogus = sb.http.get(&referrals).bearer_auth("nope").send().await.unwrap();
    assert_eq!(bogus.status(), 401);

    let rest_token = sb.user_token(ADMIN, ADMIN_PASSWORD, REST).await;
    let wrong_audience = sb.http.get(&referrals).bearer_auth(&rest_token).send().await.unwrap();
    assert_eq!(wrong_audience.status(), 401);

    let app_only = sb.app_token(REFERRALS).await;
    let forbidden = sb.http.get(&referrals).bearer_auth(&app_only).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_odata_error(&forbidden.json().await.unwrap(), "forbidden");

    let referral_token = sb.admin_token().await;
    let webhooks = sb
        .http
        .get(sb.url("/webhooks/v1/registration/events"))
        .bearer_auth(&referral_token)
        .send()
        .await
        .unwrap();
    assert_eq!(webhooks.status(), 401);
    assert_rest_error(&webhooks.json().await.unwrap(), "401");

    assert_eq!(sb.list(&referral_token, &[]).await.status(), 200);
    sb.admin_json(reqwest::Method::POST, "/__sandbox/clock", Some(json!({"advance": "2h"}))).await;
    let expired = sb.list(&referral_token, &[]).await;
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));
}

// ---------------------------------------------------------------- referrals

#[tokio::test]
async fn create_assigns_server_fields_and_matches_the_sample_shape() {
    let sb = start().await;
    let token = sb.admin_token().await;
    let created = sb.create(&token, &new_referral("Fabrikam - Sentinel rollout")).await;
    assert_shape(&created, &fixture("pc-referral.json"), "");

    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(created["direction"], "Outgoing");
    assert_eq!(
        (created["status"].as_str(), created["substatus"].as_str()),
        (Some("Active"), Some("Accepted"))
    );
    let created_at = created["createdDateTime"].as_str().unwrap();
    assert_eq!(created_at.len(), "2024-02-24T21:04:06.0372014Z".len());
    assert!(created_at.ends_with('Z'));
    assert_eq!(created["updatedDateTime"], created["createdDateTime"]);
    assert_eq!(created["acceptedDateTime"], created["createdDateTime"]);
    let etag = created["eTag"].as_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(created["links"]["self"]["uri"], sb.url(&format!("/v1.0/engagements/referrals/{id}")));
    assert_eq!(created["details"]["dealValue"], 120000);
    assert_eq!(created["customerProfile"]["address"]["region"], Value::Null);

    assert_eq!(sb.get_referral(&token, id).await, created);

    let missing = sb
        .http
        .get(sb.url("/v1.0/engagements/referrals/00000000-0000-0000-0000-000000000000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_odata_error(&missing.json().await.unwrap(), "notFound");
}

#[tokio::test]
async fn create_rejects_missing_parts_and_bad_values() {
    let sb = start().await;
    let token = sb.admin_token().await;
    let cases = [
        ("details", Value::Null, "details"),
        ("type", json!("Private"), "type"),
        ("qualification", json!("Hot"), "qualification"),
        ("status", json!("Closed"), "substatus"),
        ("team", json!({"email": "x@y"}), "team"),
    ];
    for (field, value, target) in cases {
        let mut body = new_referral("bad");
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        if field == "status" {
            body["substatus"] = json!("Accepted");
        }
        let response = sb
            .http
            .post(sb.url("/v1.0/engagements/referrals"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{field}");
        let body: Value = response.json().await.unwrap();
        assert_odata_error(&body, "badRequest");
        assert_eq!(body["error"]["target"], target, "{field}: {body}");
    }
    let not_json = sb
        .http
        .post(sb.url("/v1.0/engagements/referrals"))
        .bearer_auth(&token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
}

#[tokio::test]
async fn create_with_the_same_request_id_is_replayed_not_repeated() {
    let sb = start().await;
    let token = sb.admin_token().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = sb
            .http
            .post(sb.url("/v1.0/engagements/referrals"))
            .bearer_auth(&token)
            .header("MS-RequestId", "5f2d9b1e-0000-4000-8000-000000000001")
            .header("MS-CorrelationId", "corr-1")
            .json(&new_referral("once"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["ms-requestid"], "5f2d9b1e-0000-4000-8000-000000000001");
        assert_eq!(response.headers()["ms-correlationid"], "corr-1");
        assert!(response.headers().contains_key("request-id"));
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let list: Value = sb.list(&token, &[]).await.json().await.unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn put_requires_a_current_if_match_and_changes_the_etag() {
    let sb = start().await;
    let token = sb.admin_token().await;
    let created = sb.create(&token, &new_referral("put me")).await;
    let id = created["id"].as_str().unwrap();
    let url = sb.url(&format!("/v1.0/engagements/referrals/{id}"));
    let mut body = created.clone();
    body.as_object_mut().unwrap().remove("links");
    body["details"]["notes"] = json!("updated by PUT");

    let without = sb.http.put(&url).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(without.status(), 400);
    let error: Value = without.json().await.unwrap();
    assert_eq!(error["error"]["target"], "If-Match");

    let stale = sb
        .http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", "\"69007a1e-0000-0800-0000-6217f4ce0000\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.json::<Value>().await.unwrap(), fixture("pc-error-412.json"));

    let with_links = sb
        .http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", created["eTag"].as_str().unwrap())
        .json(&created)
        .send()
        .await
        .unwrap();
    assert_eq!(with_links.status(), 400);

    let ok = sb
        .http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", created["eTag"].as_str().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let updated: Value = ok.json().await.unwrap();
    assert_eq!(updated["details"]["notes"], "updated by PUT");
    assert_ne!(updated["eTag"], created["eTag"]);
    assert_eq!(updated["createdDateTime"], created["createdDateTime"]);
    assert!(updated["updatedDateTime"].as_str().unwrap() > created["updatedDateTime"].as_str().unwrap());

    let reused = sb
        .http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", created["eTag"].as_str().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 412, "the old eTag is stale after a change");
}

#[tokio::test]
async fn patch_applies_add_and_replace_and_answers_204_or_the_body() {
    let sb = start().await;
    let token = sb.admin_token().await;
    let created = sb.create(&token, &new_referral("patch me")).await;
    let id = created["id"].as_str().unwrap();

    let response = sb
        .patch(
            &token,
            id,
            &json!([
                {"op": "replace", "path": "/details/dealValue", "value": "10000"},
                {"op": "replace", "path": "/details/notes", "value": "Lorem ipsum dolor sit amet."},
                {"op": "add", "path": "/team/-", "value": {"email": "jane.doe@contoso.com", "firstName": "Jane", "lastName": "Doe", "phoneNumber": "0000000001"}}
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    // Partner Center documents `Content-Length: 0`; HTTP servers (hyper too) omit it on 204.
    assert!(response.headers().get("content-length").is_none_or(|v| v == "0"));
    assert!(response.headers().contains_key("request-id"));
    assert!(response.bytes().await.unwrap().is_empty());
    let after = sb.get_referral(&token, id).await;
    assert_eq!(after["details"]["dealValue"], "10000");
    assert_eq!(after["team"].as_array().unwrap().len(), 2);
    assert_ne!(after["eTag"], created["eTag"]);

    let represented = sb
        .http
        .patch(sb.url(&format!("/v1.0/engagements/referrals/{id}")))
        .bearer_auth(&token)
        .header("Prefer", "return=representation")
        .header("If-Match", after["eTag"].as_str().unwrap())
        .json(&json!([{"op": "replace", "path": "/externalReferenceId", "value": "006XYZ"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(represented.status(), 200);
    let body: Value = represented.json().await.unwrap();
    assert_eq!(body["externalReferenceId"], "006XYZ");

    let stale = sb
        .http
        .patch(sb.url(&format!("/v1.0/engagements/referrals/{id}")))
        .bearer_auth(&token)
        .header("If-Match", after["eTag"].as_str().unwrap())
        .json(&json!([{"op": "replace", "path": "/name", "value": "x"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);

    for (ops, target) in [
        (json!([{"op": "remove", "path": "/name"}]), "op"),
        (json!([{"op": "replace", "path": "/id", "value": "x"}]), "/id"),
        (json!([{"op": "replace", "path": "/details/nothing", "value": 1}]), "/details/nothing"),
        (json!({"op": "replace"}), "body"),
    ] {
        let response = sb.patch(&token, id, &ops).await;
        assert_eq!(response.status(), 400, "{ops}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["target"], target, "{body}");
    }

    let registration = sb
        .http
        .patch(sb.url(&format!("/v1.0/engagements/referrals/{id}/")))
        .bearer_auth(&token)
        .header("Prefer", "return=representation")
        .json(&json!([{"op": "add", "path": "/registrations/-", "value": {"type": "Standard", "contract": {"value": 1000, "currency": "USD"}}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(registration.status(), 200);
    let body: Value = registration.json().await.unwrap();
    assert_eq!(body["registrationStatus"], "ReviewPending");
    assert!(body["registrations"][0]["id"].is_string());
}

#[tokio::test]
async fn status_changes_follow_the_transition_table() {
    let sb = start().await;
    let token = sb.admin_token().await;
    // (path of status pairs applied in order, whether the last step is allowed)
    let cases: [(&[(&str, &str)], bool); 10] = [
        (&[("New", "Received")], true),
        (&[("Active", "Accepted")], true),
        (&[("Closed", "Declined")], true),
        (&[("Active", "Accepted"), ("Closed", "Won")], true),
        (&[("Active", "Accepted"), ("Closed", "Lost")], true),
        (&[("Active", "Accepted"), ("New", "Pending")], false),
        (&[("Closed", "Won"), ("Active", "Accepted")], false),
        (&[("Closed", "Won"), ("Closed", "Lost")], false),
        (&[("Active", "Pending")], false),
        (&[("Open", "Pending")], false),
    ];
    for (steps, allowed) in cases {
        // Incoming referrals start New/Pending, so every row starts from the same place.
        let referral =
            sb.admin_json(reqwest::Method::POST, "/__sandbox/referrals", Some(json!({"name": "t"}))).await;
        assert_eq!(referral["status"], "New");
        let id = referral["id"].as_str().unwrap();
        for (index, (status, substatus)) in steps.iter().enumerate() {
            let response = sb
                .patch(
                    &token,
                    id,
                    &json!([{"op": "replace", "path": "/status", "value": status},
                            {"op": "replace", "path": "/substatus", "value": substatus}]),
                )
                .await;
            let last = index == steps.len() - 1;
            let expect_ok = !last || allowed;
            assert_eq!(response.status() == 204, expect_ok, "{steps:?} step {index}");
            if !expect_ok {
                assert_eq!(response.status(), 400);
                assert_odata_error(&response.json().await.unwrap(), "badRequest");
            }
        }
    }
    // Status alone must still form a valid pair with the current substatus.
    let referral = sb.admin_json(reqwest::Method::POST, "/__sandbox/referrals", Some(json!({}))).await;
    let alone = sb
        .patch(
            &token,
            referral["id"].as_str().unwrap(),
            &json!([{"op": "replace", "path": "/status", "value": "Closed"}]),
        )
        .await;
    assert_eq!(alone.status(), 400);
    let won = sb
        .patch(&token, referral["id"].as_str().unwrap(), &json!([{"op": "replace", "path": "/status", "value": "Closed"}, {"op": "replace", "path": "/substatus", "value": "Won"}]))
        .await;
    assert_eq!(won.status(), 204);
    let closed = sb.get_referral(&token, referral["id"].as_str().unwrap()).await;
    assert!(closed["closedDateTime"].is_string());
    assert_eq!(closed["expirationDateTime"], Value::Null);
}

#[tokio::test]
async fn list_filters_orders_and_pages_like_odata() {
    let sb = start_with(|c| c.page_size = 3).await;
    let token = sb.admin_token().await;
    let mut ids = Vec::new();
    for (index, (status, substatus)) in [
        ("New", "Pending"),
        ("New", "Received"),
        ("Active", "Accepted"),
        ("Closed", "Won"),
        ("New", "Pending"),
        ("Closed", "Lost"),
        ("Active", "Accepted"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"name": format!("r{index}"), "status": status, "substatus": substatus,
                          "customerProfile": {"address": {"country": if index % 2 == 0 {"US"} else {"DE"}}},
                          "team": [{"email": format!("seller{index}@contoso.com")}]});
        let referral = sb.admin_json(reqwest::Method::POST, "/__sandbox/referrals", Some(body)).await;
        ids.push(referral["id"].as_str().unwrap().to_owned());
    }

    // First page: the sample's keys, three items, a next link on the sample's path.
    let first: Value = sb.list(&token, &[]).await.json().await.unwrap();
    let sample = fixture("pc-referral-list.json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&sample));
    assert_shape(&first["value"][0], &sample["value"][0], "value/0");
    assert_eq!(first["value"].as_array().unwrap().len(), 3);
    assert_eq!(first["@odata.count"], 3);
    assert_eq!(first["@odata.context"], sb.url("/v1.0/$metadata#Referrals"));
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&sb.url("/v1.0/referrals?$skiptoken=")), "{next}");

    // Following next links verbatim yields every referral once, in order.
    let mut seen: Vec<String> = Vec::new();
    let mut page = first.clone();
    loop {
        seen.extend(page["value"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        let Some(next) = page["@odata.nextLink"].as_str() else { break };
        page = sb.http.get(next).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    }
    assert_eq!(seen, ids);

    let names = |body: &Value| -> Vec<String> {
        body["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    let (sbr, tok) = (&sb, &token);
    let query = |q: &'static [(&'static str, &'static str)]| async move { sbr.list(tok, q).await };
    let body: Value =
        query(&[("$filter", "status eq 'New' and substatus eq 'Pending'")]).await.json().await.unwrap();
    assert_eq!(names(&body), ["r0", "r4"]);
    let body: Value = query(&[(
        "$filter",
        "(status eq 'Closed' or substatus eq 'Received') and customerProfile/address/country eq 'DE'",
    )])
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(names(&body), ["r1", "r3", "r5"]);
    let body: Value =
        query(&[("$filter", "status ne 'New'"), ("$orderby", "updatedDateTime desc"), ("$top", "2")])
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(names(&body), ["r6", "r5"]);
    assert!(body.get("@odata.nextLink").is_none(), "$top reached: no next link");
    let body: Value =
        query(&[("$filter", "team/any(t:t/email eq 'seller3@contoso.com')")]).await.json().await.unwrap();
    assert_eq!(names(&body), ["r3"]);
    let body: Value = query(&[("$orderby", "createdDateTime asc"), ("$skip", "5"), ("$count", "true")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&body), ["r5", "r6"]);
    assert_eq!(body["@odata.count"], 7);
    let body: Value = query(&[("$select", "id,status"), ("$top", "1")]).await.json().await.unwrap();
    assert_eq!(keys(&body["value"][0]), ["id", "status"]);

    // $top larger than a page: the next link carries what is left.
    let body: Value =
        query(&[("$top", "5"), ("$orderby", "createdDateTime desc")]).await.json().await.unwrap();
    assert_eq!(names(&body), ["r6", "r5", "r4"]);
    let next: Value = sb
        .http
        .get(body["@odata.nextLink"].as_str().unwrap())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&next), ["r3", "r2"]);
    assert!(next.get("@odata.nextLink").is_none());

    // Date-time comparisons, quoted or not, against a stored updatedDateTime.
    let pivot = sb.get_referral(&token, &ids[3]).await["updatedDateTime"].as_str().unwrap().to_owned();
    for (op, expected) in [("gt", 3), ("ge", 4), ("lt", 3), ("le", 4), ("eq", 1), ("ne", 6)] {
        for filter in [format!("updatedDateTime {op} {pivot}"), format!("createdDateTime {op} '{pivot}'")] {
            let body: Value =
                sb.list(&token, &[("$filter", &filter), ("$count", "true")]).await.json().await.unwrap();
            assert_eq!(body["@odata.count"], expected, "{filter}");
        }
    }

    for (query, target) in [
        (vec![("$filter", "status eq")], "$filter"),
        (vec![("$filter", "colour eq 'red'")], "$filter"),
        (vec![("$orderby", "updatedDateTime sideways")], "$orderby"),
        (vec![("$orderby", "colour")], "$orderby"),
        (vec![("$top", "-1")], "$top"),
        (vec![("$skip", "x")], "$skip"),
        (vec![("$select", "id,colour")], "$select"),
        (vec![("$skiptoken", "garbage")], "$skiptoken"),
    ] {
        let response = sb.list(&token, &query).await;
        assert_eq!(response.status(), 400, "{query:?}");
        let body: Value = response.json().await.unwrap();
        assert_odata_error(&body, "badRequest");
        assert_eq!(body["error"]["target"], target);
    }
}

#[tokio::test]
async fn a_referral_user_reads_only_their_referrals_and_cannot_write() {
    let sb = start().await;
    let user = "user@coflow-sandbox.onmicrosoft.com";
    for team in [user, "someone@contoso.com"] {
        sb.admin_json(
            reqwest::Method::POST,
            "/__sandbox/referrals",
            Some(json!({"team": [{"email": team}]})),
        )
        .await;
    }
    let token = sb.user_token(user, "sandbox-user-password", REFERRALS).await;
    let body: Value = sb.list(&token, &[]).await.json().await.unwrap();
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["team"][0]["email"], user);
    let response = sb
        .http
        .post(sb.url("/v1.0/engagements/referrals"))
        .bearer_auth(&token)
        .json(&new_referral("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

// ---------------------------------------------------------------- webhooks

#[derive(Default)]
struct Receiver {
    seen: Mutex<Vec<(HeaderMap, Bytes)>>,
    script: Mutex<VecDeque<u16>>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.seen.lock().unwrap().push((headers, body));
    let status = receiver.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(script: &[u16]) -> (String, Arc<Receiver>) {
    let receiver =
        Arc::new(Receiver { script: Mutex::new(script.iter().copied().collect()), ..Default::default() });
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    (format!("{}/hook", serve(app).await), receiver)
}

#[tokio::test]
async fn webhook_registration_api_answers_like_partner_center() {
    let sb = start().await;
    let token = sb.app_token(REST).await;
    let url = |p: &str| sb.url(p);

    let events: Value = sb
        .http
        .get(url("/webhooks/v1/registration/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for name in [
        "referral-created",
        "referral-updated",
        "related-referral-created",
        "related-referral-updated",
        "test-created",
    ] {
        assert!(events.as_array().unwrap().contains(&json!(name)), "{name}");
    }

    let none = sb.http.get(url("/webhooks/v1/registration")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(none.status(), 404);
    assert_rest_error(&none.json().await.unwrap(), "404");

    let sample = fixture("pc-webhook-registration.json");
    let created = sb
        .http
        .post(url("/webhooks/v1/registration"))
        .bearer_auth(&token)
        .json(&sample["request"]["body"])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), sample["response"]["status"].as_u64().unwrap() as u16);
    let created: Value = created.json().await.unwrap();
    assert_shape(&created, &sample["response"]["body"], "registration");
    assert_eq!(created["WebhookEvents"], sample["request"]["body"]["WebhookEvents"]);

    let again = sb
        .http
        .post(url("/webhooks/v1/registration"))
        .bearer_auth(&token)
        .json(&sample["request"]["body"])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    let updated: Value = sb
        .http
        .put(url("/webhooks/v1/registration"))
        .bearer_auth(&token)
        .json(&json!({"WebhookUrl": "https://sync.example.com/other", "WebhookEvents": ["referral-updated"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["SubscriberId"], created["SubscriberId"]);
    let viewed: Value = sb
        .http
        .get(url("/webhooks/v1/registration"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        viewed,
        json!({"WebhookUrl": "https://sync.example.com/other", "WebhookEvents": ["referral-updated"]})
    );

    for body in [
        json!({"WebhookUrl": "not a url", "WebhookEvents": ["referral-updated"]}),
        json!({"WebhookUrl": "https://x.example", "WebhookEvents": []}),
        json!({"WebhookUrl": "https://x.example", "WebhookEvents": ["referral-deleted"]}),
        json!([1, 2]),
    ] {
        let response = sb
            .http
            .put(url("/webhooks/v1/registration"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_rest_error(&response.json().await.unwrap(), "400");
    }

    let deleted = sb.http.delete(url("/webhooks/v1/registration")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = sb.http.delete(url("/webhooks/v1/registration")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

/// Verifies a delivered event as Microsoft's steps say, with crates independent of the sandbox.
async fn verify_signature(http: &Client, headers: &HeaderMap, body: &[u8], header: &str) {
    use rsa::{
        pkcs1v15::{Signature, VerifyingKey},
        pkcs8::DecodePublicKey,
        sha2::Sha256,
        signature::Verifier,
    };
    use x509_cert::der::{Decode, Encode};

    assert_eq!(headers["x-ms-signature-algorithm"], "rsa-sha256");
    let token = headers[header].to_str().unwrap();
    let encoded = token.strip_prefix("Signature ").expect("scheme Signature");
    let signature = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap();
    let cert_url = headers["x-ms-certificate-url"].to_str().unwrap();
    let der = http.get(cert_url).send().await.unwrap().bytes().await.unwrap();
    let certificate = x509_cert::Certificate::from_der(&der).unwrap();
    assert!(certificate.tbs_certificate.issuer.to_string().contains("O=Microsoft Corporation"));
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let key = VerifyingKey::<Sha256>::new(rsa::RsaPublicKey::from_public_key_der(&spki).unwrap());
    let signature = Signature::try_from(signature.as_slice()).unwrap();
    key.verify(body, &signature).expect("signature verifies");
    let mut tampered = body.to_vec();
    tampered[0] ^= 1;
    assert!(key.verify(&tampered, &signature).is_err());
}

#[tokio::test]
async fn referral_changes_are_delivered_signed_with_the_served_certificate() {
    let sb = start().await;
    let (hook, receiver) = receiver(&[]).await;
    let rest = sb.app_token(REST).await;
    sb.register(&rest, &hook, &["referral-created", "referral-updated"], true).await;
    let token = sb.admin_token().await;

    let created = sb.create(&token, &new_referral("signed")).await;
    let id = created["id"].as_str().unwrap();
    sb.admin_json(
        reqwest::Method::PATCH,
        &format!("/__sandbox/referrals/{id}"),
        Some(json!({"details": {"notes": "changed in Partner Center"}})),
    )
    .await;
    let deliveries = sb.settled_deliveries(2).await;
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d["state"] == "delivered"));

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let sample = fixture("pc-webhook-event.json");
    let names: Vec<String> = seen
        .iter()
        .map(|(_, body)| {
            let event: Value = serde_json::from_slice(body).unwrap();
            assert_shape(&event, &sample, "event");
            assert_eq!(event["ResourceUri"], sb.url(&format!("/engagements/v1/referrals/{id}")));
            assert_eq!(event["ResourceName"], "referral");
            assert!(event["ResourceChangeUtcDate"].as_str().unwrap().ends_with("+00:00"));
            event["EventName"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["referral-created", "referral-updated"]);
    for (headers, body) in &seen {
        assert_eq!(headers["x-ms-certificate-url"], sb.pc.certificate_url().as_str());
        assert!(!headers.contains_key("authorization"));
        assert_eq!(headers["content-type"], "application/json");
        verify_signature(&sb.http, headers, body, "x-ms-signature").await;
    }
    let updated: Value = seen
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
        .find(|e| e["EventName"] == "referral-updated")
        .unwrap();
    let referral = sb.get_referral(&token, id).await;
    assert_eq!(
        updated["ResourceChangeUtcDate"].as_str().unwrap().trim_end_matches("+00:00"),
        referral["updatedDateTime"].as_str().unwrap().trim_end_matches('Z')
    );

    // Without the header switch the signature goes in Authorization; unregistered events are not sent.
    receiver.seen.lock().unwrap().clear();
    sb.http
        .put(sb.url("/webhooks/v1/registration"))
        .bearer_auth(&rest)
        .json(&json!({"WebhookUrl": hook, "WebhookEvents": ["referral-updated"]}))
        .send()
        .await
        .unwrap();
    sb.create(&token, &new_referral("not delivered")).await;
    sb.patch(&token, id, &json!([{"op": "replace", "path": "/name", "value": "renamed"}])).await;
    let deliveries = sb.settled_deliveries(3).await;
    assert_eq!(deliveries.len(), 3);
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    verify_signature(&sb.http, &seen[0].0, &seen[0].1, "authorization").await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_given_up_after_ten_attempts() {
    let sb = start_with(|c| {
        c.delivery_retry_interval = Duration::from_millis(2);
        c.delivery_max_interval = Duration::from_millis(10);
    })
    .await;
    let (hook, receiver) = receiver(&[500, 503]).await;
    let rest = sb.app_token(REST).await;
    sb.register(&rest, &hook, &["referral-created", "referral-updated"], false).await;
    let token = sb.admin_token().await;
    sb.create(&token, &new_referral("retry")).await;
    let deliveries = sb.settled_deliveries(1).await;
    let attempts = deliveries[0]["attempts"].as_array().unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(503), json!(200)]);
    assert_eq!(deliveries[0]["state"], "delivered");
    assert_eq!(receiver.seen.lock().unwrap().len(), 3);
    let bodies: Vec<Bytes> = receiver.seen.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "retries resend the same body");

    receiver.script.lock().unwrap().extend([500; 20]);
    let cleared = sb.http.delete(sb.url("/__sandbox/deliveries")).send().await.unwrap();
    assert_eq!(cleared.status(), 204);
    sb.create(&token, &new_referral("never")).await;
    let deliveries = sb.settled_deliveries(1).await;
    let last = deliveries.last().unwrap();
    assert_eq!(last["state"], "failed");
    assert_eq!(last["attempts"].as_array().unwrap().len(), 10);

    // A receiver that is not listening: attempts record the connection error.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    sb.http
        .put(sb.url("/webhooks/v1/registration"))
        .bearer_auth(&rest)
        .json(&json!({"WebhookUrl": dead, "WebhookEvents": ["referral-created"]}))
        .send()
        .await
        .unwrap();
    sb.create(&token, &new_referral("nobody home")).await;
    let deliveries = sb.settled_deliveries(2).await;
    let last = deliveries.last().unwrap();
    assert_eq!(last["state"], "failed");
    assert!(last["attempts"][0]["status"].is_null());
    assert!(last["attempts"][0]["error"].is_string());
}

#[tokio::test]
async fn validation_events_are_delivered_reported_and_throttled() {
    let sb = start().await;
    let (hook, _receiver) = receiver(&[]).await;
    let rest = sb.app_token(REST).await;
    let post_validation = || async {
        sb.http
            .post(sb.url("/webhooks/v1/registration/validationEvents"))
            .bearer_auth(&rest)
            .send()
            .await
            .unwrap()
    };
    sb.register(&rest, &hook, &["referral-created"], false).await;
    assert_eq!(post_validation().await.status(), 400, "test-created must be registered");
    sb.http
        .put(sb.url("/webhooks/v1/registration"))
        .bearer_auth(&rest)
        .json(&json!({"WebhookUrl": hook, "WebhookEvents": ["test-created"]}))
        .send()
        .await
        .unwrap();

    let first: Value = post_validation().await.json().await.unwrap();
    let correlation = first["correlationId"].as_str().unwrap();
    assert_eq!(post_validation().await.status(), 200);
    let throttled = post_validation().await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["statusCode"], 429);
    assert!(body["message"].as_str().unwrap().starts_with("Rate limit is exceeded. Try again in"));

    sb.settled_deliveries(2).await;
    let status: Value = sb
        .http
        .get(sb.url(&format!("/webhooks/v1/registration/validationEvents/{correlation}")))
        .bearer_auth(&rest)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<_> = status.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["correlationId", "partnerId", "status", "callbackUrl", "results"]);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["callbackUrl"], hook);
    assert_eq!(status["results"][0]["responseCode"], "OK");
    assert_eq!(status["results"][0]["systemError"], false);

    let unknown = sb
        .http
        .get(sb.url("/webhooks/v1/registration/validationEvents/nope"))
        .bearer_auth(&rest)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    sb.admin_json(reqwest::Method::POST, "/__sandbox/clock", Some(json!({"advance": "61s"}))).await;
    let rest = sb.app_token(REST).await;
    let after_a_minute = sb
        .http
        .post(sb.url("/webhooks/v1/registration/validationEvents"))
        .bearer_auth(&rest)
        .send()
        .await
        .unwrap();
    assert_eq!(after_a_minute.status(), 200);
}

// ---------------------------------------------------------------- state and admin

#[tokio::test]
async fn unanswered_incoming_referrals_expire_after_fourteen_days() {
    let sb = start().await;
    let (hook, receiver) = receiver(&[]).await;
    sb.register(&sb.app_token(REST).await, &hook, &["referral-updated"], false).await;
    let shared =
        sb.admin_json(reqwest::Method::POST, "/__sandbox/referrals", Some(json!({"name": "waiting"}))).await;
    assert_eq!(shared["direction"], "Incoming");
    assert!(shared["expirationDateTime"].is_string());
    sb.admin_json(reqwest::Method::POST, "/__sandbox/clock", Some(json!({"advance": "13d"}))).await;
    let token = sb.admin_token().await;
    let id = shared["id"].as_str().unwrap();
    assert_eq!(sb.get_referral(&token, id).await["status"], "New");
    sb.admin_json(reqwest::Method::POST, "/__sandbox/clock", Some(json!({"advance": "1d"}))).await;
    let token = sb.admin_token().await;
    let expired = sb.get_referral(&token, id).await;
    assert_eq!(
        (expired["status"].as_str(), expired["substatus"].as_str()),
        (Some("Closed"), Some("Expired"))
    );
    assert!(expired["closedDateTime"].is_string());
    sb.settled_deliveries(1).await;
    let seen = receiver.seen.lock().unwrap();
    let event: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(event["EventName"], "referral-updated");
}

#[tokio::test]
async fn seed_file_snapshot_and_reset() {
    let dir = std::env::temp_dir().join(format!("coflow-pc-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("referrals.json");
    std::fs::copy(
        format!("{}/tests/fixtures/sandbox/pc/pc-referral-list.json", env!("CARGO_MANIFEST_DIR")),
        &seed,
    )
    .unwrap();
    let sb = start_with(|c| c.seed_file = Some(seed.clone())).await;
    let token = sb.admin_token().await;
    let sample = fixture("pc-referral-list.json");
    let stored = sb.get_referral(&token, "d3ca5d20-0899-42a8-b9f7-5e9c06ad641d").await;
    assert_eq!(stored, sample["value"][0]);

    let snapshot = sb.admin_json(reqwest::Method::GET, "/__sandbox/snapshot", None).await;
    assert_eq!(snapshot["referrals"].as_array().unwrap().len(), 2);
    sb.create(&token, &new_referral("extra")).await;
    let snapshot = sb.admin_json(reqwest::Method::GET, "/__sandbox/snapshot", None).await;
    assert_eq!(snapshot["referrals"].as_array().unwrap().len(), 3);

    let reset = sb.http.post(sb.url("/__sandbox/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    let snapshot = sb.admin_json(reqwest::Method::GET, "/__sandbox/snapshot", None).await;
    assert_eq!(snapshot["referrals"].as_array().unwrap().len(), 2, "reset reloads the seed file");

    let seeded = sb
        .http
        .post(sb.url("/__sandbox/seed"))
        .json(&json!([{"name": "bare"}, {"id": "fixed-id", "status": "Closed", "substatus": "Won"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    assert_eq!(sb.get_referral(&token, "fixed-id").await["substatus"], "Won");
    let bad = sb
        .http
        .post(sb.url("/__sandbox/seed"))
        .json(&json!([{"status": "Closed", "substatus": "Pending"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    std::fs::write(&seed, "not json").unwrap();
    let config = PartnerCenterConfig {
        seed_file: Some(seed.clone()),
        ..PartnerCenterConfig::new("http://127.0.0.1:1")
    };
    let error = PartnerCenter::try_new(config).unwrap_err().to_string();
    assert!(error.contains("referrals.json"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- faults

async fn statuses(sb: &Sandbox, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sb.list(token, &[]).await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn injected_errors_use_the_partner_center_shapes() {
    let sb = start().await;
    let token = sb.admin_token().await;
    sb.faults.add_spec("GET /v1.0/engagements/*: 503 times=1 retry_after=2").unwrap();
    sb.faults.add_spec("GET /v1.0/engagements/*: 429 times=1 retry_after=57").unwrap();
    sb.faults.add_spec("GET /webhooks/*: 500 times=1").unwrap();

    let unavailable = sb.list(&token, &[]).await;
    assert_eq!(unavailable.status(), 503);
    assert_eq!(unavailable.headers()["retry-after"], "2");
    assert_odata_error(&unavailable.json().await.unwrap(), "serviceUnavailable");

    let throttled = sb.list(&token, &[]).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "57");
    assert_eq!(
        throttled.json::<Value>().await.unwrap(),
        json!({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."})
    );
    assert_eq!(sb.list(&token, &[]).await.status(), 200);

    let rest = sb.app_token(REST).await;
    let failed =
        sb.http.get(sb.url("/webhooks/v1/registration/events")).bearer_auth(&rest).send().await.unwrap();
    assert_eq!(failed.status(), 500);
    assert_rest_error(&failed.json().await.unwrap(), "500");

    // A faulted write never reaches the handler.
    sb.faults.add_spec("POST /v1.0/engagements/referrals: 503 times=1").unwrap();
    let refused = sb
        .http
        .post(sb.url("/v1.0/engagements/referrals"))
        .bearer_auth(&token)
        .json(&new_referral("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let snapshot = sb.admin_json(reqwest::Method::GET, "/__sandbox/snapshot", None).await;
    assert!(snapshot["referrals"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn token_expiry_fault_answers_401_for_the_next_calls() {
    let sb = start().await;
    let token = sb.admin_token().await;
    sb.faults.add_spec("/v1.0/*: token-expired times=2").unwrap();
    let got = statuses(&sb, &token, 3).await;
    assert_eq!(got, [401, 401, 200]);

    sb.faults.replace(vec!["*: token-expired after=150ms".parse().unwrap()], None);
    assert_eq!(statuses(&sb, &token, 1).await, [200]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expired = sb.list(&token, &[]).await;
    assert_eq!(expired.status(), 401);
    assert!(expired.headers().contains_key("www-authenticate"));
    assert_odata_error(&expired.json().await.unwrap(), "unauthorized");
    let token_call = sb
        .token_form(
            "v1",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "coflow-sandbox-app"),
                ("client_secret", "coflow-sandbox-secret"),
                ("refresh_token", "coflow-sandbox-refresh-token"),
                ("resource", REFERRALS),
            ],
        )
        .await;
    assert_eq!(token_call.status(), 400, "a faulted token endpoint answers as Azure AD");
    assert_eq!(token_call.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn latency_drop_and_hang_faults() {
    let sb = start().await;
    let token = sb.admin_token().await;

    sb.faults.add_spec("GET /v1.0/engagements/referrals: latency delay=150ms times=1").unwrap();
    let started = Instant::now();
    assert_eq!(sb.list(&token, &[]).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    sb.faults.add_spec("GET /v1.0/engagements/referrals: drop times=1").unwrap();
    let dropped = match sb.http.get(sb.url("/v1.0/engagements/referrals")).bearer_auth(&token).send().await {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(dropped, "a dropped connection gives the client no complete answer");

    sb.faults.add_spec("GET /v1.0/engagements/referrals: hang delay=120ms times=1").unwrap();
    let started = Instant::now();
    let hung = match sb.http.get(sb.url("/v1.0/engagements/referrals")).bearer_auth(&token).send().await {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(hung);
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(sb.list(&token, &[]).await.status(), 200);
    let fired: Vec<u64> = sb.faults.report().iter().map(|r| r.fired).collect();
    assert_eq!(fired, [1, 1, 1]);
}

#[tokio::test]
async fn error_rates_are_repeatable_with_a_seed() {
    let mut runs = Vec::new();
    for seed in [11, 11, 12] {
        let sb = start().await;
        let token = sb.admin_token().await;
        let put = sb
            .http
            .put(sb.url("/__sandbox/faults"))
            .json(&json!({"seed": seed, "rules": ["GET /v1.0/*: 503 rate=0.5"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        runs.push(statuses(&sb, &token, 40).await);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    assert_ne!(runs[0], runs[2], "another seed, other faults");
    let failures = runs[0].iter().filter(|s| **s == 503).count();
    assert!((8..=32).contains(&failures), "rate 0.5 gave {failures}/40");
    assert!(runs[0].iter().all(|s| *s == 200 || *s == 503));
}

#[tokio::test]
async fn the_fault_admin_endpoint_lists_replaces_adds_and_clears() {
    let sb = start().await;
    let admin = sb.url("/__sandbox/faults");
    let put = sb
        .http
        .put(&admin)
        .body("GET /a*: 503 retry_after=1\n# comment\nPOST /b: drop times=2")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let listed: Value = sb.http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["seed"], 7);
    let specs: Vec<&str> =
        listed["rules"].as_array().unwrap().iter().map(|r| r["spec"].as_str().unwrap()).collect();
    assert_eq!(specs, ["GET /a*: 503 retry_after=1", "POST /b: drop times=2"]);

    let added = sb.http.post(&admin).json(&json!("*: latency delay=1ms")).send().await.unwrap();
    assert_eq!(added.status(), 201);
    let bad = sb.http.put(&admin).json(&json!(["nonsense", "/x: 200"])).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let errors: Value = bad.json().await.unwrap();
    assert_eq!(errors["errors"].as_array().unwrap().len(), 2);
    assert_eq!(sb.faults.report().len(), 3, "a bad PUT changes nothing");

    // Admin paths are never faulted, so a test can always clear the rules.
    sb.faults.add_spec("*: 503").unwrap();
    assert_eq!(sb.http.get(sb.url("/__sandbox/snapshot")).send().await.unwrap().status(), 200);
    assert_eq!(sb.http.delete(&admin).send().await.unwrap().status(), 204);
    assert!(sb.faults.report().is_empty());
}

#[tokio::test]
async fn routers_without_a_fault_renderer_get_a_generic_answer_and_no_side_effects() {
    let hits = Arc::new(Mutex::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/services/data/v62.0/query",
        get(move || {
            *counter.lock().unwrap() += 1;
            async { "ok" }
        }),
    );
    let faults = Faults::from_specs(
        3,
        &["GET /services/data/*: 503 times=1 retry_after=4", "/services/*: token-expired times=1"],
    )
    .unwrap();
    let base = serve(faults::apply(app, faults)).await;
    let http = Client::new();
    let url = format!("{base}/services/data/v62.0/query");
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["retry-after"], "4");
    let second = http.get(&url).send().await.unwrap();
    assert_eq!(second.status(), 401);
    assert_eq!(*hits.lock().unwrap(), 0);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(*hits.lock().unwrap(), 1);
}
