//! Plain HTTP: the client every connector sends through, with dry-run recording.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    /// JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
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

    /// Whether writes are held back.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Writes held back so far by a dry-run.
    pub fn held_back(&self) -> Vec<HttpRequest> {
        self.held_back.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Sends `request`; in a dry-run a write is recorded and answered with `None`.
    pub async fn send(
        &self,
        request: HttpRequest,
        effect: Effect,
    ) -> Result<Option<HttpResponse>, ConnectorError> {
        if self.dry_run && effect == Effect::Write {
            if let Ok(mut held) = self.held_back.lock() {
                held.push(request);
            }
            return Ok(None);
        }
        let _ = &self.client;
        Err(ConnectorError::Transport("not implemented yet".into()))
    }
}
