//! Outbound calls (the `http` action and connector operations) with retries and dry-runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Exec;
use super::actions::{object, render};
use super::control::failed;
use super::mock::{MockAnswer, OutboundCall};
use super::record::{ActionError, ActionResult, Attempt, Status};
use super::retry::{retry_count, retry_delay};
use super::state::Frame;
use crate::connectors::http::effect_of_method;
use crate::connectors::{Connector, ConnectorError, HttpRequest, HttpResponse, OperationCall};
use crate::expr::{Scope, Template};
use crate::flow::Action;

/// Why one attempt failed, and whether to try again.
struct CallFailure {
    error: ActionError,
    outputs: Option<Value>,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl CallFailure {
    fn from_connector(error: ConnectorError) -> Self {
        let outputs = match &error {
            ConnectorError::Status { status, body, .. } => Some(json!({"statusCode": status, "body": body})),
            _ => None,
        };
        CallFailure {
            retryable: error.is_retryable(),
            retry_after: error.retry_after(),
            outputs,
            error: ActionError::new(error.code(), error.to_string()),
        }
    }

    /// A failure no retry can fix.
    fn fatal(error: ActionError) -> Self {
        CallFailure { error, outputs: None, retryable: false, retry_after: None }
    }
}

/// Makes attempts (numbered from 1) until one succeeds, the failure is not retryable or the
/// policy's retries are used up. The server's `Retry-After` wins over the policy's own wait
/// (reference §2.5). The caller records the action's inputs, which the attempts only borrow.
async fn with_retries<F, Fut>(exec: &Exec<'_>, action: &Action, mut attempt: F) -> ActionResult
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Value, CallFailure>>,
{
    let allowed = retry_count(&action.retry);
    let mut result = ActionResult::new(Status::Succeeded);
    loop {
        let started_at = exec.clock().now();
        result.attempts += 1;
        let failure = match attempt(result.attempts).await {
            Ok(outputs) => {
                result.outputs = Some(outputs);
                return result;
            }
            Err(failure) => failure,
        };
        let ended_at = exec.clock().now();
        result.retry_history.push(Attempt { started_at, ended_at, error: failure.error.clone() });
        let retries_done = result.attempts - 1;
        if !failure.retryable || retries_done >= allowed {
            result.status = Status::Failed;
            result.outputs = failure.outputs;
            result.error = Some(failure.error);
            return result;
        }
        let wait = failure.retry_after.unwrap_or_else(|| retry_delay(&action.retry, retries_done + 1));
        tokio::time::sleep(wait).await;
    }
}

/// Outputs of a write a dry-run held back: the exact request it would have sent.
fn dry_run_outputs(request: &HttpRequest) -> Value {
    object([("dry_run", Value::Bool(true)), ("request", request.masked_value())])
}

fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::new("InvalidInputs", message)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

const HTTP_KEYS: [&str; 6] = ["method", "url", "headers", "query", "body", "authentication"];

/// Builds the request an `http` action describes, moving the body out of the rendered value,
/// with its URL as checked (parsed once: the client sends to it as it is); on error the value
/// comes back untouched with it.
fn build_request(value: Value) -> Result<(HttpRequest, url::Url), (ActionError, Value)> {
    let (method, url, headers) = match request_head(&value) {
        Ok(head) => head,
        Err(error) => return Err((error, value)),
    };
    let body = match value {
        Value::Object(mut map) => map.remove("body").filter(|b| !b.is_null()),
        _ => None,
    };
    Ok((HttpRequest { method, url: url.as_str().to_string(), headers, body }, url))
}

/// The method, URL (with the query) and headers (with the authentication) of an `http` action.
fn request_head(value: &Value) -> Result<(String, url::Url, BTreeMap<String, String>), ActionError> {
    let Value::Object(map) = value else {
        return Err(invalid(
            "an http action needs `method`, `url` and optionally `headers`, `query`, `body`, `authentication`",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !HTTP_KEYS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown http key `{unknown}`; use one of {}", HTTP_KEYS.join(", "))));
    }
    let method = match map.get("method") {
        None | Some(Value::Null) => "GET".to_string(),
        Some(Value::String(m)) if !m.is_empty() && m.chars().all(|c| c.is_ascii_alphabetic()) => {
            m.to_ascii_uppercase()
        }
        Some(other) => {
            return Err(invalid(format!("`method` must be a word such as GET or POST, got {other}")));
        }
    };
    let url_text = map
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("`url` is required and must be text"))?;
    let mut url = url::Url::parse(url_text)
        .map_err(|e| invalid(format!("`url` must be an absolute http(s) URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("`url` must use http or https, not {}", url.scheme())));
    }
    if let Some(query) = map.get("query").filter(|q| !q.is_null()) {
        let query = query.as_object().ok_or_else(|| invalid("`query` must be a map of name to value"))?;
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, &text(value));
        }
    }
    let mut headers = BTreeMap::new();
    if let Some(given) = map.get("headers").filter(|h| !h.is_null()) {
        let given = given.as_object().ok_or_else(|| invalid("`headers` must be a map of name to value"))?;
        headers.extend(given.iter().map(|(k, v)| (k.clone(), text(v))));
    }
    if let Some(auth) = map.get("authentication").filter(|a| !a.is_null()) {
        headers.insert("Authorization".into(), authorization(auth)?);
    }
    Ok((method, url, headers))
}

fn authorization(auth: &Value) -> Result<String, ActionError> {
    let field = |name: &str| auth.get(name).map(text).filter(|s| !s.is_empty());
    let need = |name: &str, kind: &str| {
        field(name).ok_or_else(|| invalid(format!("{kind} authentication needs `{name}`")))
    };
    match auth.get("type").and_then(Value::as_str) {
        Some("basic") => {
            use base64::Engine as _;
            let pair = format!("{}:{}", need("username", "basic")?, need("password", "basic")?);
            Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        }
        Some("bearer") => Ok(format!("Bearer {}", need("token", "bearer")?)),
        Some("raw") => need("value", "raw"),
        _ => Err(invalid("`authentication.type` must be basic, bearer or raw")),
    }
}

/// `{"statusCode", "headers", "body"}` of an answer, its parts moved in.
fn response_outputs(status: u16, headers: BTreeMap<String, String>, body: Value) -> Value {
    let headers = headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    object([("statusCode", Value::from(status)), ("headers", Value::Object(headers)), ("body", body)])
}

/// [`response_outputs`] of an answer that is still needed (for the error it becomes).
fn copied_outputs(response: &HttpResponse) -> Value {
    response_outputs(response.status, response.headers.clone(), response.body.clone())
}

/// What the run's mocks answer for one attempt, shaped like the real call's outcome; `None`
/// when there are no mocks or they let the call through.
fn mocked(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Frame,
    target: &str,
    inputs: &Value,
    attempt: u32,
) -> Option<Result<Value, CallFailure>> {
    let mocks = exec.options.mocks.as_ref()?;
    let iterations = frame.iteration_path();
    let call = OutboundCall { action: &action.name, iterations: &iterations, target, inputs, attempt };
    Some(match mocks.answer(&call)? {
        MockAnswer::Response(response) if response.is_success() => {
            Ok(response_outputs(response.status, response.headers, response.body))
        }
        MockAnswer::Response(response) => {
            let outputs = copied_outputs(&response);
            let mut failure = CallFailure::from_connector(response.into_error(exec.clock().now()));
            // A failed `http` action keeps the response headers; connector failures do not.
            if target == "http" {
                failure.outputs = Some(outputs);
            }
            Err(failure)
        }
        MockAnswer::NoAnswer(message) => Err(CallFailure::from_connector(ConnectorError::Transport(message))),
        MockAnswer::Refused(error) => Err(CallFailure::fatal(error)),
    })
}

/// The `http` action: one request, retried per the action's policy.
pub(crate) async fn http(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Arc<Frame>,
    request: &Template,
) -> ActionResult {
    let scope: Arc<dyn Scope> = frame.clone();
    let rendered = match render(request, &scope) {
        Ok(value) => value,
        Err(error) => return failed(None, error),
    };
    let (request, url) = match build_request(rendered) {
        Ok(built) => built,
        Err((error, rendered)) => return failed(Some(rendered), error),
    };
    let inputs = request.masked_value();
    let effect = effect_of_method(&request.method);
    let client = &exec.options.http;
    let mut result = with_retries(exec, action, |attempt| {
        let (inputs, request, url) = (&inputs, &request, &url);
        async move {
            if let Some(answer) = mocked(exec, action, frame, "http", inputs, attempt) {
                return answer;
            }
            match client.send_to(request, url.clone(), effect).await {
                Ok(None) => Ok(dry_run_outputs(request)),
                Ok(Some(response)) if response.is_success() => {
                    Ok(response_outputs(response.status, response.headers, response.body))
                }
                Ok(Some(response)) => {
                    let outputs = copied_outputs(&response);
                    let error = response.into_error(exec.clock().now());
                    let mut failure = CallFailure::from_connector(error);
                    failure.error.message =
                        format!("{} {} answered {}", request.method, request.url, failure.error.message);
                    failure.outputs = Some(outputs);
                    Err(failure)
                }
                Err(error) => Err(CallFailure::from_connector(error)),
            }
        }
    })
    .await;
    result.inputs = Some(inputs);
    result
}

/// Which connector operation an action calls.
pub(crate) struct Target<'a> {
    pub connector: &'a str,
    pub operation: &'a str,
    pub connection: Option<&'a str>,
}

/// An alias goes through the flow's `connections` map; no alias means the only connection of
/// the connector's kind.
fn resolve<'a>(exec: &'a Exec<'_>, target: &Target<'_>) -> Result<&'a Arc<dyn Connector>, ActionError> {
    let connections = &exec.options.connections;
    let missing = |message: String| ActionError::new("ConnectionNotFound", message);
    match target.connection {
        Some(alias) => {
            let name = exec.flow.connections.get(alias).map(String::as_str).unwrap_or(alias);
            connections
                .get(name)
                .ok_or_else(|| missing(format!("connection '{name}' (alias '{alias}') is not configured: add it to coflow.yaml")))
        }
        None => connections.only_of_kind(target.connector).ok_or_else(|| {
            missing(format!(
                "no single {} connection is configured: add one to coflow.yaml, or name one with `connection:`",
                target.connector
            ))
        }),
    }
}

/// A connector operation, retried per the action's policy.
pub(crate) async fn connector(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Arc<Frame>,
    target: Target<'_>,
    inputs: &Template,
) -> ActionResult {
    let resolved = resolve(exec, &target);
    // With mocks, a missing connection matters only to a call they let through.
    if let (Err(error), None) = (&resolved, &exec.options.mocks) {
        return failed(None, error.clone());
    }
    let scope: Arc<dyn Scope> = frame.clone();
    let inputs = match render(inputs, &scope) {
        Ok(value) => value,
        Err(error) => return failed(None, error),
    };
    let operation = target.operation;
    let called = format!("{}.{operation}", target.connector);
    let mut result = with_retries(exec, action, |attempt| {
        let (resolved, inputs, called) = (&resolved, &inputs, &called);
        async move {
            if let Some(answer) = mocked(exec, action, frame, called, inputs, attempt) {
                return answer;
            }
            let connector = resolved.as_ref().map_err(|error| CallFailure::fatal(error.clone()))?;
            let http = exec.options.http.for_call();
            let may_have_landed = exec.options.recovering || attempt > 1;
            let call = OperationCall { may_have_landed, ..OperationCall::new(operation, inputs, &http) };
            let outcome = connector.call(call).await;
            if let Some(request) = http.held_back().last() {
                return Ok(dry_run_outputs(request));
            }
            match outcome {
                Ok(output) => {
                    let headers: Map<String, Value> =
                        output.headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                    Ok(object([
                        ("statusCode", json!(output.status)),
                        ("headers", Value::Object(headers)),
                        ("body", output.body),
                    ]))
                }
                Err(error) => Err(CallFailure::from_connector(error)),
            }
        }
    })
    .await;
    result.inputs = Some(inputs);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_query_and_authentication() {
        let (request, url) = build_request(json!({
            "method": "post",
            "url": "http://127.0.0.1:1/items",
            "query": {"q": "a b", "n": 2},
            "authentication": {"type": "basic", "username": "u", "password": "p"},
            "body": {"x": 1}
        }))
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "http://127.0.0.1:1/items?q=a+b&n=2");
        assert_eq!(url.as_str(), request.url);
        assert_eq!(request.headers["Authorization"], "Basic dTpw");
        assert_eq!(request.body, Some(json!({"x": 1})));
    }

    #[test]
    fn bad_requests_say_what_to_fix() {
        let (error, _) = build_request(json!({"url": "ftp://x/"})).unwrap_err();
        assert!(error.message.contains("http or https"), "{}", error.message);
        let (error, _) = build_request(json!({"url": "http://x/", "verb": "GET"})).unwrap_err();
        assert!(error.message.contains("unknown http key `verb`"), "{}", error.message);
        let (error, rendered) =
            build_request(json!({"url": "http://x/", "authentication": {"type": "bearer"}})).unwrap_err();
        assert!(error.message.contains("needs `token`"), "{}", error.message);
        assert_eq!(rendered, json!({"url": "http://x/", "authentication": {"type": "bearer"}}));
    }
}
