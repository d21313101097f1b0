//! The audit log: every owner action and every pairing, consent and revocation event.

use crate::{Store, StoreError, now_ms};

/// One audit log row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, ts_rs::TS)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    /// Appends an audit event. `detail` is a JSON document that must hold no secret.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail.map(|d| d.to_string()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest audit events, newest first.
    pub async fn audit_recent(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
