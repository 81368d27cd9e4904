//! Partner Center emulator: referrals API, webhook registration and signed event delivery.

use std::sync::Arc;

use axum::Router;

/// Settings of the Partner Center emulator.
#[derive(Debug, Clone)]
pub struct PartnerCenterConfig {
    /// Base URL the emulator is reachable at (used in next links and the certificate URL).
    pub base_url: String,
}

/// The emulator's state.
#[derive(Debug)]
pub struct PartnerCenter {
    config: PartnerCenterConfig,
}

impl PartnerCenter {
    /// An empty Partner Center.
    pub fn new(config: PartnerCenterConfig) -> Arc<Self> {
        Arc::new(PartnerCenter { config })
    }

    /// Its settings.
    pub fn config(&self) -> &PartnerCenterConfig {
        &self.config
    }
}

/// The emulator's HTTP routes.
pub fn router(pc: Arc<PartnerCenter>) -> Router {
    Router::new().with_state(pc)
}
