//! The database's in-use lock: every gateway and every command holds it shared for as long as
//! it uses the database; `pairgate restore` takes it exclusively, so it cannot replace a
//! database under a running gateway, and no gateway can start while a restore runs.
//!
//! - SQLite: an OS advisory lock (`flock`) on a lock file beside the database
//!   (`pairgate.db.lock`), never removed. The database file itself is not used: SQLite takes
//!   its own POSIX locks on it, and a restore renames it.
//! - PostgreSQL: a session-level advisory lock held on a dedicated connection, keyed by the
//!   schema (`current_schema()`), so gateways on other schemas of the same database do not
//!   count. A connection lost (database restart) loses the lock; [`DatabaseLock::refresh`]
//!   takes it again.
//!
//! Both are released by the operating system or the server when the process ends, however it
//! ends: a crashed gateway never leaves a stale lock behind.

use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};

/// First key of PostgreSQL advisory locks taken by pairgate (`"pgat"`); the second is the
/// schema's hash.
const PG_LOCK_CLASS: i32 = 0x7067_6174;

/// Shared: using the database (any number at once). Exclusive: replacing it (nobody else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it in a conflicting mode.
    #[error("the database is in use by another process")]
    Busy,
    #[error("cannot lock {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("database unreachable: {0}")]
    Unreachable(String),
    #[error("cannot take the database lock: {0}")]
    Database(String),
}

/// A held lock; dropping it (or ending the process) releases it.
#[derive(Debug)]
pub struct DatabaseLock {
    mode: LockMode,
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The open lock file: the lock lives as long as it does.
    File { _file: std::fs::File },
    Postgres {
        options: AnyConnectOptions,
        conn: Option<AnyConnection>,
    },
}

/// The lock file of a SQLite database file: `<file>.lock`.
pub fn sqlite_lock_path(database: &Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl DatabaseLock {
    /// Locks a SQLite database through its lock file, created (mode 0600) if missing.
    pub fn sqlite(database: &Path, mode: LockMode) -> Result<DatabaseLock, LockError> {
        let path = sqlite_lock_path(database);
        let fail = |reason: String| LockError::File {
            path: path.clone(),
            reason,
        };
        let mut open = std::fs::OpenOptions::new();
        open.read(true).write(true).create(true).truncate(false);
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let file = open.open(&path).map_err(|e| fail(e.to_string()))?;
        let taken = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match taken {
            Ok(()) => Ok(DatabaseLock {
                mode,
                held: Held::File { _file: file },
            }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy),
            Err(TryLockError::Error(e)) => Err(fail(e.to_string())),
        }
    }

    /// Locks a PostgreSQL schema on a connection of its own, kept open while the lock is held.
    pub async fn postgres(url: &str, mode: LockMode) -> Result<DatabaseLock, LockError> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| LockError::Unreachable(crate::redact_url_error(&e.to_string())))?
            .disable_statement_logging();
        let conn = pg_take(&options, mode).await?;
        Ok(DatabaseLock {
            mode,
            held: Held::Postgres {
                options,
                conn: Some(conn),
            },
        })
    }

    /// The mode this lock is held in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Checks the lock is still held and takes it again when its connection was lost
    /// (PostgreSQL only; a file lock cannot be lost). `Err(Busy)` means a restore took the
    /// database meanwhile.
    pub async fn refresh(&mut self) -> Result<(), LockError> {
        let mode = self.mode;
        let Held::Postgres { options, conn } = &mut self.held else {
            return Ok(());
        };
        if let Some(c) = conn.as_mut()
            && c.ping().await.is_ok()
        {
            return Ok(());
        }
        *conn = None;
        *conn = Some(pg_take(options, mode).await?);
        Ok(())
    }

    /// Releases the lock now (a PostgreSQL connection is closed cleanly).
    pub async fn release(self) {
        if let Held::Postgres {
            conn: Some(conn), ..
        } = self.held
        {
            let _ = conn.close().await;
        }
    }
}

/// How long connecting for the lock may take (the pool's default acquire timeout).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn pg_take(options: &AnyConnectOptions, mode: LockMode) -> Result<AnyConnection, LockError> {
    let redact = |e: sqlx::Error| crate::redact_url_error(&e.to_string());
    let fail = |e: sqlx::Error| LockError::Database(redact(e));
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(LockError::Unreachable(redact(e))),
        Err(_) => {
            return Err(LockError::Unreachable(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    };
    let function = match mode {
        LockMode::Shared => "pg_try_advisory_lock_shared",
        LockMode::Exclusive => "pg_try_advisory_lock",
    };
    let sql = format!("SELECT {function}($1, hashtext(coalesce(current_schema(), '')))");
    let taken: bool = match sqlx::query_scalar(&sql)
        .bind(PG_LOCK_CLASS)
        .fetch_one(&mut conn)
        .await
    {
        Ok(taken) => taken,
        Err(e) => {
            let _ = conn.close().await;
            return Err(fail(e));
        }
    };
    if taken {
        Ok(conn)
    } else {
        let _ = conn.close().await;
        Err(LockError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_share_the_lock_and_a_replacer_waits_for_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pairgate.db");
        let a = DatabaseLock::sqlite(&db, LockMode::Shared).unwrap();
        let b = DatabaseLock::sqlite(&db, LockMode::Shared).unwrap();
        assert!(matches!(
            DatabaseLock::sqlite(&db, LockMode::Exclusive),
            Err(LockError::Busy)
        ));
        drop(a);
        assert!(matches!(
            DatabaseLock::sqlite(&db, LockMode::Exclusive),
            Err(LockError::Busy)
        ));
        drop(b);
        let x = DatabaseLock::sqlite(&db, LockMode::Exclusive).unwrap();
        assert_eq!(x.mode(), LockMode::Exclusive);
        assert!(matches!(
            DatabaseLock::sqlite(&db, LockMode::Shared),
            Err(LockError::Busy)
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sqlite_lock_path(&db))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
