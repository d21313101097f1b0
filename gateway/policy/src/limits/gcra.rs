//! GCRA (generic cell rate algorithm): the rate limiter every backend implements identically.
//!
//! # Algorithm
//!
//! State per key: one integer, the *theoretical arrival time* `tat` in **microseconds**
//! since the epoch (absent for a fresh key). Parameters: emission interval `T` (µs per
//! unit of cost), `burst` (units admissible at once). A request of `cost` units at
//! `now_ms`:
//!
//! ```text
//! now     = now_ms * 1000
//! tat     = max(stored_tat or now, now)
//! new_tat = tat + T * cost
//! if new_tat - now <= T * burst:
//!     store new_tat (expire the key after ceil((new_tat - now) / 1000) ms); ALLOW
//! elif cost > burst:
//!     DENY, retry after "never" (u64::MAX ms); state unchanged
//! else:
//!     DENY, retry after ceil((new_tat - T * burst - now) / 1000) ms; state unchanged
//! ```
//!
//! Redis port (`KEYS[1]` = key, `ARGV` = now_ms, T, burst, cost; all values stay below
//! 2^53, so Lua doubles are exact):
//!
//! ```lua
//! local now = tonumber(ARGV[1]) * 1000
//! local t, burst, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
//! local tat = tonumber(redis.call('GET', KEYS[1]) or now)
//! if tat < now then tat = now end
//! local new_tat = tat + t * cost
//! if new_tat - now <= t * burst then
//!   redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
//!   return {1, new_tat}
//! elseif cost > burst then
//!   return {0, -1}
//! else
//!   return {0, math.ceil((new_tat - t * burst - now) / 1000)}
//! end
//! ```
//!
//! Guarantees (property-tested): the total cost admitted between the first and the last
//! admission of any run is at most `burst + elapsed / T`, and a denied request retried
//! exactly `retry_after` later is admitted (one millisecond earlier it is not) if nothing
//! else was admitted meanwhile.
//!
//! # Why microseconds
//!
//! `T = period / n` rounded up; in milliseconds a limit of 40 000 tokens per minute
//! would round 1.5 ms up to 2 ms and lose a quarter of the rate. In microseconds the
//! rounding costs under 1% for any rate up to 1 000 000 per minute. `governor` takes the
//! same values: `Quota::with_period(Duration::from_micros(T)).allow_burst(burst)`.

/// µs per ms.
const US_PER_MS: i128 = 1000;

/// A GCRA limiter configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// Microseconds to replenish one unit of cost (`T`).
    pub emission_interval_us: u64,
    /// Units admissible at once; also the most a single request can cost.
    pub burst: u32,
}

/// A denied request may be retried after this many milliseconds (`u64::MAX`: never,
/// the cost exceeds the burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("rate limited, retry after {ms} ms")]
pub struct RetryAfter {
    /// Milliseconds to wait.
    pub ms: u64,
}

/// Replenish interval (µs, at least 1) and burst for `n_per_period` units per
/// `period_ms`: `(ceil(period_ms * 1000 / n), n)`, the burst saturating at `u32::MAX`.
/// `n = 0` yields `(u64::MAX, 0)`, which admits nothing of positive cost.
pub fn quota(n_per_period: u64, period_ms: u64) -> (u64, u32) {
    if n_per_period == 0 {
        return (u64::MAX, 0);
    }
    let period_us = u128::from(period_ms) * 1000;
    let interval = period_us.div_ceil(u128::from(n_per_period)).max(1);
    (
        u64::try_from(interval).unwrap_or(u64::MAX),
        u32::try_from(n_per_period).unwrap_or(u32::MAX),
    )
}

impl Gcra {
    /// `n` units per `period_ms`, burst `n` (see [`quota`]).
    pub fn per_period(n: u64, period_ms: u64) -> Gcra {
        let (emission_interval_us, burst) = quota(n, period_ms);
        Gcra {
            emission_interval_us,
            burst,
        }
    }

    /// `n` units per minute, burst `n`.
    pub fn per_minute(n: u64) -> Gcra {
        Gcra::per_period(n, 60_000)
    }

    /// `n` units per day, burst `n`.
    pub fn per_day(n: u64) -> Gcra {
        Gcra::per_period(n, 86_400_000)
    }

    /// Admit `cost` units at `now_ms` given the stored `tat_us` (`None` for a fresh key).
    /// `Ok(new_tat_us)` to store; on `Err` the stored state must stay unchanged.
    pub fn check(&self, tat_us: Option<i64>, now_ms: i64, cost: u32) -> Result<i64, RetryAfter> {
        let now = i128::from(now_ms) * US_PER_MS;
        let t = i128::from(self.emission_interval_us);
        let tau = t * i128::from(self.burst);
        let tat = tat_us.map_or(now, i128::from).max(now);
        let new_tat = tat + t * i128::from(cost);
        if new_tat - now <= tau {
            return Ok(i64::try_from(new_tat).unwrap_or(i64::MAX));
        }
        if cost > self.burst {
            return Err(RetryAfter { ms: u64::MAX });
        }
        let wait_us = new_tat - tau - now;
        let ms = (wait_us + US_PER_MS - 1) / US_PER_MS;
        Err(RetryAfter {
            ms: u64::try_from(ms).unwrap_or(u64::MAX),
        })
    }

    /// Milliseconds after which a key with state `tat_us` is back to a full burst (the
    /// state may then be dropped): a TTL for the stored value.
    pub fn ttl_ms(tat_us: i64, now_ms: i64) -> u64 {
        let left = i128::from(tat_us) - i128::from(now_ms) * US_PER_MS;
        u64::try_from((left.max(0) + US_PER_MS - 1) / US_PER_MS).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_table() {
        let cases: &[(u64, u64, (u64, u32))] = &[
            (60, 60_000, (1_000_000, 60)),
            (7, 60_000, (8_571_429, 7)),
            (40_000, 60_000, (1_500, 40_000)),
            (1_000_000, 60_000, (60, 1_000_000)),
            (1, 86_400_000, (86_400_000_000, 1)),
            (u64::MAX, 1, (1, u32::MAX)),
            (0, 60_000, (u64::MAX, 0)),
        ];
        for &(n, period, want) in cases {
            assert_eq!(quota(n, period), want, "{n}/{period}ms");
        }
        assert_eq!(
            Gcra::per_minute(60),
            Gcra {
                emission_interval_us: 1_000_000,
                burst: 60
            }
        );
        assert_eq!(
            Gcra::per_day(24),
            Gcra {
                emission_interval_us: 3_600_000_000,
                burst: 24
            }
        );
    }

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::per_minute(3); // T = 20 s, burst 3
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(g.check(tat, 0, 1).unwrap());
        }
        assert_eq!(tat, Some(60_000_000));
        assert_eq!(g.check(tat, 0, 1), Err(RetryAfter { ms: 20_000 }));
        assert_eq!(g.check(tat, 19_999, 1), Err(RetryAfter { ms: 1 }));
        assert_eq!(g.check(tat, 20_000, 1), Ok(80_000_000));
        assert_eq!(g.check(tat, 20_000, 2), Err(RetryAfter { ms: 20_000 }));
    }

    #[test]
    fn cost_above_burst_is_never_admitted() {
        let g = Gcra::per_minute(10);
        assert_eq!(g.check(None, 0, 11), Err(RetryAfter { ms: u64::MAX }));
        assert_eq!(g.check(None, 0, 10), Ok(60_000_000));
        assert!(g.check(None, 0, 0).is_ok());
        let none = Gcra::per_minute(0);
        assert_eq!(none.check(None, 0, 1), Err(RetryAfter { ms: u64::MAX }));
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let g = Gcra {
            emission_interval_us: u64::MAX,
            burst: u32::MAX,
        };
        assert!(g.check(Some(i64::MAX), i64::MAX, u32::MAX).is_ok());
        assert!(g.check(Some(i64::MIN), i64::MIN, u32::MAX).is_err()); // stored tat far ahead of now
        let g = Gcra {
            emission_interval_us: u64::MAX,
            burst: 1,
        };
        assert!(g.check(Some(i64::MAX), i64::MIN, 1).is_err());
    }

    #[test]
    fn ttl() {
        assert_eq!(Gcra::ttl_ms(60_000_000, 0), 60_000);
        assert_eq!(Gcra::ttl_ms(60_000_001, 0), 60_001);
        assert_eq!(Gcra::ttl_ms(0, 5), 0);
    }
}
