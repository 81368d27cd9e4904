//! The Salesforce emulator over HTTP on a loopback port: every endpoint, status code and error
//! shape, compared with the reference samples in `tests/fixtures/sandbox/`.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coflow::sandbox::{self, Sandbox, SandboxConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const V: &str = "/services/data/v59.0";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox").join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

struct Org {
    sandbox: Sandbox,
    http: reqwest::Client,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn org_with(config: SandboxConfig) -> Org {
    let sandbox = sandbox::start(config).await.expect("sandbox starts");
    let token = sandbox.salesforce.config().access_token.clone();
    Org { sandbox, http: reqwest::Client::new(), token }
}

async fn org() -> Org {
    org_with(SandboxConfig::ephemeral()).await
}

impl Org {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.salesforce_url, path)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None, &[]).await
    }

    async fn query(&self, soql: &str) -> Reply {
        let path = format!("{V}/query?q={}", urlencode(soql));
        self.get(&path).await
    }

    async fn create(&self, object: &str, body: Value) -> String {
        let reply = self.post(&format!("{V}/sobjects/{object}"), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().expect("id").to_string()
    }

    async fn opportunity(&self, name: &str, extra: Value) -> String {
        let mut body = json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2024-09-30"});
        if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), extra) {
            map.extend(extra);
        }
        self.create("Opportunity", body).await
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every key of `expected` exists in `actual` with the same JSON type (null matches anything).
fn assert_same_shape(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (_, Value::Null) | (Value::Null, _) => {}
        (Value::Object(a), Value::Object(e)) => {
            for (key, ev) in e {
                let av = a.get(key).unwrap_or_else(|| panic!("{path}.{key} missing in {actual}"));
                assert_same_shape(av, ev, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            if let (Some(af), Some(ef)) = (a.first(), e.first()) {
                assert_same_shape(af, ef, &format!("{path}[0]"));
            }
        }
        (a, e) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(e), "{path}: {a} vs {e}"),
    }
}

fn error_code(reply: &Reply) -> &str {
    reply.body[0]["errorCode"].as_str().unwrap_or_default()
}

fn error_message(reply: &Reply) -> &str {
    reply.body[0]["message"].as_str().unwrap_or_default()
}

fn is_valid_id(id: &str, prefix: &str) -> bool {
    id.len() == 18
        && id.starts_with(prefix)
        && coflow::sandbox::salesforce::ids::to18(&id[..15]).as_deref() == Some(id)
}

// ---------------------------------------------------------------- OAuth

fn form_post(org: &Org, path: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    org.http.post(org.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body)
}

/// A token request form and the error it must produce.
type TokenCase<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);

async fn token_request(org: &Org, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
    let mut req = form_post(org, "/services/oauth2/token", form);
    if let Some((user, pass)) = basic {
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.expect("json");
    Reply { status, headers, body }
}

#[tokio::test]
async fn oauth_grants_answer_like_salesforce() {
    let org = org().await;
    let c = org.sandbox.salesforce.config().clone();
    let sample = fixture("sf-token.json");

    let reply = token_request(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_same_shape(&reply.body, &sample, "token");
    assert_eq!(reply.body["instance_url"], json!(org.sandbox.salesforce_url));
    assert!(reply.body.get("refresh_token").is_none(), "client credentials never return a refresh token");
    // The signature is HMAC-SHA256(id + issued_at) keyed with the client secret.
    let id = reply.body["id"].as_str().unwrap_or_default();
    let issued = reply.body["issued_at"].as_str().unwrap_or_default();
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(c.client_secret.as_bytes()).expect("key");
    mac.update(format!("{id}{issued}").as_bytes());
    assert_eq!(reply.body["signature"].as_str(), Some(STANDARD.encode(mac.finalize().into_bytes()).as_str()));
    let segments: Vec<&str> = id.rsplitn(3, '/').collect();
    assert!(
        is_valid_id(segments[1], "00D") && is_valid_id(segments[0], "005"),
        "identity url ends with org and user ids: {id}"
    );

    // The issued token works on the REST API.
    let new_token = reply.body["access_token"].as_str().unwrap_or_default().to_string();
    let resp =
        org.http.get(org.url(&format!("{V}/limits"))).bearer_auth(&new_token).send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);

    let basic =
        token_request(&org, &[("grant_type", "client_credentials")], Some((&c.client_id, &c.client_secret)))
            .await;
    assert_eq!(basic.status, StatusCode::OK, "HTTP Basic client auth");

    let cases: Vec<TokenCase> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", &c.client_secret),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("username", &c.username),
                ("password", "nope"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            vec![("grant_type", "refresh_token"), ("client_id", &c.client_id), ("refresh_token", "unknown")],
            "invalid_grant",
            "expired access/refresh token",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "x")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (vec![("client_id", &c.client_id)], "invalid_request", "grant type is missing"),
    ];
    for (form, error, description) in cases {
        let reply = token_request(&org, &form, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(reply.body, json!({"error": error, "error_description": description}), "{form:?}");
    }

    let with_token = format!("{}{}", c.password, c.security_token);
    let ok = token_request(
        &org,
        &[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", &with_token),
        ],
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "password + security token");

    let refreshed = token_request(
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", &c.refresh_token),
        ],
        None,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let refreshed_token = refreshed.body["access_token"].as_str().unwrap_or_default().to_string();

    // Revoking the refresh token ends the sessions issued from it.
    let revoke = form_post(&org, "/services/oauth2/revoke", &[("token", c.refresh_token.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(revoke.status(), StatusCode::OK);
    let resp = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth(&refreshed_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let again = form_post(&org, "/services/oauth2/revoke", &[("token", c.refresh_token.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    let userinfo = org.get("/services/oauth2/userinfo").await;
    assert_eq!(userinfo.body["preferred_username"], json!(c.username));
    let identity = org.get(&id.replacen(&org.sandbox.salesforce_url, "", 1)).await;
    assert_eq!(identity.status, StatusCode::OK);
    assert_eq!(identity.body["username"], json!(c.username));
    org.sandbox.shutdown().await;
}

fn sign_jwt(claims: &Value) -> String {
    let pem = std::fs::read_to_string(fixture_path("jwt-key.pem")).expect("key");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).expect("pem body");
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).expect("pkcs8 key");
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("signed");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn jwt_bearer_checks_signature_and_claims() {
    for key_file in ["jwt-cert.pem", "jwt-public.pem"] {
        let mut config = SandboxConfig::ephemeral();
        config.jwt_public_key_pem = Some(std::fs::read_to_string(fixture_path(key_file)).expect("pem"));
        let org = org_with(config).await;
        let c = org.sandbox.salesforce.config().clone();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
            as i64;
        let good = json!({"iss": c.client_id, "sub": c.username, "aud": "https://login.salesforce.com", "exp": now + 180});
        let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let login = |assertion: String| {
            let org = &org;
            async move { token_request(org, &[("grant_type", grant), ("assertion", &assertion)], None).await }
        };
        let ok = login(sign_jwt(&good)).await;
        assert_eq!(ok.status, StatusCode::OK, "{key_file}: {}", ok.body);
        assert!(ok.body["access_token"].is_string());
        // simple-salesforce sends exp as a string.
        let string_exp = json!({"iss": c.client_id, "sub": c.username, "aud": "https://test.salesforce.com", "exp": (now + 180).to_string()});
        assert_eq!(login(sign_jwt(&string_exp)).await.status, StatusCode::OK);

        // Same signature, other claims: the signature no longer matches.
        let signed = sign_jwt(&good);
        let signature = signed.rsplit('.').next().unwrap_or_default();
        let forged_claims = URL_SAFE_NO_PAD.encode(json!({"iss": c.client_id, "sub": c.username, "aud": "https://login.salesforce.com", "exp": now + 9999}).to_string());
        let tampered =
            format!("{}.{forged_claims}.{signature}", URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#));
        let cases = [
            (tampered, "invalid_grant", "invalid assertion"),
            (
                sign_jwt(
                    &json!({"iss": c.client_id, "sub": c.username, "aud": "https://example.com", "exp": now + 60}),
                ),
                "invalid_grant",
                "audience is invalid",
            ),
            (
                sign_jwt(
                    &json!({"iss": c.client_id, "sub": c.username, "aud": "https://login.salesforce.com", "exp": now - 3600}),
                ),
                "invalid_grant",
                "expired authorization code",
            ),
            (
                sign_jwt(
                    &json!({"iss": c.client_id, "sub": "someone@else", "aud": "https://login.salesforce.com", "exp": now + 60}),
                ),
                "invalid_grant",
                "user hasn't approved this consumer",
            ),
            (
                sign_jwt(
                    &json!({"iss": "other-app", "sub": c.username, "aud": "https://login.salesforce.com", "exp": now + 60}),
                ),
                "invalid_client_id",
                "client identifier invalid",
            ),
        ];
        for (assertion, error, description) in cases {
            let reply = login(assertion).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.body, json!({"error": error, "error_description": description}));
        }
        org.sandbox.shutdown().await;
    }
}

// ---------------------------------------------------------------- versions, limits, sessions

#[tokio::test]
async fn versions_resources_limits_and_sessions() {
    let mut config = SandboxConfig::ephemeral();
    config.daily_api_limit = Some(5);
    let org = org_with(config).await;

    let versions: Value =
        org.http.get(org.url("/services/data/")).send().await.expect("sent").json().await.expect("json");
    let list = versions.as_array().expect("array");
    assert!(
        list.iter()
            .any(|v| v == &json!({"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}))
    );
    assert!(list.windows(2).all(|w| w[0]["version"].as_str() < w[1]["version"].as_str()
        || w[0]["version"].as_str().map(str::len) < w[1]["version"].as_str().map(str::len)));

    let resources = org.get(&format!("{V}/")).await;
    assert_eq!(resources.status, StatusCode::OK);
    assert_eq!(resources.body["query"], json!(format!("{V}/query")));
    assert!(resources.body["identity"].as_str().is_some_and(|s| s.contains("/id/00D")));
    assert_eq!(resources.headers["sforce-limit-info"], "api-usage=1/5");
    assert_eq!(resources.headers["content-type"], "application/json;charset=UTF-8");

    let limits = org.get(&format!("{V}/limits")).await;
    assert_eq!(limits.body["DailyApiRequests"], json!({"Max": 5, "Remaining": 3}));

    let unknown_version = org.get("/services/data/v99.0/limits").await;
    assert_eq!(unknown_version.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&unknown_version), "NOT_FOUND");

    // Three calls made; two left, then 403.
    org.get(&format!("{V}/sobjects")).await;
    org.get(&format!("{V}/sobjects")).await;
    let over = org.get(&format!("{V}/sobjects")).await;
    assert_eq!(over.status, StatusCode::FORBIDDEN);
    assert_eq!(
        over.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(over.headers["sforce-limit-info"], "api-usage=5/5");

    // Sessions: a bad token and an expired session answer like the sample.
    let bad =
        org.http.get(org.url(&format!("{V}/limits"))).bearer_auth("00Dxx!nope").send().await.expect("sent");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers()["www-authenticate"], "Token");
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body, fixture("sf-error-invalid-session.json"));
    org.http.post(org.url("/__sandbox/sessions/expire")).send().await.expect("sent");
    let expired = org.get(&format!("{V}/limits")).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    org.sandbox.shutdown().await;
}

// ---------------------------------------------------------------- describe

#[tokio::test]
async fn describe_matches_the_reference_shapes() {
    let org = org().await;
    let global = org.get(&format!("{V}/sobjects/")).await;
    assert_eq!(global.body["maxBatchSize"], json!(200));
    let names: Vec<&str> =
        global.body["sobjects"].as_array().expect("list").iter().filter_map(|o| o["name"].as_str()).collect();
    for name in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "OpportunityTeamMember",
        "Note",
        "Microsoft_Solution__c",
        "User",
    ] {
        assert!(names.contains(&name), "{name} in describeGlobal");
    }
    let sample = fixture("sf-describe-opportunity-excerpt.json");
    let entry = global.body["sobjects"]
        .as_array()
        .expect("list")
        .iter()
        .find(|o| o["name"] == "Opportunity")
        .cloned()
        .expect("Opportunity");
    for (key, value) in sample.as_object().expect("object") {
        if value.is_boolean() && !key.ends_with("Layoutable") {
            assert!(entry[key].is_boolean(), "describeGlobal entry carries boolean {key}");
        }
    }

    let describe = org.get(&format!("{V}/sobjects/Opportunity/describe")).await;
    assert_eq!(describe.status, StatusCode::OK);
    let mut trimmed = sample.clone();
    trimmed.as_object_mut().expect("object").remove("fields");
    assert_same_shape(&describe.body, &trimmed, "describe");
    let fields = describe.body["fields"].as_array().expect("fields");
    let field = |name: &str| {
        fields.iter().find(|f| f["name"] == name).cloned().unwrap_or_else(|| panic!("field {name}"))
    };
    let sample_keys: Vec<&String> = sample["fields"][0].as_object().expect("field").keys().collect();
    for f in fields {
        let keys: Vec<&String> = f.as_object().expect("field").keys().collect();
        for key in &sample_keys {
            assert!(keys.contains(key), "{} lacks {key}", f["name"]);
        }
    }
    for sample_field in sample["fields"].as_array().expect("fields") {
        let name = sample_field["name"].as_str().expect("name");
        let ours = field(name);
        assert_same_shape(&ours, sample_field, name);
        for key in [
            "type",
            "soapType",
            "createable",
            "updateable",
            "nillable",
            "externalId",
            "unique",
            "referenceTo",
            "relationshipName",
            "length",
            "byteLength",
            "defaultedOnCreate",
        ] {
            assert_eq!(ours[key], sample_field[key], "{name}.{key}");
        }
    }
    for custom in [
        "Sync_with_Partner_Center__c",
        "Referral_Identifier__c",
        "Referral_Link__c",
        "How_can_Microsoft_help__c",
        "Products__c",
        "Audit__c",
    ] {
        assert_eq!(field(custom)["custom"], json!(true), "{custom}");
    }
    assert_eq!(field("Products__c")["type"], json!("multipicklist"));
    let children: Vec<&str> = describe.body["childRelationships"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["relationshipName"].as_str())
        .collect();
    for rel in ["OpportunityTeamMembers", "Notes", "Microsoft_Solutions__r"] {
        assert!(children.contains(&rel), "{rel}");
    }
    let solution = org.get(&format!("{V}/sobjects/Microsoft_Solution__c/describe")).await;
    assert_eq!(solution.body["custom"], json!(true));
    assert_eq!(solution.body["keyPrefix"], json!("a0X"));
    let lookup = solution.body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "Opportunity__c")
        .cloned()
        .expect("lookup");
    assert_eq!(lookup["referenceTo"], json!(["Opportunity"]));
    assert_eq!(lookup["relationshipName"], json!("Opportunity__r"));

    let basic = org.get(&format!("{V}/sobjects/Account")).await;
    assert_eq!(basic.body["objectDescribe"]["keyPrefix"], json!("001"));
    assert!(basic.body["recentItems"].is_array());
    let missing = org.get(&format!("{V}/sobjects/Foo__c/describe")).await;
    assert_eq!((missing.status, error_code(&missing)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    org.sandbox.shutdown().await;
}

// ---------------------------------------------------------------- records

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let org = org().await;
    let account = org.create("Account", json!({"Name": "Contoso"})).await;
    assert!(is_valid_id(&account, "001"), "{account}");
    let created = org.post(&format!("{V}/sobjects/Opportunity/"), json!({"Name": "Contoso - Azure", "StageName": "Prospecting", "CloseDate": "2024-09-30", "AccountId": account, "Amount": 1000})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["success"], json!(true));
    assert_eq!(created.body["errors"], json!([]));
    let id = created.body["id"].as_str().expect("id").to_string();
    assert!(is_valid_id(&id, "006"));
    assert_eq!(created.headers["location"], format!("{V}/sobjects/Opportunity/{id}").as_str());

    let record = org.get(&format!("{V}/sobjects/Opportunity/{id}")).await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(
        record.body["attributes"],
        json!({"type": "Opportunity", "url": format!("{V}/sobjects/Opportunity/{id}")})
    );
    assert_eq!(record.body["Probability"], json!(10.0));
    assert_eq!(record.body["ExpectedRevenue"], json!(100.0));
    assert_eq!(record.body["IsClosed"], json!(false));
    assert_eq!(record.body["Description"], Value::Null, "null fields are present");
    assert_eq!(record.body["OwnerId"], json!(org.sandbox.salesforce.user_id()));
    assert_eq!(record.body["LastModifiedById"], json!(org.sandbox.salesforce.user_id()));
    let stamp = record.body["SystemModstamp"].as_str().expect("stamp").to_string();
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$").expect("re").is_match(&stamp),
        "{stamp}"
    );
    assert_eq!(record.body["CreatedDate"], record.body["LastModifiedDate"]);

    let fifteen = &id[..15];
    let some = org.get(&format!("{V}/sobjects/Opportunity/{fifteen}?fields=Name,StageName")).await;
    let keys: Vec<&String> = some.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["attributes", "Name", "StageName"], "15-character ids are accepted and fields filter");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let updated = org
        .patch(&format!("{V}/sobjects/Opportunity/{id}"), json!({"StageName": "Closed Won", "Id": id}))
        .await;
    assert_eq!(updated.status, StatusCode::NO_CONTENT);
    let after = org.get(&format!("{V}/sobjects/Opportunity/{id}")).await;
    assert_eq!(
        (after.body["IsWon"].clone(), after.body["IsClosed"].clone(), after.body["Probability"].clone()),
        (json!(true), json!(true), json!(100.0))
    );
    assert!(after.body["SystemModstamp"].as_str() > Some(stamp.as_str()), "SystemModstamp moves on update");
    assert_eq!(after.body["CreatedDate"], record.body["CreatedDate"]);

    let bad_field = org.get(&format!("{V}/sobjects/Opportunity/{id}?fields=Nope")).await;
    assert_eq!(error_code(&bad_field), "INVALID_FIELD");
    let not_an_id = org.get(&format!("{V}/sobjects/Opportunity/notAnId")).await;
    assert_eq!(not_an_id.status, StatusCode::NOT_FOUND);
    assert_eq!(
        error_message(&not_an_id),
        "Provided external ID field does not exist or is not accessible: notAnId"
    );

    assert_eq!(org.delete(&format!("{V}/sobjects/Opportunity/{id}")).await.status, StatusCode::NO_CONTENT);
    let gone = org.get(&format!("{V}/sobjects/Opportunity/{id}")).await;
    assert_eq!((gone.status, error_code(&gone)), (StatusCode::NOT_FOUND, "ENTITY_IS_DELETED"));
    let put = org.call(Method::PUT, &format!("{V}/sobjects/Account/{account}"), Some(json!({})), &[]).await;
    assert_eq!((put.status, error_code(&put)), (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"));
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn writes_are_validated_like_salesforce() {
    let org = org().await;
    let opp = format!("{V}/sobjects/Opportunity");
    let base = json!({"Name": "N", "StageName": "Prospecting", "CloseDate": "2024-09-30"});
    let with = |extra: Value| {
        let mut body = base.clone();
        if let (Some(m), Value::Object(e)) = (body.as_object_mut(), extra) {
            m.extend(e);
        }
        body
    };
    let cases = [
        (
            json!({"Name": "N"}),
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [StageName, CloseDate]",
            Some(json!(["StageName", "CloseDate"])),
        ),
        (
            with(json!({"Foo__c": 1})),
            "INVALID_FIELD",
            "No such column 'Foo__c' on sobject of type Opportunity",
            None,
        ),
        (
            with(json!({"IsWon": true})),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: IsWon. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            Some(json!(["IsWon"])),
        ),
        (with(json!({"Name": "x".repeat(121)})), "STRING_TOO_LONG", "", Some(json!(["Name"]))),
        (
            with(json!({"How_can_Microsoft_help__c": "Pizza"})),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "How can Microsoft help?: bad value for restricted picklist field: Pizza",
            Some(json!(["How_can_Microsoft_help__c"])),
        ),
        (with(json!({"CloseDate": "soon"})), "JSON_PARSER_ERROR", "", None),
        (with(json!({"Amount": "lots"})), "JSON_PARSER_ERROR", "", None),
        (
            with(json!({"AccountId": "garbage"})),
            "MALFORMED_ID",
            "Account ID: id value of incorrect type: garbage",
            Some(json!(["AccountId"])),
        ),
        (
            with(json!({"AccountId": "001000000000000AAA"})),
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            Some(json!(["AccountId"])),
        ),
        (
            with(json!({"Id": "006000000000000AAA"})),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "cannot specify Id in an insert call",
            Some(json!(["Id"])),
        ),
    ];
    for (body, code, message, fields) in cases {
        let reply = org.post(&opp, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&reply), code, "{body}: {}", reply.body);
        if !message.is_empty() {
            assert_eq!(error_message(&reply), message);
        }
        assert_eq!(reply.body[0].get("fields").cloned(), fields, "{body}");
    }
    let raw = org
        .http
        .post(org.url(&opp))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{x")
        .send()
        .await
        .expect("sent");
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let raw: Value = raw.json().await.expect("json");
    assert_eq!(raw[0]["errorCode"], json!("JSON_PARSER_ERROR"));
    assert!(
        raw[0]["message"].as_str().is_some_and(|m| m.starts_with("Unexpected character ('x' (code 120))")),
        "{raw}"
    );

    let first =
        org.opportunity("One", json!({"Referral_Id__c": "REF-1", "Products__c": "Azure;Teams"})).await;
    let dup = org.post(&opp, with(json!({"Referral_Id__c": "ref-1"}))).await;
    assert_eq!(error_code(&dup), "DUPLICATE_VALUE");
    assert_eq!(
        error_message(&dup),
        format!("duplicate value found: Referral_Id__c duplicates value on record with id: {first}")
    );
    let update_read_only =
        org.patch(&format!("{opp}/{first}"), json!({"CreatedDate": "2024-01-01T00:00:00Z"})).await;
    assert_eq!(error_code(&update_read_only), "INVALID_FIELD_FOR_INSERT_UPDATE");
    let clear_required = org.patch(&format!("{opp}/{first}"), json!({"CloseDate": null})).await;
    assert_eq!(error_code(&clear_required), "REQUIRED_FIELD_MISSING");
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn upsert_by_external_id_follows_the_documented_statuses() {
    let org = org().await;
    let path = format!("{V}/sobjects/Opportunity/Referral_Id__c/REF-9");
    let body = json!({"Name": "From referral", "StageName": "Qualification", "CloseDate": "2025-01-31"});
    let created = org.patch(&path, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["created"], json!(true));
    let id = created.body["id"].as_str().expect("id").to_string();
    let updated = org.patch(&path, json!({"Amount": 5})).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body, json!({"id": id, "success": true, "errors": [], "created": false}));
    let old = org
        .patch("/services/data/v45.0/sobjects/Opportunity/Referral_Id__c/REF-9", json!({"Amount": 6}))
        .await;
    assert_eq!(old.status, StatusCode::NO_CONTENT, "before v46 an upsert update answers 204");
    let by_ext = org.get(&format!("{path}?fields=Amount,Referral_Id__c")).await;
    assert_eq!(by_ext.body["Amount"], json!(6.0));
    assert_eq!(by_ext.body["Referral_Id__c"], json!("REF-9"));

    // Solution_Id__c is an external id without uniqueness: two matches mean 300.
    let parent = org.opportunity("Parent", json!({})).await;
    let solution = |name: &str| json!({"Name": name, "Opportunity__c": parent, "Solution_Id__c": "dup"});
    let a = org.create("Microsoft_Solution__c", solution("A")).await;
    let b = org.create("Microsoft_Solution__c", solution("B")).await;
    let many = org
        .patch(&format!("{V}/sobjects/Microsoft_Solution__c/Solution_Id__c/dup"), json!({"Name": "C"}))
        .await;
    assert_eq!(many.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(
        many.body,
        json!([
            format!("{V}/sobjects/Microsoft_Solution__c/{a}"),
            format!("{V}/sobjects/Microsoft_Solution__c/{b}")
        ])
    );
    let not_external = org.patch(&format!("{V}/sobjects/Opportunity/Name/x"), json!({})).await;
    assert_eq!(not_external.status, StatusCode::NOT_FOUND);
    assert_eq!(
        not_external.body,
        json!([{"message": "Provided external ID field does not exist or is not accessible: Name", "errorCode": "NOT_FOUND"}])
    );
    let missing = org.get(&format!("{V}/sobjects/Opportunity/Referral_Id__c/none")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let by_id = org.patch(&format!("{V}/sobjects/Opportunity/Id/{id}"), json!({"Amount": 8})).await;
    assert_eq!(by_id.body["created"], json!(false));
    let unknown_id =
        org.patch(&format!("{V}/sobjects/Opportunity/Id/006000000000000AAA"), json!({"Amount": 8})).await;
    assert_eq!(unknown_id.status, StatusCode::NOT_FOUND);
    org.sandbox.shutdown().await;
}

// ---------------------------------------------------------------- query

async fn names(org: &Org, soql: &str) -> Vec<String> {
    let reply = org.query(soql).await;
    assert_eq!(reply.status, StatusCode::OK, "{soql}: {}", reply.body);
    reply.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["Name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn soql_filters_sorts_and_shapes_like_salesforce() {
    let org = org().await;
    let contoso = org.create("Account", json!({"Name": "Contoso Ltd"})).await;
    let a = org.opportunity("Alpha", json!({"AccountId": contoso, "Amount": 100, "Products__c": "Azure;Teams", "Sync_with_Partner_Center__c": true, "CloseDate": "2024-01-15"})).await;
    org.opportunity("Beta", json!({"Amount": 250.5, "StageName": "Closed Won", "Products__c": "Azure", "CloseDate": "2024-06-01"})).await;
    org.opportunity("gamma 50%", json!({"StageName": "Qualification", "CloseDate": "2030-01-01"})).await;
    org.create("OpportunityTeamMember", json!({"OpportunityId": a, "UserId": org.sandbox.salesforce.user_id(), "TeamMemberRole": "Account Manager"})).await;

    let page = org.query("SELECT Id, Name, StageName, Amount, CloseDate, Probability, IsClosed, IsWon, Referral_Id__c, SystemModstamp, LastModifiedDate, Account.Name, (SELECT UserId, TeamMemberRole FROM OpportunityTeamMembers) FROM Opportunity ORDER BY Name").await;
    let sample = fixture("sf-query-page.json");
    let mut sample_page = sample.clone();
    sample_page.as_object_mut().expect("object").remove("nextRecordsUrl");
    sample_page["done"] = json!(true);
    assert_same_shape(&page.body, &sample_page, "query");
    let records = page.body["records"].as_array().expect("records");
    assert_eq!(page.body["totalSize"], json!(3));
    assert!(page.body.get("nextRecordsUrl").is_none());
    assert_eq!(records[0]["Account"]["Name"], json!("Contoso Ltd"));
    assert_eq!(records[0]["Account"]["attributes"]["type"], json!("Account"));
    assert_eq!(records[0]["OpportunityTeamMembers"]["totalSize"], json!(1));
    assert_eq!(
        records[0]["OpportunityTeamMembers"]["records"][0]["TeamMemberRole"],
        json!("Account Manager")
    );
    assert_eq!(records[1]["Account"], Value::Null);
    assert_eq!(records[1]["OpportunityTeamMembers"], Value::Null, "no children → null");
    let keys: Vec<&String> = records[1].as_object().expect("record").keys().collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Id",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "IsClosed",
            "IsWon",
            "Referral_Id__c",
            "SystemModstamp",
            "LastModifiedDate",
            "Account",
            "OpportunityTeamMembers"
        ]
    );

    let cases: &[(&str, &[&str])] = &[
        ("WHERE Amount > 100", &["Beta"]),
        ("WHERE Amount >= 100 AND Amount <= 250.5", &["Alpha", "Beta"]),
        ("WHERE Amount != 100", &["Beta", "gamma 50%"]),
        ("WHERE Amount = null", &["gamma 50%"]),
        ("WHERE Amount != null AND NOT Name = 'alpha'", &["Beta"]),
        ("WHERE Name LIKE 'a%'", &["Alpha"]),
        ("WHERE Name LIKE '%50\\%'", &["gamma 50%"]),
        ("WHERE Name LIKE '_eta'", &["Beta"]),
        ("WHERE StageName IN ('Closed Won', 'Qualification')", &["Beta", "gamma 50%"]),
        ("WHERE StageName NOT IN ('Closed Won')", &["Alpha", "gamma 50%"]),
        ("WHERE Products__c INCLUDES ('Teams;Azure')", &["Alpha"]),
        ("WHERE Products__c INCLUDES ('Teams', 'Azure')", &["Alpha", "Beta"]),
        ("WHERE Products__c EXCLUDES ('Teams')", &["Beta", "gamma 50%"]),
        ("WHERE IsClosed = true", &["Beta"]),
        ("WHERE Sync_with_Partner_Center__c = false", &["Beta", "gamma 50%"]),
        ("WHERE CloseDate < 2024-06-01", &["Alpha"]),
        ("WHERE CloseDate > TODAY", &["gamma 50%"]),
        ("WHERE CreatedDate = LAST_N_DAYS:1 AND CreatedDate = TODAY", &["Alpha", "Beta", "gamma 50%"]),
        ("WHERE CreatedDate > 2020-01-01T00:00:00Z", &["Alpha", "Beta", "gamma 50%"]),
        ("WHERE CreatedDate < 2020-01-01T00:00:00+01:00", &[]),
        ("WHERE (Amount > 200 OR Name = 'Alpha') AND StageName != 'Qualification'", &["Alpha", "Beta"]),
        ("WHERE Account.Name = 'contoso ltd'", &["Alpha"]),
        ("WHERE Id = 'ID15'", &["Alpha"]),
    ];
    for (clause, expected) in cases {
        let clause = clause.replace("ID15", &a[..15]);
        let got = names(&org, &format!("SELECT Name FROM Opportunity {clause} ORDER BY Name")).await;
        assert_eq!(got, *expected, "{clause}");
    }
    assert_eq!(
        names(&org, "SELECT Name FROM Opportunity ORDER BY Amount DESC NULLS FIRST").await,
        ["gamma 50%", "Beta", "Alpha"]
    );
    assert_eq!(
        names(&org, "SELECT Name FROM Opportunity ORDER BY Amount ASC").await,
        ["gamma 50%", "Alpha", "Beta"]
    );
    assert_eq!(
        names(&org, "SELECT Name FROM Opportunity ORDER BY Amount DESC").await,
        ["Beta", "Alpha", "gamma 50%"]
    );
    assert_eq!(
        names(&org, "SELECT Name FROM Opportunity ORDER BY Name DESC LIMIT 2 OFFSET 1").await,
        ["Beta", "Alpha"]
    );
    let count = org.query("select count() from Opportunity where Amount != null").await;
    assert_eq!(count.body, json!({"totalSize": 2, "done": true, "records": []}));

    let errors: &[(&str, &str, &str)] = &[
        (
            "SELECT Id FORM Opportunity",
            "MALFORMED_QUERY",
            "\nSELECT Id FORM Opportunity\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'",
        ),
        ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        (
            "SELECT Id FROM Opportunity WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        (
            "SELECT Id, Nme FROM Opportunity",
            "INVALID_FIELD",
            "\nSELECT Id, Nme FROM Opportunity\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nme' on entity 'Opportunity'.",
        ),
        (
            "SELECT Id FROM Opportunity WHERE Acount.Name = 'x'",
            "INVALID_FIELD",
            "Didn't understand relationship 'Acount' in field path.",
        ),
        ("SELECT Id FROM Foo__c", "INVALID_TYPE", "sObject type 'Foo__c' is not supported."),
        (
            "SELECT Id, (SELECT Id FROM Nothing) FROM Opportunity",
            "INVALID_TYPE",
            "Didn't understand relationship 'Nothing'",
        ),
        (
            "SELECT Id FROM Opportunity WHERE CloseDate = '2024-01-01'",
            "INVALID_FIELD",
            "value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Opportunity WHERE Name = 5",
            "INVALID_FIELD",
            "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Opportunity WHERE Id = 'nope'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: nope",
        ),
        (
            "SELECT Id FROM Opportunity WHERE Name INCLUDES ('a')",
            "INVALID_QUERY_FILTER_OPERATOR",
            "includes or excludes operator only valid on multipicklist field",
        ),
        ("SELECT Id, Id FROM Opportunity", "MALFORMED_QUERY", "duplicate field selected: Id"),
        (
            "SELECT Id FROM Opportunity OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
        (
            "SELECT Id FROM Opportunity WHERE Name = 'bad \\q'",
            "MALFORMED_QUERY",
            "Illegal character sequence",
        ),
    ];
    for (soql, code, message) in errors {
        let reply = org.query(soql).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{soql}");
        assert_eq!(error_code(&reply), *code, "{soql}: {}", reply.body);
        assert!(error_message(&reply).contains(message), "{soql}: {}", error_message(&reply));
    }
    let no_q = org.get(&format!("{V}/query")).await;
    assert_eq!(error_code(&no_q), "MALFORMED_QUERY");
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn query_pages_with_locators_and_query_all_sees_deleted_rows() {
    let org = org().await;
    for chunk in 0..3 {
        let records: Vec<Value> = (0..150)
            .map(|i| json!({"attributes": {"type": "Lead"}, "LastName": format!("L{:04}", chunk * 150 + i), "Company": "Acme"}))
            .collect();
        let reply = org
            .post(&format!("{V}/composite/sobjects"), json!({"allOrNone": true, "records": records}))
            .await;
        assert!(reply.body.as_array().expect("results").iter().all(|r| r["success"] == json!(true)));
    }
    let soql = urlencode("SELECT Id, LastName FROM Lead ORDER BY LastName");
    let first = org
        .call(
            Method::GET,
            &format!("{V}/query/?q={soql}"),
            None,
            &[("Sforce-Query-Options", "batchSize=200")],
        )
        .await;
    assert_eq!(first.body["totalSize"], json!(450));
    assert_eq!(first.body["done"], json!(false));
    assert_eq!(first.body["records"].as_array().map(Vec::len), Some(200));
    let next = first.body["nextRecordsUrl"].as_str().expect("next").to_string();
    assert!(
        regex::Regex::new(r"^/services/data/v59\.0/query/01g\w{15}-200$").expect("re").is_match(&next),
        "{next}"
    );
    let second = org.get(&next).await;
    assert_eq!(second.body["records"][0]["LastName"], json!("L0200"));
    let third = org.get(second.body["nextRecordsUrl"].as_str().expect("next")).await;
    assert_eq!(third.body["done"], json!(true));
    assert_eq!(third.body["records"].as_array().map(Vec::len), Some(50));
    assert!(third.body.get("nextRecordsUrl").is_none());
    let stale = org.get(&next).await;
    assert_eq!(error_code(&stale), "INVALID_QUERY_LOCATOR", "locators close after the last page");
    let tiny = org
        .call(Method::GET, &format!("{V}/query?q={soql}"), None, &[("Sforce-Query-Options", "batchSize=10")])
        .await;
    assert_eq!(
        tiny.body["records"].as_array().map(Vec::len),
        Some(200),
        "batch sizes below 200 are raised to 200"
    );

    let id = first.body["records"][0]["Id"].as_str().expect("id").to_string();
    org.delete(&format!("{V}/sobjects/Lead/{id}")).await;
    let live = org.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(live.body["totalSize"], json!(449));
    let all = org
        .get(&format!(
            "{V}/queryAll?q={}",
            urlencode(&format!("SELECT Id, IsDeleted FROM Lead WHERE Id = '{id}'"))
        ))
        .await;
    assert_eq!(all.body["records"][0]["IsDeleted"], json!(true));
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn updated_and_deleted_list_changes_in_a_window() {
    let org = org().await;
    let kept = org.opportunity("Kept", json!({})).await;
    let removed = org.opportunity("Removed", json!({})).await;
    org.delete(&format!("{V}/sobjects/Opportunity/{removed}")).await;
    // Coverage stops at the current second; let it pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let start = urlencode("2000-01-01T00:00:00+00:00");
    // The window's end is rounded down to the minute, so look a minute ahead.
    let end_ts = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(120)).expect("time");
    let end = urlencode(&end_ts.to_string());
    let updated = org.get(&format!("{V}/sobjects/Opportunity/updated/?start={start}&end={end}")).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["ids"], json!([kept]));
    let covered = updated.body["latestDateCovered"].as_str().expect("latestDateCovered");
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$").expect("re").is_match(covered),
        "{covered}"
    );
    let covered_ts: jiff::Timestamp = covered.replace("+0000", "Z").parse().expect("datetime");
    assert!(covered_ts <= jiff::Timestamp::now(), "coverage never runs past now");
    let deleted = org.get(&format!("{V}/sobjects/Opportunity/deleted/?start={start}&end={end}")).await;
    assert_eq!(deleted.body["deletedRecords"][0]["id"], json!(removed));
    assert!(deleted.body["earliestDateAvailable"].is_string());
    let backwards = org.get(&format!("{V}/sobjects/Opportunity/updated/?start={end}&end={start}")).await;
    assert_eq!(error_code(&backwards), "INVALID_REPLICATION_DATE");
    let missing = org.get(&format!("{V}/sobjects/Opportunity/updated/?start={start}")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    org.sandbox.shutdown().await;
}

// ---------------------------------------------------------------- composite

async fn snapshot(org: &Org) -> Value {
    org.http.get(org.url("/__sandbox/snapshot")).send().await.expect("sent").json().await.expect("json")
}

#[tokio::test]
async fn composite_resolves_references_and_rolls_back() {
    let org = org().await;
    let request = |all_or_none: bool, close_date: Option<&str>| {
        let mut opp =
            json!({"Name": "Contoso - Azure", "StageName": "Prospecting", "AccountId": "@{refAccount.id}"});
        if let Some(date) = close_date {
            opp["CloseDate"] = json!(date);
        }
        json!({"allOrNone": all_or_none, "compositeRequest": [
            {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "refAccount", "body": {"Name": "Contoso"}},
            {"method": "POST", "url": format!("{V}/sobjects/Opportunity"), "referenceId": "refOpp", "body": opp},
            {"method": "GET", "url": format!("{V}/sobjects/Opportunity/@{{refOpp.id}}?fields=Id,AccountId"), "referenceId": "refOppRead"},
            {"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Account"), "referenceId": "refQuery"},
        ]})
    };
    let ok = org.post(&format!("{V}/composite"), request(true, Some("2024-09-30"))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let results = ok.body["compositeResponse"].as_array().expect("results");
    assert_eq!(results[0]["httpStatusCode"], json!(201));
    assert_eq!(results[0]["referenceId"], json!("refAccount"));
    let account = results[0]["body"]["id"].as_str().expect("id");
    assert_eq!(results[0]["httpHeaders"]["Location"], json!(format!("{V}/sobjects/Account/{account}")));
    assert_eq!(results[2]["body"]["AccountId"], json!(account));
    assert_eq!(results[3]["body"]["totalSize"], json!(1));

    let failed = org.post(&format!("{V}/composite"), request(true, None)).await;
    let results = failed.body["compositeResponse"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(results[1]["httpStatusCode"], json!(400));
    assert_eq!(results[1]["body"][0]["errorCode"], json!("REQUIRED_FIELD_MISSING"));
    for i in [0, 2, 3] {
        assert_eq!(results[i]["httpStatusCode"], json!(400));
        assert_eq!(
            results[i]["body"],
            json!([{"message": "The transaction was rolled back since another operation in the same transaction failed.", "errorCode": "PROCESSING_HALTED"}])
        );
    }
    assert_eq!(
        snapshot(&org).await["Account"].as_array().map(Vec::len),
        Some(1),
        "the second Account was rolled back"
    );

    let partial = org.post(&format!("{V}/composite"), request(false, None)).await;
    let results = partial.body["compositeResponse"].as_array().expect("results");
    assert_eq!(results[0]["httpStatusCode"], json!(201));
    assert_eq!(results[2]["httpStatusCode"], json!(400));
    assert_eq!(results[2]["body"][0]["errorCode"], json!("PROCESSING_HALTED"));
    assert_eq!(
        snapshot(&org).await["Account"].as_array().map(Vec::len),
        Some(2),
        "without allOrNone the Account stays"
    );

    let dup = org
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": [
        {"method": "GET", "url": format!("{V}/limits"), "referenceId": "a"},
        {"method": "GET", "url": format!("{V}/limits"), "referenceId": "a"}]}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn composite_batch_and_tree() {
    let org = org().await;
    let account = org.create("Account", json!({"Name": "Contoso"})).await;
    let batch = org.post(&format!("{V}/composite/batch"), json!({"haltOnError": true, "batchRequests": [
        {"method": "PATCH", "url": format!("v59.0/sobjects/Account/{account}"), "richInput": {"Name": "Contoso Ltd"}},
        {"method": "GET", "url": format!("v59.0/sobjects/Account/{account}?fields=Name")},
        {"method": "POST", "url": "v59.0/sobjects/Opportunity", "richInput": {"Name": "no stage"}},
        {"method": "GET", "url": "v59.0/limits"}]})).await;
    assert_eq!(batch.status, StatusCode::OK);
    assert_eq!(batch.body["hasErrors"], json!(true));
    let results = batch.body["results"].as_array().expect("results");
    assert_eq!(results[0], json!({"statusCode": 204, "result": null}));
    assert_eq!(results[1]["result"]["Name"], json!("Contoso Ltd"));
    assert_eq!(results[2]["result"][0]["errorCode"], json!("REQUIRED_FIELD_MISSING"));
    assert_eq!(results[3]["statusCode"], json!(412));
    assert_eq!(results[3]["result"][0]["errorCode"], json!("BATCH_PROCESSING_HALTED"));

    let tree = |close: Option<&str>| {
        let mut opp = json!({"attributes": {"type": "Opportunity", "referenceId": "ref2"}, "Name": "Fabrikam - Azure", "StageName": "Prospecting"});
        if let Some(close) = close {
            opp["CloseDate"] = json!(close);
        }
        json!({"records": [{"attributes": {"type": "Account", "referenceId": "ref1"}, "Name": "Fabrikam", "Opportunities": {"records": [opp]}}]})
    };
    let failed = org.post(&format!("{V}/composite/tree/Account"), tree(None)).await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    assert_eq!(failed.body["hasErrors"], json!(true));
    assert_eq!(failed.body["results"][0]["referenceId"], json!("ref2"));
    assert_eq!(failed.body["results"][0]["errors"][0]["statusCode"], json!("REQUIRED_FIELD_MISSING"));
    assert_eq!(snapshot(&org).await["Account"].as_array().map(Vec::len), Some(1), "nothing saved");
    let saved = org.post(&format!("{V}/composite/tree/Account/"), tree(Some("2025-01-01"))).await;
    assert_eq!(saved.status, StatusCode::CREATED);
    let results = saved.body["results"].as_array().expect("results");
    let parent = results[0]["id"].as_str().expect("id");
    let child = results[1]["id"].as_str().expect("id");
    let opp = org.get(&format!("{V}/sobjects/Opportunity/{child}")).await;
    assert_eq!(opp.body["AccountId"], json!(parent));
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn collections_create_update_upsert_delete_and_retrieve() {
    let org = org().await;
    let sample = fixture("sf-composite-collections-response.json");
    let opp = |name: &str, close: Option<&str>| {
        let mut r = json!({"attributes": {"type": "Opportunity"}, "Name": name, "StageName": "Prospecting"});
        if let Some(close) = close {
            r["CloseDate"] = json!(close);
        }
        r
    };
    let path = format!("{V}/composite/sobjects");
    let mixed = json!([opp("a", Some("2024-01-01")), opp("b", None), opp("c", Some("2024-01-01"))]);
    let none = org.post(&path, json!({"allOrNone": true, "records": mixed})).await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.body, sample["allOrNone_true"], "allOrNone answers exactly like the sample");
    assert_eq!(snapshot(&org).await["Opportunity"].as_array().map(Vec::len), Some(0));
    let partial = org.post(&path, json!({"allOrNone": false, "records": mixed})).await;
    assert_same_shape(&partial.body, &sample["allOrNone_false"], "collections");
    assert_eq!(partial.body[1], sample["allOrNone_false"][1]);
    assert!(partial.body[1].get("id").is_none());
    let a = partial.body[0]["id"].as_str().expect("id").to_string();
    let c = partial.body[2]["id"].as_str().expect("id").to_string();

    let too_many: Vec<Value> = (0..201).map(|i| opp(&format!("o{i}"), Some("2024-01-01"))).collect();
    let rejected = org.post(&path, json!({"records": too_many})).await;
    assert_eq!((rejected.status, error_code(&rejected)), (StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT"));

    let update = org
        .patch(
            &path,
            json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Opportunity"}, "id": a, "Amount": 10},
        {"attributes": {"type": "Opportunity"}, "Id": c, "IsWon": true}]}),
        )
        .await;
    assert_eq!(update.body[0], json!({"id": a, "success": true, "errors": []}));
    assert_eq!(update.body[1]["errors"][0]["statusCode"], json!("INVALID_FIELD_FOR_INSERT_UPDATE"));

    let upsert = org.patch(&format!("{path}/Opportunity/Referral_Id__c"), json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Opportunity"}, "Referral_Id__c": "R1", "Name": "r1", "StageName": "Prospecting", "CloseDate": "2024-01-01"},
        {"attributes": {"type": "Opportunity"}, "Referral_Id__c": "R1", "Amount": 7}]})).await;
    assert_same_shape(&upsert.body, &sample["upsert_by_external_id"], "upsert");
    assert_eq!(
        (upsert.body[0]["created"].clone(), upsert.body[1]["created"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(upsert.body[0]["id"], upsert.body[1]["id"]);

    let retrieved =
        org.get(&format!("{path}/Opportunity?ids={a},{c},006000000000000AAA&fields=Name,Amount")).await;
    assert_eq!(retrieved.body[0]["Amount"], json!(10.0));
    assert_eq!(retrieved.body[1]["Name"], json!("c"));
    assert_eq!(retrieved.body[2], Value::Null);
    let posted = org.post(&format!("{path}/Opportunity"), json!({"ids": [a], "fields": ["Name"]})).await;
    assert_eq!(posted.body[0]["Name"], json!("a"));

    let deleted = org.delete(&format!("{path}?ids={a},{c},bogus&allOrNone=false")).await;
    assert_eq!(deleted.body[0], json!({"id": a, "success": true, "errors": []}));
    assert_eq!(deleted.body[2]["errors"][0]["statusCode"], json!("MALFORMED_ID"));
    let again = org.delete(&format!("{path}?ids={a}")).await;
    assert_eq!(again.body[0]["errors"][0]["statusCode"], json!("ENTITY_IS_DELETED"));
    org.sandbox.shutdown().await;
}

// ---------------------------------------------------------------- seed, snapshot, reset

#[tokio::test]
async fn seed_data_snapshot_and_reset() {
    let mut config = SandboxConfig::ephemeral();
    config.seed_data = Some(sandbox::load_seed_data(&fixture_path("seed.yaml")).expect("seed"));
    let org = org_with(config).await;
    // 15-character seed ids come back with the documented checksum suffix.
    let opp = org.get(&format!("{V}/sobjects/Opportunity/0065g00000Kq1ABAAZ")).await;
    assert_eq!(opp.status, StatusCode::OK, "{}", opp.body);
    assert_eq!(opp.body["Id"], json!("0065g00000Kq1ABAAZ"));
    assert_eq!(opp.body["AccountId"], json!("0015g00000Lm2EfAAJ"));
    assert_eq!(opp.body["Probability"], json!(75.0));
    let page =
        org.query("SELECT Name, Account.Name FROM Opportunity WHERE Products__c INCLUDES ('Azure')").await;
    assert_eq!(page.body["records"][0]["Account"]["Name"], json!("Contoso Ltd"));

    org.create("Account", json!({"Name": "Temp"})).await;
    org.delete(&format!("{V}/sobjects/Opportunity/0065g00000Kq1ABAAZ")).await;
    let snap = snapshot(&org).await;
    assert_eq!(snap["Account"].as_array().map(Vec::len), Some(2));
    assert_eq!(snap["Opportunity"].as_array().map(Vec::len), Some(0));
    let with_deleted: Value = org
        .http
        .get(org.url("/__sandbox/snapshot?includeDeleted=true"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(with_deleted["Opportunity"][0]["IsDeleted"], json!(true));

    let reset = org.http.post(org.url("/__sandbox/reset")).send().await.expect("sent");
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let snap = snapshot(&org).await;
    assert_eq!(snap["Account"].as_array().map(Vec::len), Some(1));
    assert_eq!(snap["Opportunity"][0]["Id"], json!("0065g00000Kq1ABAAZ"));
    org.sandbox.shutdown().await;
}

#[tokio::test]
async fn bad_seed_data_is_reported_clearly() {
    let mut config = SandboxConfig::ephemeral();
    config.seed_data = Some(json!({"Widget__c": []}));
    let err = sandbox::start(config).await.expect_err("rejected");
    assert!(err.to_string().contains("unknown object 'Widget__c'"), "{err}");
    let mut config = SandboxConfig::ephemeral();
    config.seed_data = Some(json!({"Opportunity": [{"Name": "no stage"}]}));
    let err = sandbox::start(config).await.expect_err("rejected");
    assert!(err.to_string().contains("Required fields are missing"), "{err}");
}

#[tokio::test]
async fn faults_given_at_start_apply_from_the_first_request() {
    let mut config = coflow::sandbox::SandboxConfig::ephemeral();
    config.faults = vec!["GET /services/data/*: 503 retry_after=2".to_string()];
    let sandbox = coflow::sandbox::start(config).await.expect("sandbox starts");
    let response = reqwest::get(format!("{}/services/data/", sandbox.salesforce_url)).await.expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "2");

    let mut bad = coflow::sandbox::SandboxConfig::ephemeral();
    bad.faults = vec!["GET /x: teapot".to_string()];
    let Err(error) = coflow::sandbox::start(bad).await else { panic!("a bad rule is refused") };
    assert!(error.to_string().starts_with("bad fault rule:"), "{error}");
}
