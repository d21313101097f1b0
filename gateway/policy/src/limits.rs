//! Rate, budget and cost arithmetic shared by every enforcement backend (memory, SQL, Redis).
//!
//! * [`Gcra`], [`quota`]: request and token rate limits.
//! * [`Window`], [`window_key`], [`window_ends_at`]: UTC calendar windows for budgets.
//! * [`Counter`], [`try_reserve`], [`reserve`], [`settle`], [`release`]: budget
//!   reservations (reserve an estimate before the call, settle the actual usage after).
//! * [`Prices`], [`Usage`], [`cost_micros`]: cost in micro-USD; [`resolve_price`]: which price a
//!   model is charged at (owner, catalogue, dated snapshot's family, fallback).
//! * [`estimate_prompt_tokens`], [`estimate_request`], [`estimate_output_from_text`]:
//!   the conservative estimates reservations start from.

mod cost;
mod estimate;
mod gcra;
mod price;
mod reserve;
mod window;

pub use cost::{Prices, Usage, cost_micros};
pub use estimate::{
    CHARS_PER_TOKEN, IMAGE_PART_TOKENS, TOKENS_PER_MESSAGE, estimate_output_from_text,
    estimate_prompt_tokens, estimate_request,
};
pub use gcra::{Gcra, RetryAfter, quota};
pub use price::{
    CatalogueEntry, ModelPrice, PriceEntry, PriceSource, resolve as resolve_price, snapshot_family,
};
pub use reserve::{Counter, Exhausted, release, reserve, settle, try_reserve};
pub use window::{Window, civil_from_days, window_ends_at, window_key};
