//! Consent requests (RFC 8628 device authorization): an app asks, the owner approves or denies,
//! the app redeems once.

use crate::grants::{GrantRow, NewRefresh};
use crate::{Store, StoreError};

/// An app's consent request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    #[serde(skip)]
    pub device_code_hash: String,
    pub user_code: String,
    pub app_name: String,
    pub requested_policy: String,
    pub granted_policy: Option<String>,
    pub jkt: String,
    pub alg: String,
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_poll_at: Option<i64>,
    pub grant_id: Option<String>,
}

const COLUMNS: &str = "device_code_hash, user_code, app_name, requested_policy, granted_policy, jkt, alg, status, created_at, expires_at, last_poll_at, grant_id";

impl Store {
    pub async fn insert_device_request(&self, d: &DeviceRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_requests (device_code_hash, user_code, app_name, requested_policy, jkt, alg, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(&d.device_code_hash)
        .bind(&d.user_code)
        .bind(&d.app_name)
        .bind(&d.requested_policy)
        .bind(&d.jkt)
        .bind(&d.alg)
        .bind(d.created_at)
        .bind(d.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn device_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM device_requests WHERE user_code = $1"
        ))
        .bind(user_code)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Pending, unexpired requests, newest first.
    pub async fn pending_device_requests(&self, now: i64) -> Result<Vec<DeviceRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM device_requests WHERE status = 'pending' AND expires_at > $1 ORDER BY created_at DESC"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many requests are pending and unexpired.
    pub async fn count_pending_device_requests(&self, now: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM device_requests WHERE status = 'pending' AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    /// The request a device code names, whatever its state.
    pub async fn device_by_code_hash(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM device_requests WHERE device_code_hash = $1"
        ))
        .bind(device_code_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a poll of a request (for `slow_down`).
    pub async fn record_device_poll(
        &self,
        device_code_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE device_requests SET last_poll_at = $1 WHERE device_code_hash = $2")
            .bind(now)
            .bind(device_code_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The owner's decision: `Some(policy)` approves with that (narrowed) policy, `None` denies.
    /// Only a pending, unexpired request can be decided; false otherwise.
    pub async fn decide_device_request(
        &self,
        user_code: &str,
        granted_policy: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let status = if granted_policy.is_some() {
            "approved"
        } else {
            "denied"
        };
        let r = sqlx::query(
            "UPDATE device_requests SET status = $1, granted_policy = $2 \
             WHERE user_code = $3 AND status = 'pending' AND expires_at > $4",
        )
        .bind(status)
        .bind(granted_policy)
        .bind(user_code)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Turns an approved request into a grant, once.
    pub async fn redeem_device_request(
        &self,
        device_code_hash: &str,
        now: i64,
        grant: &GrantRow,
        refresh: &NewRefresh,
    ) -> Result<bool, StoreError> {
        let claim = sqlx::query(
            "UPDATE device_requests SET status = 'redeemed', grant_id = $1 \
             WHERE device_code_hash = $2 AND status = 'approved' AND expires_at > $3",
        )
        .bind(&grant.id)
        .bind(device_code_hash)
        .bind(now);
        self.claim_and_create_grant(claim, grant, refresh, now)
            .await
    }
}
