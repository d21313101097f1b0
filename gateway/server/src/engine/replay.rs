//! The DPoP replay cache: every accepted (key thumbprint, jti) pair is remembered until its
//! proof could no longer pass the freshness window. Bounded: when full of live entries it
//! refuses new proofs (fail closed) rather than forgetting old ones.
//!
//! Two caches ([`Partition`]): one for proofs that came with a credential the gateway issued or
//! the owner created (access token, refresh token, pairing string), and a smaller one
//! (`dpop.stranger_replay_capacity`) for proofs anyone can make (device authorization and the
//! device-code polls that follow). Strangers filling theirs never evict or block paired apps.
//!
//! A pair is remembered as the first 128 bits of its SHA-256 ([`Seen`]), not as its text: at
//! thousands of proofs a second and a 60-second window, the cache holds hundreds of thousands of
//! them, and the text (kept twice, for the lookup and for the expiry order) cost about 250 bytes
//! each, where the digest costs about 50. A digest never lets a replay through (the same pair
//! always gives the same digest); two different pairs sharing one would refuse the second as a
//! replay, which takes about 2^64 proofs of one's own to bring about, and never touches another
//! key's proofs by chance (2^-128 a pair).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Entries kept at most (about 50 bytes each).
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

/// What is remembered of one (key thumbprint, jti) pair: the first 128 bits of the SHA-256 of
/// `jkt`, a `.` and `jti` (a thumbprint is base64url, so the `.` separates the two unambiguously).
type Seen = u128;

fn seen(jkt: &str, jti: &str) -> Seen {
    let digest = Sha256::new()
        .chain_update(jkt.as_bytes())
        .chain_update(b".")
        .chain_update(jti.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// Below this many live entries a cache never gives memory back.
const SHRINK_FLOOR: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<Seen>,
    /// (expires_at_ms, pair) in insertion order; expiry is monotone enough for pruning from the
    /// front (the window is the same for every entry).
    order: VecDeque<(i64, Seen)>,
}

impl Inner {
    /// Forgets the pairs expired at `now_ms`; gives memory back after a burst (tables more than
    /// four times larger than what they hold).
    fn prune(&mut self, now_ms: i64) {
        while let Some((exp, _)) = self.order.front() {
            if *exp > now_ms {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
        let live = self.seen.len().max(SHRINK_FLOOR);
        if self.seen.capacity() > 4 * live {
            self.seen.shrink_to(2 * live);
            self.order.shrink_to(2 * live);
        }
    }
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
        let key = seen(jkt, jti);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.prune(now_ms);
        if inner.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        inner.seen.insert(key);
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

    #[test]
    fn the_separator_keeps_pairs_apart_and_a_burst_gives_its_memory_back() {
        assert_ne!(seen("ab", "c"), seen("a", "bc"));
        assert_eq!(seen("k", "j"), seen("k", "j"));
        let c = ReplayCache::new(1_000_000);
        for i in 0..100_000 {
            c.check_and_insert("k", &i.to_string(), 0, 10).unwrap();
        }
        let burst = c.inner.lock().unwrap().seen.capacity();
        c.check_and_insert("k", "after", 10, 20).unwrap();
        let inner = c.inner.lock().unwrap();
        assert_eq!(inner.seen.len(), 1);
        assert!(
            inner.seen.capacity() <= 2 * SHRINK_FLOOR * 2 && inner.seen.capacity() < burst,
            "{} after a burst of {burst}",
            inner.seen.capacity()
        );
    }
}
