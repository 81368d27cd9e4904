//! The Partner Center and Salesforce connectors against the sandbox emulators on loopback:
//! every operation, token renewal, 412 conflicts, throttling, paging, webhook signatures,
//! the connections file and dry-runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use coflow::connectors::config::{self, ConfigError, LoadedConnections, MapSecrets};
use coflow::connectors::partner_center::{self as pc, CertCache, PartnerCenterConnector, WebhookError};
use coflow::connectors::salesforce::{SalesforceConnector, soql_quote};
use coflow::connectors::{Connector, ConnectorError, HttpClient, OperationCall, OperationOutput};
use coflow::sandbox::faults::{self, Faults};
use coflow::sandbox::partner_center::{self as pc_sandbox, PartnerCenter, PartnerCenterConfig};
use coflow::sandbox::salesforce::{self as sf_sandbox, Salesforce, SalesforceConfig};

const PC_SECRET: &str = "coflow-sandbox-secret";
const PC_PASSWORD: &str = "sandbox-admin-password";
const SF_SECRET: &str = "coflow-sandbox-consumer-secret";

// ---------------------------------------------------------------- harness

struct Env {
    pc_url: String,
    sf_url: String,
    pc_sandbox: Arc<PartnerCenter>,
    sf_sandbox: Arc<Salesforce>,
    pc_faults: Arc<Faults>,
    sf_faults: Arc<Faults>,
    http: HttpClient,
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

async fn start() -> Env {
    let (pc_listener, pc_url) = listener().await;
    let pc_config = PartnerCenterConfig {
        delivery_retry_interval: Duration::from_millis(20),
        ..PartnerCenterConfig::new(pc_url.clone())
    };
    let pc_sandbox = PartnerCenter::try_new(pc_config).unwrap();
    let pc_faults = Faults::new(1);
    let pc_app = faults::apply(pc_sandbox::router(pc_sandbox.clone()), pc_faults.clone());
    tokio::spawn(async move { axum::serve(pc_listener, pc_app).await.unwrap() });

    let (sf_listener, sf_url) = listener().await;
    let mut sf_config = SalesforceConfig::new(sf_url.clone());
    sf_config.jwt_public_key_pem =
        Some(include_str!("fixtures/connectors/webhook-signing-cert.pem").to_string());
    sf_config.daily_api_limit = 1_000_000;
    let sf_sandbox = Salesforce::new(sf_config).unwrap();
    let sf_faults = Faults::new(2);
    let sf_app = faults::apply(sf_sandbox::router(sf_sandbox.clone()), sf_faults.clone());
    tokio::spawn(async move { axum::serve(sf_listener, sf_app).await.unwrap() });

    Env {
        pc_url,
        sf_url,
        pc_sandbox,
        sf_sandbox,
        pc_faults,
        sf_faults,
        http: HttpClient::new(reqwest::Client::new(), false),
    }
}

fn secrets() -> MapSecrets {
    let mut map = BTreeMap::new();
    map.insert("PC_CLIENT_SECRET".to_string(), PC_SECRET.to_string());
    map.insert("PC_PASSWORD".to_string(), PC_PASSWORD.to_string());
    map.insert("PC_REFRESH_TOKEN".to_string(), "coflow-sandbox-refresh-token".to_string());
    map.insert("SF_CLIENT_SECRET".to_string(), SF_SECRET.to_string());
    map.insert("SF_PASSWORD".to_string(), "sandbox-password".to_string());
    map.insert("SF_SECURITY_TOKEN".to_string(), "SBXTOKEN".to_string());
    map.insert("SF_REFRESH_TOKEN".to_string(), "5Aep861coflowSandboxRefreshToken".to_string());
    map.insert(
        "SF_JWT_KEY".to_string(),
        include_str!("fixtures/connectors/webhook-signing-key.pem").to_string(),
    );
    MapSecrets(map)
}

impl Env {
    fn cert_host(&self) -> String {
        self.pc_url.trim_start_matches("http://").to_string()
    }

    fn config_yaml(&self, pc_auth: &str, sf_auth: &str) -> String {
        format!(
            r#"
connections:
  pc:
    kind: partner_center
    referrals_url: {pc}
    webhooks_url: {pc}
    auth: {pc_auth}
    webhook_auth:
      type: client_credentials
      token_url: {pc}/common/oauth2/token
      client_id: coflow-sandbox-app
      client_secret: secret('PC_CLIENT_SECRET')
    webhook:
      certificate_hosts: ["{cert_host}"]
      allow_http_certificate_urls: true
  sf:
    kind: salesforce
    login_url: {sf}
    auth: {sf_auth}
"#,
            pc = self.pc_url,
            sf = self.sf_url,
            cert_host = self.cert_host(),
        )
    }

    fn load_with(&self, pc_auth: &str, sf_auth: &str) -> LoadedConnections {
        let text = self.config_yaml(pc_auth, sf_auth);
        config::parse(&text, "coflow.yaml").unwrap().build(&secrets()).unwrap()
    }

    fn load(&self) -> LoadedConnections {
        let pc_auth = format!(
            "{{type: password, token_url: '{}/common/oauth2/token', client_id: coflow-sandbox-app, \
             client_secret: \"secret('PC_CLIENT_SECRET')\", username: admin@coflow-sandbox.onmicrosoft.com, \
             password: \"secret('PC_PASSWORD')\"}}",
            self.pc_url
        );
        let sf_auth = "{type: client_credentials, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\"}";
        self.load_with(&pc_auth, sf_auth)
    }

    fn pc(&self) -> Arc<PartnerCenterConnector> {
        self.load().partner_center["pc"].clone()
    }

    fn sf(&self) -> Arc<SalesforceConnector> {
        self.load().salesforce["sf"].clone()
    }

    /// Counts requests matching `spec` (a zero-delay latency rule) from now on.
    fn count(faults: &Faults, spec: &str) -> usize {
        faults.add_spec(&format!("{spec}: latency delay=0ms")).unwrap();
        faults.report().len() - 1
    }

    fn fired(faults: &Faults, index: usize) -> u64 {
        faults.report()[index].fired
    }
}

async fn call(
    connector: &dyn Connector,
    http: &HttpClient,
    operation: &str,
    inputs: Value,
) -> Result<OperationOutput, ConnectorError> {
    connector.call(OperationCall::new(operation, &inputs, http)).await
}

async fn ok(connector: &dyn Connector, http: &HttpClient, operation: &str, inputs: Value) -> Value {
    match call(connector, http, operation, inputs).await {
        Ok(output) => output.body,
        Err(error) => panic!("{operation} failed: {error}"),
    }
}

fn new_referral(name: &str) -> Value {
    let sample: Value = serde_json::from_str(include_str!("fixtures/connectors/pc-referral.json")).unwrap();
    json!({
        "name": name,
        "type": "Independent",
        "qualification": "SalesQualified",
        "customerProfile": sample["customerProfile"],
        "consent": sample["consent"],
        "details": sample["details"],
        "team": sample["team"],
        "target": [],
    })
}

// ---------------------------------------------------------------- connections file

#[tokio::test]
async fn the_connections_file_reports_every_problem_at_once() {
    let text = r#"
connections:
  pc:
    kind: partner_center
    referrals_url: not-a-url
    auth: {type: password, client_id: app, client_secret: hunter2, username: u@x.com, password: "secret('MISSING_PASSWORD')"}
  sf:
    kind: salesforce
    login_url: https://example.my.salesforce.com
    api_version: latest
    auth: {type: jwt_bearer, client_id: 3MVG9, username: u@x.com}
    limits: {concurrency: 0}
"#;
    let errors = config::parse(text, "coflow.yaml").unwrap().build(&secrets()).unwrap_err();
    let fields: Vec<String> = errors
        .0
        .iter()
        .map(|e| match e {
            ConfigError::Invalid { connection, field, .. } => format!("{connection}.{field}"),
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "pc.auth.client_secret",
            "pc.auth.password",
            "pc.referrals_url",
            "sf.api_version",
            "sf.auth.private_key",
            "sf.limits.concurrency"
        ]
    );
    let text = errors.to_string();
    assert!(text.contains("must be a secret reference such as secret('NAME')"), "{text}");
    assert!(text.contains("MISSING_PASSWORD"), "{text}");
    assert!(!text.contains("hunter2"), "a literal credential must not be echoed: {text}");

    let syntax =
        config::parse("connections:\n  pc:\n    kind: partner_center\n    colour: blue\n", "coflow.yaml")
            .unwrap_err();
    assert!(syntax.to_string().starts_with("coflow.yaml: "), "{syntax}");
    assert!(syntax.to_string().contains("line"), "{syntax}");
    let missing = config::load(std::path::Path::new("/nonexistent/coflow.yaml"), &secrets()).unwrap_err();
    assert!(missing.to_string().starts_with("cannot read /nonexistent/coflow.yaml"), "{missing}");
}

#[tokio::test]
async fn connections_build_from_the_file_and_keep_credentials_out_of_debug_output() {
    let env = start().await;
    let loaded = env.load();
    assert_eq!(loaded.connections.get("pc").map(|c| c.kind()), Some("partner_center"));
    assert_eq!(loaded.connections.get("sf").map(|c| c.kind()), Some("salesforce"));
    let debug = format!("{:?}", loaded);
    for secret in [PC_SECRET, PC_PASSWORD, SF_SECRET] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    assert_eq!(loaded.salesforce["sf"].settings().limits.rate, Some((900, Duration::from_secs(60))));
}

// ---------------------------------------------------------------- Partner Center

#[tokio::test]
async fn a_referral_creation_that_may_have_landed_finds_the_referral_instead_of_a_second_one() {
    let env = start().await;
    let pc = env.pc();
    let http = &env.http;
    let mut referral = new_referral("Landed - Azure");
    referral["externalReferenceId"] = json!("0068d00000LandedAAA");
    let inputs = json!({"referral": referral});
    let retried = |inputs: Value| {
        let pc = pc.clone();
        async move {
            let call = OperationCall {
                may_have_landed: true,
                ..OperationCall::new("create_referral", &inputs, http)
            };
            pc.call(call).await.unwrap().body
        }
    };
    let count = |filter: &'static str| {
        let pc = pc.clone();
        async move {
            let listed = ok(&*pc, http, "list_referrals", json!({"$filter": filter})).await;
            listed["value"].as_array().unwrap().len()
        }
    };

    // Nothing there yet: the check finds nothing and the POST creates the referral.
    let created = retried(inputs.clone()).await;
    assert!(created["id"].is_string(), "{created}");
    // Again: the referral created for that record is answered, and no second one is made.
    let again = retried(inputs.clone()).await;
    assert_eq!(again["id"], created["id"]);
    assert_eq!(count("externalReferenceId eq '0068d00000LandedAAA'").await, 1);

    // A first attempt never checks, and a referral without a CRM record cannot be checked.
    ok(&*pc, http, "create_referral", inputs).await;
    assert_eq!(count("externalReferenceId eq '0068d00000LandedAAA'").await, 2);
    retried(json!({"referral": new_referral("Landed - Azure")})).await;
    retried(json!({"referral": new_referral("Landed - Azure")})).await;
    assert_eq!(count("name eq 'Landed - Azure'").await, 4);
}

#[tokio::test]
async fn partner_center_referral_operations_round_trip() {
    let env = start().await;
    let pc = env.pc();
    let http = &env.http;
    let posts = Env::count(&env.pc_faults, "POST /v1.0/engagements/referrals");
    let gets = Env::count(&env.pc_faults, "GET /v1.0/engagements/referrals/*");
    let puts = Env::count(&env.pc_faults, "PUT /v1.0/engagements/referrals/*");
    let tokens = Env::count(&env.pc_faults, "POST /common/oauth2/token");

    let created =
        ok(&*pc, http, "create_referral", json!({"referral": new_referral("Fabrikam - Sentinel")})).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!((Env::fired(&env.pc_faults, posts), Env::fired(&env.pc_faults, tokens)), (1, 1));

    let got = ok(&*pc, http, "get_referral", json!({"id": id})).await;
    assert_eq!(got["name"], "Fabrikam - Sentinel");
    assert_eq!(Env::fired(&env.pc_faults, tokens), 1, "the token is cached");

    let listed = ok(
        &*pc,
        http,
        "list_referrals",
        json!({"filter": "name eq 'Fabrikam - Sentinel'", "orderby": "createdDateTime desc"}),
    )
    .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    assert_eq!(listed["value"][0]["id"], id.as_str());

    let updated = ok(&*pc, http, "update_referral", json!({"id": id, "changes": {"externalReferenceId": "0065g00000Kq1ABAAZ", "details": {"notes": "Synced"}}})).await;
    assert_eq!(updated["externalReferenceId"], "0065g00000Kq1ABAAZ");
    assert_eq!(updated["details"]["notes"], "Synced");
    assert_eq!(updated["details"]["currency"], got["details"]["currency"]);
    assert_ne!(updated["eTag"], got["eTag"]);
    let puts_so_far = Env::fired(&env.pc_faults, puts);
    assert_eq!(puts_so_far, 1);

    let gets_before = Env::fired(&env.pc_faults, gets);
    let unchanged = ok(
        &*pc,
        http,
        "update_referral",
        json!({"id": id, "changes": {"externalReferenceId": "0065g00000Kq1ABAAZ"}}),
    )
    .await;
    assert_eq!(unchanged["eTag"], updated["eTag"]);
    assert_eq!(Env::fired(&env.pc_faults, puts), puts_so_far, "an unchanged update writes nothing");
    assert_eq!(Env::fired(&env.pc_faults, gets), gets_before + 1);

    let patched = ok(&*pc, http, "patch_referral", json!({"id": id, "operations": [{"op": "replace", "path": "/details/dealValue", "value": 99000}], "etag": updated["eTag"]})).await;
    assert_eq!(patched["details"]["dealValue"], 99000);
    let bad = call(
        &*pc,
        http,
        "patch_referral",
        json!({"id": id, "operations": [{"op": "remove", "path": "/name"}]}),
    )
    .await;
    assert!(matches!(bad, Err(ConnectorError::InvalidInput(_))));

    let missing = call(&*pc, http, "get_referral", json!({"id": "00000000-0000-0000-0000-000000000000"}))
        .await
        .unwrap_err();
    assert!(matches!(missing, ConnectorError::Status { status: 404, .. }), "{missing:?}");
}

#[tokio::test]
async fn a_412_conflict_rereads_and_reapplies_once() {
    let env = start().await;
    let pc = env.pc();
    let http = &env.http;
    let created = ok(&*pc, http, "create_referral", json!({"referral": new_referral("Conflict")})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let gets = Env::count(&env.pc_faults, "GET /v1.0/engagements/referrals/*");
    let puts = Env::count(&env.pc_faults, "PUT /v1.0/engagements/referrals/*");

    // Someone else changes the referral between our read and our write, once.
    env.pc_faults.add_spec("PUT /v1.0/engagements/referrals/*: 412 times=1").unwrap();
    let updated = ok(
        &*pc,
        http,
        "update_referral",
        json!({"id": id, "changes": {"details": {"notes": "after conflict"}}}),
    )
    .await;
    assert_eq!(updated["details"]["notes"], "after conflict");
    assert_eq!((Env::fired(&env.pc_faults, gets), Env::fired(&env.pc_faults, puts)), (2, 2));

    // A second conflict in a row is reported, not retried forever.
    env.pc_faults.add_spec("PUT /v1.0/engagements/referrals/*: 412 times=2").unwrap();
    let err =
        call(&*pc, http, "update_referral", json!({"id": id, "changes": {"details": {"notes": "again"}}}))
            .await
            .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Status { status: 412, message, .. } if message.contains("changed since it was read")),
        "{err:?}"
    );
}

#[tokio::test]
async fn throttling_surfaces_retry_after_and_the_next_attempt_succeeds() {
    let env = start().await;
    let pc = env.pc();
    let http = &env.http;
    let created = ok(&*pc, http, "create_referral", json!({"referral": new_referral("Throttled")})).await;
    env.pc_faults.add_spec("GET /v1.0/engagements/referrals/*: 429 times=1 retry_after=7").unwrap();
    let err = call(&*pc, http, "get_referral", json!({"id": created["id"]})).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(matches!(err, ConnectorError::Status { status: 429, .. }));
    let again = ok(&*pc, http, "get_referral", json!({"id": created["id"]})).await;
    assert_eq!(again["id"], created["id"]);
}

#[tokio::test]
async fn an_expired_partner_center_token_is_renewed_once() {
    let env = start().await;
    let loaded = env.load_with(
        &format!(
            "{{type: refresh_token, token_url: '{}/common/oauth2/token', client_id: coflow-sandbox-app, \
             client_secret: \"secret('PC_CLIENT_SECRET')\", refresh_token: \"secret('PC_REFRESH_TOKEN')\"}}",
            env.pc_url
        ),
        "{type: client_credentials, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\"}",
    );
    let pc = loaded.partner_center["pc"].clone();
    let http = &env.http;
    let tokens = Env::count(&env.pc_faults, "POST /common/oauth2/token");
    ok(&*pc, http, "list_referrals", json!({"top": 1})).await;
    // The service's clock moves past the token's lifetime; our cache still trusts it.
    env.pc_sandbox.clock.advance(jiff::SignedDuration::from_hours(2));
    ok(&*pc, http, "list_referrals", json!({"top": 1})).await;
    assert_eq!(Env::fired(&env.pc_faults, tokens), 2);
    // Refused twice in a row: the error says so instead of looping.
    env.pc_faults.add_spec("/v1.0/*: token-expired times=2").unwrap();
    let err = call(&*pc, http, "list_referrals", json!({"top": 1})).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Status { status: 401, .. }), "{err:?}");
}

#[tokio::test]
async fn list_referrals_pages_through_5000_referrals_and_honours_the_cap() {
    let env = start().await;
    let template = new_referral("seed");
    let seed: Vec<Value> = (0..5000)
        .map(|i| {
            let mut r = template.clone();
            r["name"] = json!(format!("Seeded {i:04}"));
            r["status"] = json!("New");
            r["substatus"] = json!("Pending");
            r
        })
        .collect();
    pc_sandbox::admin::seed(&env.pc_sandbox, Value::Array(seed)).unwrap();
    let pc = env.pc();
    let pages = Env::count(&env.pc_faults, "GET /v1.0/*");
    let all =
        ok(&*pc, &env.http, "list_referrals", json!({"max_items": 10000, "orderby": "createdDateTime asc"}))
            .await;
    let items = all["value"].as_array().unwrap();
    assert_eq!(items.len(), 5000);
    let mut names: Vec<&str> = items.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5000, "no referral twice");
    assert!(all.get("@odata.nextLink").is_none());
    assert_eq!(Env::fired(&env.pc_faults, pages), 50, "100 per page");

    let capped = ok(&*pc, &env.http, "list_referrals", json!({"max_items": 250})).await;
    assert_eq!(capped["value"].as_array().unwrap().len(), 250);
    assert!(capped["@odata.nextLink"].is_string(), "the cap leaves a link to continue from");
}

#[tokio::test]
async fn webhook_registration_operations() {
    let env = start().await;
    let pc = env.pc();
    let http = &env.http;
    let events = ok(&*pc, http, "list_events", json!({})).await;
    assert!(events.as_array().unwrap().iter().any(|e| e == "referral-updated"));

    let first = ok(&*pc, http, "register_webhook", json!({"url": "https://sync.example.com/a"})).await;
    assert_eq!(first["WebhookUrl"], "https://sync.example.com/a");
    assert_eq!(first["WebhookEvents"].as_array().unwrap().len(), 4);
    let refused = call(
        &*pc,
        http,
        "register_webhook",
        json!({"url": "https://sync.example.com/b", "overwrite": false}),
    )
    .await;
    assert!(matches!(refused, Err(ConnectorError::InvalidInput(m)) if m.contains("overwrite")));
    let second = ok(
        &*pc,
        http,
        "register_webhook",
        json!({"url": "https://sync.example.com/b", "events": ["referral-created", "test-created"]}),
    )
    .await;
    assert_eq!(second["WebhookUrl"], "https://sync.example.com/b");
    let viewed = ok(&*pc, http, "get_registration", json!({})).await;
    assert_eq!(viewed["WebhookUrl"], "https://sync.example.com/b");
    assert_eq!(viewed["WebhookEvents"], json!(["referral-created", "test-created"]));

    let updated = ok(
        &*pc,
        http,
        "update_registration",
        json!({"url": "https://sync.example.com/c", "events": "test-created"}),
    )
    .await;
    assert_eq!(updated["WebhookEvents"], json!(["test-created"]));
    let validation = ok(&*pc, http, "validate", json!({})).await;
    let correlation = validation["correlationId"].as_str().unwrap().to_string();
    let status = ok(&*pc, http, "get_validation_status", json!({"correlation_id": correlation})).await;
    assert_eq!(status["correlationId"], correlation.as_str());
    ok(&*pc, http, "delete_registration", json!({})).await;
    let gone = call(&*pc, http, "get_registration", json!({})).await;
    assert!(matches!(gone, Err(ConnectorError::Status { status: 404, .. })), "{gone:?}");
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    received.0.lock().unwrap().push((headers, body));
    StatusCode::OK
}

async fn next_delivery(received: &Received, seen: usize) -> (HeaderMap, Bytes) {
    for _ in 0..200 {
        if let Some(delivery) = received.0.lock().unwrap().get(seen).cloned() {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no webhook delivery arrived");
}

#[tokio::test]
async fn genuine_webhook_events_verify_and_forged_tampered_or_replayed_ones_do_not() {
    let env = start().await;
    let received = Received::default();
    let (hook_listener, hook_url) = listener().await;
    let app = Router::new().route("/hook", post(receive)).with_state(received.clone());
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });

    let pc = env.pc();
    let http = &env.http;
    ok(&*pc, http, "register_webhook", json!({"url": format!("{hook_url}/hook")})).await;
    let created = ok(&*pc, http, "create_referral", json!({"referral": new_referral("Webhook")})).await;
    let (headers, body) = next_delivery(&received, 0).await;

    let verifier = pc.verifier_config().clone();
    let cache = CertCache::with_default_client();
    let event = pc::webhook::verify(&headers, &body, &verifier, &cache).await.unwrap();
    assert_eq!(event.event_name, "referral-created");
    assert_eq!(event.referral_id.as_deref(), created["id"].as_str());
    let again = pc::webhook::verify(&headers, &body, &verifier, &cache).await.unwrap();
    assert_eq!(again.dedup_key, event.dedup_key, "a redelivery has the same de-duplication key");

    let mut tampered = body.to_vec();
    let at = tampered.windows(7).position(|w| w == b"created").unwrap();
    tampered[at..at + 7].copy_from_slice(b"updated");
    assert_eq!(
        pc::webhook::verify(&headers, &tampered, &verifier, &cache).await,
        Err(WebhookError::SignatureMismatch)
    );

    let forger =
        aws_lc_rs::rsa::KeyPair::from_pkcs8(include_bytes!("fixtures/connectors/forger-key.pk8")).unwrap();
    let mut signature = vec![0; forger.public_modulus_len()];
    forger
        .sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            &body,
            &mut signature,
        )
        .unwrap();
    let mut forged = headers.clone();
    let value = format!("Signature {}", base64::engine::general_purpose::STANDARD.encode(&signature));
    forged.insert("x-ms-signature", HeaderValue::from_str(&value).unwrap());
    forged.remove("authorization");
    let refused = pc::webhook::verify(&forged, &body, &verifier, &cache).await.unwrap_err();
    assert_eq!(refused, WebhookError::SignatureMismatch);
    assert_eq!(refused.status(), 401);

    let mut elsewhere = headers.clone();
    elsewhere.insert("x-ms-certificate-url", HeaderValue::from_static("http://203.0.113.9/cert.cer"));
    let refused = pc::webhook::verify(&elsewhere, &body, &verifier, &cache).await.unwrap_err();
    assert!(matches!(refused, WebhookError::CertificateUrlNotAllowed(_)));

    // The same genuine event replayed seven hours later is outside the replay window.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(7);
    let replayed = pc::webhook::verify_at(&headers, &body, &verifier, &cache, later).await.unwrap_err();
    assert!(matches!(replayed, WebhookError::Replayed(age) if age >= 6 * 3600), "{replayed:?}");
    assert_eq!(replayed.status(), 401);
}

// ---------------------------------------------------------------- Salesforce

#[tokio::test]
async fn an_upsert_that_may_have_landed_is_checked_before_it_is_sent_again() {
    let env = start().await;
    let sf = env.sf();
    let http = &env.http;
    let inputs = |stage: &str, amount: Value| {
        json!({"sobject": "Opportunity", "external_id_field": "Referral_Id__c", "external_id": "7f1c0e9a-landed",
               "record": {"Name": "Landed", "StageName": stage, "CloseDate": "2025-03-31", "Amount": amount}})
    };
    let retried = |inputs: Value| {
        let sf = sf.clone();
        async move {
            let call =
                OperationCall { may_have_landed: true, ..OperationCall::new("upsert_record", &inputs, http) };
            sf.call(call).await.unwrap().body
        }
    };
    let writes = || env.sf_sandbox.writes_received();

    // Nothing there yet: the check finds no record and the upsert creates it.
    let created = retried(inputs("Prospecting", json!(1200))).await;
    assert_eq!(created["created"], true);
    assert_eq!(writes(), 1);

    // The same write again (the amount sent as text this time): answered from the record.
    let landed = retried(inputs("Prospecting", json!("1200"))).await;
    assert_eq!(landed, json!({"id": created["id"], "success": true, "errors": [], "created": false}));
    assert_eq!(writes(), 1, "a write that already landed is not sent again");

    // A field differs: the write is sent.
    let changed = retried(inputs("Qualification", json!(1200))).await;
    assert_eq!(changed["created"], false);
    assert_eq!(writes(), 2);

    // A first attempt never checks.
    ok(&*sf, http, "upsert_record", inputs("Qualification", json!(1200))).await;
    assert_eq!(writes(), 3);
}

#[tokio::test]
async fn salesforce_record_operations_round_trip() {
    let env = start().await;
    let sf = env.sf();
    let http = &env.http;
    let created =
        ok(&*sf, http, "create_record", json!({"sobject": "Account", "record": {"Name": "Contoso O'Brien"}}))
            .await;
    let account = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["success"], true);

    let opp = json!({"Name": "Contoso - Azure", "StageName": "Prospecting", "CloseDate": "2024-09-30", "AccountId": account});
    let opp_id =
        ok(&*sf, http, "create_record", json!({"sobject": "Opportunity", "record": opp})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
    let got = ok(
        &*sf,
        http,
        "get_record",
        json!({"sobject": "Opportunity", "id": opp_id, "fields": ["Name", "StageName"]}),
    )
    .await;
    assert_eq!(got["Name"], "Contoso - Azure");

    let updated = ok(
        &*sf,
        http,
        "update_record",
        json!({"sobject": "Opportunity", "id": opp_id, "record": {"StageName": "Qualification"}}),
    )
    .await;
    assert_eq!(updated, json!({"id": opp_id, "success": true, "errors": []}));

    let soql = format!("SELECT Id, StageName FROM Opportunity WHERE AccountId = {}", soql_quote(&account));
    let found = ok(&*sf, http, "query", json!({"soql": soql})).await;
    assert_eq!(found["totalSize"], 1);
    assert_eq!(found["records"][0]["StageName"], "Qualification");
    let by_name = ok(
        &*sf,
        http,
        "query",
        json!({"soql": format!("SELECT Id FROM Account WHERE Name = {}", soql_quote("Contoso O'Brien"))}),
    )
    .await;
    assert_eq!(by_name["totalSize"], 1, "soql_quote keeps the apostrophe inside the literal");

    let upsert = |value: &str, stage: &str| {
        json!({"sobject": "Opportunity", "external_id_field": "Referral_Id__c", "external_id": value,
               "record": {"Name": "From referral", "StageName": stage, "CloseDate": "2024-12-31", "Referral_Id__c": value}})
    };
    let inserted =
        ok(&*sf, http, "upsert_record", upsert("d3ca5d20-0899-42a8-b9f7-5e9c06ad641d", "Prospecting")).await;
    assert_eq!(inserted["created"], true);
    let again =
        ok(&*sf, http, "upsert_record", upsert("d3ca5d20-0899-42a8-b9f7-5e9c06ad641d", "Qualification"))
            .await;
    assert_eq!(again["created"], false);

    let described = ok(&*sf, http, "describe", json!({"sobject": "Opportunity"})).await;
    assert!(described["fields"].as_array().unwrap().iter().any(|f| f["name"] == "Referral_Id__c"));

    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let end = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(2);
    // The replication resources cover changes up to the last whole second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed = ok(
        &*sf,
        http,
        "get_updated",
        json!({"sobject": "Opportunity", "start": start.to_string(), "end": end.to_string()}),
    )
    .await;
    assert!(changed["ids"].as_array().unwrap().iter().any(|i| i == opp_id.as_str()), "{changed}");

    let deleted = ok(&*sf, http, "delete_record", json!({"sobject": "Opportunity", "id": opp_id})).await;
    assert_eq!(deleted["success"], true);
    let gone =
        call(&*sf, http, "get_record", json!({"sobject": "Opportunity", "id": opp_id})).await.unwrap_err();
    assert!(matches!(gone, ConnectorError::Status { status: 404, .. }), "{gone:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let log = ok(
        &*sf,
        http,
        "get_deleted",
        json!({"sobject": "Opportunity", "start": start.to_string(), "end": end.to_string()}),
    )
    .await;
    assert!(log["deletedRecords"].as_array().unwrap().iter().any(|r| r["id"] == opp_id.as_str()), "{log}");
    let with_deleted = ok(
        &*sf,
        http,
        "query_all",
        json!({"soql": format!("SELECT Id, IsDeleted FROM Opportunity WHERE Id = '{opp_id}'")}),
    )
    .await;
    assert_eq!(with_deleted["records"][0]["IsDeleted"], true);

    let invalid = call(&*sf, http, "get_record", json!({"sobject": "Opportunity/../x", "id": opp_id})).await;
    assert!(matches!(invalid, Err(ConnectorError::InvalidInput(_))));
}

#[tokio::test]
async fn collections_go_in_batches_of_200_and_queries_page_through_5000_records() {
    let env = start().await;
    let sf = env.sf();
    let http = &env.http;
    let collections = Env::count(&env.sf_faults, "* /services/data/*/composite/sobjects");
    let records: Vec<Value> = (0..5000).map(|i| json!({"Name": format!("Account {i:04}")})).collect();
    let results = ok(&*sf, http, "create_records", json!({"sobject": "Account", "records": records})).await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 5000);
    assert!(results.iter().all(|r| r["success"] == true));
    assert_eq!(Env::fired(&env.sf_faults, collections), 25);

    let changes: Vec<Value> =
        results[..450].iter().map(|r| json!({"Id": r["id"], "Industry": "Manufacturing"})).collect();
    let updated = ok(&*sf, http, "update_records", json!({"sobject": "Account", "records": changes})).await;
    assert_eq!(updated.as_array().unwrap().len(), 450);
    assert_eq!(Env::fired(&env.sf_faults, collections), 28);

    let pages = Env::count(&env.sf_faults, "GET /services/data/*/query*");
    let all = ok(&*sf, http, "query", json!({"soql": "SELECT Id, Name FROM Account ORDER BY Name"})).await;
    assert_eq!(all["records"].as_array().unwrap().len(), 5000);
    assert_eq!(all["totalSize"], 5000);
    assert_eq!(all["done"], true);
    assert_eq!(Env::fired(&env.sf_faults, pages), 3, "2000 per page");
    let some = ok(&*sf, http, "query", json!({"soql": "SELECT Id FROM Account", "limit": 2500})).await;
    assert_eq!(some["records"].as_array().unwrap().len(), 2500);
    assert_eq!(some["done"], false);
    let manufacturing = ok(
        &*sf,
        http,
        "query",
        json!({"soql": "SELECT COUNT() FROM Account WHERE Industry = 'Manufacturing'"}),
    )
    .await;
    assert_eq!(manufacturing["totalSize"], 450);
}

#[tokio::test]
async fn an_expired_salesforce_session_is_renewed_once_with_each_grant() {
    let env = start().await;
    let grants = [
        "{type: client_credentials, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\"}".to_string(),
        "{type: password, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\", username: integration@coflow.sandbox, password: \"secret('SF_PASSWORD')\", security_token: \"secret('SF_SECURITY_TOKEN')\"}".to_string(),
        "{type: refresh_token, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\", refresh_token: \"secret('SF_REFRESH_TOKEN')\"}".to_string(),
        "{type: jwt_bearer, client_id: 3MVG9coflowSandboxConsumerKey, username: integration@coflow.sandbox, private_key: \"secret('SF_JWT_KEY')\"}".to_string(),
    ];
    let tokens = Env::count(&env.sf_faults, "POST /services/oauth2/token");
    let pc_auth = format!(
        "{{type: refresh_token, token_url: '{}/common/oauth2/token', client_id: coflow-sandbox-app, refresh_token: \"secret('PC_REFRESH_TOKEN')\"}}",
        env.pc_url
    );
    for (n, grant) in grants.iter().enumerate() {
        let sf = env.load_with(&pc_auth, grant).salesforce["sf"].clone();
        let soql = json!({"soql": "SELECT Id FROM Account LIMIT 1"});
        ok(&*sf, &env.http, "query", soql.clone()).await;
        env.sf_sandbox.expire_sessions();
        ok(&*sf, &env.http, "query", soql).await;
        assert_eq!(Env::fired(&env.sf_faults, tokens), 2 * (n as u64 + 1), "grant {grant}");
    }
    let sf = env.sf();
    env.sf_faults.add_spec("GET /services/data/*: token-expired times=2").unwrap();
    let err = call(&*sf, &env.http, "describe", json!({"sobject": "Account"})).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Status { status: 401, .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_credentials_fail_without_revealing_them() {
    let env = start().await;
    let mut wrong = secrets();
    wrong.0.insert("SF_CLIENT_SECRET".into(), "definitely-not-the-secret".into());
    let text = env.config_yaml(
        &format!("{{type: refresh_token, token_url: '{}/common/oauth2/token', client_id: coflow-sandbox-app, refresh_token: \"secret('PC_REFRESH_TOKEN')\"}}", env.pc_url),
        "{type: client_credentials, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: \"secret('SF_CLIENT_SECRET')\"}",
    );
    let sf = config::parse(&text, "coflow.yaml").unwrap().build(&wrong).unwrap().salesforce["sf"].clone();
    let err = call(&*sf, &env.http, "describe", json!({"sobject": "Account"})).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(!shown.contains("definitely-not-the-secret"), "{shown}");
}

#[tokio::test]
async fn salesforce_503_with_retry_after_is_surfaced() {
    let env = start().await;
    let sf = env.sf();
    env.sf_faults.add_spec("GET /services/data/*/query*: 503 times=1 retry_after=3").unwrap();
    let err = call(&*sf, &env.http, "query", json!({"soql": "SELECT Id FROM Account"})).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    ok(&*sf, &env.http, "query", json!({"soql": "SELECT Id FROM Account"})).await;
}

// ---------------------------------------------------------------- dry-run

#[tokio::test]
async fn a_dry_run_sends_reads_and_shows_writes_with_credentials_redacted() {
    let env = start().await;
    let dry = HttpClient::new(reqwest::Client::new(), true);
    let sf = env.sf();
    let held =
        ok(&*sf, &dry, "create_record", json!({"sobject": "Account", "record": {"Name": "Not created"}}))
            .await;
    assert_eq!(held["dry_run"], true);
    assert_eq!(held["request"]["method"], "POST");
    assert_eq!(held["request"]["url"], format!("{}/services/data/v59.0/sobjects/Account", env.sf_url));
    assert_eq!(held["request"]["headers"]["Authorization"], "***");
    assert_eq!(held["request"]["body"], json!({"Name": "Not created"}));
    let read =
        ok(&*sf, &dry, "query", json!({"soql": "SELECT Id FROM Account WHERE Name = 'Not created'"})).await;
    assert_eq!(read["totalSize"], 0, "the read was sent and the write was not");
    for request in dry.held_back() {
        assert_eq!(request.headers.get("Authorization").map(String::as_str), Some("***"));
    }

    let pc = env.pc();
    let created = ok(&*pc, &env.http, "create_referral", json!({"referral": new_referral("Dry")})).await;
    let held =
        ok(&*pc, &dry, "update_referral", json!({"id": created["id"], "changes": {"name": "Renamed"}})).await;
    assert_eq!(held["request"]["method"], "PUT");
    assert_eq!(held["request"]["headers"]["If-Match"], created["eTag"]);
    assert_eq!(held["request"]["headers"]["Authorization"], "***");
    assert!(held["request"]["body"].get("links").is_none());
    assert_eq!(held["request"]["body"]["name"], "Renamed");
    let still = ok(&*pc, &env.http, "get_referral", json!({"id": created["id"]})).await;
    assert_eq!(still["name"], "Dry");
    let text = serde_json::to_string(&dry.held_back()).unwrap();
    assert!(!text.contains("Bearer"), "{text}");
}

// ---------------------------------------------------------------- polling

#[tokio::test]
async fn polling_under_concurrent_changes_fires_every_change_once() {
    use coflow::connectors::salesforce::poll::{self, PollOn, PollSpec, Watermark};
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    let env = start().await;
    let sf = env.sf();
    let mut spec = PollSpec::new("Opportunity", PollOn::CreatedOrModified);
    spec.condition = Some("Sync_with_Partner_Center__c = true".into());
    spec.fields = vec!["StageName".into(), "Description".into()];
    let mut watermark = Watermark::starting_at(jiff::Timestamp::now());

    let writer = {
        let sf = sf.clone();
        let http = env.http.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(42);
            let mut ids: Vec<String> = Vec::new();
            let stages = ["Prospecting", "Qualification", "Needs Analysis", "Closed Won"];
            for n in 0..120 {
                if ids.is_empty() || rng.random_range(0..4) == 0 {
                    let record = json!({"Name": format!("Poll {n}"), "StageName": "Prospecting", "CloseDate": "2024-12-31", "Sync_with_Partner_Center__c": true});
                    let out =
                        ok(&*sf, &http, "create_record", json!({"sobject": "Opportunity", "record": record}))
                            .await;
                    ids.push(out["id"].as_str().unwrap().to_string());
                } else {
                    let id = ids[rng.random_range(0..ids.len())].clone();
                    let stage = stages[rng.random_range(0..stages.len())];
                    let record = json!({"StageName": stage, "Description": format!("change {n}")});
                    ok(
                        &*sf,
                        &http,
                        "update_record",
                        json!({"sobject": "Opportunity", "id": id, "record": record}),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..6))).await;
            }
            ids
        })
    };

    let mut fired: Vec<(String, String)> = Vec::new();
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let mut polls = 0;
    loop {
        let finished = writer.is_finished();
        if finished {
            // Let the last second's changes settle before the final poll.
            tokio::time::sleep(spec.settle + Duration::from_millis(500)).await;
        }
        let result = poll::poll(&sf, &env.http, &spec, &watermark).await.unwrap();
        for r in &result.records {
            latest.insert(r["Id"].as_str().unwrap().to_string(), r["Description"].clone());
        }
        fired.extend(result.records.iter().map(|r| {
            (r["Id"].as_str().unwrap().to_string(), r["SystemModstamp"].as_str().unwrap().to_string())
        }));
        watermark = result.watermark;
        polls += 1;
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let created = writer.await.unwrap();
    assert!(polls > 3, "the polls interleaved with the writes");

    let mut unique = fired.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fired.len(), "a change fired twice");
    let last = ok(
        &*sf,
        &env.http,
        "query",
        json!({"soql": "SELECT Id, SystemModstamp, Description FROM Opportunity"}),
    )
    .await;
    for record in last["records"].as_array().unwrap() {
        let key = (
            record["Id"].as_str().unwrap().to_string(),
            record["SystemModstamp"].as_str().unwrap().to_string(),
        );
        let seen: Vec<&(String, String)> = fired.iter().filter(|(id, _)| *id == key.0).collect();
        assert!(fired.contains(&key), "the last change of {key:?} was missed; fired {seen:?}");
        assert_eq!(latest[&key.0], record["Description"], "{} fired with stale data", key.0);
    }
    for id in &created {
        assert!(fired.iter().any(|(f, _)| f == id), "{id} never fired");
    }
    let stored: Watermark = serde_json::from_str(&serde_json::to_string(&watermark).unwrap()).unwrap();
    let idle = poll::poll(&sf, &env.http, &spec, &stored).await.unwrap();
    assert!(idle.records.is_empty(), "a stored watermark fires nothing again");
}

// ---------------------------------------------------------------- secrets in a flow run

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_flow_run_using_secret_credentials_shows_none_of_them() {
    let env = start().await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The process-wide subscriber, not a scoped one: tracing caches per call site whether any
    // subscriber wants it, and other tests' threads hitting a call site while a scoped
    // subscriber is being set up could cache "no" for it. The logs of tests running meanwhile
    // are captured too, and must hold no secret either.
    tracing::subscriber::set_global_default(subscriber).expect("no other test sets a subscriber");

    let flow = coflow::flow::load_str(
        r#"
name: secrets-stay-secret
connections: {sf: sf, pc: pc}
trigger: {type: manual}
actions:
  referrals:
    type: partner_center.list_referrals
    connection: pc
    inputs: {top: 5}
  account:
    type: salesforce.create_record
    connection: sf
    inputs: {sobject: Account, record: {Name: Secretless Inc}}
  missing:
    type: partner_center.get_referral
    connection: pc
    inputs: {id: 00000000-0000-0000-0000-000000000000}
    retry: {type: none}
"#,
    )
    .unwrap();
    let mut options = coflow::engine::RunOptions::with_http(env.http.clone());
    options.connections = env.load().connections;
    let run = coflow::engine::run(&flow, coflow::engine::TriggerEvent::default(), &options).await;
    let record = serde_json::to_string(&run).unwrap();
    assert!(record.contains("Secretless Inc"), "the run did its work: {record}");
    assert!(record.contains("404"), "the failing action is recorded: {record}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "trace logs were captured");
    for secret in [PC_SECRET, PC_PASSWORD, SF_SECRET, "Bearer "] {
        assert_eq!(record.matches(secret).count(), 0, "{secret} in the run record");
        assert_eq!(logs.matches(secret).count(), 0, "{secret} in the logs");
    }
}

// ---------------------------------------------------------------- calls per synced record

#[tokio::test]
async fn api_calls_per_synced_referral_for_a_create_and_an_unchanged_update() {
    let env = start().await;
    let pc = env.pc();
    let sf = env.sf();
    let http = &env.http;
    let referral =
        ok(&*pc, http, "create_referral", json!({"referral": new_referral("Per-record calls")})).await;
    let id = referral["id"].as_str().unwrap().to_string();
    // Sign both connections in first, so the figures below count API calls only.
    ok(&*sf, http, "query", json!({"soql": "SELECT Id FROM Account LIMIT 1"})).await;
    let pc_calls = Env::count(&env.pc_faults, "/v1.0/*");
    let sf_calls = Env::count(&env.sf_faults, "/services/data/*");
    let token_calls = Env::count(&env.pc_faults, "POST /common/oauth2/token");
    let sf_token_calls = Env::count(&env.sf_faults, "POST /services/oauth2/token");

    let sync = || async {
        let referral = ok(&*pc, http, "get_referral", json!({"id": id})).await;
        let soql = format!("SELECT Id FROM Opportunity WHERE Referral_Id__c = {}", soql_quote(&id));
        let found = ok(&*sf, http, "query", json!({"soql": soql})).await;
        let opportunity = match found["records"][0]["Id"].as_str() {
            Some(existing) => existing.to_string(),
            None => {
                let record = json!({"Name": referral["name"], "StageName": "Prospecting", "CloseDate": "2024-12-31", "Referral_Id__c": id});
                ok(&*sf, http, "create_record", json!({"sobject": "Opportunity", "record": record})).await["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        };
        let changes = json!({"externalReferenceId": opportunity});
        ok(&*pc, http, "update_referral", json!({"id": id, "changes": changes, "current": referral})).await;
    };
    let counts = || (Env::fired(&env.pc_faults, pc_calls), Env::fired(&env.sf_faults, sf_calls));

    sync().await;
    assert_eq!(counts(), (2, 2), "create: PC GET + PUT, SF query + create");
    sync().await;
    assert_eq!(counts(), (3, 3), "unchanged: PC GET (no PUT), SF query");
    assert_eq!((Env::fired(&env.pc_faults, token_calls), Env::fired(&env.sf_faults, sf_token_calls)), (0, 0));
}
