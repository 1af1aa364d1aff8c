//! Reconnect delays: exponential back-off with jitter, capped, reset once a
//! connection has proved stable. Sans-IO: the caller supplies the random draw.
//!
//! The first [`FAST_RETRIES`] retries come at the minimum delay (about 1 s), so a
//! camera that reboots or drops off for a few seconds is picked up within a second
//! of its return; after that the delay doubles up to the cap. A 60 s outage costs
//! about fifteen connection attempts with the defaults (1 s, 30 s), then two a
//! minute.

use std::time::Duration;

/// How long a back-end session must stay up before a failure counts as a fresh
/// start (delays go back to the minimum).
pub const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Retries at the minimum delay before the delay starts doubling.
pub const FAST_RETRIES: u32 = 10;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Consecutive failures since the last reset.
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(10));
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt. `jitter` in [0, 1) spreads attempts of
    /// many proxies over [75 %, 100 %] of the nominal delay so they do not poll a
    /// camera in step.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = self.failures.saturating_sub(FAST_RETRIES - 1).min(20);
        self.failures = self.failures.saturating_add(1);
        let nominal = self.min.saturating_mul(1u32 << exp.min(31)).min(self.max);
        let factor = 0.75 + 0.25 * jitter.clamp(0.0, 1.0);
        nominal.mul_f64(factor).max(Duration::from_millis(10))
    }

    /// The connection proved stable: start again from the minimum.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let ms: Vec<u128> = (0..17).map(|_| b.next_delay(1.0).as_millis()).collect();
        let mut want = vec![1000; 10];
        want.extend([2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(ms, want);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(60));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(3));
        for _ in 1..FAST_RETRIES {
            b.next_delay(0.0);
        }
        assert_eq!(b.next_delay(0.5).as_millis(), 7000);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..13 {
            b.next_delay(1.0);
        }
        assert_eq!(b.failures(), 13);
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..10_000 {
            assert!(b.next_delay(1.0) <= Duration::from_secs(30));
        }
    }
}
