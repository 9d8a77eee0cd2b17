//! When to try a failed delivery again (mail, back-channel logout notices).

use std::time::Duration;

/// Exponential backoff: `base`, doubling, at most `cap`, for `max_attempts` attempts in all.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1 for the first), or `None` when that
    /// was the last attempt and the delivery should be given up.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        Some(self.base.saturating_mul(factor).min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_then_gives_up() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5),
            max_attempts: 5,
        };
        let waits: Vec<_> = (1..=5).map(|a| b.after(a).map(|d| d.as_secs())).collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4), Some(5), None]);
    }
}
