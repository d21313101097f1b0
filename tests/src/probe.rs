//! Observing a running gateway from outside, for fault and load tests: its open file descriptors,
//! resident memory and threads (from /proc), its Prometheus gauges (from /metrics), and its usage
//! ledger and budget counters (straight from its database, SQLite file or PostgreSQL schema).

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::{Backend, Gateway};

/// What /proc says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    pub fds: usize,
    pub rss_kib: u64,
    pub threads: u64,
}

/// Reads the gateway's open descriptors, resident set and thread count.
pub fn proc_stats(gw: &Gateway) -> ProcStats {
    let pid = gw.pid().expect("the gateway runs");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    ProcStats {
        fds,
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
    }
}

/// The sum of every series of a metric on `/metrics` (0 when it has none yet).
pub async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = gw.metrics_text().await;
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the gateway has no relayed request in flight, its open descriptors are back to
/// at most `fds_before + slack`, and the fake's streams are closed; panics with what leaked.
pub async fn assert_settled(gw: &Gateway, fds_before: usize, slack: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let in_flight = metric(gw, "pairgate_relay_in_flight").await;
        let fds = proc_stats(gw).fds;
        if in_flight == 0.0 && fds <= fds_before + slack {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {in_flight} relayed requests still in flight, {fds} open descriptors (before: {fds_before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One usage-ledger row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerEntry {
    pub request_id: String,
    pub grant_id: Option<String>,
    pub endpoint: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub estimated: i64,
}

impl LedgerEntry {
    pub fn tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }
}

/// A grant's budget counter in one window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BudgetCounter {
    pub kind: String,
    pub window_key: String,
    pub spent: i64,
    pub reserved: i64,
}

/// What the database holds about a grant's usage.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub ledger: Vec<LedgerEntry>,
    pub counters: Vec<BudgetCounter>,
    /// Reservation rows not yet settled or released.
    pub reservations: i64,
}

impl Books {
    /// The lifetime token counter's (spent, reserved), if the grant has one.
    pub fn lifetime_tokens(&self) -> Option<(i64, i64)> {
        self.counters
            .iter()
            .find(|c| c.kind == "tokens" && c.window_key == "life")
            .map(|c| (c.spent, c.reserved))
    }

    /// Tokens of every ledger row (what settlement charged).
    pub fn ledger_tokens(&self) -> i64 {
        self.ledger.iter().map(LedgerEntry::tokens).sum()
    }

    pub fn has(&self, request_id: &str) -> bool {
        self.ledger.iter().any(|r| r.request_id == request_id)
    }
}

const LEDGER_SQL: &str = "SELECT request_id, grant_id, endpoint, status, error_code, input_tokens, \
    output_tokens, cost_micros, estimated FROM usage_ledger WHERE grant_id = $1 ORDER BY id";
const COUNTERS_SQL: &str = "SELECT kind, window_key, spent, reserved FROM budget_counters \
    WHERE grant_id = $1 ORDER BY kind, window_key";
const RESERVATIONS_SQL: &str = "SELECT COUNT(*) FROM budget_reservations WHERE grant_id = $1";

macro_rules! read_books {
    ($conn:expr, $grant:expr) => {{
        let ledger = sqlx::query_as::<_, LedgerEntry>(LEDGER_SQL)
            .bind($grant)
            .fetch_all(&mut $conn)
            .await
            .unwrap();
        let counters = sqlx::query_as::<_, BudgetCounter>(COUNTERS_SQL)
            .bind($grant)
            .fetch_all(&mut $conn)
            .await
            .unwrap();
        let reservations: i64 = sqlx::query_scalar(RESERVATIONS_SQL)
            .bind($grant)
            .fetch_one(&mut $conn)
            .await
            .unwrap();
        Books {
            ledger,
            counters,
            reservations,
        }
    }};
}

/// Reads a grant's ledger rows and budget state from the gateway's database, once the rows it
/// recorded before the call are written ([`Gateway::ledger_settled`]).
pub async fn books(gw: &Gateway, grant: &str) -> Books {
    gw.ledger_settled().await;
    match gw.db.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", gw.data_dir().join("pairgate.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let b = read_books!(c, grant);
            let _ = c.close().await;
            b
        }
        Backend::Postgres => {
            let url = gw.db.direct_url().expect("a PostgreSQL URL");
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let b = read_books!(c, grant);
            let _ = c.close().await;
            b
        }
    }
}

/// Waits until a grant's ledger has at least `n` rows, then returns its books.
pub async fn books_with(gw: &Gateway, grant: &str, n: usize) -> Books {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = books(gw, grant).await;
        if b.ledger.len() >= n || Instant::now() > deadline {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The grant's limits as the app itself sees them on `GET /v1/grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantUsage {
    /// Lifetime token budget: spent and reserved (0 when the grant has none).
    pub spent: u64,
    pub reserved: u64,
    /// Requests holding a `max_concurrent` permit (0 when the grant has no such limit).
    pub in_flight: u64,
}

pub async fn grant_usage(client: &pairgate_sdk::Client) -> GrantUsage {
    let res = client.get("/v1/grant").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    let life = &v["remaining"]["token_budget"]["lifetime"];
    GrantUsage {
        spent: life["spent"].as_u64().unwrap_or(0),
        reserved: life["reserved"].as_u64().unwrap_or(0),
        in_flight: v["remaining"]["max_concurrent"]["in_flight"]
            .as_u64()
            .unwrap_or(0),
    }
}
