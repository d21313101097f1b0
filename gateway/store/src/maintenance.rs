//! Maintenance queries the operations commands need: an online copy of a SQLite database, its
//! integrity check and WAL checkpoint, and the database server's clock.

use std::path::Path;

use crate::{Backend, Store, StoreError};

impl Store {
    /// Writes a consistent copy of a SQLite database to `to` (an empty or missing file) while
    /// other connections keep reading and writing (`VACUUM INTO`, one read transaction).
    pub async fn sqlite_copy_into(&self, to: &Path) -> Result<(), StoreError> {
        self.require(Backend::Sqlite, "an online copy")?;
        sqlx::query("VACUUM INTO $1")
            .bind(to.display().to_string())
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: `Ok(())` for a sound file, else what SQLite found.
    pub async fn sqlite_integrity(&self) -> Result<Result<(), String>, StoreError> {
        self.require(Backend::Sqlite, "an integrity check")?;
        let found: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(if found == "ok" { Ok(()) } else { Err(found) })
    }

    /// Moves everything in the write-ahead log into the main file and empties the log, so the
    /// main file alone holds the whole database.
    pub async fn sqlite_checkpoint(&self) -> Result<(), StoreError> {
        self.require(Backend::Sqlite, "a checkpoint")?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// The PostgreSQL server's clock, in seconds since the epoch.
    pub async fn server_clock(&self) -> Result<f64, StoreError> {
        self.require(Backend::Postgres, "a server clock")?;
        sqlx::query_scalar("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)")
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from_sqlx)
    }

    fn require(&self, backend: Backend, what: &str) -> Result<(), StoreError> {
        if self.backend() == backend {
            Ok(())
        } else {
            Err(StoreError::Unsupported(format!(
                "{what} needs {backend:?}, and this database is {:?}",
                self.backend()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreOptions, sqlite_url};

    #[tokio::test]
    async fn a_sqlite_copy_is_sound_and_independent() {
        let dir = tempfile::tempdir().unwrap();
        let live = Store::connect(
            &sqlite_url(&dir.path().join("a.db")),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        live.migrate().await.unwrap();
        live.meta_set("k", "before").await.unwrap();
        let copy_path = dir.path().join("copy.db");
        live.sqlite_copy_into(&copy_path).await.unwrap();
        live.meta_set("k", "after").await.unwrap();
        live.sqlite_checkpoint().await.unwrap();
        assert!(
            live.server_clock().await.is_err(),
            "SQLite has no server clock"
        );
        let copy = Store::connect(&sqlite_url(&copy_path), &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(copy.sqlite_integrity().await.unwrap(), Ok(()));
        assert_eq!(copy.meta_get("k").await.unwrap().as_deref(), Some("before"));
        copy.close().await;
        live.close().await;
    }
}
