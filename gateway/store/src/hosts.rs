//! Plugin hosts the owner approved from the console, per provider instance (`host_approvals`).

use crate::{Store, StoreError};

/// One approved host of one provider instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct HostApproval {
    pub provider: String,
    pub host: String,
    pub approved_by: String,
    pub approved_at: i64,
}

impl Store {
    /// Every console approval, ordered by provider and host.
    pub async fn host_approvals(&self) -> Result<Vec<HostApproval>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT provider, host, approved_by, approved_at FROM host_approvals ORDER BY provider, host",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Approves `host` for `provider`; false if it was approved already.
    pub async fn approve_host(
        &self,
        provider: &str,
        host: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO host_approvals (provider, host, approved_by, approved_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (provider, host) DO NOTHING",
        )
        .bind(provider)
        .bind(host)
        .bind(actor)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Withdraws a console approval; false if there was none.
    pub async fn revoke_host(&self, provider: &str, host: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM host_approvals WHERE provider = $1 AND host = $2")
            .bind(provider)
            .bind(host)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
