//! Login throttling: per account and per client address, in memory.
//!
//! Limits apply to the address *typed*, whether or not an account has it, so the answer
//! ("too many attempts") never reveals which addresses exist. Counters are per process; with
//! several replicas the effective limit is multiplied by their number, which still bounds
//! guessing to a handful of attempts per minute.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Throttle {
    window: Duration,
    per_account: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    pub fn new(window: Duration, per_account: u32, per_ip: u32) -> Throttle {
        Throttle {
            window,
            per_account,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, key: &str) -> u32 {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(key) {
            Some((start, n)) if start.elapsed() < self.window => *n,
            _ => 0,
        }
    }

    /// Whether another attempt for this account from this address may be checked now.
    pub fn allowed(&self, account: &str, ip: &str) -> bool {
        self.count(&format!("a:{}", account.to_ascii_lowercase())) < self.per_account
            && self.count(&format!("i:{ip}")) < self.per_ip
    }

    pub fn failed(&self, account: &str, ip: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Keep the map from growing without bound under a spray of addresses.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        for key in [
            format!("a:{}", account.to_ascii_lowercase()),
            format!("i:{ip}"),
        ] {
            let entry = map.entry(key).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= self.window {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
        }
    }

    pub fn succeeded(&self, account: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&format!("a:{}", account.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_ip() {
        let t = Throttle::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(t.allowed("a@x.org", "1.1.1.1"));
            t.failed("A@x.org", "1.1.1.1");
        }
        assert!(!t.allowed("a@x.org", "2.2.2.2"), "account limit");
        assert!(t.allowed("b@x.org", "1.1.1.1"));
        t.failed("b@x.org", "1.1.1.1");
        t.failed("c@x.org", "1.1.1.1");
        assert!(!t.allowed("d@x.org", "1.1.1.1"), "ip limit");
        t.succeeded("a@x.org");
        assert!(t.allowed("a@x.org", "3.3.3.3"));
    }
}
