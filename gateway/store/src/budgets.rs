//! Budget counters: what each grant has spent per budget window, persisted with the usage ledger's rows.
//!
//! A counter row `(grant_id, kind, window_key)` holds `spent`, the settled usage of answered
//! requests. Reservations of requests in flight are not stored: the local limits backend holds
//! them in memory (they die with the process) and the Redis backend in Redis. `spent` grows only
//! inside the usage ledger's group commit, by the [`Spend`] of a request whose ledger row that
//! same transaction inserted ([`Store::record_usage`]), so after any crash `spent` is exactly the
//! usage of the rows in the ledger, and a retried batch never charges twice. (The `reserved`
//! column and the `budget_reservations` table of earlier versions are no longer written.)

use sqlx::Row;

use crate::{Store, StoreError};

/// Largest amount or limit stored: keeps `spent + reserved + amount` far from `i64` overflow.
pub const MAX_AMOUNT: u64 = 1 << 60;

/// Clamps a `u64` amount to what the counters store.
pub fn clamp_amount(v: u64) -> i64 {
    v.min(MAX_AMOUNT) as i64
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// What one answered request adds to its grant's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// The request whose ledger row carries this spend.
    pub request_id: String,
    pub grant_id: String,
    pub lines: Vec<SpendLine>,
}

/// One window of a [`Spend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendLine {
    /// `tokens`, `cost` or a plugin quota's kind.
    pub kind: &'static str,
    /// The window's counter key (`d:2026-11-20`, `m:2026-11`, `life`).
    pub window_key: String,
    pub amount: u64,
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

/// Adds every line of `spends` to its counter inside `tx`: one multi-row upsert of the distinct
/// counters, in (grant, kind, window) order (the order every transaction touches counters in, so
/// concurrent ones on PostgreSQL cannot deadlock).
pub(crate) async fn add_spent_in<'a>(
    tx: &mut Tx<'_>,
    spends: impl Iterator<Item = &'a Spend>,
) -> Result<(), StoreError> {
    let mut totals: std::collections::BTreeMap<(&str, &str, &str), i64> =
        std::collections::BTreeMap::new();
    for s in spends {
        for l in &s.lines {
            let t = totals
                .entry((s.grant_id.as_str(), l.kind, l.window_key.as_str()))
                .or_default();
            *t = t.saturating_add(clamp_amount(l.amount));
        }
    }
    totals.retain(|_, amount| *amount != 0);
    // 4 parameters a row: far below SQLite's 32,766 and PostgreSQL's 65,535 for any batch
    for chunk in totals.into_iter().collect::<Vec<_>>().chunks(1000) {
        let values = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${}, 0)",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO budget_counters (grant_id, kind, window_key, spent, reserved) \
             VALUES {values} ON CONFLICT (grant_id, kind, window_key) \
             DO UPDATE SET spent = budget_counters.spent + excluded.spent"
        );
        let mut q = sqlx::query(&sql);
        for ((grant_id, kind, window_key), amount) in chunk {
            q = q
                .bind(*grant_id)
                .bind(*kind)
                .bind(*window_key)
                .bind(*amount);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Adds a spend that has no ledger row (tests, and a settlement whose ledger writer is
    /// gone) in a transaction of its own.
    pub async fn add_spent(&self, spend: &Spend) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        add_spent_in(&mut tx, std::iter::once(spend)).await?;
        tx.commit().await?;
        self.wrote();
        Ok(())
    }

    /// What `grant_id` has spent in each `(kind, window_key)` (0 where nothing was), in the
    /// order given: one statement.
    pub async fn budget_spent(
        &self,
        grant_id: &str,
        keys: &[(&str, &str)],
    ) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cond = (0..keys.len())
            .map(|i| format!("(kind = ${} AND window_key = ${})", 2 + 2 * i, 3 + 2 * i))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT kind, window_key, spent FROM budget_counters WHERE grant_id = $1 AND ({cond})"
        );
        let mut q = sqlx::query(&sql).bind(grant_id);
        for (kind, window_key) in keys {
            q = q.bind(*kind).bind(*window_key);
        }
        let mut found = std::collections::HashMap::new();
        for r in q.fetch_all(self.pool()).await? {
            let key: (String, String) = (r.try_get("kind")?, r.try_get("window_key")?);
            found.insert(key, to_u64(r.try_get("spent")?));
        }
        Ok(keys
            .iter()
            .map(|(k, w)| {
                found
                    .get(&(k.to_string(), w.to_string()))
                    .copied()
                    .unwrap_or(0)
            })
            .collect())
    }

    /// Deletes the counters of windows that ended: for each key of `before` (`d:2026-11-20`,
    /// `m:2026-11`, `h:2026-11-20T13`, `min:2026-11-20T13:05`), the windows of its kind (its
    /// prefix) that sort before it. No limit reads them again (the ledger keeps the history).
    /// Returns how many went.
    pub async fn prune_budget_counters(&self, before: &[String]) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for key in before {
            // the prefix of the window kind (`d:`, `m:`, `h:`, `min:`); lifetime keys never end
            let Some((prefix, _)) = key.split_once(':') else {
                continue;
            };
            let done = sqlx::query(
                "DELETE FROM budget_counters WHERE window_key LIKE $1 AND window_key < $2",
            )
            .bind(format!("{prefix}:%"))
            .bind(key)
            .execute(self.writer())
            .await?;
            self.wrote();
            pruned += done.rows_affected();
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(request: &str, amount: u64) -> Spend {
        Spend {
            request_id: request.into(),
            grant_id: "g".into(),
            lines: vec![
                SpendLine {
                    kind: "tokens",
                    window_key: "life".into(),
                    amount,
                },
                SpendLine {
                    kind: "cost",
                    window_key: "d:2026-12-06".into(),
                    amount: amount * 10,
                },
            ],
        }
    }

    /// A chat request's ledger row.
    fn row(id: &str) -> crate::LedgerRow {
        crate::LedgerRow {
            request_id: id.into(),
            endpoint: "chat".into(),
            created_at: 1,
            ..Default::default()
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::connect(
            &crate::sqlite_url(&dir.path().join("b.db")),
            &Default::default(),
        )
        .await
        .unwrap();
        s.migrate().await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn spends_add_up_per_counter_and_read_back_in_the_order_asked() {
        let (_dir, s) = store().await;
        s.add_spent(&spend("r1", 5)).await.unwrap();
        s.add_spent(&spend("r2", 7)).await.unwrap();
        let got = s
            .budget_spent(
                "g",
                &[
                    ("cost", "d:2026-12-06"),
                    ("tokens", "m:2026-12"),
                    ("tokens", "life"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(got, vec![120, 0, 12]);
        assert_eq!(
            s.budget_spent("other", &[("tokens", "life")])
                .await
                .unwrap(),
            vec![0]
        );
    }

    #[tokio::test]
    async fn a_spend_commits_with_its_row_and_a_retried_batch_charges_nothing_twice() {
        let (_dir, s) = store().await;
        let row = crate::LedgerRow {
            request_id: "r1".into(),
            endpoint: "chat".into(),
            created_at: 1,
            ..Default::default()
        };
        // The first attempt committed, but its caller saw an error and retried the batch.
        for _ in 0..2 {
            s.record_usage(std::slice::from_ref(&row), &[spend("r1", 5)])
                .await
                .unwrap();
        }
        // A spend whose row is not in the batch is not charged.
        s.record_usage(&[], &[spend("r2", 100)]).await.unwrap();
        assert_eq!(
            s.budget_spent("g", &[("tokens", "life")]).await.unwrap(),
            vec![5]
        );
    }

    /// A batch of several grants' rows: each counter gets the sum of its own requests' spends;
    /// retrying it with one more row charges only that row (SQLite's first try fails on the rows
    /// already there and the careful script charges what is new).
    #[tokio::test]
    async fn a_batch_charges_each_counter_its_own_requests_and_a_partly_written_retry_only_the_new()
    {
        let (_dir, s) = store().await;
        let of = |grant: &str, request: &str, amount: u64| Spend {
            grant_id: grant.into(),
            ..spend(request, amount)
        };
        let batch = [row("a1"), row("b1"), row("a2")];
        let spends = [of("a", "a1", 1), of("b", "b1", 20), of("a", "a2", 300)];
        s.record_usage(&batch, &spends).await.unwrap();
        let both = [("tokens", "life"), ("cost", "d:2026-12-06")];
        assert_eq!(s.budget_spent("a", &both).await.unwrap(), vec![301, 3010]);
        assert_eq!(s.budget_spent("b", &both).await.unwrap(), vec![20, 200]);
        let retried = [row("a1"), row("b1"), row("a2"), row("b2")];
        let spends = [
            of("a", "a1", 1),
            of("b", "b1", 20),
            of("a", "a2", 300),
            of("b", "b2", 4000),
        ];
        s.record_usage(&retried, &spends).await.unwrap();
        assert_eq!(s.budget_spent("a", &both).await.unwrap(), vec![301, 3010]);
        assert_eq!(s.budget_spent("b", &both).await.unwrap(), vec![4020, 40200]);
        assert_eq!(s.count_usage(&Default::default()).await.unwrap(), 4);
    }

    /// The ledger writer's session: one connection across commits; a step that fails (here the
    /// counters' sum overflows) keeps nothing of itself, drops the connection, and the next
    /// step goes on from a fresh one.
    #[tokio::test]
    async fn a_ledger_session_keeps_its_connection_and_a_failed_step_keeps_nothing() {
        let (_dir, s) = store().await;
        let mut session = s.ledger_session();
        assert!(session.held_for().is_none());
        session
            .record_usage(&[row("r1")], &[spend("r1", 5)])
            .await
            .unwrap();
        assert!(session.held_for().is_some(), "kept for the next commit");
        let overflowing = Spend {
            request_id: "r2".into(),
            grant_id: "g".into(),
            lines: (0..8)
                .map(|_| SpendLine {
                    kind: "tokens",
                    window_key: "life".into(),
                    amount: MAX_AMOUNT,
                })
                .collect(),
        };
        assert!(
            session
                .record_usage(&[row("r2")], &[overflowing])
                .await
                .is_err()
        );
        assert!(session.held_for().is_none(), "a failed step drops it");
        session
            .record_usage(&[row("r3")], &[spend("r3", 7)])
            .await
            .unwrap();
        session.release();
        assert!(session.held_for().is_none());
        let ids = |id: &str| crate::UsageFilter {
            request_id: Some(id.into()),
            ..Default::default()
        };
        assert_eq!(s.count_usage(&ids("r1")).await.unwrap(), 1);
        assert_eq!(s.count_usage(&ids("r2")).await.unwrap(), 0);
        assert_eq!(s.count_usage(&ids("r3")).await.unwrap(), 1);
        assert_eq!(
            s.budget_spent("g", &[("tokens", "life")]).await.unwrap(),
            vec![12]
        );
        // the write pool's one connection is free again: another writer gets it at once
        s.add_spent(&spend("r4", 1)).await.unwrap();
    }

    #[tokio::test]
    async fn ended_windows_are_pruned_and_lifetime_never() {
        let (_dir, s) = store().await;
        s.add_spent(&spend("r1", 5)).await.unwrap();
        let pruned = s
            .prune_budget_counters(&["d:2026-12-07".into(), "m:2026-01".into()])
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        let got = s
            .budget_spent("g", &[("cost", "d:2026-12-06"), ("tokens", "life")])
            .await
            .unwrap();
        assert_eq!(got, vec![0, 5]);
    }
}
