//! Budget counters and reservations: reserve before the upstream call, settle after, atomically on SQLite and PostgreSQL.
//!
//! A counter row `(grant_id, kind, window_key)` holds `spent` (settled usage) and
//! `reserved` (estimates of requests in flight). [`Store::reserve_budgets`] takes every
//! window of a request in one transaction: for each line, `INSERT .. ON CONFLICT DO
//! NOTHING` creates the row, then a conditional `UPDATE .. SET reserved = reserved + e
//! WHERE .. AND spent + reserved + e <= limit` reserves; `rows_affected() == 0` means the
//! budget cannot cover it and the transaction is rolled back. No value is read and then
//! written: PostgreSQL re-evaluates the `WHERE` on the latest row version after the row
//! lock (READ COMMITTED), SQLite serializes writers, so concurrent reservations can never
//! exceed the limit together.
//!
//! Every reserved line is also a `budget_reservations` row with an expiry. Settling or
//! releasing deletes those rows (`DELETE .. RETURNING amount`) and subtracts only what was
//! deleted, so a reservation the janitor already released ([`Store::release_expired_reservations`])
//! is never subtracted twice. Rows are always locked in (kind, window_key) order, so
//! concurrent transactions on PostgreSQL cannot deadlock.

use sqlx::Row;

use crate::{Store, StoreError};

/// Largest amount or limit stored: keeps `spent + reserved + amount` far from `i64` overflow.
pub const MAX_AMOUNT: u64 = 1 << 60;

/// Clamps a `u64` amount to what the counters store.
pub fn clamp_amount(v: u64) -> i64 {
    v.min(MAX_AMOUNT) as i64
}

/// One window of one budget a request reserves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    /// `tokens` or `cost`.
    pub kind: &'static str,
    /// The window's counter key (`d:2026-11-20`, `m:2026-11`, `life`).
    pub window_key: String,
    /// The amount to reserve (the estimate).
    pub amount: u64,
    /// The budget's limit in that window.
    pub limit: u64,
}

/// The outcome of [`Store::reserve_budgets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// Every line was reserved.
    Reserved,
    /// The line at `index` (in the order given) could not be reserved; nothing was.
    Refused {
        index: usize,
        spent: u64,
        reserved: u64,
    },
}

/// A counter's current values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterRow {
    pub spent: u64,
    pub reserved: u64,
}

/// Indices of `keys` in (kind, window_key) order: the lock order of every transaction.
fn lock_order<'a>(keys: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<usize> {
    let keys: Vec<_> = keys.collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Deletes one reservation line and returns its amount (`None` if it was already released).
async fn take_reservation(
    tx: &mut Tx<'_>,
    id: &str,
    kind: &str,
    window_key: &str,
    expired_before: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let row =
        match expired_before {
            None => sqlx::query(
                "DELETE FROM budget_reservations WHERE id = $1 AND kind = $2 AND window_key = $3 \
                 RETURNING amount",
            )
            .bind(id)
            .bind(kind)
            .bind(window_key)
            .fetch_optional(&mut **tx)
            .await?,
            Some(now) => sqlx::query(
                "DELETE FROM budget_reservations WHERE id = $1 AND kind = $2 AND window_key = $3 \
                 AND expires_at <= $4 RETURNING amount",
            )
            .bind(id)
            .bind(kind)
            .bind(window_key)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?,
        };
    Ok(match row {
        Some(r) => Some(r.try_get::<i64, _>("amount")?),
        None => None,
    })
}

/// `reserved -= released` (not below zero), `spent += actual`.
async fn apply(
    tx: &mut Tx<'_>,
    grant_id: &str,
    kind: &str,
    window_key: &str,
    released: i64,
    actual: i64,
) -> Result<(), StoreError> {
    if released == 0 && actual == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE budget_counters SET \
         reserved = CASE WHEN reserved > $1 THEN reserved - $1 ELSE 0 END, \
         spent = spent + $2 \
         WHERE grant_id = $3 AND kind = $4 AND window_key = $5",
    )
    .bind(released)
    .bind(actual)
    .bind(grant_id)
    .bind(kind)
    .bind(window_key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Reserves every line for reservation `id` in one transaction, or none of them.
    pub async fn reserve_budgets(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[BudgetLine],
        expires_at: i64,
    ) -> Result<Reserve, StoreError> {
        if lines.is_empty() {
            return Ok(Reserve::Reserved);
        }
        let mut tx = self.pool().begin().await?;
        for i in lock_order(lines.iter().map(|l| (l.kind, l.window_key.as_str()))) {
            let line = &lines[i];
            sqlx::query(
                "INSERT INTO budget_counters (grant_id, kind, window_key, spent, reserved) \
                 VALUES ($1, $2, $3, 0, 0) ON CONFLICT (grant_id, kind, window_key) DO NOTHING",
            )
            .bind(grant_id)
            .bind(line.kind)
            .bind(&line.window_key)
            .execute(&mut *tx)
            .await?;
            let amount = clamp_amount(line.amount);
            let r = sqlx::query(
                "UPDATE budget_counters SET reserved = reserved + $1 \
                 WHERE grant_id = $2 AND kind = $3 AND window_key = $4 \
                 AND spent + reserved + $1 <= $5",
            )
            .bind(amount)
            .bind(grant_id)
            .bind(line.kind)
            .bind(&line.window_key)
            .bind(clamp_amount(line.limit))
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() != 1 {
                let row = sqlx::query(
                    "SELECT spent, reserved FROM budget_counters \
                     WHERE grant_id = $1 AND kind = $2 AND window_key = $3",
                )
                .bind(grant_id)
                .bind(line.kind)
                .bind(&line.window_key)
                .fetch_one(&mut *tx)
                .await?;
                let (spent, reserved) = (row.try_get("spent")?, row.try_get("reserved")?);
                tx.rollback().await?;
                return Ok(Reserve::Refused {
                    index: i,
                    spent: to_u64(spent),
                    reserved: to_u64(reserved),
                });
            }
            sqlx::query(
                "INSERT INTO budget_reservations (id, grant_id, kind, window_key, amount, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(grant_id)
            .bind(line.kind)
            .bind(&line.window_key)
            .bind(amount)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Reserve::Reserved)
    }

    /// Settles reservation `id`: for each `(kind, window_key, actual)` the line's reservation
    /// (if still held) is dropped and `actual` is added to `spent`, in one transaction.
    /// Releasing is settling with `actual = 0`.
    pub async fn settle_budgets(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[(&str, &str, u64)],
    ) -> Result<(), StoreError> {
        self.settle_lines(id, grant_id, lines, false).await
    }

    /// Retries a settlement whose first attempt failed: a line whose reservation is gone is
    /// skipped (that attempt committed after all, or the line was released), so a retry never
    /// charges the same usage twice.
    pub async fn resettle_budgets(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[(&str, &str, u64)],
    ) -> Result<(), StoreError> {
        self.settle_lines(id, grant_id, lines, true).await
    }

    async fn settle_lines(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[(&str, &str, u64)],
        only_held: bool,
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for i in lock_order(lines.iter().map(|&(k, w, _)| (k, w))) {
            let (kind, window_key, actual) = lines[i];
            let released = match take_reservation(&mut tx, id, kind, window_key, None).await? {
                Some(amount) => amount,
                None if only_held => continue,
                None => 0,
            };
            apply(
                &mut tx,
                grant_id,
                kind,
                window_key,
                released,
                clamp_amount(actual),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Releases up to `max` reservations whose `expires_at <= now` (requests that never
    /// settled: a crashed process, a lost task). Returns how many lines were released.
    pub async fn release_expired_reservations(
        &self,
        now: i64,
        max: i64,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, grant_id, kind, window_key FROM budget_reservations \
             WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(max)
        .fetch_all(self.pool())
        .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for r in rows {
            lines.push((
                r.try_get::<String, _>("id")?,
                r.try_get::<String, _>("grant_id")?,
                r.try_get::<String, _>("kind")?,
                r.try_get::<String, _>("window_key")?,
            ));
        }
        lines.sort();
        let mut released = 0;
        // one transaction per reservation id, lines in lock order (sorted above)
        for group in lines.chunk_by(|a, b| a.0 == b.0) {
            let mut tx = self.pool().begin().await?;
            for (id, grant_id, kind, window_key) in group {
                // None: settled or released meanwhile by its own request
                if let Some(amount) =
                    take_reservation(&mut tx, id, kind, window_key, Some(now)).await?
                {
                    apply(&mut tx, grant_id, kind, window_key, amount, 0).await?;
                    released += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(released)
    }

    /// Deletes the counters of day windows before `day_key` and month windows before
    /// `month_key` (keys as `d:2026-11-20`, `m:2026-11`) that hold no reservation: ended
    /// windows no limit reads again (the ledger keeps the history). Returns how many went.
    pub async fn prune_budget_counters(
        &self,
        day_key: &str,
        month_key: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM budget_counters WHERE reserved = 0 AND \
             ((window_key LIKE 'd:%' AND window_key < $1) OR \
              (window_key LIKE 'm:%' AND window_key < $2))",
        )
        .bind(day_key)
        .bind(month_key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The counter of one budget window (zeros when nothing was ever reserved there).
    pub async fn budget_counter(
        &self,
        grant_id: &str,
        kind: &str,
        window_key: &str,
    ) -> Result<CounterRow, StoreError> {
        let row = sqlx::query(
            "SELECT spent, reserved FROM budget_counters \
             WHERE grant_id = $1 AND kind = $2 AND window_key = $3",
        )
        .bind(grant_id)
        .bind(kind)
        .bind(window_key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => CounterRow {
                spent: to_u64(r.try_get("spent")?),
                reserved: to_u64(r.try_get("reserved")?),
            },
            None => CounterRow::default(),
        })
    }

    /// How many reservation lines are held (for metrics and tests).
    pub async fn count_reservations(&self, grant_id: Option<&str>) -> Result<i64, StoreError> {
        let n = match grant_id {
            Some(g) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations WHERE grant_id = $1")
                    .bind(g)
                    .fetch_one(self.pool())
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations")
                    .fetch_one(self.pool())
                    .await?
            }
        };
        Ok(n)
    }
}
