//! The Redis backend: rates, concurrency and budgets in Redis through atomic Lua scripts, shared by every replica.
//!
//! Keys (all under `pairgate:<namespace>:`):
//! * `rate:<grant>:<rpm|rpd|tpm>`: a GCRA theoretical arrival time in µs (string), with a
//!   TTL until the limit is full again; the pure crate's algorithm, ported in `lua/admit.lua`.
//! * `conc:<grant>`: sorted set of permits scored by lease expiry (unix ms); expired leases
//!   (a crashed replica's) are dropped before counting, so they free themselves.
//! * `budget:<grant>:<tokens|cost>:<window key>`: hash `spent`, `reserved`; expires a day
//!   after its window ends (lifetime: never).
//! * `reservations`: sorted set of one member per admission holding budget reservations,
//!   `id|amount|#key|budget key` with one `|amount|#key|key` per budget line, scored by expiry,
//!   which `lua/janitor.lua` releases once past (it also reads the older one-line members
//!   `id|amount|budget key`).
//!
//! * `once:jti:<digest>`: a DPoP proof's replay claim, until the proof is too old to be accepted.
//!
//! `admit.lua` makes the proof's replay claim (when the request brings one), checks
//! concurrency, every budget window and every rate, then applies all of them, or nothing: one
//! script is one atomic step for every replica, and one round trip per admitted request. `settle.lua` frees the
//! permit, charges tokens above the estimate to the per-minute limit, drops the reservations
//! still held and adds the actual usage, also atomically. Scripts run with EVALSHA; they are
//! loaded at connect, and all three again on `NOSCRIPT` (a restarted Redis), so a settlement
//! never waits for its script's load while the same client's next admission goes ahead of it.
//! The janitor touches keys it reads
//! from the set, so this needs one Redis (or a primary), not Redis Cluster. Values are
//! clamped to 2^51 so Lua's doubles stay exact.

use std::sync::Arc;
use std::time::Duration;

use pairgate_policy::{Gcra, Window, window_ends_at};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::plan::{BudgetCheck, Plan, RateCheck};
use super::{LimitsError, LimitsSetupError, Refusal};

/// Largest amount or limit sent to the scripts (Lua numbers are doubles).
const MAX_AMOUNT: u64 = 1 << 51;
const DAY_MS: i64 = 86_400_000;

fn clamp(v: u64) -> u64 {
    v.min(MAX_AMOUNT)
}

thread_local! {
    /// A connection thread's own Redis connections, one per [`RedisLimits`] instance.
    static THREAD_CONNS: std::cell::RefCell<Vec<(usize, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn parse<T: redis::FromRedisValue>(v: redis::Value) -> Result<T, LimitsError> {
    redis::from_redis_value(v).map_err(|e| LimitsError::Redis(e.into()))
}

/// A connection (reconnecting) and the loaded scripts.
#[derive(Clone)]
pub struct RedisLimits {
    conn: ConnectionManager,
    /// What the connection threads open their own connections with ([`RedisLimits::conn`]).
    opener: Arc<(redis::Client, ConnectionManagerConfig)>,
    /// Tells this instance's connections apart in a thread's [`THREAD_CONNS`].
    id: usize,
    prefix: String,
    admit: Script,
    settle: Script,
    janitor: Script,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

/// When a budget hash may expire: a day after its window ends; `0` (never) for lifetime.
fn key_expiry(window: Window, admitted_ms: i64) -> i64 {
    window_ends_at(window, admitted_ms).map_or(0, |end| end.saturating_add(DAY_MS))
}

/// An admission's settlement on Redis, worked out when the request closes and run afterwards:
/// by the relay without waiting for it, or replayed from the ledger journal after a hard kill
/// (see [`crate::engine::ledger::Ledger::record_closing`]). Plain data, so the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settlement {
    pub grant: String,
    /// The admission's id (its concurrency lease and reservations).
    pub id: String,
    /// A concurrency lease is held under `id`.
    pub permit: bool,
    /// The tokens-per-minute limit's emission interval (µs) and the tokens above the estimate
    /// to charge to it; `(0, 0)` when none.
    pub tpm: (u64, u64),
    pub lines: Vec<SettlementLine>,
    pub now_ms: i64,
}

/// One budget window of a [`Settlement`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettlementLine {
    /// `budget:<grant>:<kind>:<window key>`, without the namespace's prefix.
    pub key: String,
    /// What the admission reserved.
    pub amount: u64,
    /// What the request used.
    pub actual: u64,
    /// When the budget's hash may expire (unix ms; 0: never).
    pub expires: i64,
}

impl Settlement {
    /// The settlement of `budgets` (each with what the request used) admitted at `admitted_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new<'a>(
        grant: &str,
        id: &str,
        permit: bool,
        tpm: Option<(Gcra, u64)>,
        budgets: impl Iterator<Item = (&'a BudgetCheck, u64)>,
        admitted_ms: i64,
        now_ms: i64,
    ) -> Settlement {
        let tpm = tpm.map_or((0, 0), |(g, extra)| {
            (
                g.emission_interval_us,
                clamp(extra).min(u64::from(u32::MAX)),
            )
        });
        Settlement {
            grant: grant.to_owned(),
            id: id.to_owned(),
            permit,
            tpm,
            lines: budgets
                .map(|(b, actual)| SettlementLine {
                    key: budget_suffix(grant, b),
                    amount: clamp(b.amount),
                    actual: clamp(actual),
                    expires: key_expiry(b.window, admitted_ms),
                })
                .collect(),
            now_ms,
        }
    }
}

/// A budget's key without the namespace's prefix.
fn budget_suffix(grant: &str, b: &BudgetCheck) -> String {
    format!("budget:{grant}:{}:{}", b.kind.as_str(), b.key)
}

/// Loads `scripts` (`SCRIPT LOAD`): at connect, and after a `NOSCRIPT`.
async fn load_scripts(
    conn: &mut ConnectionManager,
    scripts: [&Script; 3],
) -> Result<(), redis::RedisError> {
    for script in scripts {
        script.load_async(conn).await?;
    }
    Ok(())
}

/// The stored state the `remaining` view needs.
#[derive(Debug, Default)]
pub struct Peek {
    pub tats: Vec<Option<i64>>,
    pub in_flight: u32,
    pub counters: Vec<(u64, u64)>,
}

impl RedisLimits {
    /// Connects (failing fast when Redis is unreachable) and checks it answers.
    pub async fn connect(url: &str, namespace: &str) -> Result<RedisLimits, LimitsSetupError> {
        let client = redis::Client::open(url).map_err(|e| LimitsSetupError::RedisUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let unreachable = |e: redis::RedisError| LimitsSetupError::RedisUnreachable {
            url: redact(url),
            reason: e.to_string(),
        };
        let mut conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .map_err(unreachable)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        let (admit, settle, janitor) = (
            Script::new(include_str!("lua/admit.lua")),
            Script::new(include_str!("lua/settle.lua")),
            Script::new(include_str!("lua/janitor.lua")),
        );
        // Loaded now, not on the first `NOSCRIPT`: a settlement's `EVALSHA` refused that way
        // is sent again only after the refusal comes back, so the same client's next admission
        // would overtake it and find the lease the settlement frees still held.
        load_scripts(&mut conn, [&admit, &settle, &janitor])
            .await
            .map_err(unreachable)?;
        static INSTANCES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(RedisLimits {
            conn,
            opener: Arc::new((client, config)),
            id: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            prefix: format!("pairgate:{namespace}:"),
            admit,
            settle,
            janitor,
        })
    }

    /// The connection for an admission or a settlement. A connection thread (`http::spread`)
    /// opens its own on first use, so the round trip is driven by the thread that waits for it
    /// (the shared connection's task runs on the shared runtime: two thread wake-ups more per
    /// round trip); if it cannot, it keeps using the shared one.
    async fn conn(&self) -> ConnectionManager {
        if !crate::engine::resolve::on_connection_thread() {
            return self.conn.clone();
        }
        let mine = THREAD_CONNS.with(|t| {
            t.borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, c)| c.clone())
        });
        if let Some(conn) = mine {
            return conn;
        }
        let (client, config) = &*self.opener;
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "a connection thread could not open its own Redis connection; it uses the shared one");
                self.conn.clone()
            });
        THREAD_CONNS.with(|t| t.borrow_mut().push((self.id, conn.clone())));
        conn
    }

    /// Runs `script` (`EVALSHA`) on `keys` and the arguments `args` adds. On `NOSCRIPT` (Redis
    /// restarted, or its scripts were flushed) it loads all three scripts, not only this one,
    /// and runs it again: the first script a client runs after a restart is its admission, and
    /// its settlement must then find its own script loaded.
    async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
        script: &Script,
        keys: &[String],
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<T, LimitsError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
        args(&mut cmd);
        match cmd.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                load_scripts(conn, [&self.admit, &self.settle, &self.janitor]).await?;
                Ok(cmd.query_async(conn).await?)
            }
            other => Ok(other?),
        }
    }

    fn rate_key(&self, grant: &str, r: &RateCheck) -> String {
        format!("{}rate:{grant}:{}", self.prefix, r.kind.as_str())
    }

    fn conc_key(&self, grant: &str) -> String {
        format!("{}conc:{grant}", self.prefix)
    }

    fn budget_key(&self, grant: &str, b: &BudgetCheck) -> String {
        format!("{}{}", self.prefix, budget_suffix(grant, b))
    }

    fn reservations_key(&self) -> String {
        format!("{}reservations", self.prefix)
    }

    /// The key a [`claim_once`](RedisLimits::claim_once) of `key` sets.
    fn once_key(&self, key: &str) -> String {
        format!("{}once:{key}", self.prefix)
    }

    /// Runs `admit.lua`: `Ok(tats)` (new state per rate, µs) or the first refusal. With
    /// `claim` (a [`claim_once`](RedisLimits::claim_once) key and its time to live), the script
    /// makes that claim first, in the same round trip, and refuses with [`Refusal::Replayed`]
    /// when it was already made.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        grant: &str,
        plan: &Plan,
        id: &str,
        now_ms: i64,
        lease_ms: i64,
        reservation_expires_at: i64,
        claim: Option<(&str, i64)>,
    ) -> Result<Result<Vec<i64>, Refusal>, LimitsError> {
        let mut keys = vec![self.conc_key(grant), self.reservations_key()];
        keys.extend(plan.budgets.iter().map(|b| self.budget_key(grant, b)));
        keys.extend(plan.rates.iter().map(|r| self.rate_key(grant, r)));
        keys.extend(claim.map(|(key, _)| self.once_key(key)));
        let args = |cmd: &mut redis::Cmd| {
            cmd.arg(now_ms)
                .arg(id)
                .arg(plan.max_concurrent.unwrap_or(0))
                .arg(lease_ms)
                .arg(reservation_expires_at)
                .arg(plan.budgets.len())
                .arg(plan.rates.len())
                .arg(claim.map_or(0, |(_, ttl_ms)| ttl_ms.max(1)));
            for b in &plan.budgets {
                cmd.arg(clamp(b.amount))
                    .arg(clamp(b.limit))
                    .arg(key_expiry(b.window, now_ms));
            }
            for r in &plan.rates {
                cmd.arg(r.gcra.emission_interval_us)
                    .arg(r.gcra.burst)
                    .arg(r.cost);
            }
        };
        let mut conn = self.conn().await;
        let out: Vec<String> = self.run(&mut conn, &self.admit, &keys, args).await?;
        let num = |i: usize| -> Result<i64, LimitsError> {
            out.get(i)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| LimitsError::Protocol(format!("admit returned {out:?}")))
        };
        if out.first().map(String::as_str) == Some("1") {
            return (1..out.len()).map(num).collect::<Result<_, _>>().map(Ok);
        }
        let index = usize::try_from(num(2)? - 1).unwrap_or(0);
        let (a, b) = (num(3)?, num(4)?);
        let refusal = match out.get(1).map(String::as_str) {
            Some("replay") => Refusal::Replayed,
            Some("conc") => Refusal::Concurrency,
            Some("budget") => Refusal::Budget {
                index,
                spent: u64::try_from(a).unwrap_or(0),
                reserved: u64::try_from(b).unwrap_or(0),
            },
            Some("rate") => Refusal::Rate {
                index,
                retry_ms: u64::try_from(a).unwrap_or(u64::MAX),
            },
            _ => return Err(LimitsError::Protocol(format!("admit returned {out:?}"))),
        };
        Ok(Err(refusal))
    }

    /// Runs `settle.lua` (a release has every `actual` 0 and no extra tokens).
    pub async fn settle(&self, s: &Settlement) -> Result<(), LimitsError> {
        let mut keys = vec![
            self.conc_key(&s.grant),
            self.reservations_key(),
            format!("{}rate:{}:tpm", self.prefix, s.grant),
        ];
        keys.extend(s.lines.iter().map(|l| format!("{}{}", self.prefix, l.key)));
        let args = |cmd: &mut redis::Cmd| {
            cmd.arg(s.now_ms)
                .arg(&s.id)
                .arg(u8::from(s.permit))
                .arg(s.tpm.0)
                .arg(s.tpm.1)
                .arg(s.lines.len());
            for l in &s.lines {
                cmd.arg(l.amount).arg(l.actual).arg(l.expires);
            }
        };
        let mut conn = self.conn().await;
        let _: i64 = self.run(&mut conn, &self.settle, &keys, args).await?;
        Ok(())
    }

    /// Records `key` for `ttl_ms` unless it is already recorded: true the first time (across
    /// every replica sharing this Redis and namespace), false after.
    pub async fn claim_once(&self, key: &str, ttl_ms: i64) -> Result<bool, LimitsError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.once_key(key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Runs `janitor.lua` until no expired reservation is left; returns how many were released.
    pub async fn janitor(&self, now_ms: i64) -> Result<u64, LimitsError> {
        const BATCH: u64 = 500;
        let mut total = 0;
        loop {
            let mut conn = self.conn.clone();
            let keys = [self.reservations_key()];
            let n: u64 = self
                .run(&mut conn, &self.janitor, &keys, |cmd| {
                    cmd.arg(now_ms).arg(BATCH);
                })
                .await?;
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    /// Reads rate states, permits in flight and budget counters in one round trip.
    pub async fn peek(
        &self,
        grant: &str,
        rates: &[RateCheck],
        budgets: &[BudgetCheck],
        now_ms: i64,
    ) -> Result<Peek, LimitsError> {
        let mut pipe = redis::pipe();
        for r in rates {
            pipe.cmd("GET").arg(self.rate_key(grant, r));
        }
        pipe.cmd("ZCOUNT")
            .arg(self.conc_key(grant))
            .arg(format!("({now_ms}"))
            .arg("+inf");
        for b in budgets {
            pipe.cmd("HMGET")
                .arg(self.budget_key(grant, b))
                .arg("spent")
                .arg("reserved");
        }
        let mut conn = self.conn.clone();
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut it = values.into_iter();
        let mut next = || it.next().unwrap_or(redis::Value::Nil);
        let mut peek = Peek::default();
        for _ in rates {
            peek.tats.push(parse::<Option<i64>>(next())?);
        }
        peek.in_flight = parse::<Option<u32>>(next())?.unwrap_or(0);
        for _ in budgets {
            let (spent, reserved) = parse::<(Option<u64>, Option<u64>)>(next())?;
            peek.counters
                .push((spent.unwrap_or(0), reserved.unwrap_or(0)));
        }
        Ok(peek)
    }

    /// Deletes every key under this namespace (tests).
    #[cfg(test)]
    pub async fn wipe(&self) -> Result<(), LimitsError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
        }
        Ok(())
    }
}
