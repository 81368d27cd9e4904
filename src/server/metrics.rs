//! Prometheus metrics served at `/metrics`: runs, actions, events, triggers, queue, errors.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::ActionResult;
use crate::store::{QueueStats, RunStatus};

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    run_seconds: Family<Labels, Histogram>,
    actions: Family<Labels, Counter>,
    action_seconds: Family<Labels, Histogram>,
    retries: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    triggered: Family<Labels, Counter>,
    connector_calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    reloads: Counter,
    queue_ready: Gauge,
    queue_leased: Gauge,
    queue_dead: Gauge,
    queue_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coflow");
        let runs = Family::<Labels, Counter>::default();
        let run_seconds = Family::<Labels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let actions = Family::<Labels, Counter>::default();
        let action_seconds =
            Family::<Labels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let retries = Family::<Labels, Counter>::default();
        let events = Family::<Labels, Counter>::default();
        let triggered = Family::<Labels, Counter>::default();
        let connector_calls = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let reloads = Counter::default();
        let queue_ready = Gauge::default();
        let queue_leased = Gauge::default();
        let queue_dead = Gauge::default();
        let queue_oldest_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register("runs", "Finished runs by flow and status", runs.clone());
        registry.register("run_duration_seconds", "Run duration by flow", run_seconds.clone());
        registry.register("actions", "Finished top-level actions by action and status", actions.clone());
        registry.register("action_duration_seconds", "Action duration by action", action_seconds.clone());
        registry.register("action_retries", "Retried attempts by action", retries.clone());
        registry.register("events", "Delivered events by flow and outcome", events.clone());
        registry.register("triggered", "Events fired by schedules and polls", triggered.clone());
        registry.register("connector_calls", "Calls made by triggers to connectors", connector_calls.clone());
        registry.register("errors", "Internal errors by kind", errors.clone());
        registry.register("flow_reloads", "Reloads of the flows folder", reloads.clone());
        registry.register("queue_ready", "Work items waiting", queue_ready.clone());
        registry.register("queue_leased", "Work items being run", queue_leased.clone());
        registry.register("queue_dead", "Dead-lettered work items", queue_dead.clone());
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest unfinished work item",
            queue_oldest_seconds.clone(),
        );
        Metrics {
            registry,
            runs,
            run_seconds,
            actions,
            action_seconds,
            retries,
            events,
            triggered,
            connector_calls,
            errors,
            reloads,
            queue_ready,
            queue_leased,
            queue_dead,
            queue_oldest_seconds,
        }
    }

    /// A run ended.
    pub fn run_finished(&self, flow: &str, status: RunStatus, took: Duration) {
        self.runs.get_or_create(&vec![("flow", flow.to_string()), ("status", status.to_string())]).inc();
        self.run_seconds.get_or_create(&vec![("flow", flow.to_string())]).observe(took.as_secs_f64());
    }

    /// A top-level action ended.
    pub fn action_finished(&self, action: &str, result: &ActionResult) {
        let labels = vec![("action", action.to_string()), ("status", result.status.as_str().to_string())];
        self.actions.get_or_create(&labels).inc();
        if let (Some(start), Some(end)) = (result.started_at, result.ended_at) {
            let took = end.duration_since(start).as_secs_f64().max(0.0);
            self.action_seconds.get_or_create(&vec![("action", action.to_string())]).observe(took);
        }
        let retries = result.attempts.saturating_sub(1);
        if retries > 0 {
            self.retries.get_or_create(&vec![("action", action.to_string())]).inc_by(u64::from(retries));
        }
    }

    /// An event was delivered to a hook: `accepted`, `duplicate`, `ignored` or `rejected`.
    pub fn event(&self, flow: &str, outcome: &str) {
        self.events.get_or_create(&vec![("flow", flow.to_string()), ("outcome", outcome.to_string())]).inc();
    }

    /// A schedule or poll fired `count` events.
    pub fn triggered(&self, flow: &str, source: &str, count: u64) {
        self.triggered
            .get_or_create(&vec![("flow", flow.to_string()), ("source", source.to_string())])
            .inc_by(count);
    }

    /// A trigger called a connector.
    pub fn connector_call(&self, connector: &str, operation: &str) {
        let labels = vec![("connector", connector.to_string()), ("operation", operation.to_string())];
        self.connector_calls.get_or_create(&labels).inc();
    }

    /// Something failed inside the server.
    pub fn error(&self, kind: &str) {
        self.errors.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    /// The flows folder was reloaded.
    pub fn reloaded(&self) {
        self.reloads.inc();
    }

    /// The exposition text, with the queue figures read just before.
    pub fn render(&self, queue: Option<(QueueStats, jiff::Timestamp)>) -> String {
        if let Some((stats, now)) = queue {
            self.queue_ready.set(i64::try_from(stats.ready).unwrap_or(i64::MAX));
            self.queue_leased.set(i64::try_from(stats.leased).unwrap_or(i64::MAX));
            self.queue_dead.set(i64::try_from(stats.dead).unwrap_or(i64::MAX));
            self.queue_oldest_seconds.set(stats.oldest_age(now).map_or(0.0, |age| age.as_secs_f64()));
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_queue_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.run_finished("hello", RunStatus::Failed, Duration::from_millis(20));
        metrics.event("hello", "accepted");
        let stats = QueueStats { ready: 3, leased: 1, dead: 0, oldest_enqueued_at: None };
        let text = metrics.render(Some((stats, jiff::Timestamp::now())));
        assert!(text.contains(r#"coflow_runs_total{flow="hello",status="failed"} 1"#), "{text}");
        assert!(text.contains(r#"coflow_events_total{flow="hello",outcome="accepted"} 1"#), "{text}");
        assert!(text.contains("coflow_queue_ready 3"), "{text}");
        assert!(text.contains("coflow_run_duration_seconds_bucket"), "{text}");
    }
}
