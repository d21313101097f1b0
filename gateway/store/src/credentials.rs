//! Provider credentials: sealed values (data key wrapped under the master key, value encrypted
//! under the data key) or references to a value kept elsewhere. This module only moves bytes; the
//! server's custody code seals and opens them.
//!
//! Writes that store bytes sealed under the master key (insert, replace, rewrap) are *fenced* on
//! the `master_key_id` meta value: they lock that row (`UPDATE meta ... WHERE value = $kid`)
//! first, in the same transaction. A process still holding a rotated-out master key therefore
//! cannot store data the new key cannot open, and a rotation never misses a row written
//! concurrently (on SQLite the write lock, on PostgreSQL the row lock, orders them).

use sqlx::Row;

use crate::{Store, StoreError};

/// Meta key naming the master key everything is currently sealed under (its 16-hex key id).
pub const MASTER_KEY_ID: &str = "master_key_id";

/// Credential kinds (the `kind` column).
pub mod kind {
    /// A value sealed in the database.
    pub const STORED: &str = "stored";
    /// A JSON reference to a value kept outside (env, file, keychain, command).
    pub const REFERENCE: &str = "reference";
}

/// One `credentials` row. `Debug` and `Serialize` never show the sealed blobs (not even
/// encrypted), only whether they are there.
#[derive(Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct CredentialRow {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub kind: String,
    #[serde(skip)]
    pub wrapped_dek: Option<Vec<u8>>,
    #[serde(skip)]
    pub ciphertext: Option<Vec<u8>>,
    /// JSON credential reference when `kind` is `reference` (names a source, holds no secret).
    pub reference: Option<String>,
    pub fingerprint: String,
    pub last4: String,
    #[serde(skip)]
    pub previous_wrapped_dek: Option<Vec<u8>>,
    #[serde(skip)]
    pub previous_ciphertext: Option<Vec<u8>>,
    /// Until when the previous value (before the last rotation) is still usable.
    pub previous_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        f.debug_struct("CredentialRow")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("wrapped_dek_len", &len(&self.wrapped_dek))
            .field("ciphertext_len", &len(&self.ciphertext))
            .field("reference", &self.reference)
            .field("fingerprint", &self.fingerprint)
            .field("last4", &self.last4)
            .field("previous_ciphertext_len", &len(&self.previous_ciphertext))
            .field("previous_until", &self.previous_until)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A sealed value as stored: wrapped data key and ciphertext. `Debug` shows lengths only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlobs {
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBlobs")
            .field("wrapped_dek_len", &self.wrapped_dek.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// What a credential resolves to right now: its current value and, during a rotation's grace
/// period, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveValue {
    pub id: String,
    pub provider: String,
    pub name: String,
    /// The current value: sealed blobs, or `None` for a reference (see `reference`).
    pub current: Option<SealedBlobs>,
    pub reference: Option<String>,
    /// The previous sealed value and until when it stays usable (only while `until > now`).
    pub previous: Option<(SealedBlobs, i64)>,
}

/// The new value a rotation stores, with its display fields.
#[derive(Debug, Clone)]
pub struct Replacement<'a> {
    pub sealed: &'a SealedBlobs,
    pub fingerprint: &'a str,
    pub last4: &'a str,
    /// Keep the current value as the previous one until then; `None` drops it now.
    pub previous_until: Option<i64>,
}

/// The wrapped data keys of one stored credential, for master-key rotation.
#[derive(Debug, Clone)]
pub struct WrappedKeys {
    pub id: String,
    pub provider: String,
    pub wrapped_dek: Vec<u8>,
    pub previous_wrapped_dek: Option<Vec<u8>>,
}

/// The outcome of a fenced write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced<T> {
    /// Written.
    Done(T),
    /// Nothing written: the master key was rotated since this process loaded it.
    KeyChanged,
}

/// The outcome of [`Store::insert_credential`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// A credential with this provider and name exists; nothing was written.
    Duplicate,
}

/// The outcome of [`Store::rewrap_credentials`].
#[derive(Debug)]
pub enum Rewrapped<E> {
    /// Every row re-wrapped and the meta values written, in one transaction.
    Done { credentials: usize },
    /// Nothing changed: `master_key_id` no longer names the old key.
    KeyChanged,
    /// The re-wrap function failed for a row; nothing changed.
    Failed(E),
}

const COLUMNS: &str = "id, provider, name, kind, wrapped_dek, ciphertext, reference, fingerprint, last4, \
     previous_wrapped_dek, previous_ciphertext, previous_until, created_at, updated_at";

/// Locks the `master_key_id` row if it still names `kid`; false if it does not.
async fn fence(conn: &mut sqlx::AnyConnection, kid: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE meta SET value = value WHERE key = $1 AND value = $2")
        .bind(MASTER_KEY_ID)
        .bind(kid)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Longest a credential row is used from memory without a reload, whatever the change signal.
pub const CREDENTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Credential rows by (provider, name), with the epoch and time they were read.
pub(crate) type CredentialCache = std::sync::Mutex<
    std::collections::HashMap<
        (String, String),
        (
            u64,
            std::time::Instant,
            Option<std::sync::Arc<CredentialRow>>,
        ),
    >,
>;

impl Store {
    /// The row of credential `provider`/`name`, from memory when still valid.
    async fn cached_credential(
        &self,
        provider: &str,
        name: &str,
    ) -> Result<Option<std::sync::Arc<CredentialRow>>, StoreError> {
        let epoch = self.change_epoch();
        let key = (provider.to_owned(), name.to_owned());
        {
            let cache = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at_epoch, read_at, row)) = cache.get(&key)
                && *at_epoch == epoch
                && read_at.elapsed() < CREDENTIAL_MAX_AGE
            {
                return Ok(row.clone());
            }
        }
        let row = self
            .credential_by_name(provider, name)
            .await?
            .map(std::sync::Arc::new);
        let mut cache = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        // bounded by the providers configured (a handful); a stray name cannot grow it much
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(key, (epoch, std::time::Instant::now(), row.clone()));
        Ok(row)
    }

    /// Inserts a credential, fenced on `master_key_id` = `kid`.
    pub async fn insert_credential(
        &self,
        row: &CredentialRow,
        kid: &str,
    ) -> Result<Fenced<Inserted>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !fence(&mut tx, kid).await? {
            tx.rollback().await?;
            return Ok(Fenced::KeyChanged);
        }
        let r = sqlx::query(&format!(
            "INSERT INTO credentials ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (provider, name) DO NOTHING"
        ))
        .bind(&row.id)
        .bind(&row.provider)
        .bind(&row.name)
        .bind(&row.kind)
        .bind(row.wrapped_dek.clone())
        .bind(row.ciphertext.clone())
        .bind(&row.reference)
        .bind(&row.fingerprint)
        .bind(&row.last4)
        .bind(row.previous_wrapped_dek.clone())
        .bind(row.previous_ciphertext.clone())
        .bind(row.previous_until)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Fenced::Done(Inserted::Duplicate));
        }
        tx.commit().await?;
        self.announce_change().await;
        Ok(Fenced::Done(Inserted::Yes))
    }

    pub async fn get_credential(&self, id: &str) -> Result<Option<CredentialRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM credentials WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn credential_by_name(
        &self,
        provider: &str,
        name: &str,
    ) -> Result<Option<CredentialRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE provider = $1 AND name = $2"
        ))
        .bind(provider)
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every credential, by provider and name. The sealed columns are not read (left `None`).
    pub async fn list_credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, provider, name, kind, NULL AS wrapped_dek, NULL AS ciphertext, reference, \
             fingerprint, last4, NULL AS previous_wrapped_dek, NULL AS previous_ciphertext, \
             previous_until, created_at, updated_at \
             FROM credentials ORDER BY provider, name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes a credential; false if there was none.
    pub async fn delete_credential(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM credentials WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 1 {
            self.announce_change().await;
        }
        Ok(r.rows_affected() == 1)
    }

    /// Rotation of a stored value: the current value becomes the previous one (usable until
    /// `previous_until`, or dropped when that is `None`) and the new one is stored. Fenced on
    /// `kid`. Returns false if there is no stored credential with this id.
    pub async fn replace_credential_value(
        &self,
        id: &str,
        new: &Replacement<'_>,
        now: i64,
        kid: &str,
    ) -> Result<Fenced<bool>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !fence(&mut tx, kid).await? {
            tx.rollback().await?;
            return Ok(Fenced::KeyChanged);
        }
        let keep = new.previous_until.is_some();
        let r = sqlx::query(
            "UPDATE credentials SET \
               previous_wrapped_dek = CASE WHEN $1 = 1 THEN wrapped_dek ELSE NULL END, \
               previous_ciphertext = CASE WHEN $1 = 1 THEN ciphertext ELSE NULL END, \
               previous_until = $2, wrapped_dek = $3, ciphertext = $4, fingerprint = $5, \
               last4 = $6, updated_at = $7 \
             WHERE id = $8 AND kind = $9",
        )
        .bind(i64::from(keep))
        .bind(new.previous_until)
        .bind(new.sealed.wrapped_dek.clone())
        .bind(new.sealed.ciphertext.clone())
        .bind(new.fingerprint)
        .bind(new.last4)
        .bind(now)
        .bind(id)
        .bind(kind::STORED)
        .execute(&mut *tx)
        .await?;
        let found = r.rows_affected() == 1;
        tx.commit().await?;
        if found {
            self.announce_change().await;
        }
        Ok(Fenced::Done(found))
    }

    /// Drops previous values whose grace period has ended; returns how many.
    pub async fn clear_expired_previous(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE credentials SET previous_wrapped_dek = NULL, previous_ciphertext = NULL, \
             previous_until = NULL WHERE previous_until IS NOT NULL AND previous_until <= $1",
        )
        .bind(now)
        .execute(self.pool())
        .await?;
        if r.rows_affected() > 0 {
            self.announce_change().await;
        }
        Ok(r.rows_affected())
    }

    /// The value a credential resolves to at `now`: current, plus previous while in grace. The
    /// row (sealed: nothing here is in clear) comes from memory while [`Store::change_epoch`]
    /// has not moved and for at most [`CREDENTIAL_MAX_AGE`], so the request path reads no
    /// database; any credential write anywhere moves the epoch.
    pub async fn active_value(
        &self,
        provider: &str,
        name: &str,
        now: i64,
    ) -> Result<Option<ActiveValue>, StoreError> {
        let Some(row) = self.cached_credential(provider, name).await? else {
            return Ok(None);
        };
        let row = CredentialRow::clone(&row);
        let current = match (row.wrapped_dek, row.ciphertext) {
            (Some(wrapped_dek), Some(ciphertext)) => Some(SealedBlobs {
                wrapped_dek,
                ciphertext,
            }),
            _ => None,
        };
        if current.is_none() && row.reference.is_none() {
            return Err(StoreError::Corrupt(format!(
                "credential {} has neither a sealed value nor a reference",
                row.id
            )));
        }
        let previous = match (
            row.previous_wrapped_dek,
            row.previous_ciphertext,
            row.previous_until,
        ) {
            (Some(wrapped_dek), Some(ciphertext), Some(until)) if until > now => Some((
                SealedBlobs {
                    wrapped_dek,
                    ciphertext,
                },
                until,
            )),
            _ => None,
        };
        Ok(Some(ActiveValue {
            id: row.id,
            provider: row.provider,
            name: row.name,
            current,
            reference: row.reference,
            previous,
        }))
    }

    /// Master-key rotation, in one transaction: checks `master_key_id` still names `old_kid`
    /// and sets it to `new_kid`, re-wraps every stored credential's data keys (current and
    /// previous) with `rewrap`, and writes `meta` (verifier, sealed gateway secret...). Any
    /// failure leaves everything as it was.
    pub async fn rewrap_credentials<E>(
        &self,
        old_kid: &str,
        new_kid: &str,
        mut rewrap: impl FnMut(&WrappedKeys) -> Result<(Vec<u8>, Option<Vec<u8>>), E>,
        meta: &[(&str, &str)],
    ) -> Result<Rewrapped<E>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
            .bind(new_kid)
            .bind(MASTER_KEY_ID)
            .bind(old_kid)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Rewrapped::KeyChanged);
        }
        let rows = sqlx::query(
            "SELECT id, provider, wrapped_dek, previous_wrapped_dek FROM credentials \
             WHERE wrapped_dek IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(WrappedKeys {
                id: row.try_get("id")?,
                provider: row.try_get("provider")?,
                wrapped_dek: row.try_get("wrapped_dek")?,
                previous_wrapped_dek: row.try_get("previous_wrapped_dek")?,
            });
        }
        for k in &keys {
            let (wrapped, previous) = match rewrap(k) {
                Ok(v) => v,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Rewrapped::Failed(e));
                }
            };
            sqlx::query(
                "UPDATE credentials SET wrapped_dek = $1, previous_wrapped_dek = $2 WHERE id = $3",
            )
            .bind(wrapped)
            .bind(previous)
            .bind(&k.id)
            .execute(&mut *tx)
            .await?;
        }
        for (key, value) in meta {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(*key)
            .bind(*value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.announce_change().await;
        Ok(Rewrapped::Done {
            credentials: keys.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    /// A migrated in-memory SQLite store (one connection, so one database).
    async fn store() -> Store {
        let opts = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let store = Store::connect("sqlite::memory:", &opts).await.unwrap();
        store.migrate().await.unwrap();
        store.meta_set(MASTER_KEY_ID, "kid-1").await.unwrap();
        store
    }

    fn row(id: &str, provider: &str, blob: u8) -> CredentialRow {
        CredentialRow {
            id: id.into(),
            provider: provider.into(),
            name: "default".into(),
            kind: kind::STORED.into(),
            wrapped_dek: Some(vec![blob; 81]),
            ciphertext: Some(vec![blob; 50]),
            reference: None,
            fingerprint: format!("fp{blob}"),
            last4: "abcd".into(),
            previous_wrapped_dek: None,
            previous_ciphertext: None,
            previous_until: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[tokio::test]
    async fn inserts_are_fenced_on_the_master_key_and_unique_per_name() {
        let s = store().await;
        let a = row("cr_a", "openai", 1);
        assert_eq!(
            s.insert_credential(&a, "kid-1").await.unwrap(),
            Fenced::Done(Inserted::Yes)
        );
        let dup = row("cr_b", "openai", 2);
        assert_eq!(
            s.insert_credential(&dup, "kid-1").await.unwrap(),
            Fenced::Done(Inserted::Duplicate)
        );
        let other = row("cr_c", "anthropic", 3);
        assert_eq!(
            s.insert_credential(&other, "kid-0").await.unwrap(),
            Fenced::KeyChanged
        );
        let all = s.list_credentials().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, "cr_a");
        assert!(all[0].wrapped_dek.is_none() && all[0].ciphertext.is_none());
        assert_eq!(s.get_credential("cr_a").await.unwrap(), Some(a));
        assert!(s.delete_credential("cr_a").await.unwrap());
        assert!(!s.delete_credential("cr_a").await.unwrap());
    }

    #[tokio::test]
    async fn a_replaced_value_stays_active_until_its_grace_ends() {
        let s = store().await;
        s.insert_credential(&row("cr_a", "openai", 1), "kid-1")
            .await
            .unwrap();
        let new = SealedBlobs {
            wrapped_dek: vec![9; 81],
            ciphertext: vec![9; 60],
        };
        let replacement = Replacement {
            sealed: &new,
            fingerprint: "fp9",
            last4: "wxyz",
            previous_until: Some(1_000),
        };
        assert_eq!(
            s.replace_credential_value("cr_a", &replacement, 500, "kid-0")
                .await
                .unwrap(),
            Fenced::KeyChanged
        );
        assert_eq!(
            s.replace_credential_value("cr_a", &replacement, 500, "kid-1")
                .await
                .unwrap(),
            Fenced::Done(true)
        );
        let during = s
            .active_value("openai", "default", 999)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(during.current, Some(new.clone()));
        let (previous, until) = during.previous.unwrap();
        assert_eq!((previous.ciphertext, until), (vec![1; 50], 1_000));
        let after = s
            .active_value("openai", "default", 1_000)
            .await
            .unwrap()
            .unwrap();
        assert!(after.previous.is_none());
        assert_eq!(s.clear_expired_previous(999).await.unwrap(), 0);
        assert_eq!(s.clear_expired_previous(1_000).await.unwrap(), 1);
        let r = s.get_credential("cr_a").await.unwrap().unwrap();
        assert!(r.previous_ciphertext.is_none() && r.previous_until.is_none());
        assert_eq!((r.fingerprint.as_str(), r.updated_at), ("fp9", 500));
        // Without a grace period the old value is dropped at once.
        let again = Replacement {
            previous_until: None,
            ..replacement
        };
        s.replace_credential_value("cr_a", &again, 600, "kid-1")
            .await
            .unwrap();
        let r = s.get_credential("cr_a").await.unwrap().unwrap();
        assert!(r.previous_wrapped_dek.is_none());
        assert!(
            s.active_value("nobody", "default", 0)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn rewrap_is_all_or_nothing_and_moves_the_fence() {
        let s = store().await;
        let mut a = row("cr_a", "openai", 1);
        a.previous_wrapped_dek = Some(vec![5; 81]);
        a.previous_ciphertext = Some(vec![5; 40]);
        a.previous_until = Some(i64::MAX);
        s.insert_credential(&a, "kid-1").await.unwrap();
        s.insert_credential(&row("cr_b", "anthropic", 2), "kid-1")
            .await
            .unwrap();
        // A failure for one row changes nothing, meta included.
        let failed = s
            .rewrap_credentials(
                "kid-1",
                "kid-2",
                |k| {
                    if k.id == "cr_b" {
                        Err("boom")
                    } else {
                        Ok((vec![7; 81], None))
                    }
                },
                &[("master_key_verifier", "new")],
            )
            .await
            .unwrap();
        assert!(matches!(failed, Rewrapped::Failed("boom")));
        assert_eq!(
            s.meta_get(MASTER_KEY_ID).await.unwrap().as_deref(),
            Some("kid-1")
        );
        assert_eq!(s.meta_get("master_key_verifier").await.unwrap(), None);
        assert_eq!(
            s.get_credential("cr_a").await.unwrap().unwrap().wrapped_dek,
            Some(vec![1; 81])
        );
        // Success: every row, both data keys, meta and the fence in one go.
        let done = s
            .rewrap_credentials(
                "kid-1",
                "kid-2",
                |k| {
                    let prev = k.previous_wrapped_dek.as_ref().map(|_| vec![8; 81]);
                    Ok::<_, ()>((vec![7; 81], prev))
                },
                &[("master_key_verifier", "new")],
            )
            .await
            .unwrap();
        assert!(matches!(done, Rewrapped::Done { credentials: 2 }));
        let r = s.get_credential("cr_a").await.unwrap().unwrap();
        assert_eq!(r.wrapped_dek, Some(vec![7; 81]));
        assert_eq!(r.previous_wrapped_dek, Some(vec![8; 81]));
        assert_eq!(r.ciphertext, Some(vec![1; 50]), "values are not touched");
        assert_eq!(
            s.meta_get("master_key_verifier").await.unwrap().as_deref(),
            Some("new")
        );
        // The old key can no longer write or rotate.
        let stale = s
            .rewrap_credentials("kid-1", "kid-3", |_| Ok::<_, ()>((vec![], None)), &[])
            .await
            .unwrap();
        assert!(matches!(stale, Rewrapped::KeyChanged));
        assert_eq!(
            s.insert_credential(&row("cr_c", "groq", 3), "kid-1")
                .await
                .unwrap(),
            Fenced::KeyChanged
        );
    }

    #[test]
    fn debug_and_serialize_never_show_sealed_bytes() {
        let secretish = b"sealed-bytes-zz".to_vec();
        let row = CredentialRow {
            id: "cr_1".into(),
            provider: "openai".into(),
            name: "default".into(),
            kind: kind::STORED.into(),
            wrapped_dek: Some(secretish.clone()),
            ciphertext: Some(secretish.clone()),
            reference: None,
            fingerprint: "abcdef012345".into(),
            last4: "wxyz".into(),
            previous_wrapped_dek: Some(secretish.clone()),
            previous_ciphertext: Some(secretish.clone()),
            previous_until: Some(5),
            created_at: 1,
            updated_at: 2,
        };
        let dbg = format!("{row:?}");
        let json = serde_json::to_string(&row).unwrap();
        for text in [&dbg, &json] {
            assert!(!text.contains("sealed-bytes"), "{text}");
            assert!(!text.contains("115, 101, 97"), "{text}");
            assert!(text.contains("abcdef012345"), "{text}");
        }
        assert!(dbg.contains("ciphertext_len: Some(15)"), "{dbg}");
        let blobs = SealedBlobs {
            wrapped_dek: secretish.clone(),
            ciphertext: secretish,
        };
        assert_eq!(
            format!("{blobs:?}"),
            "SealedBlobs { wrapped_dek_len: 15, ciphertext_len: 15 }"
        );
    }
}
