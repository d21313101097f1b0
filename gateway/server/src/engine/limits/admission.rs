//! An admitted request's hold on its grant's limits: settle with the real usage, release, or release on drop.

use pairgate_policy::{Gcra, Usage};

use super::book::Hold;
use super::local::Permit;
use super::plan::{BudgetCheck, BudgetKind};
use super::redis_backend::Settlement;
use super::{Engine, Limiter, LimitsError};

/// What a settlement reports.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome {
    pub(super) tokens: u64,
    pub(super) cost_micros: u64,
}

impl Outcome {
    /// The outcome of a request that used `actual` at a cost of `cost_micros`.
    fn of(actual: Usage, cost_micros: u64) -> Outcome {
        Outcome {
            tokens: actual.total_tokens(),
            cost_micros,
        }
    }
}

/// An admitted request's hold on its grant's limits.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) limiter: Limiter,
    pub(super) grant: String,
    pub(super) id: String,
    pub(super) admitted_ms: i64,
    pub(super) budgets: Vec<BudgetCheck>,
    /// The tokens-per-minute limit and the tokens it was charged.
    pub(super) tpm: Option<(Gcra, u64)>,
    /// Local concurrency permit (dropped at the end).
    pub(super) permit: Option<Permit>,
    /// Local budget reservations (released on drop).
    pub(super) hold: Option<Hold>,
    /// A Redis concurrency lease is held under `id`.
    pub(super) redis_permit: bool,
}

/// An admitted request: holds its concurrency permit and budget reservations until
/// [`Admission::settle`] or [`Admission::release`] (or drop, which releases).
#[derive(Debug)]
pub struct Admission {
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) pending: Option<Pending>,
}

/// What finishing an admission leaves to commit together with the request's ledger row (see
/// [`Admission::settle_deferred`]): the budget hold (local backend; its spend is written with
/// the row, then [`Hold::commit`] moves it into `spent` in memory), the concurrency permit,
/// held until then, and the Redis backend's settlement, still to run ([`RedisSettle::run`]).
#[derive(Debug, Default)]
pub struct Closing {
    pub hold: Option<Hold>,
    pub permit: Option<Permit>,
    pub redis: Option<RedisSettle>,
}

/// A settlement on the Redis backend, worked out and not yet run.
#[derive(Debug)]
pub struct RedisSettle {
    limiter: Limiter,
    settlement: Settlement,
}

impl RedisSettle {
    /// What it will run (for the ledger journal).
    pub fn settlement(&self) -> &Settlement {
        &self.settlement
    }

    /// Runs it: one round trip to Redis.
    pub async fn run(&self) -> Result<(), LimitsError> {
        self.limiter.settle_redis(&self.settlement).await.map(drop)
    }
}

impl Limiter {
    /// Settles (`Some`) or releases (`None`) an admission's hold.
    pub(super) async fn finish(
        &self,
        p: Pending,
        outcome: Option<Outcome>,
    ) -> Result<(), LimitsError> {
        let closing = self.close(p, outcome);
        if let Some(redis) = &closing.redis {
            redis.run().await?;
        }
        if let Some(hold) = closing.hold {
            if let Some(spend) = hold.spend("") {
                add_spent_with_retries(&self.inner.store, &spend).await?;
            }
            hold.commit();
        }
        Ok(())
    }

    /// Does everything a settlement (`Some`) or release (`None`) needs except persisting the
    /// local budget spend, whose hold it returns, and running the Redis backend's settlement,
    /// which it returns too: tokens above the estimate are charged to the per-minute limit.
    pub(super) fn close(&self, mut p: Pending, outcome: Option<Outcome>) -> Closing {
        let now_ms = pairgate_store::now_ms().max(p.admitted_ms);
        let tokens = outcome.map_or(0, |o| o.tokens);
        let cost = outcome.map_or(0, |o| o.cost_micros);
        // A quota is charged what the request reserved once the provider accepted the call;
        // a release (refusal, failure) charges nothing.
        let actual = |b: &BudgetCheck| match b.kind {
            BudgetKind::Tokens => tokens,
            BudgetKind::Cost => cost,
            BudgetKind::Quota(_) => outcome.map_or(0, |_| b.amount),
        };
        // tokens above the estimate are charged to the per-minute limit too
        let extra = p
            .tpm
            .filter(|_| outcome.is_some())
            .and_then(|(g, charged)| {
                tokens
                    .checked_sub(charged)
                    .filter(|&e| e > 0)
                    .map(|e| (g, e))
            });
        match &self.inner.engine {
            Engine::Local { rates, .. } => {
                if let Some((g, e)) = extra {
                    rates.observe(now_ms);
                    rates.charge(&p.grant, &g, e);
                }
                let hold = p.hold.take().map(|mut h| {
                    h.set_actual(|i| p.budgets.get(i).map_or(0, actual));
                    h
                });
                Closing {
                    hold,
                    permit: p.permit.take(),
                    redis: None,
                }
            }
            Engine::Redis(_) => Closing {
                hold: None,
                permit: p.permit.take(),
                redis: Some(RedisSettle {
                    limiter: self.clone(),
                    settlement: Settlement::new(
                        &p.grant,
                        &p.id,
                        p.redis_permit,
                        extra,
                        p.budgets.iter().map(|b| (b, actual(b))),
                        p.admitted_ms,
                        now_ms,
                    ),
                }),
            },
        }
    }
}

/// Retries of a spend write that failed on a passing database error (lost connection, busy).
const SETTLE_RETRIES: u32 = 6;

/// Writes a spend that has no ledger row (see [`Limiter::finish`]), retrying passing database
/// failures with backoff (about 15 s in all).
async fn add_spent_with_retries(
    store: &pairgate_store::Store,
    spend: &pairgate_store::Spend,
) -> Result<(), LimitsError> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match store.add_spent(spend).await {
            Err(e) if e.is_transient() && attempt < SETTLE_RETRIES => {
                tracing::warn!(error = %e, grant = %spend.grant_id, attempt, "limits: writing a spend failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 3).min(std::time::Duration::from_secs(5));
                attempt += 1;
            }
            other => return other.map_err(LimitsError::from),
        }
    }
}

impl Admission {
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` after this admission, for
    /// the limits the grant sets (requests: the tighter of per minute and per day).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.headers.clone()
    }

    /// The request finished: replace the reservations by the actual usage (atomically),
    /// charge tokens above the estimate to the per-minute limit, free the permit. (The gateway
    /// settles through [`Admission::settle_deferred`], in the ledger's commit; tests use this.)
    #[cfg(test)]
    pub async fn settle(
        mut self,
        actual: Usage,
        actual_cost_micros: u64,
    ) -> Result<(), LimitsError> {
        match self.pending.take() {
            Some(p) => {
                let limiter = p.limiter.clone();
                limiter
                    .finish(p, Some(Outcome::of(actual, actual_cost_micros)))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Like [`Admission::settle`], except that the budget spend (local backend) is returned as
    /// a hold instead of written, for the usage ledger to write together with the request's row
    /// in its group commit ([`crate::engine::ledger::Ledger::record_closing`]).
    /// On Redis, the settlement is returned to run too ([`Closing::redis`]).
    pub fn settle_deferred(mut self, actual: Usage, actual_cost_micros: u64) -> Closing {
        match self.pending.take() {
            Some(p) => {
                let limiter = p.limiter.clone();
                limiter.close(p, Some(Outcome::of(actual, actual_cost_micros)))
            }
            None => Closing::default(),
        }
    }

    /// [`Admission::release`], returning what is left to do with the ledger row (as
    /// [`Admission::settle_deferred`]).
    pub fn release_deferred(mut self) -> Closing {
        match self.pending.take() {
            Some(p) => p.limiter.clone().close(p, None),
            None => Closing::default(),
        }
    }

    /// The request failed before using anything: drop the reservations, free the permit.
    pub async fn release(mut self) -> Result<(), LimitsError> {
        match self.pending.take() {
            Some(p) => p.limiter.clone().finish(p, None).await,
            None => Ok(()),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let (limiter, grant) = (p.limiter.clone(), p.grant.clone());
                    if let Err(e) = limiter.finish(p, None).await {
                        tracing::warn!(error = %e, grant, "limits: releasing a dropped admission failed; the janitor will");
                    }
                });
            }
            // no runtime: the permit is freed now, the reservations by the janitor
            Err(_) => drop(p),
        }
    }
}
