//! Capped exponential backoff with jitter, for reconnecting to a store.

use std::time::Duration;

/// Delays between reconnection attempts: doubling from `initial` up to `max`, each delay drawn
/// at random from its upper half ("equal jitter"), so that many instances that lost the same
/// server do not all come back at the same instant, while none retries sooner than half the
/// nominal delay.
///
/// ```
/// use feature_store::Backoff;
/// use std::time::Duration;
///
/// let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// let first = b.next_delay();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// for _ in 0..20 {
///     assert!(b.next_delay() <= Duration::from_secs(5));
/// }
/// b.reset(); // after a successful reconnect
/// assert!(b.next_delay() <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial` and never exceeds `max` (`initial` is raised to 1 ms when zero).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The nominal (un-jittered) delay of the next attempt.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before the next attempt; each call doubles the nominal delay.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        let spread = (nominal - half).as_micros().min(u64::MAX as u128) as u64;
        half + Duration::from_micros(fastrand::u64(0..=spread))
    }

    /// Back to `initial`, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_stays_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut nominal = Duration::from_millis(100);
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{d:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
            nominal = (nominal * 2).min(Duration::from_secs(2));
        }
        assert_eq!(b.nominal(), Duration::from_secs(2));
    }

    #[test]
    fn jitter_spreads_instances() {
        let delays: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
                b.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 10,
            "50 instances drew only {} distinct delays",
            delays.len()
        );
    }

    #[test]
    fn reset_and_huge_attempt_counts() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(30));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(b.attempts(), 1000);
        b.reset();
        assert_eq!(b.nominal(), Duration::from_millis(1));
    }
}
