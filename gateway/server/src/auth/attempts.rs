//! Failed-attempt lockout for guessable inputs (user codes, pairing strings): a fixed window
//! counter per key plus a global one. Locked-out attempts are refused before any lookup.

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts failures per key within a window.
#[derive(Debug)]
pub struct Attempts {
    window_ms: i64,
    per_key: u32,
    global: u32,
    inner: Mutex<(i64, u32, HashMap<String, u32>)>,
}

impl Attempts {
    pub fn new(window_ms: i64, per_key: u32, global: u32) -> Attempts {
        Attempts {
            window_ms,
            per_key,
            global,
            inner: Mutex::new((0, 0, HashMap::new())),
        }
    }

    fn with<T>(
        &self,
        now_ms: i64,
        f: impl FnOnce(&mut (i64, u32, HashMap<String, u32>)) -> T,
    ) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let window = now_ms.div_euclid(self.window_ms);
        if inner.0 != window {
            *inner = (window, 0, HashMap::new());
        }
        f(&mut inner)
    }

    /// Whether `key` (or everyone) is locked out; returns the seconds until the window ends.
    pub fn locked(&self, key: &str, now_ms: i64) -> Option<u64> {
        let retry = ((self.window_ms - now_ms.rem_euclid(self.window_ms)) / 1000).max(1) as u64;
        self.with(now_ms, |(_, global, keys)| {
            (*global >= self.global || keys.get(key).copied().unwrap_or(0) >= self.per_key)
                .then_some(retry)
        })
    }

    /// Records one failure for `key`.
    pub fn fail(&self, key: &str, now_ms: i64) {
        self.with(now_ms, |(_, global, keys)| {
            *global = global.saturating_add(1);
            if keys.len() < 100_000 || keys.contains_key(key) {
                *keys.entry(key.to_string()).or_insert(0) += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_locked_after_its_limit_until_the_window_ends() {
        let a = Attempts::new(60_000, 3, 100);
        for _ in 0..3 {
            assert_eq!(a.locked("ip1", 1_000), None);
            a.fail("ip1", 1_000);
        }
        assert_eq!(a.locked("ip1", 2_000), Some(58));
        assert_eq!(a.locked("ip2", 2_000), None, "other keys are unaffected");
        assert_eq!(a.locked("ip1", 60_000), None, "a new window starts fresh");
    }

    #[test]
    fn the_global_limit_locks_everyone() {
        let a = Attempts::new(60_000, 100, 5);
        for i in 0..5 {
            a.fail(&format!("k{i}"), 0);
        }
        assert!(a.locked("fresh", 0).is_some());
    }
}
