//! Per-connection limits: how many calls may be in flight and how many may start per window.
//!
//! The Power Automate Salesforce connector allows 900 calls per connection per 60 seconds; a
//! connection here waits for a free slot instead of failing, so a burst is spread out rather than
//! throttled by the service.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// At most this many calls may start per window, when set.
    pub rate: Option<(u32, Duration)>,
}

impl Limits {
    /// The Power Automate Salesforce connector's limit: 900 calls per 60 s, 8 at a time.
    pub const SALESFORCE: Limits = Limits { concurrency: 8, rate: Some((900, Duration::from_secs(60))) };
    /// Partner Center publishes no number; 4 at a time and no call-rate limit.
    pub const PARTNER_CENTER: Limits = Limits { concurrency: 4, rate: None };
}

/// Enforces [`Limits`] for every call of one connection.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    slots: Arc<Semaphore>,
    started: Mutex<VecDeque<Instant>>,
}

/// Held while a call is in flight.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl Limiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Limiter {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            started: Mutex::new(VecDeque::new()),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits until a call may start, then holds a slot until the permit is dropped.
    pub async fn acquire(&self) -> Permit {
        self.wait_for_rate().await;
        // The semaphore is never closed, so acquiring only fails if it were; wait again then.
        loop {
            if let Ok(slot) = self.slots.clone().acquire_owned().await {
                return Permit { _slot: slot };
            }
            tokio::task::yield_now().await;
        }
    }

    async fn wait_for_rate(&self) {
        let Some((calls, window)) = self.limits.rate else { return };
        loop {
            let wait = {
                let mut started = self.started.lock().await;
                let now = Instant::now();
                while started.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    started.pop_front();
                }
                if started.len() < calls as usize {
                    started.push_back(now);
                    return;
                }
                started.front().map(|t| window.saturating_sub(now.duration_since(*t)))
            };
            tokio::time::sleep(wait.unwrap_or(window)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_call_past_the_rate_waits_for_the_window() {
        let limiter = Limiter::new(Limits { concurrency: 10, rate: Some((3, Duration::from_secs(60))) });
        let start = Instant::now();
        for _ in 0..3 {
            drop(limiter.acquire().await);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(limiter.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_bounds_calls_in_flight() {
        let limiter = Arc::new(Limiter::new(Limits { concurrency: 2, rate: None }));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        drop(a);
        assert!(waiting.await.is_ok());
    }
}
