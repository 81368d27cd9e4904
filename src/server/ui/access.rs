//! Who may see the pages: the admin API's rule, a session cookie for browsers, and tokens that
//! bind each form to this process.
//!
//! With an admin token, a visitor signs in once with it and keeps a session cookie derived from
//! it (a keyed hash, never the token itself), `HttpOnly` and `SameSite=Strict`. Without one, only
//! loopback is served. Forms that change something carry a token keyed by a secret of this
//! process, so another site cannot submit them through a signed-in (or loopback) browser.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Form, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use minijinja::context;
use serde::Deserialize;
use sha2::Sha256;

use super::{error_page, render_template, secure_headers};
use crate::server::{State, admin};

/// Name of the cookie that keeps a signed-in session.
pub const SESSION_COOKIE: &str = "coflow_session";

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
pub fn check(state: &State, peer: SocketAddr, headers: &HeaderMap) -> Access {
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

pub async fn require_viewer(
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state, peer, request.headers()) {
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

pub async fn login_page(AxumState(state): AxumState<Arc<State>>, Query(query): Query<NextQuery>) -> Response {
    if state.options.admin_token.is_none() {
        return Redirect::to("/").into_response();
    }
    login_form(&safe_next(&query.next), None)
}

pub async fn login(AxumState(state): AxumState<Arc<State>>, Form(form): Form<LoginForm>) -> Response {
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

pub async fn logout() -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
