//! The DPoP replay cache: every accepted (key thumbprint, jti) pair is remembered until its
//! proof could no longer pass the freshness window. Bounded: when full of live entries it
//! refuses new proofs (fail closed) rather than forgetting old ones.
//!
//! Two caches ([`Partition`]): one for proofs that came with a credential the gateway issued or
//! the owner created (access token, refresh token, pairing string), and a smaller one
//! (`dpop.stranger_replay_capacity`) for proofs anyone can make (device authorization and the
//! device-code polls that follow). Strangers filling theirs never evict or block paired apps.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Entries kept at most (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 500_000;

/// Which cache a proof is remembered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Proofs that came with a credential checked first (paired apps, pairing redemptions).
    Apps,
    /// Proofs with no credential of ours (device authorization, device-code polls).
    Strangers,
}

/// Why a proof was refused by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This key already used this jti.
    Replayed,
    /// Too many live proofs to remember another; try again shortly.
    Full,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<String>,
    /// (expires_at_ms, key) in insertion order; expiry is monotone enough for pruning from the
    /// front (the window is the same for every entry).
    order: VecDeque<(i64, String)>,
}

/// A bounded set of recently seen proofs.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// Records `(jkt, jti)` until `expires_at_ms`; refuses it if already present. Call only after
    /// the proof's signature has been verified, so forged proofs cannot fill the cache.
    pub fn check_and_insert(
        &self,
        jkt: &str,
        jti: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), ReplayError> {
        let key = format!("{jkt}.{jti}");
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((exp, _)) = inner.order.front() {
            if *exp > now_ms {
                break;
            }
            if let Some((_, k)) = inner.order.pop_front() {
                inner.seen.remove(&k);
            }
        }
        if inner.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        inner.seen.insert(key.clone());
        inner.order.push_back((expires_at_ms, key));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.seen.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_per_key_until_it_expires() {
        let c = ReplayCache::new(10);
        assert_eq!(c.check_and_insert("k1", "j", 0, 100), Ok(()));
        assert_eq!(
            c.check_and_insert("k1", "j", 50, 150),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            c.check_and_insert("k2", "j", 50, 150),
            Ok(()),
            "other key, same jti"
        );
        assert_eq!(
            c.check_and_insert("k1", "j", 100, 200),
            Ok(()),
            "expired entries are pruned"
        );
    }

    #[test]
    fn a_full_cache_fails_closed_and_recovers_as_entries_expire() {
        let c = ReplayCache::new(2);
        c.check_and_insert("k", "a", 0, 10).unwrap();
        c.check_and_insert("k", "b", 0, 20).unwrap();
        assert_eq!(c.check_and_insert("k", "c", 5, 30), Err(ReplayError::Full));
        assert_eq!(c.check_and_insert("k", "c", 10, 30), Ok(()));
        assert_eq!(c.len(), 2);
    }
}
