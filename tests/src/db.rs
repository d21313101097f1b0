//! A fresh database for each test: a SQLite file in a temp dir, or a new PostgreSQL schema in the
//! `test` database (dropped when the test ends), so tests can run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

/// PostgreSQL server the suite uses (trust auth).
pub const POSTGRES_BASE: &str = "postgres://postgres@127.0.0.1:5432/test";
const PG_START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    /// `None` for SQLite: the gateway uses its embedded file in the data dir.
    pub url: Option<String>,
    schema: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                url: None,
                schema: None,
            },
            Backend::Postgres => {
                crate::require_tcp("127.0.0.1:5432", "PostgreSQL", PG_START);
                let schema = format!(
                    "t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                admin_exec(&format!("CREATE SCHEMA {schema}")).await;
                let url = format!("{POSTGRES_BASE}?options=-c%20search_path%3D{schema}");
                TestDb {
                    backend,
                    url: Some(url),
                    schema: Some(schema),
                }
            }
        }
    }
}

impl TestDb {
    /// The same PostgreSQL schema again, for a second gateway (a replica). The original owns
    /// the schema and drops it; this one never does.
    pub fn shared(&self) -> TestDb {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "replicas share a PostgreSQL schema; SQLite lives in one data dir"
        );
        TestDb {
            backend: self.backend,
            url: self.url.clone(),
            schema: None,
        }
    }
}

impl TestDb {
    /// The URL that reaches the PostgreSQL server itself, even when the gateway's URL was
    /// pointed at a proxy in between (see `pgproxy`).
    pub fn direct_url(&self) -> Option<String> {
        let url = self.url.as_deref()?;
        let at = url.find('@')? + 1;
        let slash = at + url[at..].find('/')?;
        Some(format!("{}127.0.0.1:5432{}", &url[..at], &url[slash..]))
    }
}

async fn admin_exec(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(POSTGRES_BASE)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL at {POSTGRES_BASE}: {e}; start it with: {PG_START}"
            )
        });
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            // Drop runs inside a test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(admin_exec(&sql));
                }
            })
            .join();
        }
    }
}
