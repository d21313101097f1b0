//! The gateway's view of a grant policy: parsing and validating the JSON the owner (or, for a
//! consent request, the app) supplies, with one clear error listing every problem; and the
//! owner's edit of an existing grant's policy ([`replace`]).

use pairgate_policy::GrantPolicy;
use pairgate_store::{GrantRow, StoreError};
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// A policy the owner (or a consent request) supplied that cannot be used, or an edit that
/// cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a valid policy document: every problem, in one message.
    #[error("the policy is not valid: {0}")]
    Invalid(String),
    #[error("no grant {0}")]
    UnknownGrant(String),
    #[error("the grant is revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses and validates a policy document.
pub fn parse(policy: &Value) -> Result<GrantPolicy, PolicyError> {
    let parsed: GrantPolicy =
        serde_json::from_value(policy.clone()).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    parsed
        .validate()
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    Ok(parsed)
}

/// Parses, validates and re-serialises a policy (defaults filled in) for storage.
pub fn normalize(policy: &Value) -> Result<String, PolicyError> {
    let parsed = parse(policy)?;
    serde_json::to_string(&parsed).map_err(|e| PolicyError::Invalid(e.to_string()))
}

/// Replaces the policy of a grant (owner only: the route takes the `Owner` extractor and the CLI
/// needs the database; no app route reaches this). The new policy is validated exactly as a
/// pairing's is and may widen or narrow the old one. It applies from the app's next request, on
/// every replica: the write moves the store's change signal, so every grant cache reads the
/// grant again; budget counters are kept per window, not per limit, so spending so far counts
/// against a lowered budget at once. Audited as `grant.policy_changed` with the fields that
/// changed.
pub async fn replace(
    state: &AppState,
    grant_id: &str,
    policy: &Value,
    actor: &str,
    now: i64,
) -> Result<GrantRow, PolicyError> {
    let normalized = normalize(policy)?;
    let unknown = || PolicyError::UnknownGrant(grant_id.to_owned());
    let old = state.store.get_grant(grant_id).await?.ok_or_else(unknown)?;
    if old.status == pairgate_store::grants::status::REVOKED {
        return Err(PolicyError::Revoked);
    }
    if !state
        .store
        .set_grant_policy(grant_id, &normalized, now)
        .await?
    {
        return Err(PolicyError::Revoked);
    }
    let before: Value = serde_json::from_str(&old.policy).unwrap_or(Value::Null);
    let after: Value = serde_json::from_str(&normalized).unwrap_or(Value::Null);
    state
        .store
        .audit(
            actor,
            "grant.policy_changed",
            Some(grant_id),
            Some(&json!({ "changed": changes(&before, &after) })),
        )
        .await?;
    state.store.get_grant(grant_id).await?.ok_or_else(unknown)
}

/// The top-level fields that differ between two policies, as `{field: {from, to}}` (a field
/// absent on one side is `null` there). Policies hold limits and names, never secrets.
fn changes(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for k in keys {
        let (from, to) = (b.get(k), a.get(k));
        if from != to {
            out.insert(
                k.clone(),
                json!({ "from": from.cloned().unwrap_or(Value::Null), "to": to.cloned().unwrap_or(Value::Null) }),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn changes_name_only_the_fields_that_differ() {
        let before = json!({ "models": ["*"], "requests_per_minute": 10, "allow_tools": true });
        let after = json!({ "models": ["openai/*"], "allow_tools": true, "max_concurrent": 2 });
        assert_eq!(
            super::changes(&before, &after),
            json!({
                "max_concurrent": { "from": null, "to": 2 },
                "models": { "from": ["*"], "to": ["openai/*"] },
                "requests_per_minute": { "from": 10, "to": null },
            })
        );
        assert_eq!(super::changes(&after, &after), json!({}));
    }
}
