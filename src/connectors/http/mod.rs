//! Plain HTTP: the client every connector sends through, with dry-run recording.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::{ConnectorError, Effect};

/// A request as a connector means to send it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Absolute URL including the query string.
    pub url: String,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any. A string body is sent as text, anything else as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl HttpRequest {
    /// The request with credentials masked, as run records and dry-runs show it.
    pub fn masked(&self) -> HttpRequest {
        let mut shown = self.clone();
        for (name, value) in &mut shown.headers {
            if is_credential_header(name) {
                *value = mask_credential(value);
            }
        }
        shown
    }

    /// [`HttpRequest::masked`] as JSON, for run records and dry-run outputs: the same value as
    /// `serde_json::to_value(self.masked())`, with a single copy of the body.
    pub fn masked_value(&self) -> Value {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if is_credential_header(name) { mask_credential(value) } else { value.clone() };
                (name.clone(), Value::String(shown))
            })
            .collect();
        let mut map = serde_json::Map::with_capacity(4);
        map.insert("method".into(), Value::String(self.method.clone()));
        map.insert("url".into(), Value::String(self.url.clone()));
        map.insert("headers".into(), Value::Object(headers));
        if let Some(body) = &self.body {
            map.insert("body".into(), body.clone());
        }
        Value::Object(map)
    }
}

fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "authorization" | "proxy-authorization" | "cookie" | "x-api-key")
}

/// Keeps the scheme (`Bearer`, `Basic`) so the record still says how the call authenticated.
fn mask_credential(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) if !scheme.is_empty() => format!("{scheme} ***"),
        _ => "***".to_string(),
    }
}

/// A response, with a JSON body when it parsed as JSON and a string otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Value,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The wait a `Retry-After` header asks for, relative to `now`.
    pub fn retry_after(&self, now: Timestamp) -> Option<Duration> {
        self.headers.get("retry-after").and_then(|v| parse_retry_after(v, now))
    }

    /// This response as a connector error (for non-2xx answers).
    pub fn into_error(self, now: Timestamp) -> ConnectorError {
        let retry_after = self.retry_after(now);
        let message = summarize(&self.body);
        ConnectorError::Status { status: self.status, message, body: self.body, retry_after }
    }
}

/// A short, single-line description of an error body.
fn summarize(body: &Value) -> String {
    let text = match body {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let line: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if line.is_empty() { "no body".to_string() } else { line }
}

/// Reads a `Retry-After` header: delay-seconds, or an HTTP-date relative to `now`.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(when.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// Reads are sent during a dry-run; every other method is a write.
pub fn effect_of_method(method: &str) -> Effect {
    match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" | "OPTIONS" => Effect::Read,
        _ => Effect::Write,
    }
}

/// Sends requests, or in a dry-run records writes instead of sending them.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    dry_run: bool,
    held_back: Arc<Mutex<Vec<HttpRequest>>>,
}

impl HttpClient {
    /// A client that sends everything (`dry_run == false`) or only reads.
    pub fn new(client: reqwest::Client, dry_run: bool) -> Self {
        HttpClient { client, dry_run, held_back: Arc::default() }
    }

    /// The same client with its own, empty list of held-back writes, so one call's writes can
    /// be told apart from concurrent calls'.
    pub fn for_call(&self) -> HttpClient {
        HttpClient { client: self.client.clone(), dry_run: self.dry_run, held_back: Arc::default() }
    }

    /// Whether writes are held back.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Writes held back so far by a dry-run.
    pub fn held_back(&self) -> Vec<HttpRequest> {
        self.held_back.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Sends `request`; in a dry-run a write is recorded and answered with `None`.
    ///
    /// Any status is an answer (`Ok`); only a request that got no answer is an error.
    pub async fn send(
        &self,
        request: &HttpRequest,
        effect: Effect,
    ) -> Result<Option<HttpResponse>, ConnectorError> {
        self.send_to(request, &request.url, effect).await
    }

    /// [`send`](Self::send) with the request's URL already parsed (`url` is `request.url`), so
    /// it is not parsed a second time.
    pub async fn send_to(
        &self,
        request: &HttpRequest,
        url: impl reqwest::IntoUrl,
        effect: Effect,
    ) -> Result<Option<HttpResponse>, ConnectorError> {
        if self.dry_run && effect == Effect::Write {
            if let Ok(mut held) = self.held_back.lock() {
                held.push(request.clone());
            }
            return Ok(None);
        }
        self.send_now(request, url).await.map(Some)
    }

    async fn send_now(
        &self,
        request: &HttpRequest,
        url: impl reqwest::IntoUrl,
    ) -> Result<HttpResponse, ConnectorError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            ConnectorError::InvalidInput(format!("`{}` is not an HTTP method", request.method))
        })?;
        let mut builder = self.client.request(method, url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            None | Some(Value::Null) => builder,
            Some(Value::String(text)) => builder.body(text.clone()),
            Some(json) => builder.json(json),
        };
        // Errors drop the URL: it may carry tokens in its query string.
        let response =
            builder.send().await.map_err(|e| ConnectorError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let bytes =
            response.bytes().await.map_err(|e| ConnectorError::Transport(e.without_url().to_string()))?;
        Ok(HttpResponse { status, headers, body: parse_body(&bytes) })
    }
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Tue, 01 Jan 2030 00:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Mon, 31 Dec 2029 00:00:30 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn masking_keeps_the_scheme_only() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_string(), "Bearer abc.def".to_string());
        headers.insert("Accept".to_string(), "application/json".to_string());
        let request = HttpRequest { method: "GET".into(), url: "http://x/".into(), headers, body: None };
        let shown = request.masked();
        assert_eq!(shown.headers["Authorization"], "Bearer ***");
        assert_eq!(shown.headers["Accept"], "application/json");
    }

    #[test]
    fn masked_value_is_the_masked_request_as_json() {
        let mut headers = BTreeMap::new();
        headers.insert("Cookie".to_string(), "session=abc".to_string());
        headers.insert("Accept".to_string(), "application/json".to_string());
        headers.insert("X-Api-Key".to_string(), "key value".to_string());
        let body = serde_json::json!({"z": 1, "a": [true, null, "x"]});
        let with_body =
            HttpRequest { method: "POST".into(), url: "http://x/?q=1".into(), headers, body: Some(body) };
        let without_body = HttpRequest { body: None, ..with_body.clone() };
        for request in [with_body, without_body] {
            let expected = serde_json::to_value(request.masked()).unwrap();
            assert_eq!(request.masked_value(), expected);
            let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&request.masked_value()), keys(&expected));
        }
    }

    #[test]
    fn bodies_parse_as_json_or_stay_text() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(parse_body(b"plain"), Value::String("plain".into()));
    }
}
