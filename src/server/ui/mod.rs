//! The run-history web UI served by `coflow serve`: server-rendered pages, a little JavaScript.
//!
//! Pages, one module each:
//! - [`flows`]: `/` (every flow with its recent outcomes) and `/flows/{name}` (picture, YAML,
//!   mapping files, recent runs);
//! - [`runs`]: `/runs`, the filtered and paged run list;
//! - [`run`]: `/runs/{id}` (picture coloured by status, every action's inputs, outputs and
//!   attempts) and its resubmit and cancel forms;
//! - [`sandbox`]: `/sandbox`, both emulators side by side with their sync state.
//!
//! [`graph`] lays flows out as SVG. Templates and the CSS and JavaScript files are compiled into
//! the binary: the UI makes no request outside this server.
//!
//! Access follows the admin API's rule: with an admin token, a visitor signs in once with it and
//! keeps a session cookie derived from it (never the token itself); without one, only loopback is
//! served. Forms that change something carry a token bound to this process, so another site
//! cannot submit them through a signed-in browser.

pub mod flows;
pub mod graph;
pub mod run;
pub mod runs;
pub mod sandbox;
pub mod status;
mod view;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Form, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use sha2::Sha256;

use super::State;
use super::admin;
pub use sandbox::SandboxView;

/// Name of the cookie that keeps a signed-in session.
pub const SESSION_COOKIE: &str = "coflow_session";

/// The templates, by name.
const TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("flows.html", include_str!("templates/flows.html")),
    ("flow.html", include_str!("templates/flow.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("sandbox.html", include_str!("templates/sandbox.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
];

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");

/// Everything that can go wrong serving a page, each shown as a page with its status.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The flow or run does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (a bad filter, a stale form).
    #[error("{0}")]
    BadRequest(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("the store did not answer: {0}; check the database and reload")]
    Store(#[from] crate::store::StoreError),
    /// A template failed (a bug: please report it with the page's address).
    #[error("cannot render the page: {0}")]
    Render(#[from] minijinja::Error),
}

impl From<admin::ApiError> for UiError {
    fn from(err: admin::ApiError) -> Self {
        match err {
            admin::ApiError::Store(err) => UiError::Store(err),
            admin::ApiError::NotFound(message) => UiError::NotFound(message),
            admin::ApiError::Conflict(message) => UiError::Conflict(message),
            other => UiError::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::NotFound(_) | UiError::Store(crate::store::StoreError::RunNotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            UiError::BadRequest(_) | UiError::Store(crate::store::StoreError::InvalidCursor(_)) => {
                StatusCode::BAD_REQUEST
            }
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let UiError::Render(err) = &self {
            tracing::error!(error = %err, "a UI template failed");
        }
        error_page(status, &self.to_string())
    }
}

/// Result of a page handler.
pub type UiResult<T = Response> = Result<T, UiError>;

/// The UI routes, with access control.
pub fn routes(state: Arc<State>) -> axum::Router<Arc<State>> {
    let pages = axum::Router::new()
        .route("/", get(flows::index))
        .route("/flows/{name}", get(flows::show))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(run::show))
        .route("/runs/{id}/state", get(run::live_state))
        .route("/runs/{id}/resubmit", get(run::confirm_resubmit).post(run::resubmit))
        .route("/runs/{id}/cancel", get(run::confirm_cancel).post(run::cancel))
        .route("/sandbox", get(sandbox::show))
        .layer(axum::middleware::from_fn_with_state(state, require_viewer));
    axum::Router::new()
        .merge(pages)
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/assets/ui.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/ui/assets/ui.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
}

/// Who may see the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go ahead.
    Granted,
    /// A token is configured and the request has neither it nor a session.
    SignIn,
    /// No token is configured and the request is not from loopback.
    LoopbackOnly,
}

/// Whether a request may see the UI: the admin API's rule, plus the session cookie.
pub fn access(state: &State, peer: SocketAddr, headers: &HeaderMap) -> Access {
    match (&state.options.admin_token, admin::authorize(state, peer, headers)) {
        (_, Ok(())) => Access::Granted,
        (None, Err(_)) => Access::LoopbackOnly,
        (Some(token), Err(_)) => {
            let expected = session_value(token.expose());
            let sent = cookie(headers, SESSION_COOKIE).unwrap_or_default();
            if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
                Access::Granted
            } else {
                Access::SignIn
            }
        }
    }
}

async fn require_viewer(
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match access(&state, peer, request.headers()) {
        Access::Granted => secure_headers(next.run(request).await),
        Access::LoopbackOnly => error_page(
            StatusCode::FORBIDDEN,
            "This server has no admin token, so its pages are served to this machine only. \
             Start it with --admin-token to open them to the network.",
        ),
        Access::SignIn => {
            // After signing in, a form's POST comes back to the page it was sent from.
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let next_page =
                if request.method() == Method::GET { path.to_string() } else { parent_page(path) };
            let mut response = login_form(&next_page, None);
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// `/runs/{id}/resubmit` → `/runs/{id}`.
fn parent_page(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("/");
    path.rsplit_once('/').map_or("/", |(parent, _)| parent).to_string()
}

/// The session value for `token`: a keyed hash, so the cookie never holds the token.
fn session_value(token: &str) -> String {
    mac_hex(token.as_bytes(), b"coflow ui session v1")
}

fn mac_hex(key: &[u8], message: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => String::new(),
    }
}

/// Random for each process: form tokens of an earlier process are refused after a restart.
fn form_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The hidden token of a form that does `action` on `target`.
pub fn form_token(action: &str, target: &str) -> String {
    mac_hex(form_key(), format!("{action}:{target}").as_bytes())
}

/// Whether a submitted form token is the one [`form_token`] made.
pub fn form_token_ok(action: &str, target: &str, sent: &str) -> bool {
    constant_time_eq(form_token(action, target).as_bytes(), sent.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Form of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
}

/// Query of `GET /login`.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_page(
    AxumState(state): AxumState<Arc<State>>,
    axum::extract::Query(query): axum::extract::Query<NextQuery>,
) -> Response {
    if state.options.admin_token.is_none() {
        return Redirect::to("/").into_response();
    }
    login_form(&safe_next(&query.next), None)
}

async fn login(AxumState(state): AxumState<Arc<State>>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(&form.next);
    let Some(token) = &state.options.admin_token else {
        return Redirect::to(&next).into_response();
    };
    if !constant_time_eq(form.token.trim().as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("UI sign-in with a wrong admin token");
        let mut response = login_form(&next, Some("That is not the admin token. Try again."));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let cookie =
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", session_value(token.expose()));
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A local path to go to after signing in; anything else (another site) becomes `/`.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local { next.to_string() } else { "/".to_string() }
}

fn login_form(next: &str, problem: Option<&str>) -> Response {
    let page = context! { title => "Sign in", nav => "", sandbox => false, token => false };
    match render_template("login.html", context! { page, next, problem }) {
        Ok(html) => secure_headers(Html(html).into_response()),
        Err(err) => err.into_response(),
    }
}

/// A serialisable value for a template.
pub fn data<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// Renders `template` with the common page fields and `values`.
pub fn render(state: &State, template: &str, title: &str, nav: &str, values: Value) -> UiResult {
    let page = context! {
        title,
        nav,
        sandbox => state.options.sandbox.is_some(),
        token => state.options.admin_token.is_some(),
    };
    let html = render_template(template, context! { page, ..values })?;
    Ok(Html(html).into_response())
}

fn render_template(template: &str, values: Value) -> Result<String, UiError> {
    let env = environment();
    let html = env.get_template(template)?.render(context! { assets => assets(), ..values })?;
    Ok(html)
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let page = context! { title => "Error", nav => "", sandbox => false, token => false };
    let html = render_template("error.html", context! { page, status => status.as_u16(), message })
        .unwrap_or_else(|_| format!("<!doctype html><title>Error</title><p>{}</p>", html_escape(message)));
    secure_headers((status, Html(html)).into_response())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Headers of every page: nothing loads from elsewhere, nothing frames the pages.
fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The template environment, built once; a template that does not parse is logged and its pages
/// answer with an error.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, error = %err, "a UI template does not parse");
            }
        }
        env
    })
}

/// Asset URLs with a content hash, so browsers may cache them for long.
fn assets() -> Value {
    static URLS: OnceLock<Value> = OnceLock::new();
    URLS.get_or_init(|| {
        let version = |text: &str| {
            use sha2::Digest as _;
            hex::encode(&Sha256::digest(text.as_bytes())[..6])
        };
        context! {
            css => format!("/ui/assets/ui.css?v={}", version(CSS)),
            js => format!("/ui/assets/ui.js?v={}", version(JS)),
        }
    })
    .clone()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn sign_in_goes_back_only_to_local_pages() {
        assert_eq!(safe_next("/runs?status=failed"), "/runs?status=failed");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next(""), "/");
        assert_eq!(parent_page("/runs/abc/resubmit"), "/runs/abc");
    }

    #[test]
    fn form_tokens_are_bound_to_action_and_target() {
        let token = form_token("resubmit", "run-1");
        assert!(form_token_ok("resubmit", "run-1", &token));
        assert!(!form_token_ok("cancel", "run-1", &token));
        assert!(!form_token_ok("resubmit", "run-2", &token));
        assert!(!form_token_ok("resubmit", "run-1", ""));
    }

    #[test]
    fn the_session_cookie_does_not_hold_the_token() {
        let value = session_value("s3cret-token");
        assert!(!value.contains("s3cret"));
        assert_eq!(value, session_value("s3cret-token"));
        assert_ne!(value, session_value("other"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; coflow_session=xyz; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
