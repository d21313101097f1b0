//! Grants (paired apps), pairings, refresh tokens: the rows behind pairing and proof of
//! possession. Single-use steps are conditional updates, so concurrent attempts have one winner.

use sqlx::Row;

use crate::{Store, StoreError};

/// A grant: one paired app, its bound key and its policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct GrantRow {
    pub id: String,
    pub app_name: String,
    /// The grant policy as JSON.
    pub policy: String,
    pub jkt: String,
    pub alg: String,
    pub status: String,
    pub origin: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Grant statuses.
pub mod status {
    pub const ACTIVE: &str = "active";
    pub const SUSPENDED: &str = "suspended";
    pub const REVOKED: &str = "revoked";
}

/// A new refresh token (its hash only).
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub token_hash: String,
    pub expires_at: i64,
}

/// A pairing created by the owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, ts_rs::TS)]
pub struct PairingRow {
    pub id: String,
    #[serde(skip)]
    pub secret_hmac: String,
    pub app_name: Option<String>,
    pub policy: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub grant_id: Option<String>,
}

const GRANT_COLUMNS: &str = "id, app_name, policy, jkt, alg, status, origin, created_at, updated_at, last_used_at, revoked_at";
const PAIRING_COLUMNS: &str =
    "id, secret_hmac, app_name, policy, created_at, expires_at, used_at, cancelled_at, grant_id";

/// How stale a grant's `last_used_at` may be (milliseconds).
pub const TOUCH_INTERVAL_MS: i64 = 60_000;

impl Store {
    pub async fn insert_pairing(&self, p: &PairingRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pairings (id, secret_hmac, app_name, policy, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.secret_hmac)
        .bind(&p.app_name)
        .bind(&p.policy)
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_pairing(&self, id: &str) -> Result<Option<PairingRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PAIRING_COLUMNS} FROM pairings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Pairings not used, cancelled or expired at `now`, newest first.
    pub async fn list_open_pairings(&self, now: i64) -> Result<Vec<PairingRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PAIRING_COLUMNS} FROM pairings \
             WHERE used_at IS NULL AND cancelled_at IS NULL AND expires_at > $1 ORDER BY created_at DESC"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    /// Cancels an unused pairing; false if it was already used, cancelled or unknown.
    pub async fn cancel_pairing(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE pairings SET cancelled_at = $1 WHERE id = $2 AND used_at IS NULL AND cancelled_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Consumes a pairing and creates its grant and first refresh token, atomically. Returns
    /// false (and changes nothing) if the pairing was used, cancelled or expired meanwhile: of two
    /// concurrent redemptions exactly one gets true.
    pub async fn redeem_pairing(
        &self,
        pairing_id: &str,
        now: i64,
        grant: &GrantRow,
        refresh: &NewRefresh,
    ) -> Result<bool, StoreError> {
        let claim = sqlx::query(
            "UPDATE pairings SET used_at = $1, grant_id = $2 \
             WHERE id = $3 AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&grant.id)
        .bind(pairing_id);
        self.claim_and_create_grant(claim, grant, refresh, now)
            .await
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn list_grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants ORDER BY created_at DESC"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// Moves a grant from one of `from` to `to`; false if it was in none of them.
    pub async fn set_grant_status(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut affected = 0;
        for f in from {
            let r = sqlx::query(
                "UPDATE grants SET status = $1, updated_at = $2, \
                 revoked_at = CASE WHEN $1 = 'revoked' THEN $2 ELSE revoked_at END \
                 WHERE id = $3 AND status = $4",
            )
            .bind(to)
            .bind(now)
            .bind(id)
            .bind(*f)
            .execute(self.pool())
            .await?;
            affected += r.rows_affected();
        }
        if to == status::REVOKED && affected > 0 {
            // Ended, not deleted: a later refresh is then answered `grant_revoked`, not
            // "unknown token". They go when they expire.
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE grant_id = $2 AND used_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        }
        if affected > 0 {
            self.announce_change().await;
        }
        Ok(affected > 0)
    }

    /// Replaces the key a grant is bound to (key rotation): only if it is still bound to
    /// `old_jkt`. Refresh tokens of the old key are deleted; the new one is stored.
    pub async fn rotate_grant_key(
        &self,
        id: &str,
        old_jkt: &str,
        new_jkt: &str,
        new_alg: &str,
        now: i64,
        refresh: &NewRefresh,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(
            "UPDATE grants SET jkt = $1, alg = $2, updated_at = $3 WHERE id = $4 AND jkt = $5 AND status = 'active'",
        )
        .bind(new_jkt)
        .bind(new_alg)
        .bind(now)
        .bind(id)
        .bind(old_jkt)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, id, new_jkt, now, refresh).await?;
        tx.commit().await?;
        self.announce_change().await;
        Ok(true)
    }

    /// Replaces the policy of a grant that is not revoked; false if it is revoked or unknown.
    pub async fn set_grant_policy(
        &self,
        id: &str,
        policy: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE grants SET policy = $1, updated_at = $2 WHERE id = $3 AND status <> 'revoked'",
        )
        .bind(policy)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            self.announce_change().await;
        }
        Ok(r.rows_affected() == 1)
    }

    /// Records that a grant was used (best effort, coarse: at most once every
    /// [`TOUCH_INTERVAL_MS`] per grant).
    pub async fn touch_grant(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE grants SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - TOUCH_INTERVAL_MS)
        .execute(self.writer())
        .await?;
        self.wrote();
        Ok(())
    }

    /// The grant and bound key (thumbprint) of a refresh token that is unused and unexpired at
    /// `now`; nothing is consumed (the caller checks the proof and the grant first).
    pub async fn refresh_token_grant(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(GrantRow, String)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT grant_id, jkt FROM refresh_tokens \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let grant_id: String = row.try_get("grant_id")?;
        let jkt: String = row.try_get("jkt")?;
        Ok(self.get_grant(&grant_id).await?.map(|g| (g, jkt)))
    }

    /// The grant and key of a refresh token that was already used (`None` if unknown or unused).
    pub async fn used_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT grant_id, jkt FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("grant_id")?, r.try_get("jkt")?)))
            .transpose()
    }

    /// Marks every unused refresh token of a grant used: the whole token family ends (a reused
    /// refresh token means two parties hold the grant's key). Returns how many were live.
    pub async fn end_refresh_family(&self, grant_id: &str, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE grant_id = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(grant_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Uses a refresh token once and stores its successor, atomically, only while its grant is
    /// active: the status is checked in the same statement, so a suspended (or revoked) grant's
    /// token is not consumed and works again after a resume. Only the key the token is bound to
    /// (`jkt`) can use it; a stolen token presented with another key is not consumed. Returns the
    /// grant id and thumbprint, or `None` if unknown, used, expired, bound elsewhere or its grant
    /// is not active.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        jkt: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Option<(String, String)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND jkt = $3 AND used_at IS NULL AND expires_at > $1 \
             AND EXISTS (SELECT 1 FROM grants WHERE grants.id = refresh_tokens.grant_id AND grants.status = 'active') \
             RETURNING grant_id, jkt",
        )
        .bind(now)
        .bind(token_hash)
        .bind(jkt)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let grant_id: String = row.try_get("grant_id")?;
        let jkt: String = row.try_get("jkt")?;
        insert_refresh(&mut tx, &grant_id, &jkt, now, next).await?;
        tx.commit().await?;
        Ok(Some((grant_id, jkt)))
    }
}

impl Store {
    /// Runs `claim`, a conditional UPDATE marking a pairing or consent request as used, and if it
    /// matched exactly one row creates the grant and its first refresh token in the same
    /// transaction. Returns false, changing nothing, when the claim matched nothing: of two
    /// concurrent redemptions exactly one gets true.
    pub(crate) async fn claim_and_create_grant<'q>(
        &self,
        claim: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        grant: &GrantRow,
        refresh: &NewRefresh,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        if claim.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_grant(&mut tx, grant).await?;
        insert_refresh(&mut tx, &grant.id, &grant.jkt, now, refresh).await?;
        tx.commit().await?;
        Ok(true)
    }
}

pub(crate) async fn insert_grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    g: &GrantRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, app_name, policy, jkt, alg, status, origin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&g.id)
    .bind(&g.app_name)
    .bind(&g.policy)
    .bind(&g.jkt)
    .bind(&g.alg)
    .bind(&g.status)
    .bind(&g.origin)
    .bind(g.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    grant_id: &str,
    jkt: &str,
    now: i64,
    r: &NewRefresh,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, jkt, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&r.token_hash)
    .bind(grant_id)
    .bind(jkt)
    .bind(now)
    .bind(r.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Sets (or with `None`, clears) a grant's optional bearer key digest and expiry.
    pub async fn set_grant_bearer(
        &self,
        id: &str,
        bearer: Option<(&str, i64)>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE grants SET bearer_hash = $1, bearer_expires_at = $2, updated_at = $3 WHERE id = $4 AND status <> 'revoked'",
        )
        .bind(bearer.map(|b| b.0))
        .bind(bearer.map(|b| b.1))
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            self.announce_change().await;
        }
        Ok(r.rows_affected() == 1)
    }

    /// The grant a bearer key digest belongs to, with the key's expiry.
    pub async fn grant_by_bearer(
        &self,
        bearer_hash: &str,
    ) -> Result<Option<(GrantRow, i64)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS}, bearer_expires_at FROM grants WHERE bearer_hash = $1"
        ))
        .bind(bearer_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires: Option<i64> = row.try_get("bearer_expires_at")?;
        let grant = <GrantRow as sqlx::FromRow<'_, sqlx::any::AnyRow>>::from_row(&row)?;
        Ok(Some((grant, expires.unwrap_or(0))))
    }
}
