//! Model prices the owner set from the console, per provider instance (`model_prices`).

use crate::{Store, StoreError};

/// One owner-set price (micro-USD per million tokens).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PriceRow {
    pub provider: String,
    /// Order within the provider's list: the first matching entry wins.
    pub position: i64,
    /// Glob over the provider's model ids (`*` for the fallback).
    pub model: String,
    /// 1: the provider's fallback price (for models nobody else prices).
    pub fallback: i64,
    pub input_micros: i64,
    pub output_micros: i64,
    pub cached_input_micros: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub set_by: String,
    pub set_at: i64,
}

impl Store {
    /// Every owner-set price, by provider and list order.
    pub async fn owner_prices(&self) -> Result<Vec<PriceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT provider, position, model, fallback, input_micros, output_micros, \
             cached_input_micros, max_output_tokens, set_by, set_at FROM model_prices \
             ORDER BY provider, position",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Replaces `provider`'s prices with `rows` (their `provider` is ignored), in one transaction.
    pub async fn replace_owner_prices(
        &self,
        provider: &str,
        rows: &[PriceRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM model_prices WHERE provider = $1")
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO model_prices (provider, position, model, fallback, input_micros, \
                 output_micros, cached_input_micros, max_output_tokens, set_by, set_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(provider)
            .bind(r.position)
            .bind(&r.model)
            .bind(r.fallback)
            .bind(r.input_micros)
            .bind(r.output_micros)
            .bind(r.cached_input_micros)
            .bind(r.max_output_tokens)
            .bind(&r.set_by)
            .bind(r.set_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
