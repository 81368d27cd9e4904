//! Azure AD token endpoint as Partner Center clients use it, and the bearer check of every API call.
//!
//! Tokens are bound to one audience, like real ones: the Referrals API wants
//! `https://api.partner.microsoft.com`, webhook registration wants
//! `https://api.partnercenter.microsoft.com`. Refresh tokens are not bound to an audience (Azure AD
//! multi-resource refresh tokens), so one refresh token serves both.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

use super::{
    PartnerCenter,
    error::{ApiError, TokenError},
};

/// Token audience of the Referrals API.
pub const REFERRALS_RESOURCE: &str = "https://api.partner.microsoft.com";
/// Token audience of the Partner Center REST API (webhook registration).
pub const REST_RESOURCE: &str = "https://api.partnercenter.microsoft.com";

/// A Partner Center role a sandbox user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Creates, updates and views every referral.
    ReferralAdmin,
    /// Reads only the referrals whose team includes the user.
    ReferralUser,
}

/// A user who can sign in with the password grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxUser {
    /// Sign-in name, also the e-mail matched against a referral's team.
    pub upn: String,
    /// Password for the password grant.
    pub password: String,
    /// Referrals role.
    pub role: Role,
}

/// Who is calling, as established by the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The signed-in user; `None` for app-only tokens.
    pub user: Option<(String, Role)>,
}

impl Caller {
    /// Whether the caller may write referrals.
    pub fn can_write(&self) -> bool {
        matches!(self.user, Some((_, Role::ReferralAdmin)))
    }

    /// The e-mail a Referral User must appear with in a referral's team, if restricted.
    pub fn restricted_to(&self) -> Option<&str> {
        match &self.user {
            Some((upn, Role::ReferralUser)) => Some(upn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct IssuedToken {
    audience: &'static str,
    user: Option<(String, Role)>,
    expires_at: Timestamp,
}

/// Issued access and refresh tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    access: HashMap<String, IssuedToken>,
    refresh: HashMap<String, String>,
}

/// Which token endpoint version answered: v1 returns numbers as strings and echoes `resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// `POST /{tenant}/oauth2/token` (Azure AD v1).
pub async fn token_v1(
    State(pc): State<Arc<PartnerCenter>>,
    Path(tenant): Path<String>,
    body: String,
) -> Response {
    issue(&pc, &tenant, &body, Version::V1)
        .map(IntoResponse::into_response)
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /{tenant}/oauth2/v2.0/token` (Microsoft identity platform v2).
pub async fn token_v2(
    State(pc): State<Arc<PartnerCenter>>,
    Path(tenant): Path<String>,
    body: String,
) -> Response {
    issue(&pc, &tenant, &body, Version::V2)
        .map(IntoResponse::into_response)
        .unwrap_or_else(IntoResponse::into_response)
}

fn issue(
    pc: &PartnerCenter,
    tenant: &str,
    body: &str,
    version: Version,
) -> Result<Json<serde_json::Value>, TokenError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let grant = field("grant_type").ok_or_else(|| {
        TokenError::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    })?;
    check_client(pc, field("client_id"), field("client_secret"))?;
    let audience = audience(version, field("resource"), field("scope"))?;
    let (user, refreshable) = match grant {
        "client_credentials" => (None, false),
        "password" => (Some(check_password(pc, field("username"), field("password"))?), true),
        "refresh_token" => (Some(check_refresh(pc, field("refresh_token"))?), true),
        other => {
            return Err(TokenError::new(
                "unsupported_grant_type",
                70003,
                format!(
                    "The app requested an unsupported grant type '{other}'; use client_credentials, password or refresh_token."
                ),
            ));
        }
    };
    let now = pc.clock.now();
    let ttl = SignedDuration::try_from(pc.config.token_ttl).unwrap_or(SignedDuration::from_hours(1));
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    let access = mint_jwt(tenant, audience, user.as_ref(), now, expires_at);
    let mut tokens = pc.lock_tokens();
    tokens.access.insert(access.clone(), IssuedToken { audience, user: user.clone(), expires_at });
    let refresh = match (&user, refreshable) {
        (Some((upn, _)), true) => {
            let token = format!("0.sandbox.{}", uuid::Uuid::new_v4().simple());
            tokens.refresh.insert(token.clone(), upn.clone());
            Some(token)
        }
        _ => None,
    };
    drop(tokens);
    Ok(Json(token_body(version, audience, access, refresh, now, expires_at, ttl)))
}

fn token_body(
    version: Version,
    audience: &str,
    access: String,
    refresh: Option<String>,
    now: Timestamp,
    expires_at: Timestamp,
    ttl: SignedDuration,
) -> serde_json::Value {
    let seconds = ttl.as_secs();
    let mut body = match version {
        // The v1 endpoint returns its numeric fields as strings.
        Version::V1 => json!({
            "token_type": "Bearer",
            "expires_in": seconds.to_string(),
            "ext_expires_in": seconds.to_string(),
            "expires_on": expires_at.as_second().to_string(),
            "not_before": now.as_second().to_string(),
            "resource": audience,
            "access_token": access,
        }),
        Version::V2 => json!({
            "token_type": "Bearer",
            "scope": format!("{audience}/user_impersonation"),
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": access,
        }),
    };
    if let (Some(refresh), Some(map)) = (refresh, body.as_object_mut()) {
        map.insert("refresh_token".into(), refresh.into());
    }
    body
}

fn check_client(pc: &PartnerCenter, client_id: Option<&str>, secret: Option<&str>) -> Result<(), TokenError> {
    let client_id = client_id.ok_or_else(|| {
        TokenError::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    })?;
    if client_id != pc.config.client_id {
        return Err(TokenError::new(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory."),
        ));
    }
    if secret != Some(pc.config.client_secret.as_str()) {
        return Err(TokenError::new(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
        ));
    }
    Ok(())
}

fn audience(
    version: Version,
    resource: Option<&str>,
    scope: Option<&str>,
) -> Result<&'static str, TokenError> {
    let requested = match version {
        Version::V1 => resource.map(str::to_owned),
        Version::V2 => scope.and_then(|scope| {
            scope
                .split_whitespace()
                .find(|s| s.starts_with("https://"))
                .map(|s| s.rsplit_once('/').map_or(s, |(aud, _)| aud).to_owned())
        }),
    };
    let requested = requested.ok_or_else(|| match version {
        Version::V1 => TokenError::new("invalid_request", 900144, "The request body must contain the following parameter: 'resource'."),
        Version::V2 => TokenError::new("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid; use https://api.partner.microsoft.com/.default."),
    })?;
    match requested.trim_end_matches('/') {
        REFERRALS_RESOURCE => Ok(REFERRALS_RESOURCE),
        REST_RESOURCE => Ok(REST_RESOURCE),
        other => Err(TokenError::new(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {other} was not found in the tenant; use {REFERRALS_RESOURCE} or {REST_RESOURCE}."
            ),
        )),
    }
}

fn check_password(
    pc: &PartnerCenter,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<(String, Role), TokenError> {
    pc.config
        .users
        .iter()
        .find(|u| Some(u.upn.as_str()) == username && Some(u.password.as_str()) == password)
        .map(|u| (u.upn.clone(), u.role))
        .ok_or_else(|| {
            TokenError::new(
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        })
}

fn check_refresh(pc: &PartnerCenter, token: Option<&str>) -> Result<(String, Role), TokenError> {
    let invalid = || {
        TokenError::new(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid (refresh_token).",
        )
    };
    let token = token.ok_or_else(invalid)?;
    let upn = if token == pc.config.refresh_token {
        pc.config.users.first().map(|u| u.upn.clone())
    } else {
        pc.lock_tokens().refresh.get(token).cloned()
    }
    .ok_or_else(invalid)?;
    pc.config.users.iter().find(|u| u.upn == upn).map(|u| (u.upn.clone(), u.role)).ok_or_else(invalid)
}

/// A token that looks like Azure AD's (three base64url parts); the last part is random, not a
/// signature, because only this emulator reads it.
fn mint_jwt(
    tenant: &str,
    audience: &str,
    user: Option<&(String, Role)>,
    now: Timestamp,
    expires_at: Timestamp,
) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"typ": "JWT", "alg": "RS256"});
    let mut claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now.as_second(),
        "nbf": now.as_second(),
        "exp": expires_at.as_second(),
        "appid": "coflow-sandbox",
        "tid": tenant,
        "uti": uuid::Uuid::new_v4().simple().to_string(),
    });
    if let (Some((upn, role)), Some(map)) = (user, claims.as_object_mut()) {
        map.insert("upn".into(), upn.clone().into());
        map.insert("roles".into(), json!([format!("{role:?}")]));
    }
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(uuid::Uuid::new_v4().as_bytes())
    )
}

/// Checks the bearer token of an API call against the audience the API requires.
pub fn authenticate(
    pc: &PartnerCenter,
    headers: &HeaderMap,
    audience: &'static str,
) -> Result<Caller, ApiError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ApiError::Unauthorized(
            "Authorization header is missing; send `Authorization: Bearer <access token>`.".into(),
        )
    })?;
    let token =
        value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim).ok_or_else(
            || ApiError::Unauthorized("The Authorization header must use the Bearer scheme.".into()),
        )?;
    let issued = pc
        .lock_tokens()
        .access
        .get(token)
        .cloned()
        .ok_or_else(|| ApiError::Unauthorized("The access token is invalid.".into()))?;
    if issued.expires_at <= pc.clock.now() {
        return Err(ApiError::Unauthorized(
            "The access token has expired; get a new one with the refresh token.".into(),
        ));
    }
    if issued.audience != audience {
        return Err(ApiError::Unauthorized(format!(
            "The access token was issued for {}; this API requires a token for {audience}.",
            issued.audience
        )));
    }
    if audience == REFERRALS_RESOURCE && issued.user.is_none() {
        return Err(ApiError::Forbidden(
            "The Referrals API accepts App+User tokens only; sign in a user with the Referral Admin or Referral User role.".into(),
        ));
    }
    Ok(Caller { user: issued.user })
}

impl Tokens {
    /// Forgets every issued token.
    pub fn clear(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }
}
