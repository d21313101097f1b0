//! Test support: a fresh store (SQLite file or PostgreSQL schema) and a limiter on each backend.

use std::sync::atomic::{AtomicU32, Ordering};

use pairgate_store::{Store, StoreOptions};
use pairgate_tests::{Backend, TestDb};

use super::{Limiter, LimiterOptions, LimitsBackend};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sql {
    Sqlite,
    Postgres,
}

/// Where the limits live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local(Sql),
    Redis,
}

/// A migrated store that lives as long as this value.
#[derive(Debug)]
pub struct Db {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDb>,
}

pub async fn db(sql: Sql) -> Db {
    let (url, dir, pg) = match sql {
        Sql::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = pairgate_store::sqlite_url(&dir.path().join("t.db"));
            (url, Some(dir), None)
        }
        Sql::Postgres => {
            let pg = TestDb::new(Backend::Postgres).await;
            (pg.url.clone().unwrap(), None, Some(pg))
        }
    };
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        _dir: dir,
        _pg: pg,
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A Redis namespace no other test (or test process) uses.
pub fn namespace() -> String {
    format!(
        "t{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        pairgate_store::now_ms()
    )
}

/// A limiter of `kind`, its database, and (Redis) its namespace.
#[derive(Debug)]
pub struct Env {
    pub limiter: Limiter,
    pub db: Db,
    pub namespace: String,
}

impl Env {
    pub async fn new(kind: Kind) -> Env {
        let sql = match kind {
            Kind::Local(sql) => sql,
            Kind::Redis => Sql::Sqlite,
        };
        let db = db(sql).await;
        let namespace = namespace();
        let limiter = Env::limiter(kind, &db, &namespace).await;
        Env {
            limiter,
            db,
            namespace,
        }
    }

    /// Another limiter on the same state (a second replica, for Redis).
    pub async fn limiter(kind: Kind, db: &Db, namespace: &str) -> Limiter {
        let backend = match kind {
            Kind::Local(_) => LimitsBackend::Local,
            Kind::Redis => {
                pairgate_tests::require_tcp(
                    "127.0.0.1:6379",
                    "Redis",
                    "redis-server --daemonize yes",
                );
                LimitsBackend::Redis {
                    url: REDIS_URL.to_owned(),
                }
            }
        };
        let options = LimiterOptions {
            namespace: namespace.to_owned(),
            ..LimiterOptions::default()
        };
        Limiter::with_options(backend, db.store.clone(), options)
            .await
            .unwrap()
    }

    /// Deletes this test's Redis keys.
    pub async fn cleanup(&self) {
        if let super::Engine::Redis(r) = &self.limiter.inner.engine {
            r.wipe().await.unwrap();
        }
    }
}
