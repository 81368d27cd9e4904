//! Partner Center emulator: referrals API, webhook registration and signed event delivery.
//!
//! It answers like the real service as described in `reference/partner-center.md`: one host
//! serves what Microsoft splits over three (`login.microsoftonline.com`,
//! `api.partner.microsoft.com`, `api.partnercenter.microsoft.com`).
//!
//! | route | what |
//! |---|---|
//! | `POST /{tenant}/oauth2/token`, `POST /{tenant}/oauth2/v2.0/token` | Azure AD token endpoint (v1 and v2) |
//! | `GET/POST /v1.0/engagements/referrals` | list (OData) and create |
//! | `GET/PUT/PATCH /v1.0/engagements/referrals/{id}` | get, replace (`If-Match`), JSON Patch |
//! | `GET /v1.0/referrals?$skiptoken=...` | next pages, the path the real `@odata.nextLink` uses |
//! | `/webhooks/v1/registration[...]` | webhook registration, events list, validation events |
//! | `GET /cert/pcnotifications-dispatch.microsoft.com.cer` | the certificate that signs events (DER) |
//! | `/__sandbox/...` | test controls: snapshot, reset, seed, deliveries, clock, acting as Microsoft |
//!
//! # Sandbox credentials
//!
//! Any tenant name works in the token URL (`common`, `organizations`, a GUID).
//!
//! - client id `coflow-sandbox-app`, client secret `coflow-sandbox-secret`
//! - Referral Admin: `admin@coflow-sandbox.onmicrosoft.com` / `sandbox-admin-password`
//! - Referral User (read-only, sees referrals whose `team` lists them):
//!   `user@coflow-sandbox.onmicrosoft.com` / `sandbox-user-password`
//! - a pre-consented refresh token for the admin (Secure Application Model style):
//!   `coflow-sandbox-refresh-token`
//!
//! Grants: `password` and `refresh_token` give App+User tokens, `client_credentials` gives
//! app-only tokens (accepted by webhook registration, refused with 403 by the Referrals API).
//! `resource` (v1) or `scope` (v2, `https://api.partner.microsoft.com/.default`) picks the
//! audience; each API accepts only its own.
//!
//! # Where the sandbox chooses ([inferred] in the reference)
//!
//! Create answers `create_status` (201 by default; the connector's swagger declares 200, so clients
//! must accept any 2xx). A partner-created referral is `Outgoing` and a requested `New` status is
//! normalised to `Active/Accepted`, as the documented create response shows. PUT without
//! `If-Match` is 400. `DELETE /webhooks/v1/registration` exists here only. Events are signed by a
//! self-signed certificate generated at start whose subject carries `O=Microsoft Corporation`,
//! so the documented issuer check passes; a chain check against Microsoft's root cannot, so a
//! receiver must be told to trust this certificate.

pub mod admin;
pub mod auth;
pub mod delivery;
pub mod error;
pub mod json_patch;
pub mod list;
pub mod model;
pub mod odata;
pub mod referrals;
pub mod state_machine;
pub mod webhooks;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use indexmap::IndexMap;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

pub use auth::{Role, SandboxUser};
use delivery::{Deliveries, Signer};
use webhooks::Registration;

/// Settings of the Partner Center emulator.
#[derive(Debug, Clone)]
pub struct PartnerCenterConfig {
    /// Base URL the emulator is reachable at (used in next links and the certificate URL).
    pub base_url: String,
    /// OAuth client id the token endpoint accepts.
    pub client_id: String,
    /// OAuth client secret the token endpoint accepts.
    pub client_secret: String,
    /// Pre-issued refresh token, signed in as the first user.
    pub refresh_token: String,
    /// Users for the password grant; the first is the refresh token's user.
    pub users: Vec<SandboxUser>,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// Largest list page (Partner Center: 100).
    pub page_size: usize,
    /// Status of a successful create.
    pub create_status: u16,
    /// Delivery attempts per event before it is given up (Partner Center: 10).
    pub delivery_attempts: u32,
    /// Wait before the first retry; doubles on each further retry.
    pub delivery_retry_interval: Duration,
    /// Longest wait between retries.
    pub delivery_max_interval: Duration,
    /// Time allowed for the receiver to answer one attempt.
    pub delivery_timeout: Duration,
    /// Unanswered incoming referrals are closed as Expired after this long (Partner Center: 14 days).
    pub expire_after: Duration,
    /// Validation events accepted per minute (Partner Center: 2).
    pub validation_events_per_minute: usize,
    /// The partner's organisation id, put on created referrals.
    pub organization_id: String,
    /// The partner's organisation name.
    pub organization_name: String,
    /// The partner's MPN id.
    pub mpn_id: String,
    /// Referrals to load at start (a JSON array, or a list body with `value`).
    pub seed_file: Option<PathBuf>,
}

impl Default for PartnerCenterConfig {
    fn default() -> Self {
        PartnerCenterConfig {
            base_url: "http://127.0.0.1:8092".into(),
            client_id: "coflow-sandbox-app".into(),
            client_secret: "coflow-sandbox-secret".into(),
            refresh_token: "coflow-sandbox-refresh-token".into(),
            users: vec![
                SandboxUser {
                    upn: "admin@coflow-sandbox.onmicrosoft.com".into(),
                    password: "sandbox-admin-password".into(),
                    role: Role::ReferralAdmin,
                },
                SandboxUser {
                    upn: "user@coflow-sandbox.onmicrosoft.com".into(),
                    password: "sandbox-user-password".into(),
                    role: Role::ReferralUser,
                },
            ],
            token_ttl: Duration::from_secs(3600),
            page_size: 100,
            create_status: 201,
            delivery_attempts: 10,
            delivery_retry_interval: Duration::from_millis(100),
            delivery_max_interval: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(5),
            expire_after: Duration::from_secs(14 * 24 * 3600),
            validation_events_per_minute: 2,
            organization_id: "1e2a4ff6-145c-46d2-ac2b-11ec80cbc601".into(),
            organization_name: "Contoso Consulting".into(),
            mpn_id: "1209668".into(),
            seed_file: None,
        }
    }
}

impl PartnerCenterConfig {
    /// Defaults, served at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        PartnerCenterConfig { base_url: base_url.into(), ..Default::default() }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum PartnerCenterError {
    /// The signing key or certificate could not be made.
    #[error("cannot create the event signing certificate: {0}")]
    Certificate(String),
    /// The seed file could not be read.
    #[error("cannot read the seed file {path}: {message}")]
    Seed {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The emulator's clock: real time plus an offset tests can advance.
#[derive(Debug, Default)]
pub struct Clock {
    offset: Mutex<SignedDuration>,
}

impl Clock {
    /// Current emulated time.
    pub fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        Timestamp::now().checked_add(offset).unwrap_or_else(|_| Timestamp::now())
    }

    /// Moves emulated time forward.
    pub fn advance(&self, by: SignedDuration) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset = offset.saturating_add(by);
    }

    /// Back to real time.
    pub fn reset(&self) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) = SignedDuration::ZERO;
    }
}

/// Referrals, registration and bookkeeping, behind one lock.
#[derive(Debug, Default)]
pub struct Store {
    /// Referrals by id, in creation order.
    pub referrals: IndexMap<String, Value>,
    /// The partner's webhook registration.
    pub registration: Option<Registration>,
    /// When validation events were posted (for the 2-per-minute throttle).
    pub validation_posts: Vec<Timestamp>,
    /// Create answers by `MS-RequestId`, replayed on retries.
    pub replays: HashMap<String, (u16, Value)>,
    /// Time of the last write, so write times strictly increase.
    pub last_write: Option<Timestamp>,
}

/// The emulator's state.
#[derive(Debug)]
pub struct PartnerCenter {
    config: PartnerCenterConfig,
    /// Emulated time.
    pub clock: Clock,
    store: Mutex<Store>,
    tokens: Mutex<auth::Tokens>,
    deliveries: Deliveries,
    /// Fault rules that also apply to outgoing webhook deliveries (set by the sandbox).
    delivery_faults: OnceLock<Arc<crate::sandbox::faults::Faults>>,
    signer: Result<Arc<Signer>, String>,
    http: reqwest::Client,
}

impl PartnerCenter {
    /// An empty Partner Center; a seed file or certificate problem is logged (use
    /// [`PartnerCenter::try_new`] to get it as an error).
    pub fn new(config: PartnerCenterConfig) -> Arc<Self> {
        let pc = Self::build(config);
        if let Err(error) = pc.load_seed_file() {
            tracing::error!(%error, "Partner Center sandbox starts without seed data");
        }
        pc
    }

    /// A Partner Center with its seed data loaded and its signing certificate made.
    pub fn try_new(config: PartnerCenterConfig) -> Result<Arc<Self>, PartnerCenterError> {
        let pc = Self::build(config);
        if let Err(message) = &pc.signer {
            return Err(PartnerCenterError::Certificate(message.clone()));
        }
        pc.load_seed_file()?;
        Ok(pc)
    }

    fn build(config: PartnerCenterConfig) -> Arc<Self> {
        // Building a client loads the TLS roots; one per process is enough.
        static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
        let http = HTTP.get_or_init(reqwest::Client::new).clone();
        Arc::new(PartnerCenter {
            config,
            clock: Clock::default(),
            store: Mutex::new(Store::default()),
            tokens: Mutex::new(auth::Tokens::default()),
            deliveries: Deliveries::default(),
            delivery_faults: OnceLock::new(),
            signer: Signer::shared(),
            http,
        })
    }

    fn load_seed_file(&self) -> Result<(), PartnerCenterError> {
        let Some(path) = &self.config.seed_file else {
            return Ok(());
        };
        let seed_error = |message: String| PartnerCenterError::Seed { path: path.clone(), message };
        let text = std::fs::read_to_string(path).map_err(|e| seed_error(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| seed_error(e.to_string()))?;
        admin::seed(self, value).map_err(|e| seed_error(e.to_string()))?;
        Ok(())
    }

    /// Its settings.
    pub fn config(&self) -> &PartnerCenterConfig {
        &self.config
    }

    /// Makes webhook deliveries subject to `faults` too: each attempt is decided like a request
    /// `POST <receiver path>`, so `POST /hooks/pc-to-sf: drop times=2` loses two attempts.
    /// Only the first call has an effect.
    pub fn fault_deliveries(&self, faults: Arc<crate::sandbox::faults::Faults>) {
        let _ = self.delivery_faults.set(faults);
    }

    /// The certificate that signs events, DER-encoded.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.signer.as_ref().ok().map(|s| s.der())
    }

    /// URL of the signing certificate, as sent in `X-MS-Certificate-Url`.
    pub fn certificate_url(&self) -> String {
        format!("{}{CERTIFICATE_PATH}", self.config.base())
    }

    fn lock_store(&self) -> MutexGuard<'_, Store> {
        // Handlers never leave the store half-written across an await, so a poisoned lock is safe.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_tokens(&self) -> MutexGuard<'_, auth::Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the signing certificate is served.
pub const CERTIFICATE_PATH: &str = "/cert/pcnotifications-dispatch.microsoft.com.cer";

/// The emulator's HTTP routes.
pub fn router(pc: Arc<PartnerCenter>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/token", post(auth::token_v1))
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token_v2))
        .merge(referrals::routes())
        .merge(webhooks::routes())
        .merge(admin::routes())
        .route(CERTIFICATE_PATH, get(delivery::certificate))
        .route(crate::sandbox::faults::RENDER_PATH, axum::routing::any(admin::render_fault))
        .layer(middleware::from_fn(echo_request_headers))
        .with_state(pc)
}

/// Echoes `MS-CorrelationId`, `MS-RequestId` and `X-Locale` (made up when absent) and adds
/// `Request-ID`, as Partner Center does.
async fn echo_request_headers(req: Request, next: Next) -> Response {
    let echoed = echoed_headers(req.headers());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in echoed {
        if let Some(value) = value {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    // Partner Center names the charset; axum's JSON responses do not.
    if headers.get(header::CONTENT_TYPE).is_some_and(|v| v == "application/json") {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    }
    response
}

fn echoed_headers(request: &axum::http::HeaderMap) -> [(&'static str, Option<HeaderValue>); 4] {
    let header_or = |name: &str, default: String| {
        request.get(name).cloned().or_else(|| HeaderValue::from_str(&default).ok())
    };
    let new_id = || uuid::Uuid::new_v4().to_string();
    [
        ("ms-correlationid", header_or("ms-correlationid", new_id())),
        ("ms-requestid", header_or("ms-requestid", new_id())),
        ("x-locale", header_or("x-locale", "en-US".to_owned())),
        ("request-id", HeaderValue::from_str(&new_id()).ok()),
    ]
}

/// Formats a time as Partner Center does: UTC, seven fractional digits, `Z`.
pub fn format_time(ts: Timestamp) -> String {
    format!("{}.{:07}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"), ts.subsec_nanosecond() / 100)
}

/// Formats a time as event payloads do: seven fractional digits and `+00:00`.
pub fn format_event_time(ts: Timestamp) -> String {
    format!("{}.{:07}+00:00", ts.strftime("%Y-%m-%dT%H:%M:%S"), ts.subsec_nanosecond() / 100)
}
