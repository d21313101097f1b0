//! Model prices the owner sets from the console, and what each provider's models cost.
//!
//! A request under a money budget must be priced ([`crate::relay::pipeline::priced`]); the order
//! is the console's list, the configuration's (`[[providers.<id>.prices]]`), the plugin's
//! catalogue, a dated snapshot's family, then the fallback price (the console's, else the
//! configuration's). See `pairgate_policy::limits::resolve_price`.
//!
//! # When a change is seen
//!
//! Like host approvals (`hosts.rs`): each gateway keeps a snapshot of the console's prices
//! (`engine::console_settings`); a change made here applies to the next request, one made on
//! another replica within 5 s. If the snapshot cannot be read the request is refused
//! (503), never priced on a guess.

use pairgate_policy::limits::PriceEntry;
use pairgate_store::{PriceRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use ts_rs::TS;

use crate::config::providers::PriceConfig;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// A price as the console shows and edits it: USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct PriceView {
    /// Glob over the provider's model ids (`gpt-4o*`); ignored for a fallback (`*`).
    #[serde(default)]
    pub model: String,
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// A catalogue entry of a provider's plugin, for reference.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CataloguePrice {
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub max_output_tokens: u32,
}

/// One provider's prices from every source, for the console.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProviderPrices {
    pub provider: String,
    pub plugin: String,
    /// Set here (editable), in list order.
    pub console: Vec<PriceView>,
    pub console_fallback: Option<PriceView>,
    /// Set in the configuration (read-only here).
    pub config: Vec<PriceView>,
    pub config_fallback: Option<PriceView>,
    /// The plugin's catalogue.
    pub catalogue: Vec<CataloguePrice>,
}

/// The body of `PUT /admin/api/providers/{id}/prices`: the provider's whole console list.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct PricesBody {
    pub prices: Vec<PriceView>,
    #[serde(default)]
    pub fallback: Option<PriceView>,
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

fn view_of(e: &PriceEntry) -> PriceView {
    PriceView {
        model: e.model.clone(),
        input: usd(e.prices.input_per_million_micros),
        output: usd(e.prices.output_per_million_micros),
        cached_input: e.prices.cached_input_per_million_micros.map(usd),
        max_output_tokens: e.max_output_tokens,
    }
}

/// Why the console's prices could not be read or replaced.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("no provider `{0}` is configured")]
    UnknownProvider(String),
    /// A price the owner sent is not usable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every provider's prices, for the console.
pub async fn list(state: &AppState) -> Result<Vec<ProviderPrices>, PriceError> {
    let console = state.owner_prices.current(&state.store).await?;
    Ok(state
        .relay
        .providers()
        .map(|p| {
            let mine = console.get(&p.id).cloned().unwrap_or_default();
            ProviderPrices {
                provider: p.id.clone(),
                plugin: p.plugin.clone(),
                console: mine.list.iter().map(view_of).collect(),
                console_fallback: mine.fallback.as_ref().map(view_of),
                config: p.prices.iter().map(view_of).collect(),
                config_fallback: p.fallback_price.as_ref().map(view_of),
                catalogue: p
                    .descriptor
                    .models
                    .iter()
                    .map(|m| CataloguePrice {
                        model: m.id.clone(),
                        input: usd(m.input_price),
                        output: usd(m.output_price),
                        max_output_tokens: m.max_output_tokens,
                    })
                    .collect(),
            }
        })
        .collect())
}

fn checked(v: &PriceView, model: &str, what: &str) -> Result<PriceEntry, PriceError> {
    PriceConfig {
        model: model.to_string(),
        input: Some(v.input),
        output: Some(v.output),
        cached_input: v.cached_input,
        max_output_tokens: v.max_output_tokens,
    }
    .entry()
    .map_err(|e| PriceError::Invalid(format!("{what}: {e}")))
}

/// Replaces a provider's console prices. Audited as `provider.prices_changed`; applies to this
/// gateway's next request at once.
pub async fn replace(
    state: &AppState,
    provider: &str,
    body: &PricesBody,
    actor: &str,
    now: i64,
) -> Result<(), PriceError> {
    let p: &Provider = state
        .relay
        .provider(provider)
        .ok_or_else(|| PriceError::UnknownProvider(provider.to_string()))?;
    if body.prices.len() > 200 {
        return Err(PriceError::Invalid(
            "at most 200 prices per provider".into(),
        ));
    }
    let mut rows = Vec::new();
    for (i, v) in body.prices.iter().enumerate() {
        let e = checked(v, &v.model, &format!("price {}", i + 1))?;
        rows.push((e, 0));
    }
    if let Some(f) = &body.fallback {
        rows.push((checked(f, "*", "the fallback price")?, 1));
    }
    let micros = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let rows: Vec<PriceRow> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (e, fallback))| PriceRow {
            provider: p.id.clone(),
            position: i as i64,
            model: e.model,
            fallback,
            input_micros: micros(e.prices.input_per_million_micros),
            output_micros: micros(e.prices.output_per_million_micros),
            cached_input_micros: e.prices.cached_input_per_million_micros.map(micros),
            max_output_tokens: e.max_output_tokens.map(i64::from),
            set_by: actor.to_string(),
            set_at: now,
        })
        .collect();
    state.store.replace_owner_prices(&p.id, &rows).await?;
    state
        .store
        .audit(
            actor,
            "provider.prices_changed",
            Some(&p.id),
            Some(&json!({ "prices": body.prices.len(), "fallback": body.fallback.is_some() })),
        )
        .await?;
    state.owner_prices.reload(&state.store).await?;
    Ok(())
}
