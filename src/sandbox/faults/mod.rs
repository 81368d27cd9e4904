//! Fault injection shared by both emulators: latency, error rates, throttling, dropped
//! connections and expired tokens, chosen per route and repeatable with a seed.
//!
//! Rules are written in a small grammar (see [`spec`]), given on the command line
//! (`--fault "GET /services/data/*: 503 rate=0.2 retry_after=2"`) or at run time through the
//! admin endpoint that [`apply`] mounts:
//!
//! - `GET /__sandbox/faults` lists the rules with their hit counts;
//! - `PUT /__sandbox/faults` replaces them: a JSON array of rule strings, or
//!   `{"seed": 7, "rules": [...]}` to also reseed the random generator, or plain text with one
//!   rule per line (`#` starts a comment);
//! - `POST /__sandbox/faults` adds one rule (JSON string or text body);
//! - `DELETE /__sandbox/faults` removes them all.
//!
//! Paths under `/__sandbox/` are never faulted, so a test can always reach the admin endpoints.
//! In a sandbox started by [`crate::sandbox::start`] the rules also apply to the webhook events
//! Partner Center delivers: an attempt is matched as `POST <receiver path>`, so
//! `POST /hooks/pc-to-sf: drop times=3` loses three delivery attempts.
//!
//! An emulator answers status and expired-token faults in its own error shape by serving
//! [`RENDER_PATH`]: the middleware sends the faulted request there, with an [`InjectedFault`]
//! extension, instead of to its real route, so the real handler never runs. The handler there
//! wraps its answer with [`rendered`]; when the emulator does not serve that path a generic JSON
//! body (`{"statusCode", "message"}`, Partner Center's throttling shape) is used.
//!
//! Every decision draws from one seeded generator in request order, so the same seed and the same
//! sequence of requests give the same faults.

pub mod spec;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tower::Layer as _;

pub use spec::{FaultAction, FaultRule, FaultSpecError};

/// Path the middleware routes a faulted request to, so the emulator can answer in its own shape.
pub const RENDER_PATH: &str = "/__sandbox/fault";

/// Admin endpoint for reading and changing the rules.
pub const ADMIN_PATH: &str = "/__sandbox/faults";

/// The fault an emulator is asked to render, attached to the request sent to [`RENDER_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    /// What to answer.
    pub kind: InjectedKind,
    /// Method of the faulted request.
    pub method: String,
    /// Path of the faulted request (the emulator may pick its error shape by path).
    pub path: String,
}

/// The answers an emulator renders itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedKind {
    /// An error status, with `Retry-After` seconds when set.
    Status {
        /// HTTP status.
        status: u16,
        /// Retry-After seconds.
        retry_after: Option<u64>,
    },
    /// 401 as for an expired or invalid access token.
    TokenExpired,
}

/// Marks a response as rendered by the emulator for an injected fault.
#[derive(Debug, Clone, Copy)]
pub struct FaultRendered;

/// One installed rule with its counters.
#[derive(Debug)]
struct Installed {
    rule: FaultRule,
    installed_at: Instant,
    fired: u64,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<Installed>,
    rng: StdRng,
    seed: u64,
}

/// Faults currently injected, changeable at run time through the admin endpoint.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<Inner>,
}

/// What the middleware decided for one request.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Wait this long first.
    pub delay: Duration,
    /// Then do this (nothing = serve normally).
    pub action: Option<Outcome>,
}

/// The non-latency outcomes.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Let the emulator render this fault.
    Render(InjectedKind),
    /// Close without an answer.
    Drop,
}

/// A rule as listed by the admin endpoint.
#[derive(Debug, Serialize)]
pub struct RuleReport {
    /// The rule in the spec grammar.
    pub spec: String,
    /// The parsed rule.
    pub rule: FaultRule,
    /// How many requests it fired on.
    pub fired: u64,
}

impl Faults {
    /// No faults; `seed` makes random choices repeatable.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            inner: Mutex::new(Inner { rules: Vec::new(), rng: StdRng::seed_from_u64(seed), seed }),
        })
    }

    /// Faults from command-line rule strings; every bad rule is reported, not just the first.
    pub fn from_specs<S: AsRef<str>>(seed: u64, specs: &[S]) -> Result<Arc<Self>, Vec<FaultSpecError>> {
        let faults = Faults::new(seed);
        faults.replace(parse_all(specs)?, None);
        Ok(faults)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the rules half-written, so keep going.
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds one rule after the existing ones.
    pub fn add(&self, rule: FaultRule) {
        self.lock().rules.push(Installed { rule, installed_at: Instant::now(), fired: 0 });
    }

    /// Parses and adds one rule.
    pub fn add_spec(&self, spec: &str) -> Result<(), FaultSpecError> {
        self.add(spec.parse()?);
        Ok(())
    }

    /// Replaces every rule, and reseeds the generator when `seed` is given.
    pub fn replace(&self, rules: Vec<FaultRule>, seed: Option<u64>) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.rules = rules.into_iter().map(|rule| Installed { rule, installed_at: now, fired: 0 }).collect();
        if let Some(seed) = seed {
            inner.seed = seed;
            inner.rng = StdRng::seed_from_u64(seed);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// The rules with their counters.
    pub fn report(&self) -> Vec<RuleReport> {
        self.lock()
            .rules
            .iter()
            .map(|installed| RuleReport {
                spec: installed.rule.to_string(),
                rule: installed.rule.clone(),
                fired: installed.fired,
            })
            .collect()
    }

    /// Decides what happens to one request: latency rules add up, the first other rule wins.
    pub fn decide(&self, method: &str, path: &str) -> Decision {
        let mut guard = self.lock();
        let Inner { rules, rng, .. } = &mut *guard;
        let now = Instant::now();
        let mut decision = Decision::default();
        for installed in rules.iter_mut() {
            if !fires(installed, method, path, now, rng) {
                continue;
            }
            installed.fired += 1;
            let rule = &installed.rule;
            decision.delay += rule.delay.unwrap_or_default();
            let outcome = match rule.action {
                FaultAction::Latency => continue,
                FaultAction::Drop => Outcome::Drop,
                FaultAction::Hang => {
                    if rule.delay.is_none() {
                        decision.delay += spec::DEFAULT_HANG;
                    }
                    Outcome::Drop
                }
                FaultAction::Status { status } => {
                    Outcome::Render(InjectedKind::Status { status, retry_after: rule.retry_after })
                }
                FaultAction::TokenExpired => Outcome::Render(InjectedKind::TokenExpired),
            };
            decision.action = Some(outcome);
            break;
        }
        decision
    }
}

/// Whether a rule fires; draws from the generator only for matching, partial-rate rules so the
/// sequence of draws depends on the requests alone.
fn fires(installed: &Installed, method: &str, path: &str, now: Instant, rng: &mut StdRng) -> bool {
    let rule = &installed.rule;
    if !rule.matches(method, path) {
        return false;
    }
    if rule.times.is_some_and(|times| installed.fired >= times) {
        return false;
    }
    if rule.after.is_some_and(|after| now.duration_since(installed.installed_at) < after) {
        return false;
    }
    rule.rate >= 1.0 || rng.random::<f64>() < rule.rate
}

fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<FaultRule>, Vec<FaultSpecError>> {
    let (rules, errors): (Vec<_>, Vec<_>) =
        specs.iter().map(|spec| spec.as_ref().parse::<FaultRule>()).partition(Result::is_ok);
    if errors.is_empty() {
        Ok(rules.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// Wraps an emulator's routes so that configured faults apply to them, and mounts the admin
/// endpoint.
pub fn apply(router: Router, faults: Arc<Faults>) -> Router {
    // Wrapping the whole router (not `Router::layer`, which runs after routing) lets the
    // middleware see every request, unknown paths included, and re-route faulted ones.
    let faulted = middleware::from_fn_with_state(faults.clone(), inject).layer(router);
    Router::new()
        .route(ADMIN_PATH, get(list_rules).put(put_rules).post(post_rule).delete(delete_rules))
        .with_state(faults)
        .fallback_service(faulted)
}

async fn inject(State(faults): State<Arc<Faults>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/__sandbox/") {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let decision = faults.decide(&method, &path);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.action {
        None => next.run(req).await,
        Some(Outcome::Drop) => dropped_connection(),
        Some(Outcome::Render(kind)) => {
            req.extensions_mut().insert(InjectedFault { kind, method, path });
            *req.uri_mut() = Uri::from_static(RENDER_PATH);
            let response = next.run(req).await;
            if response.extensions().get::<FaultRendered>().is_some() {
                response
            } else {
                generic_response(kind)
            }
        }
    }
}

/// A response whose body fails at once: hyper then closes the connection without a complete
/// answer, which is what a client sees when a server or proxy drops it.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped by fault injection",
        ))
    });
    Body::from_stream(failing).into_response()
}

/// The answer used when the emulator does not render faults itself.
pub fn generic_response(kind: InjectedKind) -> Response {
    match kind {
        InjectedKind::Status { status, retry_after } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let message = match (status, retry_after) {
                (429, Some(seconds)) => {
                    format!("Rate limit is exceeded. Try again in {seconds} seconds.")
                }
                _ => code.canonical_reason().unwrap_or("Error").to_owned(),
            };
            let body = serde_json::json!({"statusCode": status, "message": message});
            with_retry_after((code, Json(body)).into_response(), retry_after)
        }
        InjectedKind::TokenExpired => {
            let body = serde_json::json!({"error": "invalid_token", "error_description": "The access token expired."});
            let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            response
        }
    }
}

/// Adds a `Retry-After` header when `seconds` is set.
pub fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Marks an emulator's response as its rendering of an injected fault.
pub fn rendered(mut response: Response) -> Response {
    response.extensions_mut().insert(FaultRendered);
    response
}

async fn list_rules(State(faults): State<Arc<Faults>>) -> Json<serde_json::Value> {
    let seed = faults.lock().seed;
    Json(serde_json::json!({"seed": seed, "rules": faults.report()}))
}

/// Body of `PUT /__sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PutRules {
    Plain(Vec<String>),
    WithSeed {
        #[serde(default)]
        seed: Option<u64>,
        #[serde(default)]
        rules: Vec<String>,
    },
}

async fn put_rules(State(faults): State<Arc<Faults>>, body: String) -> Response {
    let (specs, seed) = match serde_json::from_str::<PutRules>(&body) {
        Ok(PutRules::Plain(rules)) => (rules, None),
        Ok(PutRules::WithSeed { seed, rules }) => (rules, seed),
        Err(_) => (
            body.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect(),
            None,
        ),
    };
    match parse_all(&specs) {
        Ok(rules) => {
            faults.replace(rules, seed);
            list_rules(State(faults)).await.into_response()
        }
        Err(errors) => bad_rules(errors),
    }
}

async fn post_rule(State(faults): State<Arc<Faults>>, body: String) -> Response {
    let spec = serde_json::from_str::<String>(&body).unwrap_or(body);
    match faults.add_spec(&spec) {
        Ok(()) => (StatusCode::CREATED, list_rules(State(faults)).await).into_response(),
        Err(error) => bad_rules(vec![error]),
    }
}

async fn delete_rules(State(faults): State<Arc<Faults>>) -> StatusCode {
    faults.clear();
    StatusCode::NO_CONTENT
}

fn bad_rules(errors: Vec<FaultSpecError>) -> Response {
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"errors": errors, "grammar": "[METHOD] PATH: ACTION [rate=F] [times=N] [after=DUR] [delay=DUR] [retry_after=S]"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(faults: &Faults, n: usize) -> Vec<bool> {
        (0..n).map(|_| faults.decide("GET", "/x").action.is_some()).collect()
    }

    #[test]
    fn same_seed_same_choices() {
        let a = Faults::from_specs(42, &["/x: 503 rate=0.5"]).unwrap();
        let b = Faults::from_specs(42, &["/x: 503 rate=0.5"]).unwrap();
        let c = Faults::from_specs(43, &["/x: 503 rate=0.5"]).unwrap();
        let (a, b, c) = (outcomes(&a, 64), outcomes(&b, 64), outcomes(&c, 64));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let fired = a.iter().filter(|f| **f).count();
        assert!((16..=48).contains(&fired), "rate 0.5 fired {fired}/64");
    }

    #[test]
    fn times_limits_and_latency_adds_up() {
        let faults =
            Faults::from_specs(1, &["*: latency delay=10ms", "*: latency delay=5ms", "GET /x: drop times=1"])
                .unwrap();
        let first = faults.decide("GET", "/x");
        assert_eq!(first.delay, Duration::from_millis(15));
        assert_eq!(first.action, Some(Outcome::Drop));
        let second = faults.decide("GET", "/x");
        assert_eq!(second.action, None);
        assert_eq!(faults.report()[2].fired, 1);
    }

    #[test]
    fn every_bad_rule_is_reported() {
        let errors = Faults::from_specs(1, &["nonsense", "/ok: 503", "/x: 200"]).unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}
