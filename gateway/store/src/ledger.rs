//! The usage ledger: one row per relayed request (batch insert), rollups per grant/model/day, filtered listings.
//!
//! Rows are written in batches by the gateway's ledger task ([`Store::insert_usage`]); a
//! request id is unique, so re-inserting a batch after an uncertain failure never
//! duplicates a row (`ON CONFLICT (request_id) DO NOTHING`). Sums are cast to BIGINT so
//! PostgreSQL does not answer NUMERIC, which `sqlx::Any` cannot decode.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::budgets::Spend;
use crate::{Store, StoreError};

/// One relayed request as metered.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, ts_rs::TS)]
pub struct LedgerRow {
    /// The request's `x-request-id` (unique).
    pub request_id: String,
    pub grant_id: Option<String>,
    pub app_name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// `chat`, `embeddings`, `models`, `resource:<plugin>/<action>`.
    pub endpoint: String,
    /// All input tokens, cached included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_micros: u64,
    /// The usage was estimated (the provider reported none).
    pub estimated: bool,
    /// HTTP status returned to the client.
    pub status: u16,
    pub error_code: Option<String>,
    /// Time spent waiting for the provider, if it was called.
    pub upstream_ms: Option<i64>,
    /// Time from receiving the request to the end of the response.
    pub total_ms: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Usage of one (day, grant, provider, model) group.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, ts_rs::TS)]
pub struct RollupRow {
    /// Start of the UTC day (unix ms).
    pub day_ms: i64,
    pub grant_id: Option<String>,
    pub app_name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_micros: u64,
}

/// Filters for [`Store::recent_usage`] and [`Store::count_usage`]; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub grant_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

const COLUMNS: &str = "request_id, grant_id, app_name, provider, model, endpoint, input_tokens, \
     output_tokens, cached_tokens, cost_micros, estimated, status, error_code, upstream_ms, total_ms, created_at";
const N_COLUMNS: usize = 16;
/// Rows per INSERT statement (16 parameters each; far below SQLite's and PostgreSQL's limits).
const ROWS_PER_STATEMENT: usize = 100;
const MS_PER_DAY: i64 = 86_400_000;

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ledger_row(r: &AnyRow) -> Result<LedgerRow, StoreError> {
    Ok(LedgerRow {
        request_id: r.try_get("request_id")?,
        grant_id: r.try_get("grant_id")?,
        app_name: r.try_get("app_name")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        endpoint: r.try_get("endpoint")?,
        input_tokens: u(r.try_get("input_tokens")?),
        output_tokens: u(r.try_get("output_tokens")?),
        cached_tokens: u(r.try_get("cached_tokens")?),
        cost_micros: u(r.try_get("cost_micros")?),
        estimated: r.try_get::<i64, _>("estimated")? != 0,
        status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
        error_code: r.try_get("error_code")?,
        upstream_ms: r.try_get("upstream_ms")?,
        total_ms: r.try_get("total_ms")?,
        created_at: r.try_get("created_at")?,
    })
}

/// `WHERE ...` for a filter and its bind values, numbered from `$1`.
enum Bind {
    Text(String),
    Int(i64),
}

fn where_clause(f: &UsageFilter) -> (String, Vec<Bind>) {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    let mut push = |cond: &str, b: Bind| {
        binds.push(b);
        conds.push(format!("{cond} ${}", binds.len()));
    };
    if let Some(g) = &f.grant_id {
        push("grant_id =", Bind::Text(g.clone()));
    }
    if let Some(m) = &f.model {
        push("model =", Bind::Text(m.clone()));
    }
    if let Some(s) = f.status {
        push("status =", Bind::Int(i64::from(s)));
    }
    if let Some(r) = &f.request_id {
        push("request_id =", Bind::Text(r.clone()));
    }
    if let Some(from) = f.from_ms {
        push("created_at >=", Bind::Int(from));
    }
    if let Some(to) = f.to_ms {
        push("created_at <", Bind::Int(to));
    }
    if conds.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), binds)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(n) => q.bind(n),
        };
    }
    q
}

impl Store {
    /// Inserts rows in one transaction (multi-row statements of up to 100 rows). Rows whose
    /// request id is already present are skipped.
    pub async fn insert_usage(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.record_usage(rows, &[]).await
    }

    /// Inserts ledger rows and adds their requests' spends to the budget counters in one
    /// transaction: the ledger writer's group commit. A spend is added only if this transaction
    /// inserted its request's row, so a retry of a batch whose first attempt committed after all
    /// charges nothing twice, and `spent` always equals the usage of the rows in the ledger.
    pub async fn record_usage(
        &self,
        rows: &[LedgerRow],
        spends: &[Spend],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        let mut inserted = std::collections::HashSet::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO usage_ledger ({COLUMNS}) VALUES {} ON CONFLICT (request_id) DO NOTHING \
                 RETURNING request_id",
                crate::budgets::tuples(1, chunk.len(), N_COLUMNS)
            );
            let mut q = sqlx::query(&sql);
            for row in chunk {
                q = q
                    .bind(row.request_id.clone())
                    .bind(row.grant_id.clone())
                    .bind(row.app_name.clone())
                    .bind(row.provider.clone())
                    .bind(row.model.clone())
                    .bind(row.endpoint.clone())
                    .bind(i(row.input_tokens))
                    .bind(i(row.output_tokens))
                    .bind(i(row.cached_tokens))
                    .bind(i(row.cost_micros))
                    .bind(i64::from(row.estimated))
                    .bind(i64::from(row.status))
                    .bind(row.error_code.clone())
                    .bind(row.upstream_ms)
                    .bind(row.total_ms)
                    .bind(row.created_at);
            }
            for r in q.fetch_all(&mut *tx).await? {
                inserted.insert(r.try_get::<String, _>("request_id")?);
            }
        }
        if !spends.is_empty() {
            let charged = spends.iter().filter(|s| inserted.contains(&s.request_id));
            crate::budgets::add_spent_in(&mut tx, charged).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Usage per UTC day, grant, provider and model for `from_ms <= created_at < to_ms`,
    /// optionally of one grant; ordered by day, grant, provider, model.
    pub async fn usage_rollup(
        &self,
        from_ms: i64,
        to_ms: i64,
        grant: Option<&str>,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let grant_cond = if grant.is_some() {
            " AND grant_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT (created_at / {MS_PER_DAY}) * {MS_PER_DAY} AS day_ms, grant_id, provider, model, \
             MAX(app_name) AS app_name, COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
             CAST(SUM(cost_micros) AS BIGINT) AS cost_micros \
             FROM usage_ledger WHERE created_at >= $1 AND created_at < $2{grant_cond} \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        );
        let mut q = sqlx::query(&sql).bind(from_ms).bind(to_ms);
        if let Some(g) = grant {
            q = q.bind(g);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(RollupRow {
                    day_ms: r.try_get("day_ms")?,
                    grant_id: r.try_get("grant_id")?,
                    app_name: r.try_get("app_name")?,
                    provider: r.try_get("provider")?,
                    model: r.try_get("model")?,
                    requests: u(r.try_get("requests")?),
                    errors: u(r.try_get("errors")?),
                    input_tokens: u(r.try_get("input_tokens")?),
                    output_tokens: u(r.try_get("output_tokens")?),
                    cached_tokens: u(r.try_get("cached_tokens")?),
                    cost_micros: u(r.try_get("cost_micros")?),
                })
            })
            .collect()
    }

    /// Rows matching `filter`, newest first, for the admin UI.
    pub async fn recent_usage(
        &self,
        filter: &UsageFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let (cond, binds) = where_clause(filter);
        let n = binds.len();
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_ledger{cond} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let q = bind_all(sqlx::query(&sql), binds)
            .bind(limit.max(0))
            .bind(offset.max(0));
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(ledger_row).collect()
    }

    /// How many rows match `filter`.
    pub async fn count_usage(&self, filter: &UsageFilter) -> Result<u64, StoreError> {
        let (cond, binds) = where_clause(filter);
        let sql = format!("SELECT COUNT(*) AS n FROM usage_ledger{cond}");
        let row = bind_all(sqlx::query(&sql), binds)
            .fetch_one(self.pool())
            .await?;
        Ok(u(row.try_get("n")?))
    }
}
