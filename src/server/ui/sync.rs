//! `/sync`: what `coflow sync status` shows, as a page. Both systems are read when the page
//! loads (list calls only, nothing written); a connection that is missing or failing is shown
//! with what to do instead of the counts.

use std::sync::Arc;

use axum::extract::State as AxumState;
use minijinja::context;

use super::{UiResult, data, render};
use crate::connectors::HttpClient;
use crate::cosell::status;
use crate::server::State;

/// The sync status page.
pub async fn show(AxumState(state): AxumState<Arc<State>>) -> UiResult {
    // Held back, not sent: the status only reads.
    let http = HttpClient::new(reqwest::Client::new(), true);
    let values = match status::sync_status(state.registry.dir(), &state.connections, &http).await {
        Ok(found) => context! { objects => data(&found.objects) },
        Err(error) => context! { error => error.to_string() },
    };
    render(&state, "sync.html", "Sync status", "sync", values)
}
