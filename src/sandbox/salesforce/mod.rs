//! Salesforce emulator: OAuth, sObjects, SOQL, composite and collections.

use std::sync::Arc;

use axum::Router;

/// Settings of the Salesforce emulator.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Base URL the emulator is reachable at (the `instance_url` it hands out).
    pub base_url: String,
}

/// The emulator's state.
#[derive(Debug)]
pub struct Salesforce {
    config: SalesforceConfig,
}

impl Salesforce {
    /// An empty org.
    pub fn new(config: SalesforceConfig) -> Arc<Self> {
        Arc::new(Salesforce { config })
    }

    /// Its settings.
    pub fn config(&self) -> &SalesforceConfig {
        &self.config
    }
}

/// The emulator's HTTP routes.
pub fn router(sf: Arc<Salesforce>) -> Router {
    Router::new().with_state(sf)
}
