//! Checking the signature of an event Partner Center POSTs to a webhook, following
//! Microsoft's steps: the signature header, a certificate downloaded only from allowed hosts,
//! the issuer, RSA over the raw body bytes, and (our addition) a replay window on the event's
//! `ResourceChangeUtcDate`.
//!
//! Chain validation up to Microsoft's root is not done: Partner Center sends only the leaf
//! certificate's URL. The host allow-list and the issuer check stand in for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use axum::http::HeaderMap;
use base64::Engine;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::connectors::config::BuildContext;

/// Host Microsoft serves the notification certificate from.
pub const MICROSOFT_CERTIFICATE_HOST: &str = "3psostorageacct.blob.core.windows.net";

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Neither `Authorization: Signature …` nor `x-ms-signature` was sent.
    #[error("the event carries no signature (Authorization: Signature … or x-ms-signature)")]
    MissingSignature,
    /// The signature is not base64.
    #[error("the signature is not valid base64")]
    MalformedSignature,
    /// A header Partner Center always sends is missing.
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    /// The algorithm is not RSA with SHA-256/384/512.
    #[error("unsupported signature algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The certificate URL is not on an allowed host (or not https).
    #[error("certificate URL `{0}` is not allowed")]
    CertificateUrlNotAllowed(String),
    /// The certificate could not be downloaded.
    #[error("cannot download the certificate: {0}")]
    CertificateUnavailable(String),
    /// The certificate could not be read or is outside its validity period.
    #[error("unusable certificate: {0}")]
    CertificateInvalid(String),
    /// The certificate was not issued by the expected organisation.
    #[error("certificate issuer `{0}` is not trusted")]
    UntrustedIssuer(String),
    /// The certificate's subject does not name the expected sender.
    #[error("certificate subject `{0}` is not the expected sender")]
    UnexpectedSubject(String),
    /// The signature does not match the body.
    #[error("the signature does not match the body")]
    SignatureMismatch,
    /// The body is not a Partner Center event.
    #[error("not a Partner Center event: {0}")]
    InvalidBody(String),
    /// The event is older than the replay window.
    #[error("the event is {0} s old, older than the replay window")]
    Replayed(u64),
    /// The event is dated in the future.
    #[error("the event is dated {0} s in the future")]
    FromTheFuture(u64),
}

impl WebhookError {
    /// The HTTP status to answer with: 400 for missing certificate/algorithm headers (as
    /// Microsoft's sample does), 401 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::MissingHeader(_) => 400,
            _ => 401,
        }
    }
}

/// Signature checks as written in `coflow.yaml` (`webhook:` of a Partner Center connection).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierDef {
    /// Hosts (`host` or `host:port`) certificates may be downloaded from.
    #[serde(default)]
    pub certificate_hosts: Option<Vec<String>>,
    /// Accept `http://` certificate URLs (only for loopback test setups).
    #[serde(default)]
    pub allow_http_certificate_urls: bool,
    /// Organisation (`O=`) the certificate's issuer must name.
    #[serde(default)]
    pub issuer_organization: Option<String>,
    /// Text the certificate's subject must contain, if set.
    #[serde(default)]
    pub subject_contains: Option<String>,
    /// Events older than this many seconds are refused as replays.
    #[serde(default)]
    pub max_age_seconds: Option<u64>,
}

impl VerifierDef {
    /// The checked settings.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> VerifierConfig {
        let defaults = VerifierConfig::default();
        let hosts = self.certificate_hosts.clone().unwrap_or(defaults.certificate_hosts);
        if hosts.is_empty() {
            cx.invalid("webhook.certificate_hosts", "must list at least one host");
        }
        VerifierConfig {
            certificate_hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            allow_http_certificate_urls: self.allow_http_certificate_urls,
            issuer_organization: self.issuer_organization.clone().unwrap_or(defaults.issuer_organization),
            subject_contains: self.subject_contains.clone(),
            max_age: self.max_age_seconds.map(Duration::from_secs).unwrap_or(defaults.max_age),
            ..defaults
        }
    }
}

/// How events are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Hosts (`host` or `host:port`, lower case) certificates may come from.
    pub certificate_hosts: Vec<String>,
    /// Accept `http://` certificate URLs.
    pub allow_http_certificate_urls: bool,
    /// Organisation the issuer must name (`O=Microsoft Corporation`).
    pub issuer_organization: String,
    /// Text the subject must contain, if set.
    pub subject_contains: Option<String>,
    /// Oldest acceptable `ResourceChangeUtcDate`. Partner Center retries a delivery up to 10
    /// times on an unpublished schedule, so the default (6 h) is generous.
    pub max_age: Duration,
    /// Tolerated clock difference for events dated in the future.
    pub max_future_skew: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            certificate_hosts: vec![MICROSOFT_CERTIFICATE_HOST.to_string()],
            allow_http_certificate_urls: false,
            issuer_organization: "Microsoft Corporation".to_string(),
            subject_contains: None,
            max_age: Duration::from_secs(6 * 3600),
            max_future_skew: Duration::from_secs(300),
        }
    }
}

/// An event whose signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    /// `EventName`, e.g. `referral-updated`.
    pub event_name: String,
    /// `ResourceUri` as sent.
    pub resource_uri: String,
    /// `ResourceName`, e.g. `referral`.
    pub resource_name: Option<String>,
    /// The referral id: the last path segment of `ResourceUri`, for referral events.
    pub referral_id: Option<String>,
    /// `ResourceChangeUtcDate` as sent.
    pub resource_change_utc: String,
    /// SHA-256 of the raw body in hex: equal for redeliveries of one event, for de-duplication.
    pub dedup_key: String,
    /// The event JSON.
    pub body: Value,
}

impl VerifiedEvent {
    /// What the flow's `triggerBody()` sees: the event plus `referral_id`.
    pub fn trigger_body(&self) -> Value {
        let mut body = self.body.clone();
        if let Value::Object(map) = &mut body {
            let id = self.referral_id.clone().map(Value::String).unwrap_or(Value::Null);
            map.insert("referral_id".into(), id);
        }
        body
    }
}

/// Downloads certificates.
pub trait CertificateFetcher: Send + Sync + std::fmt::Debug {
    /// The bytes (DER or PEM) at `url`.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// Downloads certificates with reqwest.
#[derive(Debug, Clone)]
pub struct HttpCertificateFetcher {
    client: reqwest::Client,
}

impl HttpCertificateFetcher {
    /// A fetcher using `client`.
    pub fn new(client: reqwest::Client) -> Self {
        HttpCertificateFetcher { client }
    }
}

impl CertificateFetcher for HttpCertificateFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let response = self
                .client
                .get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            response.bytes().await.map(|b| b.to_vec()).map_err(|e| e.without_url().to_string())
        })
    }
}

/// Certificate bytes and when they were downloaded.
type Downloaded = (Arc<Vec<u8>>, Instant);

/// Downloaded certificates by URL, kept for `ttl` (the certificate can change without notice).
#[derive(Debug)]
pub struct CertCache {
    fetcher: Arc<dyn CertificateFetcher>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Downloaded>>,
}

impl CertCache {
    /// A cache downloading with `fetcher`, keeping certificates for an hour.
    pub fn new(fetcher: Arc<dyn CertificateFetcher>) -> Self {
        CertCache { fetcher, ttl: Duration::from_secs(3600), entries: Mutex::new(HashMap::new()) }
    }

    /// A cache downloading with a client that follows no redirects (a redirect could lead
    /// off the allowed hosts).
    pub fn with_default_client() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        CertCache::new(Arc::new(HttpCertificateFetcher::new(client)))
    }

    /// The certificate at `url`, and whether it came from the cache.
    async fn get(&self, url: &str, refresh: bool) -> Result<(Arc<Vec<u8>>, bool), WebhookError> {
        if !refresh {
            let entries = self.entries.lock().await;
            if let Some((bytes, at)) = entries.get(url)
                && at.elapsed() < self.ttl
            {
                return Ok((bytes.clone(), true));
            }
        }
        let bytes = Arc::new(self.fetcher.fetch(url).await.map_err(WebhookError::CertificateUnavailable)?);
        self.entries.lock().await.insert(url.to_string(), (bytes.clone(), Instant::now()));
        Ok((bytes, false))
    }
}

/// Checks one delivered event and returns it parsed; `raw_body` must be the exact bytes received.
pub async fn verify(
    headers: &HeaderMap,
    raw_body: &[u8],
    config: &VerifierConfig,
    cache: &CertCache,
) -> Result<VerifiedEvent, WebhookError> {
    verify_at(headers, raw_body, config, cache, jiff::Timestamp::now()).await
}

/// [`verify`] as if received at `now` (the replay window is measured from it).
pub async fn verify_at(
    headers: &HeaderMap,
    raw_body: &[u8],
    config: &VerifierConfig,
    cache: &CertCache,
    now: jiff::Timestamp,
) -> Result<VerifiedEvent, WebhookError> {
    let signature = signature_from(headers)?;
    let cert_url =
        header(headers, "x-ms-certificate-url").ok_or(WebhookError::MissingHeader("x-ms-certificate-url"))?;
    let algorithm = header(headers, "x-ms-signature-algorithm")
        .ok_or(WebhookError::MissingHeader("x-ms-signature-algorithm"))?;
    let algorithm = rsa_algorithm(algorithm)?;
    check_certificate_url(cert_url, config)?;
    let (der, cached) = cache.get(cert_url, false).await?;
    let checked = check_signature(&der, algorithm, raw_body, &signature, config);
    if matches!(checked, Err(WebhookError::SignatureMismatch)) && cached {
        // The certificate may have been rotated since it was cached.
        let (der, _) = cache.get(cert_url, true).await?;
        check_signature(&der, algorithm, raw_body, &signature, config)?;
    } else {
        checked?;
    }
    parse_event(raw_body, config, now)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The signature bytes from `Authorization: Signature <b64>` or `x-ms-signature: Signature <b64>`.
fn signature_from(headers: &HeaderMap) -> Result<Vec<u8>, WebhookError> {
    let from_auth = header(headers, "authorization").and_then(|v| strip_scheme(v, true));
    let from_ms = header(headers, "x-ms-signature").and_then(|v| strip_scheme(v, false));
    let encoded = from_auth.or(from_ms).ok_or(WebhookError::MissingSignature)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| WebhookError::MalformedSignature)
}

fn strip_scheme(value: &str, required: bool) -> Option<&str> {
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("signature") => Some(rest),
        Some(_) => None,
        None if required => None,
        None => Some(value),
    }
}

/// `rsa-sha256` and friends: split on `-`, as Microsoft's sample does.
fn rsa_algorithm(name: &str) -> Result<&'static signature::RsaParameters, WebhookError> {
    let lower = name.to_ascii_lowercase();
    match lower.split_once('-') {
        Some(("rsa", "sha256")) => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
        Some(("rsa", "sha384")) => Ok(&signature::RSA_PKCS1_2048_8192_SHA384),
        Some(("rsa", "sha512")) => Ok(&signature::RSA_PKCS1_2048_8192_SHA512),
        _ => Err(WebhookError::UnsupportedAlgorithm(name.to_string())),
    }
}

fn check_certificate_url(url: &str, config: &VerifierConfig) -> Result<(), WebhookError> {
    let refuse = || WebhookError::CertificateUrlNotAllowed(url.to_string());
    let parsed = url::Url::parse(url).map_err(|_| refuse())?;
    let scheme_ok =
        parsed.scheme() == "https" || (parsed.scheme() == "http" && config.allow_http_certificate_urls);
    if !scheme_ok || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse());
    }
    let host = parsed.host_str().ok_or_else(refuse)?.to_ascii_lowercase();
    let with_port = parsed.port().map(|p| format!("{host}:{p}"));
    let allowed = config
        .certificate_hosts
        .iter()
        .any(|allowed| *allowed == host && parsed.port().is_none() || Some(allowed) == with_port.as_ref());
    if allowed { Ok(()) } else { Err(refuse()) }
}

/// Reads the certificate (DER or PEM), checks validity, issuer and subject, then the signature.
fn check_signature(
    bytes: &[u8],
    algorithm: &'static signature::RsaParameters,
    body: &[u8],
    signature: &[u8],
    config: &VerifierConfig,
) -> Result<(), WebhookError> {
    let der = certificate_der(bytes)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| WebhookError::CertificateInvalid(e.to_string()))?;
    if !cert.validity().is_valid() {
        return Err(WebhookError::CertificateInvalid("outside its validity period".into()));
    }
    let issuer_ok =
        cert.issuer().iter_organization().any(|o| o.as_str().is_ok_and(|o| o == config.issuer_organization));
    if !issuer_ok {
        return Err(WebhookError::UntrustedIssuer(cert.issuer().to_string()));
    }
    if let Some(expected) = &config.subject_contains {
        let subject = cert.subject().to_string();
        if !subject.contains(expected.as_str()) {
            return Err(WebhookError::UnexpectedSubject(subject));
        }
    }
    let key = cert.public_key();
    if key.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(WebhookError::CertificateInvalid("the key is not an RSA key".into()));
    }
    UnparsedPublicKey::new(algorithm, key.subject_public_key.data.as_ref())
        .verify(body, signature)
        .map_err(|_| WebhookError::SignatureMismatch)
}

fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, WebhookError> {
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
        .map_err(|e| WebhookError::CertificateInvalid(e.to_string()))?;
    Ok(pem.contents)
}

/// Parses the (already authenticated) body and applies the replay window.
fn parse_event(
    raw_body: &[u8],
    config: &VerifierConfig,
    now: jiff::Timestamp,
) -> Result<VerifiedEvent, WebhookError> {
    let body: Value =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::InvalidBody(e.to_string()))?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let event_name = text("EventName").ok_or_else(|| WebhookError::InvalidBody("no EventName".into()))?;
    let resource_uri =
        text("ResourceUri").ok_or_else(|| WebhookError::InvalidBody("no ResourceUri".into()))?;
    let changed = text("ResourceChangeUtcDate").ok_or_else(|| {
        WebhookError::InvalidBody("no ResourceChangeUtcDate, so replays cannot be told apart".into())
    })?;
    check_age(&changed, config, now)?;
    let resource_name = text("ResourceName");
    let referral_id = referral_id_of(&body);
    Ok(VerifiedEvent {
        event_name,
        resource_uri,
        resource_name,
        referral_id,
        resource_change_utc: changed,
        dedup_key: hex::encode(Sha256::digest(raw_body)),
        body,
    })
}

/// The referral id an event is about: the last segment of its `ResourceUri`, for referral
/// events (`ResourceName` `referral`, or a URI under `/referrals/`).
pub fn referral_id_of(event: &Value) -> Option<String> {
    let resource_uri = event.get("ResourceUri").and_then(Value::as_str)?;
    let resource_name = event.get("ResourceName").and_then(Value::as_str);
    let is_referral = resource_name == Some("referral") || resource_uri.contains("/referrals/");
    is_referral.then(|| last_segment(resource_uri)).flatten()
}

/// The trigger body of an event read back from the store (it was verified when received):
/// the event plus `referral_id`, as [`VerifiedEvent::trigger_body`] gives it.
pub fn stored_trigger_body(raw_body: &[u8]) -> Result<Value, WebhookError> {
    let mut body: Value =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::InvalidBody(e.to_string()))?;
    let id = referral_id_of(&body).map(Value::String).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert("referral_id".into(), id);
    }
    Ok(body)
}

fn check_age(changed: &str, config: &VerifierConfig, now: jiff::Timestamp) -> Result<(), WebhookError> {
    let at: jiff::Timestamp = changed
        .parse()
        .map_err(|_| WebhookError::InvalidBody(format!("ResourceChangeUtcDate `{changed}` is not a date")))?;
    let age = now.as_second() - at.as_second();
    if age > config.max_age.as_secs() as i64 {
        return Err(WebhookError::Replayed(age as u64));
    }
    if -age > config.max_future_skew.as_secs() as i64 {
        return Err(WebhookError::FromTheFuture((-age) as u64));
    }
    Ok(())
}

fn last_segment(uri: &str) -> Option<String> {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const CERT_URL: &str =
        "https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer";
    const FORGER_URL: &str = "https://3psostorageacct.blob.core.windows.net/cert/forged.cer";

    #[derive(Debug)]
    struct Fixed;

    impl CertificateFetcher for Fixed {
        fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
            Box::pin(async move {
                match url {
                    CERT_URL => {
                        Ok(include_bytes!("../../../tests/fixtures/connectors/webhook-signing-cert.cer")
                            .to_vec())
                    }
                    FORGER_URL => {
                        Ok(include_bytes!("../../../tests/fixtures/connectors/forger-cert.pem").to_vec())
                    }
                    _ => Err("HTTP 404".into()),
                }
            })
        }
    }

    fn sign(key: &[u8], body: &[u8]) -> String {
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(key).unwrap();
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), body, &mut sig)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    fn event(age_seconds: i64) -> Vec<u8> {
        let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(age_seconds);
        let sample = include_str!("../../../tests/fixtures/connectors/pc-webhook-event.json");
        sample
            .replace(
                "2024-02-24T21:12:46.1743218+00:00",
                &at.strftime("%Y-%m-%dT%H:%M:%S%.7f+00:00").to_string(),
            )
            .into_bytes()
    }

    fn headers(signature: &str, cert_url: &str, in_ms_header: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Signature {signature}")).unwrap();
        h.insert(if in_ms_header { "x-ms-signature" } else { "authorization" }, value);
        h.insert("x-ms-certificate-url", HeaderValue::from_str(cert_url).unwrap());
        h.insert("x-ms-signature-algorithm", HeaderValue::from_static("rsa-sha256"));
        h
    }

    const KEY: &[u8] = include_bytes!("../../../tests/fixtures/connectors/webhook-signing-key.pk8");
    const FORGER_KEY: &[u8] = include_bytes!("../../../tests/fixtures/connectors/forger-key.pk8");

    async fn check(h: &HeaderMap, body: &[u8]) -> Result<VerifiedEvent, WebhookError> {
        verify(h, body, &VerifierConfig::default(), &CertCache::new(Arc::new(Fixed))).await
    }

    #[tokio::test]
    async fn a_genuine_event_is_accepted_from_either_header() {
        let body = event(5);
        for in_ms in [true, false] {
            let got = check(&headers(&sign(KEY, &body), CERT_URL, in_ms), &body).await.unwrap();
            assert_eq!(got.event_name, "referral-updated");
            assert_eq!(got.referral_id.as_deref(), Some("d3ca5d20-0899-42a8-b9f7-5e9c06ad641d"));
            assert_eq!(got.trigger_body()["referral_id"], "d3ca5d20-0899-42a8-b9f7-5e9c06ad641d");
            assert_eq!(got.dedup_key.len(), 64);
        }
    }

    #[tokio::test]
    async fn tampered_forged_and_replayed_events_are_refused() {
        let body = event(5);
        let signature = sign(KEY, &body);
        let mut tampered = body.clone();
        let at = tampered.iter().position(|b| *b == b'd').unwrap();
        tampered[at] = b'e';
        assert_eq!(
            check(&headers(&signature, CERT_URL, true), &tampered).await,
            Err(WebhookError::SignatureMismatch)
        );
        let forged = sign(FORGER_KEY, &body);
        assert_eq!(
            check(&headers(&forged, CERT_URL, true), &body).await,
            Err(WebhookError::SignatureMismatch)
        );
        let own_cert = check(&headers(&forged, FORGER_URL, true), &body).await.unwrap_err();
        assert!(matches!(own_cert, WebhookError::UntrustedIssuer(_)), "{own_cert:?}");
        let elsewhere =
            check(&headers(&forged, "https://evil.example/cert.cer", true), &body).await.unwrap_err();
        assert!(matches!(elsewhere, WebhookError::CertificateUrlNotAllowed(_)));
        let old = event(7 * 3600);
        let replay = check(&headers(&sign(KEY, &old), CERT_URL, true), &old).await.unwrap_err();
        assert!(matches!(replay, WebhookError::Replayed(_)), "{replay:?}");
        assert_eq!(replay.status(), 401);
    }

    #[tokio::test]
    async fn missing_headers_get_the_documented_statuses() {
        let body = event(5);
        let mut h = headers(&sign(KEY, &body), CERT_URL, true);
        h.remove("x-ms-certificate-url");
        assert_eq!(check(&h, &body).await.unwrap_err().status(), 400);
        let mut h = headers(&sign(KEY, &body), CERT_URL, true);
        h.remove("x-ms-signature");
        assert_eq!(check(&h, &body).await, Err(WebhookError::MissingSignature));
        let mut h = headers(&sign(KEY, &body), CERT_URL, true);
        h.insert("x-ms-signature-algorithm", HeaderValue::from_static("hmac-sha1"));
        assert!(matches!(check(&h, &body).await, Err(WebhookError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn certificate_urls_follow_the_allow_list() {
        let mut config = VerifierConfig::default();
        assert!(check_certificate_url(CERT_URL, &config).is_ok());
        assert!(
            check_certificate_url("http://3psostorageacct.blob.core.windows.net/c.cer", &config).is_err()
        );
        assert!(
            check_certificate_url("https://u:p@3psostorageacct.blob.core.windows.net/c.cer", &config)
                .is_err()
        );
        assert!(
            check_certificate_url("https://3psostorageacct.blob.core.windows.net.evil.example/c", &config)
                .is_err()
        );
        config.certificate_hosts = vec!["127.0.0.1:8092".into()];
        config.allow_http_certificate_urls = true;
        assert!(check_certificate_url("http://127.0.0.1:8092/cert.cer", &config).is_ok());
        assert!(check_certificate_url("http://127.0.0.1:8093/cert.cer", &config).is_err());
    }
}
