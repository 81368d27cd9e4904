//! The run-history web UI served by `coflow serve`: server-rendered pages, a little JavaScript.
//!
//! Pages, one module each:
//! - [`flows`]: `/` (every flow with its recent outcomes) and `/flows/{name}` (picture, YAML,
//!   mapping files, recent runs);
//! - [`runs`]: `/runs`, the filtered and paged run list;
//! - [`run`]: `/runs/{id}` (picture coloured by status, every action's inputs, outputs and
//!   attempts) and its resubmit and cancel forms;
//! - [`sandbox`]: `/sandbox`, both emulators side by side with their sync state;
//! - [`sync`]: `/sync`, the sync status of each object, read from both systems.
//!
//! [`graph`] lays flows out as SVG. Templates and the CSS and JavaScript files are compiled into
//! the binary: the UI makes no request outside this server.
//!
//! [`access`] decides who sees the pages: the admin API's rule, plus a session cookie for
//! browsers and a token in every form that changes something.

pub mod access;
pub mod flows;
pub mod graph;
pub mod run;
pub mod runs;
pub mod sandbox;
pub mod status;
pub mod sync;
mod view;

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use sha2::Sha256;

use super::State;
use super::admin;
pub use access::{form_token, form_token_ok};
pub use sandbox::SandboxView;

/// The templates, by name.
const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("flows.html", include_str!("templates/flows.html")),
    ("flow.html", include_str!("templates/flow.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("sandbox.html", include_str!("templates/sandbox.html")),
    ("sync.html", include_str!("templates/sync.html")),
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
        .route("/sync", get(sync::show))
        .layer(axum::middleware::from_fn_with_state(state, access::require_viewer));
    axum::Router::new()
        .merge(pages)
        .route("/login", get(access::login_page).post(access::login))
        .route("/logout", post(access::logout))
        .route("/ui/assets/ui.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/ui/assets/ui.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
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
}
