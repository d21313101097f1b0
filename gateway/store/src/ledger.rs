//! The usage ledger: one row per relayed request (batch insert), rollups per grant/model/day, filtered listings.
//!
//! Rows are written in batches by the gateway's ledger task ([`Store::insert_usage`]); a
//! request id is unique, so re-inserting a batch after an uncertain failure never
//! duplicates a row (`ON CONFLICT (request_id) DO NOTHING`). Sums are cast to BIGINT so
//! PostgreSQL does not answer NUMERIC, which `sqlx::Any` cannot decode.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::budgets::Spend;
use crate::{Backend, Store, StoreError};

/// One relayed request as metered.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, ts_rs::TS)]
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
/// Rows per step of [`Store::record_usage`] (16 parameters each, and 5 per spend line: far
/// below SQLite's 32,766 and PostgreSQL's 65,535 for the ledger writer's batches of 200).
const ROWS_PER_STATEMENT: usize = 400;
const MS_PER_DAY: i64 = 86_400_000;
/// Batches of at most this many rows keep their prepared commit in the connection's statement
/// cache; larger ones are prepared for each commit. Each batch size (and mix of spend lines) is
/// a statement text of its own, and a cached 200-row statement holds hundreds of KiB, so caching
/// every size the ledger writer's batches take (1 to 200 rows) grew the gateway by tens of MiB
/// (sqlx keeps 100 per connection); preparing a large one costs a few µs per row it carries.
const KEPT_ROWS: usize = 8;

fn kept(rows: &[LedgerRow]) -> bool {
    rows.len() <= KEPT_ROWS
}

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

/// One atomic step of [`Store::record_usage`]: its SQL and the values it binds.
///
/// PostgreSQL numbers its parameters (`$1`: the rows' 16 values each, then 5 for each spend
/// line). SQLite gets anonymous `?` parameters, bound in the order they appear (the spend lines,
/// then the rows): sqlx looks each numbered one up by name, a scan of the statement's whole
/// parameter list per parameter, which for a batch of rows was most of the commit's CPU.
struct Step<'a> {
    sql: String,
    rows: &'a [LedgerRow],
    spends: Vec<(&'a str, &'a str, &'static str, &'a str, i64)>,
    /// The spend lines' values come first (SQLite).
    spends_first: bool,
    /// The SQL is a SQLite script with its own `BEGIN`/`COMMIT`.
    script: bool,
}

/// Binds each row's 16 values, in [`COLUMNS`] order.
fn bind_rows<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &'q [LedgerRow],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for row in rows {
        q = q
            .bind(row.request_id.as_str())
            .bind(row.grant_id.as_deref())
            .bind(row.app_name.as_deref())
            .bind(row.provider.as_deref())
            .bind(row.model.as_deref())
            .bind(row.endpoint.as_str())
            .bind(i(row.input_tokens))
            .bind(i(row.output_tokens))
            .bind(i(row.cached_tokens))
            .bind(i(row.cost_micros))
            .bind(i64::from(row.estimated))
            .bind(i64::from(row.status))
            .bind(row.error_code.as_deref())
            .bind(row.upstream_ms)
            .bind(row.total_ms)
            .bind(row.created_at);
    }
    q
}

/// `n` tuples of `width` anonymous parameters.
fn anonymous_tuples(n: usize, width: usize) -> String {
    let tuple = format!("({})", vec!["?"; width].join(", "));
    vec![tuple; n].join(", ")
}

impl<'a> Step<'a> {
    /// `own_transaction`: the step runs outside any transaction (SQLite then opens its own).
    fn new(
        backend: Backend,
        rows: &'a [LedgerRow],
        spends: &'a [Spend],
        own_transaction: bool,
    ) -> Step<'a> {
        let ids: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.request_id.as_str()).collect();
        let lines: Vec<_> = spends
            .iter()
            .filter(|s| ids.contains(s.request_id.as_str()))
            .flat_map(|s| {
                s.lines.iter().filter(|l| l.amount != 0).map(|l| {
                    (
                        s.request_id.as_str(),
                        s.grant_id.as_str(),
                        l.kind,
                        l.window_key.as_str(),
                        crate::budgets::clamp_amount(l.amount),
                    )
                })
            })
            .collect();
        let sqlite = backend == Backend::Sqlite;
        let (row_values, line_values) = if sqlite {
            (
                anonymous_tuples(rows.len(), N_COLUMNS),
                anonymous_tuples(lines.len(), 5),
            )
        } else {
            (
                crate::budgets::tuples(1, rows.len(), N_COLUMNS),
                crate::budgets::tuples(1 + rows.len() * N_COLUMNS, lines.len(), 5),
            )
        };
        let insert = format!(
            "INSERT INTO usage_ledger ({COLUMNS}) VALUES {row_values} \
             ON CONFLICT (request_id) DO NOTHING"
        );
        let spent = |from: &str| {
            format!(
                "WITH v (request_id, grant_id, kind, window_key, amount) AS (VALUES {line_values}) \
                 INSERT INTO budget_counters (grant_id, kind, window_key, spent, reserved) \
                 SELECT v.grant_id, v.kind, v.window_key, CAST(SUM(v.amount) AS BIGINT), 0 {from} \
                 GROUP BY v.grant_id, v.kind, v.window_key \
                 ORDER BY v.grant_id, v.kind, v.window_key \
                 ON CONFLICT (grant_id, kind, window_key) \
                 DO UPDATE SET spent = budget_counters.spent + excluded.spent"
            )
        };
        let (sql, script) = match (lines.is_empty(), backend) {
            (true, _) => (insert, false),
            (false, Backend::Postgres) => (
                // the counters' upsert joined on what the rows' insert returned
                spent("FROM v JOIN ins ON ins.request_id = v.request_id").replacen(
                    "WITH v ",
                    &format!("WITH ins AS ({insert} RETURNING request_id), v "),
                    1,
                ),
                false,
            ),
            (false, Backend::Sqlite) => {
                // the counters first, for the requests whose rows are not in the ledger yet
                let spent = spent(
                    "FROM v WHERE NOT EXISTS \
                     (SELECT 1 FROM usage_ledger u WHERE u.request_id = v.request_id)",
                );
                if own_transaction {
                    (format!("BEGIN IMMEDIATE; {spent}; {insert}; COMMIT"), true)
                } else {
                    (format!("{spent}; {insert}"), false)
                }
            }
        };
        Step {
            sql,
            rows,
            spends: lines,
            spends_first: sqlite,
            script,
        }
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql).persistent(kept(self.rows));
        if self.spends_first {
            q = self.bind_spends(q);
        }
        q = bind_rows(q, self.rows);
        if !self.spends_first {
            q = self.bind_spends(q);
        }
        q
    }

    fn bind_spends<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for (request_id, grant_id, kind, window_key, amount) in &self.spends {
            q = q
                .bind(*request_id)
                .bind(*grant_id)
                .bind(*kind)
                .bind(*window_key)
                .bind(*amount);
        }
        q
    }
}

/// SQLite's first try at a group commit, cheaper than [`Step`]'s script: the rows inserted
/// without `ON CONFLICT`, so a request id already in the ledger (only a retried batch has one)
/// fails the whole script and nothing of it is kept; then each counter's spends, summed here, in
/// one upsert. Without that conflict every row is new, so every spend is charged, as the script
/// would have charged it; with it, the script runs instead. `None` (the script then runs at
/// once) when a counter's sum would overflow, which the script refuses.
struct FirstTry<'a> {
    sql: String,
    rows: &'a [LedgerRow],
    counters: Vec<((&'a str, &'static str, &'a str), i64)>,
}

impl<'a> FirstTry<'a> {
    fn new(
        rows: &'a [LedgerRow],
        lines: &[(&'a str, &'a str, &'static str, &'a str, i64)],
    ) -> Option<FirstTry<'a>> {
        let mut counters: Vec<((&'a str, &'static str, &'a str), i64)> = Vec::new();
        for &(_, grant, kind, window, amount) in lines {
            let key = (grant, kind, window);
            match counters.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum = sum.checked_add(amount)?,
                None => counters.push((key, amount)),
            }
        }
        let sql = format!(
            "BEGIN IMMEDIATE; INSERT INTO usage_ledger ({COLUMNS}) VALUES {}; \
             INSERT INTO budget_counters (grant_id, kind, window_key, spent, reserved) VALUES {} \
             ON CONFLICT (grant_id, kind, window_key) \
             DO UPDATE SET spent = budget_counters.spent + excluded.spent; COMMIT",
            anonymous_tuples(rows.len(), N_COLUMNS),
            anonymous_tuples(counters.len(), 4).replace("?)", "?, 0)"),
        );
        Some(FirstTry {
            sql,
            rows,
            counters,
        })
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = bind_rows(
            sqlx::query(&self.sql).persistent(kept(self.rows)),
            self.rows,
        );
        for ((grant, kind, window), amount) in &self.counters {
            q = q.bind(*grant).bind(*kind).bind(*window).bind(*amount);
        }
        q
    }
}

/// The usage ledger writer's connection, kept from one commit to the next while commits keep
/// coming ([`Store::ledger_session`]).
///
/// Each connection sqlx hands back to its pool is tested on the way (a round trip: on SQLite to
/// its worker thread, on PostgreSQL to the server) in a task spawned for it; a writer that
/// returned its connection after every commit paid that, and the thread switches with it, once
/// per answered request. The session keeps the connection instead and lets the caller decide
/// when to give it back ([`LedgerSession::release`]; the ledger writer does when idle, and at
/// least every few milliseconds so the pool's other writers get their turn). A failed step drops
/// the connection (the pool tests it and closes it if it is broken), so a retry starts on a
/// sound one.
#[derive(Debug)]
pub struct LedgerSession {
    store: Store,
    conn: Option<(sqlx::pool::PoolConnection<sqlx::Any>, std::time::Instant)>,
}

impl LedgerSession {
    /// Inserts ledger rows and adds their spends, as [`Store::record_usage`] describes, on the
    /// session's connection (taken from the write pool when it has none).
    pub async fn record_usage(
        &mut self,
        rows: &[LedgerRow],
        spends: &[Spend],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.conn.is_none() {
            let conn = self.store.writer().acquire().await?;
            self.conn = Some((conn, std::time::Instant::now()));
        }
        let Some((conn, _)) = self.conn.as_mut() else {
            return Ok(());
        };
        let conn: &mut sqlx::AnyConnection = conn;
        let done = steps(self.store.backend, conn, rows, spends).await;
        if done.is_err() {
            self.conn = None;
        } else {
            self.store.wrote();
        }
        done
    }

    /// How long the session has held its connection (`None`: it holds none).
    pub fn held_for(&self) -> Option<std::time::Duration> {
        self.conn.as_ref().map(|(_, since)| since.elapsed())
    }

    /// Gives the connection back to the pool.
    pub fn release(&mut self) {
        self.conn = None;
    }
}

/// Runs the steps of one `record_usage` on `conn`.
async fn steps(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    rows: &[LedgerRow],
    spends: &[Spend],
) -> Result<(), StoreError> {
    use sqlx::{Connection, Executor};
    if rows.len() > ROWS_PER_STATEMENT {
        // More than one step (not the ledger writer's batches): one transaction of steps.
        let mut tx = conn.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let step = Step::new(backend, chunk, spends, false);
            step.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    let step = Step::new(backend, rows, spends, true);
    if step.script
        && let Some(first) = FirstTry::new(rows, &step.spends)
    {
        if conn.execute(first.query()).await.is_ok() {
            return Ok(());
        }
        // A row already in the ledger (a retried batch), or anything else: nothing of the try
        // is kept, and the careful script below decides.
        let _ = conn.execute("ROLLBACK").await;
    }
    let done = conn.execute(step.query()).await;
    if done.is_err() && step.script {
        // A statement of the script failed inside its transaction: end it, so the connection
        // goes on as it came (nothing of the script is kept).
        let _ = conn.execute("ROLLBACK").await;
    }
    done?;
    Ok(())
}

impl Store {
    /// Inserts rows in one transaction (multi-row statements of up to 100 rows). Rows whose
    /// request id is already present are skipped.
    pub async fn insert_usage(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.record_usage(rows, &[]).await
    }

    /// Inserts ledger rows and adds their requests' spends to the budget counters atomically:
    /// the ledger writer's group commit, in one round trip to the database. A spend is added
    /// only if this same step inserted its request's row, so a retry of a batch whose first
    /// attempt committed after all charges nothing twice, and `spent` always equals the usage of
    /// the rows in the ledger.
    ///
    /// On PostgreSQL that is one statement (the rows' `INSERT .. RETURNING` in a `WITH`, the
    /// counters' upsert joined on what it returned). SQLite has no writable `WITH`, so there it
    /// is one script, `BEGIN IMMEDIATE`, the counters' upsert of the requests whose rows are not
    /// in the ledger yet, the rows' insert, `COMMIT`, sent to sqlx's SQLite worker at once
    /// instead of one round trip per statement. A cheaper script is tried first (`FirstTry`:
    /// the rows inserted plainly, the spends summed per counter); a row already in the ledger
    /// fails it as a whole, and the careful script runs instead.
    pub async fn record_usage(
        &self,
        rows: &[LedgerRow],
        spends: &[Spend],
    ) -> Result<(), StoreError> {
        self.ledger_session().record_usage(rows, spends).await
    }

    /// Which of `ids` the ledger holds (the journal's replay runs a Redis settlement only for a
    /// row not in it yet).
    pub async fn ledger_holds(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT request_id FROM usage_ledger WHERE request_id IN ({})",
            list.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                r.try_get::<String, _>("request_id")
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// A [`LedgerSession`]: the ledger writer's own use of the write pool.
    pub fn ledger_session(&self) -> LedgerSession {
        LedgerSession {
            store: self.clone(),
            conn: None,
        }
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
