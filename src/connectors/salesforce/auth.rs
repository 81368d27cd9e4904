//! Salesforce OAuth: client credentials, JWT bearer, refresh token and username-password, all
//! against `{login_url}/services/oauth2/token`. Salesforce sends no lifetime, so a session is
//! used until the REST API answers 401.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connectors::client::{self, CachedToken, Reply};
use crate::connectors::config::{BuildContext, Secret};
use crate::connectors::limits::{Limiter, Limits};
use crate::connectors::{ConnectorError, Effect, HttpClient, HttpResponse};

/// Audience of JWT assertions for production orgs (sandboxes use `https://test.salesforce.com`).
pub const DEFAULT_JWT_AUDIENCE: &str = "https://login.salesforce.com";

/// How long a JWT assertion is valid; Salesforce allows about three minutes.
const JWT_LIFETIME_SECONDS: i64 = 180;

/// Sign-in kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SfAuthKind {
    /// Connected app's own credentials (My Domain login URLs only).
    ClientCredentials,
    /// A JWT signed with the connected app's certificate key, for a pre-authorised user.
    JwtBearer,
    /// A refresh token from an earlier web-server flow.
    RefreshToken,
    /// Username and password (plus security token).
    Password,
}

/// Sign-in as written in `coflow.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SfAuthDef {
    /// Which grant.
    #[serde(rename = "type")]
    pub kind: SfAuthKind,
    /// Connected app consumer key.
    pub client_id: String,
    /// `secret('NAME')` of the consumer secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Salesforce username (`jwt_bearer`, `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// `secret('NAME')` of the password (`password`).
    #[serde(default)]
    pub password: Option<String>,
    /// `secret('NAME')` of the security token appended to the password (`password`).
    #[serde(default)]
    pub security_token: Option<String>,
    /// `secret('NAME')` of the refresh token (`refresh_token`).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `secret('NAME')` of the PEM RSA private key (`jwt_bearer`).
    #[serde(default)]
    pub private_key: Option<String>,
    /// JWT `aud` (`jwt_bearer`; default `https://login.salesforce.com`).
    #[serde(default)]
    pub audience: Option<String>,
}

/// The grant with its credentials.
#[derive(Debug, Clone)]
pub enum SfGrant {
    /// `client_credentials`.
    ClientCredentials {
        /// Consumer secret.
        client_secret: Secret,
    },
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`.
    JwtBearer {
        /// Username the token is for (`sub`).
        username: String,
        /// PEM RSA key signing the assertion.
        private_key: Secret,
        /// `aud` claim.
        audience: String,
    },
    /// `refresh_token`.
    RefreshToken {
        /// The refresh token.
        refresh_token: Secret,
        /// Consumer secret, when the app requires it.
        client_secret: Option<Secret>,
    },
    /// `password`.
    Password {
        /// Username.
        username: String,
        /// Password followed by the security token.
        password: Secret,
        /// Consumer secret.
        client_secret: Secret,
    },
}

/// Resolved sign-in.
#[derive(Debug, Clone)]
pub struct SfAuth {
    /// Token endpoint.
    pub token_url: String,
    /// Consumer key.
    pub client_id: String,
    /// Grant and credentials.
    pub grant: SfGrant,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

impl SfAuthDef {
    /// Resolves secrets and checks the grant's fields; `token_url` comes from the login URL.
    pub fn build(&self, token_url: String, cx: &mut BuildContext<'_>) -> SfAuth {
        if self.client_id.trim().is_empty() {
            cx.invalid("auth.client_id", "must not be empty");
        }
        let empty = || Secret::new(String::new());
        let required = |cx: &mut BuildContext<'_>, field: &str, value: &Option<String>| -> Secret {
            match value.as_deref() {
                Some(reference) => cx.secret(&format!("auth.{field}"), reference).unwrap_or_else(empty),
                None => {
                    cx.invalid(
                        &format!("auth.{field}"),
                        format!("is required for type {}", self.kind_name()),
                    );
                    empty()
                }
            }
        };
        let username = |cx: &mut BuildContext<'_>| {
            let name = self.username.clone().unwrap_or_default();
            if name.trim().is_empty() {
                cx.invalid("auth.username", format!("is required for type {}", self.kind_name()));
            }
            name
        };
        let grant = match self.kind {
            SfAuthKind::ClientCredentials => SfGrant::ClientCredentials {
                client_secret: required(cx, "client_secret", &self.client_secret),
            },
            SfAuthKind::JwtBearer => {
                let username = username(cx);
                let private_key = required(cx, "private_key", &self.private_key);
                if !private_key.expose().is_empty()
                    && jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).is_err()
                {
                    cx.invalid("auth.private_key", "is not a PEM RSA private key");
                }
                let audience = self.audience.clone().unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.to_string());
                SfGrant::JwtBearer { username, private_key, audience }
            }
            SfAuthKind::RefreshToken => SfGrant::RefreshToken {
                refresh_token: required(cx, "refresh_token", &self.refresh_token),
                client_secret: cx.optional_secret("auth.client_secret", self.client_secret.as_deref()),
            },
            SfAuthKind::Password => {
                let username = username(cx);
                let password = required(cx, "password", &self.password);
                let token = cx.optional_secret("auth.security_token", self.security_token.as_deref());
                let client_secret = required(cx, "client_secret", &self.client_secret);
                let joined =
                    format!("{}{}", password.expose(), token.as_ref().map(Secret::expose).unwrap_or(""));
                SfGrant::Password { username, password: Secret::new(joined), client_secret }
            }
        };
        SfAuth { token_url, client_id: self.client_id.clone(), grant }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            SfAuthKind::ClientCredentials => "client_credentials",
            SfAuthKind::JwtBearer => "jwt_bearer",
            SfAuthKind::RefreshToken => "refresh_token",
            SfAuthKind::Password => "password",
        }
    }
}

impl SfAuth {
    /// Gets a new session from the token endpoint (one call).
    pub async fn fetch(&self, http: &HttpClient) -> Result<CachedToken, ConnectorError> {
        let assertion;
        let mut fields: Vec<(&str, &str)> = Vec::new();
        match &self.grant {
            SfGrant::ClientCredentials { client_secret } => {
                fields.push(("grant_type", "client_credentials"));
                fields.push(("client_id", &self.client_id));
                fields.push(("client_secret", client_secret.expose()));
            }
            SfGrant::JwtBearer { username, private_key, audience } => {
                assertion = jwt_assertion(&self.client_id, username, audience, private_key)?;
                fields.push(("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"));
                fields.push(("assertion", assertion.expose()));
            }
            SfGrant::RefreshToken { refresh_token, client_secret } => {
                fields.push(("grant_type", "refresh_token"));
                fields.push(("refresh_token", refresh_token.expose()));
                fields.push(("client_id", &self.client_id));
                if let Some(secret) = client_secret {
                    fields.push(("client_secret", secret.expose()));
                }
            }
            SfGrant::Password { username, password, client_secret } => {
                fields.push(("grant_type", "password"));
                fields.push(("client_id", &self.client_id));
                fields.push(("client_secret", client_secret.expose()));
                fields.push(("username", username));
                fields.push(("password", password.expose()));
            }
        }
        let request = client::form_request(&self.token_url, &fields);
        let unlimited = Limiter::new(Limits { concurrency: 1, rate: None });
        match client::send(http, &unlimited, request, Effect::Read).await? {
            Reply::Answered(response) => parse_session(&response),
            Reply::HeldBack(_) => Err(ConnectorError::Auth("the token request was held back".into())),
        }
    }
}

/// A signed RS256 assertion: `iss` consumer key, `sub` username, `aud`, `exp` now + 3 min.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    key: &Secret,
) -> Result<Secret, ConnectorError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key.expose().as_bytes())
        .map_err(|_| ConnectorError::Auth("the JWT private key is not a PEM RSA key".into()))?;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: jiff::Timestamp::now().as_second() + JWT_LIFETIME_SECONDS,
    };
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &key)
        .map(Secret::new)
        .map_err(|e| ConnectorError::Auth(format!("cannot sign the JWT assertion: {e}")))
}

/// Reads a token answer: `access_token` and `instance_url` are all a session needs.
pub fn parse_session(response: &HttpResponse) -> Result<CachedToken, ConnectorError> {
    let text = |key: &str| {
        response.body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    };
    if !(200..300).contains(&response.status) {
        let error = text("error").unwrap_or_else(|| format!("HTTP {}", response.status));
        let description = text("error_description").unwrap_or_default();
        let message =
            format!("Salesforce token request failed: {error} {description}").trim_end().to_string();
        if response.status == 429 || response.status >= 500 {
            return Err(client::status_error(response, message));
        }
        return Err(ConnectorError::Auth(crate::expr::secrets::redact(&message)));
    }
    let access_token = text("access_token")
        .ok_or_else(|| ConnectorError::Auth("the token endpoint answered without an access_token".into()))?;
    let instance_url = text("instance_url")
        .ok_or_else(|| ConnectorError::Auth("the token endpoint answered without an instance_url".into()))?;
    Ok(CachedToken {
        access_token: Secret::new(access_token),
        expires_at: None,
        instance_url: Some(instance_url.trim_end_matches('/').to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_sample_token_answer_gives_a_session() {
        let body: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/connectors/sf-token.json")).unwrap();
        let session = parse_session(&HttpResponse { status: 200, headers: BTreeMap::new(), body }).unwrap();
        assert_eq!(session.instance_url.as_deref(), Some("https://coflow-dev.my.salesforce.com"));
        assert!(session.access_token.expose().starts_with("00D5g000004Xyz1!"));
        assert!(session.expires_at.is_none());
    }

    #[test]
    fn refused_grants_name_the_oauth_error() {
        let body =
            serde_json::json!({"error": "invalid_grant", "error_description": "authentication failure"});
        let err = parse_session(&HttpResponse { status: 400, headers: BTreeMap::new(), body }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication failed: Salesforce token request failed: invalid_grant authentication failure"
        );
    }

    #[test]
    fn jwt_assertions_carry_the_documented_claims() {
        let pem = include_str!("../../../tests/fixtures/connectors/webhook-signing-key.pem");
        let jwt =
            jwt_assertion("3MVG9", "user@example.com", DEFAULT_JWT_AUDIENCE, &Secret::new(pem)).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine;
        let decode = |p: &str| -> Value {
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap())
                .unwrap()
        };
        assert_eq!(decode(parts[0])["alg"], "RS256");
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "3MVG9");
        assert_eq!(claims["sub"], "user@example.com");
        assert_eq!(claims["aud"], "https://login.salesforce.com");
        let exp = claims["exp"].as_i64().unwrap() - jiff::Timestamp::now().as_second();
        assert!((170..=180).contains(&exp), "{exp}");
    }
}
