//! A per-client request rate for the open OAuth endpoints: GCRA ([`pairgate_policy::Gcra`], the
//! same arithmetic as every other rate) keyed by [`client_key`] (IPv4 address or IPv6 /64),
//! checked after the cheap shape checks and before anything costly (a database lookup, a
//! signature check, a replay-cache entry).
//!
//! In memory and per replica. Bounded: states back at a full burst are dropped when the map
//! reaches [`MAX_CLIENTS`]; if it is still full, clients not yet tracked are let through (the
//! bounded stranger replay partition and the lockouts still apply to them).
//!
//! [`client_key`]: crate::base::net::client_key

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use pairgate_policy::Gcra;

use crate::base::net::client_key;

/// Clients tracked at once at most.
pub const MAX_CLIENTS: usize = 100_000;

/// Requests per minute per client address.
#[derive(Debug)]
pub struct ClientRate {
    gcra: Gcra,
    /// Theoretical arrival time (µs) per client key.
    tats: Mutex<HashMap<IpAddr, i64>>,
}

impl ClientRate {
    /// `per_minute` requests per minute, burst the same.
    pub fn per_minute(per_minute: usize) -> ClientRate {
        ClientRate {
            gcra: Gcra::per_minute(per_minute as u64),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request from `ip` at `now_ms`, or returns the seconds to wait.
    pub fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let gcra = self.gcra;
        let key = client_key(ip);
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() >= MAX_CLIENTS && !tats.contains_key(&key) {
            let now_us = now_ms.saturating_mul(1000);
            tats.retain(|_, tat| *tat > now_us);
            if tats.len() >= MAX_CLIENTS {
                return Ok(());
            }
        }
        match gcra.check(tats.get(&key).copied(), now_ms, 1) {
            Ok(tat) => {
                tats.insert(key, tat);
                Ok(())
            }
            Err(retry) => Err(retry.ms.div_ceil(1000).max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_client_gets_its_own_burst_and_ipv6_counts_per_64() {
        let r = ClientRate::per_minute(3);
        for _ in 0..3 {
            assert_eq!(r.check(ip("192.0.2.1"), 0), Ok(()));
        }
        assert_eq!(r.check(ip("192.0.2.1"), 0), Err(20));
        assert_eq!(r.check(ip("192.0.2.2"), 0), Ok(()), "another client");
        assert_eq!(r.check(ip("192.0.2.1"), 20_000), Ok(()), "replenished");
        for i in 0..3 {
            assert_eq!(r.check(ip(&format!("2001:db8::{i}")), 0), Ok(()));
        }
        assert!(r.check(ip("2001:db8::ffff"), 0).is_err(), "same /64");
        assert_eq!(r.check(ip("2001:db8:0:1::1"), 0), Ok(()), "another /64");
    }
}
