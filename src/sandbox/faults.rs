//! Fault injection shared by both emulators: latency, error rates, throttling, dropped connections.
