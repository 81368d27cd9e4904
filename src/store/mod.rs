//! Durable storage of events, the work queue, runs and action results.
