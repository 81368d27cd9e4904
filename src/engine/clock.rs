//! Wall-clock time for the run record, driven by tokio's clock so paused-time tests see the
//! time their waits took.

use jiff::Timestamp;

/// Where the engine reads the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// A wall clock that advances with `tokio::time`: a fixed start plus tokio's elapsed time.
///
/// Under `tokio::time::pause()` it advances only when tokio's clock does, so timestamps in the
/// run record show exactly the waits the engine made.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `base` now.
    pub fn starting_at(base: Timestamp) -> Self {
        TokioClock { base, start: tokio::time::Instant::now() }
    }

    /// A clock that reads the system time now.
    pub fn system() -> Self {
        Self::starting_at(Timestamp::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.saturating_add(self.start.elapsed()).unwrap_or(self.base)
    }
}
