//! How long the client waits between connection attempts: exponential backoff with jitter.
//!
//! Attempt `k` (counting from 0 after the last successful connection) waits
//! `min(initial · 2^k, max)`, less a random fraction of up to `jitter` of that, so that the
//! clients of a node that died do not all come back in the same millisecond.

use std::time::Duration;

/// Reconnection delays: exponential from `initial` up to `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 10 s, jitter 0.2.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Start at `initial`, double up to `max` (raised to `initial` if below it); jitter 0.2.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            jitter: 0.2,
        }
    }

    /// Take up to `fraction` (clamped to 0..=1; NaN counts as 0) off each delay at random.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before attempt `attempt` (0-based), jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let base = self.initial.saturating_mul(factor).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let cut = self.jitter * rand::random::<f64>();
        base.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_and_jitter_only_shortens_them() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
        let delays: Vec<u64> = (0..6)
            .map(|k| backoff.delay(k).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
        let jittered = backoff.jitter(0.5);
        for k in 0..100 {
            let d = jittered.delay(k % 5);
            let base = backoff.delay(k % 5);
            assert!(d <= base && d >= base / 2, "{d:?} for {base:?}");
        }
    }
}
