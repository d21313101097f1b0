//! Failed-attempt lockout for guessable inputs (owner passwords and passkeys, pairing strings,
//! user codes): a fixed-window counter per key, a client address key
//! ([`crate::base::net::client_key`]: IPv4, or the /64 of IPv6) or the acting owner.
//!
//! There is deliberately no global counter: one key's failures never lock out another key, so
//! strangers failing from their own addresses cannot lock the owner out of signing in, nor an
//! app out of redeeming its pairing string. A locked key is refused before any lookup, even
//! with the right secret (guessing cannot go on from there). Memory is bounded: at most
//! [`MAX_KEYS`] keys are counted per window; beyond, new keys are not counted (the limit then
//! degrades to the per-key cost of each guess, never to a lockout of everyone).

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys counted in one window at most (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;

/// Counts failures per key within a window.
#[derive(Debug)]
pub struct Attempts {
    window_ms: i64,
    per_key: u32,
    inner: Mutex<(i64, HashMap<String, u32>)>,
}

impl Attempts {
    pub fn new(window_ms: i64, per_key: u32) -> Attempts {
        Attempts {
            window_ms,
            per_key,
            inner: Mutex::new((0, HashMap::new())),
        }
    }

    fn with<T>(&self, now_ms: i64, f: impl FnOnce(&mut HashMap<String, u32>) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let window = now_ms.div_euclid(self.window_ms);
        if inner.0 != window {
            *inner = (window, HashMap::new());
        }
        f(&mut inner.1)
    }

    /// Whether `key` is locked out; returns the seconds until the window ends.
    pub fn locked(&self, key: &str, now_ms: i64) -> Option<u64> {
        let retry = ((self.window_ms - now_ms.rem_euclid(self.window_ms)) / 1000).max(1) as u64;
        self.with(now_ms, |keys| {
            (keys.get(key).copied().unwrap_or(0) >= self.per_key).then_some(retry)
        })
    }

    /// Counts one use of `key` unless it is at its limit already (check and count are one step,
    /// so concurrent requests cannot all slip under the limit); returns the seconds until the
    /// window ends when refused.
    pub fn take(&self, key: &str, now_ms: i64) -> Result<(), u64> {
        let retry = ((self.window_ms - now_ms.rem_euclid(self.window_ms)) / 1000).max(1) as u64;
        self.with(now_ms, |keys| {
            let n = keys.get(key).copied().unwrap_or(0);
            if n >= self.per_key {
                return Err(retry);
            }
            if keys.len() < MAX_KEYS || n > 0 {
                keys.insert(key.to_string(), n + 1);
            }
            Ok(())
        })
    }

    /// Gives back one use [`Attempts::take`] counted in this window (the action did not happen).
    pub fn give_back(&self, key: &str, now_ms: i64) {
        self.with(now_ms, |keys| {
            if let Some(n) = keys.get_mut(key) {
                *n = n.saturating_sub(1);
            }
        });
    }

    /// Records one failure for `key`.
    pub fn fail(&self, key: &str, now_ms: i64) {
        self.with(now_ms, |keys| {
            if keys.len() < MAX_KEYS || keys.contains_key(key) {
                let n = keys.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_locked_after_its_limit_until_the_window_ends() {
        let a = Attempts::new(60_000, 3);
        for _ in 0..3 {
            assert_eq!(a.locked("ip1", 1_000), None);
            a.fail("ip1", 1_000);
        }
        assert_eq!(a.locked("ip1", 2_000), Some(58));
        assert_eq!(a.locked("ip2", 2_000), None, "other keys are unaffected");
        assert_eq!(a.locked("ip1", 60_000), None, "a new window starts fresh");
    }

    #[test]
    fn take_counts_and_refuses_in_one_step() {
        let a = Attempts::new(60_000, 2);
        assert_eq!(a.take("ip", 0), Ok(()));
        assert_eq!(a.take("ip", 0), Ok(()));
        assert_eq!(a.take("ip", 30_000), Err(30));
        assert_eq!(a.take("other", 30_000), Ok(()));
        a.give_back("ip", 30_000);
        assert_eq!(a.take("ip", 30_000), Ok(()), "a use given back");
        assert_eq!(a.take("ip", 30_000), Err(30));
        assert_eq!(a.take("ip", 60_000), Ok(()), "a new window");
    }

    #[test]
    fn failures_from_many_keys_never_lock_out_a_fresh_key() {
        let a = Attempts::new(60_000, 10);
        for i in 0..10_000 {
            for _ in 0..10 {
                a.fail(&format!("k{i}"), 0);
            }
        }
        assert!(a.locked("k7", 0).is_some());
        assert_eq!(a.locked("fresh", 0), None);
    }

    #[test]
    fn memory_is_bounded_and_counted_keys_stay_locked() {
        let a = Attempts::new(60_000, 1);
        a.fail("first", 0);
        for i in 0..MAX_KEYS + 10 {
            a.fail(&format!("k{i}"), 0);
        }
        assert_eq!(a.inner.lock().unwrap().1.len(), MAX_KEYS);
        assert!(a.locked("first", 0).is_some());
        assert_eq!(a.locked(&format!("k{}", MAX_KEYS + 5), 0), None);
    }
}
