//! Connections that point at a running sandbox, so flows run against it unchanged.
//!
//! The connection names are the ones the co-sell flows use (`partner_center`, `salesforce`);
//! the credentials are the emulators' own, passed as secrets so they are redacted like real ones.
//! Call limits are raised far above Power Automate's, which would only slow tests and demos.

use std::collections::BTreeMap;

use crate::connectors::config::{self, ConfigErrors, LoadedConnections, MapSecrets};

use super::Sandbox;

impl Sandbox {
    /// The `coflow.yaml` text of connections to this sandbox; secrets are `secret('…')`
    /// references resolved by [`Sandbox::secrets`].
    pub fn connections_yaml(&self) -> String {
        let pc = &self.partner_center_url;
        let sf = &self.salesforce_url;
        let pc_config = self.partner_center.config();
        let sf_config = self.salesforce.config();
        let cert_host = pc.trim_start_matches("http://");
        format!(
            r#"connections:
  partner_center:
    kind: partner_center
    referrals_url: {pc}
    webhooks_url: {pc}
    auth:
      type: refresh_token
      token_url: {pc}/common/oauth2/token
      client_id: {pc_client}
      client_secret: "secret('SANDBOX_PC_CLIENT_SECRET')"
      refresh_token: "secret('SANDBOX_PC_REFRESH_TOKEN')"
    webhook:
      certificate_hosts: ["{cert_host}"]
      allow_http_certificate_urls: true
    limits: {{concurrency: 32}}
  salesforce:
    kind: salesforce
    login_url: {sf}
    auth:
      type: client_credentials
      client_id: {sf_client}
      client_secret: "secret('SANDBOX_SF_CLIENT_SECRET')"
    # The emulators run on loopback; Power Automate's per-connection pace would only slow demos.
    limits: {{concurrency: 32, calls: 1000000, per_seconds: 60}}
"#,
            pc_client = pc_config.client_id,
            sf_client = sf_config.client_id,
        )
    }

    /// The secrets [`Sandbox::connections_yaml`] refers to.
    pub fn secrets(&self) -> MapSecrets {
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "SANDBOX_PC_CLIENT_SECRET".to_string(),
            self.partner_center.config().client_secret.clone(),
        );
        secrets.insert(
            "SANDBOX_PC_REFRESH_TOKEN".to_string(),
            self.partner_center.config().refresh_token.clone(),
        );
        secrets
            .insert("SANDBOX_SF_CLIENT_SECRET".to_string(), self.salesforce.config().client_secret.clone());
        MapSecrets(secrets)
    }

    /// Connections to this sandbox, built and ready for the engine.
    pub fn connections(&self) -> Result<LoadedConnections, ConfigErrors> {
        config::parse(&self.connections_yaml(), "sandbox connections")?.build(&self.secrets())
    }
}
