//! OAuth 2.0 token endpoint (client credentials, username-password, refresh token, JWT bearer),
//! revoke, userinfo and identity, and the bearer-token check in front of the REST API.

use std::collections::{HashMap, HashSet};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Salesforce, SalesforceConfig};

/// Allowed clock skew for JWT `exp`, as Salesforce allows about three minutes.
const JWT_SKEW_SECONDS: i64 = 180;

/// A token-endpoint failure: `{"error", "error_description"}` with its status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// HTTP status (400 for almost everything).
    pub status: StatusCode,
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description`.
    pub description: &'static str,
}

impl OAuthError {
    fn new(error: &'static str, description: &'static str) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

/// Issued tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    access: HashMap<String, Option<String>>,
    refresh: HashSet<String>,
}

impl Tokens {
    /// Whether an access token is valid.
    pub fn is_valid(&self, token: &str) -> bool {
        self.access.contains_key(token)
    }

    /// Registers a refresh token.
    pub fn add_refresh(&mut self, token: String) {
        self.refresh.insert(token);
    }

    /// Registers an access token, optionally tied to the refresh token it came from.
    pub fn add_access(&mut self, token: String, refresh: Option<String>) {
        self.access.insert(token, refresh);
    }

    /// Invalidates every access token (refresh tokens survive), like a session timeout.
    pub fn expire_access(&mut self) {
        self.access.clear();
    }

    /// Revokes an access or refresh token; revoking a refresh token revokes its access tokens.
    pub fn revoke(&mut self, token: &str) -> bool {
        if self.refresh.remove(token) {
            self.access.retain(|_, from| from.as_deref() != Some(token));
            return true;
        }
        self.access.remove(token).is_some()
    }
}

/// The bearer token of a request (`Authorization: Bearer x` or `OAuth x`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")).then(|| token.trim())
}

/// Handles `POST /services/oauth2/token`.
pub fn token(sf: &Salesforce, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let config = sf.config();
    let grant = form.get("grant_type").map(String::as_str);
    let refresh = match grant {
        None => return Err(OAuthError::new("invalid_request", "grant type is missing")),
        Some("client_credentials") => {
            check_client(config, &form, headers, true)?;
            None
        }
        Some("password") => {
            check_client(config, &form, headers, true)?;
            let user = form.get("username").map(String::as_str).unwrap_or_default();
            let password = form.get("password").map(String::as_str).unwrap_or_default();
            let expected = format!("{}{}", config.password, config.security_token);
            if !user.eq_ignore_ascii_case(&config.username)
                || (password != expected && password != config.password)
            {
                return Err(OAuthError::new("invalid_grant", "authentication failure"));
            }
            None
        }
        Some("refresh_token") => {
            check_client(config, &form, headers, false)?;
            let token = form.get("refresh_token").cloned().unwrap_or_default();
            if !sf.tokens_read().refresh.contains(&token) {
                return Err(OAuthError::new("invalid_grant", "expired access/refresh token"));
            }
            Some(token)
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let assertion = form.get("assertion").map(String::as_str).unwrap_or_default();
            verify_jwt(config, assertion, sf.now_seconds())?;
            None
        }
        Some(_) => return Err(OAuthError::new("unsupported_grant_type", "grant type not supported")),
    };
    let access = sf.issue_access_token(refresh);
    Ok(token_response(sf, &access, grant == Some("refresh_token")))
}

fn token_response(sf: &Salesforce, access: &str, refreshed: bool) -> Value {
    let config = sf.config();
    let issued_at = (sf.now_seconds() * 1000).to_string();
    let id = sf.identity_url();
    let mut mac = match Hmac::<Sha256>::new_from_slice(config.client_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return json!({}),
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let scope = if refreshed { "api refresh_token" } else { "api" };
    json!({
        "access_token": access,
        "instance_url": config.base_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": scope,
    })
}

/// Client id and secret from the form or HTTP Basic; the secret is optional for refresh.
fn check_client(
    config: &SalesforceConfig,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
    secret_required: bool,
) -> Result<(), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    let (id, secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.get("client_id").cloned(), form.get("client_secret").cloned()),
    };
    if id.as_deref() != Some(config.client_id.as_str()) {
        return Err(OAuthError::new("invalid_client_id", "client identifier invalid"));
    }
    match secret {
        Some(secret) if secret != config.client_secret => {
            Err(OAuthError::new("invalid_client", "invalid client credentials"))
        }
        None if secret_required => Err(OAuthError::new("invalid_client", "invalid client credentials")),
        _ => Ok(()),
    }
}

/// Checks an RS256 JWT bearer assertion: signature against the configured key, then claims.
pub fn verify_jwt(config: &SalesforceConfig, assertion: &str, now: i64) -> Result<(), OAuthError> {
    let invalid = || OAuthError::new("invalid_grant", "invalid assertion");
    let mut parts = assertion.split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let header: Value = decode_part(head).ok_or_else(invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid());
    }
    let Some(key_der) = config.jwt_public_key_der() else {
        return Err(OAuthError::new("invalid_grant", "user hasn't approved this consumer"));
    };
    let signature = URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')).map_err(|_| invalid())?;
    let signed = &assertion[..head.len() + 1 + claims.len()];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key_der)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid())?;
    let claims: Value = decode_part(claims).ok_or_else(invalid)?;
    check_claims(config, &claims, now)
}

fn check_claims(config: &SalesforceConfig, claims: &Value, now: i64) -> Result<(), OAuthError> {
    if claims.get("iss").and_then(Value::as_str) != Some(config.client_id.as_str()) {
        return Err(OAuthError::new("invalid_client_id", "client identifier invalid"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => valid_audience(config, aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(|a| valid_audience(config, a)),
        _ => false,
    };
    if !audience_ok {
        return Err(OAuthError::new("invalid_grant", "audience is invalid"));
    }
    // Legacy `prn` wins over `sub` when both are present.
    let subject = claims.get("prn").or_else(|| claims.get("sub")).and_then(Value::as_str);
    if !subject.is_some_and(|s| s.eq_ignore_ascii_case(&config.username)) {
        return Err(OAuthError::new("invalid_grant", "user hasn't approved this consumer"));
    }
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match exp {
        Some(exp) if exp + JWT_SKEW_SECONDS >= now => Ok(()),
        _ => Err(OAuthError::new("invalid_grant", "expired authorization code")),
    }
}

fn valid_audience(config: &SalesforceConfig, aud: &str) -> bool {
    let aud = aud.trim_end_matches('/');
    aud == "https://login.salesforce.com"
        || aud == "https://test.salesforce.com"
        || aud == config.base_url.trim_end_matches('/')
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Extracts the DER of a PEM block's body (`PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`).
pub fn pem_to_public_key_der(pem: &str) -> Option<Vec<u8>> {
    let begin = pem.find("-----BEGIN ")?;
    let label_end = pem[begin + 11..].find("-----")? + begin + 11;
    let label = pem[begin + 11..label_end].to_string();
    let body_start = label_end + 5;
    let end = pem[body_start..].find("-----END ")? + body_start;
    let b64: String = pem[body_start..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).ok()?;
    match label.as_str() {
        "CERTIFICATE" => certificate_spki(&der).map(<[u8]>::to_vec),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Some(der),
        _ => None,
    }
}

/// Reads one DER element: (tag, content, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let len = input.get(2..2 + n)?.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let content = input.get(header..header + len)?;
    Some((tag, content, &input[header + len..]))
}

/// The whole `subjectPublicKeyInfo` element of an X.509 certificate.
fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let (_, cert_body, _) = der_element(cert)?;
    let (_, tbs, _) = der_element(cert_body)?;
    let mut rest = tbs;
    // Optional [0] version, then serial, signature algorithm, issuer, validity, subject.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    for _ in 0..5 {
        rest = der_element(rest)?.2;
    }
    let (_, content, after) = der_element(rest)?;
    let total = rest.len() - after.len();
    let _ = content;
    rest.get(..total)
}
