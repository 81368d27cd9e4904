//! Errors of the emulator, rendered in the two shapes Partner Center uses.
//!
//! The Referrals API (api.partner.microsoft.com) answers OData-style
//! `{"error":{"code","message","target","innerError"}}`; the Partner Center REST API that hosts
//! webhook registration (api.partnercenter.microsoft.com) answers
//! `{"code","description","data","source"}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// What went wrong with a request to the emulator.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ApiError {
    /// No bearer token, or an unknown, expired or wrong-audience one.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or breaks a rule; `target` names the offending input.
    #[error("{message}")]
    BadRequest {
        /// What is wrong and how to fix it.
        message: String,
        /// The offending field or parameter.
        target: Option<String>,
    },
    /// `If-Match` does not carry the current eTag.
    #[error("ETag mismatch")]
    PreconditionFailed,
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests; retry after this many seconds.
    #[error("Rate limit is exceeded. Try again in {0} seconds.")]
    Throttled(u64),
    /// Any other status, e.g. an injected 503; `Retry-After` seconds when set.
    #[error("{message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Explanation.
        message: String,
        /// Retry-After seconds.
        retry_after: Option<u64>,
    },
}

impl ApiError {
    /// A 400 naming the offending input.
    pub fn bad(message: impl Into<String>, target: impl Into<String>) -> Self {
        ApiError::BadRequest { message: message.into(), target: Some(target.into()) }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Status { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn odata_code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "notFound",
            ApiError::BadRequest { .. } => "badRequest",
            ApiError::PreconditionFailed => "preconditionFailed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Throttled(_) => "tooManyRequests",
            ApiError::Status { status, .. } => match status {
                500 => "internalServerError",
                502 => "badGateway",
                503 => "serviceUnavailable",
                504 => "gatewayTimeout",
                _ => "error",
            },
        }
    }

    /// Adds the headers every shape carries for this error.
    fn finish(&self, body: Value) -> Response {
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::Throttled(seconds) | ApiError::Status { retry_after: Some(seconds), .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
            }
            _ => {}
        }
        response
    }
}

/// An error of the Referrals API, answered in its OData envelope.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReferralsError(#[from] pub ApiError);

impl IntoResponse for ReferralsError {
    fn into_response(self) -> Response {
        let error = &self.0;
        if let ApiError::Throttled(seconds) = error {
            return error.finish(throttle_body(*seconds));
        }
        let body = if *error == ApiError::PreconditionFailed {
            // Byte-for-byte the body Partner Center returns on a stale If-Match.
            json!({"error": {
                "code": "preconditionFailed",
                "message": "A precondition provided in the request (such as an if-match header) does not match the resource's current state.",
                "target": "ETag",
                "innerError": {
                    "code": "99918",
                    "message": "One of the specified pre-condition is not met. Etag value did not Match",
                    "details": null
                }
            }})
        } else {
            let target = match error {
                ApiError::BadRequest { target, .. } => target.clone(),
                _ => None,
            };
            json!({"error": {
                "code": error.odata_code(),
                "message": error.to_string(),
                "target": target,
                "innerError": null
            }})
        };
        error.finish(body)
    }
}

/// An error of the Partner Center REST API (webhook registration), in its `{code, description}`
/// shape.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RestError(#[from] pub ApiError);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let error = &self.0;
        if let ApiError::Throttled(seconds) = error {
            return error.finish(throttle_body(*seconds));
        }
        // [inferred] Partner Center REST error codes are numeric strings; the sandbox uses the
        // HTTP status as the code.
        let body = json!({
            "code": error.status().as_u16().to_string(),
            "description": error.to_string(),
            "data": [],
            "source": "PartnerFD"
        });
        error.finish(body)
    }
}

/// The documented Partner Center throttling body.
pub fn throttle_body(seconds: u64) -> Value {
    json!({"statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {seconds} seconds.")})
}

/// An error of the token endpoint, in Azure AD's shape.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct TokenError {
    /// HTTP status.
    pub status: StatusCode,
    /// OAuth error code.
    pub error: &'static str,
    /// AADSTS number.
    pub aadsts: u32,
    /// Human explanation.
    pub description: String,
}

impl TokenError {
    /// A 400 with an OAuth error code.
    pub fn new(error: &'static str, aadsts: u32, description: impl Into<String>) -> Self {
        let status =
            if error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        TokenError { status, error, aadsts, description: description.into() }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let trace = uuid::Uuid::new_v4();
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}\r\nTrace ID: {trace}", self.aadsts, self.description),
            "error_codes": [self.aadsts],
            "timestamp": jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace.to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string()
        });
        (self.status, Json(body)).into_response()
    }
}
