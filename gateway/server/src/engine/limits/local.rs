//! The in-process backend's rates and concurrency: governor GCRA limiters keyed per grant, and per-grant in-flight counters.
//!
//! # Rates
//!
//! One governor `RateLimiter` per distinct quota (kind, emission interval, burst); grants
//! with the same limit share a limiter. Governor's clock is driven by the callers' `now_ms`
//! (the largest seen, so it never runs backwards), which keeps every decision identical to
//! the pure [`pairgate_policy::Gcra`] and testable. The state store is ours and shared by
//! every limiter: one map of theoretical arrival times (unix nanoseconds) keyed by grant and
//! kind, not by quota. So a grant whose policy changes keeps its state under the new limit
//! (a lowered rate refuses the next request if the grant's recent requests already use it up),
//! exactly as the Redis backend, whose keys are per grant and kind too. The map also lets
//! [`Rates::peek`] read a grant's state without admitting anything, and lets a settlement
//! charge tokens beyond the burst ([`Rates::charge`]), which governor's API cannot express.
//! [`Rates::prune`] drops states in the past (indistinguishable from fresh ones under any
//! quota) and limiters no check holds, so memory is bounded by the grants active recently.
//!
//! # Concurrency
//!
//! A counting semaphore per grant ([`Inflight`]): a permit increments the grant's count if
//! it is below `max_concurrent` and decrements it when dropped; a grant with nothing in
//! flight has no entry.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use pairgate_policy::Gcra;

use super::plan::{RateCheck, RateKind};

const NS_PER_MS: u64 = 1_000_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(NS_PER_MS)
}

/// Governor's clock: the largest `now_ms` any caller passed, in unix nanoseconds. Reads 0
/// until armed, so a limiter's start instant is the unix epoch and the stored states are
/// plain unix nanoseconds.
#[derive(Debug)]
struct CallerClock {
    now_ns: Arc<AtomicU64>,
    armed: AtomicBool,
}

impl Clock for CallerClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        if self.armed.load(Ordering::Acquire) {
            Nanos::from(self.now_ns.load(Ordering::Acquire))
        } else {
            Nanos::from(0)
        }
    }
}

type Tats = Arc<Mutex<HashMap<String, u64>>>;

/// Governor state store: `grant:kind` -> theoretical arrival time (unix ns).
#[derive(Debug, Default, Clone)]
struct TatStore(Tats);

impl StateStore for TatStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = lock(&self.0);
        let old = map.get(key).map(|&v| Nanos::from(v));
        let (out, new) = f(old)?;
        map.insert(key.clone(), new.as_u64());
        Ok(out)
    }
}

type QuotaLimiter = RateLimiter<String, TatStore, CallerClock, NoOpMiddleware<Nanos>>;

type QuotaKey = (RateKind, u64, u32);

/// Every governor limiter of one gateway, the clock and the state they share.
#[derive(Debug, Default)]
pub struct Rates {
    now_ns: Arc<AtomicU64>,
    limiters: Mutex<HashMap<QuotaKey, Arc<QuotaLimiter>>>,
    tats: Tats,
}

/// The state key of one grant's rate of one kind (the same whatever the limit).
fn state_key(grant: &str, kind: RateKind) -> String {
    format!("{grant}:{}", kind.as_str())
}

/// A governor check that did not admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// Milliseconds to wait (`u64::MAX`: never).
    pub retry_ms: u64,
}

impl Rates {
    /// Moves the shared clock to `now_ms` if that is later; returns the clock in ms.
    pub fn observe(&self, now_ms: i64) -> i64 {
        let ns = ms_to_ns(now_ms);
        let prev = self.now_ns.fetch_max(ns, Ordering::AcqRel);
        i64::try_from(prev.max(ns) / NS_PER_MS).unwrap_or(i64::MAX)
    }

    fn limiter(&self, check: &RateCheck) -> Option<Arc<QuotaLimiter>> {
        let key = (
            check.kind,
            check.gcra.emission_interval_us,
            check.gcra.burst,
        );
        let mut map = lock(&self.limiters);
        if let Some(l) = map.get(&key) {
            return Some(l.clone());
        }
        let burst = NonZeroU32::new(check.gcra.burst)?;
        let quota = Quota::with_period(Duration::from_micros(check.gcra.emission_interval_us))?
            .allow_burst(burst);
        let store = TatStore(self.tats.clone());
        let clock = CallerClock {
            now_ns: self.now_ns.clone(),
            armed: AtomicBool::new(false),
        };
        let limiter = RateLimiter::new(quota, store, clock);
        limiter.clock().armed.store(true, Ordering::Release);
        let l = Arc::new(limiter);
        map.insert(key, l.clone());
        Some(l)
    }

    /// The stored state of `grant` for `check`'s kind, in µs (`None`: fresh).
    pub fn peek(&self, grant: &str, check: &RateCheck) -> Option<i64> {
        let tat = lock(&self.tats).get(&state_key(grant, check.kind)).copied();
        tat.map(|ns| i64::try_from(ns / 1000).unwrap_or(i64::MAX))
    }

    /// Admits `check.cost` units for `grant` through governor at the clock's time.
    pub fn admit(&self, grant: &str, check: &RateCheck) -> Result<(), Denied> {
        let Some(cost) = NonZeroU32::new(check.cost) else {
            return Ok(());
        };
        let Some(l) = self.limiter(check) else {
            return Err(Denied { retry_ms: u64::MAX });
        };
        match l.check_key_n(&state_key(grant, check.kind), cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let now = Nanos::from(self.now_ns.load(Ordering::Acquire));
                let wait_ns = not_until.earliest_possible().saturating_sub(now).as_u64();
                Err(Denied {
                    retry_ms: wait_ns.div_ceil(NS_PER_MS),
                })
            }
            Err(_insufficient) => Err(Denied { retry_ms: u64::MAX }),
        }
    }

    /// Charges `units` more to `grant` without a limit check (usage above the estimate,
    /// reported at settlement): the state may go beyond the burst, so later requests wait.
    pub fn charge(&self, grant: &str, gcra: &Gcra, units: u64) {
        let now = self.now_ns.load(Ordering::Acquire);
        let add = gcra
            .emission_interval_us
            .saturating_mul(1000)
            .saturating_mul(units);
        let key = state_key(grant, RateKind::TokensPerMinute);
        let mut tats = lock(&self.tats);
        let tat = tats.get(&key).copied().unwrap_or(now).max(now);
        tats.insert(key, tat.saturating_add(add));
    }

    /// Drops states in the past (a theoretical arrival time before now is the same as none,
    /// under any quota) and limiters no check holds (they keep no state of their own). Returns
    /// the number of keys still held.
    pub fn prune(&self) -> usize {
        let now = self.now_ns.load(Ordering::Acquire);
        let mut map = lock(&self.limiters);
        // strong count 1: only the map holds it, so no check can be using it right now
        map.retain(|_, l| Arc::strong_count(l) > 1);
        drop(map);
        let mut tats = lock(&self.tats);
        tats.retain(|_, tat| *tat > now);
        tats.shrink_to_fit();
        tats.len()
    }

    /// Keys held (for metrics and tests).
    pub fn keys(&self) -> usize {
        lock(&self.tats).len()
    }

    /// Limiters held (one per distinct quota in use).
    pub fn limiters(&self) -> usize {
        lock(&self.limiters).len()
    }
}

/// Per-grant in-flight counts.
#[derive(Debug, Default)]
pub struct Inflight {
    counts: Mutex<HashMap<String, u32>>,
}

/// One request in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    inflight: Arc<Inflight>,
    grant: String,
}

impl Inflight {
    /// A permit if `grant` has fewer than `max` requests in flight.
    pub fn try_acquire(self: &Arc<Self>, grant: &str, max: u32) -> Option<Permit> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(grant.to_owned()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(grant);
            }
            return None;
        }
        *n += 1;
        Some(Permit {
            inflight: self.clone(),
            grant: grant.to_owned(),
        })
    }

    /// Requests of `grant` in flight.
    pub fn count(&self, grant: &str) -> u32 {
        lock(&self.counts).get(grant).copied().unwrap_or(0)
    }

    /// Grants with requests in flight.
    pub fn grants(&self) -> usize {
        lock(&self.counts).len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.inflight.counts);
        if let Some(n) = counts.get_mut(&self.grant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.grant);
            }
        }
    }
}
