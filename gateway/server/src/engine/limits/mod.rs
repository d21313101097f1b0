//! Stateful enforcement of a grant's limits: request and token rates, concurrency, token and cost budgets.
//!
//! The relay calls [`Limiter::admit`] before the upstream call and [`Admission::settle`]
//! (or [`Admission::release`]) after; an [`Admission`] dropped without either releases
//! itself in a spawned task. All arithmetic is the pure crate's ([`pairgate_policy::limits`]);
//! this module keeps the state, in one of two backends ([`LimitsBackend`]):
//!
//! * `Local`: rates in governor limiters keyed per grant, concurrency in in-process
//!   counting semaphores ([`local`]), budgets in memory ([`book`]) with `spent` persisted by
//!   the usage ledger's group commit (`pairgate_store::budgets`). One gateway process; no
//!   database statement on admission once a grant's counters are loaded.
//! * `Redis`: everything in Redis through atomic Lua scripts ([`redis_backend`]), so
//!   replicas share a grant's limits.
//!
//! # Budgets: the guarantee
//!
//! A request reserves its estimate in every budget window before it runs and settles its
//! actual usage after, each atomically, so with `k` requests in flight whose actual usage
//! exceeds their estimate by at most `e` each, `spent <= limit + k * e`. A finished
//! request's over-estimate is returned at settlement, so it never refuses later requests.
//! On the local backend a reservation lives in memory as long as its request (a crash releases
//! it at once); `spent` moves only when the request's ledger row has committed, so after a
//! crash `spent` equals the usage of the rows in the ledger. On Redis, reservations expire after
//! [`RESERVATION_TTL_MS`] (15 minutes, longer than any request): the janitor
//! ([`Limiter::spawn_janitor`]) returns the reservation of a request that never settled (a
//! crashed replica) at most TTL + [`JANITOR_INTERVAL`] after it was made.
//!
//! # Local backend and atomicity
//!
//! Local admission peeks at every rate (no change), reserves the budgets under the book's lock,
//! then admits each rate through governor; only if another request of the same grant takes the
//! last room between the peek and the admit (a race) can a refused request have used a cell of
//! an earlier rate. The Redis script is all-or-nothing.

mod admission;
pub mod book;
pub mod local;
pub mod plan;
pub mod redis_backend;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_concurrency;

use std::sync::Arc;
use std::time::Duration;

use pairgate_policy::{GrantPolicy, Usage, Window, window_ends_at};
use pairgate_store::{Store, StoreError};
use serde_json::{Map, Value, json};

use admission::Pending;
pub use admission::{Admission, Closing, RedisSettle};
use local::{Inflight, Rates};
use plan::{BudgetCheck, BudgetKind, Plan, RateKind, RateState};
pub use plan::{QuotaCharge, QuotaKind};
use redis_backend::RedisLimits;
pub use redis_backend::Settlement;

/// How long a budget reservation (and a Redis concurrency lease) holds without settlement.
pub const RESERVATION_TTL_MS: i64 = 15 * 60 * 1000;
/// How often [`Limiter::spawn_janitor`]'s task runs.
pub const JANITOR_INTERVAL: Duration = Duration::from_secs(30);

/// Where limit state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsBackend {
    /// In this process (rates, concurrency) and the gateway's database (budgets).
    Local,
    /// In Redis, shared by every replica.
    Redis { url: String },
}

/// Tuning; [`Limiter::new`] uses the defaults.
#[derive(Debug, Clone)]
pub struct LimiterOptions {
    /// Redis keys are `pairgate:<namespace>:...` (tests use one namespace each).
    pub namespace: String,
    /// See [`RESERVATION_TTL_MS`].
    pub reservation_ttl_ms: i64,
    /// See [`JANITOR_INTERVAL`].
    pub janitor_interval: Duration,
}

impl Default for LimiterOptions {
    fn default() -> Self {
        LimiterOptions {
            namespace: "gw".to_owned(),
            reservation_ttl_ms: RESERVATION_TTL_MS,
            janitor_interval: JANITOR_INTERVAL,
        }
    }
}

/// The limits backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimitsSetupError {
    #[error("invalid Redis URL for limits ({url}): {reason}")]
    RedisUrl { url: String, reason: String },
    #[error("Redis for limits is unreachable at {url}: {reason}")]
    RedisUnreachable { url: String, reason: String },
}

/// A limits operation failed (the state could not be read or written).
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("limits database: {0}")]
    Store(#[from] StoreError),
    #[error("limits Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("limits Redis: unexpected reply: {0}")]
    Protocol(String),
}

/// A DPoP proof's claim across replicas, still to be made: [`Limiter::admit_claiming`] makes
/// it in the admission's own round trip (see [`Limiter::replay_claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayClaim {
    key: String,
    ttl_ms: i64,
}

/// A request refused by a limit: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRejection {
    /// `rate_limit_exceeded`, `tokens_per_minute_exceeded`, `concurrency_limit_exceeded`,
    /// `insufficient_quota`; or `limits_unavailable` (status 503) when the backend failed
    /// and the request is refused rather than let through unmetered.
    pub code: &'static str,
    /// 429, or 503 for `limits_unavailable`.
    pub status: u16,
    /// Which limit, with its numbers.
    pub message: String,
    /// Whole seconds to wait (`retry-after`); `None` when waiting cannot help (the request
    /// alone exceeds the limit, or a lifetime budget is spent).
    pub retry_after_secs: Option<u64>,
    /// The same in milliseconds, exact for rates.
    pub retry_after_ms: Option<u64>,
    /// `retry-after` (when known) and the `x-ratelimit-*` headers of the refusing rate.
    pub headers: Vec<(&'static str, String)>,
}

impl std::fmt::Display for LimitRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Which check of a [`Plan`] refused (backend-neutral).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request's proof was already claimed (Redis: by this or another replica).
    Replayed,
    Concurrency,
    Budget {
        index: usize,
        spent: u64,
        reserved: u64,
    },
    Rate {
        index: usize,
        retry_ms: u64,
    },
}

/// What the janitor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JanitorReport {
    /// Expired reservation members released: one per admission (an older gateway wrote one
    /// per budget line).
    pub released: u64,
    /// Rate-limit keys still held in memory (Local; 0 for Redis, where keys expire).
    pub rate_keys: usize,
    /// Budget counters of ended day and month windows deleted from the database (Local;
    /// Redis keys expire).
    pub pruned_counters: u64,
}

#[derive(Debug)]
enum Engine {
    Local {
        rates: Rates,
        inflight: Arc<Inflight>,
        book: Arc<book::Book>,
    },
    Redis(RedisLimits),
}

#[derive(Debug)]
struct Inner {
    store: Store,
    engine: Engine,
    options: LimiterOptions,
}

/// The limits of every grant. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Limiter {
    /// Short: the backend only (the Local state holds every grant's rate state).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.inner.engine {
            Engine::Local { .. } => "local",
            Engine::Redis(_) => "redis",
        };
        f.debug_struct("Limiter")
            .field("backend", &backend)
            .field("namespace", &self.inner.options.namespace)
            .finish_non_exhaustive()
    }
}

fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn budget_lines(budgets: &[BudgetCheck]) -> Vec<book::Line> {
    budgets
        .iter()
        .map(|b| book::Line {
            kind: b.kind.as_str(),
            window_key: b.key.clone(),
            amount: b.amount,
            limit: b.limit,
        })
        .collect()
}

fn refusal(plan: &Plan, r: Refusal, now_ms: i64) -> LimitRejection {
    match r {
        Refusal::Replayed => plan::replay_rejection(),
        Refusal::Concurrency => plan::concurrency_rejection(plan.max_concurrent.unwrap_or(0)),
        Refusal::Budget {
            index,
            spent,
            reserved,
        } => match plan.budgets.get(index) {
            Some(b) => plan::budget_rejection(b, spent, reserved, now_ms),
            None => plan::unavailable(),
        },
        Refusal::Rate { index, retry_ms } => match plan.rates.get(index) {
            Some(check) => plan::rate_rejection(check, retry_ms),
            None => plan::unavailable(),
        },
    }
}

impl Limiter {
    /// A limiter on `backend` with default options. Redis is connected (and pinged) now.
    pub async fn new(backend: LimitsBackend, store: Store) -> Result<Limiter, LimitsSetupError> {
        Limiter::with_options(backend, store, LimiterOptions::default()).await
    }

    /// [`Limiter::new`] with explicit options.
    pub async fn with_options(
        backend: LimitsBackend,
        store: Store,
        options: LimiterOptions,
    ) -> Result<Limiter, LimitsSetupError> {
        let engine = match backend {
            LimitsBackend::Local => Engine::Local {
                rates: Rates::default(),
                inflight: Arc::new(Inflight::default()),
                book: Arc::default(),
            },
            LimitsBackend::Redis { url } => {
                Engine::Redis(RedisLimits::connect(&url, &options.namespace).await?)
            }
        };
        Ok(Limiter {
            inner: Arc::new(Inner {
                store,
                engine,
                options,
            }),
        })
    }

    /// Runs a settlement on the Redis backend (an answered request's, or one the ledger
    /// journal replays after a hard kill); false, doing nothing, on the local backend.
    pub async fn settle_redis(&self, s: &Settlement) -> Result<bool, LimitsError> {
        match &self.inner.engine {
            Engine::Redis(r) => r.settle(s).await.map(|()| true),
            Engine::Local { .. } => Ok(false),
        }
    }

    /// Admits a request of `grant_id` under `policy`, estimated at `estimate` tokens and
    /// `estimated_cost_micros`, or says which limit refuses it. A backend failure refuses
    /// with `limits_unavailable` (logged).
    pub async fn admit(
        &self,
        grant_id: &str,
        policy: &GrantPolicy,
        estimate: Usage,
        estimated_cost_micros: u64,
        now_ms: i64,
    ) -> Result<Admission, LimitRejection> {
        self.admit_with_quotas(
            grant_id,
            policy,
            estimate,
            estimated_cost_micros,
            &[],
            now_ms,
        )
        .await
    }

    /// [`Limiter::admit`], also reserving plugin-declared `quotas` in the same atomic step as
    /// the budgets (settled at their amount when the call is answered, released otherwise).
    pub async fn admit_with_quotas(
        &self,
        grant_id: &str,
        policy: &GrantPolicy,
        estimate: Usage,
        estimated_cost_micros: u64,
        quotas: &[QuotaCharge],
        now_ms: i64,
    ) -> Result<Admission, LimitRejection> {
        self.admit_claiming(
            grant_id,
            policy,
            estimate,
            estimated_cost_micros,
            quotas,
            None,
            now_ms,
        )
        .await
    }

    /// [`Limiter::admit_with_quotas`], making the request's proof `claim` (when it brings one)
    /// first: on Redis inside the admission script, so admission and the replay check are one
    /// round trip; a claim already made refuses the request (`invalid_dpop_proof`) before any
    /// limit is charged. The claim stays made whatever the admission's verdict.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_claiming(
        &self,
        grant_id: &str,
        policy: &GrantPolicy,
        estimate: Usage,
        estimated_cost_micros: u64,
        quotas: &[QuotaCharge],
        claim: Option<&ReplayClaim>,
        now_ms: i64,
    ) -> Result<Admission, LimitRejection> {
        let plan =
            Plan::new(policy, &estimate, estimated_cost_micros, now_ms).with_quotas(quotas, now_ms);
        if plan.is_empty() {
            // nothing to admit against: the claim goes alone
            if let Some(c) = claim {
                match self.claim(c).await {
                    Ok(true) => {}
                    Ok(false) => return Err(plan::replay_rejection()),
                    Err(e) => {
                        tracing::error!(error = %e, grant = grant_id, "limits: replay claim failed");
                        return Err(plan::unavailable());
                    }
                }
            }
            return Ok(Admission {
                headers: Vec::new(),
                pending: None,
            });
        }
        let id = new_id();
        let ttl = self.inner.options.reservation_ttl_ms;
        let tpm = plan
            .rates
            .iter()
            .find(|r| r.kind == RateKind::TokensPerMinute)
            .map(|r| (r.gcra, u64::from(r.cost)));
        let mut pending = Pending {
            limiter: self.clone(),
            grant: grant_id.to_owned(),
            id,
            admitted_ms: now_ms,
            budgets: plan.budgets.clone(),
            tpm,
            permit: None,
            hold: None,
            redis_permit: false,
        };
        let states =
            match &self.inner.engine {
                Engine::Local {
                    rates,
                    inflight,
                    book,
                } => {
                    self.admit_local(rates, inflight, book, &plan, &mut pending, now_ms)
                        .await?
                }
                Engine::Redis(r) => {
                    let claim = claim.map(|c| (c.key.as_str(), c.ttl_ms));
                    let reply = r
                    .admit(grant_id, &plan, &pending.id, now_ms, ttl, now_ms + ttl, claim)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, grant = grant_id, "limits: admission failed");
                        plan::unavailable()
                    })?;
                    let tats = reply.map_err(|r| refusal(&plan, r, now_ms))?;
                    pending.redis_permit = plan.max_concurrent.is_some();
                    plan.rates
                        .iter()
                        .zip(tats)
                        .map(|(c, tat)| RateState::of(c.kind, c.limit, &c.gcra, Some(tat), now_ms))
                        .collect()
                }
            };
        Ok(Admission {
            headers: plan::rate_headers(&states),
            pending: Some(pending),
        })
    }

    async fn admit_local(
        &self,
        rates: &Rates,
        inflight: &Arc<Inflight>,
        book: &Arc<book::Book>,
        plan: &Plan,
        pending: &mut Pending,
        now_ms: i64,
    ) -> Result<Vec<RateState>, LimitRejection> {
        let grant = pending.grant.as_str();
        let clock_ms = rates.observe(now_ms);
        if let Some(max) = plan.max_concurrent {
            pending.permit = Some(
                inflight
                    .try_acquire(grant, max)
                    .ok_or_else(|| refusal(plan, Refusal::Concurrency, now_ms))?,
            );
        }
        for (index, check) in plan.rates.iter().enumerate() {
            if let Err(e) = check
                .gcra
                .check(rates.peek(grant, check), clock_ms, check.cost)
            {
                let r = Refusal::Rate {
                    index,
                    retry_ms: e.ms,
                };
                return Err(refusal(plan, r, now_ms));
            }
        }
        if !plan.budgets.is_empty() {
            let lines = budget_lines(&plan.budgets);
            let reserved = book
                .reserve(&self.inner.store, grant, &lines)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, grant, "limits: reading budget counters failed");
                    plan::unavailable()
                })?;
            match reserved {
                Ok(hold) => pending.hold = Some(hold),
                Err(r) => {
                    pending.budgets.clear();
                    let r = Refusal::Budget {
                        index: r.index,
                        spent: r.spent,
                        reserved: r.reserved,
                    };
                    return Err(refusal(plan, r, now_ms));
                }
            }
        }
        for (index, check) in plan.rates.iter().enumerate() {
            if let Err(d) = rates.admit(grant, check) {
                // lost a race since the peek: give the budget back
                pending.hold = None;
                pending.budgets.clear();
                let r = Refusal::Rate {
                    index,
                    retry_ms: d.retry_ms,
                };
                return Err(refusal(plan, r, now_ms));
            }
        }
        Ok(plan
            .rates
            .iter()
            .map(|c| RateState::of(c.kind, c.limit, &c.gcra, rates.peek(grant, c), clock_ms))
            .collect())
    }

    /// What remains of each limit `policy` sets, for `GET /v1/grant` and the admin UI:
    /// `{"requests_per_minute": {"limit", "remaining", "reset_ms"}, ..., "max_concurrent":
    /// {"limit", "in_flight", "remaining"}, "token_budget": {"daily": {"limit", "spent",
    /// "reserved", "remaining", "window", "resets_at"}, ...}, "cost_budget_micros": {...}}`.
    pub async fn remaining(
        &self,
        grant_id: &str,
        policy: &GrantPolicy,
        now_ms: i64,
    ) -> Result<Value, LimitsError> {
        self.remaining_with_quotas(grant_id, policy, &[], now_ms)
            .await
    }

    /// [`Limiter::remaining`], plus the plugin quotas the grant sets, under `"quotas"` keyed
    /// by the policy field (`{"resources.resend.messages_per_day": {"limit", "used",
    /// "reserved", "remaining", "window", "resets_at"}}`).
    pub async fn remaining_with_quotas(
        &self,
        grant_id: &str,
        policy: &GrantPolicy,
        quotas: &[QuotaCharge],
        now_ms: i64,
    ) -> Result<Value, LimitsError> {
        let plan = Plan::new(policy, &Usage::default(), 0, now_ms).with_quotas(quotas, now_ms);
        let (tats, in_flight, counters, clock_ms) = match &self.inner.engine {
            Engine::Local {
                rates,
                inflight,
                book,
            } => {
                let clock_ms = rates.observe(now_ms);
                let tats = plan.rates.iter().map(|r| rates.peek(grant_id, r)).collect();
                let windows: Vec<_> = plan
                    .budgets
                    .iter()
                    .map(|b| (b.kind.as_str(), b.key.as_str()))
                    .collect();
                let counters = book.counters(&self.inner.store, grant_id, &windows).await?;
                (tats, inflight.count(grant_id), counters, clock_ms)
            }
            Engine::Redis(r) => {
                let p = r.peek(grant_id, &plan.rates, &plan.budgets, now_ms).await?;
                (p.tats, p.in_flight, p.counters, now_ms)
            }
        };
        let mut out = Map::new();
        for (c, tat) in plan.rates.iter().zip(tats) {
            let field = match c.kind {
                RateKind::RequestsPerMinute => "requests_per_minute",
                RateKind::RequestsPerDay => "requests_per_day",
                RateKind::TokensPerMinute => "tokens_per_minute",
            };
            let state = RateState::of(c.kind, c.limit, &c.gcra, tat, clock_ms);
            out.insert(field.to_owned(), state.json());
        }
        if let Some(max) = plan.max_concurrent {
            out.insert(
                "max_concurrent".to_owned(),
                json!({"limit": max, "in_flight": in_flight, "remaining": max.saturating_sub(in_flight)}),
            );
        }
        for (b, (spent, reserved)) in plan.budgets.iter().zip(counters) {
            let field = match b.kind {
                BudgetKind::Tokens => "token_budget",
                BudgetKind::Cost => "cost_budget_micros",
                BudgetKind::Quota(q) => {
                    let entry = out
                        .entry("quotas".to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(quotas) = entry {
                        quotas.insert(
                            q.field.trim_start_matches('/').replace('/', "."),
                            json!({
                                "limit": b.limit,
                                "used": spent,
                                "reserved": reserved,
                                "remaining": b.limit.saturating_sub(spent.saturating_add(reserved)),
                                "window": b.key,
                                "resets_at": window_ends_at(b.window, now_ms),
                            }),
                        );
                    }
                    continue;
                }
            };
            let entry = out
                .entry(field.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(windows) = entry {
                windows.insert(
                    plan::window_name(b.window).to_owned(),
                    json!({
                        "limit": b.limit,
                        "spent": spent,
                        "reserved": reserved,
                        "remaining": b.limit.saturating_sub(spent.saturating_add(reserved)),
                        "window": b.key,
                        "resets_at": window_ends_at(b.window, now_ms),
                    }),
                );
            }
        }
        Ok(Value::Object(out))
    }

    /// One janitor pass at `now_ms`: releases expired reservations (Redis), prunes rate keys
    /// and the budget counters of ended windows (Local).
    pub async fn run_janitor(&self, now_ms: i64) -> Result<JanitorReport, LimitsError> {
        match &self.inner.engine {
            Engine::Local { rates, book, .. } => {
                rates.observe(now_ms);
                // A day of slack: clocks and requests admitted just before midnight.
                const DAY_MS: i64 = 86_400_000;
                let before = [
                    pairgate_policy::window_key(Window::Minute, now_ms - DAY_MS),
                    pairgate_policy::window_key(Window::Hour, now_ms - DAY_MS),
                    pairgate_policy::window_key(Window::Day, now_ms - DAY_MS),
                    pairgate_policy::window_key(Window::Month, now_ms - 32 * DAY_MS),
                ];
                book.prune(&before);
                let pruned_counters = self.inner.store.prune_budget_counters(&before).await?;
                Ok(JanitorReport {
                    released: 0,
                    rate_keys: rates.prune(),
                    pruned_counters,
                })
            }
            Engine::Redis(r) => Ok(JanitorReport {
                released: r.janitor(now_ms).await?,
                rate_keys: 0,
                pruned_counters: 0,
            }),
        }
    }

    /// Runs [`Limiter::run_janitor`] every [`LimiterOptions::janitor_interval`] until aborted.
    pub fn spawn_janitor(&self) -> tokio::task::JoinHandle<()> {
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(limiter.inner.options.janitor_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match limiter.run_janitor(pairgate_store::now_ms()).await {
                    Ok(r) if r.released > 0 => {
                        tracing::info!(
                            released = r.released,
                            "limits: expired reservations released"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "limits: janitor pass failed"),
                }
            }
        })
    }

    /// The claim of a DPoP proof (key thumbprint, `jti`) for `ttl_ms` across replicas, to make
    /// with [`Limiter::claim`] or inside an admission ([`Limiter::admit_claiming`]); `None` with
    /// the local backend, where each process's own replay cache is the whole check.
    pub fn replay_claim(&self, jkt: &str, jti: &str, ttl_ms: i64) -> Option<ReplayClaim> {
        match &self.inner.engine {
            Engine::Local { .. } => None,
            Engine::Redis(_) => {
                use sha2::Digest;
                // Bounded and opaque: the jti is chosen by the client.
                let digest = sha2::Sha256::new()
                    .chain_update(jkt.as_bytes())
                    .chain_update([0u8])
                    .chain_update(jti.as_bytes())
                    .finalize();
                let key: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                Some(ReplayClaim {
                    key: format!("jti:{key}"),
                    ttl_ms,
                })
            }
        }
    }

    /// Makes a claim on its own: true only for the first replica to make it.
    pub async fn claim(&self, claim: &ReplayClaim) -> Result<bool, LimitsError> {
        match &self.inner.engine {
            Engine::Local { .. } => Ok(true),
            Engine::Redis(r) => r.claim_once(&claim.key, claim.ttl_ms).await,
        }
    }

    /// Rate-limit keys held in memory (Local backend; 0 for Redis), for `/metrics`.
    pub fn rate_keys(&self) -> usize {
        match &self.inner.engine {
            Engine::Local { rates, .. } => rates.keys(),
            Engine::Redis(_) => 0,
        }
    }
}
