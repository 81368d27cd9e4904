//! The axum router: OAuth endpoints, `/services/data`, identity, and the sandbox admin routes
//! (`/__sandbox/snapshot`, `/__sandbox/reset`, `/__sandbox/sessions/expire`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::Salesforce;
use super::api::{self, ApiRequest, ApiResponse};
use super::auth;
use super::errors::ApiError;
use super::query;
use super::store::Txn;

/// Content type of every JSON body, as Salesforce sends it (jsforce only parses this one).
const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// The emulator's HTTP routes.
pub fn router(sf: Arc<Salesforce>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", any(revoke))
        .route("/services/oauth2/userinfo", any(userinfo))
        .route("/id/{org}/{user}", get(identity))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{*rest}", any(data))
        .route("/__sandbox/snapshot", get(snapshot))
        .route("/__sandbox/reset", post(reset))
        .route("/__sandbox/sessions/expire", post(expire_sessions))
        .fallback(not_found)
        .with_state(sf)
}

/// A JSON response with Salesforce's content type.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &ApiError::not_found().to_json())
}

async fn versions() -> Response {
    json_response(StatusCode::OK, &api::versions())
}

async fn token(State(sf): State<Arc<Salesforce>>, headers: HeaderMap, body: Bytes) -> Response {
    match auth::token(&sf, &headers, &body) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => json_response(err.status, &err.to_json()),
    }
}

async fn revoke(State(sf): State<Arc<Salesforce>>, uri: Uri, body: Bytes) -> Response {
    let from_query = uri.query().and_then(|q| api::Params::new(Some(q)).get("token"));
    let from_form =
        url::form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
    let token = from_form.or(from_query).unwrap_or_default();
    if sf.revoke_token(&token) {
        return StatusCode::OK.into_response();
    }
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"}),
    )
}

fn session_error() -> Response {
    let mut response = json_response(StatusCode::UNAUTHORIZED, &ApiError::invalid_session().to_json());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    response
}

fn user_claims(sf: &Salesforce) -> Value {
    let config = sf.config();
    let base = &config.base_url;
    let urls = json!({
        "rest": format!("{base}/services/data/v{{version}}/"),
        "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
        "query": format!("{base}/services/data/v{{version}}/query/"),
        "profile": format!("{base}/{}", sf.user_id()),
    });
    json!({
        "sub": sf.identity_url(),
        "user_id": sf.user_id(),
        "organization_id": sf.org_id(),
        "preferred_username": config.username,
        "nickname": "coflow",
        "name": "Coflow Integration",
        "email": config.username,
        "email_verified": true,
        "given_name": "Coflow",
        "family_name": "Integration",
        "zoneinfo": "GMT",
        "locale": "en_US",
        "language": "en_US",
        "active": true,
        "user_type": "STANDARD",
        "utcOffset": 0,
        "urls": urls,
        "updated_at": "2024-01-01T00:00:00Z",
    })
}

async fn userinfo(State(sf): State<Arc<Salesforce>>, headers: HeaderMap) -> Response {
    match auth::bearer(&headers) {
        Some(token) if sf.token_is_valid(token) => json_response(StatusCode::OK, &user_claims(&sf)),
        _ => json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "invalid_token", "error_description": "invalid token"}),
        ),
    }
}

async fn identity(
    State(sf): State<Arc<Salesforce>>,
    Path((org, user)): Path<(String, String)>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = params.get("oauth_token").map(String::as_str).or_else(|| auth::bearer(&headers));
    if !token.is_some_and(|t| sf.token_is_valid(t)) {
        return json_response(StatusCode::FORBIDDEN, &json!("Bad_OAuth_Token"));
    }
    if org != sf.org_id() || user != sf.user_id() {
        return json_response(StatusCode::NOT_FOUND, &json!("Bad_Id"));
    }
    let claims = user_claims(&sf);
    let body = json!({
        "id": sf.identity_url(),
        "asserted_user": true,
        "user_id": sf.user_id(),
        "organization_id": sf.org_id(),
        "username": sf.config().username,
        "nick_name": "coflow",
        "display_name": "Coflow Integration",
        "email": sf.config().username,
        "email_verified": true,
        "first_name": "Coflow",
        "last_name": "Integration",
        "timezone": "GMT",
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "urls": claims["urls"],
        "is_app_installed": true,
    });
    json_response(StatusCode::OK, &body)
}

async fn data(
    State(sf): State<Arc<Salesforce>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !auth::bearer(&headers).is_some_and(|t| sf.token_is_valid(t)) {
        return session_error();
    }
    if sf.count_api_call().is_none() {
        let err =
            ApiError::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        return with_limit_info(&sf, json_response(err.status, &err.to_json()));
    }
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(err) => return with_limit_info(&sf, json_response(err.status, &err.to_json())),
    };
    let path = uri.path().strip_prefix("/services/data/").unwrap_or_default();
    let batch_size = query::batch_size(headers.get("sforce-query-options").and_then(|v| v.to_str().ok()));
    let head = method == Method::HEAD;
    let req = ApiRequest { method, path, query: uri.query(), body, batch_size };
    if !api::is_read(&req) {
        sf.count_write();
    }
    let response = serve(&sf, &req);
    with_limit_info(&sf, render(response, head))
}

/// Runs one API request under the right lock.
pub fn serve(sf: &Salesforce, req: &ApiRequest) -> ApiResponse {
    if api::is_read(req) {
        let db = sf.db();
        return api::read(sf, &db, req);
    }
    let mut db = sf.db_mut();
    let mut tx = Txn::new(&mut db);
    api::write(sf, &mut tx, req)
}

fn parse_body(body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        let line = e.line();
        let column = e.column();
        let text = String::from_utf8_lossy(body);
        let offending = text.lines().nth(line.saturating_sub(1)).and_then(|l| l.chars().nth(column.saturating_sub(1)));
        let message = match offending {
            Some(c) => format!(
                "Unexpected character ('{c}' (code {})): expected a valid value (number, String, array, object, 'true', 'false' or 'null') at [line:{line}, column:{column}]",
                c as u32
            ),
            None => format!("Unexpected end-of-input at [line:{line}, column:{column}]"),
        };
        ApiError::bad_request("JSON_PARSER_ERROR", message)
    })
}

fn render(response: ApiResponse, head: bool) -> Response {
    let mut out = match (&response.body, head) {
        (Some(body), false) => json_response(response.status, body),
        _ => response.status.into_response(),
    };
    if let Some(location) = response.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
        out.headers_mut().insert(header::LOCATION, location);
    }
    out
}

fn with_limit_info(sf: &Salesforce, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&sf.limit_info()) {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

async fn snapshot(
    State(sf): State<Arc<Salesforce>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let include_deleted = params.get("includeDeleted").is_some_and(|v| v == "true");
    json_response(StatusCode::OK, &sf.snapshot(include_deleted))
}

async fn reset(State(sf): State<Arc<Salesforce>>) -> Response {
    match sf.reset() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": err.to_string()})),
    }
}

async fn expire_sessions(State(sf): State<Arc<Salesforce>>) -> Response {
    sf.expire_sessions();
    StatusCode::NO_CONTENT.into_response()
}
