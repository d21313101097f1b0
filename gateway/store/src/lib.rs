//! pairgate's storage: one `Store` over SQLite or PostgreSQL with portable queries. No HTTP types.
//!
//! Every repository function is written once, as a runtime query with `$N` placeholders that both
//! SQLite and PostgreSQL accept, and runs through `sqlx::Any`. Column types are restricted to what
//! both backends share (TEXT, BIGINT, blobs); see docs/ARCHITECTURE.md, "Storage", for why.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod audit;
pub mod budgets;
pub mod changes;
pub mod checkpoint;
pub mod credentials;
mod device;
mod error;
pub mod grants;
pub mod hosts;
pub mod ledger;
mod lock;
mod maintenance;
mod meta;
mod owners;
pub mod passkeys;
pub mod prices;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use audit::AuditEntry;
pub use budgets::{Spend, SpendLine};
pub use credentials::CredentialRow;
pub use device::DeviceRow;
pub use error::StoreError;
pub use grants::{GrantRow, NewRefresh, PairingRow};
pub use hosts::HostApproval;
pub use ledger::{LedgerRow, LedgerSession, RollupRow, UsageFilter};
pub use lock::{DatabaseLock, LockError, LockMode, sqlite_lock_path};
pub use owners::{OwnerRow, SessionRow};
pub use passkeys::{ChallengeRow, PasskeyRemoval, PasskeyRow};
pub use prices::PriceRow;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or `None` for an unsupported scheme.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (also bounds the first connect at start).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A cheap-to-clone handle on the database pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where the request path writes (budgets, ledger). On PostgreSQL the same pool; on SQLite a
    /// pool of one connection (see [`Store::writer`]).
    writer: AnyPool,
    backend: Backend,
    /// The change signal ([`Store::change_epoch`]).
    changes: std::sync::Arc<changes::Changes>,
    /// Sealed credential rows read recently ([`Store::active_value`]).
    credentials: std::sync::Arc<credentials::CredentialCache>,
    /// When the SQLite write pool's log is next checkpointed ([`checkpoint`]).
    checkpoints: std::sync::Arc<checkpoint::Checkpoints>,
}

/// How long a SQLite connection waits for another's lock (SQLite's busy handler) before its
/// statement fails as busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool settings shared by the read and the write pool.
/// `checkpoints`: whether a commit may checkpoint SQLite's log (not on a write pool of its own,
/// see [`checkpoint`]).
fn pool_options(
    backend: Backend,
    max: u32,
    options: &StoreOptions,
    checkpoints: bool,
) -> AnyPoolOptions {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(options.acquire_timeout);
    if backend == Backend::Sqlite {
        pool.after_connect(move |conn, _meta| {
            Box::pin(async move {
                let pragmas = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
                    BUSY_TIMEOUT.as_millis()
                );
                conn.execute(pragmas.as_str()).await?;
                if !checkpoints {
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                }
                Ok(())
            })
        })
    } else {
        // NOTICEs ("relation ... already exists, skipping" at every migration check) would
        // otherwise become log lines, e.g. around a failed start's one-line error.
        pool.after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("SET client_min_messages TO warning").await?;
                Ok(())
            })
        })
    }
}

/// The SQLite URL for a database file, created on first open.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Store {
    /// Opens the pool and checks the database answers. Does not migrate.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or(StoreError::UnsupportedUrl)?;
        // Every statement is a `debug` event of target `sqlx::query` (its SQL text; never the
        // bound values): off unless the log filter asks for it (`log_level =
        // "warn,sqlx::query=debug"`), which is how the tests count statements per request.
        // No slow-statement warnings: under load they would flood the log.
        let connect = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unreachable(redact_url_error(&e.to_string())))?
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(log::LevelFilter::Off, Duration::MAX);
        let max = match backend {
            Backend::Sqlite => options.max_connections.min(8),
            Backend::Postgres => options.max_connections,
        };
        let pool = pool_options(backend, max, options, true)
            .connect_with(connect.clone())
            .await
            .map_err(|e| StoreError::Unreachable(redact_url_error(&e.to_string())))?;
        // An in-memory SQLite database is private to its connection: one pool only.
        let private = url.contains(":memory:") || url.contains("mode=memory");
        let own_writer = backend == Backend::Sqlite && max > 1 && !private;
        let writer = if own_writer {
            pool_options(backend, 1, options, false)
                .connect_with(connect)
                .await
                .map_err(|e| StoreError::Unreachable(redact_url_error(&e.to_string())))?
        } else {
            pool.clone()
        };
        let schema: Option<String> = match backend {
            Backend::Postgres => {
                sqlx::query_scalar::<_, Option<String>>("SELECT CAST(current_schema() AS TEXT)")
                    .fetch_one(&pool)
                    .await
                    .map_err(StoreError::from_sqlx)?
            }
            Backend::Sqlite => None,
        };
        let changes = changes::Changes::new(backend, url, schema.as_deref());
        Ok(Store {
            pool,
            writer,
            backend,
            changes: std::sync::Arc::new(changes),
            credentials: std::sync::Arc::default(),
            checkpoints: std::sync::Arc::new(checkpoint::Checkpoints::new(own_writer)),
        })
    }

    /// Applies every pending forward-only migration for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.backend
            .migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Which engine this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for repositories in this crate and for tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool the request path writes through (budget reservations and settlements, the
    /// usage ledger). SQLite has one writer at a time and a connection that finds the database
    /// locked sleeps in its busy handler (1 ms, then longer), so concurrent write transactions
    /// from several connections of one process queue by sleeping. On SQLite this is a pool of
    /// one connection: writers queue in the pool instead, in order and without sleeping, while
    /// reads keep the other connections (WAL). On PostgreSQL it is the ordinary pool.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Readiness: the database answers and every migration this binary knows is applied.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
        let known = self.backend.migrator().iter().count() as i64;
        if applied < known {
            return Err(StoreError::Migration(format!(
                "{applied} of {known} migrations applied"
            )));
        }
        Ok(())
    }

    /// Closes the pools, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Connection errors can carry the URL, which can carry a password: drop anything after a
/// `://` user-info part.
fn redact_url_error(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for word in message.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        match (word.find("://"), word.find('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                out.push_str(&word[..scheme + 3]);
                out.push_str("***");
                out.push_str(&word[at..]);
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// Milliseconds since the Unix epoch, the time unit of every column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_read_from_the_url_scheme() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
    }

    #[test]
    fn passwords_in_connection_errors_are_redacted() {
        let msg = redact_url_error("cannot reach postgres://bob:hunter2@db:5432/x now");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("postgres://***@db:5432/x"), "{msg}");
    }
}
