//! What one request must pass (rates, budgets, concurrency) and the wording of every refusal and header.
//!
//! Backend-neutral: [`Plan::new`] turns a [`GrantPolicy`] and a request's estimate into the
//! list of checks; the backends run them and report which failed with the numbers the
//! messages need. Check (and report) order: concurrency, budgets (tokens then cost; day,
//! month, lifetime), rates (requests per minute, per day, tokens per minute).

use pairgate_policy::{Gcra, GrantPolicy, Usage, Window, window_ends_at, window_key};

use super::LimitRejection;

/// A request-rate or token-rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    RequestsPerMinute,
    RequestsPerDay,
    TokensPerMinute,
}

impl RateKind {
    /// Short name used in keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RateKind::RequestsPerMinute => "rpm",
            RateKind::RequestsPerDay => "rpd",
            RateKind::TokensPerMinute => "tpm",
        }
    }

    fn field(self) -> &'static str {
        match self {
            RateKind::RequestsPerMinute => "requests_per_minute",
            RateKind::RequestsPerDay => "requests_per_day",
            RateKind::TokensPerMinute => "tokens_per_minute",
        }
    }
}

/// One rate limit a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCheck {
    pub kind: RateKind,
    /// The policy's number (per minute or per day).
    pub limit: u64,
    pub gcra: Gcra,
    /// Units this request costs (1, or its estimated tokens), saturated to `u32`.
    pub cost: u32,
}

/// A plugin-declared quota (e-mails per day): counted and reserved like a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaKind {
    /// The counter kind stored: `quota:<plugin>/<quota name>`.
    pub counter: &'static str,
    /// The quota's name as the plugin declares it (`messages`).
    pub name: &'static str,
    /// Where the grant sets it, as a JSON pointer (`/resources/resend/messages_per_day`).
    pub field: &'static str,
}

/// A token or cost budget, or a plugin's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    Tokens,
    Cost,
    Quota(QuotaKind),
}

impl BudgetKind {
    /// The counter kind stored (`tokens`, `cost`, `quota:<plugin>/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Tokens => "tokens",
            BudgetKind::Cost => "cost",
            BudgetKind::Quota(q) => q.counter,
        }
    }

    fn field(self) -> String {
        match self {
            BudgetKind::Tokens => "token_budget".to_owned(),
            BudgetKind::Cost => "cost_budget_micros".to_owned(),
            BudgetKind::Quota(q) => q.field.trim_start_matches('/').replace('/', "."),
        }
    }

    fn amount(self, v: u64) -> String {
        match self {
            BudgetKind::Tokens => format!("{v} tokens"),
            BudgetKind::Cost => format!("${}.{:06}", v / 1_000_000, v % 1_000_000),
            BudgetKind::Quota(q) => format!("{v} {}", q.name),
        }
    }
}

/// One quota a request charges: its kind, window and the grant's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCharge {
    pub kind: QuotaKind,
    pub window: Window,
    pub limit: u64,
    /// What this request uses of it (the plugin's charge).
    pub amount: u64,
}

/// The JSON name of a window.
pub fn window_name(w: Window) -> &'static str {
    match w {
        Window::Minute => "per_minute",
        Window::Hour => "hourly",
        Window::Day => "daily",
        Window::Month => "monthly",
        Window::Lifetime => "lifetime",
    }
}

/// One budget window a request reserves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCheck {
    pub kind: BudgetKind,
    pub window: Window,
    /// [`window_key`] at admission.
    pub key: String,
    pub limit: u64,
    /// The estimate to reserve.
    pub amount: u64,
}

/// Every check of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub max_concurrent: Option<u32>,
    pub budgets: Vec<BudgetCheck>,
    pub rates: Vec<RateCheck>,
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The configured budget windows of `policy` for `kind`, with their limits.
pub fn budget_windows(policy: &GrantPolicy, kind: BudgetKind) -> Vec<(Window, u64)> {
    let b = match kind {
        BudgetKind::Tokens => &policy.token_budget,
        BudgetKind::Cost => &policy.cost_budget_micros,
        // quotas come from the plugin's charges (`Plan::with_quotas`)
        BudgetKind::Quota(_) => return Vec::new(),
    };
    [
        (Window::Day, b.daily),
        (Window::Month, b.monthly),
        (Window::Lifetime, b.lifetime),
    ]
    .into_iter()
    .filter_map(|(w, l)| l.map(|l| (w, l)))
    .collect()
}

/// The configured rate limits of `policy`, each with the cost a request of `tokens` has.
pub fn rate_limits(policy: &GrantPolicy, tokens: u64) -> Vec<RateCheck> {
    let mut rates = Vec::new();
    if let Some(n) = policy.requests_per_minute {
        let n = u64::from(n);
        rates.push(RateCheck {
            kind: RateKind::RequestsPerMinute,
            limit: n,
            gcra: Gcra::per_minute(n),
            cost: 1,
        });
    }
    if let Some(n) = policy.requests_per_day {
        let n = u64::from(n);
        rates.push(RateCheck {
            kind: RateKind::RequestsPerDay,
            limit: n,
            gcra: Gcra::per_day(n),
            cost: 1,
        });
    }
    if let Some(n) = policy.tokens_per_minute {
        rates.push(RateCheck {
            kind: RateKind::TokensPerMinute,
            limit: n,
            gcra: Gcra::per_minute(n),
            cost: sat32(tokens),
        });
    }
    rates
}

impl Plan {
    /// The checks for a request estimated at `estimate` and `cost_micros` at `now_ms`.
    pub fn new(policy: &GrantPolicy, estimate: &Usage, cost_micros: u64, now_ms: i64) -> Plan {
        let tokens = estimate.total_tokens();
        let mut budgets = Vec::new();
        for (kind, amount) in [
            (BudgetKind::Tokens, tokens),
            (BudgetKind::Cost, cost_micros),
        ] {
            for (window, limit) in budget_windows(policy, kind) {
                budgets.push(BudgetCheck {
                    kind,
                    window,
                    key: window_key(window, now_ms),
                    limit,
                    amount,
                });
            }
        }
        Plan {
            max_concurrent: policy.max_concurrent,
            budgets,
            rates: rate_limits(policy, tokens),
        }
    }

    /// The same plan reserving `quotas` too (checked after the budgets, in order).
    pub fn with_quotas(mut self, quotas: &[QuotaCharge], now_ms: i64) -> Plan {
        for q in quotas {
            self.budgets.push(BudgetCheck {
                kind: BudgetKind::Quota(q.kind),
                window: q.window,
                key: window_key(q.window, now_ms),
                limit: q.limit,
                amount: q.amount,
            });
        }
        self
    }

    /// Whether the plan checks anything at all.
    pub fn is_empty(&self) -> bool {
        self.max_concurrent.is_none() && self.budgets.is_empty() && self.rates.is_empty()
    }
}

/// Whole seconds to wait, rounded up, for a wait in milliseconds.
pub fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `250ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn rejection(
    code: &'static str,
    message: String,
    retry_after_ms: Option<u64>,
    mut headers: Vec<(&'static str, String)>,
) -> LimitRejection {
    let retry_after_secs = retry_after_ms.map(secs);
    if let Some(s) = retry_after_secs {
        headers.push(("retry-after", s.to_string()));
    }
    LimitRejection {
        code,
        status: 429,
        message,
        retry_after_secs,
        retry_after_ms,
        headers,
    }
}

/// A rate limit refused: `retry_ms` from GCRA (`u64::MAX`: never, the cost exceeds the limit).
pub fn rate_rejection(check: &RateCheck, retry_ms: u64) -> LimitRejection {
    let never = retry_ms == u64::MAX;
    let retry = (!never).then_some(retry_ms);
    let (what, code, suffix) = match check.kind {
        RateKind::RequestsPerMinute => ("requests per minute", "rate_limit_exceeded", "requests"),
        RateKind::RequestsPerDay => ("requests per day", "rate_limit_exceeded", "requests"),
        RateKind::TokensPerMinute => ("tokens per minute", "tokens_per_minute_exceeded", "tokens"),
    };
    let message = if never {
        format!(
            "this request is estimated at {} tokens, more than this grant's limit of {} {what}; \
             lower max_tokens or shorten the input",
            check.cost, check.limit
        )
    } else if check.kind == RateKind::TokensPerMinute {
        format!(
            "rate limit reached: {} {what} ({}); this request is estimated at {} tokens; retry after {} s",
            check.limit,
            check.kind.field(),
            check.cost,
            secs(retry_ms)
        )
    } else {
        format!(
            "rate limit reached: {} {what} ({}); retry after {} s",
            check.limit,
            check.kind.field(),
            secs(retry_ms)
        )
    };
    let mut headers = vec![
        (limit_header(suffix), check.limit.to_string()),
        (remaining_header(suffix), "0".to_owned()),
    ];
    if let Some(ms) = retry {
        headers.push((reset_header(suffix), duration(ms)));
    }
    rejection(code, message, retry, headers)
}

/// A budget window cannot cover the request.
pub fn budget_rejection(
    check: &BudgetCheck,
    spent: u64,
    reserved: u64,
    now_ms: i64,
) -> LimitRejection {
    let window = window_name(check.window);
    let a = |v| check.kind.amount(v);
    let (code, mut message) = match check.kind {
        BudgetKind::Quota(q) => (
            "quota_exceeded",
            format!(
                "this grant's {window} {} quota is used up ({}): limit {}, {} used, {} reserved by requests in flight, \
                 this request needs {}",
                q.name,
                check.kind.field(),
                a(check.limit),
                a(spent),
                a(reserved),
                a(check.amount)
            ),
        ),
        BudgetKind::Tokens | BudgetKind::Cost => {
            let kind = if check.kind == BudgetKind::Tokens {
                "token"
            } else {
                "cost"
            };
            (
                "insufficient_quota",
                format!(
                    "{window} {kind} budget too small for this request ({}.{window}): limit {}, {} spent, {} reserved by requests in flight, \
                     this request needs up to {} (its input plus the most output it may produce)",
                    check.kind.field(),
                    a(check.limit),
                    a(spent),
                    a(reserved),
                    a(check.amount)
                ),
            )
        }
    };
    let fits_later = u128::from(spent) + u128::from(check.amount) <= u128::from(check.limit);
    let retry = if check.amount > check.limit {
        message.push_str(match check.kind {
            BudgetKind::Quota(_) => "; this request alone exceeds the quota",
            _ => "; this request alone exceeds the budget: lower max_tokens (or shorten the input)",
        });
        None
    } else if fits_later && reserved > 0 {
        message.push_str("; it fits once requests in flight finish, retry shortly");
        Some(1000)
    } else {
        match window_ends_at(check.window, now_ms) {
            Some(end) => {
                message.push_str(&format!(
                    "; the budget resets at {}",
                    crate::base::clock::rfc3339(end)
                ));
                Some(u64::try_from(end.saturating_sub(now_ms)).unwrap_or(0))
            }
            None => {
                message.push_str("; a lifetime budget does not reset");
                None
            }
        }
    };
    rejection(code, message, retry, Vec::new())
}

/// `max_concurrent` requests are already in flight.
pub fn concurrency_rejection(max: u32) -> LimitRejection {
    rejection(
        "concurrency_limit_exceeded",
        format!(
            "concurrency limit reached: {max} concurrent requests already in flight (max_concurrent); \
             retry when one finishes"
        ),
        Some(1000),
        Vec::new(),
    )
}

/// The limits backend failed: refuse (fail closed) rather than let unmetered requests through.
/// The request's DPoP proof was already used (claimed by this or another replica): what
/// [`crate::relay`] answers as the proof error it is (401 `invalid_dpop_proof`).
pub fn replay_rejection() -> LimitRejection {
    LimitRejection {
        code: pairgate_protocol::error::codes::INVALID_DPOP_PROOF,
        status: 401,
        message: "this proof was already used (jti replay)".to_owned(),
        retry_after_secs: None,
        retry_after_ms: None,
        headers: Vec::new(),
    }
}

pub fn unavailable() -> LimitRejection {
    LimitRejection {
        code: "limits_unavailable",
        status: 503,
        message: "rate limits and budgets cannot be checked right now; retry shortly".to_owned(),
        retry_after_secs: Some(1),
        retry_after_ms: Some(1000),
        headers: vec![("retry-after", "1".to_owned())],
    }
}

fn limit_header(suffix: &str) -> &'static str {
    if suffix == "tokens" {
        "x-ratelimit-limit-tokens"
    } else {
        "x-ratelimit-limit-requests"
    }
}

fn remaining_header(suffix: &str) -> &'static str {
    if suffix == "tokens" {
        "x-ratelimit-remaining-tokens"
    } else {
        "x-ratelimit-remaining-requests"
    }
}

fn reset_header(suffix: &str) -> &'static str {
    if suffix == "tokens" {
        "x-ratelimit-reset-tokens"
    } else {
        "x-ratelimit-reset-requests"
    }
}

/// The state of one rate limit after a decision: what is left and when it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub kind: RateKind,
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the limit is back to its full burst.
    pub reset_ms: u64,
}

impl RateState {
    /// From a GCRA state `tat_us` (`None`: fresh) at `now_ms`.
    pub fn of(kind: RateKind, limit: u64, gcra: &Gcra, tat_us: Option<i64>, now_ms: i64) -> Self {
        let now = i128::from(now_ms) * 1000;
        let t = i128::from(gcra.emission_interval_us).max(1);
        let tau = t * i128::from(gcra.burst);
        let tat = tat_us.map_or(now, i128::from).max(now);
        let remaining = ((now + tau - tat) / t).clamp(0, i128::from(gcra.burst));
        RateState {
            kind,
            limit,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset_ms: Gcra::ttl_ms(i64::try_from(tat).unwrap_or(i64::MAX), now_ms),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit,
            "remaining": self.remaining,
            "reset_ms": self.reset_ms,
        })
    }
}

/// `x-ratelimit-*` headers: requests from the tighter of the per-minute and per-day limits,
/// tokens from the per-minute token limit. Limits the grant does not set get no header.
pub fn rate_headers(states: &[RateState]) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    let requests = states
        .iter()
        .filter(|s| s.kind != RateKind::TokensPerMinute)
        .min_by_key(|s| s.remaining);
    let tokens = states.iter().find(|s| s.kind == RateKind::TokensPerMinute);
    for (state, suffix) in [(requests, "requests"), (tokens, "tokens")] {
        if let Some(s) = state {
            headers.push((limit_header(suffix), s.limit.to_string()));
            headers.push((remaining_header(suffix), s.remaining.to_string()));
            headers.push((reset_header(suffix), duration(s.reset_ms)));
        }
    }
    headers
}
