//! The connections file, `coflow.yaml`: which Partner Center tenant and which Salesforce org each
//! named connection talks to, how it signs in, and its limits.
//!
//! ```yaml
//! connections:
//!   partner_center:                      # the name flows use in `connections:`
//!     kind: partner_center
//!     auth:
//!       type: refresh_token              # refresh_token | password | client_credentials
//!       token_url: https://login.microsoftonline.com/common/oauth2/token   # default
//!       client_id: 00000000-0000-0000-0000-000000000000
//!       client_secret: secret('PC_CLIENT_SECRET')
//!       refresh_token: secret('PC_REFRESH_TOKEN')
//!     webhook_auth:                      # optional; defaults to `auth`
//!       type: client_credentials
//!       client_id: 00000000-0000-0000-0000-000000000000
//!       client_secret: secret('PC_CLIENT_SECRET')
//!     referrals_url: https://api.partner.microsoft.com          # default
//!     webhooks_url: https://api.partnercenter.microsoft.com     # default
//!     max_items: 1000                    # cap of list_referrals paging (default 1000)
//!     limits: {concurrency: 4}           # default: 4 at a time, no call-rate limit
//!     webhook:                           # how the webhook trigger checks signatures
//!       certificate_hosts: [3psostorageacct.blob.core.windows.net]   # default
//!       issuer_organization: Microsoft Corporation                   # default
//!       max_age_seconds: 21600           # events older than this are replays (default 6 h)
//!   salesforce:
//!     kind: salesforce
//!     login_url: https://coflow-dev.my.salesforce.com
//!     api_version: "59.0"                # default
//!     auth:
//!       type: jwt_bearer                 # client_credentials | jwt_bearer | refresh_token | password
//!       client_id: 3MVG9...
//!       username: integration@example.com
//!       private_key: secret('SF_JWT_PRIVATE_KEY')    # PEM, RSA
//!       audience: https://login.salesforce.com        # default
//!     limits: {concurrency: 8, calls: 900, per_seconds: 60}      # the defaults
//! ```
//!
//! Credentials are never written in the file: a credential field holds `secret('NAME')`, resolved
//! when the connections are built and kept in a [`Secret`] whose `Debug` prints `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use super::Connections;
use super::limits::Limits;
use super::partner_center::{self, PartnerCenterConnector};
use super::salesforce::{self, SalesforceConnector};

/// A credential value. It prints as `***` and is only read through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where `secret('NAME')` references are looked up.
pub trait SecretSource: Send + Sync {
    /// The value of the secret called `name`, or a message saying why there is none.
    fn lookup(&self, name: &str) -> Result<String, String>;
}

/// The environment, then the secrets file named by `COFLOW_SECRETS_FILE` (as `secret()` in
/// flows reads them); every value read is registered for redaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoflowSecrets;

impl SecretSource for CoflowSecrets {
    fn lookup(&self, name: &str) -> Result<String, String> {
        crate::expr::secrets::secret(name).map_err(|e| e.to_string())
    }
}

/// Secrets given as a map, for tests and embedding.
#[derive(Clone, Default)]
pub struct MapSecrets(pub BTreeMap<String, String>);

impl SecretSource for MapSecrets {
    fn lookup(&self, name: &str) -> Result<String, String> {
        self.0.get(name).cloned().ok_or_else(|| format!("secret '{name}' is not set"))
    }
}

impl fmt::Debug for MapSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// One problem in the connections file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The YAML does not have the expected shape.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file (or `<text>`).
        origin: String,
        /// What serde reported, with line and column.
        message: String,
    },
    /// A value of one connection is wrong.
    #[error("connection `{connection}`: `{field}` {message}")]
    Invalid {
        /// Connection name.
        connection: String,
        /// Dotted path of the field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Every problem found in the connections file, so all can be fixed in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

/// The connections file exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Connections by name.
    #[serde(default)]
    pub connections: IndexMap<String, ConnectionDef>,
}

/// One connection as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectionDef {
    /// A Partner Center tenant.
    PartnerCenter(Box<partner_center::PartnerCenterDef>),
    /// A Salesforce org.
    Salesforce(Box<salesforce::SalesforceDef>),
}

/// Per-connection limits as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    /// Calls in flight at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Calls allowed per window.
    #[serde(default)]
    pub calls: Option<u32>,
    /// Length of the window in seconds.
    #[serde(default)]
    pub per_seconds: Option<u64>,
}

impl LimitsDef {
    /// Limits with the given defaults for what the file leaves out.
    pub fn build(&self, defaults: Limits, cx: &mut BuildContext<'_>) -> Limits {
        let concurrency = self.concurrency.unwrap_or(defaults.concurrency);
        if concurrency == 0 {
            cx.invalid("limits.concurrency", "must be at least 1");
        }
        let rate = match (self.calls, self.per_seconds) {
            (None, None) => defaults.rate,
            (Some(calls), per) => {
                let per = per.or(defaults.rate.map(|(_, d)| d.as_secs())).unwrap_or(60);
                if calls == 0 || per == 0 {
                    cx.invalid("limits", "`calls` and `per_seconds` must be at least 1");
                }
                Some((calls, Duration::from_secs(per)))
            }
            (None, Some(_)) => {
                cx.invalid("limits.per_seconds", "needs `calls` too (e.g. calls: 900, per_seconds: 60)");
                defaults.rate
            }
        };
        Limits { concurrency: concurrency.max(1), rate }
    }
}

/// Collects the problems of one connection while it is built.
pub struct BuildContext<'a> {
    connection: &'a str,
    secrets: &'a dyn SecretSource,
    errors: Vec<ConfigError>,
}

impl<'a> BuildContext<'a> {
    /// A context for the connection called `connection`.
    pub fn new(connection: &'a str, secrets: &'a dyn SecretSource) -> Self {
        BuildContext { connection, secrets, errors: Vec::new() }
    }

    /// Records a problem with `field`.
    pub fn invalid(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            connection: self.connection.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Resolves a `secret('NAME')` reference; a literal or unknown name is recorded as a problem.
    pub fn secret(&mut self, field: &str, reference: &str) -> Option<Secret> {
        let Some(name) = parse_secret_reference(reference) else {
            self.invalid(
                field,
                "must be a secret reference such as secret('NAME'); credentials are never written in coflow.yaml",
            );
            return None;
        };
        match self.secrets.lookup(name) {
            Ok(value) => {
                crate::expr::secrets::register(&value);
                Some(Secret::new(value))
            }
            Err(reason) => {
                self.invalid(field, format!("refers to secret `{name}`: {reason}"));
                None
            }
        }
    }

    /// Resolves an optional secret reference.
    pub fn optional_secret(&mut self, field: &str, reference: Option<&str>) -> Option<Secret> {
        reference.and_then(|r| self.secret(field, r))
    }

    /// Checks that `value` is an absolute http(s) URL and returns it without a trailing slash.
    pub fn url(&mut self, field: &str, value: &str) -> String {
        match url::Url::parse(value) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                value.trim_end_matches('/').to_string()
            }
            _ => {
                self.invalid(field, format!("must be an absolute http(s) URL, got `{value}`"));
                value.to_string()
            }
        }
    }

    /// The problems found so far.
    pub fn finish(self) -> Vec<ConfigError> {
        self.errors
    }
}

/// The name inside `secret('NAME')` (also accepted wrapped in `{{ }}` and with double quotes).
pub fn parse_secret_reference(text: &str) -> Option<&str> {
    let mut inner = text.trim();
    if let Some(rest) = inner.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        inner = rest.trim();
    }
    let args = inner.strip_prefix("secret(")?.strip_suffix(')')?.trim();
    let name = args
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| args.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    valid.then_some(name)
}

/// Connections built from the file, with typed handles for the trigger sources.
#[derive(Debug, Clone, Default)]
pub struct LoadedConnections {
    /// Every connection, for the engine.
    pub connections: Connections,
    /// Partner Center connections by name (webhook verification settings, registration).
    pub partner_center: BTreeMap<String, Arc<PartnerCenterConnector>>,
    /// Salesforce connections by name (the poll trigger).
    pub salesforce: BTreeMap<String, Arc<SalesforceConnector>>,
}

/// Parses the connections file text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ConfigFile { connections: IndexMap::new() });
    }
    serde_yaml::from_str(text)
        .map_err(|e| ConfigError::Syntax { origin: origin.to_string(), message: e.to_string() })
}

/// Reads, parses and builds the connections file at `path`.
pub fn load(path: &Path, secrets: &dyn SecretSource) -> Result<LoadedConnections, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    parse(&text, &path.display().to_string())?.build(secrets)
}

impl ConfigFile {
    /// Builds every connection, resolving secrets; reports all problems at once.
    pub fn build(&self, secrets: &dyn SecretSource) -> Result<LoadedConnections, ConfigErrors> {
        let mut loaded = LoadedConnections::default();
        let mut errors = Vec::new();
        for (name, def) in &self.connections {
            let mut cx = BuildContext::new(name, secrets);
            if !valid_connection_name(name) {
                cx.invalid("name", "must use letters, digits, `-` and `_` only");
            }
            match def {
                ConnectionDef::PartnerCenter(def) => {
                    let settings = def.build(&mut cx);
                    let problems = cx.finish();
                    if problems.is_empty() {
                        let connector = Arc::new(PartnerCenterConnector::new(settings));
                        loaded.connections.insert(name.clone(), connector.clone());
                        loaded.partner_center.insert(name.clone(), connector);
                    }
                    errors.extend(problems);
                }
                ConnectionDef::Salesforce(def) => {
                    let settings = def.build(&mut cx);
                    let problems = cx.finish();
                    if problems.is_empty() {
                        let connector = Arc::new(SalesforceConnector::new(settings));
                        loaded.connections.insert(name.clone(), connector.clone());
                        loaded.salesforce.insert(name.clone(), connector);
                    }
                    errors.extend(problems);
                }
            }
        }
        if errors.is_empty() { Ok(loaded) } else { Err(ConfigErrors(errors)) }
    }
}

fn valid_connection_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_are_recognised() {
        assert_eq!(parse_secret_reference("secret('SF_CLIENT_SECRET')"), Some("SF_CLIENT_SECRET"));
        assert_eq!(parse_secret_reference("{{ secret(\"A_B\") }}"), Some("A_B"));
        assert_eq!(parse_secret_reference("hunter2"), None);
        assert_eq!(parse_secret_reference("secret('a b')"), None);
        assert_eq!(parse_secret_reference("secret()"), None);
    }

    #[test]
    fn secret_prints_as_stars() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn unknown_kind_is_a_syntax_error() {
        let err = parse("connections:\n  x:\n    kind: dynamics\n", "coflow.yaml").unwrap_err();
        assert!(err.to_string().contains("unknown variant `dynamics`"), "{err}");
    }
}
