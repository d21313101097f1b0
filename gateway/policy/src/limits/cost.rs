//! Cost of a call in micro-USD from per-million-token prices, in integer arithmetic rounded up.

/// Prices of a model in micro-USD per million tokens (so USD per million tokens × 10^6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prices {
    /// Uncached input (prompt) tokens.
    pub input_per_million_micros: u64,
    /// Output (completion) tokens, reasoning tokens included.
    pub output_per_million_micros: u64,
    /// Input tokens served from the provider's prompt cache; `None`: the input price.
    pub cached_input_per_million_micros: Option<u64>,
}

/// Token usage of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Usage {
    /// All input tokens, **including** `cached_tokens` (OpenAI's `prompt_tokens`; for
    /// Anthropic add `cache_read_input_tokens` to `input_tokens`).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// The part of `input_tokens` read from the cache (capped at `input_tokens`).
    pub cached_tokens: u64,
}

impl Usage {
    /// Input plus output tokens (what token budgets count), saturating.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

const MILLION: u128 = 1_000_000;

/// `ceil(sum(tokens × price) / 10^6)`, saturating at `u64::MAX`. Exact: each product is
/// split into quotient and remainder so the `u128` sum cannot overflow.
pub fn cost_micros(prices: &Prices, usage: &Usage) -> u64 {
    let cached = usage.cached_tokens.min(usage.input_tokens);
    let uncached = usage.input_tokens - cached;
    let cached_price = prices
        .cached_input_per_million_micros
        .unwrap_or(prices.input_per_million_micros);
    let terms = [
        (uncached, prices.input_per_million_micros),
        (cached, cached_price),
        (usage.output_tokens, prices.output_per_million_micros),
    ];
    let (mut whole, mut rest) = (0u128, 0u128);
    for (tokens, price) in terms {
        let product = u128::from(tokens) * u128::from(price);
        whole += product / MILLION;
        rest += product % MILLION;
    }
    let total = whole + rest.div_ceil(MILLION);
    u64::try_from(total).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_table() {
        // gpt-4o-like: $2.50 in, $10 out, $1.25 cached per million tokens
        let p = Prices {
            input_per_million_micros: 2_500_000,
            output_per_million_micros: 10_000_000,
            cached_input_per_million_micros: Some(1_250_000),
        };
        let u = |input_tokens, output_tokens, cached_tokens| Usage {
            input_tokens,
            output_tokens,
            cached_tokens,
        };
        let cases: &[(Prices, Usage, u64)] = &[
            (p, u(0, 0, 0), 0),
            (p, u(1_000_000, 0, 0), 2_500_000),
            (p, u(0, 1_000_000, 0), 10_000_000),
            (p, u(1_000_000, 0, 1_000_000), 1_250_000),
            (p, u(1_000, 500, 200), 2_000 + 250 + 5_000),
            (p, u(1, 0, 0), 3),    // 2.5 rounds up
            (p, u(1, 1, 0), 13),   // 12.5 rounds up once, not per term
            (p, u(10, 0, 50), 13), // cached capped at input: 10 × 1.25 = 12.5
            (
                Prices {
                    cached_input_per_million_micros: None,
                    ..p
                },
                u(10, 0, 10),
                25,
            ),
            (Prices::default(), u(u64::MAX, u64::MAX, 0), 0),
            (
                Prices {
                    input_per_million_micros: u64::MAX,
                    output_per_million_micros: u64::MAX,
                    cached_input_per_million_micros: None,
                },
                u(u64::MAX, u64::MAX, 0),
                u64::MAX,
            ),
        ];
        for (prices, usage, want) in cases {
            assert_eq!(cost_micros(prices, usage), *want, "{prices:?} {usage:?}");
        }
        assert_eq!(u(3, 4, 1).total_tokens(), 7);
        assert_eq!(u(u64::MAX, 4, 0).total_tokens(), u64::MAX);
    }
}
