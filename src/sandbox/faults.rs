//! Fault injection shared by both emulators: latency, error rates, throttling, dropped connections.

use std::sync::Arc;

use axum::Router;

/// Faults currently injected, changeable at run time through the admin endpoint.
#[derive(Debug, Default)]
pub struct Faults {}

impl Faults {
    /// No faults; `seed` makes random choices repeatable.
    pub fn new(seed: u64) -> Arc<Self> {
        let _ = seed;
        Arc::new(Faults {})
    }
}

/// Wraps an emulator's routes so that configured faults apply to them.
pub fn apply(router: Router, faults: Arc<Faults>) -> Router {
    let _ = faults;
    router
}
