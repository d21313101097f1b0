//! Error bodies returned by the gateway: OAuth-style (RFC 6749 §5.2) for the pairing and token
//! endpoints, OpenAI-shaped for the proxied API, plus the shared error codes.

use serde::{Deserialize, Serialize};

/// The `error` codes the gateway uses.
pub mod codes {
    /// Malformed request (RFC 6749).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The grant (pairing secret, device code, refresh token) is invalid (RFC 6749).
    pub const INVALID_GRANT: &str = "invalid_grant";
    /// Unknown `grant_type` (RFC 6749).
    pub const UNSUPPORTED_GRANT_TYPE: &str = "unsupported_grant_type";
    /// The DPoP proof is invalid (RFC 9449).
    pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
    /// Retry with the nonce from the `DPoP-Nonce` header (RFC 9449).
    pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";
    /// The access token is invalid, expired, or not bound to the proof key (RFC 6750).
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The pairing string is unknown or malformed (pairgate).
    pub const INVALID_PAIRING: &str = "invalid_pairing";
    /// The pairing string expired before it was used (pairgate).
    pub const EXPIRED_PAIRING: &str = "expired_pairing";
    /// The pairing string was already redeemed (pairgate).
    pub const PAIRING_ALREADY_USED: &str = "pairing_already_used";
    /// The owner revoked the grant (pairgate).
    pub const GRANT_REVOKED: &str = "grant_revoked";
    /// The owner suspended the grant (pairgate).
    pub const GRANT_SUSPENDED: &str = "grant_suspended";
    /// Device flow: the owner has not approved yet (RFC 8628).
    pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
    /// Device flow: poll less often (RFC 8628).
    pub const SLOW_DOWN: &str = "slow_down";
    /// The owner denied the request (RFC 6749 / RFC 8628).
    pub const ACCESS_DENIED: &str = "access_denied";
    /// Device flow: the device code expired (RFC 8628).
    pub const EXPIRED_TOKEN: &str = "expired_token";
    /// The grant does not allow this request (RFC 6750).
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
}

/// `{"error": "...", "error_description": "..."}` (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    /// One of [`codes`].
    pub error: String,
    /// Human-readable, safe to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl OAuthErrorBody {
    /// Builds a body from a code and an optional description.
    pub fn new(error: &str, error_description: Option<String>) -> Self {
        OAuthErrorBody {
            error: error.to_owned(),
            error_description,
        }
    }
}

/// `{"error": {"message", "type", "code", "param"}}` as OpenAI-compatible clients expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiErrorBody {
    /// The error.
    pub error: OpenAiError,
}

/// The inner OpenAI-shaped error. `code` and `param` serialise as `null` when absent, as
/// OpenAI does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiError {
    /// Human-readable, safe to show.
    pub message: String,
    /// E.g. `invalid_request_error`, `authentication_error`, `permission_error`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Machine-readable code, usually one of [`codes`].
    #[serde(default)]
    pub code: Option<String>,
    /// The offending parameter, if any.
    #[serde(default)]
    pub param: Option<String>,
}

impl OpenAiErrorBody {
    /// Builds a body without `param`.
    pub fn new(message: impl Into<String>, r#type: &str, code: Option<&str>) -> Self {
        OpenAiErrorBody {
            error: OpenAiError {
                message: message.into(),
                r#type: r#type.to_owned(),
                code: code.map(str::to_owned),
                param: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn oauth_body_shape() {
        let body = OAuthErrorBody::new(codes::INVALID_GRANT, None);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"error": "invalid_grant"})
        );
        let described = OAuthErrorBody::new(codes::SLOW_DOWN, Some("poll every 10s".into()));
        let value = serde_json::to_value(&described).unwrap();
        assert_eq!(
            value,
            json!({"error": "slow_down", "error_description": "poll every 10s"})
        );
        assert_eq!(
            serde_json::from_value::<OAuthErrorBody>(value).unwrap(),
            described
        );
    }

    #[test]
    fn openai_body_shape() {
        let body = OpenAiErrorBody::new(
            "grant revoked",
            "permission_error",
            Some(codes::GRANT_REVOKED),
        );
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(
            value,
            json!({"error": {"message": "grant revoked", "type": "permission_error",
                             "code": "grant_revoked", "param": null}})
        );
        assert_eq!(
            serde_json::from_value::<OpenAiErrorBody>(value).unwrap(),
            body
        );
    }
}
