//! Flow-control window arithmetic (RFC 9113 §6.9) and the token buckets behind the defences.

use std::time::{Duration, Instant};

use crate::frame::MAX_WINDOW_SIZE;

/// A send window: how many bytes we may still send. It may go negative when the peer shrinks
/// SETTINGS_INITIAL_WINDOW_SIZE (§6.9.2), and may never exceed 2^31-1 (§6.9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window(i64);

/// A WINDOW_UPDATE or SETTINGS change would push a window past 2^31-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl Window {
    pub fn new(size: u32) -> Window {
        Window(size.min(MAX_WINDOW_SIZE) as i64)
    }

    /// The window as a signed value, in [-2^31, 2^31-1].
    pub fn get(self) -> i64 {
        self.0
    }

    /// What may be sent now: 0 when the window is negative.
    pub fn available(self) -> u32 {
        self.0.clamp(0, MAX_WINDOW_SIZE as i64) as u32
    }

    /// Applies a WINDOW_UPDATE increment (§6.9.1: past 2^31-1 is an error).
    pub fn increase(&mut self, by: u32) -> Result<(), Overflow> {
        self.adjust(by as i64)
    }

    /// Applies a SETTINGS_INITIAL_WINDOW_SIZE change (§6.9.2), which may be negative.
    pub fn adjust(&mut self, delta: i64) -> Result<(), Overflow> {
        let new = self.0 + delta;
        if new > MAX_WINDOW_SIZE as i64 {
            return Err(Overflow);
        }
        self.0 = new;
        Ok(())
    }

    /// Records bytes sent; callers never send more than [`Window::available`].
    pub fn spend(&mut self, n: u32) {
        debug_assert!(n as i64 <= self.0);
        self.0 -= n as i64;
    }
}

/// A token bucket: `burst` tokens, refilled at `per_second`. A defence takes one token per
/// event and trips when none is left, so short bursts pass and only a sustained rate fails.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: u32) -> TokenBucket {
        TokenBucket { tokens: burst as f64, burst: burst as f64, per_second: per_second as f64, last: None }
    }

    /// Takes one token; `false` when the bucket is empty (the defence trips).
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).min(Duration::from_secs(3600));
            self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_overflow_and_negative() {
        let mut w = Window::new(65_535);
        assert_eq!(w.increase(MAX_WINDOW_SIZE - 65_535), Ok(()));
        assert_eq!(w.increase(1), Err(Overflow));
        w.adjust(-(MAX_WINDOW_SIZE as i64) - 10).unwrap();
        assert_eq!(w.get(), -10);
        assert_eq!(w.available(), 0);
    }

    #[test]
    fn bucket_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 10);
        assert!(b.take(t0));
        assert!(b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
    }
}
