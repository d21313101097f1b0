//! The owner's account and server-side sessions (revocable, listed, "sign out everywhere").

use crate::{Store, StoreError};

/// An owner account. The password hash is Argon2id in PHC format.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OwnerRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A session; `id_hash` is a keyed digest of the cookie value, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct SessionRow {
    #[serde(skip)]
    pub id_hash: String,
    pub owner_id: String,
    #[serde(skip)]
    pub csrf_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
}

impl Store {
    pub async fn owner_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM owners")
            .fetch_one(self.pool())
            .await?)
    }

    /// Creates the owner only if there is none yet; false if one exists.
    pub async fn create_first_owner(&self, o: &OwnerRow) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM owners")
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO owners (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&o.id)
        .bind(&o.username)
        .bind(&o.password_hash)
        .bind(o.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn owner_by_username(&self, username: &str) -> Result<Option<OwnerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, created_at FROM owners WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn owner_by_id(&self, id: &str) -> Result<Option<OwnerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, created_at FROM owners WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn set_owner_password(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE owners SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO owner_sessions (id_hash, owner_id, csrf_hash, created_at, last_seen_at, expires_at, user_agent) \
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(&s.id_hash)
        .bind(&s.owner_id)
        .bind(&s.csrf_hash)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.user_agent)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A live session (not expired, not idle for longer than `idle_ms`), touched as seen.
    pub async fn live_session(
        &self,
        id_hash: &str,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT id_hash, owner_id, csrf_hash, created_at, last_seen_at, expires_at, user_agent \
             FROM owner_sessions WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at > $3",
        )
        .bind(id_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(self.pool())
        .await?;
        if row.as_ref().is_some_and(|r| now - r.last_seen_at > 60_000) {
            sqlx::query("UPDATE owner_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(self.pool())
                .await?;
        }
        Ok(row)
    }

    pub async fn list_sessions(
        &self,
        owner_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id_hash, owner_id, csrf_hash, created_at, last_seen_at, expires_at, user_agent \
             FROM owner_sessions WHERE owner_id = $1 AND expires_at > $2 ORDER BY last_seen_at DESC",
        )
        .bind(owner_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM owner_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Signs the owner out everywhere.
    pub async fn delete_owner_sessions(&self, owner_id: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM owner_sessions WHERE owner_id = $1")
            .bind(owner_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
