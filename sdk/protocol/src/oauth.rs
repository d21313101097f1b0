//! OAuth constants and response bodies for the pairing, device and refresh grants.

use serde::{Deserialize, Serialize};

/// Redeeming a pairing string (pairgate extension grant).
pub const GRANT_TYPE_PAIRING: &str = "urn:pairgate:params:oauth:grant-type:pairing";
/// RFC 8628 device authorization grant.
pub const GRANT_TYPE_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 6749 refresh token grant.
pub const GRANT_TYPE_REFRESH: &str = "refresh_token";
/// The only `token_type` the gateway issues.
pub const TOKEN_TYPE_DPOP: &str = "DPoP";

/// Successful token endpoint response (RFC 6749 §5.1, `token_type` `DPoP` per RFC 9449 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The DPoP-bound access token.
    pub access_token: String,
    /// Always `DPoP`.
    pub token_type: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
    /// A DPoP-bound refresh token, when issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Space-separated scopes, when they differ from what was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The grant this token belongs to (pairgate extension).
    pub grant_id: String,
}

/// Device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    /// The device verification code (secret, polled with).
    pub device_code: String,
    /// The code the owner types, `XXXX-XXXX`.
    pub user_code: String,
    /// Where the owner goes.
    pub verification_uri: String,
    /// `verification_uri` with the user code filled in.
    pub verification_uri_complete: String,
    /// Lifetime of both codes, seconds.
    pub expires_in: u64,
    /// Minimum polling interval, seconds.
    pub interval: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn token_response_omits_absent_fields() {
        let response = TokenResponse {
            access_token: "at".into(),
            token_type: TOKEN_TYPE_DPOP.into(),
            expires_in: 300,
            refresh_token: None,
            scope: None,
            grant_id: "gr_1".into(),
        };
        let value = serde_json::to_value(&response).unwrap();
        assert_eq!(
            value,
            json!({"access_token": "at", "token_type": "DPoP", "expires_in": 300, "grant_id": "gr_1"})
        );
        assert_eq!(
            serde_json::from_value::<TokenResponse>(value).unwrap(),
            response
        );
    }

    #[test]
    fn device_response_roundtrip() {
        let value = json!({
            "device_code": "dc", "user_code": "WDJB-MJHT",
            "verification_uri": "https://gateway.example/admin/consent",
            "verification_uri_complete": "https://gateway.example/admin/consent?user_code=WDJB-MJHT",
            "expires_in": 600, "interval": 5
        });
        let parsed: DeviceAuthorizationResponse = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
    }
}
