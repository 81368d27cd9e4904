//! Connectors: the systems flows talk to, behind one [`Connector`] trait.
//!
//! A connector exposes named operations. Every HTTP call an operation makes goes through the
//! [`HttpClient`] the engine hands it, which is where dry-runs hold back writes and where the
//! exact request is recorded.

pub mod client;
pub mod config;
pub mod http;
pub mod limits;
pub mod partner_center;
pub mod salesforce;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

pub use http::{HttpClient, HttpRequest, HttpResponse};

/// Whether an operation changes the remote system. Dry-runs send reads and record writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Only reads.
    Read,
    /// Creates, changes or deletes something.
    Write,
}

/// Static description of one operation, used by the compiler and the docs.
#[derive(Debug, Clone, Serialize)]
pub struct OperationSpec {
    /// Name used after the dot in `type: <connector>.<operation>`.
    pub name: &'static str,
    /// Read or write.
    pub effect: Effect,
    /// One sentence for docs and `validate`.
    pub description: &'static str,
    /// Input keys the operation requires.
    pub required_inputs: &'static [&'static str],
}

/// What an operation returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperationOutput {
    /// HTTP status of the last call, when there was one.
    pub status: Option<u16>,
    /// Response headers worth keeping.
    pub headers: BTreeMap<String, String>,
    /// The result, as `body('action')` sees it.
    pub body: Value,
}

/// Why an operation failed. The engine decides on retries from [`ConnectorError::is_retryable`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The remote system answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Readable summary of the error body.
        message: String,
        /// The parsed error body.
        body: Value,
        /// Wait asked for by a `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// The request never got an answer (connection refused, reset, timed out).
    #[error("request failed: {0}")]
    Transport(String),
    /// The action's inputs do not fit the operation.
    #[error("invalid inputs: {0}")]
    InvalidInput(String),
    /// The connector has no operation of this name.
    #[error("unknown operation `{0}`")]
    UnknownOperation(String),
    /// Credentials were missing or refused.
    #[error("authentication failed: {0}")]
    Auth(String),
}

impl ConnectorError {
    /// Power Automate retries 408, 429, 5xx and connection failures; nothing else.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectorError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            ConnectorError::Transport(_) => true,
            _ => false,
        }
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short machine-readable code for the run record.
    pub fn code(&self) -> String {
        match self {
            ConnectorError::Status { status, .. } => format!("Http{status}"),
            ConnectorError::Transport(_) => "ConnectionFailed".into(),
            ConnectorError::InvalidInput(_) => "InvalidInput".into(),
            ConnectorError::UnknownOperation(_) => "UnknownOperation".into(),
            ConnectorError::Auth(_) => "Unauthorized".into(),
        }
    }
}

/// One call of an operation.
#[derive(Debug)]
pub struct OperationCall<'a> {
    /// Operation name.
    pub operation: &'a str,
    /// Rendered inputs.
    pub inputs: &'a Value,
    /// Where HTTP requests go (and where dry-runs hold back writes).
    pub http: &'a HttpClient,
    /// This call may already have reached the system: an earlier attempt failed without an
    /// answer, or an earlier execution of the run was interrupted. Writes that can tell check
    /// first and do not send again what already landed.
    pub may_have_landed: bool,
}

impl<'a> OperationCall<'a> {
    /// A first call of `operation`.
    pub fn new(operation: &'a str, inputs: &'a Value, http: &'a HttpClient) -> Self {
        OperationCall { operation, inputs, http, may_have_landed: false }
    }
}

/// A system flows can call.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The connector kind, as in `type: <kind>.<operation>`.
    fn kind(&self) -> &'static str;
    /// The operations it offers.
    fn operations(&self) -> &'static [OperationSpec];
    /// Runs one operation.
    fn call<'a>(&'a self, call: OperationCall<'a>) -> BoxFuture<'a, Result<OperationOutput, ConnectorError>>;
}

/// Connections available to a run, by connection name (and by alias, after resolution).
#[derive(Debug, Clone, Default)]
pub struct Connections {
    by_name: BTreeMap<String, Arc<dyn Connector>>,
}

impl Connections {
    /// No connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection under `name`.
    pub fn insert(&mut self, name: impl Into<String>, connector: Arc<dyn Connector>) {
        self.by_name.insert(name.into(), connector);
    }

    /// The connection called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.by_name.get(name)
    }

    /// The only connection of a kind, used when an action names none.
    pub fn only_of_kind(&self, kind: &str) -> Option<&Arc<dyn Connector>> {
        let mut matching = self.by_name.values().filter(|c| c.kind() == kind);
        let first = matching.next()?;
        matching.next().is_none().then_some(first)
    }
}

/// Operations of every connector kind, for the compiler's checks without live connections.
pub fn catalog(kind: &str) -> Option<&'static [OperationSpec]> {
    match kind {
        "http" => Some(&[]),
        "partner_center" => Some(partner_center::OPERATIONS),
        "salesforce" => Some(salesforce::OPERATIONS),
        _ => None,
    }
}
