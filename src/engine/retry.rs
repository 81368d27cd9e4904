//! Retry policies (reference §2.5) and `Retry-After`.

use std::time::Duration;

use crate::flow::RetryPolicy;

/// How many retries a policy allows.
pub(crate) fn retry_count(policy: &RetryPolicy) -> u32 {
    match policy {
        RetryPolicy::None => 0,
        RetryPolicy::Fixed { count, .. } | RetryPolicy::Exponential { count, .. } => *count,
    }
}

/// The wait before retry `retry` (1 for the first retry) under `policy`.
///
/// Exponential: uniform in `[max(2^(n-2)·interval, min), min(2^(n-1)·interval, max)]`, with the
/// first retry's lower bound being `min` alone.
pub fn retry_delay(policy: &RetryPolicy, retry: u32) -> Duration {
    match policy {
        RetryPolicy::None => Duration::ZERO,
        RetryPolicy::Fixed { interval, .. } => *interval,
        RetryPolicy::Exponential { interval, min_interval, max_interval, .. } => {
            let scaled = |power: u32| interval.saturating_mul(2u32.saturating_pow(power));
            let low = if retry <= 1 { *min_interval } else { scaled(retry - 2).max(*min_interval) };
            let high = scaled(retry.saturating_sub(1)).min(*max_interval);
            if low >= high {
                return high.max(low.min(*max_interval));
            }
            let millis = rand::random_range(low.as_millis()..=high.as_millis());
            Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exponential() -> RetryPolicy {
        RetryPolicy::Exponential {
            count: 4,
            interval: Duration::from_secs(7),
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(20),
        }
    }

    #[test]
    fn exponential_waits_stay_in_their_window() {
        for _ in 0..50 {
            let first = retry_delay(&exponential(), 1);
            assert!((Duration::from_secs(5)..=Duration::from_secs(7)).contains(&first), "{first:?}");
            let second = retry_delay(&exponential(), 2);
            assert!((Duration::from_secs(7)..=Duration::from_secs(14)).contains(&second), "{second:?}");
            let capped = retry_delay(&exponential(), 4);
            assert!((Duration::from_secs(20)..=Duration::from_secs(20)).contains(&capped), "{capped:?}");
        }
    }

    #[test]
    fn fixed_waits_its_interval() {
        let policy = RetryPolicy::Fixed { count: 2, interval: Duration::from_secs(3) };
        assert_eq!(retry_delay(&policy, 2), Duration::from_secs(3));
        assert_eq!(retry_count(&policy), 2);
    }
}
