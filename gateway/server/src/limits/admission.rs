//! An admitted request's hold on its grant's limits: settle with the real usage, release, or release on drop.

use pairgate_policy::{Gcra, Usage};

use super::local::Permit;
use super::plan::{BudgetCheck, BudgetKind};
use super::redis_backend::SettleLine;
use super::{Engine, Limiter, LimitsError};

/// What a settlement reports.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome {
    pub(super) tokens: u64,
    pub(super) cost_micros: u64,
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

impl Limiter {
    /// Settles (`Some`) or releases (`None`) an admission's hold.
    pub(super) async fn finish(
        &self,
        mut p: Pending,
        outcome: Option<Outcome>,
    ) -> Result<(), LimitsError> {
        let now_ms = pairgate_store::now_ms().max(p.admitted_ms);
        let tokens = outcome.map_or(0, |o| o.tokens);
        let cost = outcome.map_or(0, |o| o.cost_micros);
        let actual = |b: &BudgetCheck| match b.kind {
            BudgetKind::Tokens => tokens,
            BudgetKind::Cost => cost,
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
        let result = match &self.inner.engine {
            Engine::Local { rates, .. } => {
                if let Some((g, e)) = extra {
                    rates.observe(now_ms);
                    rates.charge(&p.grant, &g, e);
                }
                let lines: Vec<_> = p
                    .budgets
                    .iter()
                    .map(|b| (b.kind.as_str(), b.key.as_str(), actual(b)))
                    .collect();
                settle_with_retries(&self.inner.store, &p.id, &p.grant, &lines).await
            }
            Engine::Redis(r) => {
                let lines: Vec<_> = p
                    .budgets
                    .iter()
                    .map(|b| SettleLine {
                        check: b,
                        actual: actual(b),
                    })
                    .collect();
                r.settle(
                    &p.grant,
                    &p.id,
                    p.redis_permit,
                    extra,
                    &lines,
                    p.admitted_ms,
                    now_ms,
                )
                .await
            }
        };
        p.permit.take();
        result
    }
}

/// Retries of a settlement that failed on a passing database error (lost connection, busy).
const SETTLE_RETRIES: u32 = 6;

/// Settles budget lines, retrying passing database failures with backoff (about 15 s in all, so
/// a short outage does not leave the reservation held until the janitor and the usage uncharged).
/// Retries skip lines already settled, so usage is never charged twice.
pub(super) async fn settle_with_retries(
    store: &pairgate_store::Store,
    id: &str,
    grant: &str,
    lines: &[(&str, &str, u64)],
) -> Result<(), LimitsError> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        let result = if attempt == 0 {
            store.settle_budgets(id, grant, lines).await
        } else {
            store.resettle_budgets(id, grant, lines).await
        };
        match result {
            Err(e) if e.is_transient() && attempt < SETTLE_RETRIES => {
                tracing::warn!(error = %e, grant, attempt, "limits: settling failed, retrying");
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
    /// charge tokens above the estimate to the per-minute limit, free the permit.
    pub async fn settle(
        mut self,
        actual: Usage,
        actual_cost_micros: u64,
    ) -> Result<(), LimitsError> {
        match self.pending.take() {
            Some(p) => {
                let limiter = p.limiter.clone();
                let outcome = Outcome {
                    tokens: actual.total_tokens(),
                    cost_micros: actual_cost_micros,
                };
                limiter.finish(p, Some(outcome)).await
            }
            None => Ok(()),
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
