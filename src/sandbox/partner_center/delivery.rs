//! Signing and delivering webhook events the way Partner Center does (reference §3.3–3.6).
//!
//! Each event is POSTed to the registered URL with the RSA-SHA256 (PKCS#1 v1.5) signature of the
//! exact body bytes, base64-encoded, in `Authorization: Signature <b64>` (or in `x-ms-signature`
//! when the registration asked for it), plus `X-MS-Certificate-Url` and
//! `X-MS-Signature-Algorithm: rsa-sha256`. A background task makes up to `delivery_attempts`
//! attempts with doubling waits; every attempt is recorded for `GET /__sandbox/deliveries`.
//! When the sandbox's fault rules apply to deliveries (see [`PartnerCenter::fault_deliveries`]),
//! an attempt a rule fires on is recorded with the injected status or error and never sent.

use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use jiff::Timestamp;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SigningKey};
use serde::Serialize;
use serde_json::{Value, json};

use super::{PartnerCenter, format_event_time, format_time};
use crate::sandbox::faults::{InjectedKind, Outcome};

/// The RSA key and self-signed certificate that sign events.
#[derive(Debug)]
pub struct Signer {
    key: KeyPair,
    der: Vec<u8>,
}

impl Signer {
    /// The process's signer, made on first use: RSA key generation is slow enough that every
    /// emulator started by a test suite sharing one key matters.
    pub fn shared() -> Result<Arc<Signer>, String> {
        static SHARED: OnceLock<Result<Arc<Signer>, String>> = OnceLock::new();
        SHARED.get_or_init(|| Signer::generate().map(Arc::new).map_err(|e| e.to_string())).clone()
    }

    /// A fresh 2048-bit RSA key and a certificate for it.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        let mut params = CertificateParams::new(vec!["pcnotifications-dispatch.sandbox.test".into()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "coflow sandbox Partner Center notifications");
        // Receivers check that the issuer names Microsoft Corporation (reference §3.5 step 4).
        name.push(DnType::OrganizationName, "Microsoft Corporation");
        name.push(DnType::OrganizationalUnitName, "coflow sandbox");
        params.distinguished_name = name;
        let certificate = params.self_signed(&key)?;
        Ok(Signer { der: certificate.der().to_vec(), key })
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Base64 RSA-SHA256 signature of `body`.
    pub fn sign(&self, body: &[u8]) -> Result<String, rcgen::Error> {
        let signature = self.key.sign(body)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }
}

/// `GET /cert/pcnotifications-dispatch.microsoft.com.cer`.
pub async fn certificate(State(pc): State<Arc<PartnerCenter>>) -> Response {
    match pc.certificate_der() {
        Some(der) => ([(header::CONTENT_TYPE, "application/pkix-cert")], der.to_vec()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// How a delivery ended, or that it is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Attempts are still being made.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed; Partner Center would park the event in its offline queue.
    Failed,
}

/// One POST to the receiver.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// When it was made.
    pub at: String,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
}

/// One event and its attempts.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Sequence number.
    pub id: u64,
    /// Event name, e.g. `referral-updated`.
    pub event: String,
    /// Receiver URL.
    pub url: String,
    /// The exact body sent.
    pub body: String,
    /// Header carrying the signature: `Authorization` or `x-ms-signature`.
    pub signature_header: String,
    /// Validation correlation id for `test-created` events.
    pub correlation_id: Option<String>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: Vec<Attempt>,
}

/// Every delivery since start or the last reset.
#[derive(Debug, Default)]
pub struct Deliveries {
    list: Mutex<Vec<Delivery>>,
    // Ids keep counting across clears so a task still running never updates a newer record.
    next_id: AtomicU64,
}

impl Deliveries {
    fn lock(&self) -> MutexGuard<'_, Vec<Delivery>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every delivery.
    pub fn all(&self) -> Vec<Delivery> {
        self.lock().clone()
    }

    /// The delivery of a validation event.
    pub fn by_correlation(&self, correlation_id: &str) -> Option<Delivery> {
        self.lock().iter().find(|d| d.correlation_id.as_deref() == Some(correlation_id)).cloned()
    }

    /// Forgets every delivery (running tasks keep going but are no longer recorded).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Delivery)) {
        if let Some(delivery) = self.lock().iter_mut().find(|d| d.id == id) {
            change(delivery);
        }
    }
}

/// An event to deliver.
#[derive(Debug, Clone)]
pub struct Event {
    /// `referral-created`, `referral-updated` or `test-created`.
    pub name: &'static str,
    /// `referral` or `test`.
    pub resource_name: &'static str,
    /// Where the changed resource lives.
    pub resource_uri: String,
    /// When it changed.
    pub changed: Timestamp,
    /// Validation correlation id, for `test-created`.
    pub correlation_id: Option<String>,
}

impl Event {
    /// The event for a created or updated referral; `ResourceUri` uses the webhook host's path
    /// form (`/engagements/v1/...`). A referral another organisation owns (Microsoft's side of a
    /// shared engagement) raises the `related-referral-*` events instead [inferred routing].
    pub fn referral(pc: &PartnerCenter, referral: &Value, created: bool, changed: Timestamp) -> Self {
        let owner = referral.get("organizationId").and_then(Value::as_str);
        let own = owner.is_none_or(|o| o == pc.config.organization_id);
        let name = match (own, created) {
            (true, true) => "referral-created",
            (true, false) => "referral-updated",
            (false, true) => "related-referral-created",
            (false, false) => "related-referral-updated",
        };
        let id = referral.get("id").and_then(Value::as_str).unwrap_or_default();
        Event {
            name,
            resource_name: "referral",
            resource_uri: format!("{}/engagements/v1/referrals/{id}", pc.config.base()),
            changed,
            correlation_id: None,
        }
    }

    /// The body, with keys in the order Partner Center sends them.
    fn body(&self) -> String {
        json!({
            "EventName": self.name,
            "ResourceUri": self.resource_uri,
            "ResourceName": self.resource_name,
            "AuditUri": null,
            "ResourceChangeUtcDate": format_event_time(self.changed),
        })
        .to_string()
    }
}

/// Sends each event to the registered URL when its type is registered.
pub fn emit(pc: &Arc<PartnerCenter>, events: Vec<Event>) {
    let Some(registration) = pc.lock_store().registration.clone() else {
        return;
    };
    for event in events {
        if !registration.events.iter().any(|e| e == event.name) {
            continue;
        }
        let delivery = {
            let mut list = pc.deliveries.lock();
            let delivery = Delivery {
                id: pc.deliveries.next_id.fetch_add(1, Ordering::Relaxed) + 1,
                event: event.name.to_owned(),
                url: registration.url.clone(),
                body: event.body(),
                signature_header: if registration.ms_signature_header {
                    "x-ms-signature".into()
                } else {
                    "Authorization".into()
                },
                correlation_id: event.correlation_id.clone(),
                state: DeliveryState::Pending,
                attempts: Vec::new(),
            };
            list.push(delivery.clone());
            delivery
        };
        tokio::spawn(deliver(pc.clone(), delivery));
    }
}

async fn deliver(pc: Arc<PartnerCenter>, delivery: Delivery) {
    let signature = match &pc.signer {
        Ok(signer) => signer.sign(delivery.body.as_bytes()).map_err(|e| e.to_string()),
        Err(message) => Err(message.clone()),
    };
    let signature = match signature {
        Ok(signature) => format!("Signature {signature}"),
        Err(message) => {
            pc.deliveries.update(delivery.id, |d| {
                d.state = DeliveryState::Failed;
                d.attempts.push(Attempt {
                    attempt: 1,
                    at: format_time(pc.clock.now()),
                    status: None,
                    error: Some(format!("cannot sign: {message}")),
                });
            });
            return;
        }
    };
    let attempts = pc.config.delivery_attempts.max(1);
    for attempt in 1..=attempts {
        if let Some((status, error)) = injected(&pc, &delivery.url).await {
            pc.deliveries.update(delivery.id, |d| {
                d.attempts.push(Attempt { attempt, at: format_time(pc.clock.now()), status, error });
                if attempt == attempts {
                    d.state = DeliveryState::Failed;
                }
            });
            if attempt < attempts {
                tokio::time::sleep(backoff(&pc, attempt)).await;
            }
            continue;
        }
        let outcome = pc
            .http
            .post(&delivery.url)
            .timeout(pc.config.delivery_timeout)
            .header(header::CONTENT_TYPE, "application/json")
            .header(delivery.signature_header.as_str(), signature.as_str())
            .header("X-MS-Certificate-Url", pc.certificate_url())
            .header("X-MS-Signature-Algorithm", "rsa-sha256")
            .body(delivery.body.clone())
            .send()
            .await;
        let (status, error) = match outcome {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(describe(&error))),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        pc.deliveries.update(delivery.id, |d| {
            d.attempts.push(Attempt { attempt, at: format_time(pc.clock.now()), status, error });
            if delivered {
                d.state = DeliveryState::Delivered;
            } else if attempt == attempts {
                d.state = DeliveryState::Failed;
            }
        });
        if delivered {
            return;
        }
        if attempt < attempts {
            tokio::time::sleep(backoff(&pc, attempt)).await;
        }
    }
}

/// What fault injection makes of one delivery attempt: `None` to send it, else the status and
/// error recorded instead (the receiver is never reached). Latency rules only delay it.
async fn injected(pc: &PartnerCenter, url: &str) -> Option<(Option<u16>, Option<String>)> {
    let faults = pc.delivery_faults.get()?;
    let path = url::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_default();
    let decision = faults.decide("POST", &path);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let error = Some("injected by fault rule".to_owned());
    match decision.action? {
        Outcome::Drop => Some((None, Some("the connection was dropped (fault rule)".to_owned()))),
        Outcome::Render(InjectedKind::Status { status, .. }) => Some((Some(status), error)),
        Outcome::Render(InjectedKind::TokenExpired) => Some((Some(401), error)),
    }
}

fn backoff(pc: &PartnerCenter, attempt: u32) -> std::time::Duration {
    let factor = 1u32 << (attempt - 1).min(16);
    pc.config.delivery_retry_interval.saturating_mul(factor).min(pc.config.delivery_max_interval)
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the receiver did not answer in time".into()
    } else if error.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        "the connection failed before an answer".into()
    }
}
