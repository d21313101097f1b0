//! The owner's passkeys (WebAuthn credentials), the "require a passkey" setting, and the
//! server-side state of WebAuthn ceremonies (single use, short-lived).

use crate::{Store, StoreError};

/// A registered passkey. `passkey` is the relying-party library's serialised credential (public
/// key, signature counter): nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub owner_id: String,
    /// base64url of the WebAuthn credential id (unique across owners).
    pub credential_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn ceremony in progress; `id_hash` is a keyed digest of the id the browser holds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChallengeRow {
    pub id_hash: String,
    /// `register`, `login` or `second_factor`.
    pub kind: String,
    pub owner_id: Option<String>,
    pub state: String,
    pub expires_at: i64,
}

/// What removing a passkey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRemoval {
    Removed,
    NotFound,
    /// Refused: it is the owner's last passkey and the owner requires a passkey to sign in.
    LastRequired,
}

const PASSKEY_COLUMNS: &str =
    "id, owner_id, credential_id, name, passkey, created_at, last_used_at";

impl Store {
    /// Stores a new passkey; `false` if its credential id is already registered.
    pub async fn insert_passkey(&self, p: &PasskeyRow) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO owner_passkeys (id, owner_id, credential_id, name, passkey, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.owner_id)
        .bind(&p.credential_id)
        .bind(&p.name)
        .bind(&p.passkey)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The owner's passkeys, oldest first.
    pub async fn list_passkeys(&self, owner_id: &str) -> Result<Vec<PasskeyRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM owner_passkeys WHERE owner_id = $1 ORDER BY created_at, id"
        ))
        .bind(owner_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM owner_passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a use: the credential as updated by the assertion (its counter) and the time.
    pub async fn passkey_used(&self, id: &str, passkey: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE owner_passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
            .bind(passkey)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes one of the owner's passkeys, unless it is the last one and the owner requires a
    /// passkey. (Sign-in never depends on this alone: a requirement with no passkey left is not
    /// enforced, so a race between two removals cannot lock the owner out.)
    pub async fn remove_passkey(
        &self,
        owner_id: &str,
        id: &str,
    ) -> Result<PasskeyRemoval, StoreError> {
        let r = sqlx::query(
            "DELETE FROM owner_passkeys WHERE id = $1 AND owner_id = $2 \
             AND ((SELECT require_passkey FROM owners WHERE id = $2) = 0 \
                  OR (SELECT COUNT(*) FROM owner_passkeys WHERE owner_id = $2) > 1)",
        )
        .bind(id)
        .bind(owner_id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            return Ok(PasskeyRemoval::Removed);
        }
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM owner_passkeys WHERE id = $1 AND owner_id = $2",
        )
        .bind(id)
        .bind(owner_id)
        .fetch_one(self.pool())
        .await?;
        Ok(if exists == 0 {
            PasskeyRemoval::NotFound
        } else {
            PasskeyRemoval::LastRequired
        })
    }

    /// Whether a password login of this owner must be completed with a passkey.
    pub async fn owner_requires_passkey(&self, owner_id: &str) -> Result<bool, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT require_passkey FROM owners WHERE id = $1")
            .bind(owner_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(v.unwrap_or(0) != 0)
    }

    /// Turns "require a passkey" on (only if the owner has one: `false` otherwise) or off.
    pub async fn set_require_passkey(
        &self,
        owner_id: &str,
        require: bool,
    ) -> Result<bool, StoreError> {
        let r = if require {
            sqlx::query(
                "UPDATE owners SET require_passkey = 1 WHERE id = $1 \
                 AND EXISTS (SELECT 1 FROM owner_passkeys WHERE owner_id = $1)",
            )
        } else {
            sqlx::query("UPDATE owners SET require_passkey = 0 WHERE id = $1")
        }
        .bind(owner_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores a ceremony's state, first deleting every expired one.
    pub async fn insert_challenge(&self, c: &ChallengeRow, now: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webauthn_challenges WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO webauthn_challenges (id_hash, kind, owner_id, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.id_hash)
        .bind(&c.kind)
        .bind(&c.owner_id)
        .bind(&c.state)
        .bind(c.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes a ceremony's state: deletes it and returns it if it had not expired. Single use: of
    /// two concurrent takes, one gets the row.
    pub async fn take_challenge(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        let row: Option<ChallengeRow> = sqlx::query_as(
            "DELETE FROM webauthn_challenges WHERE id_hash = $1 \
             RETURNING id_hash, kind, owner_id, state, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.filter(|r| r.expires_at > now))
    }
}
