//! Pure policy decisions for pairgate grants: what a request may be, limits, budgets, reservation arithmetic. No I/O.
//!
//! * [`grant`]: the [`GrantPolicy`] an owner attaches to a grant (stored as JSON), its
//!   [`GrantPolicy::validate`], the [`GrantPolicy::is_within`] order and
//!   [`GrantPolicy::narrow`] (consent with edits).
//! * [`body`]: what a request body states for the policy (model, streaming, tools, images,
//!   output cap), read once for every shape.
//! * [`decide`]: the per-request [`check`] and [`model_allowed`] (filters `/v1/models`).
//! * [`limits`]: GCRA rate limiting (mirrored by the Redis script and `governor`), budget
//!   windows, budget reservations, cost in micro-USD and token estimation.
//! * [`native`]: typed views of the providers' native requests (Anthropic Messages, OpenAI
//!   Responses) and the usage their answers and streams report.
//! * [`glob`] and [`net`]: the `*`/`?` patterns and CIDR sets the policy is written in.
//!
//! Nothing here reads a clock, a file, the network or the environment: time is passed in
//! as unix milliseconds and every counter lives with the caller. Everything is
//! deterministic so it can be property-tested (see the `proptests` module).

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod body;
pub mod decide;
pub mod glob;
pub mod grant;
pub mod limits;
pub mod native;
pub mod net;
pub mod schema;

#[cfg(test)]
mod proptests;

pub use decide::{Allowed, Denial, DenialCode, RequestFacts, check, check_access, model_allowed};
pub use grant::{Budget, GrantPolicy, OutputMode, PolicyError, PolicyErrors};
pub use limits::{
    Counter, Exhausted, Gcra, Prices, RetryAfter, Usage, Window, cost_micros,
    estimate_output_from_text, estimate_prompt_tokens, estimate_request, quota, release, reserve,
    settle, try_reserve, window_ends_at, window_key,
};
