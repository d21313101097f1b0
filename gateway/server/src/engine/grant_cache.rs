//! Grants in memory: the app request path reads a grant and its parsed policy without a database statement.
//!
//! Each entry holds the stored row and its policy parsed once, typed ([`GrantPolicy`]); the
//! policy as a JSON tree (plugin quotas name their fields by JSON pointer) only once a route asks
//! for it, since most grants never need it and it is the largest part of an entry (about 4 KiB
//! for a policy with every check on, against 0.7 KiB typed). An entry is used only while
//! [`Store::change_epoch`] still reads what it read when the entry was loaded, so a revocation,
//! suspension, key rotation or policy edit made anywhere (this process, the owner's CLI on the
//! same SQLite file, another replica on PostgreSQL through `NOTIFY`) takes effect on the next
//! request; and never longer than [`MAX_AGE_MS`], the bound on staleness should a change signal
//! ever be lost. The cache holds at most [`CAPACITY`] grants.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use pairgate_policy::GrantPolicy;
use pairgate_store::{GrantRow, Store, StoreError};

/// Longest an entry is trusted without a reload, whatever the change signal says.
pub const MAX_AGE_MS: i64 = 10_000;
/// Most grants held; past it an arbitrary entry makes room.
pub const CAPACITY: usize = 4096;

/// A grant as the request path uses it.
#[derive(Debug)]
pub struct CachedGrant {
    pub row: GrantRow,
    /// The policy, typed.
    pub policy: GrantPolicy,
    /// The same policy as a JSON tree, parsed from `row.policy` on first use
    /// ([`CachedGrant::policy_json`]).
    policy_json: std::sync::OnceLock<serde_json::Value>,
    /// When `last_used_at` was last written (or read), to write it at most once a minute.
    touched_ms: AtomicI64,
    /// The grant's DPoP key as parsed from its first verified proof: later proofs carrying the
    /// same `jwk` skip decoding it (`VerifyOptions::known_key`). A grant whose key changes is a
    /// new row, so a new entry.
    proof_key: std::sync::OnceLock<pairgate_protocol::KnownKey>,
    epoch: u64,
    loaded_ms: i64,
}

impl CachedGrant {
    /// Parses a stored row's policy once.
    pub fn parse(row: GrantRow, epoch: u64, now_ms: i64) -> Result<CachedGrant, GrantLoadError> {
        let policy: GrantPolicy =
            serde_json::from_str(&row.policy).map_err(|e| GrantLoadError::InvalidPolicy {
                grant: row.id.clone(),
                reason: e.to_string(),
            })?;
        Ok(CachedGrant {
            touched_ms: AtomicI64::new(row.last_used_at.unwrap_or(i64::MIN)),
            row,
            policy,
            policy_json: std::sync::OnceLock::new(),
            proof_key: std::sync::OnceLock::new(),
            epoch,
            loaded_ms: now_ms,
        })
    }

    /// The policy as a JSON tree (what the app is shown, and where plugin quotas are read),
    /// parsed on first use. `row.policy` parsed as a [`GrantPolicy`] when the entry was made, so
    /// it is valid JSON.
    pub fn policy_json(&self) -> &serde_json::Value {
        self.policy_json
            .get_or_init(|| serde_json::from_str(&self.row.policy).unwrap_or_default())
    }

    /// The grant's DPoP key, once a proof by it was verified against the grant's `jkt`.
    pub fn proof_key(&self) -> Option<&pairgate_protocol::KnownKey> {
        self.proof_key.get()
    }

    /// Remembers the key of a proof verified against this grant's `jkt` (the first one wins;
    /// the thumbprint is checked again, so only the grant's own key is ever kept).
    pub fn remember_proof_key(&self, key: &pairgate_protocol::PublicKey) {
        if self.proof_key.get().is_none() {
            let known = pairgate_protocol::KnownKey::new(*key);
            if known.thumbprint() == self.row.jkt {
                let _ = self.proof_key.set(known);
            }
        }
    }

    /// True once per `interval_ms` (and at first use): the caller then records the use.
    pub fn claim_touch(&self, now_ms: i64, interval_ms: i64) -> bool {
        let last = self.touched_ms.load(Ordering::Relaxed);
        last < now_ms - interval_ms
            && self
                .touched_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// A grant could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GrantLoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored policy of grant {grant} is invalid: {reason}")]
    InvalidPolicy { grant: String, reason: String },
}

/// The grants the request path has used recently.
#[derive(Debug, Default)]
pub struct GrantCache {
    entries: std::sync::RwLock<HashMap<String, Arc<CachedGrant>>>,
}

impl GrantCache {
    /// The grant `id` (`None` if unknown), from memory while the change signal and
    /// [`MAX_AGE_MS`] allow, else from the database.
    pub async fn get(
        &self,
        store: &Store,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<Arc<CachedGrant>>, GrantLoadError> {
        let epoch = store.change_epoch();
        if let Some(hit) = self.fresh(id, epoch, now_ms) {
            return Ok(Some(hit));
        }
        let Some(row) = store.get_grant(id).await? else {
            self.write().remove(id);
            return Ok(None);
        };
        let grant = Arc::new(CachedGrant::parse(row, epoch, now_ms)?);
        let mut entries = self.write();
        if entries.len() >= CAPACITY
            && !entries.contains_key(id)
            && let Some(victim) = entries.keys().next().cloned()
        {
            entries.remove(&victim);
        }
        entries.insert(id.to_owned(), Arc::clone(&grant));
        Ok(Some(grant))
    }

    fn fresh(&self, id: &str, epoch: u64, now_ms: i64) -> Option<Arc<CachedGrant>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|g| g.epoch == epoch && (0..MAX_AGE_MS).contains(&(now_ms - g.loaded_ms)))
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<CachedGrant>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Grants held, for `/metrics` and tests.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, policy: &str) -> GrantRow {
        GrantRow {
            id: id.into(),
            app_name: "app".into(),
            policy: policy.into(),
            jkt: "jkt".into(),
            alg: "EdDSA".into(),
            status: "active".into(),
            origin: "pairing".into(),
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_policy_is_parsed_typed_and_as_json_on_demand() {
        let g = CachedGrant::parse(row("g1", r#"{"max_concurrent": 3}"#), 7, 0).unwrap();
        assert_eq!(g.policy.max_concurrent, Some(3));
        assert_eq!(g.policy_json()["max_concurrent"], 3);
        let bad = CachedGrant::parse(row("g2", "{"), 7, 0).unwrap_err();
        assert!(bad.to_string().contains("grant g2"), "{bad}");
    }

    #[test]
    fn a_use_is_recorded_at_most_once_per_interval() {
        let g = CachedGrant::parse(row("g1", "{}"), 0, 0).unwrap();
        assert!(g.claim_touch(1_000_000, 60_000));
        assert!(!g.claim_touch(1_000_001, 60_000));
        assert!(g.claim_touch(1_060_001, 60_000));
    }

    #[test]
    fn an_entry_is_stale_under_another_epoch_or_past_its_age() {
        let cache = GrantCache::default();
        let g = Arc::new(CachedGrant::parse(row("g1", "{}"), 3, 1_000).unwrap());
        cache.write().insert("g1".into(), g);
        assert!(cache.fresh("g1", 3, 1_000 + MAX_AGE_MS - 1).is_some());
        assert!(cache.fresh("g1", 4, 1_001).is_none(), "a grant changed");
        assert!(
            cache.fresh("g1", 3, 1_000 + MAX_AGE_MS).is_none(),
            "too old"
        );
        assert!(cache.fresh("g1", 3, 999).is_none(), "the clock went back");
    }
}
