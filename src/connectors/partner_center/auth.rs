//! Azure AD sign-in for Partner Center: the v1 token endpoint with a refresh token
//! (Secure Application Model), the password grant the Referrals API docs show, or app
//! credentials (accepted by webhook registration only).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::connectors::client::{self, CachedToken, Reply};
use crate::connectors::config::{BuildContext, Secret};
use crate::connectors::limits::{Limiter, Limits};
use crate::connectors::{ConnectorError, Effect, HttpClient, HttpResponse};

use super::DEFAULT_TOKEN_URL;

/// Sign-in kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AadAuthKind {
    /// A user's refresh token (App+User), renewed as Azure AD rotates it.
    RefreshToken,
    /// A user's name and password (App+User, resource-owner password grant).
    Password,
    /// The app's own credentials (app-only).
    ClientCredentials,
}

/// Sign-in as written in `coflow.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AadAuthDef {
    /// Which grant.
    #[serde(rename = "type")]
    pub kind: AadAuthKind,
    /// Token endpoint (default: the Azure AD v1 endpoint of the `common` tenant).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Application (client) id.
    pub client_id: String,
    /// `secret('NAME')` of the client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `secret('NAME')` of the refresh token (`refresh_token`).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// User principal name (`password`).
    #[serde(default)]
    pub username: Option<String>,
    /// `secret('NAME')` of the password (`password`).
    #[serde(default)]
    pub password: Option<String>,
    /// Scope sent with user grants (default `openid`).
    #[serde(default)]
    pub scope: Option<String>,
}

/// The grant, with its credentials.
#[derive(Debug, Clone)]
pub enum AadGrant {
    /// Refresh token; shared between audiences so a rotated token serves both.
    RefreshToken(Arc<Mutex<Secret>>),
    /// Resource-owner password grant.
    Password {
        /// User principal name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// App-only.
    ClientCredentials,
}

/// Resolved sign-in for one token audience.
#[derive(Debug, Clone)]
pub struct AadAuth {
    /// Token endpoint.
    pub token_url: String,
    /// Application id.
    pub client_id: String,
    /// Client secret, when the app has one.
    pub client_secret: Option<Secret>,
    /// Grant and credentials.
    pub grant: AadGrant,
    /// Token audience (`resource`).
    pub resource: String,
    /// Scope sent with user grants.
    pub scope: String,
}

impl AadAuthDef {
    /// Resolves secrets; `field` names this block in problems.
    pub fn build(&self, field: &str, resource: &str, cx: &mut BuildContext<'_>) -> AadAuth {
        let token_url =
            cx.url(&format!("{field}.token_url"), self.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL));
        if self.client_id.trim().is_empty() {
            cx.invalid(&format!("{field}.client_id"), "must not be empty");
        }
        let client_secret =
            cx.optional_secret(&format!("{field}.client_secret"), self.client_secret.as_deref());
        let placeholder = || Secret::new(String::new());
        let grant = match self.kind {
            AadAuthKind::RefreshToken => {
                let token = match self.refresh_token.as_deref() {
                    Some(r) => cx.secret(&format!("{field}.refresh_token"), r),
                    None => {
                        cx.invalid(&format!("{field}.refresh_token"), "is required for type refresh_token");
                        None
                    }
                };
                AadGrant::RefreshToken(Arc::new(Mutex::new(token.unwrap_or_else(placeholder))))
            }
            AadAuthKind::Password => {
                let username = self.username.clone().unwrap_or_default();
                if username.is_empty() {
                    cx.invalid(&format!("{field}.username"), "is required for type password");
                }
                let password = match self.password.as_deref() {
                    Some(r) => cx.secret(&format!("{field}.password"), r),
                    None => {
                        cx.invalid(&format!("{field}.password"), "is required for type password");
                        None
                    }
                };
                AadGrant::Password { username, password: password.unwrap_or_else(placeholder) }
            }
            AadAuthKind::ClientCredentials => {
                if self.client_secret.is_none() {
                    cx.invalid(&format!("{field}.client_secret"), "is required for type client_credentials");
                }
                AadGrant::ClientCredentials
            }
        };
        AadAuth {
            token_url,
            client_id: self.client_id.clone(),
            client_secret,
            grant,
            resource: resource.to_string(),
            scope: self.scope.clone().unwrap_or_else(|| "openid".to_string()),
        }
    }
}

impl AadAuth {
    /// The same sign-in for another audience.
    pub fn for_resource(&self, resource: &str) -> AadAuth {
        AadAuth { resource: resource.to_string(), ..self.clone() }
    }

    /// Gets a new access token from the token endpoint (one call).
    pub async fn fetch(&self, http: &HttpClient) -> Result<CachedToken, ConnectorError> {
        let refresh_token = match &self.grant {
            AadGrant::RefreshToken(current) => {
                Some(current.lock().map(|t| t.clone()).map_err(|_| poisoned())?)
            }
            _ => None,
        };
        let mut fields: Vec<(&str, &str)> =
            vec![("resource", &self.resource), ("client_id", &self.client_id)];
        if let Some(secret) = &self.client_secret {
            fields.push(("client_secret", secret.expose()));
        }
        match (&self.grant, &refresh_token) {
            (AadGrant::RefreshToken(_), Some(token)) => {
                fields.push(("grant_type", "refresh_token"));
                fields.push(("refresh_token", token.expose()));
            }
            (AadGrant::Password { username, password }, _) => {
                fields.push(("grant_type", "password"));
                fields.push(("scope", &self.scope));
                fields.push(("username", username));
                fields.push(("password", password.expose()));
            }
            _ => fields.push(("grant_type", "client_credentials")),
        }
        let request = client::form_request(&self.token_url, &fields);
        // Token calls are not API calls: they bypass the connection's limits.
        let unlimited = Limiter::new(Limits { concurrency: 1, rate: None });
        let response = match client::send(http, &unlimited, request, Effect::Read).await? {
            Reply::Answered(response) => response,
            Reply::HeldBack(_) => return Err(ConnectorError::Auth("the token request was held back".into())),
        };
        let token = parse_token(&response)?;
        if let (AadGrant::RefreshToken(current), Some(rotated)) =
            (&self.grant, response_str(&response.body, "refresh_token"))
        {
            crate::expr::secrets::register(&rotated);
            *current.lock().map_err(|_| poisoned())? = Secret::new(rotated);
        }
        Ok(token)
    }
}

fn poisoned() -> ConnectorError {
    ConnectorError::Auth("the refresh token store was poisoned by an earlier panic".into())
}

fn response_str(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Reads a v1 token answer, whose numbers arrive as strings (`"expires_in": "3600"`).
pub fn parse_token(response: &HttpResponse) -> Result<CachedToken, ConnectorError> {
    if !(200..300).contains(&response.status) {
        return Err(token_error(response));
    }
    let access_token = response_str(&response.body, "access_token")
        .ok_or_else(|| ConnectorError::Auth("the token endpoint answered without an access_token".into()))?;
    let seconds = |key: &str| match response.body.get(key) {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let lifetime = seconds("expires_in")
        .or_else(|| seconds("expires_on").map(|on| on - jiff::Timestamp::now().as_second()));
    let expires_at = lifetime.map(|s| Instant::now() + Duration::from_secs(s.max(0) as u64));
    Ok(CachedToken { access_token: Secret::new(access_token), expires_at, instance_url: None })
}

/// Throttling and outages stay retryable; a refused grant is an authentication error.
fn token_error(response: &HttpResponse) -> ConnectorError {
    let error = response_str(&response.body, "error").unwrap_or_else(|| format!("HTTP {}", response.status));
    let description = response_str(&response.body, "error_description").unwrap_or_default();
    let first_line = description.lines().next().unwrap_or_default();
    let message = format!("Azure AD token request failed: {error} {first_line}").trim_end().to_string();
    if response.status == 429 || response.status >= 500 {
        return client::status_error(response, message);
    }
    ConnectorError::Auth(crate::expr::secrets::redact(&message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn answer(status: u16, body: Value) -> HttpResponse {
        HttpResponse { status, headers: BTreeMap::new(), body }
    }

    #[test]
    fn string_numbers_of_the_v1_endpoint_are_read() {
        let doc = json!({"token_type":"Bearer","expires_in":"3600","ext_expires_in":"3600","expires_on":"1546469802",
            "not_before":"1546465902","resource":"https://api.partner.microsoft.com","access_token":"eyJ0"});
        let token = parse_token(&answer(200, doc)).unwrap();
        assert_eq!(token.access_token.expose(), "eyJ0");
        let left = token.expires_at.unwrap() - Instant::now();
        assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));
    }

    #[test]
    fn refused_grants_are_auth_errors_and_outages_are_retryable() {
        let refused = parse_token(&answer(
            400,
            json!({"error":"invalid_grant","error_description":"AADSTS70000: bad\nTrace"}),
        ))
        .unwrap_err();
        assert!(
            matches!(&refused, ConnectorError::Auth(m) if m == "Azure AD token request failed: invalid_grant AADSTS70000: bad")
        );
        let outage = parse_token(&answer(503, json!({}))).unwrap_err();
        assert!(outage.is_retryable());
    }
}
