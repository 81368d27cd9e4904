//! What the Partner Center and Salesforce connectors share: sending through the run's
//! [`HttpClient`] under the connection's limits, turning error answers into
//! [`ConnectorError`]s, caching tokens, reading inputs and showing held-back writes.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::Secret;
use super::limits::Limiter;
use super::{ConnectorError, Effect, HttpClient, HttpRequest, HttpResponse, OperationOutput};

/// Header names whose values are credentials.
const SENSITIVE_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key"];

/// Everything but RFC 3986 unreserved characters is escaped in query values and path segments.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one query value or path segment.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// What a send produced: an answer, or a write held back by a dry-run.
#[derive(Debug)]
pub enum Reply {
    /// The service answered (any status).
    Answered(HttpResponse),
    /// Dry-run: the write was not sent; this is what it would have been (credentials redacted).
    HeldBack(HttpRequest),
}

/// Sends `request` under `limiter`; a dry-run write is redacted before it is handed over, so
/// no held-back request ever carries a credential.
pub async fn send(
    http: &HttpClient,
    limiter: &Limiter,
    request: HttpRequest,
    effect: Effect,
) -> Result<Reply, ConnectorError> {
    if http.is_dry_run() && effect == Effect::Write {
        let shown = redacted(&request);
        http.send(&shown, effect).await?;
        return Ok(Reply::HeldBack(shown));
    }
    let _permit = limiter.acquire().await;
    match http.send(&request, effect).await {
        Ok(Some(response)) => Ok(Reply::Answered(response)),
        Ok(None) => Err(ConnectorError::Transport("the HTTP client held back a read".into())),
        // A client that already turns error statuses into errors still lets us see them.
        Err(ConnectorError::Status { status, body, retry_after, .. }) => {
            let mut headers = BTreeMap::new();
            if let Some(wait) = retry_after {
                headers.insert("retry-after".to_string(), wait.as_secs().to_string());
            }
            Ok(Reply::Answered(HttpResponse { status, headers, body }))
        }
        Err(other) => Err(other),
    }
}

/// A copy of `request` with credential headers shown as `***`.
pub fn redacted(request: &HttpRequest) -> HttpRequest {
    let mut shown = request.clone();
    for (name, value) in shown.headers.iter_mut() {
        if SENSITIVE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            *value = "***".to_string();
        }
    }
    shown
}

/// The output of an operation whose writes a dry-run held back.
pub fn dry_run_output(requests: &[HttpRequest]) -> OperationOutput {
    let shown: Vec<Value> = requests.iter().map(request_json).collect();
    let mut body = json!({"dry_run": true, "request": shown.first().cloned().unwrap_or(Value::Null)});
    if shown.len() > 1 {
        body["requests"] = Value::Array(shown);
    }
    OperationOutput { status: None, headers: BTreeMap::new(), body }
}

fn request_json(request: &HttpRequest) -> Value {
    let shown = redacted(request);
    json!({"method": shown.method, "url": shown.url, "headers": shown.headers, "body": shown.body})
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date.
pub fn retry_after(headers: &BTreeMap<String, String>) -> Option<Duration> {
    let value = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?.1.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The error for an answer with an error status; `message` is a readable summary of the body.
pub fn status_error(response: &HttpResponse, message: String) -> ConnectorError {
    ConnectorError::Status {
        status: response.status,
        message: crate::expr::secrets::redact(&message),
        body: response.body.clone(),
        retry_after: retry_after(&response.headers),
    }
}

/// The output of a call that was either answered (its body chosen by `body`) or held back by a dry-run.
pub fn answered_or_held(
    sent: Result<HttpResponse, OperationOutput>,
    body: impl FnOnce(&HttpResponse) -> Value,
) -> OperationOutput {
    match sent {
        Ok(response) => {
            let body = body(&response);
            output(response, body)
        }
        Err(held) => held,
    }
}

/// The output of a successful answer.
pub fn output(response: HttpResponse, body: Value) -> OperationOutput {
    let keep = ["ms-correlationid", "ms-requestid", "request-id", "sforce-limit-info", "location", "etag"];
    let headers = response
        .headers
        .into_iter()
        .filter(|(k, _)| keep.contains(&k.to_ascii_lowercase().as_str()))
        .collect();
    OperationOutput { status: Some(response.status), headers, body }
}

/// A request with a JSON body (or none) and the given headers.
pub fn request(method: &str, url: String, headers: &[(&str, String)], body: Option<Value>) -> HttpRequest {
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        map.insert((*name).to_string(), value.clone());
    }
    if body.is_some() {
        map.entry("Content-Type".to_string()).or_insert_with(|| "application/json".to_string());
    }
    HttpRequest { method: method.to_string(), url, headers: map, body }
}

/// A form-encoded POST (OAuth token endpoints); the body travels as a string.
pub fn form_request(url: &str, fields: &[(&str, &str)]) -> HttpRequest {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string());
    headers.insert("Accept".to_string(), "application/json".to_string());
    HttpRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers,
        body: Some(Value::String(form.finish())),
    }
}

/// An access token and when to stop using it.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The bearer token.
    pub access_token: Secret,
    /// When it should be replaced; `None` means until the service refuses it.
    pub expires_at: Option<Instant>,
    /// Where REST calls go, when the token endpoint says (Salesforce `instance_url`).
    pub instance_url: Option<String>,
}

impl CachedToken {
    fn is_fresh(&self) -> bool {
        // Renew a minute early so a token never expires between check and use.
        self.expires_at.is_none_or(|at| Instant::now() + Duration::from_secs(60) < at)
    }
}

/// One cached token per audience; concurrent callers wait for a single fetch.
#[derive(Debug, Default)]
pub struct TokenCache {
    slot: Mutex<Option<CachedToken>>,
}

impl TokenCache {
    /// The cached token if still fresh, else the one `fetch` gets (and caches).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<CachedToken, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, ConnectorError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| t.is_fresh()) {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Forgets `refused` if it is still the cached token (another caller may have renewed it).
    pub async fn invalidate(&self, refused: &CachedToken) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|t| t.access_token == refused.access_token) {
            *slot = None;
        }
    }
}

/// Typed access to an operation's rendered inputs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a>(pub &'a Value);

impl<'a> Inputs<'a> {
    /// The input `key`, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A required non-empty string (numbers are accepted as their text).
    pub fn str(&self, key: &str) -> Result<String, ConnectorError> {
        self.opt_str(key)?.ok_or_else(|| missing(key))
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be a string"))),
        }
    }

    /// An optional non-negative whole number (numeric strings are accepted).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ConnectorError::InvalidInput(format!("`{key}` must be a whole number ≥ 0"))),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                ConnectorError::InvalidInput(format!("`{key}` must be a whole number ≥ 0, got `{s}`"))
            }),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be a whole number ≥ 0"))),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be true or false"))),
        }
    }

    /// A required JSON object.
    pub fn object(&self, key: &str) -> Result<serde_json::Map<String, Value>, ConnectorError> {
        match self.get(key) {
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be an object"))),
            None => Err(missing(key)),
        }
    }

    /// A required JSON array.
    pub fn array(&self, key: &str) -> Result<Vec<Value>, ConnectorError> {
        match self.get(key) {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be a list"))),
            None => Err(missing(key)),
        }
    }

    /// An optional list of strings, given as a list or a comma-separated string.
    pub fn opt_list(&self, key: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| ConnectorError::InvalidInput(format!("`{key}` must be a list of strings"))),
            Some(_) => Err(ConnectorError::InvalidInput(format!("`{key}` must be a list of strings"))),
        }
    }
}

fn missing(key: &str) -> ConnectorError {
    ConnectorError::InvalidInput(format!("`{key}` is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = BTreeMap::new();
        headers.insert("Retry-After".to_string(), "57".to_string());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(57)));
        headers.insert("Retry-After".to_string(), "Wed, 21 Oct 2015 07:28:00 GMT".to_string());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("Retry-After".to_string(), "soon".to_string());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn redaction_hides_credential_headers_only() {
        let req = request(
            "POST",
            "https://x/y".into(),
            &[("Authorization", "Bearer abc".into()), ("Accept", "application/json".into())],
            Some(json!({"a": 1})),
        );
        let out = dry_run_output(&[req]);
        assert_eq!(out.body["request"]["headers"]["Authorization"], "***");
        assert_eq!(out.body["request"]["headers"]["Accept"], "application/json");
        assert_eq!(out.body["request"]["body"], json!({"a": 1}));
        assert!(!out.body.to_string().contains("abc"));
    }

    #[test]
    fn components_are_escaped() {
        assert_eq!(encode_component("a b'c/d"), "a%20b%27c%2Fd");
    }

    #[test]
    fn form_bodies_are_urlencoded() {
        let req = form_request("https://login/token", &[("grant_type", "password"), ("password", "p&s=w")]);
        assert_eq!(req.body, Some(Value::String("grant_type=password&password=p%26s%3Dw".into())));
    }
}
