//! The gateway's view of a grant policy: parsing and validating the JSON the owner (or, for a
//! consent request, the app) supplies, with one clear error listing every problem.

use pairgate_policy::GrantPolicy;

use crate::error::ApiError;

/// Parses and validates a policy document.
pub fn parse(policy: &serde_json::Value) -> Result<GrantPolicy, ApiError> {
    let parsed: GrantPolicy = serde_json::from_value(policy.clone()).map_err(|e| {
        ApiError::bad_request("invalid_policy", format!("the policy is not valid: {e}"))
    })?;
    parsed.validate().map_err(|e| {
        ApiError::bad_request("invalid_policy", format!("the policy is not valid: {e}"))
    })?;
    Ok(parsed)
}

/// Parses, validates and re-serialises a policy (defaults filled in) for storage.
pub fn normalize(policy: &serde_json::Value) -> Result<String, ApiError> {
    let parsed = parse(policy)?;
    serde_json::to_string(&parsed).map_err(|e| ApiError::Internal(e.into()))
}
