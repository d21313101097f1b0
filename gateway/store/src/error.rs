//! The store's error type: what failed and whether a retry could help.

/// A storage failure. Messages never contain credentials from the database URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("database unreachable: {0}")]
    Unreachable(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("not supported here: {0}")]
    Unsupported(String),
}

impl StoreError {
    /// Wraps a query error.
    pub fn from_sqlx(e: sqlx::Error) -> StoreError {
        StoreError::Query(e)
    }

    /// Whether the same operation may succeed if tried again (pool timeout, lost connection,
    /// SQLite busy).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Query(e) => {
                matches!(
                    e,
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
                ) || e
                    .as_database_error()
                    .map(|d| {
                        let m = d.message();
                        m.contains("database is locked") || m.contains("busy")
                    })
                    .unwrap_or(false)
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e)
    }
}
