//! Budget counters and reservations: reserve before the upstream call, settle after, atomically on SQLite and PostgreSQL.
//!
//! A counter row `(grant_id, kind, window_key)` holds `spent` (settled usage) and
//! `reserved` (estimates of requests in flight). [`Store::reserve_budgets`] takes every
//! window of a request in one transaction of five statements: create missing counters, read
//! them (on PostgreSQL `FOR UPDATE`, in lock order; on SQLite the first statement already holds
//! the single write lock), check every line in Rust, add every reservation in one `UPDATE`,
//! record the reservation lines. Either every line is reserved or none is, and no concurrent
//! transaction can change a counter between its read and its update, so concurrent
//! reservations can never exceed the limit together.
//!
//! Every reserved line is also a `budget_reservations` row with an expiry. Settling or
//! releasing deletes those rows (`DELETE .. RETURNING amount`) and subtracts only what was
//! deleted, so a reservation the janitor already released ([`Store::release_expired_reservations`])
//! is never subtracted twice. Settlements can be batched ([`Store::settle_all`], and the usage
//! ledger's group commit): one `DELETE` for the whole batch, one `UPDATE` per distinct counter.
//! Rows are always locked in (grant, kind, window_key) order, so concurrent transactions on
//! PostgreSQL cannot deadlock. Every write here goes through [`Store::writer`].

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

pub(crate) type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// One reservation to settle: each line's reservation (if still held) is dropped and its
/// `actual` usage added to `spent`. Releasing is settling with `actual = 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation id given to [`Store::reserve_budgets`].
    pub id: String,
    pub grant_id: String,
    pub lines: Vec<SettleLine>,
}

/// One window of a [`Settlement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleLine {
    /// `tokens` or `cost`.
    pub kind: &'static str,
    pub window_key: String,
    /// Usage to add to `spent`.
    pub actual: u64,
}

/// `$a, $a+1, ...` placeholders for `n` tuples of `width` values each, numbered from `first`.
pub(crate) fn tuples(first: usize, n: usize, width: usize) -> String {
    (0..n)
        .map(|t| {
            let ps: Vec<String> = (0..width)
                .map(|c| format!("${}", first + t * width + c))
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(kind = $a AND window_key = $a+1) OR ...` for `n` pairs numbered from `first`.
fn pair_condition(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "(kind = ${} AND window_key = ${})",
                first + 2 * i,
                first + 2 * i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

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

/// A counter row touched by a batch of settlements, with what the batch releases and adds.
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    released: i64,
    actual: i64,
}

impl Store {
    /// Reserves every line for reservation `id` in one transaction, or none of them.
    ///
    /// Five statements whatever the number of lines: create missing counters, read (and on
    /// PostgreSQL lock, in lock order) every counter, check each line in Rust, add every
    /// reservation in one `UPDATE`, and record the reservation lines. On SQLite the first
    /// statement takes the database's write lock, so nothing changes between the read and the
    /// update; on PostgreSQL `FOR UPDATE` does the same for the rows.
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
        let order = lock_order(lines.iter().map(|l| (l.kind, l.window_key.as_str())));
        let n = lines.len();
        let mut tx = self.writer().begin().await?;
        // 1. counters that do not exist yet, in lock order
        let sql = format!(
            "INSERT INTO budget_counters (grant_id, kind, window_key, spent, reserved) VALUES {} \
             ON CONFLICT (grant_id, kind, window_key) DO NOTHING",
            (0..n)
                .map(|i| format!("($1, ${}, ${}, 0, 0)", 2 + 2 * i, 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql).bind(grant_id);
        for &i in &order {
            q = q.bind(lines[i].kind).bind(&lines[i].window_key);
        }
        q.execute(&mut *tx).await?;
        // 2. every counter, locked in order
        let sql = format!(
            "SELECT kind, window_key, spent, reserved FROM budget_counters \
             WHERE grant_id = $1 AND ({}) ORDER BY kind, window_key{}",
            pair_condition(2, n),
            self.lock_clause()
        );
        let mut q = sqlx::query(&sql).bind(grant_id);
        for &i in &order {
            q = q.bind(lines[i].kind).bind(&lines[i].window_key);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut current = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let key: (String, String) = (r.try_get("kind")?, r.try_get("window_key")?);
            current.insert(
                key,
                (
                    r.try_get::<i64, _>("spent")?,
                    r.try_get::<i64, _>("reserved")?,
                ),
            );
        }
        // 3. the first line (in lock order) the budget cannot cover refuses the whole request
        for &i in &order {
            let line = &lines[i];
            let (spent, reserved) = current
                .get(&(line.kind.to_string(), line.window_key.clone()))
                .copied()
                .unwrap_or((0, 0));
            if spent + reserved + clamp_amount(line.amount) > clamp_amount(line.limit) {
                tx.rollback().await?;
                return Ok(Reserve::Refused {
                    index: i,
                    spent: to_u64(spent),
                    reserved: to_u64(reserved),
                });
            }
        }
        // 4. one update for every line
        let case: String = (0..n)
            .map(|i| {
                format!(
                    "WHEN kind = ${} AND window_key = ${} THEN ${} ",
                    2 + 3 * i,
                    3 + 3 * i,
                    4 + 3 * i
                )
            })
            .collect();
        let cond = (0..n)
            .map(|i| format!("(kind = ${} AND window_key = ${})", 2 + 3 * i, 3 + 3 * i))
            .collect::<Vec<_>>()
            .join(" OR ");
        // (the same pairs as `pair_condition`, with an amount after each)
        let sql = format!(
            "UPDATE budget_counters SET reserved = reserved + CASE {case}ELSE 0 END \
             WHERE grant_id = $1 AND ({cond})"
        );
        let mut q = sqlx::query(&sql).bind(grant_id);
        for &i in &order {
            q = q
                .bind(lines[i].kind)
                .bind(&lines[i].window_key)
                .bind(clamp_amount(lines[i].amount));
        }
        q.execute(&mut *tx).await?;
        // 5. the reservation lines
        let sql = format!(
            "INSERT INTO budget_reservations (id, grant_id, kind, window_key, amount, expires_at) \
             VALUES {}",
            (0..n)
                .map(|i| format!(
                    "($1, $2, ${}, ${}, ${}, $3)",
                    4 + 3 * i,
                    5 + 3 * i,
                    6 + 3 * i
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql).bind(id).bind(grant_id).bind(expires_at);
        for &i in &order {
            q = q
                .bind(lines[i].kind)
                .bind(&lines[i].window_key)
                .bind(clamp_amount(lines[i].amount));
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Reserve::Reserved)
    }

    /// ` FOR UPDATE` on PostgreSQL (row locks); nothing on SQLite, where the transaction
    /// already holds the database's only write lock.
    fn lock_clause(&self) -> &'static str {
        match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        }
    }

    /// Settles reservation `id`: for each `(kind, window_key, actual)` the line's reservation
    /// (if still held) is dropped and `actual` is added to `spent`, in one transaction.
    /// Releasing is settling with `actual = 0`.
    pub async fn settle_budgets(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[(&'static str, &str, u64)],
    ) -> Result<(), StoreError> {
        self.settle_all(&[settlement(id, grant_id, lines)], false)
            .await
    }

    /// Retries a settlement whose first attempt failed: a line whose reservation is gone is
    /// skipped (that attempt committed after all, or the line was released), so a retry never
    /// charges the same usage twice.
    pub async fn resettle_budgets(
        &self,
        id: &str,
        grant_id: &str,
        lines: &[(&'static str, &str, u64)],
    ) -> Result<(), StoreError> {
        self.settle_all(&[settlement(id, grant_id, lines)], true)
            .await
    }

    /// Settles several reservations in one transaction (see [`Store::settle_in`]).
    pub async fn settle_all(
        &self,
        settlements: &[Settlement],
        only_held: bool,
    ) -> Result<(), StoreError> {
        if settlements.iter().all(|s| s.lines.is_empty()) {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        self.settle_in(&mut tx, settlements, only_held).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Settles `settlements` inside `tx`: one `DELETE .. RETURNING` takes every reservation line
    /// still held, then one `UPDATE` per distinct counter applies what the whole batch releases
    /// and adds. With `only_held` (a retry), a line whose reservation is gone is skipped. On
    /// PostgreSQL every counter is first locked in (grant, kind, window) order, the order every
    /// other transaction locks in, so concurrent batches cannot deadlock.
    pub(crate) async fn settle_in(
        &self,
        tx: &mut Tx<'_>,
        settlements: &[Settlement],
        only_held: bool,
    ) -> Result<(), StoreError> {
        let ids: Vec<&str> = settlements
            .iter()
            .filter(|s| !s.lines.is_empty())
            .map(|s| s.id.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // what is still held, per (reservation id, kind, window)
        let sql = format!(
            "DELETE FROM budget_reservations WHERE id IN ({}) \
             RETURNING id, kind, window_key, amount",
            (1..=ids.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let mut held = std::collections::HashMap::new();
        for r in q.fetch_all(&mut **tx).await? {
            let key: (String, String, String) = (
                r.try_get("id")?,
                r.try_get("kind")?,
                r.try_get("window_key")?,
            );
            held.insert(key, r.try_get::<i64, _>("amount")?);
        }
        // per counter row: released and actual, summed over the batch
        let mut deltas: std::collections::BTreeMap<(&str, &str, &str), Delta> =
            std::collections::BTreeMap::new();
        for s in settlements {
            for line in &s.lines {
                let key = (s.id.clone(), line.kind.to_string(), line.window_key.clone());
                let released = match held.get(&key) {
                    Some(&amount) => amount,
                    None if only_held => continue,
                    None => 0,
                };
                let d = deltas
                    .entry((s.grant_id.as_str(), line.kind, line.window_key.as_str()))
                    .or_default();
                d.released += released;
                d.actual = d.actual.saturating_add(clamp_amount(line.actual));
            }
        }
        deltas.retain(|_, d| d.released != 0 || d.actual != 0);
        if deltas.is_empty() {
            return Ok(());
        }
        if self.backend() == crate::Backend::Postgres {
            let sql = format!(
                "SELECT 1 FROM budget_counters WHERE (grant_id, kind, window_key) IN ({}) \
                 ORDER BY grant_id, kind, window_key FOR UPDATE",
                tuples(1, deltas.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (g, k, w) in deltas.keys() {
                q = q.bind(*g).bind(*k).bind(*w);
            }
            q.fetch_all(&mut **tx).await?;
        }
        for ((grant_id, kind, window_key), d) in deltas {
            apply(tx, grant_id, kind, window_key, d.released, d.actual).await?;
        }
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
            let mut tx = self.writer().begin().await?;
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

    /// Deletes the counters that hold no reservation of windows that ended: for each key of
    /// `before` (`d:2026-11-20`, `m:2026-11`, `h:2026-11-20T13`, `min:2026-11-20T13:05`), the
    /// windows of its kind (its prefix) that sort before it. No limit reads them again (the
    /// ledger keeps the history). Returns how many went.
    pub async fn prune_budget_counters(&self, before: &[String]) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for key in before {
            // the prefix of the window kind (`d:`, `m:`, `h:`, `min:`); lifetime keys never end
            let Some((prefix, _)) = key.split_once(':') else {
                continue;
            };
            let done = sqlx::query(
                "DELETE FROM budget_counters WHERE reserved = 0 AND window_key LIKE $1 AND window_key < $2",
            )
            .bind(format!("{prefix}:%"))
            .bind(key)
            .execute(self.writer())
            .await?;
            pruned += done.rows_affected();
        }
        Ok(pruned)
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

/// A [`Settlement`] from borrowed `(kind, window_key, actual)` lines.
fn settlement(id: &str, grant_id: &str, lines: &[(&'static str, &str, u64)]) -> Settlement {
    Settlement {
        id: id.to_string(),
        grant_id: grant_id.to_string(),
        lines: lines
            .iter()
            .map(|&(kind, window_key, actual)| SettleLine {
                kind,
                window_key: window_key.to_string(),
                actual,
            })
            .collect(),
    }
}
