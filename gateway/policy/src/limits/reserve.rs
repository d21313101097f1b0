//! Budget reservations: reserve an estimate before calling upstream, settle the actual usage after.
//!
//! A counter holds what was `spent` (settled) and what is `reserved` by requests in
//! flight. A request is admitted iff `spent + reserved + estimate <= limit`; on completion
//! its reservation is replaced by its actual usage ([`settle`]), on failure it is dropped
//! ([`release`]).
//!
//! Overspend bound: if every request's actual usage is at most its estimate plus `e`,
//! then `spent <= limit + (sum of e over the requests in flight at the last admission)`:
//! with no concurrency, at most `limit + e`; with `k` requests in flight, `limit + k * e`.
//! Backends must apply reserve/settle/release atomically (one SQL statement or Lua call).

/// A budget counter for one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counter {
    /// Settled usage.
    pub spent: u64,
    /// Sum of the reservations of requests in flight.
    pub reserved: u64,
}

/// A reservation refused: the budget cannot cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("budget exhausted: limit {limit}, spent {spent}, reserved {reserved}")]
pub struct Exhausted {
    /// The limit.
    pub limit: u64,
    /// Settled usage at the time.
    pub spent: u64,
    /// Reserved by requests in flight at the time.
    pub reserved: u64,
}

/// Decide a reservation of `estimate` against `limit` (`None`: unlimited, always admitted).
/// Returns the amount to add to `reserved`; an estimate above the limit on its own is
/// always refused. Pure: the caller applies the result (see [`reserve`]).
pub fn try_reserve(limit: Option<u64>, c: &Counter, estimate: u64) -> Result<u64, Exhausted> {
    let Some(limit) = limit else {
        return Ok(estimate);
    };
    let needed = u128::from(c.spent) + u128::from(c.reserved) + u128::from(estimate);
    if needed <= u128::from(limit) {
        Ok(estimate)
    } else {
        Err(Exhausted {
            limit,
            spent: c.spent,
            reserved: c.reserved,
        })
    }
}

/// [`try_reserve`] and, if admitted, add the reservation to `c`.
pub fn reserve(limit: Option<u64>, c: &mut Counter, estimate: u64) -> Result<u64, Exhausted> {
    let amount = try_reserve(limit, c, estimate)?;
    c.reserved = c.reserved.saturating_add(amount);
    Ok(amount)
}

/// A request finished: drop its reservation and record its actual usage (saturating).
pub fn settle(c: &mut Counter, reserved: u64, actual: u64) {
    c.reserved = c.reserved.saturating_sub(reserved);
    c.spent = c.spent.saturating_add(actual);
}

/// A request failed without usage: drop its reservation.
pub fn release(c: &mut Counter, reserved: u64) {
    c.reserved = c.reserved.saturating_sub(reserved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_table() {
        let c = |spent, reserved| Counter { spent, reserved };
        let cases: &[(Option<u64>, Counter, u64, bool)] = &[
            (None, c(u64::MAX, u64::MAX), u64::MAX, true),
            (Some(100), c(0, 0), 100, true),
            (Some(100), c(0, 0), 101, false),
            (Some(100), c(50, 50), 0, true),
            (Some(100), c(50, 50), 1, false),
            (Some(100), c(40, 50), 10, true),
            (Some(100), c(150, 0), 0, false),
            (Some(u64::MAX), c(u64::MAX, 1), 1, false),
            (Some(u64::MAX), c(u64::MAX - 1, 0), 1, true),
        ];
        for &(limit, counter, est, ok) in cases {
            let got = try_reserve(limit, &counter, est);
            assert_eq!(got.is_ok(), ok, "{limit:?} {counter:?} {est}");
            match got {
                Ok(amount) => assert_eq!(amount, est),
                Err(e) => assert_eq!(
                    (e.spent, e.reserved, Some(e.limit)),
                    (counter.spent, counter.reserved, limit)
                ),
            }
        }
    }

    #[test]
    fn lifecycle() {
        let mut c = Counter::default();
        let a = reserve(Some(100), &mut c, 60).unwrap();
        assert_eq!(
            c,
            Counter {
                spent: 0,
                reserved: 60
            }
        );
        assert!(reserve(Some(100), &mut c, 50).is_err());
        assert_eq!(c.reserved, 60, "a refused reservation changes nothing");
        settle(&mut c, a, 20);
        assert_eq!(
            c,
            Counter {
                spent: 20,
                reserved: 0
            }
        );
        let b = reserve(Some(100), &mut c, 80).unwrap();
        release(&mut c, b);
        assert_eq!(
            c,
            Counter {
                spent: 20,
                reserved: 0
            }
        );
        settle(&mut c, 5, u64::MAX);
        assert_eq!(
            c,
            Counter {
                spent: u64::MAX,
                reserved: 0
            }
        );
        assert_eq!(
            try_reserve(Some(7), &c, 0).unwrap_err().to_string(),
            format!("budget exhausted: limit 7, spent {}, reserved 0", u64::MAX)
        );
    }
}
