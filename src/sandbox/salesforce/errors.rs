//! Salesforce error bodies: a JSON array of `{message, errorCode, fields}`.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// One entry of an error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorItem {
    /// Human-readable message.
    pub message: String,
    /// Salesforce error code (`INVALID_FIELD`, ...).
    pub code: &'static str,
    /// Fields the error is about; `None` where Salesforce omits the key.
    pub fields: Option<Vec<String>>,
}

/// A failed REST call: HTTP status plus the error array.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {}", items.first().map(|i| i.message.as_str()).unwrap_or(""))]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The error entries.
    pub items: Vec<ErrorItem>,
}

impl ApiError {
    /// One error without a `fields` key.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, items: vec![ErrorItem { message: message.into(), code, fields: None }] }
    }

    /// One 400 error naming fields.
    pub fn fields(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            items: vec![ErrorItem { message: message.into(), code, fields: Some(fields) }],
        }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
    }

    /// 401 `INVALID_SESSION_ID`.
    pub fn invalid_session() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    /// 405 for a method the resource does not take.
    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }

    /// The REST body (`errorCode`).
    pub fn to_json(&self) -> Value {
        Value::Array(self.items.iter().map(|i| item_json(i, "errorCode")).collect())
    }

    /// The per-record form used by sObject Collections (`statusCode`).
    pub fn to_collection_errors(&self) -> Value {
        Value::Array(self.items.iter().map(|i| item_json(i, "statusCode")).collect())
    }

    /// The first error code.
    pub fn code(&self) -> &'static str {
        self.items.first().map_or("UNKNOWN_EXCEPTION", |i| i.code)
    }
}

fn item_json(item: &ErrorItem, code_key: &str) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("message".into(), json!(item.message));
    obj.insert(code_key.into(), json!(item.code));
    match (&item.fields, code_key) {
        (Some(fields), _) => {
            obj.insert("fields".into(), json!(fields));
        }
        // Collections always carry a `fields` array.
        (None, "statusCode") => {
            obj.insert("fields".into(), json!([]));
        }
        _ => {}
    }
    Value::Object(obj)
}
